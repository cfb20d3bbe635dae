package gateway

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"

	"gatehouse/access"
	"gatehouse/authstore"
	"gatehouse/framing"
	"gatehouse/mailer"
	"gatehouse/pages"
	"gatehouse/session"
	"gatehouse/signin"
)

// The benchmarks compare Gatehouse with a bare httputil.ReverseProxy and
// with the upstream answered directly. BenchmarkHotPath sends requests over
// in-memory connections to the gateway (a fasthttp upstream on loopback
// answers at once), so mostly the gateway's own cost (and its allocations)
// remains; BenchmarkLoopback goes through real loopback sockets end to end.
// The load test with wrk against the real binary, side by side with nginx,
// is bench/run.sh.

// cannedUpstream answers every request at once with a small body.
func cannedUpstream(tb testing.TB) *url.URL {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		ctx.SetContentType("text/plain")
		ctx.SetBodyString("hello, world\n")
	}}
	go func() { _ = srv.Serve(ln) }()
	tb.Cleanup(func() { _ = srv.Shutdown() })
	u, _ := url.Parse("http://" + ln.Addr().String())
	return u
}

// processCPU is the CPU time this process has used, user and system.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// measureCPU reports the process CPU time per operation next to ns/op: on
// a shared, busy machine wall time per operation swings with the load,
// while CPU time per operation stays put.
func measureCPU(b *testing.B) func() {
	start := processCPU()
	return func() {
		b.ReportMetric(float64(processCPU()-start)/float64(b.N), "cpu-ns/op")
	}
}

// benchServer is a gateway with a real SQLite store, as the tests use.
func benchServer(tb testing.TB, up *url.URL, logger bool, edit func(*Options)) (*Server, string) {
	tb.Helper()
	ctx := context.Background()
	st, err := authstore.Open(ctx, authstore.Options{Driver: "sqlite", DSN: filepath.Join(tb.TempDir(), "bench.db")})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = st.Close() })
	if err := st.Migrate(ctx); err != nil {
		tb.Fatal(err)
	}
	p, err := pages.New(pages.Options{AppName: "Gatehouse", AccentColor: "#2563eb", DefaultLanguage: "en", Prefix: Prefix})
	if err != nil {
		tb.Fatal(err)
	}
	pub, _ := url.Parse("http://gate.test")
	opts := Options{
		PublicURL: pub,
		Upstream:  up,
		Session:   session.Settings{CookieName: "gatehouse_session", Lifetime: 168 * time.Hour, IdleTimeout: 24 * time.Hour},
		Settings: Settings{
			Rules:         []access.Rule{{Paths: []string{"/public/**"}, Policy: access.PolicyPublic}},
			DefaultPolicy: access.PolicyAuthenticated,
			Signup:        access.Signup{Open: true},
			OTP: signin.OTP{Length: 6, TTL: 5 * time.Minute, MaxAttempts: 5, MaxFailuresPerHour: 100,
				RateWindow: 15 * time.Minute, PerAddress: 5, PerIP: 30},
			Mailer: mailer.NewLog(io.Discard),
			Pages:  p,
		},
		Store:           st,
		Secret:          []byte("0123456789abcdef0123456789abcdef"),
		SessionCacheTTL: time.Hour,
	}
	if logger {
		// The production shape: one text line per request.
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if edit != nil {
		edit(&opts)
	}
	s, err := New(opts)
	if err != nil {
		tb.Fatal(err)
	}
	token, _, err := s.sessions.Start(ctx, "bench@example.com", "127.0.0.1", "bench")
	if err != nil {
		tb.Fatal(err)
	}
	return s, s.cookie + "=" + token
}

// browserHeaders are what a browser sends with a page's script or API call.
func browserHeaders(h *fasthttp.RequestHeader, cookie string) {
	h.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36")
	h.Set("Accept", "application/json, text/plain, */*")
	h.Set("Accept-Language", "en-US,en;q=0.9,ko;q=0.8")
	h.Set("Accept-Encoding", "gzip, deflate, br, zstd")
	h.Set("Referer", "http://gate.test/app")
	h.Set("Sec-Fetch-Dest", "empty")
	h.Set("Sec-Fetch-Mode", "cors")
	h.Set("Sec-Fetch-Site", "same-origin")
	if cookie != "" {
		h.Set("Cookie", "theme=dark; "+cookie)
	}
}

// BenchmarkHotPath measures one request through the gateway over
// in-memory client connections, against the same client talking to the
// upstream directly.
func BenchmarkHotPath(b *testing.B) {
	up := cannedUpstream(b)
	gw, cookie := benchServer(b, up, true, nil)
	ln := fasthttputil.NewInmemoryListener()
	done := make(chan struct{})
	go func() { defer close(done); _ = gw.Serve(framing.Guard(ln)) }()
	b.Cleanup(func() { _ = gw.Close(); <-done })
	viaGateway := &fasthttp.Client{Dial: func(string) (net.Conn, error) { return ln.Dial() }, MaxConnsPerHost: 1024}
	direct := &fasthttp.Client{MaxConnsPerHost: 1024}
	for _, bc := range []struct {
		name   string
		c      *fasthttp.Client
		url    string
		cookie string
	}{
		{"direct", direct, up.String() + "/", ""},
		{"public", viaGateway, "http://gate.test/public/x", ""},
		{"authenticated", viaGateway, "http://gate.test/app", cookie},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			defer measureCPU(b)()
			b.RunParallel(func(pb *testing.PB) {
				req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
				defer fasthttp.ReleaseRequest(req)
				defer fasthttp.ReleaseResponse(resp)
				for pb.Next() {
					req.Reset()
					req.SetRequestURI(bc.url)
					browserHeaders(&req.Header, bc.cookie)
					if err := bc.c.Do(req, resp); err != nil {
						b.Fatal(err)
					}
					if resp.StatusCode() != http.StatusOK {
						b.Fatalf("status %d", resp.StatusCode())
					}
				}
			})
		})
	}
}

// BenchmarkLoopback measures requests over real loopback sockets: direct to
// the upstream, through a bare ReverseProxy, and through Gatehouse.
func BenchmarkLoopback(b *testing.B) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "hello, world\n")
	}))
	defer upstream.Close()
	up, _ := url.Parse(upstream.URL)
	bare := httptest.NewServer(&httputil.ReverseProxy{
		Rewrite:   func(pr *httputil.ProxyRequest) { pr.SetURL(up); pr.SetXForwarded() },
		Transport: &http.Transport{MaxIdleConnsPerHost: 512},
	})
	defer bare.Close()
	gw, cookie := benchServer(b, up, true, nil)
	gwURL := serve(b, gw)

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 512, DialContext: (&net.Dialer{}).DialContext}}
	defer client.CloseIdleConnections()
	for _, bc := range []struct {
		name, url, cookie string
	}{
		{"direct", upstream.URL + "/", ""},
		{"bare", bare.URL + "/", ""},
		{"public", gwURL + "/public/x", ""},
		{"authenticated", gwURL + "/app", cookie},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			defer measureCPU(b)()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req, _ := http.NewRequest(http.MethodGet, bc.url, nil)
					if bc.cookie != "" {
						req.Header.Set("Cookie", bc.cookie)
					}
					resp, err := client.Do(req)
					if err != nil {
						b.Fatal(err)
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					_ = resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						b.Fatalf("status %d", resp.StatusCode)
					}
				}
			})
		})
	}
}

// BenchmarkForwardAuth measures /.gatehouse/auth as nginx's auth_request
// asks it, over a real loopback connection from a trusted proxy: the whole
// cost of Gatehouse in the forward-auth deployment.
func BenchmarkForwardAuth(b *testing.B) {
	up := cannedUpstream(b)
	gw, cookie := benchServer(b, up, true, func(o *Options) {
		o.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	})
	base := serve(b, gw)
	c := &fasthttp.Client{MaxConnsPerHost: 1024}
	b.ReportAllocs()
	defer measureCPU(b)()
	b.RunParallel(func(pb *testing.PB) {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		for pb.Next() {
			req.Reset()
			req.SetRequestURI(base + "/.gatehouse/auth")
			browserHeaders(&req.Header, cookie)
			req.Header.Set("X-Original-URL", "http://gate.test/app?page=2")
			req.Header.Set("X-Original-Method", "GET")
			req.Header.Set("X-Forwarded-For", "203.0.113.7")
			req.Header.Set("X-Forwarded-Proto", "http")
			if err := c.Do(req, resp); err != nil {
				b.Fatal(err)
			}
			if resp.StatusCode() != http.StatusOK {
				b.Fatalf("status %d: %s", resp.StatusCode(), resp.Body())
			}
		}
	})
}
