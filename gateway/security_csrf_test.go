package gateway

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// crossSite describes how a request from another site, or from a browser
// that sends no fetch metadata, can look.
type crossSite struct {
	name    string
	headers map[string]string // "" value: header absent
	token   func(victim, attacker *browser, page string) string
	cookie  func(victim *browser) string // Cookie header; nil = the victim's jar
}

func csrfAttacks(h *harness) []crossSite {
	own := func(v, _ *browser, page string) string { return v.csrf(page) }
	return []crossSite{
		{"cross-site fetch metadata, valid token", map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}, own, nil},
		{"same-site sibling, valid token", map[string]string{"Sec-Fetch-Site": "same-site", "Origin": "https://sub.evil.example"}, own, nil},
		{"foreign Origin only, valid token", map[string]string{"Origin": "https://evil.example"}, own, nil},
		{"Origin null, valid token", map[string]string{"Origin": "null"}, own, nil},
		{"Origin on another port of the same host", map[string]string{"Origin": "http://127.0.0.1:1"}, own, nil},
		{"Origin naming the host as a suffix", map[string]string{"Origin": h.URL + ".evil.example"}, own, nil},
		{"no metadata, no token", nil, func(*browser, *browser, string) string { return "" }, nil},
		{"no metadata, made-up token", nil, func(*browser, *browser, string) string { return strings.Repeat("A", 43) }, nil},
		{"no metadata, the attacker's token", nil, func(_, a *browser, _ string) string {
			return a.csrf(a.get("/.gatehouse/login").body)
		}, nil},
		{"no metadata, valid token without its cookie", nil, own, func(v *browser) string {
			return "gatehouse_session=" + v.sessionCookie()
		}},
	}
}

func TestFormEndpointsRefuseCrossSiteRequests(t *testing.T) {
	h := newHarness(t)
	victim := h.browser()
	victim.signIn("val@example.com", "/")
	other := h.browser()
	other.signIn("val@example.com", "/")
	attacker := h.browser()

	// A pending code and link the attacks try to use.
	pending := h.browser()
	pending.requestCode("pen@example.com", "/")
	msg := h.mail.WaitFor(t, "pen@example.com", 1)
	link := msg.Link()
	pendingToken := linkToken(link)
	var otherID string
	for _, r := range h.dbRows("sessions") {
		otherID = r["id"] // any of val's sessions will do
	}
	endpoints := []struct {
		path string
		form url.Values
	}{
		{"/.gatehouse/login", url.Values{"email": {"attacker-chosen@example.com"}}},
		{"/.gatehouse/verify", url.Values{"email": {"pen@example.com"}, "code": {msg.Code()}}},
		{"/.gatehouse/link", url.Values{"token": {pendingToken}}},
		{"/.gatehouse/logout", url.Values{}},
		{"/.gatehouse/logout-others", url.Values{}},
		{"/.gatehouse/sessions/revoke", url.Values{"id": {otherID}}},
	}
	for _, ep := range endpoints {
		for _, atk := range csrfAttacks(h) {
			t.Run(ep.path+"/"+atk.name, func(t *testing.T) {
				page := victim.get("/.gatehouse/account").body
				form := url.Values{}
				for k, v := range ep.form {
					form[k] = v
				}
				if tok := atk.token(victim, attacker, page); tok != "" {
					form.Set("_csrf", tok)
				}
				req, _ := http.NewRequest(http.MethodPost, h.URL+ep.path, strings.NewReader(form.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.Header.Set("Accept", "text/html")
				for k, v := range atk.headers {
					req.Header.Set(k, v)
				}
				var resp response
				if atk.cookie != nil {
					req.Header.Set("Cookie", atk.cookie(victim))
					resp = h.browser().do(req)
				} else {
					resp = victim.do(req)
				}
				if resp.StatusCode != http.StatusForbidden {
					t.Fatalf("status %d, want 403", resp.StatusCode)
				}
			})
		}
	}
	// Nothing happened: both sessions live, no mail, the code and link
	// still work.
	for _, b := range []*browser{victim, other} {
		if r := b.get("/x"); r.StatusCode != http.StatusOK {
			t.Fatalf("a session was ended by a cross-site request: %d", r.StatusCode)
		}
	}
	time.Sleep(100 * time.Millisecond)
	if n := len(h.mailsTo("attacker-chosen@example.com")); n != 0 {
		t.Fatalf("a cross-site request sent %d mails", n)
	}
	page := pending.get("/.gatehouse/login")
	if r := pending.verify("pen@example.com", msg.Code(), "/", page.body); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("the code was used up by a cross-site request: %d", r.StatusCode)
	}
}

func TestAPIEndpointsRefuseCrossSiteRequests(t *testing.T) {
	h := newHarness(t)
	victim := h.browser()
	victim.signIn("wil@example.com", "/")
	h.browser().requestCode("pen@example.com", "/")
	code := h.mail.WaitFor(t, "pen@example.com", 1).Code()
	endpoints := []struct{ path, body string }{
		{"/.gatehouse/api/otp/send", `{"email":"attacker-chosen@example.com"}`},
		{"/.gatehouse/api/otp/verify", `{"email":"pen@example.com","code":"` + code + `"}`},
		{"/.gatehouse/api/sign-out", `{}`},
	}
	attacks := []struct {
		name    string
		ctype   string
		headers map[string]string
		want    int
	}{
		{"cross-site fetch", "application/json", map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}, http.StatusForbidden},
		{"same-site sibling", "application/json", map[string]string{"Sec-Fetch-Site": "same-site", "Origin": "https://sub.evil.example"}, http.StatusForbidden},
		{"foreign Origin", "application/json", map[string]string{"Origin": "https://evil.example"}, http.StatusForbidden},
		{"Origin null", "application/json", map[string]string{"Origin": "null"}, http.StatusForbidden},
		// What a cross-site page can send without a CORS preflight.
		{"simple form", "application/x-www-form-urlencoded", nil, http.StatusUnsupportedMediaType},
		{"simple text", "text/plain", nil, http.StatusUnsupportedMediaType},
		{"simple multipart", "multipart/form-data; boundary=x", nil, http.StatusUnsupportedMediaType},
		{"JSON dressed as text", "text/plain; charset=application/json", nil, http.StatusUnsupportedMediaType},
	}
	for _, ep := range endpoints {
		for _, atk := range attacks {
			t.Run(ep.path+"/"+atk.name, func(t *testing.T) {
				req, _ := http.NewRequest(http.MethodPost, h.URL+ep.path, strings.NewReader(ep.body))
				req.Header.Set("Content-Type", atk.ctype)
				for k, v := range atk.headers {
					req.Header.Set(k, v)
				}
				if r := victim.do(req); r.StatusCode != atk.want {
					t.Fatalf("status %d, want %d", r.StatusCode, atk.want)
				}
			})
		}
	}
	if r := victim.get("/x"); r.StatusCode != http.StatusOK {
		t.Fatalf("a cross-site request signed the victim out: %d", r.StatusCode)
	}
	time.Sleep(100 * time.Millisecond)
	if n := len(h.mailsTo("attacker-chosen@example.com")); n != 0 {
		t.Fatalf("a cross-site request sent %d mails", n)
	}
	if r := h.browser().api("/.gatehouse/api/otp/verify", `{"email":"pen@example.com","code":"`+code+`"}`); r.StatusCode != http.StatusOK {
		t.Fatalf("the code was used up by a cross-site request: %d", r.StatusCode)
	}
}

// TestGETChangesNothing: links and prefetches (GET, HEAD) never sign
// anyone in or out, send a code or use one up.
func TestGETChangesNothing(t *testing.T) {
	h := newHarness(t)
	b := h.browser()
	b.signIn("xan@example.com", "/")
	second := h.browser()
	second.signIn("xan@example.com", "/")
	var ids []string
	for _, r := range h.dbRows("sessions") {
		ids = append(ids, r["id"])
	}
	pending := h.browser()
	pending.requestCode("pen@example.com", "/")
	msg := h.mail.WaitFor(t, "pen@example.com", 1)
	link := msg.Link()
	token := linkToken(link)
	paths := []string{
		"/.gatehouse/logout",
		"/.gatehouse/logout?rd=/x",
		"/.gatehouse/logout-others",
		"/.gatehouse/sessions/revoke?id=" + ids[0],
		"/.gatehouse/sessions/revoke?id=" + ids[1],
		"/.gatehouse/api/sign-out",
		"/.gatehouse/verify?email=pen@example.com&code=" + msg.Code(),
		"/.gatehouse/api/otp/verify?email=pen@example.com&code=" + msg.Code(),
		"/.gatehouse/link?t=" + token,
		"/.gatehouse/login?email=getter@example.com",
		"/.gatehouse/api/otp/send?email=getter@example.com",
	}
	for _, method := range []string{http.MethodGet, http.MethodHead} {
		for _, p := range paths {
			req, _ := http.NewRequest(method, h.URL+p, nil)
			req.Header.Set("Accept", "text/html")
			b.do(req)
			anon := h.browser()
			anon.do(req.Clone(req.Context()))
		}
	}
	for i, c := range []*browser{b, second} {
		if r := c.get("/x"); r.StatusCode != http.StatusOK {
			t.Fatalf("session %d ended by a GET: %d", i, r.StatusCode)
		}
	}
	if rows := h.dbRows("sessions"); len(rows) != 2 {
		t.Fatalf("%d sessions after GETs, want the 2 there were", len(rows))
	}
	time.Sleep(100 * time.Millisecond)
	if n := len(h.mailsTo("getter@example.com")); n != 0 {
		t.Fatalf("a GET sent %d mails", n)
	}
	page := pending.get("/.gatehouse/login")
	if r := pending.verify("pen@example.com", msg.Code(), "/", page.body); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("a GET used up the code: %d", r.StatusCode)
	}
}
