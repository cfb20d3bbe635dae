package gateway

import (
	"context"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
)

// The browser tests drive Debian's Chromium (apt-get install chromium)
// through the sign-in pages against a real gateway: real SQLite, real SMTP
// server, recording upstream. One Chromium serves all of them; each test gets
// its own browser context, so cookies never leak between tests.

// chromiumPath finds Chromium. Without it the browser tests skip, except in
// CI, where they must run.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is not installed, and CI must run the browser tests: apt-get install chromium")
	}
	t.Skip("chromium is not installed (apt-get install chromium): skipping the browser tests")
	return ""
}

// chrome is a running Chromium.
type chrome struct {
	ctx       context.Context // its first tab; new tabs are made from it
	userAgent string
}

// startChromium starts one headless Chromium for a test and its subtests.
// Chromium reaches loopback addresses only: any other
// host goes through a proxy on loopback that drops every connection, so no
// background feature can talk to the outside world.
func startChromium(t *testing.T) *chrome {
	t.Helper()
	exe := chromiumPath(t)
	blackhole := startBlackhole(t)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.WindowSize(1280, 800),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-breakpad", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-domain-reliability", true),
		chromedp.Flag("disable-client-side-phishing-detection", true),
		chromedp.Flag("disable-features", "Translate,OptimizationHints,MediaRouter,AutofillServerCommunication,CertificateTransparencyComponentUpdater,InterestFeedContentSuggestions"),
		chromedp.Flag("safebrowsing-disable-auto-update", true),
		chromedp.Flag("metrics-recording-only", true),
		chromedp.Flag("no-pings", true),
		chromedp.Flag("password-store", "basic"),
		chromedp.Flag("use-mock-keychain", true),
		chromedp.Flag("force-color-profile", "srgb"),
		chromedp.Flag("font-render-hinting", "none"),
		chromedp.Flag("lang", "en-US"),
		chromedp.Flag("proxy-server", "http://"+blackhole),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	// The browser lives as long as the context of its first run, so that run
	// gets no deadline; a start that hangs is caught here instead.
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(ctx) }()
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("start chromium: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("chromium did not start within 60s")
	}
	version, err := chromedp.CallBrowser(ctx, cdpbrowser.GetVersion, cdp.Empty{})
	if err != nil {
		t.Fatalf("chromium version: %v", err)
	}
	return &chrome{ctx: ctx, userAgent: version.UserAgent}
}

// startBlackhole listens on loopback and closes every connection at once.
func startBlackhole(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	return ln.Addr().String()
}

// tabOptions describe the device a tab emulates.
type tabOptions struct {
	width, height  int64  // 0 = 1280×800 desktop
	phone          bool   // mobile emulation: meta viewport, touch
	dark           bool   // prefers-color-scheme: dark
	acceptLanguage string // languages in order, "" = "en-US,en"; Chromium adds the q= weights
	noScript       bool   // JavaScript disabled
	userAgent      string // "" = Chromium's own
}

func (o tabOptions) withDefaults() tabOptions {
	if o.width == 0 {
		o.width, o.height = 1280, 800
	}
	if o.acceptLanguage == "" {
		o.acceptLanguage = "en-US,en"
	}
	return o
}

func (o tabOptions) scheme() string {
	if o.dark {
		return "dark"
	}
	return "light"
}

// phone375 is a small phone: 375 CSS pixels wide.
var phone375 = tabOptions{width: 375, height: 740, phone: true}

// tab is one browser tab in a browser context of its own (its own cookies).
type tab struct {
	t   *testing.T
	h   *harness
	ctx context.Context
}

// newTab opens a tab in a new browser context of the running Chromium.
func (h *harness) newTab(c *chrome, o tabOptions) *tab {
	h.t.Helper()
	t := h.t
	ctx, cancel := chromedp.NewContext(c.ctx, chromedp.WithNewBrowserContext())
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(func() {
		cancelTimeout()
		cancel()
	})
	o = o.withDefaults()
	ua := o.userAgent
	if ua == "" {
		ua = c.userAgent
	}
	err := chromedp.Do(ctx,
		callAction(emulation.SetUserAgentOverride, emulation.SetUserAgentOverrideParams{
			UserAgent:      ua,
			AcceptLanguage: o.acceptLanguage,
		}),
		callAction(emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: o.noScript}),
	)
	if err != nil {
		t.Fatalf("set up tab: %v", err)
	}
	b := &tab{t: t, h: h, ctx: ctx}
	b.emulate(o)
	return b
}

// callAction sends one protocol command to the tab.
func callAction[P, R any](cmd cdp.Command[P, R], params P) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, cmd, params)
		return err
	})
}

// open navigates to a path of the gateway and returns the final status.
func (b *tab) open(path string) int64 {
	b.t.Helper()
	resp, err := chromedp.Run(b.ctx, chromedp.NavigateResponse(b.h.URL+path))
	if err != nil {
		b.t.Fatalf("open %s: %v", path, err)
	}
	return resp.Status
}

// navigate runs steps that make the page navigate (a click, Enter in a
// form, the last digit of a code) and waits for the new page; it returns
// the new page's status.
func (b *tab) navigate(what string, steps ...chromedp.Action[chromedp.Void]) int64 {
	b.t.Helper()
	resp, err := chromedp.RunResponse(b.ctx, steps...)
	if err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
	return resp.Status
}

// do runs steps that do not navigate.
func (b *tab) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, steps...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

// eval evaluates a JavaScript expression in the page.
func eval[T any](b *tab, expr string) T {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.t.Fatalf("evaluate %q: %v", expr, err)
	}
	return v
}

// text is the visible text of the first element matching a CSS selector,
// or "" when there is none.
func (b *tab) text(sel string) string {
	b.t.Helper()
	return eval[string](b, `(() => { const e = document.querySelector(`+jsString(sel)+`); return e ? e.innerText.trim() : ""; })()`)
}

// path is the current URL without the gateway's origin.
func (b *tab) path() string {
	b.t.Helper()
	return strings.TrimPrefix(eval[string](b, "location.href"), b.h.URL)
}

// focused describes the focused element: "tag#id" or "tag:text". The
// browser applies autofocus a moment after the load event, so while the
// body has the focus it looks again for up to 5 seconds.
func (b *tab) focused() string {
	b.t.Helper()
	const describe = `(() => { const e = document.activeElement; if (!e || e === document.body) return "body"; ` +
		`return e.tagName.toLowerCase() + (e.id ? "#" + e.id : ":" + e.innerText.trim()); })()`
	deadline := time.Now().Add(5 * time.Second)
	for {
		f := eval[string](b, describe)
		if f != "body" || time.Now().After(deadline) {
			return f
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// click clicks the first element matching a CSS selector and waits for the
// page it leads to.
func (b *tab) click(sel string) int64 {
	b.t.Helper()
	return b.navigate("click "+sel, chromedp.Click(chromedp.CSS(sel)))
}

// requestCode types email into the sign-in form and sends it. The tab must
// show the sign-in page.
func (b *tab) requestCode(email string) {
	b.t.Helper()
	if got := b.text("h1"); !strings.Contains(b.path(), "/.gatehouse/login") {
		b.t.Fatalf("not on the sign-in page: %s (%q)", b.path(), got)
	}
	b.do("type email", chromedp.SendKeys(chromedp.CSS("#email"), email))
	if st := b.click("form[action$='/login'] button[type=submit]"); st != 200 {
		b.t.Fatalf("send code: status %d", st)
	}
}

// enterCode types a code into the code form; the page's script submits it
// once all digits are there.
func (b *tab) enterCode(code string) int64 {
	b.t.Helper()
	return b.navigate("enter code", chromedp.SendKeys(chromedp.CSS("#code"), code))
}

// signIn runs the whole flow from the sign-in page and returns the status
// of the page it ends on.
func (b *tab) signIn(email string) int64 {
	b.t.Helper()
	n := len(b.h.mailsTo(email)) + 1
	b.requestCode(email)
	code := b.h.mail.WaitFor(b.t, email, n).Code()
	return b.enterCode(code)
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\r", `\r`, "<", `\x3c`)
	return `"` + r.Replace(s) + `"`
}

// clock is a settable time source for the gateway.
type clock struct{ ns atomic.Int64 }

func newClock(t time.Time) *clock {
	c := &clock{}
	c.ns.Store(t.UnixNano())
	return c
}

func (c *clock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// a11yAudit lists what a page gets wrong for assistive technology and
// keyboards: the document language, one h1, a label for every visible
// field, a name for every button and link, the autocomplete and keyboard
// hints of the email and code fields, an announced error region in every
// form with fields, and WCAG AA contrast of text against the background it
// is drawn on.
const a11yAudit = `(() => {
  const problems = [];
  const visible = (e) => { const r = e.getBoundingClientRect(); return r.width > 0 && r.height > 0 && getComputedStyle(e).visibility !== "hidden"; };
  const describe = (e) => e.outerHTML.slice(0, 90);
  if (!document.documentElement.lang) problems.push("html has no lang");
  const h1s = document.querySelectorAll("h1").length;
  if (h1s !== 1) problems.push("page has " + h1s + " h1 elements");
  for (const e of document.querySelectorAll("input:not([type=hidden]), select, textarea")) {
    if (!e.labels || e.labels.length === 0 || !e.labels[0].innerText.trim()) problems.push("no label: " + describe(e));
  }
  for (const e of document.querySelectorAll("button, a[href]")) {
    const name = (e.getAttribute("aria-label") || e.textContent || "").trim();
    if (!name) problems.push("no accessible name: " + describe(e));
  }
  const email = document.querySelector("input[name=email]:not([type=hidden])");
  if (email && (email.type !== "email" || email.getAttribute("autocomplete") !== "email")) problems.push("email field lacks type=email autocomplete=email");
  const code = document.querySelector("input[name=code]");
  if (code) {
    if (code.getAttribute("autocomplete") !== "one-time-code") problems.push("code field lacks autocomplete=one-time-code");
    if (code.inputMode !== "numeric") problems.push("code field lacks inputmode=numeric");
  }
  for (const f of document.querySelectorAll("form")) {
    if (!f.querySelector("input:not([type=hidden])")) continue;
    if (!f.querySelector("[aria-live], [role=alert]")) problems.push("form without an announced error region: " + f.getAttribute("action"));
  }
  const parse = (c) => { const m = c.match(/rgba?\(([\d.]+),\s*([\d.]+),\s*([\d.]+)(?:,\s*([\d.]+))?\)/); return m ? [+m[1], +m[2], +m[3], m[4] === undefined ? 1 : +m[4]] : null; };
  const lum = (c) => { const f = (v) => { v /= 255; return v <= 0.04045 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); }; return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]); };
  const background = (e) => { for (; e; e = e.parentElement) { const c = parse(getComputedStyle(e).backgroundColor); if (c && c[3] >= 1) return c; } return [255, 255, 255, 1]; };
  for (const e of document.querySelectorAll("h1, h2, p, label, button, a, li, .badge")) {
    if (!visible(e) || !e.innerText.trim()) continue;
    const s = getComputedStyle(e);
    const fg = parse(s.color), bg = background(e);
    if (!fg) continue;
    const a = lum(fg), b = lum(bg);
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    const size = parseFloat(s.fontSize), bold = parseInt(s.fontWeight, 10) >= 700;
    const need = size >= 24 || (bold && size >= 18.66) ? 3 : 4.5;
    if (e.tagName === "BUTTON" && e.disabled) continue;
    if (ratio < need) problems.push("contrast " + ratio.toFixed(2) + " < " + need + ": " + describe(e));
  }
  return problems;
})()`

// checkA11y fails the test for every problem a11yAudit finds on the page.
func (b *tab) checkA11y(page string) {
	b.t.Helper()
	for _, p := range eval[[]string](b, a11yAudit) {
		b.t.Errorf("%s: %s", page, p)
	}
}

// focusRingVisible reports whether the focused element draws a focus ring
// at least 2 px wide.
func (b *tab) focusRingVisible() bool {
	b.t.Helper()
	return eval[bool](b, `(() => { const e = document.activeElement; if (!e || e === document.body) return false; `+
		`const s = getComputedStyle(e); return s.outlineStyle !== "none" && parseFloat(s.outlineWidth) >= 2; })()`)
}
