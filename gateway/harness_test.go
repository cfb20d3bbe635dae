package gateway

import (
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"gatehouse/access"
	"gatehouse/authstore"
	"gatehouse/framing"
	"gatehouse/internal/apptest"
	"gatehouse/internal/smtptest"
	"gatehouse/internal/storetest"
	"gatehouse/mailer"
	"gatehouse/pages"
	"gatehouse/session"
	"gatehouse/signin"
)

// harness is a real Gatehouse on a loopback port with a real SQLite file, a
// real SMTP server and a recording upstream.
type harness struct {
	t      *testing.T
	URL    string
	srv    *Server
	store  *authstore.Store
	dbPath string
	mail   *smtptest.Server
	up     *apptest.App
	opts   Options
}

// defaultSettings are the settings tests start from.
func defaultSettings(t *testing.T, m Mailer) Settings {
	t.Helper()
	p, err := pages.New(pages.Options{AppName: "Gatehouse", AccentColor: "#2563eb", DefaultLanguage: "en", Prefix: Prefix})
	if err != nil {
		t.Fatal(err)
	}
	return Settings{
		Rules: []access.Rule{
			{Paths: []string{"/public/**"}, Policy: access.PolicyPublic},
		},
		DefaultPolicy: access.PolicyAuthenticated,
		Signup:        access.Signup{Open: true},
		OTP: signin.OTP{
			Length: 6, TTL: 5 * time.Minute, MaxAttempts: 5, ResendCooldown: 0,
			MaxFailuresPerHour: 100, RateWindow: 15 * time.Minute, PerAddress: 5, PerIP: 30,
		},
		Mailer:  m,
		Pages:   p,
		AppName: "Gatehouse",
	}
}

// newHarness starts everything; edit may change the options before start.
func newHarness(t *testing.T, edit ...func(*Options)) *harness {
	t.Helper()
	h := &harness{t: t, mail: smtptest.Start(t), up: apptest.Start(t)}
	h.dbPath = filepath.Join(t.TempDir(), "gatehouse.db")
	h.store = openTestStore(t, h.dbPath)
	m, err := mailer.NewSMTP(mailer.SMTPOptions{Host: h.mail.Host, Port: h.mail.Port, TLS: "none", From: "Gatehouse <no-reply@example.com>"})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h.URL = "http://" + ln.Addr().String()
	pub, _ := url.Parse(h.URL)
	up, _ := url.Parse(h.up.URL)
	secret := []byte("0123456789abcdef0123456789abcdef")
	h.opts = Options{
		PublicURL: pub,
		Upstream:  up,
		Session:   session.Settings{CookieName: "gatehouse_session", Lifetime: 168 * time.Hour, IdleTimeout: 24 * time.Hour},
		Settings:  defaultSettings(t, m),
		Store:     h.store,
		Secret:    secret,
	}
	for _, e := range edit {
		e(&h.opts)
	}
	h.srv, err = New(h.opts)
	if err != nil {
		t.Fatal(err)
	}
	serveOn(t, h.srv, ln)
	return h
}

// serveOn serves srv on ln behind the framing guard, as cmd/gatehouse
// does, until the test ends.
func serveOn(t testing.TB, srv *Server, ln net.Listener) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(framing.Guard(ln))
	}()
	t.Cleanup(func() {
		_ = srv.Close()
		<-done
	})
}

// serve serves srv on a new loopback listener and returns its base URL.
func serve(t testing.TB, srv *Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serveOn(t, srv, ln)
	return "http://" + ln.Addr().String()
}

func openTestStore(t *testing.T, path string) *authstore.Store { return storetest.SQLiteAt(t, path) }

// browser is an HTTP client with a cookie jar that does not follow
// redirects, so tests see every hop.
type browser struct {
	t      *testing.T
	h      *harness
	c      *http.Client
	header http.Header // added to every request
}

func (h *harness) browser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: h.t, h: h, header: http.Header{}, c: &http.Client{
		Jar:           jar,
		Timeout:       20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

type response struct {
	*http.Response
	body string
}

func (b *browser) do(req *http.Request) response {
	b.t.Helper()
	for k, v := range b.header {
		req.Header[k] = v
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return response{resp, string(data)}
}

// get fetches a path the way a browser navigates to it.
func (b *browser) get(path string) response {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, b.h.URL+path, nil)
	req.Header.Set("Accept", "text/html,application/xhtml+xml")
	return b.do(req)
}

// post submits a form the way a same-origin browser does.
func (b *browser) post(path string, form url.Values) response {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, b.h.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "text/html")
	req.Header.Set("Origin", b.h.URL)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	return b.do(req)
}

var csrfRE = regexp.MustCompile(`name="_csrf" value="([^"]+)"`)

// csrf reads the CSRF token from a page.
func (b *browser) csrf(page string) string {
	b.t.Helper()
	m := csrfRE.FindStringSubmatch(page)
	if m == nil {
		b.t.Fatalf("no CSRF token in page:\n%s", page)
	}
	return m[1]
}

// requestCode opens the login page and asks for a code; it returns the code
// page.
func (b *browser) requestCode(email, rd string) response {
	b.t.Helper()
	login := b.get("/.gatehouse/login?rd=" + url.QueryEscape(rd))
	if login.StatusCode != http.StatusOK {
		b.t.Fatalf("login page: %d", login.StatusCode)
	}
	return b.post("/.gatehouse/login", url.Values{"email": {email}, "rd": {rd}, "_csrf": {b.csrf(login.body)}})
}

// verify submits a code.
func (b *browser) verify(email, code, rd, page string) response {
	b.t.Helper()
	return b.post("/.gatehouse/verify", url.Values{"email": {email}, "code": {code}, "rd": {rd}, "_csrf": {b.csrf(page)}})
}

// signIn walks the whole flow and returns the verify response.
func (b *browser) signIn(email, rd string) response {
	b.t.Helper()
	n := len(b.h.mailsTo(email)) + 1
	page := b.requestCode(email, rd)
	if page.StatusCode != http.StatusOK {
		b.t.Fatalf("request code: %d\n%s", page.StatusCode, page.body)
	}
	msg := b.h.mail.WaitFor(b.t, email, n)
	resp := b.verify(email, msg.Code(), rd, page.body)
	if resp.StatusCode != http.StatusSeeOther {
		b.t.Fatalf("verify: %d\n%s", resp.StatusCode, resp.body)
	}
	return resp
}

func (h *harness) mailsTo(email string) []smtptest.Message {
	var out []smtptest.Message
	for _, m := range h.mail.Messages() {
		for _, to := range m.To {
			if strings.EqualFold(to, email) {
				out = append(out, m)
			}
		}
	}
	return out
}

// sessionCookie returns the browser's session cookie value.
func (b *browser) sessionCookie() string {
	u, _ := url.Parse(b.h.URL)
	for _, c := range b.c.Jar.Cookies(u) {
		if c.Name == b.h.srv.cookie {
			return c.Value
		}
	}
	return ""
}

var nonceRE = regexp.MustCompile(`nonce="[^"]*"|nonce-[A-Za-z0-9+/=]+`)
