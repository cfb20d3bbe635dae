package gateway

import (
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	xhtml "golang.org/x/net/html"

	"gatehouse/access"
	"gatehouse/session"
)

// markupProblems parses a page as a browser would and lists what a
// strict CSP page must not hold: a script without the page's nonce, an
// inline event handler, a javascript: or data: URL, or an element an
// injection would bring (img, svg, iframe, object, embed, base).
func markupProblems(body, nonce string) []string {
	var out []string
	z := xhtml.NewTokenizer(strings.NewReader(body))
	for {
		switch z.Next() {
		case xhtml.ErrorToken:
			return out
		case xhtml.StartTagToken, xhtml.SelfClosingTagToken:
			tok := z.Token()
			switch tok.Data {
			case "img", "svg", "iframe", "object", "embed", "base", "frame":
				out = append(out, "<"+tok.Data+"> element")
			}
			hasNonce := false
			for _, a := range tok.Attr {
				key := strings.ToLower(a.Key)
				val := strings.ToLower(strings.TrimSpace(a.Val))
				switch {
				case strings.HasPrefix(key, "on"):
					out = append(out, "event handler "+a.Key)
				case key == "nonce":
					hasNonce = a.Val == nonce
				case (key == "href" || key == "src" || key == "action" || key == "formaction") &&
					(strings.HasPrefix(val, "javascript:") || strings.HasPrefix(val, "data:")):
					out = append(out, a.Key+"="+a.Val)
				}
			}
			if tok.Data == "script" && !hasNonce {
				out = append(out, "script without the page's nonce")
			}
		}
	}
}

// checkPageHeaders asserts the headers every Gatehouse page carries and
// that every script on the page is allowed by its nonce and nothing else.
func checkPageHeaders(t *testing.T, name string, r response) string {
	t.Helper()
	if !strings.Contains(r.Header.Get("Content-Type"), "text/html") {
		t.Errorf("%s: not a page: %q", name, r.Header.Get("Content-Type"))
		return ""
	}
	csp := map[string]string{}
	for _, d := range strings.Split(r.Header.Get("Content-Security-Policy"), ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(d), " ")
		if k != "" {
			csp[k] = v
		}
	}
	want := map[string]string{"default-src": "'none'", "object-src": "'none'", "frame-ancestors": "'none'", "base-uri": "'none'"}
	for k, v := range want {
		if csp[k] != v {
			t.Errorf("%s: CSP %s %q, want %q", name, k, csp[k], v)
		}
	}
	nonce := ""
	for _, src := range strings.Fields(csp["script-src"]) {
		switch {
		case strings.HasPrefix(src, "'nonce-"):
			nonce = strings.TrimSuffix(strings.TrimPrefix(src, "'nonce-"), "'")
		case src == "'self'", src == "'strict-dynamic'":
		default:
			t.Errorf("%s: script-src allows %s", name, src)
		}
	}
	if len(nonce) < 16 {
		t.Errorf("%s: script-src has no usable nonce: %q", name, csp["script-src"])
	}
	for _, k := range []string{"style-src", "img-src", "form-action", "connect-src"} {
		for _, src := range strings.Fields(csp[k]) {
			if src == "*" || src == "'unsafe-inline'" || src == "'unsafe-eval'" || src == "http:" || src == "https:" {
				t.Errorf("%s: CSP %s allows %s", name, k, src)
			}
		}
	}
	for k, v := range map[string]string{
		"X-Frame-Options":        "DENY",
		"Referrer-Policy":        "no-referrer",
		"X-Content-Type-Options": "nosniff",
		"Cache-Control":          "no-store",
	} {
		if got := r.Header.Get(k); got != v {
			t.Errorf("%s: %s %q, want %q", name, k, got, v)
		}
	}
	for _, p := range markupProblems(r.body, nonce) {
		t.Errorf("%s: %s", name, p)
	}
	return nonce
}

func TestSignInPagesCarrySecurityHeaders(t *testing.T) {
	h := newHarness(t, func(o *Options) {
		o.Settings.Rules = append(o.Settings.Rules, access.Rule{Paths: []string{"/internal/**"}, Policy: access.PolicyDeny})
	})
	b := h.browser()
	pages := map[string]func() response{
		"login": func() response { return b.get("/.gatehouse/login?rd=/x") },
		"code":  func() response { return b.requestCode("ida@example.com", "/") },
		"login with a bad address": func() response {
			return b.post("/.gatehouse/login", url.Values{"email": {"nope"}, "_csrf": {b.csrf(b.get("/.gatehouse/login").body)}})
		},
		"wrong code": func() response {
			return b.post("/.gatehouse/verify", url.Values{"email": {"ida@example.com"}, "code": {"000000"}, "_csrf": {b.csrf(b.get("/.gatehouse/login").body)}})
		},
		"link confirmation": func() response { return b.get("/.gatehouse/link?t=" + strings.Repeat("A", session.TokenLen)) },
		"forbidden":         func() response { return b.get("/internal/x") },
		"not found":         func() response { return b.get("/.gatehouse/nope") },
		"csrf refusal": func() response {
			return b.post("/.gatehouse/login", url.Values{"email": {"ida@example.com"}})
		},
	}
	nonces := map[string]string{}
	for name, get := range pages {
		n1 := checkPageHeaders(t, name, get())
		n2 := checkPageHeaders(t, name+" again", get())
		if n1 != "" && n1 == n2 {
			t.Errorf("%s: the nonce did not change between two loads", name)
		}
		if other, ok := nonces[n1]; ok && n1 != "" {
			t.Errorf("%s and %s share a nonce", name, other)
		}
		nonces[n1] = name
	}
	b.signIn("ida@example.com", "/")
	checkPageHeaders(t, "account", b.get("/.gatehouse/account"))
}

// xssPayloads break out of text, attributes and URLs if not escaped.
var xssPayloads = []string{
	`<script>alert(1)</script>`,
	`"><img src=x onerror=alert(1)>`,
	`'onmouseover='alert(1)`,
	`javascript:alert(1)`,
	`</textarea><svg/onload=alert(1)>`,
}

func checkEscaped(t *testing.T, name string, r response) {
	t.Helper()
	nonce := ""
	if m := nonceAttrRE.FindStringSubmatch(r.body); m != nil {
		nonce = html.UnescapeString(m[1])
	}
	for _, p := range markupProblems(r.body, nonce) {
		t.Errorf("%s (%d): %s", name, r.StatusCode, p)
	}
	for _, p := range []string{"<script>alert", "<img src=x", "<svg/onload", "'onmouseover='"} {
		if strings.Contains(r.body, p) {
			t.Errorf("%s (%d): reflects %q unescaped", name, r.StatusCode, p)
		}
	}
}

var nonceAttrRE = regexp.MustCompile(`<script[^>]*\snonce="([^"]*)"`)

func TestReflectedValuesAreEscaped(t *testing.T) {
	h := newHarness(t, func(o *Options) {
		o.Settings.Rules = append(o.Settings.Rules, access.Rule{Paths: []string{"/internal/**"}, Policy: access.PolicyDeny})
	})
	// The checker itself must see an injection when there is one.
	for _, injected := range []string{`<p><img src=x onerror=alert(1)></p>`, `<input value='' onmouseover='alert(1)'>`, `<script>alert(1)</script>`, `<a href="javascript:alert(1)">`} {
		if len(markupProblems(injected, "n")) == 0 {
			t.Fatalf("markupProblems misses %s", injected)
		}
	}
	signedIn := h.browser()
	signedIn.signIn("jo@example.com", "/")
	for _, p := range xssPayloads {
		q := url.QueryEscape(p)
		b := h.browser()
		csrf := b.csrf(b.get("/.gatehouse/login").body)
		checkEscaped(t, "login rd", b.get("/.gatehouse/login?rd=/x"+q))
		checkEscaped(t, "login absolute rd", b.get("/.gatehouse/login?rd="+url.QueryEscape("https://evil.example/"+p)))
		checkEscaped(t, "login email", b.get("/.gatehouse/login?email="+q+"%40example.com"))
		checkEscaped(t, "login lang", b.get("/.gatehouse/login?lang="+q))
		checkEscaped(t, "login posted email", b.post("/.gatehouse/login", url.Values{"email": {p}, "rd": {"/" + p}, "_csrf": {csrf}}))
		checkEscaped(t, "login posted rd", b.post("/.gatehouse/login", url.Values{"email": {"jo@example.com"}, "rd": {"/" + p}, "lang": {p}, "_csrf": {csrf}}))
		checkEscaped(t, "verify", b.post("/.gatehouse/verify", url.Values{"email": {"jo@example.com"}, "code": {p}, "rd": {"/" + p}, "_csrf": {csrf}}))
		checkEscaped(t, "verify bad email", b.post("/.gatehouse/verify", url.Values{"email": {p}, "code": {"1"}, "rd": {p}, "_csrf": {csrf}}))
		checkEscaped(t, "link", b.get("/.gatehouse/link?t="+strings.Repeat("A", session.TokenLen)+"&rd=/"+q))
		checkEscaped(t, "link bad token", b.get("/.gatehouse/link?t="+q))
		checkEscaped(t, "account notice", signedIn.get("/.gatehouse/account?notice="+q))
		req, _ := http.NewRequest(http.MethodGet, h.URL+"/.gatehouse/login", nil)
		req.Header.Set("Accept", "text/html")
		req.Header.Set("Accept-Language", p)
		checkEscaped(t, "Accept-Language", b.do(req))
		api := b.api("/.gatehouse/api/otp/send", `{"email":"`+strings.ReplaceAll(p, `"`, `\"`)+`"}`)
		if strings.Contains(api.body, "<") {
			t.Errorf("API error reflects markup: %s", api.body)
		}
	}
	// Error pages for paths the browser sends raw.
	for _, target := range []string{
		"/internal/<script>alert(1)</script>",
		"/internal/x?<script>alert(1)</script>",
		"/.gatehouse/<script>alert(1)</script>",
		"/.gatehouse/x?rd=\"><img%20src=x%20onerror=alert(1)>",
	} {
		r := rawGet(t, h.addr(), target, "Accept: text/html")
		checkEscaped(t, "error page for "+target, response{body: r.body, Response: &http.Response{StatusCode: r.status}})
		if strings.Contains(r.body, "<script>alert(1)") || strings.Contains(r.body, "<img src=x") {
			t.Errorf("%s: payload reflected", target)
		}
	}
}
