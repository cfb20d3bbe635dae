package main

import (
	"net/http"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"gatehouse/internal/smtptest"
)

// revocationLimit is how soon a running server must refuse a session that
// another process revoked. Its session cache would trust the session for
// 30 s without the store's revocation feed.
const revocationLimit = 2 * time.Second

// refusedWithin fails unless v's session, which the server has cached, is
// refused within limit: it asks every 20 ms.
func refusedWithin(t *testing.T, v *visitor, limit time.Duration) {
	t.Helper()
	start := time.Now()
	for {
		got := v.status("/dashboard")
		if got == http.StatusUnauthorized {
			t.Logf("refused after %v", time.Since(start).Round(time.Millisecond))
			return
		}
		if got != http.StatusOK {
			t.Fatalf("status %d while waiting for the revocation, want 200 or 401", got)
		}
		if time.Since(start) > limit {
			t.Fatalf("the session still works %v after it was revoked, want 401 within %v", time.Since(start).Round(time.Millisecond), limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestSignOutReachesAnotherServerOnSQLite: two servers share one SQLite
// file; a session signed in and cached on both, then signed out on A, is
// refused by B within revocationLimit.
func TestSignOutReachesAnotherServerOnSQLite(t *testing.T) {
	dir := t.TempDir()
	db := database{"sqlite", filepath.Join(dir, "gatehouse.db")}
	mail := smtptest.Start(t)
	up := newUpstream(t, nil)
	cfg := writeConfig(t, dir, setup{db: db, upstream: up.URL, smtpPort: mail.Port})
	a, b := startServer(t, cfg), startServer(t, cfg)
	for _, s := range []*server{a, b} {
		s.waitLog(t, 10*time.Second, func(l logLine) bool { return l.msg() == "following session revocations" })
	}

	const email = "alice@example.com"
	onA := newVisitor(t, a.URL)
	onA.signIn(mail, email, 1)
	token := onA.cookie("gatehouse_session")
	if token == "" {
		t.Fatal("no session cookie after sign-in")
	}
	onB := newVisitor(t, b.URL)
	bURL, err := url.Parse(b.URL)
	if err != nil {
		t.Fatal(err)
	}
	// A jar of its own: A's answer to the sign-out clears the cookie in
	// A's jar, but a stolen or other-tab copy of it stays.
	onB.c.Jar.SetCookies(bURL, []*http.Cookie{{Name: "gatehouse_session", Value: token}})
	for name, v := range map[string]*visitor{"A": onA, "B": onB} {
		if got := v.status("/dashboard"); got != http.StatusOK {
			t.Fatalf("signed in, on %s: %d, want 200", name, got)
		}
	}

	if resp, body := onA.do(http.MethodPost, "/.gatehouse/api/sign-out", map[string]string{}, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("sign out on A: %d %s", resp.StatusCode, body)
	}
	refusedWithin(t, onB, revocationLimit)
}
