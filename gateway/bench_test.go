package gateway

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"gatehouse/authstore"
	"gatehouse/mailer"
	"gatehouse/pages"
)

// The benchmarks compare Gatehouse with a bare httputil.ReverseProxy doing
// the same work (with a buffer pool, as Gatehouse has: without one each
// request allocates a 32 KiB copy buffer, and the baseline would look
// slower than it need be). BenchmarkHotPath replaces the upstream with an in-memory
// answer so only the gateway's own cost (and its allocations) remains;
// BenchmarkLoopback goes through real loopback sockets end to end. The
// load test with wrk against the real binary is bench/run.sh.

// cannedTransport answers every request at once with a small body, so a
// benchmark measures the proxy and not the network.
type cannedTransport struct{}

func (cannedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		_ = r.Body.Close()
	}
	return &http.Response{
		StatusCode:    http.StatusOK,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        http.Header{"Content-Type": {"text/plain"}},
		Body:          io.NopCloser(strings.NewReader("hello, world\n")),
		ContentLength: 13,
		Request:       r,
	}, nil
}

// discardWriter is a ResponseWriter that keeps nothing but the header map,
// reset between requests.
type discardWriter struct {
	h      http.Header
	status int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) WriteHeader(code int)        { w.status = code }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) reset() {
	clear(w.h)
	w.status = 0
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
		Session:   SessionSettings{CookieName: "gatehouse_session", Lifetime: 168 * time.Hour, IdleTimeout: 24 * time.Hour},
		Settings: Settings{
			Rules:         []Rule{{Paths: []string{"/public/**"}, Policy: PolicyPublic}},
			DefaultPolicy: PolicyAuthenticated,
			Signup:        Signup{Open: true},
			OTP: OTPSettings{Length: 6, TTL: 5 * time.Minute, MaxAttempts: 5, MaxFailuresPerHour: 100,
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
	token, _, err := s.newSession(ctx, "bench@example.com", "127.0.0.1", "bench")
	if err != nil {
		tb.Fatal(err)
	}
	return s, s.cookie + "=" + token
}

func newBenchRequest(path, cookie string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, path, nil)
	r.RemoteAddr = "127.0.0.1:40000"
	r.Host = "gate.test"
	// What a browser sends with a page's script or API call.
	h := r.Header
	h.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36")
	h.Set("Accept", "application/json, text/plain, */*")
	h.Set("Accept-Language", "en-US,en;q=0.9,ko;q=0.8")
	h.Set("Accept-Encoding", "gzip, deflate, br, zstd")
	h.Set("Referer", "http://gate.test/app")
	h.Set("Connection", "keep-alive")
	h.Set("Sec-Fetch-Dest", "empty")
	h.Set("Sec-Fetch-Mode", "cors")
	h.Set("Sec-Fetch-Site", "same-origin")
	if cookie != "" {
		h.Set("Cookie", "theme=dark; "+cookie)
	}
	return r
}

// BenchmarkHotPath measures one request through the handler with the
// upstream answered in memory: the gateway's cost over a bare proxy.
func BenchmarkHotPath(b *testing.B) {
	up, _ := url.Parse("http://upstream.test")
	bare := &httputil.ReverseProxy{
		Rewrite:    func(pr *httputil.ProxyRequest) { pr.SetURL(up); pr.SetXForwarded() },
		Transport:  cannedTransport{},
		BufferPool: newBufferPool(),
	}
	gw, cookie := benchServer(b, up, true, func(o *Options) { o.UpstreamTransport = cannedTransport{} })
	for _, bc := range []struct {
		name   string
		h      http.Handler
		path   string
		cookie string
	}{
		{"bare", bare, "/", ""},
		{"public", gw, "/public/x", ""},
		{"authenticated", gw, "/app", cookie},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			defer measureCPU(b)()
			b.RunParallel(func(pb *testing.PB) {
				w := &discardWriter{h: make(http.Header)}
				for pb.Next() {
					w.reset()
					bc.h.ServeHTTP(w, newBenchRequest(bc.path, bc.cookie))
					if w.status != 0 && w.status != http.StatusOK {
						b.Fatalf("status %d", w.status)
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
		Rewrite:    func(pr *httputil.ProxyRequest) { pr.SetURL(up); pr.SetXForwarded() },
		Transport:  &http.Transport{MaxIdleConnsPerHost: 512},
		BufferPool: newBufferPool(),
	})
	defer bare.Close()
	gw, cookie := benchServer(b, up, true, nil)
	gws := httptest.NewServer(gw)
	defer gws.Close()

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 512, DialContext: (&net.Dialer{}).DialContext}}
	defer client.CloseIdleConnections()
	for _, bc := range []struct {
		name, url, cookie string
	}{
		{"direct", upstream.URL + "/", ""},
		{"bare", bare.URL + "/", ""},
		{"public", gws.URL + "/public/x", ""},
		{"authenticated", gws.URL + "/app", cookie},
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
