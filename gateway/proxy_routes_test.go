package gateway

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"gatehouse/access"
)

// namedUpstream answers "<name> <path>" and records the Host it was sent.
func namedUpstream(t *testing.T, name string) *url.URL {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, name+" "+r.URL.Path+" "+r.Header.Get("X-Auth-Request-Email"))
	}))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	return u
}

func TestRoutesPrecedence(t *testing.T) {
	api := namedUpstream(t, "api")
	apiV1 := namedUpstream(t, "api-v1")
	docs := namedUpstream(t, "docs")
	tenants := namedUpstream(t, "tenants")
	based := namedUpstream(t, "based")
	basedURL := *based
	basedURL.Path = "/base/"
	h := newHarness(t, func(o *Options) {
		o.Routes = []Route{
			{Host: "api.example.com", PathPrefix: "/v1", Upstream: apiV1}, // host and prefix
			{Host: "API.example.com", Upstream: api},                      // host only; case-insensitive
			{PathPrefix: "/docs/", Upstream: docs},                        // prefix only, any host
			{Host: "*.tenants.example.com", Upstream: tenants},            // subdomain wildcard
			{PathPrefix: "/mounted", Upstream: &basedURL},                 // upstream with a base path
			{PathPrefix: "/v1", Upstream: docs},                           // never reached for api.example.com/v1
		}
		o.Settings.Rules = []access.Rule{
			{Paths: []string{"/public/**"}, Policy: access.PolicyPublic},
			{Paths: []string{"/docs/**"}, Policy: access.PolicyPublic},
			{Paths: []string{"/v1/admin/**"}, Policy: access.PolicyDeny},
		}
	})
	signedIn := h.browser()
	signedIn.signIn("rita@example.com", "/")
	cookie := h.srv.cookie + "=" + signedIn.sessionCookie()

	for _, tc := range []struct {
		name     string
		cookie   string
		host     string
		path     string
		want     int
		wantBody string
	}{
		{"host and prefix route first", cookie, "api.example.com", "/v1/users", 200, "api-v1 /v1/users rita@example.com"},
		{"prefix matches whole segments only", cookie, "api.example.com", "/v1x", 200, "api /v1x rita@example.com"},
		{"host route with port in Host", cookie, "api.example.com:8443", "/other", 200, "api /other rita@example.com"},
		{"host route, fully qualified with a trailing dot", cookie, "api.example.com.", "/other", 200, "api /other rita@example.com"},
		{"host route, host in upper case", cookie, "API.EXAMPLE.COM", "/other", 200, "api /other rita@example.com"},
		{"prefix route on any host", cookie, "www.example.com", "/docs/intro", 200, "docs /docs/intro "},
		{"prefix route, exact path", cookie, "www.example.com", "/docs", 200, "docs /docs "},
		{"later route for another host", cookie, "www.example.com", "/v1/users", 200, "docs /v1/users rita@example.com"},
		{"wildcard subdomain", cookie, "acme.tenants.example.com", "/home", 200, "tenants /home rita@example.com"},
		{"wildcard does not match the apex", cookie, "tenants.example.com", "/home", 200, "app /home"},
		{"base path is prepended", cookie, "www.example.com", "/mounted/x", 200, "based /base/mounted/x rita@example.com"},
		{"no route: default upstream", cookie, "www.example.com", "/home", 200, "app /home"},
		{"access rules apply on routes: public", "", "www.example.com", "/docs/intro", 200, "docs /docs/intro "},
		{"public path strips identity on routes", cookie, "api.example.com", "/public/x", 200, "api /public/x "},
		{"access rules apply on routes: sign in first", "", "api.example.com", "/v1/users", 303, ""},
		{"access rules apply on routes: deny", cookie, "api.example.com", "/v1/admin/x", 403, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, h.URL+tc.path, nil)
			req.Host = tc.host
			req.Header.Set("Accept", "text/html")
			if tc.cookie != "" {
				// Set by hand: the cookie jar keys on the Host header.
				req.Header.Set("Cookie", tc.cookie)
			}
			resp := h.browser().do(req)
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.want)
			}
			if tc.want == 200 && strings.TrimSpace(resp.body) != strings.TrimSpace(tc.wantBody) {
				t.Fatalf("body %q, want %q", resp.body, tc.wantBody)
			}
		})
	}
}

func TestRouteNeedsUpstream(t *testing.T) {
	for _, tc := range []struct {
		name  string
		route Route
	}{
		{"nil upstream", Route{PathPrefix: "/x"}},
		{"upstream without host", Route{PathPrefix: "/x", Upstream: &url.URL{Scheme: "http", Path: "/x"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := newHarness(t).opts
			opts.Routes = []Route{tc.route}
			if _, err := New(opts); err == nil || !strings.Contains(err.Error(), "route 0") {
				t.Fatalf("New = %v, want an error naming route 0", err)
			}
		})
	}
}
