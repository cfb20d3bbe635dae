package forwarder

import (
	"net"
	"sync"
	"time"
)

// pool hands out upstream connections. It wraps fasthttp.HostClient's
// connection pool, whose connection type is unexported: only type inference
// can name it, hence the generic hostPool behind this interface.
type pool interface {
	acquire() (lease, error)
}

// lease is one connection taken from a pool; exactly one of release and
// discard must be called.
type lease interface {
	conn() net.Conn
	// reused reports a connection that served an earlier request.
	reused() bool
	// release returns a connection whose last response was read exactly
	// to its end.
	release()
	// discard closes the connection; it is never handed out again.
	discard()
}

type pooledConn interface {
	Conn() net.Conn
	LastUseTime() time.Time
}

type hostPool[C pooledConn] struct {
	acquireFn func(time.Duration, bool) (C, error)
	releaseFn func(C)
	closeFn   func(C)
	leases    sync.Pool
}

func newHostPool[C pooledConn](acquire func(time.Duration, bool) (C, error), release, closeConn func(C)) *hostPool[C] {
	p := &hostPool[C]{acquireFn: acquire, releaseFn: release, closeFn: closeConn}
	p.leases.New = func() any { return &hostLease[C]{p: p} }
	return p
}

// acquire waits at most the HostClient's MaxConnWaitTimeout; a pooled
// connection the upstream has closed (or written to) while it sat idle is
// discarded instead of being handed out, since using it would fail the
// request or, worse, read stale bytes as the next response.
func (p *hostPool[C]) acquire() (lease, error) {
	for range 16 {
		cc, err := p.acquireFn(0, false)
		if err != nil {
			return nil, err
		}
		l := p.leases.Get().(*hostLease[C])
		l.cc = cc
		if !l.reused() || idleConnUsable(cc.Conn()) {
			return l, nil
		}
		l.discard()
	}
	// Everything idle was dead; the next acquire dials.
	cc, err := p.acquireFn(0, false)
	if err != nil {
		return nil, err
	}
	l := p.leases.Get().(*hostLease[C])
	l.cc = cc
	return l, nil
}

type hostLease[C pooledConn] struct {
	p  *hostPool[C]
	cc C
}

func (l *hostLease[C]) conn() net.Conn { return l.cc.Conn() }
func (l *hostLease[C]) reused() bool   { return !l.cc.LastUseTime().IsZero() }

func (l *hostLease[C]) release() {
	l.p.releaseFn(l.cc)
	l.put()
}

func (l *hostLease[C]) discard() {
	l.p.closeFn(l.cc)
	l.put()
}

func (l *hostLease[C]) put() {
	var zero C
	l.cc = zero
	l.p.leases.Put(l)
}
