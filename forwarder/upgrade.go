package forwarder

import (
	"net"
	"strconv"
	"sync"

	"github.com/valyala/fasthttp"
)

// startTunnel answers an accepted upgrade. The upstream's 101 head is
// written by the tunnel as received (after the ResponseHeader hook's edits), not by
// fasthttp, which would rewrite Date and framing of a head it did not
// produce; the hijacked client connection then carries raw bytes both ways.
func (x *exchange) startTunnel() error {
	if x.r.Hooks != nil {
		x.r.Hooks.ResponseHeader(&x.resp.Header)
	}
	// The tunnel notices a client leaving by itself.
	x.watch.stop()
	x.ctx.HijackSetNoResponse(true)
	x.ctx.Hijack(x.tunnel)
	return nil
}

// tunnel runs on the hijacked connection after the handler returned; its
// end (either side closing, or Stream ending) closes both sockets.
func (x *exchange) tunnel(client net.Conn) {
	head := appendResponseHead(x.scratch[:0], &x.resp.Header)
	x.scratch = head
	_, err := client.Write(head)
	if n := x.br.Buffered(); err == nil && n > 0 {
		// Bytes of the new protocol that arrived with the 101.
		b, _ := x.br.Peek(n)
		_, err = client.Write(b)
	}
	if err == nil {
		x.pipe(client)
	}
	closeClient(client)
	// A tunnel ends when either side closes it: that is its normal end.
	x.finish(false, true)
}

// pipe copies both ways until one direction ends, then closes both sockets
// so the other direction ends too.
func (x *exchange) pipe(client net.Conn) {
	var once sync.Once
	closeBoth := func() {
		once.Do(func() {
			closeRaw(x.conn)
			closeClient(client)
		})
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = copyPooled(x.f, x.conn, client)
		closeBoth()
	}()
	_, _ = copyPooled(x.f, client, x.conn)
	closeBoth()
	<-done
}

// closeClient closes the client's socket: fasthttp's hijacked connection
// ignores Close (the server closes it after the hijack handler), which
// would leave a copy blocked on it.
func closeClient(c net.Conn) {
	if u, ok := c.(interface{ UnsafeConn() net.Conn }); ok {
		c = u.UnsafeConn()
	}
	_ = c.Close()
}

// appendResponseHead serializes h as a status line and one line per
// field, in fasthttp's order, without adding anything.
func appendResponseHead(dst []byte, h *fasthttp.ResponseHeader) []byte {
	proto := h.Protocol()
	if len(proto) == 0 {
		proto = []byte("HTTP/1.1")
	}
	dst = append(dst, proto...)
	dst = append(dst, ' ')
	dst = strconv.AppendInt(dst, int64(h.StatusCode()), 10)
	dst = append(dst, ' ')
	if m := h.StatusMessage(); len(m) > 0 {
		dst = append(dst, m...)
	} else {
		dst = append(dst, fasthttp.StatusMessage(h.StatusCode())...)
	}
	dst = append(dst, "\r\n"...)
	for k, v := range h.All() {
		dst = append(dst, k...)
		dst = append(dst, ": "...)
		dst = append(dst, v...)
		dst = append(dst, "\r\n"...)
	}
	return append(dst, "\r\n"...)
}
