package gateway

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// rawRequest writes a request byte for byte, so tests control exactly which
// headers and spellings the gateway sees, and reads the response.
func rawRequest(t *testing.T, h *harness, req string) (*http.Response, string) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(h.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}

func TestHopByHopHeadersAreRemovedBothWays(t *testing.T) {
	h := newHarness(t)
	h.up.Handle = func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Connection", "X-Upstream-Hop")
		hd.Set("X-Upstream-Hop", "secret-to-the-hop")
		hd.Set("Keep-Alive", "timeout=5")
		hd.Set("Proxy-Authenticate", "Basic")
		hd.Set("X-Upstream-End", "kept")
		hd.Set("X-Request-Id", r.Header.Get("X-Request-Id")) // echoed, as many apps do
		_, _ = io.WriteString(w, "ok")
	}
	b := h.browser()
	b.signIn("hop@example.com", "/")
	host := strings.TrimPrefix(h.URL, "http://")
	resp, body := rawRequest(t, h, "GET /app HTTP/1.1\r\nHost: "+host+"\r\n"+
		"Cookie: "+h.srv.cookie+"="+b.sessionCookie()+"\r\n"+
		// Everything the gateway sets upstream is named here: none of it
		// may be removed by the client's Connection header.
		"Connection: keep-alive, X-Client-Hop, X-Auth-Request-Email, Remote-User, X-Forwarded-For, X-Forwarded-Proto, X-Forwarded-Host, X-Real-Ip, X-Request-Id\r\n"+
		"X-Client-Hop: dropped\r\n"+
		"Keep-Alive: timeout=99\r\n"+
		"Proxy-Authorization: Basic Zm9vOmJhcg==\r\n"+
		"Proxy-Connection: keep-alive\r\n"+
		"X-Client-End: kept\r\n"+
		"\r\n")
	if resp.StatusCode != http.StatusOK || body != "ok" {
		t.Fatalf("status %d body %q", resp.StatusCode, body)
	}
	up := h.up.Last(t)
	for _, k := range []string{"X-Client-Hop", "Keep-Alive", "Proxy-Authorization", "Proxy-Connection"} {
		if v := up.Header.Values(k); len(v) > 0 {
			t.Errorf("hop-by-hop %s reached the upstream: %q", k, v)
		}
	}
	if v := up.Header.Get("X-Client-End"); v != "kept" {
		t.Errorf("end-to-end X-Client-End = %q", v)
	}
	gatewayHeaders := map[string]string{
		"X-Auth-Request-Email": "hop@example.com",
		"Remote-User":          "hop@example.com",
		"X-Forwarded-For":      "127.0.0.1",
		"X-Forwarded-Proto":    "http",
		"X-Forwarded-Host":     host,
		"X-Real-Ip":            "127.0.0.1",
	}
	for k, want := range gatewayHeaders {
		if v := up.Header.Values(k); len(v) != 1 || v[0] != want {
			t.Errorf("gateway header %s = %q, want %q", k, v, want)
		}
	}
	if v := up.Header.Get("X-Request-Id"); v == "" {
		t.Error("X-Request-Id was removed by the client's Connection header")
	}

	for _, k := range []string{"X-Upstream-Hop", "Keep-Alive", "Proxy-Authenticate"} {
		if v := resp.Header.Values(k); len(v) > 0 {
			t.Errorf("hop-by-hop %s reached the client: %q", k, v)
		}
	}
	if v := resp.Header.Get("X-Upstream-End"); v != "kept" {
		t.Errorf("end-to-end X-Upstream-End = %q", v)
	}
	if v := resp.Header.Values("X-Request-Id"); len(v) != 1 || v[0] != up.Header.Get("X-Request-Id") {
		t.Errorf("response X-Request-Id = %q, want the one id sent upstream %q", v, up.Header.Get("X-Request-Id"))
	}
}

func TestHostHandling(t *testing.T) {
	for _, tc := range []struct {
		name     string
		preserve bool
		wantHost func(h *harness) string
	}{
		{"upstream host by default", false, func(h *harness) string { return strings.TrimPrefix(h.up.URL, "http://") }},
		{"client host with preserve_host", true, func(*harness) string { return "app.example.com" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, func(o *Options) { o.Settings.PreserveHost = tc.preserve })
			resp, _ := rawRequest(t, h, "GET /public/host HTTP/1.1\r\nHost: app.example.com\r\n\r\n")
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d", resp.StatusCode)
			}
			up := h.up.Last(t)
			if up.Host != tc.wantHost(h) {
				t.Errorf("upstream Host = %q, want %q", up.Host, tc.wantHost(h))
			}
			if v := up.Header.Get("X-Forwarded-Host"); v != "app.example.com" {
				t.Errorf("X-Forwarded-Host = %q", v)
			}
		})
	}
}

func TestDuplicateHeadersArePreserved(t *testing.T) {
	h := newHarness(t)
	h.up.Handle = func(w http.ResponseWriter, r *http.Request) {
		w.Header()["X-Multi"] = []string{"one", "two", "three"}
		w.Header()["Set-Cookie"] = []string{"a=1; Path=/", "b=2; Path=/", "c=3; Path=/"}
		w.Header()["Link"] = []string{"</a.css>; rel=preload", "</b.js>; rel=preload"}
		_, _ = io.WriteString(w, "ok")
	}
	req, _ := http.NewRequest(http.MethodGet, h.URL+"/public/dups", nil)
	req.Header["X-Multi"] = []string{"one", "two", "three"}
	req.Header["Accept-Language"] = []string{"ko", "en;q=0.5"}
	req.Header["Cookie"] = []string{"a=1", "b=2"}
	resp := h.browser().do(req)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	up := h.up.Last(t)
	for k, want := range map[string][]string{
		"X-Multi":         {"one", "two", "three"},
		"Accept-Language": {"ko", "en;q=0.5"},
	} {
		if got := up.Header.Values(k); strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("upstream %s = %q, want %q in order", k, got, want)
		}
	}
	if got := strings.Join(up.Header.Values("Cookie"), "; "); got != "a=1; b=2" {
		t.Errorf("upstream Cookie = %q", got)
	}
	for k, n := range map[string]int{"X-Multi": 3, "Set-Cookie": 3, "Link": 2} {
		if got := resp.Header.Values(k); len(got) != n {
			t.Errorf("client %s = %q, want %d values", k, got, n)
		}
	}
}

func TestTrailersArePreserved(t *testing.T) {
	h := newHarness(t)
	h.up.Handle = func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Trailer", "X-Checksum, X-Rows")
		w.Header().Set("X-Req-Trailer", r.Trailer.Get("X-Client-Sum"))
		var names []string
		for k := range r.Trailer {
			names = append(names, k)
		}
		slices.Sort(names)
		w.Header().Set("X-Req-Trailer-Names", strings.Join(names, ","))
		w.Header().Set("X-Req-Te", r.Header.Get("Te"))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(body)
		_ = http.NewResponseController(w).Flush()
		w.Header().Set("X-Checksum", "abc123")
		w.Header().Set("X-Rows", "42")
		w.Header().Set(http.TrailerPrefix+"X-Undeclared", "late")
	}
	req, _ := http.NewRequest(http.MethodPost, h.URL+"/public/trailers", io.NopCloser(strings.NewReader("payload")))
	req.ContentLength = -1
	req.Trailer = http.Header{
		"X-Client-Sum": {"client-999"},
		// Trailers the gateway owns never reach the upstream: a server
		// that merges trailers into headers would believe them.
		"X-Auth-Request-Email": {"mallory@evil.com"},
		"Remote-User":          {"mallory@evil.com"},
	}
	req.Header.Set("Te", "trailers")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if string(body) != "payload" {
		t.Fatalf("body %q", body)
	}
	if v := resp.Header.Get("X-Req-Trailer"); v != "client-999" {
		t.Errorf("request trailer at the upstream = %q", v)
	}
	if v := resp.Header.Get("X-Req-Trailer-Names"); v != "X-Client-Sum" {
		t.Errorf("request trailers at the upstream = %q, want only X-Client-Sum", v)
	}
	if v := resp.Header.Get("X-Req-Te"); v != "trailers" {
		t.Errorf("TE at the upstream = %q", v)
	}
	for k, want := range map[string]string{"X-Checksum": "abc123", "X-Rows": "42", "X-Undeclared": "late"} {
		if v := resp.Trailer.Get(k); v != want {
			t.Errorf("response trailer %s = %q, want %q", k, v, want)
		}
	}
}

// A request that announces trailers RFC 9110 §6.5.1 forbids (credentials,
// framing, forwarding facts) is refused before any byte reaches the app,
// rather than forwarded with the trailer dropped: the sender is either
// broken or trying to add what it could not send as a header.
func TestForbiddenRequestTrailersAreRefused(t *testing.T) {
	h := newHarness(t)
	for _, name := range []string{"Authorization", "X-Forwarded-For", "X-Real-Ip", "Cookie", "Host"} {
		t.Run(name, func(t *testing.T) {
			before := h.up.Count()
			req, _ := http.NewRequest(http.MethodPost, h.URL+"/public/trailers", io.NopCloser(strings.NewReader("payload")))
			req.ContentLength = -1
			req.Trailer = http.Header{name: {"spoofed"}}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("status = %d, want 400: %.200s", resp.StatusCode, body)
			}
			if strings.Contains(string(body), "spoofed") {
				t.Fatalf("error echoes the trailer: %s", body)
			}
			if n := h.up.Count(); n != before {
				t.Fatalf("upstream saw %d requests, want none", n-before)
			}
		})
	}
}

func TestViaOnlyWhenConfigured(t *testing.T) {
	for _, tc := range []struct {
		name string
		via  bool
		want []string
	}{
		{"off by default", false, nil},
		{"on", true, []string{"1.1 gatehouse"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, func(o *Options) { o.Settings.Via = tc.via })
			resp := h.browser().get("/public/via")
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d", resp.StatusCode)
			}
			if got := h.up.Last(t).Header.Values("Via"); strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("upstream Via = %q, want %q", got, tc.want)
			}
			if got := resp.Header.Values("Via"); len(got) != 0 {
				t.Errorf("response Via = %q", got)
			}
		})
	}
}

func TestQueryAndPathReachUpstreamUnchanged(t *testing.T) {
	h := newHarness(t)
	for _, tc := range []struct {
		name, target, wantPath, wantQuery string
	}{
		{"plain", "/public/a/b?x=1&y=2", "/public/a/b", "x=1&y=2"},
		{"encoded query kept raw", "/public/q?redirect=%2F%2Fevil&sp=a+b%20c", "/public/q", "redirect=%2F%2Fevil&sp=a+b%20c"},
		{"repeated slashes collapsed", "/public//x///y", "/public/x/y", ""},
		{"encoded space", "/public/a%20b", "/public/a b", ""},
		{"percent-encoded letters", "/public/%61bc", "/public/abc", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, _ := rawRequest(t, h, "GET "+tc.target+" HTTP/1.1\r\nHost: gate.test\r\n\r\n")
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d", resp.StatusCode)
			}
			up := h.up.Last(t)
			if up.URL.Path != tc.wantPath || up.URL.RawQuery != tc.wantQuery {
				t.Errorf("upstream got %s ? %s, want %s ? %s", up.URL.Path, up.URL.RawQuery, tc.wantPath, tc.wantQuery)
			}
			if _, err := url.ParseQuery(up.URL.RawQuery); err != nil {
				t.Errorf("query no longer parses: %v", err)
			}
		})
	}
}

// TestSessionCookieNeverGoesUpstream covers every shape of Cookie header:
// the gateway's cookie is removed, every other cookie kept.
func TestSessionCookieNeverGoesUpstream(t *testing.T) {
	const name = "gatehouse_session"
	for _, tc := range []struct {
		name string
		in   []string
		want []string // the cookies left, in order; nil = no Cookie header
	}{
		{"alone", []string{"gatehouse_session=abc"}, nil},
		{"alone with blanks", []string{"  gatehouse_session=abc  "}, nil},
		{"empty value", []string{"gatehouse_session="}, nil},
		{"bare name", []string{"gatehouse_session"}, nil},
		{"first", []string{"gatehouse_session=abc; theme=dark"}, []string{"theme=dark"}},
		{"last", []string{"theme=dark; gatehouse_session=abc"}, []string{"theme=dark"}},
		{"last without space", []string{"theme=dark;gatehouse_session=abc"}, []string{"theme=dark"}},
		{"middle", []string{"a=1; gatehouse_session=abc; b=2"}, []string{"a=1", "b=2"}},
		{"twice", []string{"gatehouse_session=abc; gatehouse_session=def"}, nil},
		{"twice around another", []string{"gatehouse_session=abc; a=1; gatehouse_session=def"}, []string{"a=1"}},
		{"longer name kept", []string{"gatehouse_session_x=1; a=2"}, []string{"gatehouse_session_x=1", "a=2"}},
		{"longer name last kept", []string{"a=1; gatehouse_session_x=1"}, []string{"a=1", "gatehouse_session_x=1"}},
		{"prefixed name kept", []string{"xgatehouse_session=1"}, []string{"xgatehouse_session=1"}},
		{"blank before separator", []string{"gatehouse_session=abc ;a=1"}, []string{"a=1"}},
		{"other cookies only", []string{"a=1; b=2"}, []string{"a=1", "b=2"}},
		{"two lines", []string{"a=1", "gatehouse_session=abc; b=2"}, []string{"a=1", "b=2"}},
		{"two lines, cookie alone in one", []string{"gatehouse_session=abc", "b=2"}, []string{"b=2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var h fasthttp.RequestHeader
			for _, line := range tc.in {
				h.Add("Cookie", line)
			}
			dropSessionCookie(&h, name)
			var got []string
			for _, line := range h.PeekAll("Cookie") {
				for _, part := range strings.Split(string(line), ";") {
					if p := strings.TrimSpace(part); p != "" {
						got = append(got, p)
					}
				}
			}
			if strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Fatalf("cookies left %q, want %q", got, tc.want)
			}
			if tc.want == nil && h.Peek("Cookie") != nil {
				t.Fatalf("empty Cookie header %q left in place", h.Peek("Cookie"))
			}
		})
	}
}

// TestHeaderSizeLimit: big cookies from other apps on the same domain pass
// up to server.max_header_bytes (64 KiB by default) of request line and
// headers; a larger head is answered 431 and never forwarded.
func TestHeaderSizeLimit(t *testing.T) {
	for _, tc := range []struct {
		name        string
		limit       int
		pass, large int // header value bytes that pass, and that are too many
	}{
		{"default 64 KiB", 0, 60 << 10, 70 << 10},
		{"configured 8 KiB", 8 << 10, 7 << 10, 9 << 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, func(o *Options) { o.MaxHeaderBytes = tc.limit })
			cookies := func(total int) string {
				// Several cookies, as several apps would set them.
				var parts []string
				for i := 0; total > 0; i++ {
					n := min(total, 4000)
					parts = append(parts, fmt.Sprintf("app%d=%s", i, strings.Repeat("v", n)))
					total -= n
				}
				return strings.Join(parts, "; ")
			}
			req, _ := http.NewRequest(http.MethodGet, h.URL+"/public/big", nil)
			req.Header.Set("Cookie", cookies(tc.pass))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("%d bytes of cookies: status %d, want 200", tc.pass, resp.StatusCode)
			}
			if got := h.up.Last(t).Header.Get("Cookie"); got != cookies(tc.pass) {
				t.Fatalf("upstream got %d bytes of cookies, want %d", len(got), len(cookies(tc.pass)))
			}
			before := h.up.Count()
			req, _ = http.NewRequest(http.MethodGet, h.URL+"/public/big", nil)
			req.Header.Set("Cookie", cookies(tc.large))
			resp, err = http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
				t.Fatalf("%d bytes of cookies: status %d, want 431: %.200s", tc.large, resp.StatusCode, body)
			}
			if strings.Contains(string(body), "vvvv") {
				t.Fatal("the 431 echoes the request")
			}
			if h.up.Count() != before {
				t.Fatal("a head over the limit reached the upstream")
			}
		})
	}
}
