package pages

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

func newRenderer(t *testing.T, opts Options) *Renderer {
	t.Helper()
	r, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return r
}

func base(lang string) Base {
	return Base{Lang: lang, Nonce: "nonce-abc", CSRFName: "_csrf", CSRFToken: "csrf-token-value"}
}

// render runs one page renderer and returns its output.
type pageFunc func(r *Renderer, lang string, w *bytes.Buffer) error

func samplePages() map[string]pageFunc {
	seen := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	return map[string]pageFunc{
		"login": func(r *Renderer, lang string, w *bytes.Buffer) error {
			return r.Login(w, LoginView{Base: base(lang), Email: "ana@example.com", RD: "/app/dashboard?tab=1"})
		},
		"code": func(r *Renderer, lang string, w *bytes.Buffer) error {
			return r.Code(w, CodeView{Base: base(lang), Email: "ana@example.com", RD: "/app/dashboard?tab=1", CodeLength: 6, TTLMinutes: 5, ResendIn: 30})
		},
		"confirm": func(r *Renderer, lang string, w *bytes.Buffer) error {
			return r.Confirm(w, ConfirmView{Base: base(lang), Email: "ana@example.com", Token: "link-token", RD: "/app/dashboard"})
		},
		"account": func(r *Renderer, lang string, w *bytes.Buffer) error {
			return r.Account(w, AccountView{Base: base(lang), Email: "ana@example.com", Sessions: []SessionView{
				{ID: "s-current", Device: "Firefox on Linux", IP: "192.0.2.1", CreatedAt: seen, LastSeenAt: seen, Current: true},
				{ID: "s-phone", Device: "Safari on iPhone", IP: "198.51.100.7", CreatedAt: seen, LastSeenAt: seen},
			}})
		},
		"error": func(r *Renderer, lang string, w *bytes.Buffer) error {
			return r.Error(w, ErrorView{Base: base(lang), Status: 403, Kind: "forbidden", Email: "ana@example.com", RD: "/admin", RequestID: "req-42"})
		},
	}
}

func TestPagesRenderKeyElements(t *testing.T) {
	r := newRenderer(t, Options{})
	csrf := `<input type="hidden" name="_csrf" value="csrf-token-value">`
	common := []string{
		`<meta name="viewport" content="width=device-width, initial-scale=1">`,
		` · Gatehouse</title>`,
		`<link rel="stylesheet" href="/.gatehouse/static/style.css?v=`,
		`<script nonce="nonce-abc" src="/.gatehouse/static/app.js?v=`,
		`<main id="main"`,
		`href="?lang=en`, `href="?lang=ko`,
	}
	want := map[string][]string{
		"login": {
			`action="/.gatehouse/login"`, `method="post"`, csrf,
			`name="email" type="email" autocomplete="email" required autofocus`,
			`<label for="email">`, `id="email"`,
			`<input type="hidden" name="rd" value="/app/dashboard?tab=1">`,
			`role="alert" aria-live="polite"`,
			`href="?lang=ko&amp;rd=%2fapp%2fdashboard%3ftab%3d1"`,
		},
		"code": {
			`action="/.gatehouse/verify"`, csrf,
			`name="code"`, `inputmode="numeric"`, `autocomplete="one-time-code"`, `pattern="[0-9]*"`, `maxlength="6"`,
			`<label for="code">`, `id="code"`,
			`<input type="hidden" name="email" value="ana@example.com">`,
			`<input type="hidden" name="rd" value="/app/dashboard?tab=1">`,
			`<b>ana@example.com</b>`,
			`href="/.gatehouse/login?rd=%2fapp%2fdashboard%3ftab%3d1"`,
			`action="/.gatehouse/login"`, `<input type="hidden" name="resend" value="1">`,
			`data-resend-in="30">`, `<span data-resend-seconds>30</span>`,
			`role="alert" aria-live="polite"`,
		},
		"confirm": {
			`action="/.gatehouse/link"`, csrf,
			`<input type="hidden" name="token" value="link-token">`,
			`<input type="hidden" name="rd" value="/app/dashboard">`,
			`<b>ana@example.com</b>`,
		},
		"account": {
			`<b>ana@example.com</b>`, csrf,
			`action="/.gatehouse/sessions/revoke"`, `<input type="hidden" name="id" value="s-phone">`,
			`action="/.gatehouse/logout-others"`, `action="/.gatehouse/logout"`,
			`Firefox on Linux`, `Safari on iPhone`, `192.0.2.1`, `datetime="2025-03-04T05:06:07Z"`,
		},
		"error": {
			`action="/.gatehouse/logout"`, csrf, `<input type="hidden" name="rd" value="/admin">`,
			`<b>ana@example.com</b>`, `req-42`,
		},
	}
	texts := map[string]map[string]string{
		"en": {"login": "Send code", "code": "The code expires in 5 minutes.", "confirm": "Sign in as ", "account": "This device",
			"error": "Sign in with another account"},
		"ko": {"login": "코드 받기", "code": "코드는 5분 후에 만료됩니다.", "confirm": "계정으로 로그인하시겠습니까?", "account": "현재 기기",
			"error": "다른 계정으로 로그인"},
	}
	for name, render := range samplePages() {
		for _, lang := range []string{"en", "ko"} {
			t.Run(name+"/"+lang, func(t *testing.T) {
				var buf bytes.Buffer
				if err := render(r, lang, &buf); err != nil {
					t.Fatalf("render: %v", err)
				}
				out := buf.String()
				if !strings.HasPrefix(out, "<!doctype html>") {
					t.Errorf("output does not start with a doctype: %.40q", out)
				}
				checks := append(append([]string{`<html lang="` + lang + `">`, texts[lang][name]}, common...), want[name]...)
				for _, s := range checks {
					if !strings.Contains(out, s) {
						t.Errorf("output lacks %q", s)
					}
				}
			})
		}
	}
}

func TestPagesEscapeReflectedValues(t *testing.T) {
	r := newRenderer(t, Options{})
	evil := `x"><script>alert(1)</script>@example.com`
	evilRD := `/next"><script>alert(2)</script>`
	cases := map[string]func(w *bytes.Buffer) error{
		"login": func(w *bytes.Buffer) error { return r.Login(w, LoginView{Base: base("en"), Email: evil, RD: evilRD}) },
		"code":  func(w *bytes.Buffer) error { return r.Code(w, CodeView{Base: base("en"), Email: evil, RD: evilRD}) },
		"confirm": func(w *bytes.Buffer) error {
			return r.Confirm(w, ConfirmView{Base: base("en"), Email: evil, Token: evil, RD: evilRD})
		},
		"account": func(w *bytes.Buffer) error {
			return r.Account(w, AccountView{Base: base("en"), Email: evil, Sessions: []SessionView{{ID: evil, Device: evil, IP: evil}}})
		},
		"error forbidden": func(w *bytes.Buffer) error {
			return r.Error(w, ErrorView{Base: base("en"), Kind: "forbidden", Email: evil, RD: evilRD, RequestID: evil})
		},
		"error timeout": func(w *bytes.Buffer) error {
			return r.Error(w, ErrorView{Base: base("en"), Kind: "timeout", RD: evilRD})
		},
		"csrf and nonce": func(w *bytes.Buffer) error {
			b := Base{Lang: "en", Nonce: evil, CSRFName: evil, CSRFToken: evil}
			return r.Login(w, LoginView{Base: b})
		},
	}
	for name, render := range cases {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := render(&buf); err != nil {
				t.Fatalf("render: %v", err)
			}
			out := buf.String()
			for _, bad := range []string{"<script>alert", `"><script`, `'><script`} {
				if strings.Contains(out, bad) {
					t.Errorf("output contains unescaped %q", bad)
				}
			}
			if !strings.Contains(out, "&lt;script&gt;") && !strings.Contains(out, "%3cscript%3e") {
				t.Errorf("reflected value missing from output (neither HTML- nor URL-escaped)")
			}
		})
	}
}

func TestPagesNeverShowRawErrorText(t *testing.T) {
	r := newRenderer(t, Options{})
	internal := "dial tcp 10.0.0.5:5432: connection refused"
	cases := map[string]func(w *bytes.Buffer) error{
		"login error": func(w *bytes.Buffer) error { return r.Login(w, LoginView{Base: base("en"), Error: internal}) },
		"code error":  func(w *bytes.Buffer) error { return r.Code(w, CodeView{Base: base("en"), Error: internal}) },
		"account notice": func(w *bytes.Buffer) error {
			return r.Account(w, AccountView{Base: base("en"), Notice: internal})
		},
		"error kind": func(w *bytes.Buffer) error {
			return r.Error(w, ErrorView{Base: base("en"), Status: 500, Kind: internal})
		},
	}
	for name, render := range cases {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := render(&buf); err != nil {
				t.Fatalf("render: %v", err)
			}
			if strings.Contains(buf.String(), "connection refused") {
				t.Errorf("page shows internal error text")
			}
			if !strings.Contains(buf.String(), "Something went wrong") {
				t.Errorf("page does not show the generic message")
			}
		})
	}
}

func TestCodeResendButton(t *testing.T) {
	r := newRenderer(t, Options{})
	cases := []struct {
		name       string
		resendIn   int
		want, dont []string
	}{
		// Enabled even while waiting: without the script the visitor can
		// still ask, and the server answers with the time left.
		{"wait", 45, []string{`data-resend-in="45">`, `(in <span data-resend-seconds>45</span> s)`}, []string{"disabled"}},
		{"now", 0, []string{`data-resend-in="0">Send a new code</button>`}, []string{"disabled", "data-resend-wait"}},
		{"negative is now", -3, []string{`data-resend-in="0">`}, []string{"disabled"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := r.Code(&buf, CodeView{Base: base("en"), Email: "a@example.com", ResendIn: c.resendIn}); err != nil {
				t.Fatal(err)
			}
			for _, s := range c.want {
				if !strings.Contains(buf.String(), s) {
					t.Errorf("output lacks %q", s)
				}
			}
			for _, s := range c.dont {
				if strings.Contains(buf.String(), s) {
					t.Errorf("output contains %q", s)
				}
			}
		})
	}
}

func TestCodeMessages(t *testing.T) {
	r := newRenderer(t, Options{})
	cases := []struct {
		name string
		v    CodeView
		want []string
	}{
		{"defaults", CodeView{Email: "a@example.com"}, []string{"We sent a sign-in code to <b>a@example.com</b>.", `maxlength="6"`}},
		{"resent", CodeView{Email: "a@example.com", Notice: "code.resent"}, []string{"We sent a new code to <b>a@example.com</b>."}},
		{"wrong", CodeView{Error: "code.wrong"}, []string{"That code is not right.", `aria-invalid="true"`, `aria-describedby="code-hint form-error"`}},
		{"invalid uses length", CodeView{Error: "code.invalid", CodeLength: 8}, []string{"The code has 8 digits.", `maxlength="8"`, "8-digit code"}},
		{"one minute", CodeView{TTLMinutes: 1}, []string{"The code expires in 1 minute."}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.v.Base = base("en")
			var buf bytes.Buffer
			if err := r.Code(&buf, c.v); err != nil {
				t.Fatal(err)
			}
			for _, s := range c.want {
				if !strings.Contains(buf.String(), s) {
					t.Errorf("output lacks %q", s)
				}
			}
		})
	}
}

func TestAccountSessions(t *testing.T) {
	r := newRenderer(t, Options{})
	cases := []struct {
		name       string
		v          AccountView
		want, dont []string
	}{
		{
			name: "only this device",
			v:    AccountView{Email: "a@example.com", Sessions: []SessionView{{ID: "me", Current: true}}},
			want: []string{"You are not signed in anywhere else.", "Unknown device", `action="/.gatehouse/logout"`},
			dont: []string{"/sessions/revoke", "/logout-others"},
		},
		{
			name: "others and notice",
			v: AccountView{Email: "a@example.com", Notice: "account.revoked", Sessions: []SessionView{
				{ID: "me", Current: true}, {ID: "other-1", Device: "Chrome on Android"}}},
			want: []string{`role="status">That device has been signed out.`, `name="id" value="other-1"`, "/logout-others"},
			dont: []string{`name="id" value="me"`},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.v.Base = base("en")
			var buf bytes.Buffer
			if err := r.Account(&buf, c.v); err != nil {
				t.Fatal(err)
			}
			for _, s := range c.want {
				if !strings.Contains(buf.String(), s) {
					t.Errorf("output lacks %q", s)
				}
			}
			for _, s := range c.dont {
				if strings.Contains(buf.String(), s) {
					t.Errorf("output contains %q", s)
				}
			}
		})
	}
}

func TestErrorPages(t *testing.T) {
	r := newRenderer(t, Options{})
	cases := []struct {
		name       string
		v          ErrorView
		want, dont []string
	}{
		{"forbidden signed in", ErrorView{Status: 403, Email: "a@example.com", RD: "/admin"},
			[]string{"No access", `action="/.gatehouse/logout"`, `name="rd" value="/admin"`}, nil},
		{"forbidden by rule", ErrorView{Status: 403},
			[]string{"You do not have access to this page.", `href="/"`}, []string{"/logout"}},
		{"kind from status 404", ErrorView{Status: 404}, []string{"Page not found"}, nil},
		{"kind from status 405", ErrorView{Status: 405}, []string{"Not allowed"}, nil},
		{"kind from status 413", ErrorView{Status: 413}, []string{"Too large"}, nil},
		{"kind from status 429", ErrorView{Status: 429}, []string{"Too many requests", `href="/.gatehouse/login?rd=`}, nil},
		{"kind from status 502", ErrorView{Status: 502, RD: "/app"}, []string{"Service unreachable", `href="/app">Try again`}, nil},
		{"kind from status 503", ErrorView{Status: 503, RD: "/app"}, []string{"Temporarily unavailable", `>Try again`}, nil},
		{"timeout", ErrorView{Status: 504, Kind: "timeout", RD: "/app?x=1"}, []string{"Service too slow", `href="/app?x=1"`}, nil},
		{"unknown status", ErrorView{Status: 418}, []string{"Something went wrong"}, nil},
		{"send failed", ErrorView{Status: 502, Kind: "send_failed", RD: "/a"}, []string{"Mail not sent", `href="/.gatehouse/login?rd=%2fa"`}, nil},
		{"unsafe retry target", ErrorView{Kind: "unreachable", RD: "javascript:alert(1)"},
			[]string{`href="/">Try again`}, []string{`href="javascript`}},
		{"protocol-relative retry target", ErrorView{Kind: "unreachable", RD: "//evil.example/"},
			[]string{`href="/">Try again`}, []string{"evil.example/\">"}},
		{"request id", ErrorView{Status: 500, RequestID: "r-1"}, []string{"Request ID: <code>r-1</code>"}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.v.Base = base("en")
			var buf bytes.Buffer
			if err := r.Error(&buf, c.v); err != nil {
				t.Fatal(err)
			}
			for _, s := range c.want {
				if !strings.Contains(buf.String(), s) {
					t.Errorf("output lacks %q", s)
				}
			}
			for _, s := range c.dont {
				if strings.Contains(buf.String(), s) {
					t.Errorf("output contains %q", s)
				}
			}
		})
	}
}

func TestPagesReferenceNoExternalResources(t *testing.T) {
	r := newRenderer(t, Options{Logo: "data:image/png;base64,iVBORw0KGgo="})
	inlineHandler := regexp.MustCompile(`(?i)\son[a-z]+=`)
	for name, render := range samplePages() {
		for _, lang := range r.Languages() {
			t.Run(name+"/"+lang, func(t *testing.T) {
				var buf bytes.Buffer
				if err := render(r, lang, &buf); err != nil {
					t.Fatal(err)
				}
				out := buf.String()
				for _, bad := range []string{"http://", "https://", " style=", "<style"} {
					if strings.Contains(out, bad) {
						t.Errorf("page contains %q", bad)
					}
				}
				if inlineHandler.MatchString(out) {
					t.Errorf("page contains an inline event handler")
				}
				if n, m := strings.Count(out, "<script"), strings.Count(out, `<script nonce="nonce-abc" src="/.gatehouse/static/app.js?v=`); n != 1 || m != 1 {
					t.Errorf("want exactly one script, the nonced app.js; got %d scripts, %d matching", n, m)
				}
				if !strings.Contains(out, `<img class="logo" src="data:image/png;base64,iVBORw0KGgo=" alt="">`) {
					t.Errorf("logo missing or altered")
				}
			})
		}
	}
	for _, name := range []string{"style.css", "app.js"} {
		b, err := r.static.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, bad := range []string{"http://", "https://", "@import"} {
			if bytes.Contains(b, []byte(bad)) {
				t.Errorf("%s contains %q", name, bad)
			}
		}
	}
}

func TestNegotiate(t *testing.T) {
	r := newRenderer(t, Options{})
	rko := newRenderer(t, Options{DefaultLanguage: "ko"})
	cases := []struct {
		name         string
		r            *Renderer
		accept, lang string
		want         string
	}{
		{"korean region", r, "ko-KR", "", "ko"},
		{"korean preferred", r, "ko-KR,ko;q=0.9,en-US;q=0.8,en;q=0.7", "", "ko"},
		{"english with weight", r, "en-US;q=0.8", "", "en"},
		{"english over korean by weight", r, "ko;q=0.3, en-GB;q=0.9", "", "en"},
		{"unsupported falls back to supported", r, "fr-FR, ko;q=0.5", "", "ko"},
		{"unsupported only", r, "fr-FR,de;q=0.8", "", "en"},
		{"unsupported only, korean default", rko, "fr-FR", "", "ko"},
		{"empty", r, "", "", "en"},
		{"garbage", r, ";;;q=x,,", "", "en"},
		{"doubled weights still pick the first language", r, "ko-KR,ko;q=0.9;q=0.9,en;q=0.5;q=0.8", "", "ko"},
		{"bad weight still picks the first language", r, "ko;q=high, en", "", "ko"},
		{"bad entries skipped", r, "??, ko;q=0.2", "", "ko"},
		{"override wins", r, "ko-KR", "en", "en"},
		{"override with region", r, "en", "ko-KR", "ko"},
		{"override upper case", r, "", "KO", "ko"},
		{"unsupported override ignored", r, "ko", "fr", "ko"},
		{"bad override ignored", r, "", "<script>", "en"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := c.r.Negotiate(c.accept, c.lang); got != c.want {
				t.Errorf("Negotiate(%q, %q) = %q, want %q", c.accept, c.lang, got, c.want)
			}
		})
	}
	if got := r.Languages(); strings.Join(got, ",") != "en,ko" {
		t.Errorf("Languages() = %v, want [en ko]", got)
	}
	if got := rko.Languages(); strings.Join(got, ",") != "ko,en" {
		t.Errorf("Languages() with ko default = %v, want [ko en]", got)
	}
}

func TestMail(t *testing.T) {
	r := newRenderer(t, Options{AppName: "Acme Portal"})
	cases := []struct {
		name        string
		v           MailView
		subject     string
		want, wantN []string
	}{
		{
			name:    "english with link",
			v:       MailView{Lang: "en", Email: "ana@example.com", Code: "482913", TTLMinutes: 5, LoginURL: "https://acme.example/.gatehouse/login", LinkURL: "https://acme.example/.gatehouse/link?token=abc"},
			subject: "Your Acme Portal sign-in code",
			want:    []string{"expires in 5 minutes", "https://acme.example/.gatehouse/login", "https://acme.example/.gatehouse/link?token=abc", "nobody can sign in without the code", "ana@example.com"},
		},
		{
			name:    "korean without link",
			v:       MailView{Lang: "ko", Email: "ana@example.com", Code: "000731", TTLMinutes: 10, LoginURL: "https://acme.example/.gatehouse/login"},
			subject: "Acme Portal 로그인 코드",
			want:    []string{"10분", "https://acme.example/.gatehouse/login", "코드 없이는 아무도 로그인할 수 없습니다"},
			wantN:   []string{"/link", "바로 로그인"},
		},
		{
			name:    "app name override, unknown language",
			v:       MailView{Lang: "xx", AppName: "Other", Code: "111222", TTLMinutes: 1},
			subject: "Your Other sign-in code",
			want:    []string{"expires in 1 minute and"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := r.Mail(c.v)
			if err != nil {
				t.Fatal(err)
			}
			if m.Subject != c.subject {
				t.Errorf("subject = %q, want %q", m.Subject, c.subject)
			}
			if strings.Contains(m.Subject, c.v.Code) {
				t.Errorf("subject contains the code")
			}
			if !strings.Contains(m.Text, "\n    "+c.v.Code+"\n") {
				t.Errorf("text part lacks the code on its own line:\n%s", m.Text)
			}
			if !strings.Contains(m.HTML, ">"+c.v.Code+"</div>") || !strings.Contains(m.HTML, "monospace") || !strings.Contains(m.HTML, "letter-spacing") {
				t.Errorf("html part lacks the code in its own monospace element")
			}
			for _, part := range []string{m.Text, m.HTML} {
				for _, s := range c.want {
					if !strings.Contains(part, s) {
						t.Errorf("part lacks %q", s)
					}
				}
				for _, s := range c.wantN {
					if strings.Contains(part, s) {
						t.Errorf("part contains %q", s)
					}
				}
			}
		})
	}
}

func TestMailEscapesHTML(t *testing.T) {
	r := newRenderer(t, Options{})
	m, err := r.Mail(MailView{Lang: "en", Email: `<img src=x>@example.com`, Code: "123456", LinkURL: `javascript:alert(1)`})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(m.HTML, "<img") || strings.Contains(m.HTML, "javascript:") {
		t.Errorf("html part contains unescaped input:\n%s", m.HTML)
	}
	if strings.ContainsAny(m.Subject, "\r\n") {
		t.Errorf("subject contains a line break")
	}
}

func TestStaticFiles(t *testing.T) {
	r := newRenderer(t, Options{AccentColor: "#0F766E"})
	if err := fstest.TestFS(r.Static(), "style.css", "app.js"); err != nil {
		t.Fatal(err)
	}
	css, err := r.static.ReadFile("style.css")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(css, []byte("--brand: #0f766e;")) {
		t.Errorf("style.css lacks the accent color")
	}
	var buf bytes.Buffer
	if err := r.Login(&buf, LoginView{Base: base("en")}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"style.css", "app.js"} {
		want := "/.gatehouse/static/" + name + "?v=" + r.static.version(name)
		if !strings.Contains(buf.String(), want) {
			t.Errorf("page does not link %s", want)
		}
	}
	other := newRenderer(t, Options{AccentColor: "#b45309"})
	if r.static.version("style.css") == other.static.version("style.css") {
		t.Errorf("stylesheet version does not change with the accent color")
	}
}

func TestNewOptions(t *testing.T) {
	cases := []struct {
		name    string
		opts    Options
		wantErr string
	}{
		{"defaults", Options{}, ""},
		{"custom prefix with slash", Options{Prefix: "/auth/"}, ""},
		{"logo path", Options{Logo: "/assets/logo.svg"}, ""},
		{"accent short form", Options{AccentColor: "#0af"}, ""},
		{"relative prefix", Options{Prefix: "auth"}, "prefix"},
		{"protocol-relative prefix", Options{Prefix: "//evil.example"}, "prefix"},
		{"remote logo", Options{Logo: "https://cdn.example/logo.png"}, "logo"},
		{"script logo", Options{Logo: "javascript:alert(1)"}, "logo"},
		{"named accent", Options{AccentColor: "red"}, "accent"},
		{"accent injection", Options{AccentColor: "#fff;}body{display:none"}, "accent"},
		{"accent bad digits", Options{AccentColor: "#12345g"}, "accent"},
		{"unsupported default language", Options{DefaultLanguage: "fr"}, "default language"},
		{"missing templates dir", Options{TemplatesDir: filepath.Join(t.TempDir(), "nope")}, "templates dir"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := New(c.opts)
			switch {
			case c.wantErr == "" && err != nil:
				t.Fatalf("New: %v", err)
			case c.wantErr != "" && err == nil:
				t.Fatalf("New succeeded, want an error about %s", c.wantErr)
			case c.wantErr != "" && !strings.Contains(err.Error(), c.wantErr):
				t.Fatalf("New error %q does not mention %q", err, c.wantErr)
			}
		})
	}
	r := newRenderer(t, Options{Prefix: "/auth/", AppName: "Acme"})
	var buf bytes.Buffer
	if err := r.Login(&buf, LoginView{Base: base("en")}); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{`action="/auth/login"`, `href="/auth/static/style.css?v=`, "<title>Sign in · Acme</title>", "Sign in to Acme"} {
		if !strings.Contains(buf.String(), s) {
			t.Errorf("output lacks %q", s)
		}
	}
}

func TestTemplatesDirOverride(t *testing.T) {
	write := func(t *testing.T, files map[string]string) string {
		t.Helper()
		dir := t.TempDir()
		for name, body := range files {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}

	t.Run("replaces one template", func(t *testing.T) {
		dir := write(t, map[string]string{
			"login.html": `{{define "title"}}Custom{{end}}{{define "main"}}<p>custom-login {{.V.Email}}</p>{{end}}`,
			"notes.md":   "ignored",
		})
		r := newRenderer(t, Options{TemplatesDir: dir})
		var login, code bytes.Buffer
		if err := r.Login(&login, LoginView{Base: base("en"), Email: "<b>"}); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(login.String(), "<p>custom-login &lt;b&gt;</p>") || !strings.Contains(login.String(), "<title>Custom · Gatehouse</title>") {
			t.Errorf("override not used:\n%s", login.String())
		}
		if err := r.Code(&code, CodeView{Base: base("en")}); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(code.String(), `autocomplete="one-time-code"`) {
			t.Errorf("code page lost its embedded template")
		}
	})

	t.Run("replaces the mail", func(t *testing.T) {
		dir := write(t, map[string]string{"mail.txt": `{{t "mail.code_label"}}: {{.Code}}`})
		r := newRenderer(t, Options{TemplatesDir: dir})
		m, err := r.Mail(MailView{Lang: "ko", Code: "654321"})
		if err != nil {
			t.Fatal(err)
		}
		if m.Text != "로그인 코드: 654321" {
			t.Errorf("text = %q", m.Text)
		}
	})

	broken := []struct {
		name, file, body, want string
	}{
		{"parse error", "login.html", `{{define "main"}}{{.V.Email{{end}}`, "login.html"},
		{"unknown field", "code.html", `{{define "title"}}x{{end}}{{define "main"}}{{.V.Nope}}{{end}}`, "code.html"},
		{"no main", "account.html", `{{define "title"}}x{{end}}`, "account.html"},
		{"broken layout", "base.html", `{{define "page"}}{{if}}{{end}}`, "base.html"},
		{"broken text mail", "mail.txt", `{{.Code`, "mail.txt"},
		{"unknown file", "logn.html", `x`, "logn.html"},
	}
	for _, c := range broken {
		t.Run(c.name, func(t *testing.T) {
			dir := write(t, map[string]string{c.file: c.body})
			_, err := New(Options{TemplatesDir: dir})
			if err == nil {
				t.Fatal("New succeeded with a broken override")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not name %s", err, c.want)
			}
		})
	}
}

func TestMessage(t *testing.T) {
	r := newRenderer(t, Options{})
	cases := []struct {
		name, lang, key, want string
	}{
		{"english", "en", "code.wrong", "That code is not right. Check the mail and try again."},
		{"korean", "ko", "code.wrong", "코드가 올바르지 않습니다. 메일을 확인하고 다시 입력해 주세요."},
		{"unknown language", "xx", "code.wrong", "That code is not right. Check the mail and try again."},
		{"unknown key", "ko", "no.such.key", "문제가 발생했습니다. 다시 시도해 주세요."},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := r.Message(c.lang, c.key); got != c.want {
				t.Errorf("Message(%q, %q) = %q, want %q", c.lang, c.key, got, c.want)
			}
		})
	}
}

func TestConcurrentRendering(t *testing.T) {
	r := newRenderer(t, Options{})
	errs := make(chan error, 16)
	for i := range 16 {
		go func() {
			lang := r.Languages()[i%2]
			var buf bytes.Buffer
			err := samplePages()["account"](r, lang, &buf)
			if err == nil && !strings.Contains(buf.String(), `<html lang="`+lang+`">`) {
				err = fmt.Errorf("goroutine %d: wrong language", i)
			}
			errs <- err
		}()
	}
	for range 16 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

func TestSupported(t *testing.T) {
	r := newRenderer(t, Options{})
	cases := []struct {
		name, in, want string
		ok             bool
	}{
		{"plain", "ko", "ko", true},
		{"upper case", "EN", "en", true},
		{"with region", "ko-KR", "ko", true},
		{"unsupported", "fr", "", false},
		{"empty", "", "", false},
		{"garbage", "<script>", "", false},
		{"very long", strings.Repeat("a", 100), "", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, ok := r.Supported(c.in)
			if got != c.want || ok != c.ok {
				t.Errorf("Supported(%q) = %q, %v; want %q, %v", c.in, got, ok, c.want, c.ok)
			}
		})
	}
}

func TestConfirmHeading(t *testing.T) {
	r := newRenderer(t, Options{AppName: "Acme"})
	cases := []struct {
		name, lang, email, want string
	}{
		{"with address", "en", "ana@example.com", "Sign in as <b>ana@example.com</b>?"},
		{"without address", "en", "", "Finish signing in to Acme?"},
		{"without address, korean", "ko", "", "Acme 로그인을 마치시겠습니까?"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := r.Confirm(&buf, ConfirmView{Base: base(c.lang), Email: c.email, Token: "tok"}); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(buf.String(), "<h1>"+c.want+"</h1>") {
				t.Errorf("heading is not %q in:\n%s", c.want, buf.String())
			}
		})
	}
}

func TestTemplatesDirImages(t *testing.T) {
	cases := []struct {
		name    string
		files   map[string][]byte
		wantErr string
		served  []string
		hidden  []string
	}{
		{
			name:   "images are served, other files are not",
			files:  map[string][]byte{"logo.svg": []byte(`<svg xmlns="http://www.w3.org/2000/svg"/>`), "icon.PNG": {0x89, 'P', 'N', 'G'}, "notes.md": []byte("x")},
			served: []string{"logo.svg", "icon.PNG", "style.css", "app.js"},
			hidden: []string{"notes.md"},
		},
		{
			name:    "too large",
			files:   map[string][]byte{"big.png": make([]byte, maxImage+1)},
			wantErr: "big.png",
		},
		{
			name:    "name not usable in a URL",
			files:   map[string][]byte{"my logo.png": {1}},
			wantErr: "my logo.png",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, body := range c.files {
				if err := os.WriteFile(filepath.Join(dir, name), body, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			r, err := New(Options{TemplatesDir: dir, Logo: "/.gatehouse/static/logo.svg"})
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("New error = %v, want one naming %s", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, name := range c.served {
				if _, err := fs.ReadFile(r.Static(), name); err != nil {
					t.Errorf("%s is not served: %v", name, err)
				}
			}
			for _, name := range c.hidden {
				if _, err := fs.ReadFile(r.Static(), name); err == nil {
					t.Errorf("%s is served", name)
				}
			}
			if got, _ := fs.ReadFile(r.Static(), "logo.svg"); string(got) != string(c.files["logo.svg"]) {
				t.Errorf("logo.svg = %q", got)
			}
		})
	}
}

func TestLoginNotice(t *testing.T) {
	r := newRenderer(t, Options{})
	cases := []struct {
		name, lang, notice, want string
	}{
		{"signed out", "en", "login.signed_out", `<p class="notice" role="status">You are signed out.`},
		{"signed out, korean", "ko", "login.signed_out", `<p class="notice" role="status">로그아웃되었습니다.`},
		{"none", "en", "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := r.Login(&buf, LoginView{Base: base(c.lang), Notice: c.notice}); err != nil {
				t.Fatal(err)
			}
			has := strings.Contains(buf.String(), `class="notice"`)
			if c.want == "" && has {
				t.Errorf("a notice is shown without one asked for")
			}
			if c.want != "" && !strings.Contains(buf.String(), c.want) {
				t.Errorf("page lacks %q", c.want)
			}
		})
	}
}
