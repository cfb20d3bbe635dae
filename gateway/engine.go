package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"

	"gatehouse/forwarder"
	"gatehouse/framing"
	"gatehouse/safeurl"
)

// defaultMaxHeaderBytes bounds the request line and headers when
// Options.MaxHeaderBytes is 0: big cookies set by other apps on the same
// domain are common.
const defaultMaxHeaderBytes = 64 << 10

// newApp builds the one Fiber app that serves every request: entry runs
// first and decides app traffic itself; only Gatehouse's own paths go on to
// the routes registered after it.
func (s *Server) newApp(maxHeaderBytes int) *fiber.App {
	cfg := fiber.Config{
		DisableStartupMessage: true,
		ErrorHandler:          s.fiberError,
		CaseSensitive:         true,
		StrictRouting:         false,
		ReadBufferSize:        maxHeaderBytes,
		IdleTimeout:           120 * time.Second,
		// Bodies of proxied requests are streamed; Gatehouse's own
		// endpoints read theirs through ownBody, bounded by maxFormBody.
		BodyLimit: -1,
	}
	forwarder.ServerConfig(&cfg)
	app := fiber.New(cfg)
	// A connection that is busy when shutdown begins is told to close
	// after its response instead of waiting for its next request.
	app.Server().CloseOnShutdown = true
	app.Server().ReadTimeout = 0
	app.Server().Logger = fasthttpLogger{s}

	app.Use(s.entry)
	g := app.Group(Prefix)
	s.portal.Register(g)
	g.Get("/auth", s.handleForwardAuth)

	app.Use(func(c *fiber.Ctx) error { return s.fail(c, http.StatusNotFound, "not_found", "") })
	return app
}

// entry is where every request starts: it records the request's facts,
// refuses what cannot be decided safely, and either decides and forwards
// app traffic (serveApp) or hands a /.gatehouse request to its route.
func (s *Server) entry(c *fiber.Ctx) error {
	f := s.newFacts(c)
	defer s.finish(c, f)
	h := &c.Request().Header
	uri := h.RequestURI()
	if h.IsOptions() && string(uri) == "*" {
		// A question about the server itself, not about a resource:
		// answered here, like net/http and nginx do, never forwarded.
		f.decision = "gatehouse"
		c.Set(fiber.HeaderAllow, "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS")
		c.Status(http.StatusOK)
		return nil
	}
	if h.IsConnect() || len(uri) == 0 || uri[0] != '/' {
		// Absolute-form targets and CONNECT are for forward proxies.
		f.decision = "rejected"
		return s.fail(c, http.StatusBadRequest, "bad_request", "")
	}
	if len(h.Peek(framing.AmbiguousHeader)) > 0 {
		// The framing guard marked a head whose length is ambiguous on the
		// wire. Nothing more is read from this connection.
		c.Context().SetConnectionClose()
		f.decision = "rejected"
		return s.fail(c, http.StatusBadRequest, "bad_request", "")
	}
	rawPath := uri
	if i := strings.IndexByte(string(uri), '?'); i >= 0 {
		rawPath = uri[:i]
	}
	path, err := safeurl.CleanPath(string(rawPath))
	if err != nil {
		f.decision = "rejected"
		return s.fail(c, http.StatusBadRequest, "bad_request", "")
	}
	f.path = path
	// One host, normalized once, for the rules, the routes and the log:
	// "[wiki.example]:80" is not a spelling of wiki.example that slips
	// past a rule for it, it is no host at all.
	f.hostHeader = string(h.Host())
	host, ok := safeurl.Host(f.hostHeader)
	if !ok {
		f.decision = "rejected"
		return s.fail(c, http.StatusBadRequest, "bad_request", "")
	}
	f.host = host
	if path == Prefix || strings.HasPrefix(path, Prefix+"/") {
		f.own = true
		f.decision = "gatehouse"
		if !isSafeMethod(c.Method()) && !s.sameOriginRequest(c) {
			// Cross-site requests that change state are refused before any
			// handler runs.
			return s.fail(c, http.StatusForbidden, "csrf", "")
		}
		if !s.ownBody(c) {
			// Refused, and already answered.
			return nil
		}
		// The routes match the cleaned path, the one that was decided.
		c.Path(path)
		return c.Next()
	}
	f.decision = s.serveApp(c, f)
	return nil
}

// finish counts the request and writes its access log line. An upgrade that
// did not switch protocols ends its connection: what the client sends next
// was meant for another protocol, and the framing guard no longer follows
// it.
func (s *Server) finish(c *fiber.Ctx, f *facts) {
	f.status = c.Response().StatusCode()
	if f.upgrade && f.status != http.StatusSwitchingProtocols {
		c.Context().SetConnectionClose()
	}
	f.path = logPath(c, f)
	if f.stream.CompareAndSwap(streamForwarding, streamPending) {
		// The forwarder is still writing the answer; streamEnded logs it.
		return
	}
	s.logRequest(f)
}

// streamEnded is the forwarder's Done: it runs inside Forward for an
// answer it had whole, or later, once a streamed answer or tunnel is over.
func (s *Server) streamEnded(f *facts, complete bool) {
	if f.stream.CompareAndSwap(streamForwarding, streamNone) {
		// Still inside the handler: the answer is whole or Forward failed
		// (forward renders and labels the failure); finish logs.
		return
	}
	if f.stream.CompareAndSwap(streamPending, streamLogged) {
		f.cut = !complete
		s.logRequest(f)
	}
}

// ownBody reads the body of a request to Gatehouse's own endpoints, at most
// maxFormBody bytes: they take a few short fields. Bodies are streamed for
// proxied requests, so the limit cannot be the server's. It reports false
// when it refused the body and answered.
func (s *Server) ownBody(c *fiber.Ctx) bool {
	req := c.Request()
	if n := req.Header.ContentLength(); n > maxFormBody {
		c.Context().SetConnectionClose()
		_ = s.fail(c, http.StatusRequestEntityTooLarge, "too_large", "")
		return false
	}
	stream := req.BodyStream()
	if stream == nil {
		return true
	}
	buf := make([]byte, 0, 512)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := stream.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if len(buf) > maxFormBody {
			c.Context().SetConnectionClose()
			_ = s.fail(c, http.StatusRequestEntityTooLarge, "too_large", "")
			return false
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			// A malformed or cut body is refused, never handled as if it
			// had ended where the error came.
			s.log.Debug("read request body", "err", err, "request_id", factsOf(c).reqID)
			c.Context().SetConnectionClose()
			_ = s.fail(c, http.StatusBadRequest, "bad_request", "")
			return false
		}
	}
	req.SetBodyRaw(buf)
	return true
}

// Serve answers requests on ln until Shutdown. The caller wraps ln in the
// framing guard (framing.Guard), as cmd/gatehouse does.
func (s *Server) Serve(ln net.Listener) error {
	s.lnMu.Lock()
	if s.shuttingDown() {
		s.lnMu.Unlock()
		_ = ln.Close()
		return nil
	}
	s.listeners = append(s.listeners, ln)
	s.lnMu.Unlock()
	err := s.app.Listener(s.conns.track(ln))
	if s.shuttingDown() {
		return nil
	}
	return err
}

// Shutdown stops accepting connections, ends WebSockets and event streams
// (clients reconnect elsewhere), and waits until every request in flight
// has its answer or ctx ends; then it closes whatever is still open and
// returns ctx's error.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stopListening()
	s.CloseStreams()
	err := s.app.ShutdownWithContext(ctx)
	if err != nil {
		s.conns.closeAll()
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

func (s *Server) shuttingDown() bool { return s.shutdown.Load() }

// stopListening marks the server as shutting down and closes the listeners
// it serves, so a Serve that had not started yet returns too.
func (s *Server) stopListening() {
	s.lnMu.Lock()
	s.shutdown.Store(true)
	lns := s.listeners
	s.listeners = nil
	s.lnMu.Unlock()
	for _, ln := range lns {
		_ = ln.Close()
	}
}

// Close closes every connection at once.
func (s *Server) Close() error {
	s.stopListening()
	s.CloseStreams()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = s.app.ShutdownWithContext(ctx)
	s.conns.closeAll()
	s.fwd.Close()
	return nil
}

// connTracker remembers the server's open connections, so Shutdown can
// close those still busy when its time is up (fasthttp only waits).
type connTracker struct {
	mu   sync.Mutex
	open map[net.Conn]struct{}
}

func (t *connTracker) track(ln net.Listener) net.Listener {
	return &trackedListener{Listener: ln, t: t}
}

func (t *connTracker) closeAll() {
	t.mu.Lock()
	open := make([]net.Conn, 0, len(t.open))
	for c := range t.open {
		open = append(open, c)
	}
	t.mu.Unlock()
	// hardClose takes the lock itself to forget the connection.
	for _, c := range open {
		c.(*trackedConn).hardClose()
	}
}

type trackedListener struct {
	net.Listener
	t *connTracker
}

func (l *trackedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c, t: l.t}
	l.t.mu.Lock()
	if l.t.open == nil {
		l.t.open = map[net.Conn]struct{}{}
	}
	l.t.open[tc] = struct{}{}
	l.t.mu.Unlock()
	return tc, nil
}

type trackedConn struct {
	net.Conn
	t    *connTracker
	once sync.Once
}

// Close ends the connection the way nginx's lingering_close and net/http
// do: it stops writing, then reads and discards what the client is still
// sending, for a bounded time, before closing. Closing a socket with unread
// input makes the kernel answer with a reset, which destroys the response
// the client has not read yet: a 413 for an upload that is still arriving
// would reach the client as "connection reset".
func (c *trackedConn) Close() error {
	first := false
	c.once.Do(func() {
		first = true
		c.t.mu.Lock()
		delete(c.t.open, c)
		c.t.mu.Unlock()
	})
	if !first {
		return c.Conn.Close()
	}
	return lingeringClose(c.Conn)
}

// hardClose closes at once, for Shutdown's deadline and Close.
func (c *trackedConn) hardClose() {
	c.once.Do(func() {
		c.t.mu.Lock()
		delete(c.t.open, c)
		c.t.mu.Unlock()
	})
	_ = c.Conn.Close()
}

// Bounds of a lingering close: it ends when the client closes, after
// lingerIdle without a byte from it, or after lingerTotal.
const (
	lingerIdle  = time.Second
	lingerTotal = 5 * time.Second
)

var lingerBufs = sync.Pool{New: func() any { b := make([]byte, 16<<10); return &b }}

func lingeringClose(c net.Conn) error {
	tcp := underTCP(c)
	if tcp == nil {
		return c.Close()
	}
	if err := tcp.CloseWrite(); err != nil {
		return c.Close()
	}
	go func() {
		defer func() { _ = c.Close() }()
		bp := lingerBufs.Get().(*[]byte)
		defer lingerBufs.Put(bp)
		end := time.Now().Add(lingerTotal)
		for {
			d := time.Now().Add(lingerIdle)
			if d.After(end) {
				d = end
			}
			if tcp.SetReadDeadline(d) != nil {
				return
			}
			if _, err := tcp.Read(*bp); err != nil {
				return
			}
		}
	}()
	return nil
}

// underTCP finds the TCP connection under the gateway's wrappers.
func underTCP(c net.Conn) *net.TCPConn {
	for range 8 {
		switch v := c.(type) {
		case *net.TCPConn:
			return v
		case interface{ NetConn() net.Conn }:
			c = v.NetConn()
		default:
			return nil
		}
	}
	return nil
}

// NetConn is the connection underneath, for the forwarder's watch on
// clients that leave.
func (c *trackedConn) NetConn() net.Conn { return c.Conn }

// fasthttpLogger sends fasthttp's own messages (malformed requests it
// answers itself) to the server's log at debug level: they are the
// client's fault and carry no secret.
type fasthttpLogger struct{ s *Server }

func (l fasthttpLogger) Printf(format string, args ...any) {
	l.s.log.Debug(fmt.Sprintf(format, args...))
}

// fiberError is the one place where handler errors become responses: the
// client gets a safe page, the log gets the detail.
func (s *Server) fiberError(c *fiber.Ctx, err error) error {
	var fe *fiber.Error
	if errors.As(err, &fe) {
		kind := "bad_request"
		switch fe.Code {
		case http.StatusNotFound:
			kind = "not_found"
		case http.StatusMethodNotAllowed:
			kind = "method_not_allowed"
		case http.StatusRequestEntityTooLarge:
			kind = "too_large"
		case http.StatusRequestHeaderFieldsTooLarge:
			kind = "too_large"
		case http.StatusRequestTimeout:
			kind = "bad_request"
		}
		return s.fail(c, fe.Code, kind, "")
	}
	s.log.Error("gatehouse endpoint failed", "path", c.Path(), "err", err, "request_id", factsOf(c).reqID)
	return s.fail(c, http.StatusServiceUnavailable, "unavailable", "")
}

func isSafeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions || m == http.MethodTrace
}
