package authstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
	"github.com/uptrace/bun/driver/pgdriver"
)

// RevokeAll is passed to a WatchRevocations callback when notifications may
// have been missed (after the listener reconnected): drop every cached
// session.
const RevokeAll = "*"

const (
	revocationChannel = "gatehouse_revocations"

	listenBackoffMin = 100 * time.Millisecond
	listenBackoffMax = 5 * time.Second
	// listenPingInterval is how often an idle listener checks that its
	// connection still delivers notifications.
	listenPingInterval = 15 * time.Second

	// localQueue is how many revocations a watcher in this process may
	// fall behind before it is told to flush everything instead.
	localQueue = 1024
)

// notifyRevoked announces, inside the transaction that deleted them, the
// sessions that are gone. PostgreSQL delivers the notifications when the
// transaction commits, to every listening process.
func (s *Store) notifyRevoked(ctx context.Context, tx bun.Tx, ids []string) error {
	if !s.postgres() || len(ids) == 0 {
		return nil
	}
	_, err := tx.ExecContext(ctx, "SELECT pg_notify(?, t.id) FROM unnest(?::text[]) AS t(id)",
		revocationChannel, pgdialect.Array(ids))
	if err != nil {
		return fmt.Errorf("notify revocations: %w", err)
	}
	return nil
}

// revoked tells watchers in this process about sessions deleted by a
// committed transaction. PostgreSQL's notifications already reach them.
func (s *Store) revoked(ids []string) {
	if !s.postgres() {
		s.local.publish(ids)
	}
}

// WatchRevocations calls fn with the ID of every session deleted by any
// Store on this database, until ctx is done; then it returns nil. fn runs
// on the calling goroutine, one call at a time. fn(RevokeAll) means
// revocations may have been missed and every cached session must be dropped.
//
// On PostgreSQL the IDs come through LISTEN/NOTIFY from every process. The
// first successful LISTEN is logged at info level. A lost connection is
// logged at warn level and retried with exponential backoff (at most 5 s);
// after each reconnect fn(RevokeAll) is called.
//
// SQLite has no notification channel between processes: only deletions made
// through this Store value are reported. Sessions deleted by another process
// (the CLI, for instance) stop working once a caller's cache entry expires,
// so callers must keep their session cache TTL short.
func (s *Store) WatchRevocations(ctx context.Context, fn func(sessionID string)) error {
	if s.postgres() {
		s.watchPostgres(ctx, fn)
		return nil
	}
	s.watchLocal(ctx, fn)
	return nil
}

func (s *Store) watchLocal(ctx context.Context, fn func(string)) {
	sub := s.local.subscribe()
	defer s.local.unsubscribe(sub)
	for {
		select {
		case <-ctx.Done():
			return
		case <-sub.overflow:
			fn(RevokeAll)
		case id := <-sub.ids:
			fn(id)
		}
	}
}

func (s *Store) watchPostgres(ctx context.Context, fn func(string)) {
	backoff := listenBackoffMin
	reconnecting := false
	for {
		err := s.listen(ctx, fn, func() {
			if reconnecting {
				s.log.Warn("revocation listener reconnected")
				fn(RevokeAll)
			} else {
				s.log.Info("listening for session revocations")
			}
			backoff = listenBackoffMin
		})
		if ctx.Err() != nil {
			return
		}
		s.log.Warn("revocation listener disconnected", "err", err, "retry_in", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(backoff*2, listenBackoffMax)
		reconnecting = true
	}
}

// listen holds one listening connection until it fails or ctx is done,
// passing revocations to fn. connected runs once LISTEN has succeeded.
func (s *Store) listen(ctx context.Context, fn func(string), connected func()) error {
	pingChannel, err := randomPingChannel()
	if err != nil {
		return err
	}
	ln := pgdriver.NewListener(s.db)
	var closeOnce sync.Once
	closeListener := func() { closeOnce.Do(func() { _ = ln.Close() }) }
	defer closeListener()

	if err := ln.Listen(ctx, revocationChannel, pingChannel); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	connected()

	// Receive blocks without regard to ctx, and a connection that silently
	// died never returns an error; closing the listener ends Receive in
	// both cases.
	var lastRecv atomic.Int64
	lastRecv.Store(time.Now().UnixNano())
	var stalled atomic.Bool
	done := make(chan struct{})
	defer close(done)
	go func() {
		ticker := time.NewTicker(listenPingInterval)
		defer ticker.Stop()
		var pingSent time.Time
		for {
			select {
			case <-ctx.Done():
				closeListener()
				return
			case <-done:
				return
			case <-ticker.C:
				if !pingSent.IsZero() && lastRecv.Load() < pingSent.UnixNano() {
					stalled.Store(true)
					closeListener()
					return
				}
				pingSent = time.Now()
				// A failed ping shows up as silence at the next tick.
				_ = pgdriver.Notify(ctx, s.db, pingChannel, "")
			}
		}
	}()

	for {
		channel, payload, err := ln.Receive(ctx)
		if err != nil {
			if stalled.Load() {
				return errors.New("listener connection stopped answering")
			}
			return fmt.Errorf("receive: %w", err)
		}
		lastRecv.Store(time.Now().UnixNano())
		if channel == revocationChannel {
			fn(payload)
		}
	}
}

// randomPingChannel names a channel only this listener uses, so health
// pings do not wake other replicas.
func randomPingChannel() (string, error) {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("ping channel name: %w", err)
	}
	return "gatehouse_ping_" + hex.EncodeToString(b), nil
}

// hub fans revocations out to the watchers of one Store value.
type hub struct {
	mu   sync.Mutex
	subs map[*subscriber]struct{}
}

type subscriber struct {
	ids chan string
	// overflow is signalled when ids was full and an ID was dropped.
	overflow chan struct{}
}

func newHub() *hub {
	return &hub{subs: map[*subscriber]struct{}{}}
}

func (h *hub) subscribe() *subscriber {
	sub := &subscriber{
		ids:      make(chan string, localQueue),
		overflow: make(chan struct{}, 1),
	}
	h.mu.Lock()
	h.subs[sub] = struct{}{}
	h.mu.Unlock()
	return sub
}

func (h *hub) unsubscribe(sub *subscriber) {
	h.mu.Lock()
	delete(h.subs, sub)
	h.mu.Unlock()
}

// publish never blocks: a watcher that is too far behind gets a single
// overflow signal instead of the IDs it could not take.
func (h *hub) publish(ids []string) {
	if len(ids) == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for sub := range h.subs {
		for _, id := range ids {
			select {
			case sub.ids <- id:
			default:
				select {
				case sub.overflow <- struct{}{}:
				default:
				}
			}
		}
	}
}
