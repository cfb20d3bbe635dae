package forwarder_test

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"gatehouse/forwarder"
)

// seen records what the upstream received.
type seen struct {
	mu     sync.Mutex
	header http.Header
	host   string
	uri    string
	proto  string
	body   string
	trail  http.Header
}

func (s *seen) record(r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.header, s.host, s.uri, s.proto, s.body = r.Header.Clone(), r.Host, r.RequestURI, r.Proto, string(b)
	s.trail = r.Trailer.Clone()
}

func (s *seen) get() seen {
	s.mu.Lock()
	defer s.mu.Unlock()
	return seen{header: s.header, host: s.host, uri: s.uri, proto: s.proto, body: s.body, trail: s.trail}
}

func TestRequestHeaders(t *testing.T) {
	var got seen
	up := upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.record(r)
		w.Header()["Date"] = nil
		w.Header()["Content-Type"] = nil
		_, _ = io.WriteString(w, "ok")
	}))
	target := mustURL(t, up.URL+"/base")
	g := startGate(t, gateOptions{target: target, edit: func(c *fiber.Ctx, r *forwarder.Request) {
		r.Via = true
		r.PreserveHost = c.Get("X-Test-Preserve") == "1"
		r.Hooks = funcHooks{header: func(h *fasthttp.RequestHeader) {
			h.Del("X-Auth-Request-Email")
			h.Set("X-Auth-Request-Email", "real@example.com")
		}}
	}})

	req := "GET /a%20b/caf%C3%A9?x=%2F&y=1+2&y=3 HTTP/1.1\r\n" +
		"Host: app.example\r\n" +
		"Connection: keep-alive, X-Auth-Request-Email, X-Private\r\n" +
		"Keep-Alive: timeout=5\r\n" +
		"Proxy-Connection: keep-alive\r\n" +
		"Proxy-Authorization: Basic Zm9vOmJhcg==\r\n" +
		"TE: trailers, deflate\r\n" +
		"Upgrade: foo\r\n" +
		"X-Private: secret\r\n" +
		"X-Auth-Request-Email: spoof@example.com\r\n" +
		"X-Multi: one\r\n" +
		"X-Multi: two\r\n" +
		"X-Multi: three\r\n" +
		"\r\n"
	_, resp, body := rawExchange(t, g.URL, req)
	if resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("answer %d %q", resp.StatusCode, body)
	}
	s := got.get()
	h := s.header
	for _, name := range []string{"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authorization", "Upgrade", "X-Private"} {
		if v, ok := h[name]; ok {
			t.Errorf("upstream got hop-by-hop %s: %q", name, v)
		}
	}
	if v := h.Values("X-Auth-Request-Email"); len(v) != 1 || v[0] != "real@example.com" {
		t.Errorf("X-Auth-Request-Email = %q, want the value Header set", v)
	}
	if v := h.Get("Te"); v != "trailers" {
		t.Errorf("TE = %q, want trailers", v)
	}
	if v := h.Values("X-Multi"); strings.Join(v, "|") != "one|two|three" {
		t.Errorf("X-Multi = %q", v)
	}
	if v := h.Get("Via"); v != "1.1 gatehouse" {
		t.Errorf("Via = %q", v)
	}
	if s.host != target.Host {
		t.Errorf("Host = %q, want %q", s.host, target.Host)
	}
	if want := "/base/a%20b/caf%C3%A9?x=%2F&y=1+2&y=3"; s.uri != want {
		t.Errorf("request URI = %q, want %q", s.uri, want)
	}
	for _, name := range []string{"User-Agent", "Content-Type", "Content-Length"} {
		if v, ok := h[name]; ok {
			t.Errorf("upstream got invented %s: %q", name, v)
		}
	}

	// PreserveHost, and an HTTP/1.0 client.
	_, resp, _ = rawExchange(t, g.URL, "GET /x HTTP/1.0\r\nHost: app.example\r\nX-Test-Preserve: 1\r\n\r\n")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	s = got.get()
	if s.host != "app.example" {
		t.Errorf("preserved Host = %q", s.host)
	}
	if v := s.header.Get("Via"); v != "1.0 gatehouse" {
		t.Errorf("Via for HTTP/1.0 client = %q", v)
	}
	if s.proto != "HTTP/1.1" {
		t.Errorf("upstream request proto = %q, want HTTP/1.1", s.proto)
	}
}

func TestResponseHeaders(t *testing.T) {
	up := upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h["Date"] = nil
		h["Content-Type"] = nil
		h["Connection"] = []string{"X-Hop"}
		h["X-Hop"] = []string{"drop me"}
		h["Keep-Alive"] = []string{"timeout=9"}
		h["Proxy-Authenticate"] = []string{"Basic"}
		h["Upgrade"] = []string{"foo"}
		h["Set-Cookie"] = []string{"a=1; Path=/", "a=2; Path=/sub", "b=3"}
		h["X-Multi"] = []string{"one", "two"}
		_, _ = io.WriteString(w, "hello")
	}))
	g := startGate(t, gateOptions{target: mustURL(t, up.URL), edit: func(c *fiber.Ctx, r *forwarder.Request) {
		r.Hooks = funcHooks{response: func(h *fasthttp.ResponseHeader) { h.Set("X-Edited", "yes") }}
	}})
	head, resp, body := rawExchange(t, g.URL, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	if body != "hello" {
		t.Fatalf("body %q", body)
	}
	for _, name := range []string{"X-Hop", "Keep-Alive", "Proxy-Authenticate", "Upgrade", "Content-Type", "Date", "Server"} {
		if v, ok := resp.Header[name]; ok {
			t.Errorf("client got %s: %q\n%s", name, v, head)
		}
	}
	if v := resp.Header.Values("Set-Cookie"); strings.Join(v, "|") != "a=1; Path=/|a=2; Path=/sub|b=3" {
		t.Errorf("Set-Cookie lines = %q\n%s", v, head)
	}
	if strings.Count(head, "Set-Cookie:") != 3 {
		t.Errorf("Set-Cookie not on separate lines:\n%s", head)
	}
	if v := resp.Header.Values("X-Multi"); strings.Join(v, "|") != "one|two" {
		t.Errorf("X-Multi = %q", v)
	}
	if resp.Header.Get("X-Edited") != "yes" {
		t.Errorf("Response edit missing:\n%s", head)
	}
	if resp.Close {
		t.Errorf("client connection closed although the upstream only named X-Hop in Connection")
	}

	// An upstream Date passes through unchanged.
	up2 := upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Date", "Mon, 02 Jan 2006 15:04:05 GMT")
		w.Header().Set("Content-Type", "application/x-test")
	}))
	g2 := startGate(t, gateOptions{target: mustURL(t, up2.URL)})
	_, resp, _ = rawExchange(t, g2.URL, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	if v := resp.Header.Get("Date"); v != "Mon, 02 Jan 2006 15:04:05 GMT" {
		t.Errorf("Date = %q", v)
	}
	if v := resp.Header.Get("Content-Type"); v != "application/x-test" {
		t.Errorf("Content-Type = %q", v)
	}
}

func TestTrailers(t *testing.T) {
	var got seen
	up := upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.record(r)
		// fasthttp itself refuses a message that announces or carries
		// trailers such as Authorization, Cookie, Host, Content-* or
		// X-Forwarded-*; those the forwarder must drop are the others.
		w.Header().Set("Trailer", "X-Checksum, X-Auth-Request-User, Remote-Email")
		w.WriteHeader(200)
		_, _ = io.WriteString(w, "part one ")
		w.(http.Flusher).Flush()
		_, _ = io.WriteString(w, "part two")
		w.Header().Set("X-Checksum", "abc123")
		w.Header().Set("X-Auth-Request-User", "mallory")
		w.Header().Set("Remote-Email", "mallory@example.com")
	}))
	g := startGate(t, gateOptions{target: mustURL(t, up.URL)})

	req, _ := http.NewRequest(http.MethodPost, g.URL+"/t", io.MultiReader(strings.NewReader("req "), strings.NewReader("body")))
	req.ContentLength = -1
	req.Trailer = http.Header{"X-Req-Sum": nil, "X-Auth-Request-Email": nil, "Remote-User": nil}
	req.Header.Set("Te", "trailers")
	body := req.Body
	req.Body = io.NopCloser(readerFunc(func(p []byte) (int, error) {
		n, err := body.Read(p)
		if err == io.EOF {
			req.Trailer.Set("X-Req-Sum", "s1")
			req.Trailer.Set("X-Auth-Request-Email", "spoof@example.com")
			req.Trailer.Set("Remote-User", "spoof")
		}
		return n, err
	}))
	resp, err := client(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != "part one part two" {
		t.Fatalf("body %q", b)
	}
	if v := resp.Trailer.Get("X-Checksum"); v != "abc123" {
		t.Errorf("response trailer X-Checksum = %q (trailers %v)", v, resp.Trailer)
	}
	for _, name := range []string{"X-Auth-Request-User", "Remote-Email"} {
		if v := resp.Trailer.Get(name); v != "" {
			t.Errorf("forbidden response trailer %s = %q crossed", name, v)
		}
	}
	s := got.get()
	if s.body != "req body" {
		t.Errorf("upstream body %q", s.body)
	}
	if v := s.trail.Get("X-Req-Sum"); v != "s1" {
		t.Errorf("request trailer X-Req-Sum = %q (trailers %v)", v, s.trail)
	}
	for _, name := range []string{"X-Auth-Request-Email", "Remote-User"} {
		if v := s.trail.Get(name); v != "" {
			t.Errorf("forbidden request trailer %s = %q crossed", name, v)
		}
	}
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

func TestErrors(t *testing.T) {
	slow := make(chan struct{})
	up := upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/late":
			time.Sleep(800 * time.Millisecond)
		case "/hold":
			// Headers now, the body never: the connection stays taken
			// past HeaderTimeout.
			w.WriteHeader(200)
			w.(http.Flusher).Flush()
			select {
			case <-slow:
			case <-r.Context().Done():
			}
		}
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, "upstream")
	}))
	// Registered after upstream, so it runs first and frees /hold.
	t.Cleanup(func() { close(slow) })
	refused := listen(t)
	refusedURL := "http://" + refused.Addr().String()
	refused.Close()

	g := startGate(t, gateOptions{
		fw:     forwarder.Options{HeaderTimeout: 400 * time.Millisecond, MaxConnsPerHost: 1, MaxConnWait: 200 * time.Millisecond},
		target: mustURL(t, up.URL),
		edit: func(c *fiber.Ctx, r *forwarder.Request) {
			r.MaxBody = 10
			if c.Path() == "/refused" {
				r.Target = mustURL(t, refusedURL)
			}
		},
	})
	c := client(t)
	cases := []struct {
		name, method, path, body string
		chunked                  bool
		want                     int
		wantErr                  error
	}{
		{name: "refused", path: "/refused", want: 502, wantErr: forwarder.ErrUnreachable},
		{name: "header timeout", path: "/late", want: 504, wantErr: forwarder.ErrTimeout},
		{name: "too large by length", method: "POST", path: "/p", body: strings.Repeat("x", 11), want: 413, wantErr: forwarder.ErrTooLarge},
		{name: "too large chunked", method: "POST", path: "/p", body: strings.Repeat("x", 100), chunked: true, want: 413, wantErr: forwarder.ErrTooLarge},
		{name: "within limit", method: "POST", path: "/p", body: "0123456789", chunked: true, want: 200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			drain(g.forwardErr)
			method := tc.method
			if method == "" {
				method = "GET"
			}
			var body io.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
				if tc.chunked {
					body = io.MultiReader(body)
				}
			}
			req, _ := http.NewRequest(method, g.URL+tc.path, body)
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d %q, want %d", resp.StatusCode, b, tc.want)
			}
			if tc.wantErr == nil {
				return
			}
			if !strings.HasPrefix(string(b), "gate: ") {
				t.Errorf("body %q: the gate's own page should be the only answer", b)
			}
			select {
			case err := <-g.forwardErr:
				if !errors.Is(err, tc.wantErr) {
					t.Errorf("Forward error %v, want %v", err, tc.wantErr)
				}
			case <-time.After(5 * time.Second):
				t.Errorf("no Forward error recorded")
			}
		})
	}

	t.Run("busy", func(t *testing.T) {
		held := make(chan *http.Response, 1)
		go func() {
			resp, err := client(t).Get(g.URL + "/hold")
			if err == nil {
				held <- resp
			}
		}()
		var resp *http.Response
		select {
		case resp = <-held: // /hold has the only connection
		case <-time.After(10 * time.Second):
			t.Fatal("/hold did not start")
		}
		defer resp.Body.Close()
		quick, b := get(t, c, g.URL+"/quick")
		if quick.StatusCode != 503 {
			t.Fatalf("status %d %q, want 503", quick.StatusCode, b)
		}
	})
}

func drain(c chan error) {
	for {
		select {
		case <-c:
		default:
			return
		}
	}
}

func TestTLSUpstream(t *testing.T) {
	up := httptestTLS(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "tls %v", r.TLS != nil)
	}))
	pool := x509.NewCertPool()
	pool.AddCert(up.Certificate())
	g := startGate(t, gateOptions{fw: forwarder.Options{RootCAs: pool}, target: mustURL(t, up.URL)})
	for range 3 {
		resp, body := get(t, client(t), g.URL+"/")
		if resp.StatusCode != 200 || body != "tls true" {
			t.Fatalf("answer %d %q", resp.StatusCode, body)
		}
	}

	// Without the test CA the certificate is not trusted: never skipped.
	g2 := startGate(t, gateOptions{target: mustURL(t, up.URL)})
	resp, _ := get(t, client(t), g2.URL+"/")
	if resp.StatusCode != 502 {
		t.Fatalf("untrusted upstream: status %d, want 502", resp.StatusCode)
	}
}

func TestExpectContinue(t *testing.T) {
	var got seen
	up := upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.record(r)
		_, _ = io.WriteString(w, "ok")
	}))
	g := startGate(t, gateOptions{target: mustURL(t, up.URL)})
	tr := &http.Transport{ExpectContinueTimeout: 10 * time.Second}
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequest("PUT", g.URL+"/e", strings.NewReader("expected body"))
	req.Header.Set("Expect", "100-continue")
	start := time.Now()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if time.Since(start) > 8*time.Second {
		t.Errorf("client waited for its ExpectContinueTimeout: no 100 Continue")
	}
	if s := got.get(); s.body != "expected body" {
		t.Errorf("upstream body %q", s.body)
	}
}
