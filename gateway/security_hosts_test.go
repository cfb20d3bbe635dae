package gateway

import (
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"testing"

	"gatehouse/access"
	"gatehouse/internal/apptest"
)

// TestHostSpellingsCannotDodgeHostRules: the access rules, the routes and
// forward-auth see one normalized host. A bracketed name ("[wiki.example]"),
// which is no host at all, is refused instead of matching no rule while a
// route forwards it to the host's upstream; other spellings of the same
// host (case, port, trailing dot) get the host's rule.
func TestHostSpellingsCannotDodgeHostRules(t *testing.T) {
	wiki := apptest.Start(t)
	wikiURL, _ := url.Parse(wiki.URL)
	h := newHarness(t, func(o *Options) {
		o.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
		o.Routes = []Route{{Host: "wiki.example.test", Upstream: wikiURL}}
		o.Settings.DefaultPolicy = access.PolicyPublic
		o.Settings.Rules = []access.Rule{{Hosts: []string{"wiki.example.test"}, Policy: access.PolicyDeny}}
	})
	for _, tc := range []struct {
		host string
		want int
	}{
		{"[wiki.example.test]:80", http.StatusBadRequest},
		{"[wiki.example.test]", http.StatusBadRequest},
		{"wiki.example.test", http.StatusForbidden},
		{"WIKI.Example.Test.:80", http.StatusForbidden},
		{"wiki.example.test.", http.StatusForbidden},
		{"wiki_example.test", http.StatusOK}, // a Compose-style name: no rule names it
		{"wiki..example.test", http.StatusBadRequest},
		{"other.example.test", http.StatusOK},
	} {
		t.Run(tc.host, func(t *testing.T) {
			resps := rawExchange(t, h.addr(), "GET /page HTTP/1.1\r\nHost: "+tc.host+"\r\nConnection: close\r\n\r\n")
			if len(resps) != 1 || resps[0].status != tc.want {
				t.Fatalf("responses %+v, want one %d", resps, tc.want)
			}
		})
	}
	if n := wiki.Count(); n != 0 {
		t.Fatalf("the wiki's upstream was reached %d times", n)
	}
	t.Run("forward-auth", func(t *testing.T) {
		for _, host := range []string{"[wiki.example.test]", "[wiki.example.test]:443"} {
			resp := h.auth(t, authCall{header: forwardedHeaders("GET", "https", host, "/page")})
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("X-Forwarded-Host %s: status %d, want 400", host, resp.StatusCode)
			}
		}
		resp := h.auth(t, authCall{header: forwardedHeaders("GET", "https", "Wiki.Example.Test.", "/page")})
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("X-Forwarded-Host Wiki.Example.Test.: status %d, want 403", resp.StatusCode)
		}
		if !strings.Contains(resp.body, "forbidden") {
			t.Errorf("body %q", resp.body)
		}
	})
}
