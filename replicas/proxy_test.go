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
// can cut, stall and restore, so an outage is simulated without stopping
// the database server other tests use.
type dbLink struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	state linkState
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

type linkState int

const (
	// linkUp relays both ways.
	linkUp linkState = iota
	// linkCut resets every connection, as a stopped server or a refusing
	// firewall does.
	linkCut
	// linkStalled accepts connections and swallows every byte both ways,
	// as a network partition does: nothing is refused, nothing answers.
	linkStalled
)

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
		switch l.current() {
		case linkCut:
			reset(c)
		case linkStalled:
			l.wg.Add(1)
			go l.swallow(c)
		default:
			l.wg.Add(1)
			go l.relay(c)
		}
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
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 && l.current() == linkUp {
				if _, werr := dst.Write(buf[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
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

// swallow reads and drops what a client sends while the link is stalled,
// until the client gives up or the link is cut.
func (l *dbLink) swallow(c net.Conn) {
	defer l.wg.Done()
	if !l.track(c) {
		reset(c)
		return
	}
	_, _ = io.Copy(io.Discard, c)
	_ = c.Close()
	l.mu.Lock()
	delete(l.conns, c)
	l.mu.Unlock()
}

func (l *dbLink) current() linkState {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.state
}

// track registers connections unless the link was cut meanwhile.
func (l *dbLink) track(conns ...net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.state == linkCut {
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
	l.state = linkCut
	for c := range l.conns {
		reset(c)
	}
}

// stall keeps every connection open but lets nothing through.
func (l *dbLink) stall() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.state = linkStalled
}

// restore relays new connections again. Connections that lived through a
// stall lost bytes and are dropped: the database would have given up on
// them too.
func (l *dbLink) restore() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.state == linkStalled {
		for c := range l.conns {
			reset(c)
		}
	}
	l.state = linkUp
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
