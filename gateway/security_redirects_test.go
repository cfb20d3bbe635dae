package gateway

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	xhtml "golang.org/x/net/html"
)

// openRedirects is the known corpus of redirect-validator bypasses, aimed at
// evil.example. Each must fall back to "/" at every endpoint.
func openRedirects(self string) []string {
	host := strings.TrimPrefix(self, "http://")
	return []string{
		"//evil.example", "///evil.example", "////evil.example", "//evil.example/%2e%2e",
		"/\\evil.example", "\\/evil.example", "\\\\evil.example", "/\\/evil.example",
		"/\t/evil.example", "/\n/evil.example", "/\r/evil.example", " //evil.example", "\t//evil.example",
		"/%09/evil.example", "/%0a/evil.example", "/%0d/evil.example", "/%20/evil.example",
		"/%2F/evil.example", "/%2f%2fevil.example", "%2F%2Fevil.example", "/%5Cevil.example", "%5C%5Cevil.example",
		"/%252F/evil.example", "/%25252F%25252Fevil.example", "/%2e%2e//evil.example", "/..//evil.example",
		"/./\\evil.example",
		"https:evil.example", "https:/evil.example", "https:\\\\evil.example", "http:evil.example", "https:/\\evil.example",
		"https://evil.example", "HTTPS://EVIL.EXAMPLE/", "http://evil.example", "ftp://evil.example",
		"https://" + host + "@evil.example", "http://" + host + "@evil.example", "//" + host + "@evil.example",
		"https://evil.example\\@" + host, "https://evil.example#@" + host, "https://evil.example?@" + host,
		"https://evil.example/\\" + host, "http://" + host + ".evil.example", "http://" + host + "%2f@evil.example",
		"http://" + host + "%40evil.example", "http://" + host + ":@evil.example", "http://evil.example\t" + host,
		"//%65vil.example", "//evil%2Eexample", "//evil。example", "／／evil.example", "/／evil.example",
		"\u2215\u2215evil.example", "/\u2215evil.example", "\uff3c\uff3cevil.example",
		"javascript:alert(1)", "JaVaScRiPt:alert(1)", "java\tscript:alert(1)", " javascript:alert(1)",
		"javascript://%0aalert(1)", "data:text/html,<script>alert(1)</script>", "vbscript:msgbox(1)",
		"/\x00/evil.example", "/%00/evil.example",
	}
}

// landsHome reports whether a redirect target, read the way browsers read
// URLs (tabs and newlines dropped, "\" as "/"), stays on the public URL's
// origin with a path that no later hop can read as another host. Most of
// the corpus falls back to "/" exactly; a few become harmless same-site
// paths ("/%20/evil.example").
func landsHome(self, target string) bool {
	t := strings.NewReplacer("\t", "", "\n", "", "\r", "", "\\", "/").Replace(target)
	base, _ := url.Parse(self + "/.gatehouse/verify")
	ref, err := url.Parse(t)
	if err != nil || target == "" {
		return false
	}
	u := base.ResolveReference(ref)
	return u.Scheme+"://"+u.Host == self && u.User == nil && strings.HasPrefix(u.Path, "/") &&
		!strings.HasPrefix(u.Path, "//") && !strings.Contains(strings.ToLower(u.Path), "evil.example/")
}

// hiddenRD returns the value of the rd field of the page's form.
func hiddenRD(body string) (string, bool) {
	z := xhtml.NewTokenizer(strings.NewReader(body))
	for {
		switch z.Next() {
		case xhtml.ErrorToken:
			return "", false
		case xhtml.StartTagToken, xhtml.SelfClosingTagToken:
			tok := z.Token()
			if tok.Data != "input" {
				continue
			}
			name, value := "", ""
			for _, a := range tok.Attr {
				switch a.Key {
				case "name":
					name = a.Val
				case "value":
					value = a.Val
				}
			}
			if name == "rd" {
				return value, true
			}
		}
	}
}

func TestEveryRedirectTargetFallsBackHome(t *testing.T) {
	h := newHarness(t, trustLoopback, func(o *Options) {
		o.Settings.OTP.PerAddress = 1000
		o.Settings.OTP.PerIP = 1000
		o.Settings.AllowedRedirectHosts = []string{"app.example"}
	})
	for _, rd := range openRedirects(h.URL) {
		t.Run(url.QueryEscape(rd), func(t *testing.T) {
			b := h.browser()
			login := b.get("/.gatehouse/login?rd=" + url.QueryEscape(rd))
			if v, ok := hiddenRD(login.body); !ok || !landsHome(h.URL, v) {
				t.Errorf("login page rd = %q", v)
			}
			code := b.post("/.gatehouse/login", url.Values{"email": {"rd@example.com"}, "rd": {rd}, "_csrf": {b.csrf(login.body)}})
			if v, ok := hiddenRD(code.body); !ok || !landsHome(h.URL, v) {
				t.Errorf("code page rd = %q", v)
			}
			msg := h.mail.WaitFor(t, "rd@example.com", len(h.mailsTo("rd@example.com")))
			// The one-click link with this rd.
			link := msg.Link()
			token := linkToken(link)
			confirm := b.get("/.gatehouse/link?t=" + token + "&rd=" + url.QueryEscape(rd))
			if v, ok := hiddenRD(confirm.body); !ok || !landsHome(h.URL, v) {
				t.Errorf("link confirmation rd = %q", v)
			}
			viaLink := b.post("/.gatehouse/link", url.Values{"token": {token}, "rd": {rd}, "_csrf": {b.csrf(confirm.body)}})
			if viaLink.StatusCode != http.StatusSeeOther || !landsHome(h.URL, viaLink.Header.Get("Location")) {
				t.Errorf("after the link: %d to %q", viaLink.StatusCode, viaLink.Header.Get("Location"))
			}
			account := b.get("/.gatehouse/account")
			out := b.post("/.gatehouse/logout", url.Values{"rd": {rd}, "_csrf": {b.csrf(account.body)}})
			if out.StatusCode != http.StatusSeeOther || !landsHome(h.URL, out.Header.Get("Location")) {
				t.Errorf("after sign-out: %d to %q", out.StatusCode, out.Header.Get("Location"))
			}
			// And after signing in with the code.
			page := b.post("/.gatehouse/login", url.Values{"email": {"rd@example.com"}, "rd": {rd}, "_csrf": {b.csrf(account.body)}})
			msg = h.mail.WaitFor(t, "rd@example.com", len(h.mailsTo("rd@example.com")))
			in := b.post("/.gatehouse/verify", url.Values{"email": {"rd@example.com"}, "code": {msg.Code()}, "rd": {rd}, "_csrf": {b.csrf(page.body)}})
			if in.StatusCode != http.StatusSeeOther || !landsHome(h.URL, in.Header.Get("Location")) {
				t.Errorf("after sign-in: %d to %q", in.StatusCode, in.Header.Get("Location"))
			}
		})
	}
}

// TestAllowedRedirectsStillWork keeps the validator honest: same-site paths
// and allowed hosts are kept, so the fallbacks above are not a validator
// that refuses everything.
func TestAllowedRedirectsStillWork(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.Settings.AllowedRedirectHosts = []string{"app.example"} })
	for _, rd := range []string{"/dashboard?tab=2", "/a/b/", h.URL + "/x", "http://app.example/y"} {
		b := h.browser()
		resp := b.signIn("ok@example.com", rd)
		if loc := resp.Header.Get("Location"); loc != rd {
			t.Errorf("rd %q: redirected to %q", rd, loc)
		}
	}
}

// TestForwardAuthRedirectStaysOnThePublicURL: the sign-in redirect a
// fronting proxy passes on points at the public URL, and an original host
// that is not allowed does not survive as rd.
func TestForwardAuthRedirectStaysOnThePublicURL(t *testing.T) {
	h := newHarness(t, trustLoopback)
	for _, host := range []string{"evil.example", "evil.example:443", h.URL[len("http://"):] + ".evil.example", "evil.example\\@" + h.URL[len("http://"):]} {
		req, _ := http.NewRequest(http.MethodGet, h.URL+"/.gatehouse/auth", nil)
		req.Header.Set("Accept", "text/html")
		req.Header.Set("X-Forwarded-Method", "GET")
		req.Header.Set("X-Forwarded-Proto", "https")
		req.Header.Set("X-Forwarded-Host", host)
		req.Header.Set("X-Forwarded-Uri", "/app")
		resp := h.browser().do(req)
		loc := resp.Header.Get("Location")
		if resp.StatusCode == http.StatusFound || loc != "" {
			u, err := url.Parse(loc)
			if err != nil || u.Scheme+"://"+u.Host != h.URL || u.Path != "/.gatehouse/login" {
				t.Errorf("host %q: redirect to %q", host, loc)
				continue
			}
			rd := u.Query().Get("rd")
			b := h.browser()
			if v, ok := hiddenRD(b.get("/.gatehouse/login?rd=" + url.QueryEscape(rd)).body); !ok || !landsHome(h.URL, v) {
				t.Errorf("host %q: rd %q survives as %q", host, rd, v)
			}
		} else if resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusBadRequest {
			t.Errorf("host %q: status %d", host, resp.StatusCode)
		}
	}
}
