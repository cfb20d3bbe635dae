package authstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"gatehouse/internal/logbuf"
	"gatehouse/internal/pgtest"
	"log/slog"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// base is the fixed "now" most tests start from.
var base = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// backend makes fresh, empty databases of one kind.
type backend struct {
	name string
	// newDB returns Options for an empty database that is removed when the
	// test ends. Every Store opened with them shares that database.
	newDB func(t *testing.T) Options
}

func backends() []backend {
	return []backend{
		{name: "sqlite", newDB: newSQLiteDB},
		{name: "postgres", newDB: newPostgresDB},
	}
}

func newSQLiteDB(t *testing.T) Options {
	t.Helper()
	return Options{
		Driver: "sqlite",
		DSN:    filepath.Join(t.TempDir(), "data", "gatehouse.db"),
		Now:    func() time.Time { return base },
	}
}

// newPostgresDB creates a schema of its own for the test and points
// search_path at it, so tests never see each other's tables.
func newPostgresDB(t *testing.T) Options {
	t.Helper()
	return Options{
		Driver: "postgres",
		DSN:    pgtest.New(t, "gh_test"),
		Now:    func() time.Time { return base },
	}
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// open opens a Store on opts (without migrating) and closes it after the test.
func open(t *testing.T, opts Options) *Store {
	t.Helper()
	s, err := Open(context.Background(), opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// migrated opens a Store on opts and migrates it.
func migrated(t *testing.T, opts Options) *Store {
	t.Helper()
	s := open(t, opts)
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	return s
}

func check(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func wantErr(t *testing.T, what string, got, want error) {
	t.Helper()
	if !errors.Is(got, want) {
		t.Fatalf("%s: got error %v, want %v", what, got, want)
	}
}

func hash(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

// runConcurrently starts n calls of fn together and waits for them all.
func runConcurrently(n int, fn func(i int)) {
	var ready, done sync.WaitGroup
	start := make(chan struct{})
	ready.Add(n)
	done.Add(n)
	for i := range n {
		go func() {
			defer done.Done()
			ready.Done()
			<-start
			fn(i)
		}()
	}
	ready.Wait()
	close(start)
	done.Wait()
}

// TestStore runs every case against every backend.
func TestStore(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T, opts Options)
	}{
		{"migrate twice is idempotent", testMigrateTwice},
		{"concurrent migrate from two stores", testConcurrentMigrate},
		{"schema newer than binary is refused", testSchemaTooNew},
		{"migration status", testMigrationStatus},
		{"down migrations drop what the up migrations made", testDownMigrations},
		{"secret stable across reopen and concurrent first calls", testSecret},
		{"users", testUsers},
		{"code wrong, right, reuse", testCodeLifecycle},
		{"code expired", testCodeExpired},
		{"code void after max attempts", testCodeMaxAttempts},
		{"expired codes are pruned", testPruneCodes},
		{"newer code voids older", testNewerCodeVoidsOlder},
		{"concurrent right codes consume once", testConcurrentVerify},
		{"concurrent wrong codes count exactly", testConcurrentWrongCodes},
		{"link is single use", testConsumeLink},
		{"sessions CRUD", testSessionsCRUD},
		{"delete user sessions except one", testDeleteUserSessions},
		{"delete expired sessions", testDeleteExpiredSessions},
		{"disabling or deleting a user deletes sessions", testDisableDeletesSessions},
		{"times order across sub-second boundaries", testTimeOrdering},
		{"hit counts per window", testHitWindows},
		{"concurrent hits count exactly", testConcurrentHits},
		{"events filter and prune", testEvents},
		{"revocations are delivered", testWatchRevocations},
		{"revocation listener reconnects", testWatchReconnect},
		{"revocation watcher starts at the end of the feed", testWatchStartsAtEnd},
		{"revocation rows commit with the deletion", testRevocationRowsInTx},
		{"revocation feed after a gap", testWatchGap},
		{"revocation feed after failed reads", testWatchReadFailure},
		{"old revocations are pruned", testPruneRevocations},
		{"session by ID prefix", testSessionByIDPrefix},
		{"service tokens", testTokens},
		{"concurrent token creation under one name", testConcurrentCreateToken},
		{"token revocations are delivered", testWatchTokenRevocations},
		{"signing keys", testSigningKeys},
		{"concurrent first signing key", testConcurrentEnsureSigningKey},
	}
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					tt.run(t, b.newDB(t))
				})
			}
		})
	}
}

func testMigrateTwice(t *testing.T, opts Options) {
	ctx := context.Background()
	s := migrated(t, opts)
	check(t, "second Migrate", s.Migrate(ctx))
	states, err := s.MigrationStatus(ctx)
	check(t, "MigrationStatus", err)
	known, err := s.known()
	check(t, "known", err)
	if len(states) != len(known) {
		t.Fatalf("status has %d migrations, want %d", len(states), len(known))
	}
	var n int
	check(t, "count versions", s.db.NewSelect().Table("gatehouse_migrations").ColumnExpr("count(*)").Scan(ctx, &n))
	if n != len(known) {
		t.Fatalf("versions table has %d rows after two Migrate calls, want %d", n, len(known))
	}
	if _, err := s.EnsureUser(ctx, "a@example.com", base); err != nil {
		t.Fatalf("schema unusable after migrating twice: %v", err)
	}
}

func testConcurrentMigrate(t *testing.T, opts Options) {
	a, b := open(t, opts), open(t, opts)
	errs := make([]error, 2)
	runConcurrently(2, func(i int) {
		errs[i] = []*Store{a, b}[i].Migrate(context.Background())
	})
	for i, err := range errs {
		if err != nil {
			t.Errorf("Migrate on store %d: %v", i, err)
		}
	}
	states, err := a.MigrationStatus(context.Background())
	check(t, "MigrationStatus", err)
	for _, st := range states {
		if !st.Applied {
			t.Errorf("%s not applied", st.Name)
		}
	}
}

func testSchemaTooNew(t *testing.T, opts Options) {
	ctx := context.Background()
	s := migrated(t, opts)
	future := migrationRow{Name: "9999_from_the_future", AppliedAt: base}
	_, err := s.db.NewInsert().Model(&future).Exec(ctx)
	check(t, "insert future migration", err)

	wantErr(t, "Migrate", s.Migrate(ctx), ErrSchemaTooNew)
	// A second binary of the same age is refused too.
	wantErr(t, "Migrate from another store", open(t, opts).Migrate(ctx), ErrSchemaTooNew)

	states, err := s.MigrationStatus(ctx)
	check(t, "MigrationStatus", err)
	last := states[len(states)-1]
	if last.Name != future.Name || !last.Applied {
		t.Fatalf("last status = %+v, want %s applied", last, future.Name)
	}
}

func testMigrationStatus(t *testing.T, opts Options) {
	ctx := context.Background()
	s := open(t, opts)
	before, err := s.MigrationStatus(ctx)
	check(t, "MigrationStatus before", err)
	if len(before) == 0 {
		t.Fatal("no migrations listed")
	}
	for _, st := range before {
		if st.Applied || !st.AppliedAt.IsZero() {
			t.Errorf("before Migrate: %+v, want not applied", st)
		}
	}
	exists, err := s.migrationsTableExists(ctx)
	check(t, "migrationsTableExists", err)
	if exists {
		t.Fatal("MigrationStatus created the versions table; it must not write")
	}

	check(t, "Migrate", s.Migrate(ctx))
	after, err := s.MigrationStatus(ctx)
	check(t, "MigrationStatus after", err)
	if len(after) != len(before) {
		t.Fatalf("got %d migrations after Migrate, want %d", len(after), len(before))
	}
	for i, st := range after {
		if st.Name != before[i].Name || !st.Applied || !st.AppliedAt.Equal(base) {
			t.Errorf("after Migrate: %+v, want %s applied at %v", st, before[i].Name, base)
		}
	}
	if after[0].Name != "0001_init" {
		t.Errorf("first migration %q, want 0001_init", after[0].Name)
	}
}

func testSecret(t *testing.T, opts Options) {
	ctx := context.Background()
	a, b := migrated(t, opts), open(t, opts)
	const n = 10
	got := make([][]byte, n)
	errs := make([]error, n)
	runConcurrently(n, func(i int) {
		got[i], errs[i] = []*Store{a, b}[i%2].Secret(ctx)
	})
	for i := range n {
		check(t, "Secret", errs[i])
		if len(got[i]) != 32 {
			t.Fatalf("secret %d has %d bytes, want 32", i, len(got[i]))
		}
		if !bytes.Equal(got[i], got[0]) {
			t.Fatalf("concurrent first calls returned different secrets")
		}
	}
	if bytes.Equal(got[0], make([]byte, 32)) {
		t.Fatal("secret is all zeros")
	}
	check(t, "Close", a.Close())
	again, err := open(t, opts).Secret(ctx)
	check(t, "Secret after reopen", err)
	if !bytes.Equal(again, got[0]) {
		t.Fatal("secret changed across reopen")
	}
}

func testUsers(t *testing.T, opts Options) {
	ctx := context.Background()
	s := migrated(t, opts)

	_, err := s.UserByEmail(ctx, "nobody@example.com")
	wantErr(t, "UserByEmail unknown", err, ErrNotFound)

	bob, err := s.EnsureUser(ctx, "bob@example.com", base)
	check(t, "EnsureUser", err)
	if bob.ID == 0 || bob.Email != "bob@example.com" || bob.Disabled || !bob.CreatedAt.Equal(base) || !bob.LastLoginAt.IsZero() {
		t.Fatalf("new user = %+v", bob)
	}
	again, err := s.EnsureUser(ctx, "bob@example.com", base.Add(time.Hour))
	check(t, "EnsureUser again", err)
	if again != bob {
		t.Fatalf("EnsureUser on an existing user = %+v, want unchanged %+v", again, bob)
	}
	_, err = s.EnsureUser(ctx, "alice@example.com", base)
	check(t, "EnsureUser alice", err)

	check(t, "RecordLogin", s.RecordLogin(ctx, "bob@example.com", base.Add(2*time.Minute)))
	wantErr(t, "RecordLogin unknown", s.RecordLogin(ctx, "nobody@example.com", base), ErrNotFound)
	bob, err = s.UserByEmail(ctx, "bob@example.com")
	check(t, "UserByEmail", err)
	if !bob.LastLoginAt.Equal(base.Add(2 * time.Minute)) {
		t.Fatalf("LastLoginAt = %v, want %v", bob.LastLoginAt, base.Add(2*time.Minute))
	}

	users, err := s.ListUsers(ctx)
	check(t, "ListUsers", err)
	var emails []string
	for _, u := range users {
		emails = append(emails, u.Email)
	}
	if !slices.Equal(emails, []string{"alice@example.com", "bob@example.com"}) {
		t.Fatalf("ListUsers = %v, want alice then bob", emails)
	}

	wantErr(t, "SetUserDisabled unknown", s.SetUserDisabled(ctx, "nobody@example.com", true), ErrNotFound)
	check(t, "SetUserDisabled", s.SetUserDisabled(ctx, "bob@example.com", true))
	bob, err = s.UserByEmail(ctx, "bob@example.com")
	check(t, "UserByEmail", err)
	if !bob.Disabled {
		t.Fatal("user not disabled")
	}
	check(t, "enable", s.SetUserDisabled(ctx, "bob@example.com", false))
	bob, err = s.UserByEmail(ctx, "bob@example.com")
	check(t, "UserByEmail", err)
	if bob.Disabled {
		t.Fatal("user still disabled")
	}

	check(t, "DeleteUser", s.DeleteUser(ctx, "bob@example.com"))
	wantErr(t, "DeleteUser again", s.DeleteUser(ctx, "bob@example.com"), ErrNotFound)
	_, err = s.UserByEmail(ctx, "bob@example.com")
	wantErr(t, "UserByEmail deleted", err, ErrNotFound)
}

func newCode(email, code string, created time.Time) Code {
	return Code{
		Email:     email,
		CodeHash:  hash("code:" + code),
		LinkHash:  hash("link:" + email + code),
		CreatedAt: created,
		ExpiresAt: created.Add(5 * time.Minute),
	}
}

func testCodeLifecycle(t *testing.T, opts Options) {
	ctx := context.Background()
	s := migrated(t, opts)
	const email = "a@example.com"
	_, err := s.LatestCodeTime(ctx, email)
	wantErr(t, "LatestCodeTime before any code", err, ErrNotFound)
	wantErr(t, "VerifyCode before any code", s.VerifyCode(ctx, email, hash("code:123456"), base, 5), ErrNoCode)

	check(t, "CreateCode", s.CreateCode(ctx, newCode(email, "123456", base)))
	latest, err := s.LatestCodeTime(ctx, email)
	check(t, "LatestCodeTime", err)
	if !latest.Equal(base) {
		t.Fatalf("LatestCodeTime = %v, want %v", latest, base)
	}

	steps := []struct {
		name string
		code string
		at   time.Duration
		want error
	}{
		{name: "wrong", code: "000000", at: time.Minute, want: ErrWrongCode},
		{name: "other address's code", code: "654321", at: time.Minute, want: ErrWrongCode},
		{name: "right", code: "123456", at: 2 * time.Minute},
		{name: "reuse", code: "123456", at: 2 * time.Minute, want: ErrNoCode},
		{name: "wrong after use", code: "000000", at: 2 * time.Minute, want: ErrNoCode},
	}
	check(t, "CreateCode other", s.CreateCode(ctx, newCode("b@example.com", "654321", base)))
	for _, st := range steps {
		err := s.VerifyCode(ctx, email, hash("code:"+st.code), base.Add(st.at), 5)
		if !errors.Is(err, st.want) || (st.want == nil && err != nil) {
			t.Fatalf("%s: VerifyCode = %v, want %v", st.name, err, st.want)
		}
	}
	// The other address's code is untouched by all of that.
	check(t, "VerifyCode other address", s.VerifyCode(ctx, "b@example.com", hash("code:654321"), base, 5))
}

func testCodeExpired(t *testing.T, opts Options) {
	ctx := context.Background()
	s := migrated(t, opts)
	check(t, "CreateCode", s.CreateCode(ctx, newCode("a@example.com", "123456", base)))
	tests := []struct {
		name string
		at   time.Time
		code string
	}{
		{name: "right code at expiry", at: base.Add(5 * time.Minute), code: "123456"},
		{name: "right code after expiry", at: base.Add(time.Hour), code: "123456"},
		{name: "wrong code after expiry", at: base.Add(time.Hour), code: "000000"},
	}
	for _, tt := range tests {
		err := s.VerifyCode(ctx, "a@example.com", hash("code:"+tt.code), tt.at, 5)
		wantErr(t, tt.name, err, ErrCodeExpired)
	}
	var row codeRow
	check(t, "load code", s.db.NewSelect().Model(&row).Limit(1).Scan(ctx))
	if row.Attempts != 0 || !row.ConsumedAt.IsZero() {
		t.Fatalf("expired code changed: attempts %d, consumed %v", row.Attempts, row.ConsumedAt)
	}
}

func testPruneCodes(t *testing.T, opts Options) {
	ctx := context.Background()
	s := migrated(t, opts)
	check(t, "CreateCode old", s.CreateCode(ctx, newCode("old@example.com", "123456", base)))
	check(t, "CreateCode new", s.CreateCode(ctx, newCode("new@example.com", "654321", base.Add(time.Hour))))
	n, err := s.PruneCodes(ctx, base.Add(30*time.Minute))
	check(t, "PruneCodes", err)
	if n != 1 {
		t.Fatalf("pruned %d codes, want 1", n)
	}
	wantErr(t, "pruned code", s.VerifyCode(ctx, "old@example.com", hash("code:123456"), base.Add(time.Minute), 5), ErrNoCode)
	check(t, "kept code", s.VerifyCode(ctx, "new@example.com", hash("code:654321"), base.Add(time.Hour+time.Minute), 5))
}

func testCodeMaxAttempts(t *testing.T, opts Options) {
	ctx := context.Background()
	s := migrated(t, opts)
	check(t, "CreateCode", s.CreateCode(ctx, newCode("a@example.com", "123456", base)))
	for range 3 {
		err := s.VerifyCode(ctx, "a@example.com", hash("code:999999"), base, 3)
		wantErr(t, "wrong try", err, ErrWrongCode)
	}
	err := s.VerifyCode(ctx, "a@example.com", hash("code:123456"), base, 3)
	wantErr(t, "right code after max wrong tries", err, ErrTooManyAttempts)
	_, err = s.ConsumeLink(ctx, hash("link:a@example.com123456"), base, 3)
	wantErr(t, "link after max wrong tries", err, ErrTooManyAttempts)
}

func testNewerCodeVoidsOlder(t *testing.T, opts Options) {
	ctx := context.Background()
	s := migrated(t, opts)
	old := newCode("a@example.com", "111111", base)
	check(t, "CreateCode old", s.CreateCode(ctx, old))
	check(t, "CreateCode new", s.CreateCode(ctx, newCode("a@example.com", "222222", base.Add(time.Minute))))

	err := s.VerifyCode(ctx, "a@example.com", hash("code:111111"), base.Add(2*time.Minute), 5)
	wantErr(t, "old code", err, ErrWrongCode)
	_, err = s.ConsumeLink(ctx, old.LinkHash, base.Add(2*time.Minute), 5)
	wantErr(t, "old link", err, ErrNoCode)
	var voided int
	check(t, "count voided", s.db.NewSelect().Table("login_codes").ColumnExpr("count(*)").
		Where("voided_at IS NOT NULL").Scan(ctx, &voided))
	if voided != 1 {
		t.Fatalf("%d voided codes, want 1", voided)
	}
	check(t, "new code", s.VerifyCode(ctx, "a@example.com", hash("code:222222"), base.Add(2*time.Minute), 5))
	latest, err := s.LatestCodeTime(ctx, "a@example.com")
	check(t, "LatestCodeTime", err)
	if !latest.Equal(base.Add(time.Minute)) {
		t.Fatalf("LatestCodeTime = %v, want %v", latest, base.Add(time.Minute))
	}
}

func testConcurrentVerify(t *testing.T, opts Options) {
	for _, stores := range []int{1, 2} {
		t.Run(map[int]string{1: "one store", 2: "two stores"}[stores], func(t *testing.T) {
			ctx := context.Background()
			s := []*Store{migrated(t, opts), open(t, opts)}[:stores]
			email := "race" + randomHex(t, 4) + "@example.com"
			check(t, "CreateCode", s[0].CreateCode(ctx, newCode(email, "123456", base)))
			const n = 20
			errs := make([]error, n)
			runConcurrently(n, func(i int) {
				errs[i] = s[i%stores].VerifyCode(ctx, email, hash("code:123456"), base.Add(time.Second), 5)
			})
			wins := 0
			for _, err := range errs {
				switch {
				case err == nil:
					wins++
				case !errors.Is(err, ErrNoCode):
					t.Errorf("loser got %v, want ErrNoCode", err)
				}
			}
			if wins != 1 {
				t.Fatalf("%d callers consumed the code, want exactly 1", wins)
			}
		})
	}
}

func testConcurrentWrongCodes(t *testing.T, opts Options) {
	ctx := context.Background()
	s := []*Store{migrated(t, opts), open(t, opts)}
	check(t, "CreateCode", s[0].CreateCode(ctx, newCode("a@example.com", "123456", base)))
	const n, max = 20, 5
	errs := make([]error, n)
	runConcurrently(n, func(i int) {
		errs[i] = s[i%2].VerifyCode(ctx, "a@example.com", hash("code:000000"), base, max)
	})
	var wrong, tooMany int
	for _, err := range errs {
		switch {
		case errors.Is(err, ErrWrongCode):
			wrong++
		case errors.Is(err, ErrTooManyAttempts):
			tooMany++
		default:
			t.Errorf("unexpected result %v", err)
		}
	}
	if wrong != max || tooMany != n-max {
		t.Fatalf("got %d wrong and %d too many, want %d and %d", wrong, tooMany, max, n-max)
	}
	err := s[0].VerifyCode(ctx, "a@example.com", hash("code:123456"), base, max)
	wantErr(t, "right code afterwards", err, ErrTooManyAttempts)
}

func testConsumeLink(t *testing.T, opts Options) {
	ctx := context.Background()
	s := []*Store{migrated(t, opts), open(t, opts)}
	c := newCode("a@example.com", "123456", base)
	check(t, "CreateCode", s[0].CreateCode(ctx, c))

	_, err := s[0].ConsumeLink(ctx, hash("unknown"), base, 5)
	wantErr(t, "unknown link", err, ErrNoCode)
	_, err = s[0].ConsumeLink(ctx, nil, base, 5)
	wantErr(t, "empty link", err, ErrNoCode)
	_, err = s[0].ConsumeLink(ctx, c.LinkHash, base.Add(5*time.Minute), 5)
	wantErr(t, "expired link", err, ErrCodeExpired)

	const n = 20
	emails := make([]string, n)
	errs := make([]error, n)
	runConcurrently(n, func(i int) {
		emails[i], errs[i] = s[i%2].ConsumeLink(ctx, c.LinkHash, base.Add(time.Minute), 5)
	})
	wins := 0
	for i, err := range errs {
		switch {
		case err == nil:
			wins++
			if emails[i] != "a@example.com" {
				t.Errorf("ConsumeLink email = %q", emails[i])
			}
		case !errors.Is(err, ErrNoCode):
			t.Errorf("loser got %v, want ErrNoCode", err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d callers consumed the link, want exactly 1", wins)
	}
	err = s[0].VerifyCode(ctx, "a@example.com", c.CodeHash, base.Add(time.Minute), 5)
	wantErr(t, "code after its link was used", err, ErrNoCode)

	// A code created without a link cannot be consumed by an empty hash.
	noLink := newCode("b@example.com", "654321", base)
	noLink.LinkHash = nil
	check(t, "CreateCode without link", s[0].CreateCode(ctx, noLink))
	_, err = s[0].ConsumeLink(ctx, []byte{}, base, 5)
	wantErr(t, "empty link with a linkless code", err, ErrNoCode)
}

func newSession(email, token string, created time.Time) Session {
	return Session{
		TokenHash: hash("token:" + token),
		Email:     email,
		CreatedAt: created,
		ExpiresAt: created.Add(7 * 24 * time.Hour),
		IP:        "192.0.2.1",
		UserAgent: "test-agent/1.0",
	}
}

func testSessionsCRUD(t *testing.T, opts Options) {
	ctx := context.Background()
	s := migrated(t, opts)

	longUA := strings.Repeat("é", 400) // 800 bytes
	in := newSession("a@example.com", "t1", base.Add(123456789*time.Nanosecond))
	in.UserAgent = longUA + "\x00\xff"
	created, err := s.CreateSession(ctx, in)
	check(t, "CreateSession", err)
	if len(created.ID) != 32 || strings.Trim(created.ID, "0123456789abcdef") != "" {
		t.Fatalf("ID %q, want 32 hex digits", created.ID)
	}
	if len(created.UserAgent) > 512 || !strings.HasPrefix(longUA, created.UserAgent) || len(created.UserAgent) < 510 {
		t.Fatalf("UserAgent kept %d bytes, want a 510..512-byte prefix", len(created.UserAgent))
	}
	if !created.LastSeenAt.Equal(created.CreatedAt) {
		t.Fatalf("LastSeenAt = %v, want CreatedAt %v", created.LastSeenAt, created.CreatedAt)
	}

	got, err := s.SessionByTokenHash(ctx, in.TokenHash)
	check(t, "SessionByTokenHash", err)
	if got.ID != created.ID || !bytes.Equal(got.TokenHash, in.TokenHash) || got.Email != in.Email ||
		!got.CreatedAt.Equal(base.Add(123456*time.Microsecond)) || !got.ExpiresAt.Equal(created.ExpiresAt) ||
		got.IP != in.IP || got.UserAgent != created.UserAgent || got.CreatedAt.Location() != time.UTC {
		t.Fatalf("read back %+v, want %+v", got, created)
	}
	_, err = s.SessionByTokenHash(ctx, hash("token:other"))
	wantErr(t, "SessionByTokenHash unknown", err, ErrNotFound)

	_, err = s.CreateSession(ctx, Session{ID: created.ID, TokenHash: hash("x"), Email: "b@example.com", CreatedAt: base, ExpiresAt: base.Add(time.Hour)})
	if err == nil {
		t.Fatal("CreateSession with a duplicate ID succeeded")
	}
	_, err = s.CreateSession(ctx, Session{TokenHash: in.TokenHash, Email: "b@example.com", CreatedAt: base, ExpiresAt: base.Add(time.Hour)})
	if err == nil {
		t.Fatal("CreateSession with a duplicate token hash succeeded")
	}

	touches := []struct {
		name string
		at   time.Time
		want time.Time
	}{
		{name: "forward", at: base.Add(time.Hour), want: base.Add(time.Hour)},
		{name: "backward is ignored", at: base.Add(time.Minute), want: base.Add(time.Hour)},
		{name: "same", at: base.Add(time.Hour), want: base.Add(time.Hour)},
	}
	for _, tc := range touches {
		check(t, "TouchSession "+tc.name, s.TouchSession(ctx, created.ID, tc.at))
		got, err := s.SessionByTokenHash(ctx, in.TokenHash)
		check(t, "SessionByTokenHash", err)
		if !got.LastSeenAt.Equal(tc.want) {
			t.Fatalf("%s: LastSeenAt = %v, want %v", tc.name, got.LastSeenAt, tc.want)
		}
	}
	wantErr(t, "TouchSession unknown", s.TouchSession(ctx, "nope", base), ErrNotFound)

	second, err := s.CreateSession(ctx, newSession("a@example.com", "t2", base.Add(time.Minute)))
	check(t, "CreateSession second", err)
	other, err := s.CreateSession(ctx, newSession("b@example.com", "t3", base.Add(2*time.Minute)))
	check(t, "CreateSession other", err)

	lists := []struct {
		email string
		want  []string
	}{
		{email: "a@example.com", want: []string{second.ID, created.ID}},
		{email: "", want: []string{other.ID, second.ID, created.ID}},
		{email: "nobody@example.com", want: nil},
	}
	for _, l := range lists {
		sessions, err := s.ListSessions(ctx, l.email)
		check(t, "ListSessions", err)
		var ids []string
		for _, ss := range sessions {
			ids = append(ids, ss.ID)
		}
		if !slices.Equal(ids, l.want) {
			t.Fatalf("ListSessions(%q) = %v, want %v", l.email, ids, l.want)
		}
	}

	n, err := s.CountSessions(ctx, base.Add(time.Hour))
	check(t, "CountSessions", err)
	if n != 3 {
		t.Fatalf("CountSessions = %d, want 3", n)
	}
	n, err = s.CountSessions(ctx, created.ExpiresAt)
	check(t, "CountSessions at first expiry", err)
	if n != 2 {
		t.Fatalf("CountSessions at the first session's expiry = %d, want 2", n)
	}

	check(t, "DeleteSession", s.DeleteSession(ctx, created.ID))
	wantErr(t, "DeleteSession again", s.DeleteSession(ctx, created.ID), ErrNotFound)
	_, err = s.SessionByTokenHash(ctx, in.TokenHash)
	wantErr(t, "SessionByTokenHash deleted", err, ErrNotFound)
}

func testDeleteUserSessions(t *testing.T, opts Options) {
	ctx := context.Background()
	s := migrated(t, opts)
	var ids []string
	for i, token := range []string{"t1", "t2", "t3"} {
		sess, err := s.CreateSession(ctx, newSession("a@example.com", token, base.Add(time.Duration(i)*time.Minute)))
		check(t, "CreateSession", err)
		ids = append(ids, sess.ID)
	}
	other, err := s.CreateSession(ctx, newSession("b@example.com", "t4", base))
	check(t, "CreateSession other", err)

	n, err := s.DeleteUserSessions(ctx, "a@example.com", ids[1])
	check(t, "DeleteUserSessions except", err)
	if n != 2 {
		t.Fatalf("deleted %d, want 2", n)
	}
	left, err := s.ListSessions(ctx, "")
	check(t, "ListSessions", err)
	if len(left) != 2 || left[0].ID != ids[1] || left[1].ID != other.ID {
		t.Fatalf("left %+v, want the kept session and the other user's", left)
	}

	n, err = s.DeleteUserSessions(ctx, "a@example.com", "")
	check(t, "DeleteUserSessions all", err)
	if n != 1 {
		t.Fatalf("deleted %d, want 1", n)
	}
	n, err = s.DeleteUserSessions(ctx, "a@example.com", "")
	check(t, "DeleteUserSessions none left", err)
	if n != 0 {
		t.Fatalf("deleted %d, want 0", n)
	}
	if _, err := s.SessionByTokenHash(ctx, hash("token:t4")); err != nil {
		t.Fatalf("other user's session gone: %v", err)
	}
}

func testDeleteExpiredSessions(t *testing.T, opts Options) {
	ctx := context.Background()
	s := migrated(t, opts)
	const idle = 24 * time.Hour
	now := base.Add(10 * 24 * time.Hour)
	sessions := []struct {
		token    string
		created  time.Time
		expires  time.Time
		lastSeen time.Time
		gone     bool
	}{
		{token: "live", created: now.Add(-time.Hour), expires: now.Add(time.Hour), lastSeen: now.Add(-time.Minute)},
		{token: "expired", created: now.Add(-8 * 24 * time.Hour), expires: now.Add(-time.Second), lastSeen: now.Add(-time.Minute), gone: true},
		{token: "expires now", created: now.Add(-time.Hour), expires: now, lastSeen: now.Add(-time.Minute), gone: true},
		{token: "idle", created: now.Add(-3 * 24 * time.Hour), expires: now.Add(time.Hour), lastSeen: now.Add(-idle - time.Second), gone: true},
		{token: "almost idle", created: now.Add(-3 * 24 * time.Hour), expires: now.Add(time.Hour), lastSeen: now.Add(-idle + time.Second)},
	}
	for _, ss := range sessions {
		in := newSession("a@example.com", ss.token, ss.created)
		in.ExpiresAt, in.LastSeenAt = ss.expires, ss.lastSeen
		_, err := s.CreateSession(ctx, in)
		check(t, "CreateSession "+ss.token, err)
	}
	n, err := s.DeleteExpiredSessions(ctx, now, idle)
	check(t, "DeleteExpiredSessions", err)
	if n != 3 {
		t.Fatalf("deleted %d, want 3", n)
	}
	for _, ss := range sessions {
		_, err := s.SessionByTokenHash(ctx, hash("token:"+ss.token))
		if gone := errors.Is(err, ErrNotFound); gone != ss.gone {
			t.Errorf("%s: gone = %v, want %v (err %v)", ss.token, gone, ss.gone, err)
		}
	}
	// Without an idle timeout only the absolute expiry counts.
	n, err = s.DeleteExpiredSessions(ctx, now.Add(30*time.Minute), 0)
	check(t, "DeleteExpiredSessions without idle", err)
	if n != 0 {
		t.Fatalf("deleted %d without idle timeout, want 0", n)
	}
}

func testDisableDeletesSessions(t *testing.T, opts Options) {
	ctx := context.Background()
	s := migrated(t, opts)
	for _, email := range []string{"a@example.com", "b@example.com"} {
		_, err := s.EnsureUser(ctx, email, base)
		check(t, "EnsureUser", err)
		for _, token := range []string{"1", "2"} {
			_, err := s.CreateSession(ctx, newSession(email, email+token, base))
			check(t, "CreateSession", err)
		}
	}
	count := func(email string) int {
		t.Helper()
		list, err := s.ListSessions(ctx, email)
		check(t, "ListSessions", err)
		return len(list)
	}
	check(t, "enable (no-op)", s.SetUserDisabled(ctx, "a@example.com", false))
	if n := count("a@example.com"); n != 2 {
		t.Fatalf("enabling removed sessions: %d left, want 2", n)
	}
	check(t, "disable", s.SetUserDisabled(ctx, "a@example.com", true))
	if n := count("a@example.com"); n != 0 {
		t.Fatalf("%d sessions left after disabling, want 0", n)
	}

	check(t, "CreateCode", s.CreateCode(ctx, newCode("b@example.com", "123456", base)))
	check(t, "DeleteUser", s.DeleteUser(ctx, "b@example.com"))
	if n := count("b@example.com"); n != 0 {
		t.Fatalf("%d sessions left after deleting the user, want 0", n)
	}
	err := s.VerifyCode(ctx, "b@example.com", hash("code:123456"), base, 5)
	wantErr(t, "code of a deleted user", err, ErrNoCode)
}

func testTimeOrdering(t *testing.T, opts Options) {
	ctx := context.Background()
	s := migrated(t, opts)
	// Offsets chosen so that text forms differ in fraction length: whole
	// seconds, one digit, six digits.
	offsets := []time.Duration{
		0,
		500 * time.Millisecond,
		999999 * time.Microsecond,
		time.Second,
		time.Second + time.Microsecond,
		1250 * time.Millisecond,
		10 * time.Second,
	}
	var ids []string
	for i, off := range offsets {
		in := newSession("a@example.com", string(rune('a'+i)), base.Add(off))
		in.ExpiresAt = base.Add(time.Hour + off)
		sess, err := s.CreateSession(ctx, in)
		check(t, "CreateSession", err)
		ids = append(ids, sess.ID)
	}
	list, err := s.ListSessions(ctx, "a@example.com")
	check(t, "ListSessions", err)
	for i, sess := range list {
		if want := ids[len(ids)-1-i]; sess.ID != want {
			t.Fatalf("position %d: session created at +%v, want +%v", i,
				sess.CreatedAt.Sub(base), offsets[len(ids)-1-i])
		}
	}
	// Expire everything up to and including +1s exactly.
	n, err := s.DeleteExpiredSessions(ctx, base.Add(time.Hour+time.Second), 0)
	check(t, "DeleteExpiredSessions", err)
	if n != 4 {
		t.Fatalf("deleted %d sessions, want the 4 expiring at or before +1s", n)
	}
}

func testHitWindows(t *testing.T, opts Options) {
	ctx := context.Background()
	s := migrated(t, opts)
	const window = 15 * time.Minute
	start := base // a multiple of 15 minutes
	steps := []struct {
		name string
		key  string
		at   time.Duration
		hit  bool
		want int
	}{
		{name: "empty", key: "ip:1", at: 0, want: 0},
		{name: "first", key: "ip:1", at: 0, hit: true, want: 1},
		{name: "second", key: "ip:1", at: time.Minute, hit: true, want: 2},
		{name: "count does not add", key: "ip:1", at: 2 * time.Minute, want: 2},
		{name: "other key", key: "ip:2", at: time.Minute, hit: true, want: 1},
		{name: "last instant of window", key: "ip:1", at: window - time.Microsecond, hit: true, want: 3},
		{name: "next window resets", key: "ip:1", at: window, hit: true, want: 1},
		{name: "next window count", key: "ip:1", at: window + time.Minute, want: 1},
	}
	for _, st := range steps {
		var got int
		var err error
		if st.hit {
			got, err = s.Hit(ctx, st.key, window, start.Add(st.at))
		} else {
			got, err = s.Count(ctx, st.key, window, start.Add(st.at))
		}
		check(t, st.name, err)
		if got != st.want {
			t.Fatalf("%s: got %d, want %d", st.name, got, st.want)
		}
	}
	if _, err := s.Hit(ctx, "ip:1", 0, base); err == nil {
		t.Fatal("Hit with a zero window succeeded")
	}
	n, err := s.PruneCounters(ctx, start.Add(window))
	check(t, "PruneCounters", err)
	if n != 2 {
		t.Fatalf("pruned %d counters, want 2", n)
	}
	got, err := s.Count(ctx, "ip:1", window, start.Add(window))
	check(t, "Count after prune", err)
	if got != 1 {
		t.Fatalf("current window's count after prune = %d, want 1", got)
	}
}

func testConcurrentHits(t *testing.T, opts Options) {
	ctx := context.Background()
	s := []*Store{migrated(t, opts), open(t, opts)}
	const n = 40
	counts := make([]int, n)
	errs := make([]error, n)
	runConcurrently(n, func(i int) {
		counts[i], errs[i] = s[i%2].Hit(ctx, "addr:a@example.com", time.Hour, base.Add(time.Duration(i)*time.Second))
	})
	for _, err := range errs {
		check(t, "Hit", err)
	}
	slices.Sort(counts)
	for i, c := range counts {
		if c != i+1 {
			t.Fatalf("Hit results %v, want each of 1..%d once", counts, n)
		}
	}
	total, err := s[0].Count(ctx, "addr:a@example.com", time.Hour, base)
	check(t, "Count", err)
	if total != n {
		t.Fatalf("Count = %d, want %d", total, n)
	}
}

func testEvents(t *testing.T, opts Options) {
	ctx := context.Background()
	s := migrated(t, opts)
	events := []Event{
		{Time: base, Type: "code.requested", Email: "a@example.com", IP: "192.0.2.1", Outcome: "ok"},
		{Time: base.Add(time.Minute), Type: "signin.failed", Email: "a@example.com", Outcome: "failed", Detail: "wrong code"},
		{Time: base.Add(2 * time.Minute), Type: "signin.ok", Email: "a@example.com", UserAgent: "ua", Outcome: "ok"},
		{Time: base.Add(3 * time.Minute), Type: "code.requested", Email: "b@example.com", Outcome: "ok"},
		{Type: "user.added", Email: "c@example.com", Outcome: "ok"}, // zero time: the store's clock (base)
	}
	for _, e := range events {
		check(t, "RecordEvent", s.RecordEvent(ctx, e))
	}
	if err := s.RecordEvent(ctx, Event{Time: base}); err == nil {
		t.Fatal("RecordEvent without a type succeeded")
	}

	tests := []struct {
		name   string
		filter EventFilter
		want   []string // "type email" newest first
	}{
		{name: "all", filter: EventFilter{}, want: []string{
			"code.requested b@example.com", "signin.ok a@example.com", "signin.failed a@example.com",
			"user.added c@example.com", "code.requested a@example.com"}},
		{name: "by email", filter: EventFilter{Email: "a@example.com"}, want: []string{
			"signin.ok a@example.com", "signin.failed a@example.com", "code.requested a@example.com"}},
		{name: "by type", filter: EventFilter{Type: "code.requested"}, want: []string{
			"code.requested b@example.com", "code.requested a@example.com"}},
		{name: "since is inclusive", filter: EventFilter{Since: base.Add(2 * time.Minute)}, want: []string{
			"code.requested b@example.com", "signin.ok a@example.com"}},
		{name: "all filters", filter: EventFilter{Email: "a@example.com", Type: "signin.ok", Since: base.Add(time.Minute)}, want: []string{
			"signin.ok a@example.com"}},
		{name: "limit", filter: EventFilter{Limit: 2}, want: []string{
			"code.requested b@example.com", "signin.ok a@example.com"}},
		{name: "no match", filter: EventFilter{Email: "nobody@example.com"}, want: nil},
	}
	for _, tt := range tests {
		got, err := s.Events(ctx, tt.filter)
		check(t, tt.name, err)
		var names []string
		for _, e := range got {
			names = append(names, e.Type+" "+e.Email)
		}
		if !slices.Equal(names, tt.want) {
			t.Fatalf("%s: got %v, want %v", tt.name, names, tt.want)
		}
	}
	got, err := s.Events(ctx, EventFilter{Type: "signin.failed"})
	check(t, "Events", err)
	if e := got[0]; e.ID == 0 || !e.Time.Equal(base.Add(time.Minute)) || e.Detail != "wrong code" || e.Outcome != "failed" {
		t.Fatalf("read back %+v", e)
	}

	n, err := s.PruneEvents(ctx, base.Add(2*time.Minute))
	check(t, "PruneEvents", err)
	if n != 3 {
		t.Fatalf("pruned %d, want 3", n)
	}
	left, err := s.Events(ctx, EventFilter{})
	check(t, "Events after prune", err)
	if len(left) != 2 {
		t.Fatalf("%d events left, want 2", len(left))
	}
}

// watcher runs WatchRevocations on s in the background and collects what
// it delivers.
type watcher struct {
	ids  chan string
	done chan error
	stop context.CancelFunc
}

func watch(t *testing.T, s *Store) *watcher {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := &watcher{ids: make(chan string, 1024), done: make(chan error, 1), stop: cancel}
	go func() {
		w.done <- s.WatchRevocations(ctx, func(id string) { w.ids <- id })
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-w.done:
			if err != nil {
				t.Errorf("WatchRevocations returned %v, want nil", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("WatchRevocations did not return after its context ended")
		}
	})
	return w
}

// await waits up to timeout for id (ignoring others) and reports whether it came.
func (w *watcher) await(id string, timeout time.Duration) bool {
	deadline := time.After(timeout)
	for {
		select {
		case got := <-w.ids:
			if got == id {
				return true
			}
		case <-deadline:
			return false
		}
	}
}

// waitListening deletes probe sessions through deleter until w reports one,
// so that later deliveries are not raced against the watcher starting up.
func waitListening(t *testing.T, w *watcher, deleter *Store) {
	t.Helper()
	ctx := context.Background()
	for range 200 {
		sess, err := deleter.CreateSession(ctx, newSession("probe@example.com", "probe"+randomHex(t, 8), base))
		check(t, "CreateSession probe", err)
		check(t, "DeleteSession probe", deleter.DeleteSession(ctx, sess.ID))
		if w.await(sess.ID, 100*time.Millisecond) {
			return
		}
	}
	t.Fatal("watcher never started delivering revocations")
}

func testWatchRevocations(t *testing.T, opts Options) {
	ctx := context.Background()
	s := migrated(t, opts)
	w := watch(t, s)
	// Deletions made by any Store on the database are delivered: another
	// process (the CLI, another server) is another Store.
	deleter := open(t, opts)
	waitListening(t, w, deleter)

	steps := []struct {
		name   string
		revoke func(a, b Session) error
		want   []string
	}{
		{name: "DeleteSession", want: []string{"a"}, revoke: func(a, b Session) error {
			return deleter.DeleteSession(ctx, a.ID)
		}},
		{name: "DeleteUserSessions", want: []string{"a", "b"}, revoke: func(a, b Session) error {
			_, err := deleter.DeleteUserSessions(ctx, "u@example.com", "")
			return err
		}},
		{name: "SetUserDisabled", want: []string{"a", "b"}, revoke: func(a, b Session) error {
			return deleter.SetUserDisabled(ctx, "u@example.com", true)
		}},
		{name: "DeleteUser", want: []string{"a", "b"}, revoke: func(a, b Session) error {
			return deleter.DeleteUser(ctx, "u@example.com")
		}},
		{name: "DeleteExpiredSessions", want: []string{"a", "b"}, revoke: func(a, b Session) error {
			_, err := deleter.DeleteExpiredSessions(ctx, base.Add(365*24*time.Hour), 0)
			return err
		}},
	}
	for _, st := range steps {
		_, err := s.EnsureUser(ctx, "u@example.com", base)
		check(t, "EnsureUser", err)
		check(t, "enable", s.SetUserDisabled(ctx, "u@example.com", false))
		a, err := s.CreateSession(ctx, newSession("u@example.com", "a"+randomHex(t, 8), base))
		check(t, "CreateSession", err)
		b, err := s.CreateSession(ctx, newSession("u@example.com", "b"+randomHex(t, 8), base))
		check(t, "CreateSession", err)
		check(t, st.name, st.revoke(a, b))
		byName := map[string]string{"a": a.ID, "b": b.ID}
		for _, name := range st.want {
			if !w.await(byName[name], time.Second) {
				t.Fatalf("%s: revocation of session %s not delivered within 1s", st.name, name)
			}
		}
		// Clean up whatever the step left.
		_, err = s.DeleteUserSessions(ctx, "u@example.com", "")
		check(t, "cleanup", err)
	}
}

func testWatchReconnect(t *testing.T, opts Options) {
	if opts.Driver != "postgres" {
		t.Skip("only PostgreSQL has a listener connection to lose")
	}
	ctx := context.Background()
	logs := &logbuf.Buffer{}
	opts.Logger = slog.New(slog.NewTextHandler(logs, nil))
	s := migrated(t, opts)
	other := open(t, opts)
	w := watch(t, s)
	waitListening(t, w, other)

	// Kill the listener's connection from the server side, as a failover
	// or an idle-connection reaper would.
	u, err := url.Parse(opts.DSN)
	check(t, "parse DSN", err)
	var killed int
	err = other.db.NewRaw(`SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE application_name = ? AND query LIKE 'LISTEN%'`, u.Query().Get("application_name")).Scan(ctx, &killed)
	check(t, "terminate listener", err)
	if killed != 1 {
		t.Fatalf("terminated %d listener connections, want 1", killed)
	}
	if !w.await(RevokeAll, 10*time.Second) {
		t.Fatal("no RevokeAll after the listener reconnected")
	}
	sess, err := other.CreateSession(ctx, newSession("a@example.com", "after", base))
	check(t, "CreateSession", err)
	check(t, "DeleteSession", other.DeleteSession(ctx, sess.ID))
	if !w.await(sess.ID, 5*time.Second) {
		t.Fatal("revocation not delivered after reconnect")
	}
	for _, want := range []string{
		`level=INFO msg="listening for session revocations"`,
		`level=WARN msg="revocation listener disconnected"`,
		`level=WARN msg="revocation listener reconnected"`,
	} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %s; got:\n%s", want, logs.String())
		}
	}
	if n := strings.Count(logs.String(), "listening for session revocations"); n != 1 {
		t.Errorf("start of listening logged %d times, want once (a reconnect is logged as such)", n)
	}
}
