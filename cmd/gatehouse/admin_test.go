package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"gatehouse/authstore"
)

// step is one admin command and what it must do.
type step struct {
	name   string
	args   []string
	code   int
	stdout []string // substrings of stdout
	stderr []string // substrings of stderr
	check  func(t *testing.T, r result)
}

// TestAdminCommands runs every admin command against a real database of
// each kind, in order, each step seeing what the earlier ones did.
func TestAdminCommands(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			db := b.fresh(t)
			cfg := writeConfig(t, t.TempDir(), setup{db: db, extra: "groups:\n  ops: [alice@example.com]\n  staff: [\"@example.com\"]\n"})
			runAdminSteps(t, cfg, db)
		})
	}
}

func runAdminSteps(t *testing.T, cfg string, db database) {
	parent := t
	c := func(args ...string) []string { return append(args, "--config", cfg) }
	var st *authstore.Store
	var bobSession, aliceSession string
	seed := func(t *testing.T) {
		// Sessions and events as the gateway leaves them. The store stays
		// open for the later steps' checks.
		ctx := context.Background()
		var err error
		if st, err = authstore.Open(ctx, authstore.Options{Driver: db.driver, DSN: db.dsn}); err != nil {
			t.Fatal(err)
		}
		parent.Cleanup(func() { _ = st.Close() })
		now := time.Now().UTC()
		if _, err := st.EnsureUser(ctx, "bob@example.com", now); err != nil {
			t.Fatal(err)
		}
		mk := func(email, ip, ua string) string {
			h := sha256.Sum256([]byte(email + ip + ua))
			s, err := st.CreateSession(ctx, authstore.Session{TokenHash: h[:], Email: email, CreatedAt: now.Add(-time.Hour), ExpiresAt: now.Add(24 * time.Hour), IP: ip, UserAgent: ua})
			if err != nil {
				t.Fatal(err)
			}
			return s.ID
		}
		aliceSession = mk("alice@example.com", "203.0.113.7", "Firefox\x1b[31m")
		mk("alice@example.com", "198.51.100.2", "Safari")
		bobSession = mk("bob@example.com", "192.0.2.44", "curl/8")
		// Two sessions whose IDs share their first 8 characters.
		for _, id := range []string{"c0ffee00aaaaaaaaaaaaaaaaaaaaaaaa", "c0ffee00bbbbbbbbbbbbbbbbbbbbbbbb"} {
			h := sha256.Sum256([]byte(id))
			if _, err := st.CreateSession(ctx, authstore.Session{ID: id, TokenHash: h[:], Email: "carol@example.com", CreatedAt: now.Add(-time.Hour), ExpiresAt: now.Add(24 * time.Hour)}); err != nil {
				t.Fatal(err)
			}
		}
		for _, ev := range []authstore.Event{
			{Time: now.Add(-30 * time.Hour), Type: "signin.ok", Email: "alice@example.com", IP: "203.0.113.7", UserAgent: "Firefox", Outcome: "ok"},
			{Time: now.Add(-2 * time.Hour), Type: "signin.ok", Email: "alice@example.com", IP: "198.51.100.2", UserAgent: "Safari\x1b]0;pwned\x07", Outcome: "ok"},
			{Time: now.Add(-time.Hour), Type: "signin.failed", Email: "bob@example.com", IP: "192.0.2.44", Outcome: "failed", Detail: "wrong code"},
		} {
			if err := st.RecordEvent(ctx, ev); err != nil {
				t.Fatal(err)
			}
		}
	}
	events := func(t *testing.T, r result) []eventJSON {
		t.Helper()
		var evs []eventJSON
		if err := json.Unmarshal([]byte(r.stdout), &evs); err != nil {
			t.Fatalf("audit --json output is not a JSON array: %v\n%s", err, r.stdout)
		}
		return evs
	}
	cliEvent := func(typ, email string) func(t *testing.T, r result) {
		return func(t *testing.T, r result) {
			for _, ev := range events(t, r) {
				if ev.Type == typ && ev.Email == email && ev.IP == "cli" && ev.Outcome == "ok" && strings.Contains(ev.UserAgent, "tester") {
					return
				}
			}
			t.Errorf("no %s event for %s from the CLI in:\n%s", typ, email, r.stdout)
		}
	}

	steps := []step{
		{name: "users list before migrating fails", args: c("users", "list"), code: 1, stderr: []string{"migrate up"}},
		{name: "migrate status shows pending", args: c("migrate", "status"), stdout: []string{"0001_init", "pending"}},
		{name: "migrate up", args: c("migrate", "up"), stdout: []string{"up to date"}},
		{name: "migrate status shows applied", args: c("migrate", "status"), stdout: []string{"0001_init", "applied"}},
		{name: "migrate without subcommand", args: c("migrate"), code: 2, stderr: []string{"needs a subcommand"}},
		{name: "users list empty", args: c("users", "list"), stdout: []string{"EMAIL", "STATUS", "LAST SIGN-IN"}},
		{name: "users add normalizes", args: c("users", "add", "Alice@Example.COM"), stdout: []string{"added alice@example.com"}},
		{name: "users add twice changes nothing", args: c("users", "add", "alice@example.com"), stdout: []string{"already exists"}},
		{name: "users add bad address", args: c("users", "add", "alice@@example.com"), code: 2, stderr: []string{"alice@@example.com"}},
		{name: "users add header injection", args: c("users", "add", "eve@example.com\r\nBcc: x@example.com"), code: 2},
		{name: "users add without email", args: c("users", "add"), code: 2, stderr: []string{"accepts 1 arg"}},
		{name: "users unknown subcommand", args: c("users", "frob"), code: 2, stderr: []string{"frob"}},
		{name: "unknown flag", args: c("users", "list", "--frob"), code: 2, stderr: []string{"--frob"}},
		{name: "users disable unknown", args: c("users", "disable", "nobody@example.com"), code: 3, stderr: []string{"no user nobody@example.com"}},
		{name: "users enable unknown", args: c("users", "enable", "nobody@example.com"), code: 3},
		{name: "users remove unknown", args: c("users", "remove", "nobody@example.com"), code: 3},
		{name: "seed sessions and events", check: func(t *testing.T, _ result) { seed(t) }},
		{name: "users list table", args: c("users", "list"), stdout: []string{"alice@example.com  active", "ops,staff", "bob@example.com"}, check: func(t *testing.T, r result) {
			if !strings.Contains(r.stdout, "never") {
				t.Errorf("a user who never signed in shows no 'never':\n%s", r.stdout)
			}
		}},
		{name: "users list json", args: c("users", "list", "--json"), check: func(t *testing.T, r result) {
			var us []userJSON
			if err := json.Unmarshal([]byte(r.stdout), &us); err != nil {
				t.Fatalf("not JSON: %v\n%s", err, r.stdout)
			}
			want := []userJSON{{Email: "alice@example.com", Sessions: 2}, {Email: "bob@example.com", Sessions: 1}}
			if len(us) != 2 || us[0].Email != want[0].Email || us[0].Sessions != 2 || us[1].Email != want[1].Email || us[1].Sessions != 1 || us[0].Disabled || us[0].LastLoginAt != nil {
				t.Errorf("users = %+v, want %+v", us, want)
			}
			if len(us) == 2 && (!slices.Equal(us[0].Groups, []string{"ops", "staff"}) || !slices.Equal(us[1].Groups, []string{"staff"})) {
				t.Errorf("groups = %v and %v, want [ops staff] and [staff]", us[0].Groups, us[1].Groups)
			}
		}},
		{name: "sessions list table", args: c("sessions", "list"), stdout: []string{"ID", "SIGNED IN", "203.0.113.7", "192.0.2.44", "curl/8", "active"}, check: func(t *testing.T, r result) {
			if strings.Contains(r.stdout, "\x1b") {
				t.Errorf("a control character from a User-Agent reached the terminal:\n%q", r.stdout)
			}
		}},
		{name: "sessions list json for one user", args: c("sessions", "list", "--user", "ALICE@example.com", "--json"), check: func(t *testing.T, r result) {
			var ss []sessionJSON
			if err := json.Unmarshal([]byte(r.stdout), &ss); err != nil {
				t.Fatalf("not JSON: %v\n%s", err, r.stdout)
			}
			if len(ss) != 2 || ss[0].Email != "alice@example.com" || ss[1].Email != "alice@example.com" || ss[0].State != "active" {
				t.Errorf("sessions = %+v, want alice's two active sessions", ss)
			}
		}},
		{name: "sessions list unknown user", args: c("sessions", "list", "--user", "ghost@example.com"), code: 3},
		{name: "sessions revoke needs a target", args: c("sessions", "revoke"), code: 2},
		{name: "sessions revoke bad id", args: c("sessions", "revoke", "not-an-id"), code: 2, stderr: []string{"invalid session ID"}},
		{name: "sessions revoke id and user", args: c("sessions", "revoke", "0123456789abcdef", "--user", "bob@example.com"), code: 2},
		{name: "sessions revoke unknown id", args: c("sessions", "revoke", "0123456789abcdef0123456789abcdef"), code: 3, stderr: []string{"no session"}},
		{name: "sessions revoke by ambiguous prefix", args: c("sessions", "revoke", "C0FFEE00"), code: 2, stderr: []string{"matches more than one session"}},
		{name: "sessions revoke by a longer prefix", args: c("sessions", "revoke", "c0ffee00b"), stdout: []string{"revoked session c0ffee00bbbbbbbbbbbbbbbbbbbbbbbb of carol@example.com"}},
		{name: "sessions revoke by id", args: nil, check: func(t *testing.T, _ result) {
			r := gh(t, nil, c("sessions", "revoke", bobSession)...)
			if r.code != 0 || !strings.Contains(r.stdout, "revoked session "+bobSession+" of bob@example.com") {
				t.Fatalf("revoke: %+v", r)
			}
			if again := gh(t, nil, c("sessions", "revoke", bobSession)...); again.code != 3 {
				t.Errorf("revoking twice: status %d, want 3", again.code)
			}
		}},
		{name: "sessions revoke by unique prefix", args: nil, check: func(t *testing.T, _ result) {
			r := gh(t, nil, c("sessions", "revoke", aliceSession[:10], "--json")...)
			var a actionJSON
			if err := json.Unmarshal([]byte(r.stdout), &a); err != nil || r.code != 0 {
				t.Fatalf("revoke by prefix: %+v (%v)", r, err)
			}
			if a.Session != aliceSession || a.SessionsEnded != 1 || a.Email != "alice@example.com" {
				t.Errorf("revoked %+v, want alice's session %s", a, aliceSession)
			}
		}},
		{name: "users disable ends sessions", args: c("users", "disable", "alice@example.com"), stdout: []string{"disabled alice@example.com; 1 session ended"}, check: func(t *testing.T, _ result) {
			ss, err := st.ListSessions(context.Background(), "alice@example.com")
			if err != nil || len(ss) != 0 {
				t.Errorf("alice still has sessions %v (%v)", ss, err)
			}
		}},
		{name: "users disable twice", args: c("users", "disable", "alice@example.com"), stdout: []string{"already disabled"}},
		{name: "users list shows disabled", args: c("users", "list"), stdout: []string{"alice@example.com  disabled"}},
		{name: "users enable", args: c("users", "enable", "alice@example.com"), stdout: []string{"enabled alice@example.com"}},
		{name: "sessions revoke all of a user with none", args: c("sessions", "revoke", "--user", "alice@example.com"), stdout: []string{"revoked 0 sessions of alice@example.com"}},
		{name: "sessions revoke all of unknown user", args: c("sessions", "revoke", "--user", "ghost@example.com"), code: 3},
		{name: "users remove", args: c("users", "remove", "bob@example.com"), stdout: []string{"removed bob@example.com"}, check: func(t *testing.T, _ result) {
			if _, err := st.UserByEmail(context.Background(), "bob@example.com"); err == nil {
				t.Error("bob is still in the store")
			}
		}},
		{name: "audit records every admin action", args: c("audit", "--json"), check: func(t *testing.T, r result) {
			for _, want := range []struct{ typ, email string }{
				{"user.added", "alice@example.com"}, {"session.revoked", "bob@example.com"}, {"user.disabled", "alice@example.com"},
				{"user.enabled", "alice@example.com"}, {"user.removed", "bob@example.com"},
			} {
				cliEvent(want.typ, want.email)(t, r)
			}
			for _, ev := range events(t, r) {
				if ev.Type == "session.revoked" && ev.Email == "bob@example.com" && ev.Detail != "session "+bobSession {
					t.Errorf("session.revoked detail = %q, want the session ID", ev.Detail)
				}
			}
		}},
		{name: "audit by type", args: c("audit", "--type", "user.disabled", "--json"), check: func(t *testing.T, r result) {
			if evs := events(t, r); len(evs) != 1 || evs[0].Type != "user.disabled" {
				t.Errorf("events = %+v, want the one user.disabled", evs)
			}
		}},
		{name: "audit by user since 24h", args: c("audit", "--user", "alice@example.com", "--since", "24h", "--type", "signin.ok", "--json"), check: func(t *testing.T, r result) {
			evs := events(t, r)
			if len(evs) != 1 || evs[0].IP != "198.51.100.2" {
				t.Errorf("events = %+v, want only the sign-in of 2 hours ago", evs)
			}
		}},
		{name: "audit since 2d in days", args: c("audit", "--since", "2d", "--type", "signin.ok", "--json"), check: func(t *testing.T, r result) {
			if evs := events(t, r); len(evs) != 2 {
				t.Errorf("got %d sign-ins, want 2", len(evs))
			}
		}},
		{name: "audit until 24h", args: c("audit", "--until", "24h", "--json"), check: func(t *testing.T, r result) {
			evs := events(t, r)
			if len(evs) != 1 || evs[0].IP != "203.0.113.7" {
				t.Errorf("events = %+v, want only the sign-in of 30 hours ago", evs)
			}
		}},
		{name: "audit since a date", args: c("audit", "--since", time.Now().UTC().Add(48*time.Hour).Format("2006-01-02"), "--json"), check: func(t *testing.T, r result) {
			if evs := events(t, r); len(evs) != 0 {
				t.Errorf("events from the future: %+v", evs)
			}
		}},
		{name: "audit limit", args: c("audit", "--limit", "2", "--json"), stderr: []string{"newest 2 events"}, check: func(t *testing.T, r result) {
			if evs := events(t, r); len(evs) != 2 {
				t.Errorf("got %d events, want 2", len(evs))
			}
		}},
		{name: "audit table", args: c("audit", "--user", "bob@example.com"), stdout: []string{"TIME", "signin.failed", "wrong code", "192.0.2.44"}},
		{name: "audit table strips escapes", args: c("audit", "--type", "signin.ok"), stdout: []string{"Safari"}, check: func(t *testing.T, r result) {
			if strings.ContainsAny(r.stdout, "\x1b\x07") {
				t.Errorf("control characters reached the terminal: %q", r.stdout)
			}
		}},
		{name: "audit bad duration", args: c("audit", "--since", "banana"), code: 2, stderr: []string{"--since", "banana"}},
		{name: "audit negative duration", args: c("audit", "--since", "-5h"), code: 2},
		{name: "audit bad limit", args: c("audit", "--limit", "0"), code: 2},
		{name: "audit bad user", args: c("audit", "--user", "not-an-address"), code: 2},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			var r result
			if s.args != nil {
				r = gh(t, nil, s.args...)
				if r.code != s.code {
					t.Fatalf("exit status %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, s.code, r.stdout, r.stderr)
				}
				for _, want := range s.stdout {
					if !strings.Contains(r.stdout, want) {
						t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
					}
				}
				for _, want := range s.stderr {
					if !strings.Contains(r.stderr, want) {
						t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
					}
				}
			}
			if s.check != nil {
				s.check(t, r)
			}
		})
	}
}

// TestExitStatuses checks the statuses scripts rely on for commands that
// need no database.
func TestExitStatuses(t *testing.T) {
	dir := t.TempDir()
	good := writeConfig(t, dir, setup{db: database{"sqlite", dir + "/gatehouse.db"}})
	tests := []struct {
		name string
		args []string
		code int
	}{
		{"version", []string{"version"}, 0},
		{"unknown command", []string{"frobnicate"}, 2},
		{"version takes no argument", []string{"version", "x"}, 2},
		{"missing config", []string{"users", "list", "--config", dir + "/missing.yaml"}, 2},
		{"check-config ok", []string{"check-config", "--config", good}, 0},
		{"healthcheck with nothing listening", []string{"healthcheck", "--config", good}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := gh(t, nil, tt.args...)
			if r.code != tt.code {
				t.Errorf("gatehouse %v: status %d, want %d\n%s%s", tt.args, r.code, tt.code, r.stdout, r.stderr)
			}
		})
	}
}

func TestParseSince(t *testing.T) {
	now := time.Date(2025, 3, 10, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Time
		bad  bool
	}{
		{"", time.Time{}, false},
		{"24h", now.Add(-24 * time.Hour), false},
		{"90m", now.Add(-90 * time.Minute), false},
		{"7d", now.Add(-7 * 24 * time.Hour), false},
		{"1d12h", now.Add(-36 * time.Hour), false},
		{"2025-03-01", time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC), false},
		{"2025-03-01T09:30", time.Date(2025, 3, 1, 9, 30, 0, 0, time.UTC), false},
		{"2025-03-01T09:30:00+02:00", time.Date(2025, 3, 1, 7, 30, 0, 0, time.UTC), false},
		{"banana", time.Time{}, true},
		{"-1h", time.Time{}, true},
		{"d", time.Time{}, true},
		{"3x", time.Time{}, true},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q", tt.in), func(t *testing.T) {
			got, err := parseSince("--since", tt.in, now)
			if tt.bad {
				if err == nil || exitCode(err) != exitUsage {
					t.Fatalf("parseSince(%q) = %v, %v; want a usage error", tt.in, got, err)
				}
				return
			}
			if err != nil || !got.Equal(tt.want) {
				t.Errorf("parseSince(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
		})
	}
}

// TestAdminRevocationsReachTheFeed: every admin command that ends sessions
// announces exactly those sessions on the store's revocation feed, which a
// watcher in another process (here, the test) receives; the commands that
// end none announce nothing.
func TestAdminRevocationsReachTheFeed(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			db := b.fresh(t)
			cfg := writeConfig(t, t.TempDir(), setup{db: db})
			st := db.openStore(t)
			feed := watchFeed(t, db)
			ctx := context.Background()
			now := time.Now().UTC()
			// PostgreSQL notifies every schema's listeners: tests of other
			// packages may be revoking sessions on the same server.
			ours := map[string]bool{authstore.RevokeAll: true}
			mk := func(email string) string {
				t.Helper()
				h := sha256.Sum256([]byte(randomHex(t, 16)))
				s, err := st.CreateSession(ctx, authstore.Session{TokenHash: h[:], Email: email, CreatedAt: now, ExpiresAt: now.Add(time.Hour)})
				if err != nil {
					t.Fatal(err)
				}
				ours[s.ID] = true
				return s.ID
			}
			probe := func() string {
				t.Helper()
				id := mk("probe@example.com")
				if err := st.DeleteSession(ctx, id); err != nil {
					t.Fatal(err)
				}
				return id
			}
			feed.waitFollowing(t, probe)

			tests := []struct {
				name string
				args func() (args, want []string)
			}{
				{"one session", func() ([]string, []string) {
					id := mk("a@example.com")
					mk("a@example.com")
					return []string{"sessions", "revoke", id}, []string{id}
				}},
				{"one session by prefix", func() ([]string, []string) {
					id := mk("a@example.com")
					return []string{"sessions", "revoke", id[:10]}, []string{id}
				}},
				{"all of a user", func() ([]string, []string) {
					if _, err := st.EnsureUser(ctx, "b@example.com", now); err != nil {
						t.Fatal(err)
					}
					return []string{"sessions", "revoke", "--user", "b@example.com"}, []string{mk("b@example.com"), mk("b@example.com")}
				}},
				{"disabled", func() ([]string, []string) {
					if _, err := st.EnsureUser(ctx, "c@example.com", now); err != nil {
						t.Fatal(err)
					}
					return []string{"users", "disable", "c@example.com"}, []string{mk("c@example.com"), mk("c@example.com")}
				}},
				{"enabled", func() ([]string, []string) {
					return []string{"users", "enable", "c@example.com"}, nil
				}},
				{"added", func() ([]string, []string) {
					return []string{"users", "add", "d@example.com"}, nil
				}},
				{"removed", func() ([]string, []string) {
					return []string{"users", "remove", "d@example.com"}, []string{mk("d@example.com")}
				}},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					args, want := tt.args()
					if r := gh(t, nil, append(args, "--config", cfg)...); r.code != 0 {
						t.Fatalf("gatehouse %v: status %d\n%s%s", args, r.code, r.stdout, r.stderr)
					}
					// A probe deleted after the command arrives after what the
					// command announced.
					end := probe()
					got := slices.DeleteFunc(feed.until(t, end, 2*time.Second), func(id string) bool { return !ours[id] })
					slices.Sort(got)
					slices.Sort(want)
					if !slices.Equal(got, want) {
						t.Errorf("feed delivered %v, want %v", got, want)
					}
				})
			}
		})
	}
}

// feed collects what WatchRevocations delivers on a Store of its own.
type feed struct{ ids chan string }

func watchFeed(t *testing.T, db database) *feed {
	t.Helper()
	st, err := authstore.Open(context.Background(), authstore.Options{Driver: db.driver, DSN: db.dsn})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	f := &feed{ids: make(chan string, 1024)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = st.WatchRevocations(ctx, func(id string) { f.ids <- id })
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		_ = st.Close()
	})
	return f
}

// waitFollowing deletes probes until one is delivered: from then on the
// watcher sees every revocation.
func (f *feed) waitFollowing(t *testing.T, probe func() string) {
	t.Helper()
	for range 50 {
		id := probe()
		deadline := time.After(time.Second)
	wait:
		for {
			select {
			case got := <-f.ids:
				if got == id {
					return
				}
			case <-deadline:
				break wait
			}
		}
	}
	t.Fatal("the revocation feed never delivered a probe")
}

// until returns what the feed delivers before end, failing if end does
// not come within limit.
func (f *feed) until(t *testing.T, end string, limit time.Duration) []string {
	t.Helper()
	var got []string
	deadline := time.After(limit)
	for {
		select {
		case id := <-f.ids:
			if id == end {
				return got
			}
			got = append(got, id)
		case <-deadline:
			t.Fatalf("the feed did not deliver the probe within %s; got %v", limit, got)
			return nil
		}
	}
}
