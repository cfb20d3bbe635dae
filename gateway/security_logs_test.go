package gateway

import (
	"encoding/base64"
	"encoding/hex"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"gatehouse/internal/logbuf"
)

// TestNoSecretReachesTheLogs walks every sign-in path with a debug-level
// logger and looks for codes, tokens, cookies and the secret in what was
// logged and in the audit events.
func TestNoSecretReachesTheLogs(t *testing.T) {
	logs := &logbuf.Buffer{}
	h := newHarness(t, trustLoopback, func(o *Options) {
		o.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	var secrets []string
	keep := func(s ...string) {
		for _, v := range s {
			if len(v) >= 6 {
				secrets = append(secrets, v)
			}
		}
	}
	keep(string(h.opts.Secret), hex.EncodeToString(h.opts.Secret), base64.StdEncoding.EncodeToString(h.opts.Secret))

	b := h.browser()
	login := b.get("/.gatehouse/login?rd=/app")
	u, _ := url.Parse(h.URL)
	for _, c := range b.c.Jar.Cookies(u) {
		keep(c.Value)
	}
	keep(b.csrf(login.body))
	page := b.post("/.gatehouse/login", url.Values{"email": {"log@example.com"}, "rd": {"/app"}, "_csrf": {b.csrf(login.body)}})
	msg := h.mail.WaitFor(t, "log@example.com", 1)
	code := msg.Code()
	wrong := wrongCode(code)
	keep(code, wrong, linkToken(msg.Link()))
	b.verify("log@example.com", wrong, "/app", page.body)
	b.verify("log@example.com", code, "/app", page.body)
	keep(b.sessionCookie())
	b.get("/app?token=" + b.sessionCookie())
	b.get("/.gatehouse/account")

	// The one-click link, with a fresh code.
	page = b.post("/.gatehouse/login", url.Values{"email": {"log@example.com"}, "_csrf": {b.csrf(login.body)}})
	msg = h.mail.WaitFor(t, "log@example.com", 2)
	link := msg.Link()
	token := linkToken(link)
	keep(msg.Code(), token)
	confirm := b.get(strings.TrimPrefix(link, h.URL))
	b.post("/.gatehouse/link", url.Values{"token": {token}, "_csrf": {b.csrf(confirm.body)}})
	keep(b.sessionCookie())

	// The API, a forward-auth check, a bad CSRF token and sign-outs.
	api := h.browser()
	api.api("/.gatehouse/api/otp/send", `{"email":"log@example.com"}`)
	msg = h.mail.WaitFor(t, "log@example.com", 3)
	keep(msg.Code(), linkToken(msg.Link()))
	api.api("/.gatehouse/api/otp/verify", `{"email":"log@example.com","code":"`+wrongCode(msg.Code())+`"}`)
	api.api("/.gatehouse/api/otp/verify", `{"email":"log@example.com","code":"`+msg.Code()+`"}`)
	keep(api.sessionCookie())
	req, _ := http.NewRequest(http.MethodGet, h.URL+"/.gatehouse/auth", nil)
	req.Header.Set("X-Forwarded-Method", "GET")
	req.Header.Set("X-Forwarded-Proto", "http")
	req.Header.Set("X-Forwarded-Host", u.Host)
	req.Header.Set("X-Forwarded-Uri", "/app?code="+code)
	api.do(req)
	b.post("/.gatehouse/logout", url.Values{"_csrf": {"forged-" + code}})
	b.post("/.gatehouse/logout", url.Values{"_csrf": {b.csrf(b.get("/.gatehouse/account").body)}})
	api.api("/.gatehouse/api/sign-out", "{}")
	// A store failure logs its error: that error must not quote the token.
	h.srv.sessions.Flush()
	replay := h.browser()
	replay.header.Set("Cookie", "gatehouse_session="+api.sessionCookie())
	time.Sleep(200 * time.Millisecond) // let asynchronous audit writes finish
	_ = h.store.Close()
	replay.get("/app")

	out := logs.String()
	if !strings.Contains(out, `"msg":"request"`) {
		t.Fatalf("no access log captured:\n%s", out)
	}
	var events strings.Builder
	for _, r := range h.dbRows("events") { // the file outlives the closed store
		for k, v := range r {
			events.WriteString(k + "=" + v + " ")
		}
	}
	if !strings.Contains(events.String(), "signin.ok") || len(secrets) < 12 {
		t.Fatalf("the walk did not happen: %d secrets, events %.200s", len(secrets), events.String())
	}
	for _, s := range secrets {
		if strings.Contains(out, s) {
			t.Errorf("the log holds a secret value (%d bytes)", len(s))
		}
		if strings.Contains(events.String(), s) {
			t.Errorf("the audit events hold a secret value (%d bytes)", len(s))
		}
	}
}
