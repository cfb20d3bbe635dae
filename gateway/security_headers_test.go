package gateway

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"gatehouse/access"
)

// spellings returns a header name as clients, proxies and frameworks may
// write it: case, "_" and "." for "-".
func spellings(name string) []string {
	lower := strings.ToLower(name)
	return []string{
		name, lower, strings.ToUpper(name),
		strings.ReplaceAll(name, "-", "_"), strings.ReplaceAll(lower, "-", "_"),
		strings.ReplaceAll(name, "-", "."),
		strings.Replace(strings.ReplaceAll(name, "-", "_"), "_", "-", 1),
	}
}

var identityNames = []string{
	"X-Auth-Request-Email", "X-Auth-Request-User", "X-Auth-Request-Groups", "X-Auth-Request-Preferred-Username",
	"X-Auth-Request-Access-Token", "X-Forwarded-Email", "X-Forwarded-User", "X-Forwarded-Groups",
	"X-Forwarded-Preferred-Username", "X-Forwarded-Access-Token", "Remote-Email", "Remote-User", "Remote-Groups",
	"Remote-Name", "X-Remote-User", "X-Remote-Email", "X-WebAuth-User", "X-Gatehouse-Session",
	// Whole families, whatever the rest of the name.
	"X-WebAuth-Role", "X-Remote-Groups", "Remote-Role", "X-Auth-Request-Roles", "X-Forwarded-Client-Cert",
	"X-Forwarded-Anything-New", "X-Gatehouse-Anything",
}

func normalizedName(k string) string {
	return strings.NewReplacer("_", "-", ".", "-").Replace(strings.ToLower(k))
}

func TestIdentityHeadersAreStrippedInEverySpelling(t *testing.T) {
	h := newHarness(t)
	b := h.browser()
	b.signIn("kai@example.com", "/")
	var spoof []string
	for _, n := range identityNames {
		for _, s := range spellings(n) {
			spoof = append(spoof, s+": root@evil.example")
		}
	}
	spoof = append(spoof, "X-Auth-Request-Email: root@evil.example", "X-Auth-Request-Email:root@evil.example")
	cases := []struct {
		name, path, cookie, want string
	}{
		{"public path", "/public/x", "", ""},
		{"protected path", "/app", "Cookie: gatehouse_session=" + b.sessionCookie(), "kai@example.com"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			headers := append([]string{"Accept: application/json"}, spoof...)
			if tc.cookie != "" {
				headers = append(headers, tc.cookie)
			}
			before := h.up.Count()
			resp := rawGet(t, h.addr(), tc.path, headers...)
			if resp.status != http.StatusOK || h.up.Count() != before+1 {
				t.Fatalf("status %d", resp.status)
			}
			got := h.up.Last(t)
			for k, vs := range got.Header {
				for _, v := range vs {
					if strings.Contains(v, "evil.example") {
						t.Errorf("spoofed %s: %s reached the upstream", k, v)
					}
				}
			}
			for _, k := range []string{"X-Auth-Request-Email", "X-Auth-Request-User", "X-Forwarded-Email", "X-Forwarded-User", "Remote-Email", "Remote-User"} {
				if vs := got.Header.Values(k); (tc.want == "" && len(vs) != 0) || (tc.want != "" && (len(vs) != 1 || vs[0] != tc.want)) {
					t.Errorf("%s = %q, want %q", k, vs, tc.want)
				}
			}
		})
	}
}

func TestConnectionHeaderCannotRemoveGatewayHeaders(t *testing.T) {
	h := newHarness(t)
	b := h.browser()
	b.signIn("lee@example.com", "/")
	named := "close, X-Auth-Request-Email, X-Auth-Request-User, X-Forwarded-Email, X-Forwarded-User, Remote-Email, Remote-User, " +
		"X-Forwarded-For, X-Forwarded-Proto, X-Forwarded-Host, X-Real-Ip, X-Request-Id, Host"
	resp := rawGet(t, h.addr(), "/app", "Cookie: gatehouse_session="+b.sessionCookie(), "Connection: "+named, "Accept: application/json")
	if resp.status != http.StatusOK {
		t.Fatalf("status %d", resp.status)
	}
	got := h.up.Last(t)
	want := map[string]string{
		"X-Auth-Request-Email": "lee@example.com", "X-Auth-Request-User": "lee@example.com",
		"X-Forwarded-Email": "lee@example.com", "X-Forwarded-User": "lee@example.com",
		"Remote-Email": "lee@example.com", "Remote-User": "lee@example.com",
		"X-Forwarded-For": "127.0.0.1", "X-Real-Ip": "127.0.0.1", "X-Forwarded-Proto": "http",
	}
	for k, v := range want {
		if got.Header.Get(k) != v {
			t.Errorf("%s = %q, want %q", k, got.Header.Get(k), v)
		}
	}
	for _, k := range []string{"X-Forwarded-Host", "X-Request-Id"} {
		if got.Header.Get(k) == "" {
			t.Errorf("%s was removed", k)
		}
	}
}

// decisionHeaders are request headers that some proxy, framework or
// gateway has let decide access, or route the request elsewhere.
var decisionHeaders = []string{
	"X-Forwarded-Uri: /public/x", "X-Original-URL: /public/x", "X-Original-URI: /public/x", "X-Rewrite-URL: /public/x",
	"X-Forwarded-Prefix: /public", "X-Forwarded-Path: /public/x", "X-Envoy-Original-Path: /public/x",
	"X-Forwarded-Method: GET", "X-Original-Method: GET", "X-HTTP-Method-Override: GET",
	"X-Forwarded-For: 127.0.0.1", "X-Real-Ip: 127.0.0.1", "X-Client-Ip: 127.0.0.1", "True-Client-Ip: 127.0.0.1",
	"Forwarded: for=127.0.0.1;proto=https", "X-Forwarded-Proto: https", "X-Forwarded-Host: localhost",
	"X-Forwarded-Ssl: on", "Referer: /public/x", "Authorization: Basic YWRtaW46YWRtaW4=",
	"X-Gatehouse-Peer-Trusted: 1", "X-Gatehouse-Client-Ip: 127.0.0.1",
}

var healthCheckAgents = []string{
	"kube-probe/1.30", "ELB-HealthChecker/2.0", "GoogleHC/1.0", "Consul Health Check", "Go-http-client/1.1",
	"Prometheus/2.51.0", "Blackbox Exporter/0.25.0", "UptimeRobot/2.0", "Pingdom.com_bot_version_1.4",
	"Traefik Health Check", "HAProxy health check", "nginx health check", "Amazon-Route53-Health-Check-Service",
	"Googlebot/2.1", "",
}

func TestRequestHeadersNeverDecideAccess(t *testing.T) {
	h := newHarness(t, func(o *Options) {
		o.Settings.Rules = []access.Rule{
			{Paths: []string{"/public/**"}, Policy: access.PolicyPublic},
			{Paths: []string{"/internal/**"}, Policy: access.PolicyDeny},
		}
	})
	var headerSets [][]string
	for _, hd := range decisionHeaders {
		headerSets = append(headerSets, []string{hd})
	}
	headerSets = append(headerSets, decisionHeaders)
	for _, ua := range healthCheckAgents {
		headerSets = append(headerSets, []string{"User-Agent: " + ua})
	}
	for _, target := range []struct {
		path string
		want int
	}{{"/admin", http.StatusUnauthorized}, {"/internal/x", http.StatusForbidden}} {
		for _, set := range headerSets {
			resp := rawGet(t, h.addr(), target.path, append([]string{"Accept: application/json"}, set...)...)
			if resp.status != target.want {
				t.Errorf("%s with %q: %d, want %d", target.path, set, resp.status, target.want)
			}
		}
	}
	if n := h.up.Count(); n != 0 {
		t.Fatalf("%d requests reached the upstream", n)
	}
	// Forward-auth believes the description of a request only from a
	// trusted proxy; this harness trusts none.
	for _, set := range [][]string{
		{"X-Forwarded-Method: GET", "X-Forwarded-Proto: http", "X-Forwarded-Host: a", "X-Forwarded-Uri: /public/x"},
		{"X-Original-URL: http://a/public/x", "X-Original-Method: GET"},
		{"X-Original-URL: http://a/public/x", "X-Gatehouse-Peer-Trusted: 1", "X-Forwarded-For: 127.0.0.1"},
	} {
		if r := rawGet(t, h.addr(), "/.gatehouse/auth", set...); r.status != http.StatusUnauthorized {
			t.Errorf("forward-auth from an untrusted peer with %q: %d, want 401", set, r.status)
		}
	}

	// On a public path the request passes, but nothing that would make the
	// upstream route it elsewhere goes with it.
	rewrites := []string{
		"X-Original-URL: /admin", "X-Original-URI: /admin", "X-Rewrite-URL: /admin", "X-Forwarded-Uri: /admin",
		"X-Forwarded-Prefix: /admin", "X-Forwarded-Path: /admin", "X-Envoy-Original-Path: /admin",
		"X-Original-Method: DELETE", "X-Forwarded-Method: DELETE", "X-Original-Host: admin.example",
		"X-Forwarded-Ssl: on", "X-Forwarded-Scheme: https", "X-Url-Scheme: https", "Front-End-Https: on",
		"X_Original_URL: /admin", "x.rewrite.url: /admin",
	}
	resp := rawGet(t, h.addr(), "/public/x", append([]string{"Accept: application/json"}, rewrites...)...)
	if resp.status != http.StatusOK {
		t.Fatalf("public path: %d", resp.status)
	}
	got := h.up.Last(t)
	for _, hd := range rewrites {
		name, _, _ := strings.Cut(hd, ":")
		for k := range got.Header {
			if normalizedName(k) == normalizedName(name) {
				t.Errorf("%s reached the upstream", k)
			}
		}
	}
}

func TestForwardedHeadersAreBelievedOnlyFromTrustedProxies(t *testing.T) {
	spoof := []string{
		"X-Forwarded-For: 203.0.113.7", "X-Real-Ip: 203.0.113.7", "Forwarded: for=203.0.113.7;proto=https",
		"X-Forwarded-Proto: https", "X-Forwarded-Port: 443", "Accept: application/json",
	}
	cases := []struct {
		name      string
		edit      []func(*Options)
		wantIP    string
		wantProto string
	}{
		{"untrusted peer", nil, "127.0.0.1", "http"},
		{"trusted proxy", []func(*Options){trustLoopback}, "203.0.113.7", "https"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.edit...)
			if r := rawGet(t, h.addr(), "/public/x", spoof...); r.status != http.StatusOK {
				t.Fatalf("status %d", r.status)
			}
			got := h.up.Last(t)
			if v := got.Header.Values("X-Forwarded-For"); len(v) != 1 || v[0] != tc.wantIP {
				t.Errorf("X-Forwarded-For = %q, want %q", v, tc.wantIP)
			}
			if v := got.Header.Get("X-Real-Ip"); v != tc.wantIP {
				t.Errorf("X-Real-Ip = %q, want %q", v, tc.wantIP)
			}
			if v := got.Header.Get("X-Forwarded-Proto"); v != tc.wantProto {
				t.Errorf("X-Forwarded-Proto = %q, want %q", v, tc.wantProto)
			}
			for _, k := range []string{"Forwarded", "X-Forwarded-Port"} {
				if v := got.Header.Get(k); v != "" {
					t.Errorf("%s = %q passed through", k, v)
				}
			}
		})
	}
}

// TestLinksComeFromThePublicURL: neither Host nor X-Forwarded-Host (from an
// untrusted peer or a trusted proxy) changes where mails and redirects
// point (host header poisoning of the sign-in link).
func TestLinksComeFromThePublicURL(t *testing.T) {
	for _, trusted := range []bool{false, true} {
		name := "untrusted peer"
		var edits []func(*Options)
		if trusted {
			name, edits = "trusted proxy", []func(*Options){trustLoopback}
		}
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, edits...)
			b := h.browser()
			b.header.Set("X-Forwarded-Host", "evil.example")
			b.header.Set("X-Forwarded-Proto", "https")
			b.header.Set("Forwarded", "host=evil.example;proto=https")
			b.header.Set("X-Original-Host", "evil.example")
			login := b.get("/.gatehouse/login")
			req, _ := http.NewRequest(http.MethodPost, h.URL+"/.gatehouse/login", strings.NewReader(url.Values{
				"email": {"max@example.com"}, "_csrf": {b.csrf(login.body)}}.Encode()))
			req.Host = "evil.example"
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Sec-Fetch-Site", "same-origin")
			u, _ := url.Parse(h.URL)
			for _, c := range b.c.Jar.Cookies(u) { // the jar files cookies under Host
				req.AddCookie(c)
			}
			if r := b.do(req); r.StatusCode != http.StatusOK {
				t.Fatalf("send: %d %s", r.StatusCode, r.body)
			}
			m := h.mail.WaitFor(t, "max@example.com", 1)
			if link := m.Link(); !strings.HasPrefix(link, h.URL+"/.gatehouse/link?") {
				t.Fatalf("mail link %q does not start with the public URL %s", link, h.URL)
			}
			if strings.Contains(m.Text+m.HTML, "evil.example") {
				t.Fatal("the mail names the spoofed host")
			}
			req, _ = http.NewRequest(http.MethodGet, h.URL+"/app", nil)
			req.Host = "evil.example"
			req.Header.Set("Accept", "text/html")
			// The sign-in redirect is path-only: the browser stays on the
			// origin it used, and no part of it comes from Host.
			if loc := b.do(req).Header.Get("Location"); !strings.HasPrefix(loc, "/.gatehouse/login?") || strings.Contains(loc, "evil") {
				t.Fatalf("sign-in redirect to %q", loc)
			}
			req, _ = http.NewRequest(http.MethodGet, h.URL+"/app", nil)
			req.Host = "evil.example"
			if r := b.do(req); strings.Contains(r.body, "evil.example") {
				t.Fatalf("401 body names the spoofed host: %s", r.body)
			}
		})
	}
}
