package gateway

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"gatehouse/session"
)

func TestSessionTokensAreRandom256BitsStoredHashed(t *testing.T) {
	h := newHarness(t)
	seen := map[string]bool{}
	for _, email := range []string{"tia@example.com", "tia@example.com", "uma@example.com"} {
		b := h.browser()
		b.signIn(email, "/")
		tok := b.sessionCookie()
		raw, err := base64.RawURLEncoding.DecodeString(tok)
		if err != nil || len(raw) < 32 {
			t.Fatalf("token %d bytes (%v), want at least 32 random bytes", len(raw), err)
		}
		if seen[tok] {
			t.Fatal("a token was issued twice")
		}
		seen[tok] = true
	}
	rows := h.dbRows("sessions")
	if len(rows) != 3 {
		t.Fatalf("%d session rows, want 3", len(rows))
	}
	hashes := map[string]bool{}
	for _, r := range rows {
		hashes[r["token_hash"]] = true
		for col, v := range r {
			for tok := range seen {
				if strings.Contains(v, tok) {
					t.Fatalf("column %s holds a session token", col)
				}
			}
		}
	}
	for tok := range seen {
		sum := sha256.Sum256([]byte(tok))
		if !hashes[string(sum[:])] {
			t.Fatal("a token's SHA-256 is not what the store keeps")
		}
	}
}

func TestClientChosenTokenIsNeverAdopted(t *testing.T) {
	h := newHarness(t)
	u, _ := url.Parse(h.URL)

	// An attacker plants a token of the right shape, and separately a live
	// session of their own, in the victim's browser before the victim signs
	// in (session fixation).
	attacker := h.browser()
	attacker.signIn("mallory@example.com", "/")
	for name, planted := range map[string]string{
		"made-up token":           strings.Repeat("A", session.TokenLen),
		"attacker's live session": attacker.sessionCookie(),
	} {
		t.Run(name, func(t *testing.T) {
			victim := h.browser()
			victim.c.Jar.SetCookies(u, []*http.Cookie{{Name: "gatehouse_session", Value: planted, Path: "/"}})
			resp := victim.signIn("victim@example.com", "/")
			var issued string
			for _, c := range resp.Cookies() {
				if c.Name == "gatehouse_session" {
					issued = c.Value
				}
			}
			if issued == "" || issued == planted {
				t.Fatalf("sign-in kept the planted token (issued %q)", issued)
			}
			probe := h.browser()
			req, _ := http.NewRequest(http.MethodGet, h.URL+"/.gatehouse/api/session", nil)
			req.Header.Set("Cookie", "gatehouse_session="+planted)
			if r := probe.do(req); strings.Contains(r.body, "victim@example.com") {
				t.Fatal("the planted token is now the victim's session")
			}
		})
	}
}

func TestEverySignInRotatesTheToken(t *testing.T) {
	h := newHarness(t)
	b := h.browser()
	var tokens []string
	for i := 0; i < 3; i++ {
		b.signIn("vic@example.com", "/")
		tokens = append(tokens, b.sessionCookie())
	}
	if tokens[0] == tokens[1] || tokens[1] == tokens[2] || tokens[0] == tokens[2] {
		t.Fatal("signing in again kept the token")
	}
}

// TestTimeoutsAreEnforcedOnTheServer replays the token from a client that
// ignores cookie expiry, with a session cache that would trust it for an
// hour: the idle and absolute limits hold anyway.
func TestTimeoutsAreEnforcedOnTheServer(t *testing.T) {
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	h := newHarness(t, func(o *Options) {
		o.Now = clock
		o.SessionCacheTTL = time.Hour
		o.Session.IdleTimeout = 30 * time.Minute
		o.Session.Lifetime = 2 * time.Hour
	})
	replay := func(token string) int {
		req, _ := http.NewRequest(http.MethodGet, h.URL+"/.gatehouse/api/session", nil)
		req.Header.Set("Cookie", "gatehouse_session="+token)
		return h.browser().do(req).StatusCode
	}
	b := h.browser()
	b.signIn("wes@example.com", "/")
	idle := b.sessionCookie()
	advance(29 * time.Minute)
	if s := replay(idle); s != http.StatusOK {
		t.Fatalf("active within the idle timeout: %d", s)
	}
	advance(31 * time.Minute)
	if s := replay(idle); s != http.StatusUnauthorized {
		t.Fatalf("31 minutes idle: %d, want 401", s)
	}
	if s := replay(idle); s != http.StatusUnauthorized {
		t.Fatalf("an idle-expired session came back: %d", s)
	}

	c := h.browser()
	c.signIn("xia@example.com", "/")
	busy := c.sessionCookie()
	for i := 0; i < 6; i++ { // active every 20 minutes for two hours
		advance(20 * time.Minute)
		want := http.StatusOK
		if i == 5 {
			want = http.StatusUnauthorized
		}
		if s := replay(busy); s != want {
			t.Fatalf("after %d minutes: %d, want %d", (i+1)*20, s, want)
		}
	}
}

func TestSignOutEndsTheSessionOnTheServer(t *testing.T) {
	h := newHarness(t)
	replay := func(token string) int {
		req, _ := http.NewRequest(http.MethodGet, h.URL+"/.gatehouse/api/session", nil)
		req.Header.Set("Cookie", "gatehouse_session="+token)
		return h.browser().do(req).StatusCode
	}
	cases := []struct {
		name string
		out  func(b *browser) response
	}{
		{"form", func(b *browser) response {
			return b.post("/.gatehouse/logout", url.Values{"_csrf": {b.csrf(b.get("/.gatehouse/account").body)}})
		}},
		{"API", func(b *browser) response { return b.api("/.gatehouse/api/sign-out", "{}") }},
		{"revoke own session", func(b *browser) response {
			account := b.get("/.gatehouse/account")
			var id string
			if list := h.dbRows("sessions"); len(list) > 0 {
				for _, r := range list {
					if r["email"] == "yan@example.com" {
						id = r["id"]
					}
				}
			}
			return b.post("/.gatehouse/sessions/revoke", url.Values{"id": {id}, "_csrf": {b.csrf(account.body)}})
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := h.browser()
			b.signIn("yan@example.com", "/")
			token := b.sessionCookie()
			resp := tc.out(b)
			if resp.StatusCode >= 400 {
				t.Fatalf("sign-out: %d", resp.StatusCode)
			}
			expired := false
			for _, c := range resp.Cookies() {
				expired = expired || (c.Name == "gatehouse_session" && c.MaxAge < 0)
			}
			if !expired {
				t.Errorf("the cookie was not expired: %q", resp.Header.Values("Set-Cookie"))
			}
			if s := replay(token); s != http.StatusUnauthorized {
				t.Fatalf("the token still works after sign-out: %d", s)
			}
		})
	}
	if rows := h.dbRows("sessions"); len(rows) != 0 {
		t.Fatalf("%d sessions left in the store", len(rows))
	}
}

// jarless is a client that keeps cookies by hand, so Secure cookies are
// sent over the plain-HTTP test listener while the public URL is https.
type jarless struct {
	t       *testing.T
	h       *harness
	origin  string
	cookies map[string]string
}

func (j *jarless) do(method, path string, form url.Values) response {
	j.t.Helper()
	var req *http.Request
	if form != nil {
		req, _ = http.NewRequest(method, j.h.URL+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", j.origin)
		req.Header.Set("Sec-Fetch-Site", "same-origin")
	} else {
		req, _ = http.NewRequest(method, j.h.URL+path, nil)
	}
	req.Header.Set("Accept", "text/html")
	var pairs []string
	for k, v := range j.cookies {
		pairs = append(pairs, k+"="+v)
	}
	if len(pairs) > 0 {
		req.Header.Set("Cookie", strings.Join(pairs, "; "))
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		j.t.Fatal(err)
	}
	defer resp.Body.Close()
	var body strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		body.Write(buf[:n])
		if err != nil {
			break
		}
	}
	for _, c := range resp.Cookies() {
		if c.MaxAge < 0 {
			delete(j.cookies, c.Name)
		} else {
			j.cookies[c.Name] = c.Value
		}
	}
	return response{resp, body.String()}
}

// setCookie returns the Set-Cookie line for name, "" if none.
func setCookie(resp response, name string) string {
	for _, v := range resp.Header.Values("Set-Cookie") {
		if strings.HasPrefix(v, name+"=") {
			return v
		}
	}
	return ""
}

func checkCookieAttrs(t *testing.T, line string, secure bool, domain string) {
	t.Helper()
	attrs := map[string]string{}
	for _, part := range strings.Split(line, ";")[1:] {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		attrs[strings.ToLower(k)] = v
	}
	if _, ok := attrs["httponly"]; !ok {
		t.Errorf("%q: not HttpOnly", line)
	}
	if attrs["samesite"] != "Lax" {
		t.Errorf("%q: SameSite %q, want Lax", line, attrs["samesite"])
	}
	if attrs["path"] != "/" {
		t.Errorf("%q: Path %q, want /", line, attrs["path"])
	}
	if d, ok := attrs["domain"]; ok != (domain != "") || d != domain {
		t.Errorf("%q: Domain %q, want %q", line, d, domain)
	}
	if _, ok := attrs["secure"]; ok != secure {
		t.Errorf("%q: Secure = %v, want %v", line, ok, secure)
	}
}

func TestCookiesOverHTTPSUseHostPrefixAndSecure(t *testing.T) {
	cases := []struct {
		name, domain, session, csrf string
	}{
		{"host-only cookie", "", "__Host-gatehouse_session", "__Host-gatehouse_csrf"},
		{"shared domain", "example.test", "__Secure-gatehouse_session", "__Host-gatehouse_csrf"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pub, _ := url.Parse("https://gate.example.test")
			h := newHarness(t, func(o *Options) {
				o.PublicURL = pub
				o.Session.Secure = true
				o.Session.CookieDomain = tc.domain
			})
			j := &jarless{t: t, h: h, origin: "https://gate.example.test", cookies: map[string]string{}}
			login := j.do(http.MethodGet, "/.gatehouse/login", nil)
			line := setCookie(login, tc.csrf)
			if line == "" {
				t.Fatalf("no %s cookie: %q", tc.csrf, login.Header.Values("Set-Cookie"))
			}
			checkCookieAttrs(t, line, true, "")
			csrf := csrfRE.FindStringSubmatch(login.body)[1]
			if r := j.do(http.MethodPost, "/.gatehouse/login", url.Values{"email": {"zed@example.com"}, "_csrf": {csrf}}); r.StatusCode != http.StatusOK {
				t.Fatalf("send: %d", r.StatusCode)
			}
			code := h.mail.WaitFor(t, "zed@example.com", 1).Code()
			if !strings.HasPrefix(h.mail.WaitFor(t, "zed@example.com", 1).Link(), "https://gate.example.test/") {
				t.Errorf("mail link %q is not on the public URL", h.mail.WaitFor(t, "zed@example.com", 1).Link())
			}
			verify := j.do(http.MethodPost, "/.gatehouse/verify", url.Values{"email": {"zed@example.com"}, "code": {code}, "rd": {"/"}, "_csrf": {csrf}})
			if verify.StatusCode != http.StatusSeeOther {
				t.Fatalf("verify: %d", verify.StatusCode)
			}
			line = setCookie(verify, tc.session)
			if line == "" {
				t.Fatalf("no %s cookie: %q", tc.session, verify.Header.Values("Set-Cookie"))
			}
			checkCookieAttrs(t, line, true, tc.domain)
			if cc := verify.Header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("sign-in response Cache-Control %q", cc)
			}
			if r := j.do(http.MethodGet, "/app", nil); r.StatusCode != http.StatusOK {
				t.Fatalf("signed-in request: %d", r.StatusCode)
			}
			// Only the prefixed name is read: a cookie without the prefix
			// can be set by a sibling host or over plain http.
			token := j.cookies[tc.session]
			bare := &jarless{t: t, h: h, origin: j.origin, cookies: map[string]string{"gatehouse_session": token}}
			if r := bare.do(http.MethodGet, "/app", nil); r.StatusCode != http.StatusSeeOther {
				t.Fatalf("unprefixed cookie accepted: %d", r.StatusCode)
			}
			account := j.do(http.MethodGet, "/.gatehouse/account", nil)
			out := j.do(http.MethodPost, "/.gatehouse/logout", url.Values{"_csrf": {csrfRE.FindStringSubmatch(account.body)[1]}})
			line = setCookie(out, tc.session)
			if line == "" || !strings.Contains(line, "Max-Age=0") {
				t.Fatalf("sign-out did not expire %s: %q", tc.session, out.Header.Values("Set-Cookie"))
			}
			checkCookieAttrs(t, line, true, tc.domain)
		})
	}
}

func TestCookieAttributesOverHTTP(t *testing.T) {
	h := newHarness(t)
	b := h.browser()
	login := b.get("/.gatehouse/login")
	checkCookieAttrs(t, setCookie(login, "gatehouse_csrf"), false, "")
	resp := b.signIn("ada@example.com", "/")
	checkCookieAttrs(t, setCookie(resp, "gatehouse_session"), false, "")
}

func TestResponsesThatSetOrShowSessionsAreNotStored(t *testing.T) {
	h := newHarness(t)
	b := h.browser()
	anon := h.browser()
	check := func(name string, r response) {
		t.Helper()
		if cc := r.Header.Get("Cache-Control"); !strings.Contains(cc, "no-store") {
			t.Errorf("%s (%d): Cache-Control %q, want no-store", name, r.StatusCode, cc)
		}
	}
	check("login page", anon.get("/.gatehouse/login"))
	check("redirect to sign in", anon.get("/dashboard"))
	req, _ := http.NewRequest(http.MethodGet, h.URL+"/dashboard", nil)
	check("401 for API clients", anon.do(req))
	check("session API without session", anon.do(func() *http.Request {
		r, _ := http.NewRequest(http.MethodGet, h.URL+"/.gatehouse/api/session", nil)
		return r
	}()))
	page := b.requestCode("bea@example.com", "/")
	check("code page", page)
	code := h.mail.WaitFor(t, "bea@example.com", 1).Code()
	check("wrong code", b.verify("bea@example.com", wrongCode(code), "/", page.body))
	check("sign-in", b.verify("bea@example.com", code, "/", page.body))
	account := b.get("/.gatehouse/account")
	check("account page", account)
	check("session API", b.do(func() *http.Request {
		r, _ := http.NewRequest(http.MethodGet, h.URL+"/.gatehouse/api/session", nil)
		return r
	}()))
	b.api("/.gatehouse/api/otp/send", `{"email":"bea@example.com"}`)
	check("API send", b.api("/.gatehouse/api/otp/send", `{"email":"bea@example.com"}`))
	code = h.mail.WaitFor(t, "bea@example.com", 3).Code()
	check("API sign-in", b.api("/.gatehouse/api/otp/verify", `{"email":"bea@example.com","code":"`+code+`"}`))
	msg := h.mail.WaitFor(t, "bea@example.com", 3)
	check("link confirmation page", b.get(strings.TrimPrefix(msg.Link(), h.URL)))
	check("sign-out", b.post("/.gatehouse/logout", url.Values{"_csrf": {b.csrf(account.body)}}))
	check("API sign-out", b.api("/.gatehouse/api/sign-out", "{}"))
}

// TestOnlyOwnSessionsCanBeRevoked: a signed-in user cannot end another
// user's session by naming its ID.
func TestOnlyOwnSessionsCanBeRevoked(t *testing.T) {
	h := newHarness(t)
	alice := h.browser()
	alice.signIn("alice@example.com", "/")
	bob := h.browser()
	bob.signIn("bob@example.com", "/")
	var bobID string
	for _, r := range h.dbRows("sessions") {
		if r["email"] == "bob@example.com" {
			bobID = r["id"]
		}
	}
	account := alice.get("/.gatehouse/account")
	if strings.Contains(account.body, bobID) {
		t.Fatal("alice's account page lists bob's session")
	}
	r := alice.post("/.gatehouse/sessions/revoke", url.Values{"id": {bobID}, "_csrf": {alice.csrf(account.body)}})
	if r.StatusCode != http.StatusNotFound {
		t.Fatalf("revoking another user's session: %d, want 404", r.StatusCode)
	}
	if r := bob.get("/x"); r.StatusCode != http.StatusOK {
		t.Fatalf("bob's session was ended by alice: %d", r.StatusCode)
	}
}
