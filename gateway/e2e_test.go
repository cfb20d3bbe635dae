package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"gatehouse/access"
	"gatehouse/authstore"
)

func TestUnauthenticatedBrowserIsSentToLogin(t *testing.T) {
	h := newHarness(t)
	b := h.browser()
	resp := b.get("/dashboard?tab=2")
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("status = %d, want 303", resp.StatusCode)
	}
	want := "/.gatehouse/login?rd=" + url.QueryEscape("/dashboard?tab=2")
	if got := resp.Header.Get("Location"); got != want {
		t.Fatalf("Location = %q, want %q", got, want)
	}
	if h.up.Count() != 0 {
		t.Fatal("upstream was reached without a session")
	}
}

func TestUnauthenticatedAPIGets401JSON(t *testing.T) {
	h := newHarness(t)
	for _, tc := range []struct {
		name, method, accept string
	}{
		{"fetch json", http.MethodGet, "application/json"},
		{"no accept", http.MethodGet, ""},
		{"post form with html accept", http.MethodPost, "text/html"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, h.URL+"/api/items", nil)
			if tc.accept != "" {
				req.Header.Set("Accept", tc.accept)
			}
			resp := h.browser().do(req)
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("status = %d, want 401", resp.StatusCode)
			}
			var body map[string]string
			if err := json.Unmarshal([]byte(resp.body), &body); err != nil || body["error"] != "unauthenticated" {
				t.Fatalf("body = %q (%v)", resp.body, err)
			}
		})
	}
	if h.up.Count() != 0 {
		t.Fatal("upstream was reached without a session")
	}
}

func TestSignInFlowEndToEnd(t *testing.T) {
	h := newHarness(t)
	b := h.browser()

	page := b.requestCode("Alice@Example.COM", "/dashboard?tab=2")
	if page.StatusCode != http.StatusOK || !strings.Contains(page.body, `name="code"`) {
		t.Fatalf("code page: %d\n%s", page.StatusCode, page.body)
	}
	if cc := page.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("code page Cache-Control = %q", cc)
	}
	msg := h.mail.WaitFor(t, "alice@example.com", 1)
	code := msg.Code()
	if len(code) != 6 || !strings.Contains(msg.HTML, code) {
		t.Fatalf("mail has no 6-digit code in both parts: text %q", msg.Text)
	}
	if strings.Contains(msg.Subject, code) {
		t.Errorf("code leaked into subject %q", msg.Subject)
	}

	wrong := "000000"
	if code == wrong {
		wrong = "111111"
	}
	bad := b.verify("alice@example.com", wrong, "/dashboard?tab=2", page.body)
	if bad.StatusCode != http.StatusUnauthorized || b.sessionCookie() != "" {
		t.Fatalf("wrong code: status %d, cookie %q", bad.StatusCode, b.sessionCookie())
	}

	ok := b.verify("alice@example.com", code, "/dashboard?tab=2", bad.body)
	if ok.StatusCode != http.StatusSeeOther || ok.Header.Get("Location") != "/dashboard?tab=2" {
		t.Fatalf("right code: status %d, Location %q", ok.StatusCode, ok.Header.Get("Location"))
	}
	setCookie := ""
	for _, v := range ok.Header.Values("Set-Cookie") {
		if strings.HasPrefix(v, "gatehouse_session=") {
			setCookie = v
		}
	}
	for _, attr := range []string{"HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=604800"} {
		if !strings.Contains(setCookie, attr) {
			t.Errorf("session cookie %q lacks %s", setCookie, attr)
		}
	}
	if strings.Contains(setCookie, "Domain=") || strings.Contains(setCookie, "Secure") {
		t.Errorf("session cookie %q: no Domain and no Secure over http", setCookie)
	}

	dash := b.get("/dashboard?tab=2")
	if dash.StatusCode != http.StatusOK || dash.body != "app /dashboard" {
		t.Fatalf("dashboard: %d %q", dash.StatusCode, dash.body)
	}
	got := h.up.Last(t)
	for _, k := range identityHeaders {
		if v := got.Header.Values(k); len(v) != 1 || v[0] != "alice@example.com" {
			t.Errorf("upstream %s = %q, want the lower-cased email", k, v)
		}
	}
	if got.URL.RawQuery != "tab=2" {
		t.Errorf("query = %q", got.URL.RawQuery)
	}
	if code := msg.Code(); b.verify("alice@example.com", code, "/", page.body).StatusCode != http.StatusUnauthorized {
		t.Error("a used code signed in a second time")
	}
}

func TestIdentityHeadersCannotBeSpoofed(t *testing.T) {
	h := newHarness(t)
	b := h.browser()
	b.signIn("bob@example.com", "/")
	spoofs := []string{
		"X-Auth-Request-Email", "x-auth-request-email", "X_Auth_Request_Email", "X.Auth.Request.Email",
		"Remote-User", "REMOTE_USER", "X-Forwarded-User", "X-Forwarded-Email", "Remote-Email",
		"X-Auth-Request-User", "Remote-Groups", "X-Auth-Request-Groups", "X-Gatehouse-Client-Ip",
	}
	for _, path := range []string{"/dashboard", "/public/page"} {
		t.Run(path, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, h.URL+path, nil)
			req.Header.Set("Accept", "text/html")
			for _, k := range spoofs {
				req.Header[k] = []string{"admin@evil.com"}
			}
			req.Header.Set("Connection", "close, X-Auth-Request-Email, Remote-User")
			resp := b.do(req)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d", resp.StatusCode)
			}
			got := h.up.Last(t)
			for k, vs := range got.Header {
				for _, v := range vs {
					if strings.Contains(v, "evil.com") {
						t.Errorf("spoofed header reached upstream: %s: %s", k, v)
					}
				}
			}
			want := "bob@example.com"
			if path == "/public/page" {
				want = ""
			}
			if v := got.Header.Get("X-Auth-Request-Email"); v != want {
				t.Errorf("X-Auth-Request-Email = %q, want %q", v, want)
			}
			if v := got.Header.Get("Remote-User"); v != want {
				t.Errorf("Remote-User = %q, want %q", v, want)
			}
		})
	}
}

func TestSessionCookieIsNotForwardedButAppCookiesAre(t *testing.T) {
	h := newHarness(t)
	b := h.browser()
	b.signIn("carol@example.com", "/")
	req, _ := http.NewRequest(http.MethodGet, h.URL+"/app", nil)
	req.Header.Set("Accept", "text/html")
	req.Header.Set("Cookie", "theme=dark; lang=ko")
	resp := b.do(req)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	cookie := strings.Join(h.up.Last(t).Header.Values("Cookie"), "; ")
	if strings.Contains(cookie, "gatehouse_session") || strings.Contains(cookie, b.sessionCookie()) {
		t.Errorf("session cookie forwarded upstream: %q", cookie)
	}
	if !strings.Contains(cookie, "theme=dark") || !strings.Contains(cookie, "lang=ko") {
		t.Errorf("app cookies lost: %q", cookie)
	}
}

func TestForwardedHeadersAreRebuilt(t *testing.T) {
	h := newHarness(t)
	req, _ := http.NewRequest(http.MethodGet, h.URL+"/public/x", nil)
	req.Header.Set("X-Forwarded-For", "6.6.6.6")
	req.Header.Set("X-Forwarded-Proto", "https")
	req.Header.Set("X-Real-Ip", "6.6.6.6")
	req.Header.Set("Forwarded", "for=6.6.6.6")
	h.browser().do(req)
	got := h.up.Last(t)
	if v := got.Header.Values("X-Forwarded-For"); len(v) != 1 || v[0] != "127.0.0.1" {
		t.Errorf("X-Forwarded-For = %q", v)
	}
	if v := got.Header.Get("X-Forwarded-Proto"); v != "http" {
		t.Errorf("X-Forwarded-Proto = %q", v)
	}
	if v := got.Header.Get("Forwarded"); v != "" {
		t.Errorf("Forwarded = %q", v)
	}
}

func TestUpstreamSetCookiesAllReachTheClient(t *testing.T) {
	h := newHarness(t)
	h.up.Handle = func(w http.ResponseWriter, r *http.Request) {
		w.Header().Add("Set-Cookie", "a=1; Path=/")
		w.Header().Add("Set-Cookie", "b=2; Path=/")
		w.Header().Add("X-Dup", "1")
		w.Header().Add("X-Dup", "2")
	}
	resp := h.browser().get("/public/cookies")
	if got := resp.Header.Values("Set-Cookie"); len(got) != 2 {
		t.Errorf("Set-Cookie = %q, want both", got)
	}
	if got := resp.Header.Values("X-Dup"); len(got) != 2 {
		t.Errorf("X-Dup = %q", got)
	}
}

func TestAccessRules(t *testing.T) {
	h := newHarness(t, func(o *Options) {
		o.Settings.Rules = []access.Rule{
			{Paths: []string{"/public/**"}, Policy: access.PolicyPublic},
			{Paths: []string{"/admin/**"}, Policy: access.PolicyAuthenticated, Emails: []string{"root@example.com"}},
			{Paths: []string{"/staff/**"}, Policy: access.PolicyAuthenticated, Domains: []string{"corp.example"}},
			{Paths: []string{"/internal/**"}, Policy: access.PolicyDeny},
			{Paths: []string{"/upload"}, Methods: []string{"POST"}, Policy: access.PolicyDeny},
		}
	})
	alice := h.browser()
	alice.signIn("alice@example.com", "/")
	root := h.browser()
	root.signIn("root@example.com", "/")
	staff := h.browser()
	staff.signIn("sam@corp.example", "/")
	anon := h.browser()

	cases := []struct {
		name   string
		b      *browser
		method string
		path   string
		want   int
	}{
		{"public without session", anon, "GET", "/public/a", 200},
		{"protected without session", anon, "GET", "/a", 303},
		{"admin as other user", alice, "GET", "/admin/panel", 403},
		{"admin as listed email", root, "GET", "/admin/panel", 200},
		{"staff as other domain", alice, "GET", "/staff/x", 403},
		{"staff as domain member", staff, "GET", "/staff/x", 200},
		{"deny even signed in", root, "GET", "/internal/x", 403},
		{"deny without session", anon, "GET", "/internal/x", 403},
		{"method rule blocks POST", root, "POST", "/upload", 403},
		{"method rule lets GET pass", root, "GET", "/upload", 200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := h.up.Count()
			req, _ := http.NewRequest(tc.method, h.URL+tc.path, nil)
			req.Header.Set("Accept", "text/html")
			resp := tc.b.do(req)
			if resp.StatusCode != tc.want {
				t.Fatalf("status = %d, want %d", resp.StatusCode, tc.want)
			}
			reached := h.up.Count() > before
			if reached != (tc.want == 200) {
				t.Fatalf("upstream reached = %v for status %d", reached, tc.want)
			}
			if tc.want == 403 && !strings.Contains(resp.body, "<html") {
				t.Errorf("403 is not a page: %q", resp.body)
			}
		})
	}
}

func TestAllowlistGivesSamePageAndNoMail(t *testing.T) {
	h := newHarness(t, func(o *Options) {
		o.Settings.Signup = access.Signup{Emails: []string{"ok@example.com"}, Domains: []string{"corp.example"}}
	})
	b := h.browser()
	allowed := b.requestCode("ok@example.com", "/")
	denied := h.browser().requestCode("stranger@example.com", "/")
	if allowed.StatusCode != denied.StatusCode {
		t.Fatalf("status differs: %d vs %d", allowed.StatusCode, denied.StatusCode)
	}
	norm := func(s string) string {
		return csrfRE.ReplaceAllString(strings.ReplaceAll(s, "stranger@example.com", "X"), "")
	}
	normAllowed := csrfRE.ReplaceAllString(strings.ReplaceAll(allowed.body, "ok@example.com", "X"), "")
	if nonceRE.ReplaceAllString(norm(denied.body), "") != nonceRE.ReplaceAllString(normAllowed, "") {
		t.Errorf("pages differ for allowed and refused addresses")
	}
	h.mail.WaitFor(t, "ok@example.com", 1)
	h.browser().requestCode("x@corp.example", "/")
	h.mail.WaitFor(t, "x@corp.example", 1)
	if n := len(h.mailsTo("stranger@example.com")); n != 0 {
		t.Fatalf("refused address got %d mails", n)
	}
}

func TestSignOutEndsSessionOnServer(t *testing.T) {
	h := newHarness(t)
	b := h.browser()
	b.signIn("dave@example.com", "/")
	token := b.sessionCookie()
	account := b.get("/.gatehouse/account")
	if account.StatusCode != 200 || !strings.Contains(account.body, "dave@example.com") {
		t.Fatalf("account: %d", account.StatusCode)
	}
	out := b.post("/.gatehouse/logout", url.Values{"_csrf": {b.csrf(account.body)}})
	if out.StatusCode != http.StatusSeeOther || !strings.HasPrefix(out.Header.Get("Location"), "/.gatehouse/login") {
		t.Fatalf("logout: %d %q", out.StatusCode, out.Header.Get("Location"))
	}
	cleared := false
	for _, v := range out.Header.Values("Set-Cookie") {
		cleared = cleared || (strings.HasPrefix(v, "gatehouse_session=;") && strings.Contains(v, "Max-Age=0"))
	}
	if !cleared {
		t.Errorf("cookie not cleared: %q", out.Header.Values("Set-Cookie"))
	}
	// Replaying the old cookie must fail: the session is gone server-side.
	replay := h.browser()
	req, _ := http.NewRequest(http.MethodGet, h.URL+"/dashboard", nil)
	req.Header.Set("Accept", "text/html")
	req.Header.Set("Cookie", "gatehouse_session="+token)
	if resp := replay.do(req); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("old cookie still works: %d", resp.StatusCode)
	}
	if list, err := h.store.ListSessions(context.Background(), "dave@example.com"); err != nil || len(list) != 0 {
		t.Fatalf("sessions left in store: %v %v", list, err)
	}
}

func TestGetLogoutDoesNotSignOut(t *testing.T) {
	h := newHarness(t)
	b := h.browser()
	b.signIn("erin@example.com", "/")
	if resp := b.get("/.gatehouse/logout"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("GET logout: %d", resp.StatusCode)
	}
	if resp := b.get("/x"); resp.StatusCode != http.StatusOK {
		t.Fatalf("GET logout ended the session: %d", resp.StatusCode)
	}
}

func TestSessionsSurviveRestart(t *testing.T) {
	h := newHarness(t)
	b := h.browser()
	b.signIn("frank@example.com", "/")
	token := b.sessionCookie()

	// A second server on the same database file: a restart.
	st := openTestStore(t, h.dbPath)
	opts := h.opts
	opts.Store = st
	srv2, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, serve(t, srv2)+"/dashboard", nil)
	req.Header.Set("Cookie", "gatehouse_session="+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("after restart: status %d", resp.StatusCode)
	}
	if got := h.up.Last(t).Header.Get("Remote-User"); got != "frank@example.com" {
		t.Fatalf("after restart Remote-User = %q", got)
	}
}

func TestUpstreamDownGives502Page(t *testing.T) {
	h := newHarness(t)
	h.up.Close()
	resp := h.browser().get("/public/x")
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(resp.body, "<html") {
		t.Fatalf("status %d body %q", resp.StatusCode, resp.body)
	}
	if strings.Contains(resp.body, "connection refused") || strings.Contains(resp.body, "dial tcp") {
		t.Fatal("502 page shows internal error text")
	}
	req, _ := http.NewRequest(http.MethodGet, h.URL+"/public/x", nil)
	req.Header.Set("Accept", "application/json")
	api := h.browser().do(req)
	if api.StatusCode != http.StatusBadGateway || !strings.Contains(api.body, `"error":"unreachable"`) {
		t.Fatalf("API 502: %d %q", api.StatusCode, api.body)
	}
}

func TestSendFailureShowsTryAgain(t *testing.T) {
	h := newHarness(t)
	h.mail.FailWith(errors.New("mailbox unavailable"))
	page := h.browser().requestCode("gina@example.com", "/")
	if page.StatusCode != http.StatusServiceUnavailable || !strings.Contains(page.body, "<html") {
		t.Fatalf("status %d", page.StatusCode)
	}
}

func TestJSONAPI(t *testing.T) {
	h := newHarness(t)
	b := h.browser()
	call := func(method, path, body string) response {
		req, _ := http.NewRequest(method, h.URL+path, strings.NewReader(body))
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		req.Header.Set("Origin", h.URL)
		return b.do(req)
	}
	if r := call("GET", "/.gatehouse/api/session", ""); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("session before sign-in: %d", r.StatusCode)
	}
	if r := call("POST", "/.gatehouse/api/otp/send", `{"email":"not an address"}`); r.StatusCode != http.StatusBadRequest {
		t.Fatalf("bad email: %d", r.StatusCode)
	}
	if r := call("POST", "/.gatehouse/api/otp/send", `{"email":"hank@example.com"}`); r.StatusCode != http.StatusOK || !strings.Contains(r.body, `"status":"sent"`) {
		t.Fatalf("send: %d %s", r.StatusCode, r.body)
	}
	code := h.mail.WaitFor(t, "hank@example.com", 1).Code()
	if r := call("POST", "/.gatehouse/api/otp/verify", `{"email":"hank@example.com","code":"12"}`); r.StatusCode != http.StatusUnauthorized || !strings.Contains(r.body, "code_wrong") || strings.Contains(r.body, "Something went wrong") {
		t.Fatalf("wrong code: %d %s", r.StatusCode, r.body)
	}
	if r := call("POST", "/.gatehouse/api/otp/verify", `{"email":"hank@example.com","code":"`+code+`"}`); r.StatusCode != http.StatusOK {
		t.Fatalf("verify: %d %s", r.StatusCode, r.body)
	}
	r := call("GET", "/.gatehouse/api/session", "")
	var sess map[string]string
	if err := json.Unmarshal([]byte(r.body), &sess); err != nil || sess["email"] != "hank@example.com" {
		t.Fatalf("session: %d %s", r.StatusCode, r.body)
	}
	if r := call("POST", "/.gatehouse/api/sign-out", ""); r.StatusCode != http.StatusOK {
		t.Fatalf("sign-out without a body: %d", r.StatusCode)
	}
	if r := call("GET", "/.gatehouse/api/session", ""); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("session after sign-out: %d", r.StatusCode)
	}
	// A form post to the API is refused: it could come from another site.
	req, _ := http.NewRequest("POST", h.URL+"/.gatehouse/api/otp/send", strings.NewReader("email=x@example.com"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if r := b.do(req); r.StatusCode != http.StatusUnsupportedMediaType {
		t.Fatalf("form post to API: %d", r.StatusCode)
	}
}

func TestHealthz(t *testing.T) {
	h := newHarness(t)
	resp := h.browser().get("/.gatehouse/healthz")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz: %d", resp.StatusCode)
	}
	_ = h.store.Close()
	if resp := h.browser().get("/.gatehouse/healthz"); resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("healthz with closed store: %d", resp.StatusCode)
	}
}

func TestStoreFailureFailsClosed(t *testing.T) {
	h := newHarness(t)
	b := h.browser()
	b.signIn("ivy@example.com", "/")
	h.srv.sessions.Flush() // force a store read
	_ = h.store.Close()
	before := h.up.Count()
	resp := b.get("/dashboard")
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503", resp.StatusCode)
	}
	if h.up.Count() != before {
		t.Fatal("request reached upstream while the store was down")
	}
}

func TestIdleAndAbsoluteTimeoutsOnServer(t *testing.T) {
	now := time.Now()
	clock := func() time.Time { return now }
	h := newHarness(t, func(o *Options) {
		o.Now = clock
		o.Session.IdleTimeout = time.Hour
		o.Session.Lifetime = 3 * time.Hour
	})
	b := h.browser()
	b.signIn("jack@example.com", "/")
	for i := 0; i < 4; i++ { // active every 50 minutes: idle never reached
		now = now.Add(50 * time.Minute)
		if i < 3 {
			if resp := b.get("/x"); resp.StatusCode != http.StatusOK {
				t.Fatalf("step %d: %d", i, resp.StatusCode)
			}
		}
	}
	// 200 minutes after sign-in: past the absolute lifetime.
	if resp := b.get("/x"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("past lifetime: %d", resp.StatusCode)
	}

	c := h.browser()
	c.signIn("kate@example.com", "/")
	now = now.Add(61 * time.Minute)
	if resp := c.get("/x"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("past idle timeout: %d", resp.StatusCode)
	}
}

func TestWrongCodesVoidTheCode(t *testing.T) {
	h := newHarness(t)
	b := h.browser()
	page := b.requestCode("lou@example.com", "/")
	code := h.mail.WaitFor(t, "lou@example.com", 1).Code()
	wrong := "000000"
	if code == wrong {
		wrong = "999999"
	}
	for i := 0; i < 5; i++ {
		if r := b.verify("lou@example.com", wrong, "/", page.body); r.StatusCode != http.StatusUnauthorized {
			t.Fatalf("try %d: %d", i, r.StatusCode)
		}
	}
	if r := b.verify("lou@example.com", code, "/", page.body); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("right code after 5 wrong tries: %d", r.StatusCode)
	}
}

func TestConcurrentCorrectSubmissionsGiveOneSession(t *testing.T) {
	h := newHarness(t)
	b := h.browser()
	b.requestCode("max@example.com", "/")
	code := h.mail.WaitFor(t, "max@example.com", 1).Code()
	results := make(chan int, 20)
	for i := 0; i < 20; i++ {
		go func() {
			body := `{"email":"max@example.com","code":"` + code + `"}`
			req, _ := http.NewRequest("POST", h.URL+"/.gatehouse/api/otp/verify", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				results <- 0
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			results <- resp.StatusCode
		}()
	}
	ok := 0
	for i := 0; i < 20; i++ {
		if <-results == http.StatusOK {
			ok++
		}
	}
	if ok != 1 {
		t.Fatalf("%d of 20 concurrent submissions signed in, want exactly 1", ok)
	}
	list, err := h.store.ListSessions(context.Background(), "max@example.com")
	if err != nil || len(list) != 1 {
		t.Fatalf("sessions = %d (%v)", len(list), err)
	}
}

var _ = authstore.ErrNotFound

func TestSignOutDuringStoreOutageKeepsTheCookie(t *testing.T) {
	h := newHarness(t)
	b := h.browser()
	b.signIn("olga@example.com", "/")
	account := b.get("/.gatehouse/account")
	h.srv.sessions.Flush()
	_ = h.store.Close()
	out := b.post("/.gatehouse/logout", url.Values{"_csrf": {b.csrf(account.body)}})
	if out.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("logout with the store down: %d, want 503", out.StatusCode)
	}
	for _, v := range out.Header.Values("Set-Cookie") {
		if strings.HasPrefix(v, "gatehouse_session=") {
			t.Fatalf("cookie cleared although the session still exists: %q", v)
		}
	}
}

func TestOneClickLinkKeepsTheDestination(t *testing.T) {
	h := newHarness(t)
	b := h.browser()
	b.requestCode("pat@example.com", "/reports?q=1")
	link := h.mail.WaitFor(t, "pat@example.com", 1).Link()
	u, err := url.Parse(link)
	if err != nil || u.Query().Get("rd") != "/reports?q=1" {
		t.Fatalf("link %q does not carry rd", link)
	}
	page := b.get(u.RequestURI())
	if page.StatusCode != http.StatusOK {
		t.Fatalf("confirm page: %d", page.StatusCode)
	}
	if h.up.Count() != 0 || b.sessionCookie() != "" {
		t.Fatal("opening the link signed in without the button")
	}
	resp := b.post("/.gatehouse/link", url.Values{"token": {u.Query().Get("t")}, "rd": {u.Query().Get("rd")}, "_csrf": {b.csrf(page.body)}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/reports?q=1" {
		t.Fatalf("link sign-in: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
}

func TestForbiddenPageCanSwitchAccountWithoutCSRFCookie(t *testing.T) {
	h := newHarness(t, func(o *Options) {
		o.Settings.Rules = []access.Rule{{Paths: []string{"/admin/**"}, Policy: access.PolicyAuthenticated, Emails: []string{"root@example.com"}}}
	})
	b := h.browser()
	b.signIn("quinn@example.com", "/")
	// A browser restart keeps the persistent session cookie but drops the
	// CSRF cookie, which lives only for the browser session.
	u, _ := url.Parse(h.URL)
	b.c.Jar.SetCookies(u, []*http.Cookie{{Name: "gatehouse_csrf", Value: "", MaxAge: -1, Path: "/"}})
	page := b.get("/admin/x")
	if page.StatusCode != http.StatusForbidden {
		t.Fatalf("status %d", page.StatusCode)
	}
	out := b.post("/.gatehouse/logout", url.Values{"_csrf": {b.csrf(page.body)}, "rd": {"/admin/x"}})
	if out.StatusCode != http.StatusSeeOther {
		t.Fatalf("switch account: %d", out.StatusCode)
	}
}

// The resend cooldown paces the page's button, not a fresh request: asking
// twice in a row (as an app or a second tab does) sends a new code that
// voids the first.
func TestSecondRequestSendsANewCodeDespiteTheCooldown(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.Settings.OTP.ResendCooldown = 30 * time.Second })
	send := func() {
		req, _ := http.NewRequest("POST", h.URL+"/.gatehouse/api/otp/send", strings.NewReader(`{"email":"rita@example.com"}`))
		req.Header.Set("Content-Type", "application/json")
		if r := h.browser().do(req); r.StatusCode != http.StatusOK {
			t.Fatalf("send: %d %s", r.StatusCode, r.body)
		}
	}
	send()
	first := h.mail.WaitFor(t, "rita@example.com", 1).Code()
	send()
	second := h.mail.WaitFor(t, "rita@example.com", 2).Code()
	verify := func(code string) int {
		req, _ := http.NewRequest("POST", h.URL+"/.gatehouse/api/otp/verify", strings.NewReader(`{"email":"rita@example.com","code":"`+code+`"}`))
		req.Header.Set("Content-Type", "application/json")
		return h.browser().do(req).StatusCode
	}
	if first != second && verify(first) != http.StatusUnauthorized {
		t.Fatal("the older code still works")
	}
	if st := verify(second); st != http.StatusOK {
		t.Fatalf("newest code: %d", st)
	}
}

func TestCodeMayBePastedWithSpaces(t *testing.T) {
	h := newHarness(t)
	b := h.browser()
	page := b.requestCode("sam@example.com", "/")
	code := h.mail.WaitFor(t, "sam@example.com", 1).Code()
	spaced := " " + code[:3] + " " + code[3:] + " "
	if r := b.verify("sam@example.com", spaced, "/", page.body); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("code %q with spaces: %d", spaced, r.StatusCode)
	}
}
