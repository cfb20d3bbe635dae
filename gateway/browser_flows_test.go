package gateway

import (
	"bytes"
	"context"
	"image"
	"image/png"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"gatehouse/access"
	"gatehouse/internal/apptest"
	"gatehouse/pages"
)

// TestBrowser proves every sign-in flow in a real Chromium. The subtests
// share one browser process and each opens its own browser context.
func TestBrowser(t *testing.T) {
	c := startChromium(t)
	for _, tc := range []struct {
		name string
		run  func(t *testing.T, c *chrome)
	}{
		{"protected page, sign-in, app, sign-out", browserSignInAndOut},
		{"wrong code, then the right one", browserWrongCode},
		{"too many wrong tries void the code", browserTooManyTries},
		{"expired code, then a new one", browserExpiredCode},
		{"resend cooldown counts down", browserResendCooldown},
		{"one-click link asks before signing in", browserOneClickLink},
		{"sign out everywhere else", browserSignOutEverywhereElse},
		{"korean from accept-language, english by ?lang=", browserKorean},
		{"phone 375 px wide", browserPhone},
		{"keyboard only, without javascript", browserKeyboardOnly},
		{"403 offers another account, 502 and 504 pages", browserErrorPages},
		{"branding: name, logo, accent color, template override", browserBranding},
		{"screenshots of every page", browserScreenshots},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, c) })
	}
}

func browserSignInAndOut(t *testing.T, c *chrome) {
	h := newHarness(t)
	b := h.newTab(c, tabOptions{})

	if st := b.open("/dashboard?tab=2"); st != 200 {
		t.Fatalf("protected page: status %d", st)
	}
	if p := b.path(); p != "/.gatehouse/login?rd="+url.QueryEscape("/dashboard?tab=2") {
		t.Fatalf("protected page led to %q, want the sign-in page", p)
	}
	if got := b.text("h1"); got != "Sign in to Gatehouse" {
		t.Errorf("sign-in heading = %q", got)
	}
	if f := b.focused(); f != "input#email" {
		t.Errorf("focus on the sign-in page is on %q, want the email field", f)
	}
	b.checkA11y("sign-in page")

	b.requestCode("Alice@Example.com")
	if got := b.text("h1"); got != "Check your email" {
		t.Errorf("code page heading = %q", got)
	}
	if got := b.text(".lead"); !strings.Contains(got, "alice@example.com") {
		t.Errorf("code page does not show the address: %q", got)
	}
	if href := eval[string](b, `document.querySelector("a[href*='/login']").getAttribute("href")`); !strings.HasPrefix(href, "/.gatehouse/login?rd=") {
		t.Errorf("use-another-address link = %q", href)
	}
	if got := b.text("a[href*='/login']"); got != "Use another address" {
		t.Errorf("use-another-address link text = %q", got)
	}
	if f := b.focused(); f != "input#code" {
		t.Errorf("focus on the code page is on %q, want the code field", f)
	}
	if got := b.text("#code-hint"); got != "The code expires in 5 minutes." {
		t.Errorf("code lifetime hint = %q", got)
	}
	b.checkA11y("code page")

	code := h.mail.WaitFor(t, "alice@example.com", 1).Code()
	if st := b.enterCode(code); st != 200 {
		t.Fatalf("after the code: status %d", st)
	}
	if p := b.path(); p != "/dashboard?tab=2" {
		t.Fatalf("after sign-in the browser is at %q, want /dashboard?tab=2", p)
	}
	if got := b.text("body"); got != apptest.Body("/dashboard") {
		t.Errorf("upstream page = %q", got)
	}
	if got := h.up.Last(t).Header.Get("X-Auth-Request-Email"); got != "alice@example.com" {
		t.Errorf("upstream saw X-Auth-Request-Email %q", got)
	}

	b.open("/.gatehouse/account")
	if got := b.text(".lead"); !strings.Contains(got, "alice@example.com") {
		t.Errorf("account page does not name the user: %q", got)
	}
	if got := b.text(".sessions"); !strings.Contains(got, "This device") || !strings.Contains(got, "127.0.0.1") || !strings.Contains(got, "Chrome") {
		t.Errorf("account page session list = %q, want this device, its IP and browser", got)
	}
	b.checkA11y("account page")

	if st := b.click(".actions button.primary"); st != 200 {
		t.Fatalf("sign out: status %d", st)
	}
	if p := b.path(); !strings.HasPrefix(p, "/.gatehouse/login") {
		t.Errorf("after sign-out the browser is at %q, want the sign-in page", p)
	}
	if got := b.text(".notice"); got != "You are signed out. To sign in again, enter your email address." {
		t.Errorf("after sign-out the sign-in page says %q", got)
	}
	sessions, err := h.store.ListSessions(context.Background(), "alice@example.com")
	if err != nil || len(sessions) != 0 {
		t.Errorf("sessions after sign-out: %d (%v), want none", len(sessions), err)
	}
	before := h.up.Count()
	b.open("/dashboard")
	if p := b.path(); !strings.HasPrefix(p, "/.gatehouse/login") || h.up.Count() != before {
		t.Errorf("after sign-out /dashboard led to %q (upstream reached: %v)", p, h.up.Count() != before)
	}
}

func browserWrongCode(t *testing.T, c *chrome) {
	h := newHarness(t)
	b := h.newTab(c, tabOptions{})
	b.open("/.gatehouse/login?rd=/inbox")
	b.requestCode("bob@example.com")
	code := h.mail.WaitFor(t, "bob@example.com", 1).Code()
	wrong := "000000"
	if code == wrong {
		wrong = "111111"
	}
	if st := b.enterCode(wrong); st != http.StatusUnauthorized {
		t.Fatalf("wrong code: status %d, want 401", st)
	}
	if got := b.text("#form-error"); got != "That code is not right. Check the mail and try again." {
		t.Errorf("error after a wrong code = %q", got)
	}
	if got := eval[string](b, `document.getElementById("form-error").getAttribute("role") + " " + document.getElementById("form-error").getAttribute("aria-live")`); got != "alert polite" {
		t.Errorf("error region role/aria-live = %q", got)
	}
	if got := eval[string](b, `document.getElementById("code").getAttribute("aria-invalid")`); got != "true" {
		t.Errorf("code field aria-invalid = %q", got)
	}
	if got := eval[string](b, `document.getElementById("code").getAttribute("aria-describedby")`); !strings.Contains(got, "form-error") {
		t.Errorf("code field is not described by the error: %q", got)
	}
	if f := b.focused(); f != "input#code" {
		t.Errorf("after a wrong code focus is on %q, want the code field", f)
	}
	b.checkA11y("code page with an error")
	if st := b.enterCode(code); st != 200 || b.path() != "/inbox" {
		t.Fatalf("right code after a wrong one: status %d at %q", st, b.path())
	}
}

func browserTooManyTries(t *testing.T, c *chrome) {
	h := newHarness(t)
	b := h.newTab(c, tabOptions{})
	b.open("/.gatehouse/login?rd=/inbox")
	b.requestCode("ben@example.com")
	code := h.mail.WaitFor(t, "ben@example.com", 1).Code()
	wrong := "000000"
	if code == wrong {
		wrong = "111111"
	}
	const tooMany = "Too many wrong tries, so this code no longer works. Send a new code below."
	for i := 0; i < 5; i++ {
		b.enterCode(wrong)
	}
	if st := b.enterCode(code); st != http.StatusUnauthorized {
		t.Fatalf("right code after 5 wrong tries: status %d, want 401", st)
	}
	if got := b.text("#form-error"); got != tooMany {
		t.Errorf("after 5 wrong tries the page says %q", got)
	}
	if st := b.click("form.resend button"); st != 200 {
		t.Fatalf("send a new code: status %d", st)
	}
	if st := b.enterCode(h.mail.WaitFor(t, "ben@example.com", 2).Code()); st != 200 || b.path() != "/inbox" {
		t.Fatalf("new code after too many tries: status %d at %q", st, b.path())
	}
}

func browserExpiredCode(t *testing.T, c *chrome) {
	clk := newClock(time.Now())
	h := newHarness(t, func(o *Options) { o.Now = clk.Now })
	b := h.newTab(c, tabOptions{})
	b.open("/.gatehouse/login?rd=/reports")
	b.requestCode("cho@example.com")
	old := h.mail.WaitFor(t, "cho@example.com", 1).Code()

	clk.Advance(6 * time.Minute) // the code lives 5 minutes
	if st := b.enterCode(old); st != http.StatusUnauthorized {
		t.Fatalf("expired code: status %d, want 401", st)
	}
	if got := b.text("#form-error"); got != "This code has expired. Send a new code below." {
		t.Errorf("error after an expired code = %q", got)
	}
	if st := b.click("form.resend button"); st != 200 {
		t.Fatalf("send a new code: status %d", st)
	}
	if got := b.text(".lead"); !strings.Contains(got, "new code") || !strings.Contains(got, "cho@example.com") {
		t.Errorf("after asking again the page says %q", got)
	}
	fresh := h.mail.WaitFor(t, "cho@example.com", 2).Code()
	if st := b.enterCode(fresh); st != 200 || b.path() != "/reports" {
		t.Fatalf("new code: status %d at %q", st, b.path())
	}
}

func browserResendCooldown(t *testing.T, c *chrome) {
	h := newHarness(t, func(o *Options) { o.Settings.OTP.ResendCooldown = time.Minute })
	b := h.newTab(c, tabOptions{})
	b.open("/.gatehouse/login")
	b.requestCode("dan@example.com")

	if !eval[bool](b, `document.querySelector("form.resend button").disabled`) {
		t.Error("the resend button is enabled during the cooldown")
	}
	first, err := strconv.Atoi(b.text("[data-resend-seconds]"))
	if err != nil || first < 1 || first > 60 {
		t.Fatalf("countdown shows %q, want 1-60 seconds", b.text("[data-resend-seconds]"))
	}
	// The countdown moves: wait (without a fixed sleep) until the number
	// shown is lower than the first one.
	_, err = chromedp.Run(b.ctx, chromedp.Poll[bool](
		`parseInt(document.querySelector("[data-resend-seconds]").textContent, 10) < `+strconv.Itoa(first),
		chromedp.WithPollingTimeout(15*time.Second)))
	if err != nil {
		t.Errorf("the countdown did not move below %d: %v", first, err)
	}

	// Without the script the button stays usable, and asking too early
	// gets the time left instead of a claim that a code went out.
	nojs := h.newTab(c, tabOptions{noScript: true})
	nojs.open("/.gatehouse/login")
	nojs.requestCode("dan@example.com")
	if eval[bool](nojs, `document.querySelector("form.resend button").disabled`) {
		t.Fatal("without JavaScript the resend button is disabled for good")
	}
	// A fresh request from the sign-in form is not a resend: it is sent
	// (the per-address limit bounds those); the button's resend waits.
	h.mail.WaitFor(t, "dan@example.com", 2)
	if st := nojs.click("form.resend button"); st != http.StatusTooManyRequests {
		t.Fatalf("early resend: status %d, want 429", st)
	}
	if got := nojs.text("#form-error"); !strings.HasPrefix(got, "Please wait ") || !strings.Contains(got, "seconds before asking for another code") {
		t.Errorf("early resend says %q", got)
	}
	if n := len(h.mailsTo("dan@example.com")); n != 2 {
		t.Errorf("%d mails, want 2: the early resend must send none", n)
	}
}

func browserOneClickLink(t *testing.T, c *chrome) {
	h := newHarness(t)
	b := h.newTab(c, tabOptions{})
	b.open("/.gatehouse/login")
	b.requestCode("eve@example.com")
	link := h.mail.WaitFor(t, "eve@example.com", 1).Link()
	if !strings.HasPrefix(link, h.URL+"/.gatehouse/link?t=") {
		t.Fatalf("mail link = %q", link)
	}

	// Opening the link, as a mail scanner does, signs nobody in.
	phone := h.newTab(c, tabOptions{})
	if st := phone.open(strings.TrimPrefix(link, h.URL)); st != 200 {
		t.Fatalf("link page: status %d", st)
	}
	if got := phone.text("h1"); got != "Finish signing in to Gatehouse?" {
		t.Errorf("confirm heading = %q", got)
	}
	if got := phone.text("form[action$='/link'] button"); got != "Sign in" {
		t.Errorf("confirm button = %q", got)
	}
	phone.checkA11y("confirm page")
	if s, _ := h.store.ListSessions(context.Background(), "eve@example.com"); len(s) != 0 {
		t.Fatalf("opening the link started %d sessions", len(s))
	}
	if st := phone.click("form[action$='/link'] button"); st != 200 {
		t.Fatalf("confirm: status %d", st)
	}
	if p := phone.path(); p != "/" || phone.text("body") != apptest.Body("/") {
		t.Errorf("after confirming the browser is at %q showing %q", p, phone.text("body"))
	}
	// The link works once.
	again := h.newTab(c, tabOptions{})
	again.open(strings.TrimPrefix(link, h.URL))
	if st := again.click("form[action$='/link'] button"); st != http.StatusUnauthorized {
		t.Fatalf("second use of the link: status %d, want 401", st)
	}
	if got := again.text("#form-error"); !strings.Contains(got, "no longer valid") {
		t.Errorf("second use of the link says %q", got)
	}
}

func browserSignOutEverywhereElse(t *testing.T, c *chrome) {
	h := newHarness(t)
	laptop := h.newTab(c, tabOptions{})
	phone := h.newTab(c, phone375)
	for _, b := range []*tab{laptop, phone} {
		b.open("/.gatehouse/login?rd=/home")
		if st := b.signIn("fay@example.com"); st != 200 {
			t.Fatalf("sign in: status %d", st)
		}
	}

	laptop.open("/.gatehouse/account")
	if n := eval[int](laptop, `document.querySelectorAll(".sessions .session").length`); n != 2 {
		t.Fatalf("account page lists %d sessions, want 2", n)
	}
	if st := laptop.click("form[action$='/logout-others'] button"); st != 200 {
		t.Fatalf("sign out everywhere else: status %d", st)
	}
	if got := laptop.text(".notice"); got != "You have been signed out everywhere else." {
		t.Errorf("notice = %q", got)
	}
	if n := eval[int](laptop, `document.querySelectorAll(".sessions .session").length`); n != 1 {
		t.Errorf("after signing out elsewhere the page lists %d sessions, want 1", n)
	}
	if got := laptop.text(".actions .hint"); got != "You are not signed in anywhere else." {
		t.Errorf("hint = %q", got)
	}

	phone.open("/home")
	if p := phone.path(); !strings.HasPrefix(p, "/.gatehouse/login") {
		t.Errorf("the other device is still signed in: at %q", p)
	}
	laptop.open("/home")
	if got := laptop.text("body"); got != apptest.Body("/home") {
		t.Errorf("this device lost its session: %q", got)
	}
}

func browserKorean(t *testing.T, c *chrome) {
	h := newHarness(t)
	b := h.newTab(c, tabOptions{acceptLanguage: "ko-KR,ko,en"})
	b.open("/docs")
	if lang := eval[string](b, "document.documentElement.lang"); lang != "ko" {
		t.Fatalf("page language = %q, want ko", lang)
	}
	if got := b.text("h1"); got != "Gatehouse 로그인" {
		t.Errorf("sign-in heading = %q", got)
	}
	if got := b.text("label[for=email]"); got != "이메일 주소" {
		t.Errorf("email label = %q", got)
	}
	b.checkA11y("korean sign-in page")
	b.requestCode("gu@example.com")
	if got := b.text("h1"); got != "메일을 확인해 주세요" {
		t.Errorf("code heading = %q", got)
	}
	if got := b.text("a[href*='/login']"); got != "다른 주소 사용하기" {
		t.Errorf("use-another-address link = %q", got)
	}
	msg := h.mail.WaitFor(t, "gu@example.com", 1)
	if msg.Subject != "Gatehouse 로그인 코드" || !strings.Contains(msg.Text, "로그인 코드를 알려 드립니다") {
		t.Errorf("mail is not in Korean: subject %q", msg.Subject)
	}
	if st := b.enterCode(msg.Code()); st != 200 || b.path() != "/docs" {
		t.Fatalf("korean sign-in: status %d at %q", st, b.path())
	}

	// ?lang= wins over Accept-Language and sticks for the pages after it.
	b.open("/.gatehouse/account?lang=en")
	if got := b.text("h1"); got != "Your account" {
		t.Errorf("account with ?lang=en = %q", got)
	}
	b.open("/.gatehouse/account")
	if got := b.text("h1"); got != "Your account" {
		t.Errorf("account after choosing English = %q", got)
	}
	if st := b.click(".langs a[hreflang=ko]"); st != 200 || b.text("h1") != "내 계정" {
		t.Errorf("language link to Korean: status %d, heading %q", st, b.text("h1"))
	}

	// An English browser that picks Korean gets the code page and the
	// mail in Korean.
	en := h.newTab(c, tabOptions{})
	en.open("/.gatehouse/login?lang=ko")
	en.requestCode("lee@example.com")
	if got := en.text("h1"); got != "메일을 확인해 주세요" {
		t.Errorf("code page after ?lang=ko = %q", got)
	}
	if msg := h.mail.WaitFor(t, "lee@example.com", 1); msg.Subject != "Gatehouse 로그인 코드" {
		t.Errorf("mail after ?lang=ko has subject %q", msg.Subject)
	}
}

func browserPhone(t *testing.T, c *chrome) {
	h := newHarness(t)
	b := h.newTab(c, phone375)
	// fits checks that nothing is wider than the screen and that the main
	// button is a comfortable touch target.
	fits := func(page string) {
		t.Helper()
		width := eval[int](b, "window.innerWidth")
		if width != 375 {
			t.Fatalf("%s: viewport is %d px wide, want 375", page, width)
		}
		if sw := eval[int](b, "document.documentElement.scrollWidth"); sw > width {
			t.Errorf("%s: page is %d px wide on a %d px screen", page, sw, width)
		}
		wide := eval[[]string](b, `Array.from(document.querySelectorAll("main *")).filter(e => e.getBoundingClientRect().right > window.innerWidth + 0.5).map(e => e.tagName + "." + e.className)`)
		if len(wide) > 0 {
			t.Errorf("%s: elements overflow the screen: %v", page, wide)
		}
		if hgt := eval[float64](b, `document.querySelector("main .primary").getBoundingClientRect().height`); hgt < 44 {
			t.Errorf("%s: main button is %.0f px high, want at least 44", page, hgt)
		}
	}
	b.open("/m")
	fits("sign-in page")
	b.requestCode("hana.long.address.for.testing@subdomain.example.com")
	fits("code page")
	code := h.mail.WaitFor(t, "hana.long.address.for.testing@subdomain.example.com", 1).Code()
	if st := b.enterCode(code); st != 200 || b.path() != "/m" {
		t.Fatalf("phone sign-in: status %d at %q", st, b.path())
	}
	b.open("/.gatehouse/account")
	fits("account page")
}

func browserKeyboardOnly(t *testing.T, c *chrome) {
	h := newHarness(t)
	b := h.newTab(c, tabOptions{noScript: true})
	press := func(what, keys string) { b.do(what, chromedp.KeyEvent(keys)) }
	pressAndLoad := func(what, keys string) int64 { return b.navigate(what, chromedp.KeyEvent(keys)) }

	b.open("/kb")
	if f := b.focused(); f != "input#email" {
		t.Fatalf("sign-in page opens with focus on %q, want the email field", f)
	}
	if !b.focusRingVisible() {
		t.Error("the focused email field shows no focus ring")
	}
	press("type email", "ivy@example.com")
	if st := pressAndLoad("Enter in the email field", kb.Enter); st != 200 {
		t.Fatalf("Enter on the sign-in page: status %d", st)
	}
	if f := b.focused(); f != "input#code" {
		t.Fatalf("code page opens with focus on %q, want the code field", f)
	}
	code := h.mail.WaitFor(t, "ivy@example.com", 1).Code()
	press("type code", code)
	press("Tab to the button", kb.Tab)
	if f := b.focused(); f != "button:Sign in" {
		t.Fatalf("Tab from the code field went to %q, want the sign-in button", f)
	}
	if !b.focusRingVisible() {
		t.Error("the focused sign-in button shows no focus ring")
	}
	if st := pressAndLoad("Enter on the sign-in button", kb.Enter); st != 200 || b.path() != "/kb" {
		t.Fatalf("keyboard sign-in: status %d at %q", st, b.path())
	}

	// Sign out with the keyboard: Tab from the top of the account page
	// reaches the skip link first, then every control in reading order.
	b.open("/.gatehouse/account")
	press("Tab to the skip link", kb.Tab)
	if f := b.focused(); f != "a:Skip to content" {
		t.Fatalf("first Tab stop is %q, want the skip link", f)
	}
	if !b.focusRingVisible() {
		t.Error("the focused skip link shows no focus ring")
	}
	for i := 0; i < 10 && b.focused() != "button:Sign out"; i++ {
		press("Tab", kb.Tab)
	}
	if f := b.focused(); f != "button:Sign out" {
		t.Fatalf("Tab never reached the sign-out button (at %q)", f)
	}
	if st := pressAndLoad("Enter on sign out", kb.Enter); st != 200 || !strings.HasPrefix(b.path(), "/.gatehouse/login") {
		t.Fatalf("keyboard sign-out: status %d at %q", st, b.path())
	}
}

func browserErrorPages(t *testing.T, c *chrome) {
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadURL, _ := url.Parse("http://" + closed.Addr().String())
	_ = closed.Close()
	slow := apptest.Start(t)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	slow.Handle = func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}
	slowURL, _ := url.Parse(slow.URL)
	h := newHarness(t, func(o *Options) {
		o.Settings.Rules = append(o.Settings.Rules,
			access.Rule{Paths: []string{"/admin/**"}, Policy: access.PolicyAuthenticated, Emails: []string{"boss@example.com"}})
		o.Routes = []Route{
			{PathPrefix: "/down", Upstream: deadURL},
			{PathPrefix: "/slow", Upstream: slowURL},
		}
		o.UpstreamTimeout = 500 * time.Millisecond
	})
	b := h.newTab(c, tabOptions{})
	b.open("/.gatehouse/login?rd=/admin/panel")
	if st := b.signIn("jo@example.com"); st != http.StatusForbidden {
		t.Fatalf("signed in as a user the rule does not list: status %d, want 403", st)
	}

	if p := b.path(); p != "/admin/panel" {
		t.Fatalf("after sign-in the browser is at %q", p)
	}
	if got := b.text("h1"); got != "No access" {
		t.Errorf("403 heading = %q", got)
	}
	if got := b.text(".lead"); !strings.Contains(got, "jo@example.com") {
		t.Errorf("403 page does not say who is signed in: %q", got)
	}
	b.checkA11y("403 page")
	if st := b.click("form[action$='/logout'] button"); st != 200 {
		t.Fatalf("switch account: status %d", st)
	}
	if p := b.path(); p != "/.gatehouse/login?rd="+url.QueryEscape("/admin/panel") {
		t.Fatalf("switch account led to %q, want the sign-in page for /admin/panel", p)
	}
	if st := b.signIn("boss@example.com"); st != 200 {
		t.Fatalf("sign in as the listed user: status %d", st)
	}
	if p, got := b.path(), b.text("body"); p != "/admin/panel" || got != apptest.Body("/admin/panel") {
		t.Errorf("after switching account: %q showing %q", p, got)
	}

	if st := b.open("/down/report"); st != http.StatusBadGateway {
		t.Errorf("dead upstream: status %d, want 502", st)
	}
	if got := b.text("h1"); got != "Service unreachable" {
		t.Errorf("502 heading = %q", got)
	}
	if href := eval[string](b, `document.querySelector("a.button").getAttribute("href")`); href != "/down/report" {
		t.Errorf("502 try-again link = %q, want the same page", href)
	}
	b.checkA11y("502 page")

	if st := b.open("/slow/report"); st != http.StatusGatewayTimeout {
		t.Errorf("slow upstream: status %d, want 504", st)
	}
	if got := b.text("h1"); got != "Service too slow" {
		t.Errorf("504 heading = %q", got)
	}
}

func browserBranding(t *testing.T, c *chrome) {
	dir := t.TempDir()
	logo := image.NewRGBA(image.Rect(0, 0, 4, 2))
	var buf bytes.Buffer
	if err := png.Encode(&buf, logo); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "logo.png"), buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	override := `{{define "title"}}{{t "login.title"}}{{end}}{{define "main"}}<h1>{{tf "login.heading" "app" .App}}</h1>` +
		`<p class="lead" id="custom">Staff only.</p>` +
		`<form method="post" action="{{.Prefix}}/login">{{template "csrf" .}}<input type="hidden" name="rd" value="{{.V.RD}}">` +
		`<label for="email">{{t "login.email_label"}}</label><input id="email" name="email" type="email" autocomplete="email">` +
		`<p id="form-error" role="alert" aria-live="polite"></p><button class="primary" type="submit">{{t "login.submit"}}</button></form>{{end}}`
	if err := os.WriteFile(filepath.Join(dir, "login.html"), []byte(override), 0o644); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, func(o *Options) {
		p, err := pages.New(pages.Options{
			AppName: "Acme Tools", AccentColor: "#7c3aed", Logo: Prefix + "/static/logo.png", TemplatesDir: dir,
		})
		if err != nil {
			t.Fatal(err)
		}
		o.Settings.Pages = p
		o.Settings.AppName = "Acme Tools"
	})
	b := h.newTab(c, tabOptions{})
	b.open("/tools")
	if got := b.text("h1"); got != "Sign in to Acme Tools" {
		t.Errorf("heading = %q", got)
	}
	if got := eval[string](b, "document.title"); got != "Sign in · Acme Tools" {
		t.Errorf("title = %q", got)
	}
	if got := b.text("#custom"); got != "Staff only." {
		t.Errorf("the overriding template was not used: %q", got)
	}
	if w := eval[int](b, `document.querySelector("img.logo").naturalWidth`); w != 4 {
		t.Errorf("logo served by Gatehouse has natural width %d, want 4", w)
	}
	if got := eval[string](b, `getComputedStyle(document.querySelector("button.primary")).backgroundColor`); got != "rgb(124, 58, 237)" {
		t.Errorf("button color = %q, want the accent #7c3aed", got)
	}
	resp := h.browser().get(Prefix + "/static/logo.png")
	if ct, csp := resp.Header.Get("Content-Type"), resp.Header.Get("Content-Security-Policy"); resp.StatusCode != 200 || ct != "image/png" || !strings.Contains(csp, "sandbox") {
		t.Errorf("logo: status %d, Content-Type %q, CSP %q", resp.StatusCode, ct, csp)
	}
	b.checkA11y("branded sign-in page")
	b.requestCode("kim@example.com")
	if got := b.text(".brand"); got != "Acme Tools" {
		t.Errorf("code page brand = %q", got)
	}
	if msg := h.mail.WaitFor(t, "kim@example.com", 1); msg.Subject != "Your Acme Tools sign-in code" {
		t.Errorf("mail subject = %q", msg.Subject)
	}
}
