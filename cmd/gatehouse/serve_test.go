package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"fmt"
	"gatehouse/internal/apptest"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"gatehouse/authstore"
	"gatehouse/internal/smtptest"
)

const testUA = "gatehouse-test-agent/1.0"

// visitor is an HTTP client with a cookie jar that does not follow
// redirects.
type visitor struct {
	t    *testing.T
	base string
	c    *http.Client
}

func newVisitor(t *testing.T, base string) *visitor {
	jar, _ := cookiejar.New(nil)
	return &visitor{t: t, base: base, c: &http.Client{
		Jar:           jar,
		Timeout:       20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// do sends a request and returns the response with its body read.
func (v *visitor) do(method, path string, body any, header http.Header) (*http.Response, string) {
	v.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, v.base+path, rd)
	if err != nil {
		v.t.Fatal(err)
	}
	req.Header.Set("User-Agent", testUA)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := v.c.Do(req)
	if err != nil {
		v.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp, string(data)
}

// signIn asks for a code, reads the n-th mail to email and verifies it;
// it returns the code.
func (v *visitor) signIn(mail *smtptest.Server, email string, n int) string {
	v.t.Helper()
	if resp, body := v.do(http.MethodPost, "/.gatehouse/api/otp/send", map[string]string{"email": email}, nil); resp.StatusCode != http.StatusOK {
		v.t.Fatalf("send code: %d %s", resp.StatusCode, body)
	}
	code := mail.WaitFor(v.t, email, n).Code()
	if resp, body := v.do(http.MethodPost, "/.gatehouse/api/otp/verify", map[string]string{"email": email, "code": code}, nil); resp.StatusCode != http.StatusOK {
		v.t.Fatalf("verify code: %d %s", resp.StatusCode, body)
	}
	return code
}

func (v *visitor) status(path string) int {
	v.t.Helper()
	resp, _ := v.do(http.MethodGet, path, nil, nil)
	return resp.StatusCode
}

func (v *visitor) cookie(name string) string {
	u, _ := url.Parse(v.base)
	for _, c := range v.c.Jar.Cookies(u) {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

// auditEvents reads the audit log through the CLI.
func auditEvents(t *testing.T, cfg string, args ...string) []eventJSON {
	t.Helper()
	r := gh(t, nil, append([]string{"audit", "--json", "--config", cfg}, args...)...)
	if r.code != 0 {
		t.Fatalf("audit: status %d: %s", r.code, r.stderr)
	}
	var evs []eventJSON
	if err := json.Unmarshal([]byte(r.stdout), &evs); err != nil {
		t.Fatalf("audit output: %v\n%s", err, r.stdout)
	}
	return evs
}

// hasEvent reports whether evs holds an event of typ and outcome whose
// detail contains detail, recorded from the test's client.
func hasEvent(evs []eventJSON, typ, outcome, detail string) bool {
	for _, ev := range evs {
		if ev.Type == typ && ev.Outcome == outcome && strings.Contains(ev.Detail, detail) && ev.IP == "127.0.0.1" && ev.UserAgent == testUA {
			return true
		}
	}
	return false
}

// TestServeOperations drives a real server process and the admin CLI
// together on each database: sign-in, the audit trail it leaves, sessions
// the CLI lists and revokes (the running server refuses them within
// revocationLimit, though it had them cached for 30 s), disabled users,
// metrics and the access log.
func TestServeOperations(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			db := b.fresh(t)
			mail := smtptest.Start(t)
			up := newUpstream(t, nil)
			cfg := writeConfig(t, t.TempDir(), setup{
				db: db, upstream: up.URL, smtpPort: mail.Port,
				rules: `[{paths: ["/public/**"], policy: public}, {paths: ["/admin/**"], policy: deny}]`,
			})
			srv := startServer(t, cfg)
			testOperations(t, srv, cfg, mail, up)
		})
	}
}

func testOperations(t *testing.T, srv *server, cfg string, mail *smtptest.Server, up *apptest.App) {
	alice := newVisitor(t, srv.URL)
	const email = "alice@example.com"
	var codes, tokens []string
	signIn := func(t *testing.T, n int) {
		codes = append(codes, alice.signIn(mail, email, n))
		tokens = append(tokens, alice.cookie("gatehouse_session"))
		if tokens[len(tokens)-1] == "" {
			t.Fatal("no session cookie after sign-in")
		}
	}
	cli := func(t *testing.T, args ...string) result {
		t.Helper()
		r := gh(t, nil, append(args, "--config", cfg)...)
		if r.code != 0 {
			t.Fatalf("gatehouse %v: status %d\n%s%s", args, r.code, r.stdout, r.stderr)
		}
		return r
	}

	t.Run("sign-in is audited with IP and user agent", func(t *testing.T) {
		signIn(t, 1)
		if resp, body := alice.do(http.MethodPost, "/.gatehouse/api/otp/verify", map[string]string{"email": email, "code": "000000"}, nil); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("wrong code: %d %s", resp.StatusCode, body)
		}
		eventually(t, 10*time.Second, func() error {
			evs := auditEvents(t, cfg, "--user", email)
			for _, want := range []struct{ typ, outcome, detail string }{
				{"code.requested", "ok", ""}, {"code.sent", "ok", ""}, {"signin.ok", "ok", ""}, {"signin.failed", "failed", ""},
			} {
				if !hasEvent(evs, want.typ, want.outcome, want.detail) {
					return fmt.Errorf("no %s/%s event in %+v", want.typ, want.outcome, evs)
				}
			}
			return nil
		})
	})

	t.Run("request id reaches the upstream and the access log", func(t *testing.T) {
		resp, _ := alice.do(http.MethodGet, "/dashboard", nil, http.Header{"X-Request-Id": {"client-chosen-id"}})
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("dashboard: %d", resp.StatusCode)
		}
		id := resp.Header.Get("X-Request-Id")
		reqs := up.Requests()
		last := reqs[len(reqs)-1]
		if id == "" || id == "client-chosen-id" || last.Header.Get("X-Request-Id") != id {
			t.Errorf("response id %q, upstream got %q: want one generated id in both", id, last.Header.Get("X-Request-Id"))
		}
		if got := last.Header.Get("X-Auth-Request-Email"); got != email {
			t.Errorf("upstream identity %q, want %q", got, email)
		}
		srv.waitLog(t, 5*time.Second, func(l logLine) bool {
			return l.msg() == "request" && l.str("path") == "/dashboard" && l.str("request_id") == id && l.str("decision") == "allowed"
		})
	})

	t.Run("sessions list shows where the user signed in", func(t *testing.T) {
		var ss []sessionJSON
		if err := json.Unmarshal([]byte(cli(t, "sessions", "list", "--user", email, "--json").stdout), &ss); err != nil {
			t.Fatal(err)
		}
		if len(ss) != 1 || ss[0].IP != "127.0.0.1" || ss[0].UserAgent != testUA || ss[0].State != "active" {
			t.Errorf("sessions = %+v, want one active session from 127.0.0.1 with the test user agent", ss)
		}
	})

	t.Run("revoking from the CLI ends the session in the running server", func(t *testing.T) {
		if got := alice.status("/dashboard"); got != http.StatusOK {
			t.Fatalf("before revoking: %d", got)
		}
		cli(t, "sessions", "revoke", "--user", email)
		refusedWithin(t, alice, revocationLimit)
	})

	t.Run("revoking one session by ID", func(t *testing.T) {
		signIn(t, 2)
		var ss []sessionJSON
		_ = json.Unmarshal([]byte(cli(t, "sessions", "list", "--user", email, "--json").stdout), &ss)
		if len(ss) != 1 {
			t.Fatalf("sessions = %+v, want 1", ss)
		}
		if got := alice.status("/dashboard"); got != http.StatusOK {
			t.Fatalf("before revoking: %d", got)
		}
		cli(t, "sessions", "revoke", ss[0].ID)
		refusedWithin(t, alice, revocationLimit)
	})

	t.Run("a disabled user is signed out and cannot sign in", func(t *testing.T) {
		signIn(t, 3)
		if got := alice.status("/dashboard"); got != http.StatusOK {
			t.Fatalf("before disabling: %d", got)
		}
		cli(t, "users", "disable", email)
		refusedWithin(t, alice, revocationLimit)
		if resp, body := alice.do(http.MethodPost, "/.gatehouse/api/otp/send", map[string]string{"email": email}, nil); resp.StatusCode != http.StatusOK {
			t.Fatalf("send code: %d %s (the answer must not reveal the disabled account)", resp.StatusCode, body)
		}
		eventually(t, 10*time.Second, func() error {
			if !hasEvent(auditEvents(t, cfg, "--user", email, "--type", "code.requested"), "code.requested", "denied", "disabled") {
				return fmt.Errorf("no denied code request for the disabled user")
			}
			return nil
		})
		if n := len(mail.Messages()); n != 3 {
			t.Errorf("%d mails sent, want 3: a disabled user got a code", n)
		}
		cli(t, "users", "enable", email)
		signIn(t, 4)
		if got := alice.status("/dashboard"); got != http.StatusOK {
			t.Errorf("after enabling and signing in: %d", got)
		}
	})

	t.Run("access denied by rule is audited", func(t *testing.T) {
		if got := alice.status("/admin/settings"); got != http.StatusForbidden {
			t.Fatalf("denied path: %d", got)
		}
		eventually(t, 10*time.Second, func() error {
			for _, ev := range auditEvents(t, cfg, "--type", "access.denied") {
				if ev.Outcome == "denied" && ev.IP == "127.0.0.1" {
					return nil
				}
			}
			return fmt.Errorf("no access.denied event")
		})
	})

	t.Run("sign-out is audited", func(t *testing.T) {
		if resp, body := alice.do(http.MethodPost, "/.gatehouse/api/sign-out", map[string]string{}, nil); resp.StatusCode != http.StatusOK {
			t.Fatalf("sign out: %d %s", resp.StatusCode, body)
		}
		eventually(t, 10*time.Second, func() error {
			if !hasEvent(auditEvents(t, cfg, "--user", email), "signout", "ok", "") {
				return fmt.Errorf("no signout event")
			}
			return nil
		})
	})

	t.Run("metrics", func(t *testing.T) {
		body := scrape(t, srv.Metrics)
		for _, want := range []*regexp.Regexp{
			regexp.MustCompile(`gatehouse_requests_total\{code="200",decision="allowed"\} [1-9]`),
			regexp.MustCompile(`gatehouse_requests_total\{code="403",decision="denied"\} [1-9]`),
			regexp.MustCompile(`gatehouse_requests_total\{code="401",decision="redirected"\} [1-9]`),
			regexp.MustCompile(`gatehouse_signins_total\{outcome="ok"\} [1-9]`),
			regexp.MustCompile(`gatehouse_signins_total\{outcome="failed"\} [1-9]`),
			regexp.MustCompile(`gatehouse_codes_total\{outcome="sent"\} [1-9]`),
			regexp.MustCompile(`gatehouse_codes_total\{outcome="disabled"\} [1-9]`),
			regexp.MustCompile(`gatehouse_upstream_duration_seconds_count [1-9]`),
			regexp.MustCompile(`gatehouse_session_cache_total\{result="hit"\} [1-9]`),
			regexp.MustCompile(`gatehouse_session_cache_total\{result="miss"\} [1-9]`),
			regexp.MustCompile(`(?m)^gatehouse_active_sessions \d+`),
			regexp.MustCompile(`(?m)^gatehouse_store_errors_total 0`),
		} {
			if !want.MatchString(body) {
				t.Errorf("metrics lack %s", want)
			}
		}
		assertNoSecrets(t, "metrics", body, email, codes, tokens)
		if strings.Contains(body, "@") {
			t.Error("metrics contain an email address")
		}
	})

	t.Run("logs never hold a code, token or cookie", func(t *testing.T) {
		log := srv.log.String()
		assertNoSecrets(t, "log", log, "", codes, tokens)
		for _, l := range srv.logLines() {
			if l.msg() == "request" && l.str("request_id") == "" {
				t.Errorf("access log line without request_id: %v", l)
			}
		}
	})
}

// assertNoSecrets fails when text holds a sign-in code (as a whole
// number), a session token, or (when email is set) the address.
func assertNoSecrets(t *testing.T, what, text, email string, codes, tokens []string) {
	t.Helper()
	for _, c := range codes {
		if regexp.MustCompile(`(^|\D)` + c + `(\D|$)`).MatchString(text) {
			t.Errorf("%s contains the sign-in code %s", what, c)
		}
	}
	for _, tok := range tokens {
		if tok != "" && strings.Contains(text, tok) {
			t.Errorf("%s contains a session token", what)
		}
	}
	if email != "" && strings.Contains(text, email) {
		t.Errorf("%s contains %s", what, email)
	}
}

func scrape(t *testing.T, metricsURL string) string {
	t.Helper()
	if metricsURL == "" {
		t.Fatal("the server did not log its metrics address")
	}
	resp, err := http.Get(metricsURL)
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: %d", resp.StatusCode)
	}
	return string(b)
}

// TestReadiness: /readyz follows the upstream's health path, /healthz does
// not, and `gatehouse healthcheck` (the image's HEALTHCHECK) follows
// /healthz.
func TestReadiness(t *testing.T) {
	var upStatus = make(chan int, 1)
	upStatus <- http.StatusOK
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			s := <-upStatus
			upStatus <- s
			w.WriteHeader(s)
			return
		}
		_, _ = io.WriteString(w, "app")
	})
	setStatus := func(s int) { <-upStatus; upStatus <- s }
	dir := t.TempDir()
	db := database{"sqlite", dir + "/gatehouse.db"}
	cfg := writeConfig(t, dir, setup{db: db, upstream: up.URL, health: "/healthz"})
	srv := startServer(t, cfg)
	v := newVisitor(t, srv.URL)

	ready := func() (int, readyBody) {
		resp, body := v.do(http.MethodGet, "/.gatehouse/readyz", nil, nil)
		var rb readyBody
		if err := json.Unmarshal([]byte(body), &rb); err != nil {
			t.Fatalf("readyz body: %v: %s", err, body)
		}
		return resp.StatusCode, rb
	}
	tests := []struct {
		name     string
		upstream int
		want     int
		checks   map[string]string
	}{
		{"everything up", http.StatusOK, http.StatusOK, map[string]string{"store": "ok", "migrations": "ok", "upstream": "ok"}},
		{"upstream failing", http.StatusServiceUnavailable, http.StatusServiceUnavailable, map[string]string{"store": "ok", "migrations": "ok", "upstream": "status 503"}},
		{"upstream redirecting counts as up", http.StatusFound, http.StatusOK, map[string]string{"upstream": "ok"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			setStatus(tt.upstream)
			// The verdict is cached for 2 s.
			eventually(t, 10*time.Second, func() error {
				code, rb := ready()
				if code != tt.want {
					return fmt.Errorf("readyz %d %+v, want %d", code, rb, tt.want)
				}
				for k, v := range tt.checks {
					if rb.Checks[k] != v {
						return fmt.Errorf("check %s = %q, want %q", k, rb.Checks[k], v)
					}
				}
				return nil
			})
			if got := v.status("/.gatehouse/healthz"); got != http.StatusOK {
				t.Errorf("healthz %d: the upstream must not make the process unhealthy", got)
			}
		})
	}

	listen := strings.TrimPrefix(srv.URL, "http://")
	if r := gh(t, []string{"GATEHOUSE_SERVER_LISTEN=" + listen}, "healthcheck", "--config", cfg); r.code != 0 {
		t.Errorf("healthcheck against a running server: status %d %s", r.code, r.stderr)
	}
	if code := srv.stop(t, 20*time.Second); code != 0 {
		t.Errorf("exit status %d", code)
	}
	if r := gh(t, []string{"GATEHOUSE_SERVER_LISTEN=" + listen}, "healthcheck", "--config", cfg); r.code != 1 {
		t.Errorf("healthcheck against a stopped server: status %d, want 1", r.code)
	}
}

type readyBody struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks"`
}

// TestAuditRetention: events older than audit.retention, and revocations
// older than a day, are pruned in the background; younger ones stay.
func TestAuditRetention(t *testing.T) {
	dir := t.TempDir()
	db := database{"sqlite", dir + "/gatehouse.db"}
	st := db.openStore(t)
	now := time.Now().UTC()
	revokeAt := func(at time.Time) {
		t.Helper()
		past, err := authstore.Open(context.Background(), authstore.Options{Driver: db.driver, DSN: db.dsn, Now: func() time.Time { return at }})
		if err != nil {
			t.Fatal(err)
		}
		defer past.Close()
		h := sha256.Sum256([]byte(at.String()))
		sess, err := past.CreateSession(context.Background(), authstore.Session{TokenHash: h[:], Email: "old@example.com", CreatedAt: at, ExpiresAt: now.Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		if err := past.DeleteSession(context.Background(), sess.ID); err != nil {
			t.Fatal(err)
		}
	}
	revokeAt(now.Add(-50 * time.Hour))
	revokeAt(now.Add(-49 * time.Hour))
	revokeAt(now.Add(-time.Hour))
	for _, ev := range []authstore.Event{
		{Time: now.Add(-3 * time.Hour), Type: "signin.ok", Email: "old@example.com", Outcome: "ok"},
		{Time: now.Add(-10 * time.Minute), Type: "signin.ok", Email: "new@example.com", Outcome: "ok"},
	} {
		if err := st.RecordEvent(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
	}
	cfg := writeConfig(t, dir, setup{db: db, retention: "1h"})
	srv := startServer(t, cfg)
	eventually(t, 15*time.Second, func() error {
		evs, err := st.Events(context.Background(), authstore.EventFilter{Type: "signin.ok"})
		if err != nil {
			return err
		}
		if len(evs) != 1 || evs[0].Email != "new@example.com" {
			return fmt.Errorf("events %+v, want only the one inside the retention", evs)
		}
		return nil
	})
	srv.waitLog(t, 5*time.Second, func(l logLine) bool { return l.msg() == "pruned audit events past retention" })

	raw, err := sql.Open("sqlite", db.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	eventually(t, 15*time.Second, func() error {
		var n int
		if err := raw.QueryRow("SELECT count(*) FROM revocations").Scan(&n); err != nil {
			return err
		}
		if n != 1 {
			return fmt.Errorf("%d revocation rows, want only the one from an hour ago", n)
		}
		return nil
	})
}
