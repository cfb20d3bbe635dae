// Package forwarder is Gatehouse's streaming reverse proxy on fasthttp: it
// sends one already-authorized request to its upstream over a pooled
// connection and streams the answer (or a protocol upgrade tunnel) back to
// the client without ever holding a whole body in memory.
//
// The forwarder runs inside a fasthttp (Fiber) handler. Streamed response
// bodies and upgrade tunnels outlive that handler, because fasthttp writes a
// body stream and runs a hijacked connection only after the handler has
// returned; Request.Done tells the caller when such an exchange is over.
// The server must be configured as ServerConfig describes.
package forwarder

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"sync"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

// Errors returned by Forward. When Forward returns one of them nothing was
// written to the client's response, so the caller renders its own page.
var (
	// ErrUnreachable: the upstream refused or failed the connection, or
	// closed it before sending response headers (502).
	ErrUnreachable = errors.New("forwarder: upstream unreachable")
	// ErrTimeout: no response headers within Options.HeaderTimeout (504).
	ErrTimeout = errors.New("forwarder: upstream header timeout")
	// ErrTooLarge: the request body is larger than Request.MaxBody (413).
	ErrTooLarge = errors.New("forwarder: request body too large")
	// ErrBusy: no pooled upstream connection became free within
	// Options.MaxConnWait (503).
	ErrBusy = errors.New("forwarder: upstream connections busy")
	// ErrClientGone: the client disconnected before the answer started;
	// there is nobody to answer.
	ErrClientGone = errors.New("forwarder: client gone")
	// ErrBadBody: the client's request body is malformed (a bad chunk);
	// the client's fault, not the upstream's (400).
	ErrBadBody = errors.New("forwarder: malformed request body")
)

// Options tune a Forwarder; every zero value has a documented default.
type Options struct {
	// HeaderTimeout bounds only the wait for the upstream's response
	// headers, measured from when the request (body included) was sent. It
	// never bounds a response body, an event stream or a tunnel.
	// 0 means 30s.
	HeaderTimeout time.Duration
	// DialTimeout bounds connecting to an upstream, TLS handshake
	// included. 0 means 10s.
	DialTimeout time.Duration
	// MaxConnsPerHost caps the pooled connections per upstream host.
	// Upgrade tunnels use their own connections outside the pool.
	// 0 means 1024.
	MaxConnsPerHost int
	// MaxConnWait is how long a request waits for a free pooled connection
	// before ErrBusy. 0 means 5s.
	MaxConnWait time.Duration
	// RootCAs verifies https upstreams; nil means the system roots.
	// Certificates are always verified.
	RootCAs *x509.CertPool
	// Logger receives debug detail about failed exchanges; nil discards.
	Logger *slog.Logger
}

// Request is what the gateway decided about one request.
type Request struct {
	// Target is the upstream: scheme (http or https), host[:port] and an
	// optional base path.
	Target *url.URL
	// Path is the cleaned, decoded path; it is sent escaped as
	// Target.Path + Path, followed by the client's raw query unchanged.
	Path string
	// PreserveHost sends the client's Host instead of Target.Host.
	PreserveHost bool
	// Via adds "Via: 1.1 gatehouse" (1.0 for an HTTP/1.0 client) to the
	// request the upstream receives; the response the client receives is
	// left as the upstream sent it.
	Via bool
	// MaxBody limits the request body; 0 means unlimited. A larger body
	// fails with ErrTooLarge.
	MaxBody int64
	// Hooks, optional, edits what crosses and hears when the exchange
	// ends. An interface rather than three funcs: a caller passes one
	// pointer it already holds, and the hot path allocates no closures.
	Hooks Hooks
	// Stream, optional, bounds long-lived exchanges: when it is done, an
	// open upgrade tunnel is closed (both sockets), a streaming response
	// body is cut (its upstream connection closed, never reused) and a
	// request still waiting for headers fails with ErrUnreachable.
	Stream context.Context
}

// Hooks are the caller's part of one exchange.
type Hooks interface {
	// RequestHeader edits the outbound request header after hop-by-hop
	// headers and every header named in Connection were removed, so
	// nothing the client lists in Connection can remove what it sets.
	RequestHeader(h *fasthttp.RequestHeader)
	// ResponseHeader edits the response header before it is sent to the
	// client (hop-by-hop headers already removed). It is called once, when
	// the upstream's headers arrive, for a 101 too.
	ResponseHeader(h *fasthttp.ResponseHeader)
	// Done is called exactly once when the exchange is over: before
	// Forward returns an error or a fully buffered answer, or later, once
	// a streamed body was written (or cut) or a tunnel closed. A caller
	// that tracks streams releases them here, not after Forward returns:
	// canceling Stream when Forward returns would cut every stream at
	// once. complete is false when the answer did not reach the client
	// whole: Forward failed, or a streamed body was cut (the client left,
	// the upstream broke off, Stream ended).
	Done(complete bool)
}

// Forwarder proxies requests to upstreams; it is safe for concurrent use.
type Forwarder struct {
	opts   Options
	log    *slog.Logger
	dialer net.Dialer

	mu    sync.RWMutex
	hosts map[hostKey]*upstream

	// Pools, not package globals: each Forwarder owns its buffers.
	exchanges sync.Pool
	readers   sync.Pool // *bufio.Reader of readBufSize
	writers   sync.Pool // *bufio.Writer of writeBufSize
	copyBufs  sync.Pool // *[copyBufSize]byte
}

// New returns a Forwarder with opts' zero values replaced by their defaults.
func New(opts Options) *Forwarder {
	if opts.HeaderTimeout <= 0 {
		opts.HeaderTimeout = 30 * time.Second
	}
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = 10 * time.Second
	}
	if opts.MaxConnsPerHost <= 0 {
		opts.MaxConnsPerHost = 1024
	}
	if opts.MaxConnWait <= 0 {
		opts.MaxConnWait = 5 * time.Second
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	f := &Forwarder{
		opts:   opts,
		log:    log,
		dialer: net.Dialer{Timeout: opts.DialTimeout, KeepAlive: 30 * time.Second},
		hosts:  map[hostKey]*upstream{},
	}
	f.exchanges.New = func() any { return newExchange(f) }
	f.readers.New = func() any { return bufio.NewReaderSize(nil, readBufSize) }
	f.writers.New = func() any { return bufio.NewWriterSize(nil, writeBufSize) }
	f.copyBufs.New = func() any { return new([copyBufSize]byte) }
	return f
}

// Close releases idle upstream connections. Exchanges in flight keep
// theirs until they end.
func (f *Forwarder) Close() {
	f.mu.RLock()
	defer f.mu.RUnlock()
	for _, u := range f.hosts {
		u.hc.CloseIdleConnections()
	}
}

// Forward sends ctx's request upstream and streams the answer back. nil
// means the response (or tunnel) was handed to the client. Otherwise the
// error is one of the sentinel errors (errors.Is) and nothing was written
// to ctx's response.
func (f *Forwarder) Forward(ctx *fasthttp.RequestCtx, r Request) error {
	x := f.exchanges.Get().(*exchange)
	x.ctx, x.r = ctx, r
	if err := x.forward(); err != nil {
		f.log.Debug("forward failed", "err", err)
		x.finish(false, false)
		return err
	}
	return nil
}

// hostKey names one connection pool: the same host over http and https
// are different upstreams.
type hostKey struct {
	tls  bool
	host string
}

// upstream is one host's connection pool and how to reach it.
type upstream struct {
	hc    *fasthttp.HostClient
	pool  pool
	addr  string
	tlsCf *tls.Config // nil for plain http
}

func (f *Forwarder) upstream(target *url.URL) (*upstream, error) {
	var k hostKey
	switch target.Scheme {
	case "http":
	case "https":
		k.tls = true
	default:
		return nil, fmt.Errorf("%w: unsupported scheme %q", ErrUnreachable, target.Scheme)
	}
	if target.Host == "" {
		return nil, fmt.Errorf("%w: target has no host", ErrUnreachable)
	}
	k.host = target.Host
	f.mu.RLock()
	u := f.hosts[k]
	f.mu.RUnlock()
	if u != nil {
		return u, nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if u = f.hosts[k]; u != nil {
		return u, nil
	}
	u = f.newUpstream(k, target)
	f.hosts[k] = u
	return u, nil
}

func (f *Forwarder) newUpstream(k hostKey, target *url.URL) *upstream {
	port := target.Port()
	if port == "" {
		port = "80"
		if k.tls {
			port = "443"
		}
	}
	u := &upstream{addr: net.JoinHostPort(target.Hostname(), port)}
	if k.tls {
		u.tlsCf = &tls.Config{
			ServerName: target.Hostname(),
			RootCAs:    f.opts.RootCAs,
			MinVersion: tls.VersionTLS12,
			// The exchange speaks HTTP/1.1 on the connection it dials.
			NextProtos: []string{"http/1.1"},
		}
	}
	u.hc = &fasthttp.HostClient{
		Addr: u.addr,
		// TLS is done by dial, so fasthttp sees a ready connection.
		Dial:                     func(string) (net.Conn, error) { return f.dial(u) },
		MaxConns:                 f.opts.MaxConnsPerHost,
		MaxConnWaitTimeout:       f.opts.MaxConnWait,
		MaxIdleConnDuration:      30 * time.Second,
		NoDefaultUserAgentHeader: true,
		DisablePathNormalizing:   true,
	}
	u.pool = newHostPool(u.hc.AcquireConn, u.hc.ReleaseConn, u.hc.CloseConn)
	return u
}

// dial connects to u, with the TLS handshake done under DialTimeout too:
// fasthttp would otherwise run it on the first write, without a deadline.
func (f *Forwarder) dial(u *upstream) (net.Conn, error) {
	c, err := f.dialer.Dial("tcp", u.addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", u.addr, err)
	}
	if u.tlsCf == nil {
		return c, nil
	}
	tc := tls.Client(c, u.tlsCf)
	_ = c.SetDeadline(time.Now().Add(f.opts.DialTimeout))
	if err := tc.Handshake(); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("tls handshake with %s: %w", u.addr, err)
	}
	_ = c.SetDeadline(time.Time{})
	return tc, nil
}

// classify turns an error from talking to the upstream before its
// headers arrived into one of the sentinel errors.
func classify(op string, err error) error {
	switch {
	case errors.Is(err, fasthttp.ErrNoFreeConns):
		return fmt.Errorf("%s: %w: %w", op, ErrBusy, err)
	case errors.Is(err, fasthttp.ErrTimeout), isTimeout(err):
		return fmt.Errorf("%s: %w: %w", op, ErrTimeout, err)
	}
	return fmt.Errorf("%s: %w: %w", op, ErrUnreachable, err)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// staleConn reports an error that a pooled connection the upstream closed
// while idle produces on first use, so a bodyless request may be retried.
func staleConn(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, fasthttp.ErrConnectionClosed)
}
