package gateway

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"

	"gatehouse/authstore"
)

// slowAuditStore blocks every audit write until released: a store that
// cannot keep up.
type slowAuditStore struct {
	Store
	release  chan struct{}
	inFlight atomic.Int64
	peak     atomic.Int64
	mu       sync.Mutex
}

func (s *slowAuditStore) RecordEvent(ctx context.Context, e authstore.Event) error {
	n := s.inFlight.Add(1)
	s.mu.Lock()
	if n > s.peak.Load() {
		s.peak.Store(n)
	}
	s.mu.Unlock()
	<-s.release
	s.inFlight.Add(-1)
	return s.Store.RecordEvent(ctx, e)
}

func TestAuditWritesAreBounded(t *testing.T) {
	var slow *slowAuditStore
	h := newHarness(t, func(o *Options) {
		slow = &slowAuditStore{Store: o.Store, release: make(chan struct{})}
		o.Store = slow
	})
	const n = maxAuditWriters + 44
	for i := 0; i < n; i++ {
		h.srv.recordEvent("192.0.2.1", "test", "access.denied", "", "denied", "rule")
	}
	if got := h.srv.auditDropped.Load(); got != 44 {
		t.Errorf("dropped %d events, want 44", got)
	}
	close(slow.release)
	if err := h.srv.FlushAudit(context.Background()); err != nil {
		t.Fatal(err)
	}
	if p := slow.peak.Load(); p > maxAuditWriters {
		t.Errorf("%d audit writes in flight at once, want at most %d", p, maxAuditWriters)
	}
	evs, err := h.store.Events(context.Background(), authstore.EventFilter{Type: "access.denied", Limit: 1000})
	if err != nil || len(evs) != maxAuditWriters {
		t.Fatalf("stored %d events (%v), want %d", len(evs), err, maxAuditWriters)
	}
}
