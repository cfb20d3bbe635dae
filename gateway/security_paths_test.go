package gateway

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"golang.org/x/text/unicode/norm"

	"gatehouse/access"
	"gatehouse/authstore"
	"gatehouse/mailer"
	"gatehouse/pages"
	"gatehouse/safeurl"
	"gatehouse/session"
	"gatehouse/signin"
)

// pathRules has one public rule of every kind (prefix glob, exact path,
// in-segment glob, method-restricted) and a deny rule; everything else needs
// a session.
func pathRules(o *Options) {
	o.Settings.Rules = []access.Rule{
		{Paths: []string{"/public/**"}, Policy: access.PolicyPublic},
		{Paths: []string{"/status"}, Policy: access.PolicyPublic},
		{Paths: []string{"/assets/*.css"}, Policy: access.PolicyPublic},
		{Paths: []string{"/feed"}, Methods: []string{"GET"}, Policy: access.PolicyPublic},
		{Paths: []string{"/internal/**"}, Policy: access.PolicyDeny},
	}
}

// bypassSpellings returns dozens of ways to write "base, then up one level,
// then target" that some server behind a gateway has resolved to target.
func bypassSpellings(base, target string) []string {
	var out []string
	for _, up := range []string{
		"/../", "/%2e%2e/", "/%2E%2E/", "/.%2e/", "/%2e./", "/./../", "//../", "/..//",
		"/..%2f", "/..%2F", "%2f..%2f", "/%2e%2e%2f", "/..%252f", "/%252e%252e/",
		"/..\\", "\\..\\", "/..%5c", "/..%5C", "%5c..%5c",
		"/..;/", "/..;x=1/", ";/../", "/.;/../", "/..%3b/",
		"/%c0%ae%c0%ae/", "/%e0%80%ae%e0%80%ae/", "/..%c0%af", "/..%c1%9c", "/%u002e%u002e/", "/..%u2215",
		"/.%00./", "/%00/../", "/..%00/", "/..%09/", "/..%20/", "/.. /", "/..%0d%0a/",
		"/\u2025/", "/%e2%80%a5/", "/%ef%bc%8e%ef%bc%8e/", "/..%ef%bc%8f", "/..\u2215", "/..%e2%88%95",
		"/x/../../", "/x/%2e%2e/%2e%2e/", "/.../", "/..../",
	} {
		out = append(out, base+up+target)
	}
	return out
}

// deepNormalize is the most any server behind might make of a path: it
// decodes again and again (also %uXXXX), reads "\" as "/", applies NFKC,
// drops ";params" and resolves dot segments.
func deepNormalize(p string) string {
	for i := 0; i < 6; i++ {
		prev := p
		p = strings.ReplaceAll(p, "\\", "/")
		for {
			j := strings.Index(strings.ToLower(p), "%u")
			if j < 0 || j+6 > len(p) {
				break
			}
			n, err := strconv.ParseUint(p[j+2:j+6], 16, 32)
			if err != nil {
				break
			}
			p = p[:j] + string(rune(n)) + p[j+6:]
		}
		if d, err := url.PathUnescape(p); err == nil {
			p = d
		}
		p = norm.NFKC.String(p)
		p = strings.NewReplacer("\u2215", "/", "\u2025", "..", "\x00", "").Replace(p)
		segs := strings.Split(p, "/")
		for k, s := range segs {
			if i := strings.IndexByte(s, ';'); i >= 0 {
				segs[k] = s[:i]
			}
			segs[k] = strings.TrimRight(segs[k], " \t\r\n")
		}
		p = path.Clean("/" + strings.Join(segs, "/"))
		if p == prev {
			break
		}
	}
	return p
}

func TestPathSpellingsNeverBypassRules(t *testing.T) {
	h := newHarness(t, pathRules)
	decider, err := access.Compile(h.opts.Settings.Rules, h.opts.Settings.DefaultPolicy, nil)
	if err != nil {
		t.Fatal(err)
	}
	var targets []string
	for _, base := range []string{"/public", "/public/x", "/status", "/assets/a.css", "/feed"} {
		for _, target := range []string{"admin", "internal/secret", ".gatehouse/../admin"} {
			targets = append(targets, bypassSpellings(base, target)...)
		}
	}
	targets = append(targets,
		"/admin?/public/x", "/admin#/public/x", "/admin%3f/public/x", "/admin%23/public/x",
		"/status/secret", "/status/", "/statusx", "/assets/a.css/secret", "/assets/x/a.css",
		"/PUBLIC/x", "/Public/x", "/public%2fx", "/public%2Fx", "/public\\x", "/%2fpublic/x",
		"/public.", "/public./x", "/public%20/x", "/public%00/x", "/publicity",
	)
	reached := 0
	for _, target := range targets {
		before := len(h.up.Requests())
		resp := rawGet(t, h.addr(), target, "Accept: application/json")
		reqs := h.up.Requests()
		if len(reqs) == before {
			switch resp.status {
			case http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound:
			default:
				t.Errorf("%q: status %d without reaching the upstream", target, resp.status)
			}
			continue
		}
		reached++
		got := reqs[len(reqs)-1]
		raw := got.RequestURI
		if i := strings.IndexByte(raw, '?'); i >= 0 {
			raw = raw[:i]
		}
		clean, err := safeurl.CleanPath(raw)
		if err != nil {
			t.Errorf("%q reached the upstream as %q, which the gateway itself refuses", target, raw)
			continue
		}
		if d := decider.Decide("", http.MethodGet, clean); d.Policy != access.PolicyPublic {
			t.Errorf("%q reached the upstream unauthenticated as %q (%s)", target, raw, d.Policy)
		}
		if deep := deepNormalize(raw); decider.Decide("", http.MethodGet, deep).Policy != access.PolicyPublic {
			t.Errorf("%q reached the upstream as %q, which a lenient server reads as %q (%s)", target, raw, deep, decider.Decide("", http.MethodGet, deep).Policy)
		}
	}
	if reached == len(targets) {
		t.Fatal("every spelling reached the upstream: the test proves nothing")
	}
	t.Logf("%d of %d spellings reached the upstream, all on public paths", reached, len(targets))
}

func TestDenyRuleHoldsForSignedInUsers(t *testing.T) {
	h := newHarness(t, pathRules)
	b := h.browser()
	b.signIn("sia@example.com", "/")
	cookie := "Cookie: gatehouse_session=" + b.sessionCookie()
	var targets []string
	for _, base := range []string{"/public", "/app", "/internal/../app"} {
		targets = append(targets, bypassSpellings(base, "internal/secret")...)
	}
	targets = append(targets, "/internal", "/internal/", "/internal/x", "//internal/x", "/internal;/x", "/%69nternal/x")
	for _, target := range targets {
		before := h.up.Count()
		resp := rawGet(t, h.addr(), target, cookie, "Accept: application/json")
		if h.up.Count() != before {
			got := h.up.Last(t)
			if deep := deepNormalize(got.RequestURI); strings.HasPrefix(deep+"/", "/internal/") {
				t.Errorf("%q reached the upstream as %q (%d)", target, got.RequestURI, resp.status)
			}
			continue
		}
		if resp.status != http.StatusBadRequest && resp.status != http.StatusForbidden {
			t.Errorf("%q: status %d", target, resp.status)
		}
	}
}

// TestUpstreamGetsTheDecidedPath: where the gateway normalizes rather than
// refuses, the upstream receives exactly the normalized path it decided on.
func TestUpstreamGetsTheDecidedPath(t *testing.T) {
	h := newHarness(t, pathRules)
	cases := []struct{ sent, path, escaped string }{
		{"/public//x", "/public/x", "/public/x"},
		{"/public///x//", "/public/x/", "/public/x/"},
		{"//public/x", "/public/x", "/public/x"},
		{"/%70ublic/x", "/public/x", "/public/x"},
		{"/public/%78", "/public/x", "/public/x"},
		{"/public/a%20b", "/public/a b", "/public/a%20b"},
		{"/public/caf%C3%A9", "/public/café", "/public/caf%C3%A9"},
		{"/public/a;b=c", "/public/a;b=c", "/public/a;b=c"},
		{"/public/x?q=/../admin", "/public/x", "/public/x"},
		{"/status", "/status", "/status"},
		{"/assets/site.css", "/assets/site.css", "/assets/site.css"},
	}
	for _, tc := range cases {
		t.Run(tc.sent, func(t *testing.T) {
			before := h.up.Count()
			resp := rawGet(t, h.addr(), tc.sent)
			if resp.status != http.StatusOK || h.up.Count() != before+1 {
				t.Fatalf("status %d, upstream requests %d", resp.status, h.up.Count()-before)
			}
			got := h.up.Last(t)
			if got.URL.Path != tc.path {
				t.Errorf("upstream path %q, want %q", got.URL.Path, tc.path)
			}
			if p := strings.SplitN(got.RequestURI, "?", 2)[0]; p != tc.escaped {
				t.Errorf("upstream request target %q, want %q", p, tc.escaped)
			}
		})
	}
}

func TestMethodRulesUseTheRequestMethod(t *testing.T) {
	h := newHarness(t, pathRules)
	cases := []struct {
		name    string
		method  string
		headers []string
		reach   bool
	}{
		{"GET on a GET-only public rule", "GET", nil, true},
		{"HEAD follows GET", "HEAD", nil, true},
		{"POST needs a session", "POST", nil, false},
		{"DELETE needs a session", "DELETE", nil, false},
		{"lower-case post needs a session", "post", nil, false},
		{"POST claiming to be GET", "POST", []string{"X-HTTP-Method-Override: GET", "X-HTTP-Method: GET", "X-Method-Override: GET"}, false},
		{"GET asking the upstream for DELETE", "GET", []string{"X-HTTP-Method-Override: DELETE"}, false},
		{"GET asking the upstream for PUT", "GET", []string{"X-HTTP-Method: PUT"}, false},
		{"GET asking the upstream for POST", "GET", []string{"X-Method-Override: POST"}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := h.up.Count()
			raw := tc.method + " /feed HTTP/1.1\r\nHost: a\r\nAccept: application/json\r\nContent-Length: 0\r\n"
			for _, hd := range tc.headers {
				raw += hd + "\r\n"
			}
			resps := rawExchange(t, h.addr(), raw+"Connection: close\r\n\r\n")
			if len(resps) != 1 {
				t.Fatalf("%d responses", len(resps))
			}
			reached := h.up.Count() > before
			if reached != tc.reach {
				t.Fatalf("upstream reached = %v (status %d), want %v", reached, resps[0].status, tc.reach)
			}
			if reached {
				got := h.up.Last(t)
				for _, k := range []string{"X-Http-Method-Override", "X-Http-Method", "X-Method-Override"} {
					if v := got.Header.Get(k); v != "" && !strings.EqualFold(v, got.Method) {
						t.Errorf("upstream got %s %s: %s", got.Method, k, v)
					}
				}
			}
		})
	}
}

// recordingUpstream is a real upstream that remembers the raw target of
// every request the gateway sends it.
type recordingUpstream struct {
	mu      sync.Mutex
	targets []*url.URL
	url     *url.URL
}

func startRecordingUpstream(tb testing.TB) *recordingUpstream {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	rt := &recordingUpstream{}
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		u, err := url.ParseRequestURI(string(ctx.Request.Header.RequestURI()))
		if err != nil {
			u = &url.URL{Path: string(ctx.Request.Header.RequestURI())}
		}
		rt.mu.Lock()
		rt.targets = append(rt.targets, u)
		rt.mu.Unlock()
	}, DisablePreParseMultipartForm: true}
	go func() { _ = srv.Serve(ln) }()
	tb.Cleanup(func() { _ = srv.Shutdown() })
	rt.url, _ = url.Parse("http://" + ln.Addr().String())
	return rt
}

func (rt *recordingUpstream) take() *url.URL {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if len(rt.targets) == 0 {
		return nil
	}
	u := rt.targets[0]
	rt.targets = nil
	return u
}

// FuzzForwardedPublicPath drives the real front server with arbitrary
// request targets and no session: whatever reaches the upstream must be on
// a public rule, both as the gateway reads it and as the most lenient
// server behind might (decoded again, "\" as "/", NFKC, ";params" dropped,
// dot segments resolved); the query travels unchanged and never decides.
func FuzzForwardedPublicPath(f *testing.F) {
	for _, s := range []string{
		"/public/x", "/public//x", "/%70ublic/x?a=/../admin", "/public/../admin", "/public/%2e%2e/admin",
		"/public/..;/admin", "/public%2f..%2fadmin", "/status", "/status/x", "/assets/a.css", "/assets/a.css/..",
		"/public/%c0%ae%c0%ae/admin", "/public/%252e%252e/admin", "/public;x/y", "/internal;/public/x",
		"/public/caf%C3%A9", "/public/a%20b", "/public/\u2025/admin", "/public/%ef%bc%8e%ef%bc%8e/admin",
		"/admin?/public/x", "/admin#/public/x",
	} {
		f.Add(s)
	}
	ctx := context.Background()
	st, err := authstore.Open(ctx, authstore.Options{Driver: "sqlite", DSN: filepath.Join(f.TempDir(), "fuzz.db")})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = st.Close() })
	if err := st.Migrate(ctx); err != nil {
		f.Fatal(err)
	}
	pg, err := pages.New(pages.Options{AppName: "Gatehouse", DefaultLanguage: "en", Prefix: Prefix})
	if err != nil {
		f.Fatal(err)
	}
	pub, _ := url.Parse("http://gate.example")
	rt := startRecordingUpstream(f)
	up := rt.url
	rules := []access.Rule{
		{Paths: []string{"/public/**"}, Policy: access.PolicyPublic},
		{Paths: []string{"/status"}, Policy: access.PolicyPublic},
		{Paths: []string{"/assets/*.css"}, Policy: access.PolicyPublic},
		{Paths: []string{"/internal/**"}, Policy: access.PolicyDeny},
	}
	srv, err := New(Options{
		PublicURL: pub, Upstream: up, Store: st, Secret: bytes.Repeat([]byte("k"), 32),
		Session: session.Settings{CookieName: "gatehouse_session", Lifetime: time.Hour, IdleTimeout: time.Hour},
		Settings: Settings{
			Rules: rules, DefaultPolicy: access.PolicyAuthenticated, Signup: access.Signup{Open: true},
			OTP: signin.OTP{Length: 6, TTL: time.Minute, MaxAttempts: 5, MaxFailuresPerHour: 100,
				RateWindow: time.Minute, PerAddress: 5, PerIP: 30},
			Mailer: mailer.NewLog(io.Discard), Pages: pg,
		},
	})
	if err != nil {
		f.Fatal(err)
	}
	decider, err := access.Compile(rules, access.PolicyAuthenticated, nil)
	if err != nil {
		f.Fatal(err)
	}
	addr := strings.TrimPrefix(serve(f, srv), "http://")
	fuzzGet := func(t testing.TB, target string) {
		// The Host is the public URL's; the target goes on the wire as it is.
		_ = rawExchange(t, addr, "GET "+target+" HTTP/1.1\r\nHost: gate.example\r\nAccept: application/json\r\nConnection: close\r\n\r\n")
	}
	fuzzGet(f, "/public/x")
	if rt.take() == nil {
		f.Fatal("a public path did not reach the upstream: the target proves nothing")
	}
	f.Fuzz(func(t *testing.T, target string) {
		u, err := url.ParseRequestURI(target)
		if err != nil || strings.ContainsAny(target, " \t\r\n\x00") || !strings.HasPrefix(target, "/") ||
			strings.HasPrefix(target, Prefix) {
			return // net/http refuses these request lines, or they are Gatehouse's own
		}
		_ = u
		fuzzGet(t, target)
		got := rt.take()
		if got == nil {
			return
		}
		sent := got.EscapedPath()
		clean, err := safeurl.CleanPath(sent)
		if err != nil {
			t.Fatalf("%q reached the upstream as %q, which CleanPath refuses: %v", target, sent, err)
		}
		if d := decider.Decide("gate.example", http.MethodGet, clean); d.Policy != access.PolicyPublic {
			t.Fatalf("%q reached the upstream as %q (%s) without a session", target, sent, d.Policy)
		}
		if deep := deepNormalize(sent); decider.Decide("gate.example", http.MethodGet, deep).Policy != access.PolicyPublic {
			t.Fatalf("%q reached the upstream as %q, which a lenient server reads as %q", target, sent, deep)
		}
		if q := strings.SplitN(target, "?", 2); len(q) == 2 && got.RawQuery != q[1] {
			t.Fatalf("%q: the query became %q", target, got.RawQuery)
		}
	})
}

// TestStaticFilesStayInside: the asset handler serves its own files only.
func TestStaticFilesStayInside(t *testing.T) {
	h := newHarness(t)
	for _, target := range []string{
		"/.gatehouse/static/../../go.mod", "/.gatehouse/static/..%2f..%2fgo.mod", "/.gatehouse/static/%2e%2e/%2e%2e/go.mod",
		"/.gatehouse/static/..\\..\\go.mod", "/.gatehouse/static//etc/passwd", "/.gatehouse/static/%2fetc%2fpasswd",
		"/.gatehouse/static/templates/login.html", "/.gatehouse/static/../templates/login.html",
		"/.gatehouse/static/.", "/.gatehouse/static/",
	} {
		r := rawGet(t, h.addr(), target)
		if r.status == http.StatusOK {
			t.Errorf("%s: 200 (%d bytes)", target, len(r.body))
		}
		if strings.Contains(r.body, "module gatehouse") || strings.Contains(r.body, "root:") || strings.Contains(r.body, "{{") {
			t.Errorf("%s: served a file from outside the assets", target)
		}
	}
	if r := rawGet(t, h.addr(), "/.gatehouse/static/style.css"); r.status != http.StatusOK {
		t.Fatalf("the stylesheet itself: %d", r.status)
	}
}
