package forwarder

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

const (
	// smallBody is the largest Content-Length answer read whole inside
	// Forward: its connection goes back to the pool at once and no stream
	// bookkeeping is needed. Anything larger, or chunked, is streamed.
	smallBody = 16 << 10
	// watchGrace is how long a request waits for its answer before the
	// client's connection is watched for a disconnect: most answers come
	// sooner, and they need no watcher goroutine at all.
	watchGrace = 50 * time.Millisecond
	// readBufSize bounds the upstream's response header (fasthttp needs
	// the whole header in its read buffer).
	readBufSize  = 32 << 10
	writeBufSize = 16 << 10
	copyBufSize  = 32 << 10
)

// An exchange's connection state: the first of finish (done) and an abort
// (client gone, Stream done) wins, so a connection an abort closed is never
// returned to the pool.
const (
	stateActive int32 = iota
	stateDone
	stateAborted
)

// exchange is one forwarded request, pooled by its Forwarder. It is owned
// by the handler's goroutine, then by fasthttp's writing a streamed body or
// by the tunnel; watchers and Stream only ever call abort.
type exchange struct {
	f   *Forwarder
	ctx *fasthttp.RequestCtx
	r   Request

	req  fasthttp.Request
	resp fasthttp.Response

	up    *upstream
	lease lease // nil for a connection dialed for an upgrade
	conn  net.Conn
	br    *bufio.Reader
	bw    *bufio.Writer

	state       atomic.Int32
	clientGone  atomic.Bool
	streamEnded atomic.Bool
	stopStream  func() bool
	// unpooled is set when a Stream callback may still run: the exchange is
	// then left to the garbage collector instead of being reused.
	unpooled bool

	watch   watch
	goneFn  func()
	abortFn func()

	reqBody requestBody
	body    responseBody

	tokens, scratch, scratch2, uri, small, head []byte
	headReader                                  bytes.Reader
}

func newExchange(f *Forwarder) *exchange {
	x := &exchange{f: f}
	x.goneFn = x.onClientGone
	x.abortFn = x.onStreamEnd
	x.reqBody.x = x
	x.body.x = x
	return x
}

func (x *exchange) forward() error {
	r := &x.r
	if r.Target == nil {
		return fmt.Errorf("forward: %w: no target", ErrUnreachable)
	}
	u, err := x.f.upstream(r.Target)
	if err != nil {
		return fmt.Errorf("forward: %w", err)
	}
	x.up = u
	in := &x.ctx.Request
	cl := in.Header.ContentLength()
	if r.MaxBody > 0 && int64(cl) > r.MaxBody {
		return fmt.Errorf("forward: %w: content-length %d", ErrTooLarge, cl)
	}
	upgrade := UpgradeWanted(&in.Header)
	x.prepareRequest(upgrade)
	hasBody, err := x.attachBody(cl)
	if err != nil {
		return err
	}
	if err := x.roundTrip(upgrade, hasBody); err != nil {
		return err
	}
	if upgrade && x.resp.StatusCode() == fasthttp.StatusSwitchingProtocols {
		return x.startTunnel()
	}
	return x.respond(upgrade)
}

// attachBody makes the client's body the outbound body, streamed when the
// server streams request bodies (see ServerConfig).
func (x *exchange) attachBody(cl int) (bool, error) {
	if cl == 0 {
		return false, nil
	}
	if s := x.ctx.RequestBodyStream(); s != nil {
		x.reqBody.reset(s, x.r.MaxBody)
		x.req.SetBodyStream(&x.reqBody, cl)
		return true, nil
	}
	body := x.ctx.Request.Body()
	if x.r.MaxBody > 0 && int64(len(body)) > x.r.MaxBody {
		return false, fmt.Errorf("forward: %w: %d bytes", ErrTooLarge, len(body))
	}
	x.req.SetBodyRaw(body)
	return len(body) > 0, nil
}

// roundTrip sends the request and reads the response header. A bodyless
// request that fails on a reused connection before any answer is retried
// once on another: the upstream may have closed it just as it was taken.
func (x *exchange) roundTrip(upgrade, hasBody bool) error {
	for attempt := 0; ; attempt++ {
		if err := x.connect(upgrade); err != nil {
			return err
		}
		reused := x.lease != nil && x.lease.reused()
		err := x.send()
		if err == nil {
			err = x.awaitHeaders()
		}
		if err == nil {
			return nil
		}
		switch {
		case x.reqBody.tooLarge:
			return fmt.Errorf("send body: %w", ErrTooLarge)
		case x.reqBody.clientErr != nil && clientLeft(x.reqBody.clientErr):
			return fmt.Errorf("read client body: %w: %w", ErrClientGone, x.reqBody.clientErr)
		case x.reqBody.clientErr != nil:
			return fmt.Errorf("read client body: %w", ErrBadBody)
		case x.clientGone.Load():
			return fmt.Errorf("await upstream: %w", ErrClientGone)
		case x.streamEnded.Load():
			return fmt.Errorf("await upstream: %w: stream ended", ErrUnreachable)
		case reused && !hasBody && attempt == 0 && staleConn(err):
			x.dropConn()
			continue
		}
		return classify("forward", err)
	}
}

func (x *exchange) connect(upgrade bool) error {
	if upgrade {
		c, err := x.f.dial(x.up)
		if err != nil {
			return fmt.Errorf("connect: %w: %w", ErrUnreachable, err)
		}
		x.conn = c
	} else {
		l, err := x.up.pool.acquire()
		if err != nil {
			if errors.Is(err, fasthttp.ErrNoFreeConns) {
				return fmt.Errorf("connect: %w: %w", ErrBusy, err)
			}
			return fmt.Errorf("connect: %w: %w", ErrUnreachable, err)
		}
		x.lease, x.conn = l, l.conn()
	}
	x.br = x.f.readers.Get().(*bufio.Reader)
	x.br.Reset(x.conn)
	x.bw = x.f.writers.Get().(*bufio.Writer)
	x.bw.Reset(x.conn)
	x.state.Store(stateActive)
	return nil
}

// dropConn closes the connection of a failed attempt.
func (x *exchange) dropConn() {
	x.releaseConn(false)
	x.resp.Reset()
}

func (x *exchange) send() error {
	if err := x.req.Write(x.bw); err != nil {
		return fmt.Errorf("write request: %w", err)
	}
	if err := x.bw.Flush(); err != nil {
		return fmt.Errorf("write request: %w", err)
	}
	return nil
}

// awaitHeaders reads the response header under HeaderTimeout, then clears
// the deadline: fasthttp's own ReadTimeout would stay armed on the
// connection and cut a streamed body or an event stream.
func (x *exchange) awaitHeaders() error {
	x.arm()
	if err := x.conn.SetReadDeadline(time.Now().Add(x.f.opts.HeaderTimeout)); err != nil {
		x.disarm()
		return fmt.Errorf("arm header timeout: %w", err)
	}
	x.resp.Header.SetNoDefaultContentType(true)
	x.resp.StreamBody = true
	x.resp.SkipBody = x.req.Header.IsHead()
	err := x.resp.ReadLimitBody(x.br, 0)
	if err == nil {
		err = x.conn.SetReadDeadline(time.Time{})
	}
	if err != nil {
		x.disarm()
		return fmt.Errorf("read response header: %w", redact(err))
	}
	return nil
}

// errMalformed replaces fasthttp's header parse errors, which quote the
// header bytes (cookies included) and must not reach a log line.
var errMalformed = errors.New("malformed or oversized response header")

func redact(err error) error {
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, fasthttp.ErrTimeout) || staleConn(err) {
		return err
	}
	return errMalformed
}

// arm starts watching for the client leaving and for Stream ending.
func (x *exchange) arm() {
	x.watch.arm(x.ctx.Conn(), watchGrace, x.goneFn)
	if x.r.Stream != nil && x.stopStream == nil {
		x.stopStream = context.AfterFunc(x.r.Stream, x.abortFn)
	}
}

func (x *exchange) disarm() {
	x.watch.stop()
	if x.stopStream != nil {
		if !x.stopStream() {
			x.unpooled = true
		}
		x.stopStream = nil
	}
}

func (x *exchange) onClientGone() {
	x.clientGone.Store(true)
	x.abort()
}

func (x *exchange) onStreamEnd() {
	x.streamEnded.Store(true)
	x.abort()
}

// abort closes the upstream socket under whatever reads it; the owner then
// sees the error and finishes.
func (x *exchange) abort() {
	if x.state.CompareAndSwap(stateActive, stateAborted) {
		closeRaw(x.conn)
	}
}

// respond hands the upstream's answer to the client: a small body read
// whole now, anything else as a stream fasthttp copies after the handler.
// An error means nothing was written to the client's response.
func (x *exchange) respond(upgrade bool) error {
	dst := &x.ctx.Response
	src := x.resp.BodyStream()
	cl := x.resp.Header.ContentLength()
	switch {
	case src == nil || cl == 0:
		if err := x.commitHeader(upgrade); err != nil {
			return err
		}
		if cl > 0 {
			// HEAD and 304 describe a body they do not carry.
			dst.Header.SetContentLength(cl)
		}
		x.finish(x.reusable(upgrade), true)
		return nil
	case cl > 0 && cl <= smallBody:
		if cap(x.small) < cl {
			x.small = make([]byte, smallBody)
		}
		b := x.small[:cl]
		if _, err := io.ReadFull(src, b); err != nil {
			if x.clientGone.Load() {
				return fmt.Errorf("read response body: %w", ErrClientGone)
			}
			return fmt.Errorf("read response body: %w: %w", ErrUnreachable, err)
		}
		if err := x.commitHeader(upgrade); err != nil {
			return err
		}
		dst.SetBody(b)
		x.finish(x.reusable(upgrade), true)
		return nil
	}
	if err := x.commitHeader(upgrade); err != nil {
		return err
	}
	if cl < 0 {
		cl = -1
	}
	x.body.reset(src)
	dst.SetBodyStream(&x.body, cl)
	// A stream's header goes out at once, not with its first chunk: an
	// event stream may stay silent for a long time.
	dst.ImmediateHeaderFlush = true
	return nil
}

func (x *exchange) commitHeader(upgrade bool) error {
	h := &x.ctx.Response.Header
	if err := x.copyResponseHeader(h, &x.resp.Header); err != nil {
		h.Reset()
		return fmt.Errorf("%w: %w", ErrUnreachable, err)
	}
	if upgrade {
		// The connection was dialed for an upgrade that did not happen.
		h.SetConnectionClose()
	}
	if x.r.Hooks != nil {
		x.r.Hooks.ResponseHeader(h)
	}
	return nil
}

// reusable reports whether the connection may serve another request once
// the body was read to its end.
func (x *exchange) reusable(upgrade bool) bool {
	h := &x.resp.Header
	return !upgrade && !h.ConnectionClose() && h.ContentLength() != -2 &&
		h.StatusCode() != fasthttp.StatusSwitchingProtocols && x.br.Buffered() == 0
}

// finish ends the exchange: stops the watchers, returns or closes the
// connection, recycles the exchange and calls Done with complete, whether
// the whole answer reached the client.
func (x *exchange) finish(reuse, complete bool) {
	x.disarm()
	if !x.state.CompareAndSwap(stateActive, stateDone) {
		reuse = false
	}
	x.releaseConn(reuse)
	hooks := x.r.Hooks
	pooled := !x.unpooled
	x.reset()
	if pooled {
		x.f.exchanges.Put(x)
	}
	if hooks != nil {
		hooks.Done(complete)
	}
}

func (x *exchange) releaseConn(reuse bool) {
	if x.conn == nil {
		return
	}
	if x.lease != nil {
		if reuse && x.br.Buffered() == 0 {
			x.lease.release()
		} else {
			x.lease.discard()
		}
	} else {
		_ = x.conn.Close()
	}
	x.br.Reset(nil)
	x.f.readers.Put(x.br)
	x.bw.Reset(nil)
	x.f.writers.Put(x.bw)
	x.lease, x.conn, x.br, x.bw = nil, nil, nil, nil
}

func (x *exchange) reset() {
	x.ctx = nil
	x.r = Request{}
	x.req.Reset()
	x.resp.Reset()
	x.up = nil
	x.clientGone.Store(false)
	x.streamEnded.Store(false)
	x.state.Store(stateActive)
	x.reqBody.reset(nil, 0)
	x.body.src = nil
	x.body.open = false
}

// closeRaw closes the socket under c without a TLS close_notify, which
// could block behind a stalled write.
func closeRaw(c net.Conn) {
	if c == nil {
		return
	}
	for range 8 {
		nc, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			break
		}
		c = nc.NetConn()
	}
	_ = c.Close()
}

// clientLeft tells a client that went away mid-body (the connection ended
// or failed) from one that sent a malformed body, which fasthttp reports
// as a plain parse error.
func clientLeft(err error) bool {
	var ne net.Error
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.As(err, &ne)
}
