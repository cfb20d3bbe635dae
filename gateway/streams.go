package gateway

import (
	"context"
	"fmt"
	"sync"
)

// streams tracks the exchanges that may stay open indefinitely (protocol
// upgrades and event streams): a graceful shutdown ends them instead of
// waiting for its timeout, and one that belongs to a session ends when the
// session does (sign-out, revocation on any replica, expiry), so an open
// WebSocket never outlives its sign-in.
type streams struct {
	mu     sync.Mutex
	live   map[*stream]struct{}
	closed bool
}

type stream struct {
	cancel  context.CancelFunc
	session string // "" on public paths
}

func newStreams() *streams {
	return &streams{live: map[*stream]struct{}{}}
}

// open returns the context that bounds one long-lived exchange for id (nil
// on public paths); done must be called when it ends. After closeAll the
// context starts canceled. A session's stream ends at the session's
// absolute expiry at the latest.
func (st *streams) open(who *principal) (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	e := &stream{cancel: cancel}
	if who != nil {
		if !who.expires.IsZero() {
			ctx, cancel = context.WithDeadline(ctx, who.expires)
			e.cancel = cancel
		}
		e.session = who.revokeKey
	}
	st.mu.Lock()
	if st.closed {
		st.mu.Unlock()
		cancel()
		return ctx, func() {}
	}
	st.live[e] = struct{}{}
	st.mu.Unlock()
	return ctx, func() {
		st.mu.Lock()
		delete(st.live, e)
		st.mu.Unlock()
		cancel()
	}
}

// endSession ends every stream of session id; "*" ends every stream that
// belongs to a session.
func (st *streams) endSession(id string) int {
	st.mu.Lock()
	defer st.mu.Unlock()
	n := 0
	for e := range st.live {
		if e.session != "" && (id == "*" || e.session == id) {
			e.cancel()
			delete(st.live, e)
			n++
		}
	}
	return n
}

func (st *streams) closeAll() int {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.closed = true
	n := len(st.live)
	for e := range st.live {
		e.cancel()
	}
	clear(st.live)
	return n
}

// CloseStreams ends every WebSocket and event stream being proxied, and
// any that starts afterwards: the forwarder closes the upstream connection
// and the client's, so clients reconnect (to another instance). Ordinary
// requests are not touched. Shutdown calls it first.
func (s *Server) CloseStreams() {
	if n := s.streams.closeAll(); n > 0 {
		s.log.Info("shutting down: closed long-lived streams", "count", n)
	}
}

// FlushAudit waits until the audit events recorded so far are written, or
// ctx ends. Call it after the HTTP server has shut down and before the
// store closes, so the last requests' events are not lost.
func (s *Server) FlushAudit(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		s.pendingEvents.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("flush audit events: %w", ctx.Err())
	}
}
