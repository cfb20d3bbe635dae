package gateway

import (
	"net/http"
	"strings"
	"testing"
)

// TestSessionCookieSpellingsAgree: however the Cookie header spaces or
// repeats the session cookie, the proxy and Gatehouse's own endpoints read
// it the same way (one parser), and the token never reaches the app.
func TestSessionCookieSpellingsAgree(t *testing.T) {
	for _, spell := range []struct{ name, format string }{
		{"tab before it", "a=1;\t%s=%s"},
		{"no space", "a=1;%s=%s"},
		{"spaces around", "a=1 ;  %s=%s ; b=2"},
		{"second Cookie line", "a=1\r\nCookie: %s=%s"},
	} {
		t.Run(spell.name, func(t *testing.T) {
			h := newHarness(t)
			b := h.browser()
			b.signIn("tess@example.com", "/")
			token := b.sessionCookie()
			cookie := strings.Replace(strings.Replace(spell.format, "%s", h.srv.cookie, 1), "%s", token, 1)
			raw := func(method, path, extra string, body ...string) rawResponse {
				t.Helper()
				resps := rawExchange(t, h.addr(), method+" "+path+" HTTP/1.1\r\nHost: "+h.addr()+"\r\nCookie: "+cookie+"\r\n"+extra+"Connection: close\r\n\r\n"+strings.Join(body, ""))
				if len(resps) != 1 {
					t.Fatalf("responses %+v", resps)
				}
				return resps[0]
			}
			app := raw("GET", "/dashboard", "")
			// Every spelling carries the session: the proxy lets it in...
			if app.status != http.StatusOK {
				t.Fatalf("GET /dashboard = %d, want 200 with the session", app.status)
			}
			if got := h.up.Last(t).Header.Values("Cookie"); strings.Contains(strings.Join(got, ";"), token) {
				t.Fatalf("the session token reached the app: %q", got)
			}
			// ...and Gatehouse's own endpoints see the same session, so
			// signing out there ends the one the proxy honours.
			if own := raw("GET", "/.gatehouse/api/session", "Accept: application/json\r\n"); own.status != http.StatusOK {
				t.Fatalf("the API does not see the session the proxy honoured: %d", own.status)
			}
			if out := raw("POST", "/.gatehouse/api/sign-out", "Content-Type: application/json\r\nOrigin: "+h.URL+"\r\nContent-Length: 2\r\n", "{}"); out.status != http.StatusOK {
				t.Fatalf("sign-out: %d %s", out.status, out.body)
			}
			if after := raw("GET", "/dashboard", "Accept: application/json\r\n"); after.status != http.StatusUnauthorized {
				t.Fatalf("after sign-out the proxy still honours the session: %d", after.status)
			}
		})
	}
}
