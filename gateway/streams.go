package gateway

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
)

// streams tracks the requests that may stay open indefinitely (WebSocket
// upgrades and event streams), so a graceful shutdown can end them instead
// of waiting for its timeout: http.Server.Shutdown neither waits for nor
// closes hijacked connections, and waits for a streaming response as long
// as it lasts.
type streams struct {
	mu     sync.Mutex
	open   map[*context.CancelFunc]struct{}
	closed bool
}

func newStreams() *streams {
	return &streams{open: map[*context.CancelFunc]struct{}{}}
}

// isLongLived reports a request that asks for a WebSocket or an event
// stream. Ordinary requests cost two header lookups.
func isLongLived(r *http.Request) bool {
	if len(r.Header["Upgrade"]) > 0 && isWebSocket(r) {
		return true
	}
	for _, v := range r.Header["Accept"] {
		if strings.Contains(v, "text/event-stream") {
			return true
		}
	}
	return false
}

// track gives r a context that CloseStreams cancels; done must be called
// when the request ends. After CloseStreams the context starts canceled.
func (st *streams) track(r *http.Request) (*http.Request, func()) {
	ctx, cancel := context.WithCancel(r.Context())
	st.mu.Lock()
	if st.closed {
		st.mu.Unlock()
		cancel()
		return r.WithContext(ctx), func() {}
	}
	key := &cancel
	st.open[key] = struct{}{}
	st.mu.Unlock()
	return r.WithContext(ctx), func() {
		st.mu.Lock()
		delete(st.open, key)
		st.mu.Unlock()
		cancel()
	}
}

func (st *streams) closeAll() int {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.closed = true
	n := len(st.open)
	for c := range st.open {
		(*c)()
	}
	clear(st.open)
	return n
}

// CloseStreams ends every WebSocket and event stream being proxied, and
// any that starts afterwards: the proxy closes the upstream connection and
// the client's, so clients reconnect (to another instance). Ordinary
// requests are not touched. Register it with http.Server.RegisterOnShutdown.
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
