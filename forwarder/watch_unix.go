//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package forwarder

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// watch notices a client that disconnected while its request waits for an
// answer or its stream is idle. fasthttp does not read the connection while
// a handler or a body stream runs, so nothing else would: an upstream
// long-poll would hold its connection until it answered.
//
// It peeks (MSG_PEEK) at the client's socket from a goroutine started only
// after a grace period, so fast exchanges cost a timer and no goroutine.
// Peeking never consumes bytes, so a pipelined request stays intact for
// fasthttp: EOF means the client left; data means it is alive and may send
// more, so the watch ends.
type watch struct {
	tcp      *net.TCPConn
	timer    *time.Timer
	wg       sync.WaitGroup
	stopping atomic.Bool
	armed    bool
	gone     func()
	buf      [1]byte
}

// arm starts watching c after grace; gone is called (from the watch's
// goroutine) if the client disconnects before stop.
func (w *watch) arm(c net.Conn, grace time.Duration, gone func()) {
	if w.armed {
		return
	}
	tcp := tcpConn(c)
	if tcp == nil {
		return
	}
	w.tcp, w.gone, w.armed = tcp, gone, true
	w.stopping.Store(false)
	w.wg.Add(1)
	if w.timer == nil {
		w.timer = time.AfterFunc(grace, w.run)
	} else {
		w.timer.Reset(grace)
	}
}

// stop ends the watch and returns once its goroutine (if it started) has
// exited. A read deadline in the past wakes the peek; the deadline is
// then cleared, which is what fasthttp expects between requests: it arms
// its own idle or read timeout before it reads the next one.
func (w *watch) stop() {
	if !w.armed {
		return
	}
	w.armed = false
	if w.timer.Stop() {
		w.wg.Done()
		w.tcp = nil
		return
	}
	w.stopping.Store(true)
	_ = w.tcp.SetReadDeadline(time.Unix(1, 0))
	w.wg.Wait()
	_ = w.tcp.SetReadDeadline(time.Time{})
	w.tcp = nil
}

func (w *watch) run() {
	defer w.wg.Done()
	if w.stopping.Load() {
		return
	}
	raw, err := w.tcp.SyscallConn()
	if err != nil {
		return
	}
	var (
		n    int
		perr error
	)
	err = raw.Read(func(fd uintptr) bool {
		for {
			n, _, perr = syscall.Recvfrom(int(fd), w.buf[:], syscall.MSG_PEEK)
			if perr == syscall.EINTR {
				continue
			}
			// EAGAIN: nothing to read yet; the poller waits for readability.
			return perr != syscall.EAGAIN
		}
	})
	if err != nil || w.stopping.Load() {
		// Woken by stop, or the connection is already closed.
		return
	}
	if (perr == nil && n == 0) || errors.Is(perr, syscall.ECONNRESET) {
		w.gone()
	}
}

// idleConnUsable reports whether a pooled upstream connection may carry a
// request: not closed by the upstream while idle, and (plain HTTP) without
// unsolicited bytes that would be read as the next response. A TLS
// connection may hold a late session ticket, which TLS consumes itself.
func idleConnUsable(c net.Conn) bool {
	_, isTLS := c.(interface{ NetConn() net.Conn })
	tcp := tcpConn(c)
	if tcp == nil {
		return true
	}
	raw, err := tcp.SyscallConn()
	if err != nil {
		return false
	}
	var (
		buf  [1]byte
		n    int
		perr error
	)
	if err := raw.Read(func(fd uintptr) bool {
		n, _, perr = syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		return true
	}); err != nil {
		return false
	}
	switch {
	case perr == syscall.EAGAIN:
		return true
	case perr != nil, n == 0:
		return false
	}
	return isTLS
}

// tcpConn finds the TCP connection under wrappers that expose it, like
// tls.Conn and the gateway's own connection types.
func tcpConn(c net.Conn) *net.TCPConn {
	for range 8 {
		switch v := c.(type) {
		case *net.TCPConn:
			return v
		case interface{ NetConn() net.Conn }:
			c = v.NetConn()
		case interface{ UnsafeConn() net.Conn }:
			c = v.UnsafeConn()
		default:
			return nil
		}
	}
	return nil
}
