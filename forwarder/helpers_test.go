package forwarder_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"gatehouse/forwarder"
)

// listen binds a test server to loopback only.
func listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// upstream starts a real net/http server on 127.0.0.1.
func upstream(t testing.TB, h http.Handler) *httptest.Server {
	t.Helper()
	s := httptest.NewUnstartedServer(h)
	s.Listener.Close()
	s.Listener = listen(t)
	s.Start()
	t.Cleanup(s.Close)
	return s
}

func mustURL(t testing.TB, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// gate is a Fiber app on 127.0.0.1 configured with ServerConfig whose only
// handler forwards every request, the way the gateway does.
type gate struct {
	URL string
	fw  *forwarder.Forwarder

	mu   sync.Mutex
	errs []error
	// forwardErr receives every non-nil Forward error, when set.
	forwardErr chan error
}

type gateOptions struct {
	fw     forwarder.Options
	target *url.URL
	// edit adjusts the Request the handler builds.
	edit func(c *fiber.Ctx, r *forwarder.Request)
}

func startGate(t testing.TB, o gateOptions) *gate {
	t.Helper()
	fw := forwarder.New(o.fw)
	t.Cleanup(fw.Close)
	g := &gate{fw: fw, forwardErr: make(chan error, 16)}
	cfg := fiber.Config{DisableStartupMessage: true, BodyLimit: -1}
	forwarder.ServerConfig(&cfg)
	app := fiber.New(cfg)
	app.Use(func(c *fiber.Ctx) error {
		r := forwarder.Request{
			Target: o.target,
			Path:   string(c.Context().URI().Path()),
		}
		if o.edit != nil {
			o.edit(c, &r)
		}
		err := fw.Forward(c.Context(), r)
		if err == nil {
			return nil
		}
		if tb, ok := t.(interface{ Logf(string, ...any) }); ok {
			tb.Logf("Forward: %v", err)
		}
		select {
		case g.forwardErr <- err:
		default:
		}
		switch {
		case errors.Is(err, forwarder.ErrTooLarge):
			return c.Status(http.StatusRequestEntityTooLarge).SendString("gate: too large")
		case errors.Is(err, forwarder.ErrTimeout):
			return c.Status(http.StatusGatewayTimeout).SendString("gate: timeout")
		case errors.Is(err, forwarder.ErrBusy):
			return c.Status(http.StatusServiceUnavailable).SendString("gate: busy")
		case errors.Is(err, forwarder.ErrClientGone):
			return nil
		}
		return c.Status(http.StatusBadGateway).SendString("gate: unreachable")
	})
	ln := listen(t)
	go func() { _ = app.Listener(ln) }()
	t.Cleanup(func() { _ = app.ShutdownWithTimeout(2 * time.Second) })
	g.URL = "http://" + ln.Addr().String()
	return g
}

// client is a plain HTTP client with its own connections.
func client(t testing.TB) *http.Client {
	t.Helper()
	tr := &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 16}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 60 * time.Second}
}

func get(t testing.TB, c *http.Client, u string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// rawExchange writes req on a new connection and reads one response head
// and, given its framing, the body as net/http parses it; the head is
// returned verbatim so tests can see exactly which fields crossed.
func rawExchange(t testing.TB, addr, req string) (head string, resp *http.Response, body string) {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(addr, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	var rec recorder
	br := bufio.NewReader(io.TeeReader(c, &rec))
	resp, err = http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	headLen := len(rec.b) - br.Buffered()
	raw := string(rec.b[:headLen])
	if i := strings.Index(raw, "\r\n\r\n"); i >= 0 {
		raw = raw[:i+4]
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return raw, resp, string(b)
}

type recorder struct{ b []byte }

func (r *recorder) Write(p []byte) (int, error) { r.b = append(r.b, p...); return len(p), nil }

// pattern is a deterministic, cheap, incompressible-enough byte stream of
// n bytes; its sha256 is computed while it is read.
type pattern struct {
	left int64
	x    uint64
	h    hashWriter
}

type hashWriter interface {
	io.Writer
	Sum([]byte) []byte
}

func newPattern(n int64) *pattern {
	return &pattern{left: n, x: 0x9E3779B97F4A7C15, h: sha256.New()}
}

func (p *pattern) Read(b []byte) (int, error) {
	if p.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(b)) > p.left {
		b = b[:p.left]
	}
	n := len(b) &^ 7
	if n == 0 {
		n = len(b)
		for i := range b {
			b[i] = byte(p.x >> (8 * (i % 8)))
		}
	} else {
		for i := 0; i < n; i += 8 {
			p.x ^= p.x << 13
			p.x ^= p.x >> 7
			p.x ^= p.x << 17
			v := p.x
			b[i], b[i+1], b[i+2], b[i+3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
			b[i+4], b[i+5], b[i+6], b[i+7] = byte(v>>32), byte(v>>40), byte(v>>48), byte(v>>56)
		}
	}
	p.left -= int64(n)
	p.h.Write(b[:n])
	return n, nil
}

// waitFor polls cond until it holds or d passed.
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return cond()
}

func ctxWithCancel(t testing.TB) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return ctx, cancel
}

func httptestTLS(t testing.TB, h http.Handler) *httptest.Server {
	t.Helper()
	s := httptest.NewUnstartedServer(h)
	s.Listener.Close()
	s.Listener = listen(t)
	s.StartTLS()
	t.Cleanup(s.Close)
	return s
}

// funcHooks are forwarder.Hooks made of optional funcs.
type funcHooks struct {
	header   func(*fasthttp.RequestHeader)
	response func(*fasthttp.ResponseHeader)
	done     func(bool)
}

func (h funcHooks) RequestHeader(r *fasthttp.RequestHeader) {
	if h.header != nil {
		h.header(r)
	}
}

func (h funcHooks) ResponseHeader(r *fasthttp.ResponseHeader) {
	if h.response != nil {
		h.response(r)
	}
}

func (h funcHooks) Done(complete bool) {
	if h.done != nil {
		h.done(complete)
	}
}
