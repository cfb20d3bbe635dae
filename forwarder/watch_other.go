//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package forwarder

import (
	"net"
	"time"
)

// watch is a no-op where peeking at a socket is not available: a client
// that leaves is then noticed only when writing to it fails.
type watch struct{}

func (w *watch) arm(net.Conn, time.Duration, func()) {}
func (w *watch) stop()                               {}

// idleConnUsable cannot tell here; fasthttp's retry of a bodyless request
// on a stale connection covers the common case.
func idleConnUsable(net.Conn) bool { return true }
