package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"gatehouse/access"
	"gatehouse/internal/logbuf"
	"gatehouse/session"
)

func TestParseOriginal(t *testing.T) {
	type want struct {
		dialect dialect
		method  string
		host    string
		path    string
		url     string
	}
	nginx := func(u, m string) http.Header {
		h := http.Header{}
		h.Set("X-Original-URL", u)
		if m != "" {
			h.Set("X-Original-Method", m)
		}
		return h
	}
	fwd := func(proto, host, uri, m string) http.Header {
		h := http.Header{}
		for k, v := range map[string]string{"X-Forwarded-Proto": proto, "X-Forwarded-Host": host, "X-Forwarded-Uri": uri, "X-Forwarded-Method": m} {
			if v != "" {
				h.Set(k, v)
			}
		}
		return h
	}
	with := func(h http.Header, kv ...string) http.Header {
		for i := 0; i+1 < len(kv); i += 2 {
			h.Add(kv[i], kv[i+1])
		}
		return h
	}
	for _, tc := range []struct {
		name    string
		h       http.Header
		want    *want // nil: refused
		dialect dialect
	}{
		{name: "nginx plain", h: nginx("https://app.example.com/dash?tab=2", "GET"),
			want: &want{dialectNginx, "GET", "app.example.com", "/dash", "https://app.example.com/dash?tab=2"}},
		{name: "nginx host with port, upper case", h: nginx("http://App.Example.COM:8443/x", "post"),
			want: &want{dialectNginx, "POST", "app.example.com", "/x", "http://app.example.com:8443/x"}},
		{name: "nginx no path", h: nginx("http://app.example.com", "GET"),
			want: &want{dialectNginx, "GET", "app.example.com", "/", "http://app.example.com/"}},
		{name: "nginx query only", h: nginx("http://app.example.com?a=1", "GET"),
			want: &want{dialectNginx, "GET", "app.example.com", "/", "http://app.example.com/?a=1"}},
		{name: "nginx repeated slashes collapse", h: nginx("http://app.example.com//admin//x", "GET"),
			want: &want{dialectNginx, "GET", "app.example.com", "/admin/x", "http://app.example.com//admin//x"}},
		{name: "nginx escapes decoded", h: nginx("http://app.example.com/%61dmin", "GET"),
			want: &want{dialectNginx, "GET", "app.example.com", "/admin", "http://app.example.com/%61dmin"}},
		{name: "nginx query is never the path", h: nginx("http://app.example.com/public/x?/admin", "GET"),
			want: &want{dialectNginx, "GET", "app.example.com", "/public/x", "http://app.example.com/public/x?/admin"}},
		{name: "nginx ipv6 host", h: nginx("http://[::1]:8080/x", "GET"),
			want: &want{dialectNginx, "GET", "[::1]", "/x", "http://[::1]:8080/x"}},
		{name: "nginx missing method", h: nginx("http://app.example.com/x", ""), dialect: dialectNginx},
		{name: "nginx method not a token", h: nginx("http://app.example.com/x", "G ET"), dialect: dialectNginx},
		{name: "nginx relative URL", h: nginx("/admin", "GET"), dialect: dialectNginx},
		{name: "nginx empty URL", h: nginx("", "GET"), dialect: dialectNginx},
		{name: "nginx scheme-relative", h: nginx("//app.example.com/x", "GET"), dialect: dialectNginx},
		{name: "nginx javascript scheme", h: nginx("javascript://app.example.com/x", "GET"), dialect: dialectNginx},
		{name: "nginx userinfo", h: nginx("http://evil.com@app.example.com/x", "GET"), dialect: dialectNginx},
		{name: "nginx bad port", h: nginx("http://app.example.com:99999/x", "GET"), dialect: dialectNginx},
		{name: "nginx encoded host", h: nginx("http://app%2eexample.com/x", "GET"), dialect: dialectNginx},
		{name: "nginx backslash host", h: nginx("http://app.example.com\\@evil.com/x", "GET"), dialect: dialectNginx},
		{name: "nginx dot segment", h: nginx("http://app.example.com/public/../admin", "GET"), dialect: dialectNginx},
		{name: "nginx encoded dot segment", h: nginx("http://app.example.com/public/%2e%2e/admin", "GET"), dialect: dialectNginx},
		{name: "nginx encoded slash", h: nginx("http://app.example.com/public%2f..%2fadmin", "GET"), dialect: dialectNginx},
		{name: "nginx backslash path", h: nginx("http://app.example.com/public\\..\\admin", "GET"), dialect: dialectNginx},
		{name: "nginx NUL", h: nginx("http://app.example.com/admin%00.css", "GET"), dialect: dialectNginx},
		{name: "nginx raw fragment", h: nginx("http://app.example.com/admin#/public", "GET"), dialect: dialectNginx},
		{name: "nginx tomcat parameter dots", h: nginx("http://app.example.com/public/..;/admin", "GET"), dialect: dialectNginx},
		{name: "nginx fullwidth slash", h: nginx("http://app.example.com/public%EF%BC%8F..%EF%BC%8Fadmin", "GET"), dialect: dialectNginx},
		{name: "nginx and forwarded uri together", h: with(nginx("http://app.example.com/public/x", "GET"), "X-Forwarded-Uri", "/admin"), dialect: dialectNginx},
		{name: "nginx and forwarded method together", h: with(nginx("http://app.example.com/x", "GET"), "X-Forwarded-Method", "GET"), dialect: dialectNginx},
		{name: "nginx URL twice", h: with(nginx("http://app.example.com/public/x", "GET"), "X-Original-URL", "http://app.example.com/admin"), dialect: dialectNginx},

		{name: "forwarded plain", h: fwd("https", "app.example.com", "/dash?tab=2", "GET"),
			want: &want{dialectForwarded, "GET", "app.example.com", "/dash", "https://app.example.com/dash?tab=2"}},
		{name: "forwarded port and case", h: fwd("HTTP", "APP.example.com:8080", "/x", "delete"),
			want: &want{dialectForwarded, "DELETE", "app.example.com", "/x", "http://app.example.com:8080/x"}},
		{name: "forwarded repeated slashes", h: fwd("http", "app.example.com", "//admin", "GET"),
			want: &want{dialectForwarded, "GET", "app.example.com", "/admin", "http://app.example.com//admin"}},
		{name: "forwarded nothing at all", h: http.Header{}},
		{name: "forwarded missing uri", h: fwd("http", "app.example.com", "", "GET")},
		{name: "forwarded missing method", h: fwd("http", "app.example.com", "/x", "")},
		{name: "forwarded missing proto", h: fwd("", "app.example.com", "/x", "GET")},
		{name: "forwarded missing host", h: fwd("http", "", "/x", "GET")},
		{name: "forwarded proto list", h: fwd("https, http", "app.example.com", "/x", "GET")},
		{name: "forwarded proto ftp", h: fwd("ftp", "app.example.com", "/x", "GET")},
		{name: "forwarded host list", h: fwd("http", "app.example.com, evil.com", "/x", "GET")},
		{name: "forwarded host userinfo", h: fwd("http", "evil.com@app.example.com", "/x", "GET")},
		{name: "forwarded host with path", h: fwd("http", "app.example.com/admin", "/x", "GET")},
		{name: "forwarded uri not a path", h: fwd("http", "app.example.com", "admin", "GET")},
		{name: "forwarded uri absolute", h: fwd("http", "app.example.com", "http://evil.com/x", "GET")},
		{name: "forwarded uri dot segment", h: fwd("http", "app.example.com", "/public/%2E%2E/admin", "GET")},
		{name: "forwarded uri control", h: fwd("http", "app.example.com", "/public/\t/admin", "GET")},
		{name: "forwarded method twice", h: with(fwd("http", "app.example.com", "/x", "GET"), "X-Forwarded-Method", "DELETE")},
		{name: "forwarded uri twice", h: with(fwd("http", "app.example.com", "/public/x", "GET"), "X-Forwarded-Uri", "/admin")},
		{name: "forwarded host twice", h: with(fwd("http", "app.example.com", "/x", "GET"), "X-Forwarded-Host", "internal.example.com")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, err := parseOriginal(tc.h)
			if tc.want == nil {
				if err == nil {
					t.Fatalf("accepted: %+v", o)
				}
				if !errors.Is(err, errBadOriginal) {
					t.Fatalf("error %v does not wrap errBadOriginal", err)
				}
				if o.dialect != tc.dialect {
					t.Fatalf("dialect = %v, want %v", o.dialect, tc.dialect)
				}
				return
			}
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			got := want{o.dialect, o.method, o.host, o.path, o.url}
			if got != *tc.want {
				t.Fatalf("got %+v\nwant %+v", got, *tc.want)
			}
		})
	}
}

// TestParseOriginalErrorsQuoteNothing: refusals are logged, and the
// original URL may carry a token in its query.
func TestParseOriginalErrorsQuoteNothing(t *testing.T) {
	const secret = "s3cr3t-token-value"
	for _, h := range []http.Header{
		{"X-Original-Url": {"http://app.example.com/a/../b?t=" + secret}, "X-Original-Method": {"GET"}},
		{"X-Original-Url": {"http://" + secret + "@app.example.com/"}, "X-Original-Method": {"GET"}},
		{"X-Forwarded-Uri": {"/%2e%2e?t=" + secret}, "X-Forwarded-Method": {"GET"}, "X-Forwarded-Proto": {"http"}, "X-Forwarded-Host": {"a.example.com"}},
		{"X-Forwarded-Uri": {"/x"}, "X-Forwarded-Method": {"GET"}, "X-Forwarded-Proto": {"http"}, "X-Forwarded-Host": {secret + "/x"}},
	} {
		_, err := parseOriginal(h)
		if err == nil {
			t.Fatalf("accepted %v", h)
		}
		if strings.Contains(err.Error(), secret) {
			t.Fatalf("error quotes a header value: %v", err)
		}
	}
}

// faHarness is a gateway that trusts 127.0.0.1 as a fronting proxy, with
// rules that exercise every part of the decision.
func faHarness(t *testing.T, edit ...func(*Options)) *harness {
	t.Helper()
	return newHarness(t, append([]func(*Options){func(o *Options) {
		o.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
		o.Settings.Rules = []access.Rule{
			{Paths: []string{"/public/**"}, Policy: access.PolicyPublic},
			{Paths: []string{"/blocked/**"}, Policy: access.PolicyDeny},
			{Paths: []string{"/**"}, Hosts: []string{"internal.example.com"}, Policy: access.PolicyDeny},
			{Paths: []string{"/**"}, Hosts: []string{"*.open.example.com"}, Policy: access.PolicyPublic},
			{Paths: []string{"/api/**"}, Methods: []string{"DELETE"}, Policy: access.PolicyDeny},
			{Paths: []string{"/admin/**"}, Policy: access.PolicyAuthenticated, Emails: []string{"admin@example.com"}},
		}
		o.Settings.AllowedRedirectHosts = []string{"app.example.com", "*.apps.example.com:8443"}
	}}, edit...)...)
}

// authCall is one request a fronting proxy makes to /.gatehouse/auth.
type authCall struct {
	header http.Header
	cookie string // session token, "" for none
}

func (h *harness) auth(t *testing.T, c authCall) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, h.URL+"/.gatehouse/auth", nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range c.header {
		req.Header[k] = v
	}
	if c.cookie != "" {
		req.AddCookie(&http.Cookie{Name: h.srv.cookie, Value: c.cookie})
	}
	client := &http.Client{Timeout: 20 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return response{resp, string(body)}
}

func nginxHeaders(method, rawURL string, kv ...string) http.Header {
	h := http.Header{"X-Original-Url": {rawURL}, "X-Original-Method": {method}}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

func forwardedHeaders(method, proto, host, uri string, kv ...string) http.Header {
	h := http.Header{"X-Forwarded-Method": {method}, "X-Forwarded-Proto": {proto}, "X-Forwarded-Host": {host}, "X-Forwarded-Uri": {uri}}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

func TestForwardAuthDecisions(t *testing.T) {
	h := faHarness(t)
	alice := h.browser()
	alice.signIn("alice@example.com", "/")
	admin := h.browser()
	admin.signIn("admin@example.com", "/")
	aliceTok, adminTok := alice.sessionCookie(), admin.sessionCookie()
	if aliceTok == "" || adminTok == "" {
		t.Fatal("sign-in set no session cookie")
	}
	const html = "text/html,application/xhtml+xml"
	login := func(rd string) string {
		if rd == "" {
			return h.URL + "/.gatehouse/login"
		}
		return h.URL + "/.gatehouse/login?rd=" + url.QueryEscape(rd)
	}

	for _, tc := range []struct {
		name     string
		call     authCall
		status   int
		location string // exact Location, "" = none
		identity string // X-Auth-Request-Email etc., "" = none
		errCode  string // JSON "error", "" = not checked
	}{
		{name: "nginx public path anonymous",
			call:   authCall{header: nginxHeaders("GET", "http://app.example.com/public/logo.png")},
			status: 200},
		{name: "nginx public path ignores spoofed identity",
			call:   authCall{header: nginxHeaders("GET", "http://app.example.com/public/x", "X-Auth-Request-Email", "admin@example.com", "Remote-User", "admin@example.com")},
			status: 200},
		{name: "nginx anonymous browser gets 401 with the sign-in Location",
			call:   authCall{header: nginxHeaders("GET", "http://app.example.com/dash?a=1&b=2", "Accept", html)},
			status: 401, location: login("http://app.example.com/dash?a=1&b=2"), errCode: "unauthenticated"},
		{name: "nginx anonymous API call gets 401 without Location",
			call:   authCall{header: nginxHeaders("GET", "http://app.example.com/api/items", "Accept", "application/json")},
			status: 401, errCode: "unauthenticated"},
		{name: "nginx anonymous form post is not a navigation",
			call:   authCall{header: nginxHeaders("POST", "http://app.example.com/dash", "Accept", html)},
			status: 401, errCode: "unauthenticated"},
		{name: "nginx spoofed identity headers without a session",
			call:   authCall{header: nginxHeaders("GET", "http://app.example.com/dash", "X-Auth-Request-Email", "alice@example.com", "X-Forwarded-User", "alice@example.com", "Remote-Email", "alice@example.com")},
			status: 401},
		{name: "nginx forged session cookie",
			call:   authCall{header: nginxHeaders("GET", "http://app.example.com/dash"), cookie: strings.Repeat("A", session.TokenLen)},
			status: 401},
		{name: "nginx signed in",
			call:   authCall{header: nginxHeaders("GET", "http://app.example.com/dash"), cookie: aliceTok},
			status: 200, identity: "alice@example.com"},
		{name: "nginx signed in, not on the rule's list",
			call:   authCall{header: nginxHeaders("GET", "http://app.example.com/admin/users"), cookie: aliceTok},
			status: 403},
		{name: "nginx signed in, on the rule's list",
			call:   authCall{header: nginxHeaders("GET", "http://app.example.com/admin/users"), cookie: adminTok},
			status: 200, identity: "admin@example.com"},
		{name: "nginx rule path reached through repeated slashes",
			call:   authCall{header: nginxHeaders("GET", "http://app.example.com//admin//users"), cookie: aliceTok},
			status: 403},
		{name: "nginx rule path reached through escapes",
			call:   authCall{header: nginxHeaders("GET", "http://app.example.com/%61dmin/users"), cookie: aliceTok},
			status: 403},
		{name: "nginx deny rule beats a session",
			call:   authCall{header: nginxHeaders("GET", "http://app.example.com/blocked/x"), cookie: adminTok},
			status: 403},
		{name: "nginx dot segment out of a public path is refused with 403",
			call:   authCall{header: nginxHeaders("GET", "http://app.example.com/public/..%2f../admin/users"), cookie: aliceTok},
			status: 403, errCode: "bad_request"},
		{name: "nginx encoded dot segment is refused with 403",
			call:   authCall{header: nginxHeaders("GET", "http://app.example.com/public/%2e%2e/admin")},
			status: 403, errCode: "bad_request"},
		{name: "nginx client-sent X-Forwarded-Uri makes it ambiguous",
			call:   authCall{header: nginxHeaders("GET", "http://app.example.com/admin/users", "X-Forwarded-Uri", "/public/x"), cookie: aliceTok},
			status: 403, errCode: "bad_request"},
		{name: "nginx host rule denies one host",
			call:   authCall{header: nginxHeaders("GET", "http://internal.example.com/dash"), cookie: adminTok},
			status: 403},
		{name: "nginx host rule with a port still matches",
			call:   authCall{header: nginxHeaders("GET", "http://INTERNAL.example.com:8443/dash"), cookie: adminTok},
			status: 403},
		{name: "nginx wildcard host rule",
			call:   authCall{header: nginxHeaders("GET", "http://wiki.open.example.com/page")},
			status: 200},
		{name: "nginx wildcard host rule does not cover the apex",
			call:   authCall{header: nginxHeaders("GET", "http://open.example.com/page")},
			status: 401},
		{name: "nginx method rule",
			call:   authCall{header: nginxHeaders("DELETE", "http://app.example.com/api/items/1"), cookie: adminTok},
			status: 403},
		{name: "nginx method rule spares other methods",
			call:   authCall{header: nginxHeaders("GET", "http://app.example.com/api/items/1"), cookie: adminTok},
			status: 200, identity: "admin@example.com"},
		{name: "nginx method rule in lower case",
			call:   authCall{header: nginxHeaders("delete", "http://app.example.com/api/items/1"), cookie: adminTok},
			status: 403},

		{name: "nginx method override the rules decide differently",
			call:   authCall{header: nginxHeaders("GET", "http://app.example.com/api/items/1", "X-HTTP-Method-Override", "DELETE"), cookie: adminTok},
			status: 403, errCode: "bad_request"},
		{name: "nginx method override in another spelling",
			call:   authCall{header: nginxHeaders("POST", "http://app.example.com/api/items/1", "X_Http_Method", "delete"), cookie: adminTok},
			status: 403, errCode: "bad_request"},
		{name: "nginx method override hidden in a list",
			call:   authCall{header: nginxHeaders("GET", "http://app.example.com/api/items/1", "X-Method-Override", "GET, DELETE"), cookie: adminTok},
			status: 403, errCode: "bad_request"},
		{name: "nginx method override sent twice",
			call:   authCall{header: nginxHeaders("GET", "http://app.example.com/api/items/1", "X-Http-Method-Override", "DELETE", "X-Http-Method-Override", "GET"), cookie: adminTok},
			status: 403, errCode: "bad_request"},
		{name: "nginx method override decided the same",
			call:   authCall{header: nginxHeaders("GET", "http://app.example.com/api/items/1", "X-HTTP-Method-Override", "PUT"), cookie: adminTok},
			status: 200, identity: "admin@example.com"},
		{name: "forwarded method override the rules decide differently",
			call:   authCall{header: forwardedHeaders("GET", "https", "app.example.com", "/api/items/1", "X-HTTP-Method-Override", "DELETE"), cookie: adminTok},
			status: 400, errCode: "bad_request"},
		{name: "forwarded matrix parameter into a denied path",
			call:   authCall{header: forwardedHeaders("GET", "https", "app.example.com", "/blocked;x/y"), cookie: adminTok},
			status: 403},

		{name: "forwarded public path",
			call:   authCall{header: forwardedHeaders("GET", "https", "app.example.com", "/public/x")},
			status: 200},
		{name: "forwarded anonymous browser is redirected with the absolute URL",
			call:   authCall{header: forwardedHeaders("GET", "http", "app.example.com", "/dash?a=1&b=2", "Accept", html)},
			status: 302, location: login("http://app.example.com/dash?a=1&b=2")},
		{name: "forwarded anonymous browser on a wildcard host with port",
			call:   authCall{header: forwardedHeaders("HEAD", "https", "wiki.apps.example.com:8443", "/x", "Accept", html)},
			status: 302, location: login("https://wiki.apps.example.com:8443/x")},
		{name: "forwarded host outside redirect.allowed_hosts gets no rd",
			call:   authCall{header: forwardedHeaders("GET", "http", "other.example.org", "/dash", "Accept", html)},
			status: 302, location: login("")},
		{name: "forwarded allowed host on another port gets no rd",
			call:   authCall{header: forwardedHeaders("GET", "http", "app.example.com:8081", "/dash", "Accept", html)},
			status: 302, location: login("")},
		{name: "forwarded anonymous API call",
			call:   authCall{header: forwardedHeaders("GET", "http", "app.example.com", "/api/items", "Accept", "application/json")},
			status: 401, errCode: "unauthenticated"},
		{name: "forwarded anonymous form post",
			call:   authCall{header: forwardedHeaders("POST", "http", "app.example.com", "/dash", "Accept", html)},
			status: 401, errCode: "unauthenticated"},
		{name: "forwarded signed in",
			call:   authCall{header: forwardedHeaders("GET", "https", "app.example.com", "/dash"), cookie: aliceTok},
			status: 200, identity: "alice@example.com"},
		{name: "forwarded not permitted",
			call:   authCall{header: forwardedHeaders("GET", "https", "app.example.com", "/admin/"), cookie: aliceTok},
			status: 403, errCode: "forbidden"},
		{name: "forwarded deny rule",
			call:   authCall{header: forwardedHeaders("GET", "https", "app.example.com", "/blocked"), cookie: adminTok},
			status: 403, errCode: "forbidden"},
		{name: "forwarded bad path is a 400",
			call:   authCall{header: forwardedHeaders("GET", "https", "app.example.com", "/public/%2e%2e/admin/"), cookie: aliceTok},
			status: 400, errCode: "bad_request"},
		{name: "forwarded client-sent X-Original-URL makes it ambiguous",
			call:   authCall{header: forwardedHeaders("GET", "https", "app.example.com", "/admin/users", "X-Original-URL", "https://app.example.com/public/x", "X-Original-Method", "GET"), cookie: aliceTok},
			status: 403, errCode: "bad_request"},
		{name: "forwarded missing method",
			call:   authCall{header: http.Header{"X-Forwarded-Proto": {"http"}, "X-Forwarded-Host": {"app.example.com"}, "X-Forwarded-Uri": {"/dash"}}, cookie: aliceTok},
			status: 400, errCode: "bad_request"},
		{name: "no description of the original request",
			call:   authCall{header: http.Header{"Accept": {html}}, cookie: aliceTok},
			status: 400, errCode: "bad_request"},
		{name: "forwarded cross-site WebSocket",
			call:   authCall{header: forwardedHeaders("GET", "https", "app.example.com", "/ws", "Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==", "Origin", "https://evil.example.org"), cookie: aliceTok},
			status: 403},
		{name: "forwarded WebSocket without Origin",
			call:   authCall{header: forwardedHeaders("GET", "https", "app.example.com", "/ws", "Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="), cookie: aliceTok},
			status: 403},
		{name: "forwarded same-site WebSocket",
			call:   authCall{header: forwardedHeaders("GET", "https", "app.example.com", "/ws", "Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==", "Origin", "https://app.example.com"), cookie: aliceTok},
			status: 200, identity: "alice@example.com"},
		{name: "forwarded cross-site upgrade to another protocol",
			call:   authCall{header: forwardedHeaders("GET", "https", "app.example.com", "/chat", "Upgrade", "irc", "Origin", "https://evil.example.org"), cookie: aliceTok},
			status: 403},
		{name: "nginx cross-site WebSocket",
			call:   authCall{header: nginxHeaders("GET", "http://app.example.com/ws", "Upgrade", "websocket", "Origin", "http://evil.example.org"), cookie: aliceTok},
			status: 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := h.auth(t, tc.call)
			if resp.StatusCode != tc.status {
				t.Fatalf("status = %d, want %d\n%s", resp.StatusCode, tc.status, resp.body)
			}
			if got := resp.Header.Get("Location"); got != tc.location {
				t.Errorf("Location = %q, want %q", got, tc.location)
			}
			for _, k := range append(identityHeaders, groupHeaders...) {
				want := tc.identity
				if strings.Contains(k, "Groups") {
					want = ""
				}
				if got := resp.Header.Get(k); got != want {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
				// A 200 names every header, empty or not, so proxies that
				// copy them overwrite the client's copies.
				if _, present := resp.Header[k]; present != (resp.StatusCode == http.StatusOK) {
					t.Errorf("%s present = %v on a %d", k, present, resp.StatusCode)
				}
			}
			if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control = %q, want no-store", cc)
			}
			// nginx keeps its connection to Gatehouse open only after an
			// answer without a body: a 200 is all headers.
			if resp.StatusCode == http.StatusOK && (resp.body != "" || resp.Header.Get("Content-Length") != "0") {
				t.Errorf("200 carries a body %q (Content-Length %q)", resp.body, resp.Header.Get("Content-Length"))
			}
			if tc.errCode != "" {
				var body map[string]string
				if err := json.Unmarshal([]byte(resp.body), &body); err != nil || body["error"] != tc.errCode {
					t.Errorf("body = %q, want error %q", resp.body, tc.errCode)
				}
			}
		})
	}
	if n := h.up.Count(); n != 0 {
		t.Fatalf("forward-auth reached the upstream %d times", n)
	}
}

func TestForwardAuthRefusesUntrustedPeers(t *testing.T) {
	for _, tc := range []struct {
		name    string
		trusted []netip.Prefix
	}{
		{"no trusted proxies", nil},
		{"another network trusted", []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs logbuf.Buffer
			h := newHarness(t, func(o *Options) {
				o.TrustedProxies = tc.trusted
				o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
			})
			b := h.browser()
			b.signIn("alice@example.com", "/")
			tok := b.sessionCookie()
			for _, hdr := range []http.Header{
				nginxHeaders("GET", "http://app.example.com/dash"),
				forwardedHeaders("GET", "http", "app.example.com", "/dash"),
				// The front server's own marker cannot be forged.
				nginxHeaders("GET", "http://app.example.com/dash", "X-Gatehouse-Peer-Trusted", "1", "X_Gatehouse_Peer_Trusted", "1"),
				forwardedHeaders("GET", "http", "app.example.com", "/dash", "X-Forwarded-For", "127.0.0.1"),
			} {
				resp := h.auth(t, authCall{header: hdr, cookie: tok})
				if resp.StatusCode != http.StatusUnauthorized {
					t.Fatalf("status = %d, want 401", resp.StatusCode)
				}
				if resp.Header.Get("X-Auth-Request-Email") != "" {
					t.Fatal("identity given to an untrusted peer")
				}
				if !strings.Contains(resp.body, "untrusted_proxy") {
					t.Fatalf("body = %q", resp.body)
				}
			}
			if !strings.Contains(logs.String(), "server.trusted_proxies") {
				t.Fatalf("no log line for the untrusted peer:\n%s", logs.String())
			}
			if strings.Contains(logs.String(), tok) {
				t.Fatal("session token in the log")
			}
		})
	}
}

func TestForwardAuthFailsClosedOnStoreError(t *testing.T) {
	h := faHarness(t, func(o *Options) { o.SessionCacheTTL = time.Nanosecond })
	b := h.browser()
	b.signIn("alice@example.com", "/")
	tok := b.sessionCookie()
	if err := h.store.Close(); err != nil {
		t.Fatal(err)
	}
	for _, hdr := range []http.Header{
		nginxHeaders("GET", "http://app.example.com/dash"),
		forwardedHeaders("GET", "http", "app.example.com", "/dash"),
	} {
		resp := h.auth(t, authCall{header: hdr, cookie: tok})
		if resp.StatusCode < 500 || resp.Header.Get("X-Auth-Request-Email") != "" {
			t.Fatalf("status = %d, identity %q: want a 5xx without identity", resp.StatusCode, resp.Header.Get("X-Auth-Request-Email"))
		}
	}
}

func TestForwardAuthRevokedSessionIsRefused(t *testing.T) {
	h := faHarness(t)
	b := h.browser()
	b.signIn("alice@example.com", "/")
	tok := b.sessionCookie()
	call := authCall{header: nginxHeaders("GET", "http://app.example.com/dash"), cookie: tok}
	if resp := h.auth(t, call); resp.StatusCode != http.StatusOK {
		t.Fatalf("before sign-out: %d", resp.StatusCode)
	}
	page := b.get("/.gatehouse/account")
	if resp := b.post("/.gatehouse/logout", url.Values{"_csrf": {b.csrf(page.body)}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-out: %d", resp.StatusCode)
	}
	if resp := h.auth(t, call); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("after sign-out: %d, want 401", resp.StatusCode)
	}
}

// hostClient is a browser that resolves every host name to the harness's
// listener, so one gateway can be reached as auth.example.com and
// app.example.com.
type hostClient struct {
	t     *testing.T
	port  string
	c     *http.Client // the browser, with its cookie jar
	proxy *http.Client // the fronting proxy: no jar, it sends what it is given
}

func newHostClient(t *testing.T, h *harness) *hostClient {
	u, _ := url.Parse(h.URL)
	addr := u.Host
	jar, _ := cookiejar.New(nil)
	d := &net.Dialer{Timeout: 5 * time.Second}
	tr := &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return d.DialContext(ctx, network, addr)
	}}
	t.Cleanup(tr.CloseIdleConnections)
	noFollow := func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &hostClient{t: t, port: u.Port(),
		c:     &http.Client{Jar: jar, Timeout: 20 * time.Second, CheckRedirect: noFollow, Transport: tr},
		proxy: &http.Client{Timeout: 20 * time.Second, CheckRedirect: noFollow, Transport: tr},
	}
}

// do sends a browser request.
func (c *hostClient) do(method, rawURL string, body io.Reader, hdr http.Header) response {
	c.t.Helper()
	return c.send(c.c, method, rawURL, body, hdr)
}

func (c *hostClient) send(client *http.Client, method, rawURL string, body io.Reader, hdr http.Header) response {
	c.t.Helper()
	req, err := http.NewRequest(method, rawURL, body)
	if err != nil {
		c.t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := client.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, rawURL, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return response{resp, string(data)}
}

// TestForwardAuthSiblingHostsShareOneSignIn walks the multi-host setup: a
// request for app.example.com is sent to sign in on auth.example.com, comes
// back to the absolute original URL, and the shared-domain cookie then
// passes forward-auth for app.example.com, but not for a host outside the
// cookie domain.
func TestForwardAuthSiblingHostsShareOneSignIn(t *testing.T) {
	h := faHarness(t, func(o *Options) {
		port := o.PublicURL.Port()
		o.PublicURL = &url.URL{Scheme: "http", Host: "auth.example.com:" + port}
		o.Session.CookieDomain = "example.com"
		o.Settings.AllowedRedirectHosts = []string{"*.example.com:" + port}
	})
	c := newHostClient(t, h)
	authOrigin := "http://auth.example.com:" + c.port
	appHost := "app.example.com:" + c.port
	original := "http://" + appHost + "/reports/q3?year=2024&view=full"

	// The fronting proxy asks about the anonymous request.
	fa := c.send(c.proxy, http.MethodGet, authOrigin+"/.gatehouse/auth", nil,
		forwardedHeaders("GET", "http", appHost, "/reports/q3?year=2024&view=full", "Accept", "text/html"))
	wantLogin := authOrigin + "/.gatehouse/login?rd=" + url.QueryEscape(original)
	if fa.StatusCode != http.StatusFound || fa.Header.Get("Location") != wantLogin {
		t.Fatalf("forward-auth: %d Location %q, want 302 %q", fa.StatusCode, fa.Header.Get("Location"), wantLogin)
	}

	// The browser follows it and signs in on the auth host.
	page := c.do(http.MethodGet, wantLogin, nil, http.Header{"Accept": {"text/html"}})
	if page.StatusCode != http.StatusOK {
		t.Fatalf("login page: %d", page.StatusCode)
	}
	form := http.Header{
		"Content-Type":   {"application/x-www-form-urlencoded"},
		"Accept":         {"text/html"},
		"Origin":         {authOrigin},
		"Sec-Fetch-Site": {"same-origin"},
	}
	csrf := func(p string) string {
		m := csrfRE.FindStringSubmatch(p)
		if m == nil {
			t.Fatalf("no CSRF token in page:\n%s", p)
		}
		return m[1]
	}
	codePage := c.do(http.MethodPost, authOrigin+"/.gatehouse/login", strings.NewReader(url.Values{
		"email": {"alice@example.com"}, "rd": {original}, "_csrf": {csrf(page.body)},
	}.Encode()), form)
	if codePage.StatusCode != http.StatusOK {
		t.Fatalf("request code: %d\n%s", codePage.StatusCode, codePage.body)
	}
	code := h.mail.WaitFor(t, "alice@example.com", 1).Code()
	done := c.do(http.MethodPost, authOrigin+"/.gatehouse/verify", strings.NewReader(url.Values{
		"email": {"alice@example.com"}, "code": {code}, "rd": {original}, "_csrf": {csrf(codePage.body)},
	}.Encode()), form)
	if done.StatusCode != http.StatusSeeOther || done.Header.Get("Location") != original {
		t.Fatalf("verify: %d Location %q, want 303 %q", done.StatusCode, done.Header.Get("Location"), original)
	}
	var setCookie string
	for _, sc := range done.Header.Values("Set-Cookie") {
		if strings.HasPrefix(sc, h.srv.cookie+"=") {
			setCookie = sc
		}
	}
	if !strings.Contains(setCookie, "Domain=example.com") || !strings.Contains(setCookie, "HttpOnly") {
		t.Fatalf("session cookie %q lacks Domain=example.com or HttpOnly", setCookie)
	}

	// The browser now sends the shared cookie to the app host, and the
	// proxy's question is answered with the identity.
	for _, tc := range []struct {
		name, host string
		status     int
		identity   string
	}{
		{"sibling host", appHost, http.StatusOK, "alice@example.com"},
		{"another sibling", "wiki.example.com:" + c.port, http.StatusOK, "alice@example.com"},
		{"host outside the cookie domain", "app.example.org:" + c.port, http.StatusUnauthorized, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, _ := url.Parse("http://" + tc.host + "/")
			hdr := forwardedHeaders("GET", "http", tc.host, "/reports/q3")
			for _, ck := range c.c.Jar.Cookies(u) {
				hdr.Add("Cookie", ck.Name+"="+ck.Value)
			}
			resp := c.send(c.proxy, http.MethodGet, authOrigin+"/.gatehouse/auth", nil, hdr)
			if resp.StatusCode != tc.status || resp.Header.Get("Remote-User") != tc.identity {
				t.Fatalf("status %d Remote-User %q, want %d %q", resp.StatusCode, resp.Header.Get("Remote-User"), tc.status, tc.identity)
			}
		})
	}
}

// TestForwardAuthPathSpellingsGetTheSameChecks: "/.gatehouse/auth/" and
// "/.gatehouse/auth//" are the same endpoint with the same checks — a
// request described twice is refused there too, never decided on one copy.
func TestForwardAuthPathSpellingsGetTheSameChecks(t *testing.T) {
	h := faHarness(t)
	for _, path := range []string{"/.gatehouse/auth", "/.gatehouse/auth/", "/.gatehouse/auth//", "//.gatehouse//auth"} {
		t.Run(path, func(t *testing.T) {
			raw := "GET " + path + " HTTP/1.1\r\nHost: " + h.addr() + "\r\n" +
				"X-Forwarded-Method: GET\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: app.example.com\r\n" +
				"X-Forwarded-Uri: /public/x\r\nX-Forwarded-Uri: /blocked/x\r\nConnection: close\r\n\r\n"
			resps := rawExchange(t, h.addr(), raw)
			if len(resps) != 1 || resps[0].status != http.StatusBadRequest {
				t.Fatalf("a request described twice: %+v, want one 400", resps)
			}
			once := "GET " + path + " HTTP/1.1\r\nHost: " + h.addr() + "\r\n" +
				"X-Forwarded-Method: GET\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: app.example.com\r\n" +
				"X-Forwarded-Uri: /blocked/x\r\nConnection: close\r\n\r\n"
			if resps := rawExchange(t, h.addr(), once); len(resps) != 1 || resps[0].status != http.StatusForbidden {
				t.Fatalf("the deny rule: %+v, want one 403", resps)
			}
		})
	}
}
