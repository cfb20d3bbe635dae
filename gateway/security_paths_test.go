package gateway

import (
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/text/unicode/norm"
)

// pathRules has one public rule of every kind (prefix glob, exact path,
// in-segment glob, method-restricted) and a deny rule; everything else needs
// a session.
func pathRules(o *Options) {
	o.Settings.Rules = []Rule{
		{Paths: []string{"/public/**"}, Policy: PolicyPublic},
		{Paths: []string{"/status"}, Policy: PolicyPublic},
		{Paths: []string{"/assets/*.css"}, Policy: PolicyPublic},
		{Paths: []string{"/feed"}, Methods: []string{"GET"}, Policy: PolicyPublic},
		{Paths: []string{"/internal/**"}, Policy: PolicyDeny},
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
	access, err := NewAccess(h.opts.Settings.Rules, h.opts.Settings.DefaultPolicy)
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
		before := len(h.up.requests())
		resp := rawGet(t, h.addr(), target, "Accept: application/json")
		reqs := h.up.requests()
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
		clean, err := CleanPath(raw)
		if err != nil {
			t.Errorf("%q reached the upstream as %q, which the gateway itself refuses", target, raw)
			continue
		}
		if d := access.Decide("", http.MethodGet, clean); d.Policy != PolicyPublic {
			t.Errorf("%q reached the upstream unauthenticated as %q (%s)", target, raw, d.Policy)
		}
		if deep := deepNormalize(raw); access.Decide("", http.MethodGet, deep).Policy != PolicyPublic {
			t.Errorf("%q reached the upstream as %q, which a lenient server reads as %q (%s)", target, raw, deep, access.Decide("", http.MethodGet, deep).Policy)
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
		before := h.up.count()
		resp := rawGet(t, h.addr(), target, cookie, "Accept: application/json")
		if h.up.count() != before {
			got := h.up.last(t)
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
			before := h.up.count()
			resp := rawGet(t, h.addr(), tc.sent)
			if resp.status != http.StatusOK || h.up.count() != before+1 {
				t.Fatalf("status %d, upstream requests %d", resp.status, h.up.count()-before)
			}
			got := h.up.last(t)
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
			before := h.up.count()
			raw := tc.method + " /feed HTTP/1.1\r\nHost: a\r\nAccept: application/json\r\nContent-Length: 0\r\n"
			for _, hd := range tc.headers {
				raw += hd + "\r\n"
			}
			resps := rawExchange(t, h.addr(), raw+"Connection: close\r\n\r\n")
			if len(resps) != 1 {
				t.Fatalf("%d responses", len(resps))
			}
			reached := h.up.count() > before
			if reached != tc.reach {
				t.Fatalf("upstream reached = %v (status %d), want %v", reached, resps[0].status, tc.reach)
			}
			if reached {
				got := h.up.last(t)
				for _, k := range []string{"X-Http-Method-Override", "X-Http-Method", "X-Method-Override"} {
					if v := got.Header.Get(k); v != "" && !strings.EqualFold(v, got.Method) {
						t.Errorf("upstream got %s %s: %s", got.Method, k, v)
					}
				}
			}
		})
	}
}
