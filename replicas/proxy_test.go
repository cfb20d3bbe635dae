package replicas

import (
	"errors"
	"io"
	"net"
	"net/url"
	"sync"
	"testing"
)

// dbLink is a TCP relay between the replicas and PostgreSQL that the test
// can cut and restore, so an outage is simulated without stopping the
// database server other tests use.
type dbLink struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	down  bool
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// newDBLink relays 127.0.0.1:<some port> to the host and port of dsn.
func newDBLink(t *testing.T, dsn string) *dbLink {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &dbLink{ln: ln, target: u.Host, conns: map[net.Conn]struct{}{}}
	l.wg.Add(1)
	go l.accept()
	t.Cleanup(l.close)
	return l
}

// addr is where clients connect instead of the database.
func (l *dbLink) addr() string { return l.ln.Addr().String() }

func (l *dbLink) accept() {
	defer l.wg.Done()
	for {
		c, err := l.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		l.mu.Lock()
		down := l.down
		l.mu.Unlock()
		if down {
			reset(c)
			continue
		}
		l.wg.Add(1)
		go l.relay(c)
	}
}

// relay copies both ways until either side ends, then closes both.
func (l *dbLink) relay(c net.Conn) {
	defer l.wg.Done()
	db, err := net.Dial("tcp", l.target)
	if err != nil {
		reset(c)
		return
	}
	if !l.track(c, db) {
		reset(c)
		_ = db.Close()
		return
	}
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		done <- struct{}{}
	}
	go pipe(db, c)
	go pipe(c, db)
	<-done
	_ = c.Close()
	_ = db.Close()
	<-done
	l.mu.Lock()
	delete(l.conns, c)
	delete(l.conns, db)
	l.mu.Unlock()
}

// track registers a relayed pair unless the link went down meanwhile.
func (l *dbLink) track(conns ...net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.down {
		return false
	}
	for _, c := range conns {
		l.conns[c] = struct{}{}
	}
	return true
}

// cut drops every relayed connection and refuses new ones.
func (l *dbLink) cut() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.down = true
	for c := range l.conns {
		reset(c)
	}
}

// restore relays new connections again.
func (l *dbLink) restore() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.down = false
}

func (l *dbLink) close() {
	_ = l.ln.Close()
	l.cut()
	l.wg.Wait()
}

// reset closes c with a TCP reset, as a refused or broken link looks.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}
