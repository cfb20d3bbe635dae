package authstore

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"gatehouse/internal/logbuf"
)

// collector runs WatchRevocations on s and keeps everything it delivers,
// in order.
type collector struct {
	ids  chan string
	seen []string
}

func collect(t *testing.T, s *Store) *collector {
	t.Helper()
	w := watch(t, s)
	return &collector{ids: w.ids}
}

// await waits up to timeout for id, keeping whatever else comes.
func (c *collector) await(id string, timeout time.Duration) bool {
	deadline := time.After(timeout)
	for {
		select {
		case got := <-c.ids:
			c.seen = append(c.seen, got)
			if got == id {
				return true
			}
		case <-deadline:
			return false
		}
	}
}

// probe deletes a fresh session through deleter until c reports it, so
// that later checks are not raced against the watcher starting up.
func (c *collector) probe(t *testing.T, deleter *Store) {
	t.Helper()
	ctx := context.Background()
	for range 100 {
		sess, err := deleter.CreateSession(ctx, newSession("probe@example.com", "probe"+randomHex(t, 8), base))
		check(t, "CreateSession probe", err)
		check(t, "DeleteSession probe", deleter.DeleteSession(ctx, sess.ID))
		if c.await(sess.ID, time.Second) {
			return
		}
	}
	t.Fatal("watcher never delivered a probe")
}

// revocationIDs returns the session IDs in the revocations table, oldest
// first.
func revocationIDs(t *testing.T, s *Store) []string {
	t.Helper()
	var rows []revocationRow
	check(t, "read revocations", s.db.NewSelect().Model(&rows).OrderExpr("id ASC").Scan(context.Background()))
	ids := make([]string, len(rows))
	for i, r := range rows {
		ids[i] = r.SessionID
	}
	return ids
}

func testWatchStartsAtEnd(t *testing.T, opts Options) {
	ctx := context.Background()
	s := migrated(t, opts)
	other := open(t, opts)
	before, err := other.CreateSession(ctx, newSession("a@example.com", "before", base))
	check(t, "CreateSession", err)
	check(t, "DeleteSession", other.DeleteSession(ctx, before.ID))

	c := collect(t, s)
	c.probe(t, other)
	// Give a watcher that wrongly starts at the beginning time to deliver.
	time.Sleep(3 * revocationPollInterval)
	after, err := other.CreateSession(ctx, newSession("a@example.com", "after", base))
	check(t, "CreateSession", err)
	check(t, "DeleteSession", other.DeleteSession(ctx, after.ID))
	if !c.await(after.ID, 2*time.Second) {
		t.Fatal("revocation after the start not delivered within 2s")
	}
	if slices.Contains(c.seen, before.ID) {
		t.Errorf("a revocation from before the watcher started was delivered: %v", c.seen)
	}
	if slices.Contains(c.seen, RevokeAll) {
		t.Errorf("RevokeAll delivered without a gap or failure: %v", c.seen)
	}
}

func testRevocationRowsInTx(t *testing.T, opts Options) {
	ctx := context.Background()
	s := migrated(t, opts)
	mk := func(email, token string) Session {
		t.Helper()
		sess, err := s.CreateSession(ctx, newSession(email, token, base))
		check(t, "CreateSession", err)
		return sess
	}
	_, err := s.EnsureUser(ctx, "u@example.com", base)
	check(t, "EnsureUser", err)
	one, two := mk("u@example.com", "one"), mk("u@example.com", "two")

	// A deletion that rolls back announces nothing.
	boom := errors.New("boom")
	err = s.inTx(ctx, func(tx bun.Tx) error {
		if _, err := s.deleteSessions(ctx, tx, "id = ?", one.ID); err != nil {
			return err
		}
		return boom
	})
	wantErr(t, "rolled-back deletion", err, boom)
	if ids := revocationIDs(t, s); len(ids) != 0 {
		t.Fatalf("a rolled-back deletion left revocation rows %v", ids)
	}
	if _, err := s.SessionByTokenHash(ctx, one.TokenHash); err != nil {
		t.Fatalf("session gone after rollback: %v", err)
	}

	check(t, "DeleteSession", s.DeleteSession(ctx, one.ID))
	check(t, "SetUserDisabled", s.SetUserDisabled(ctx, "u@example.com", true))
	ids := revocationIDs(t, s)
	if !slices.Equal(ids, []string{one.ID, two.ID}) {
		t.Fatalf("revocation rows %v, want %v", ids, []string{one.ID, two.ID})
	}
	var row revocationRow
	check(t, "read row", s.db.NewSelect().Model(&row).OrderExpr("id ASC").Limit(1).Scan(ctx))
	if !row.RevokedAt.Equal(base) {
		t.Errorf("revoked_at %v, want the store's clock %v", row.RevokedAt, base)
	}
	// Deleting nothing writes nothing.
	wantErr(t, "DeleteSession again", s.DeleteSession(ctx, one.ID), ErrNotFound)
	if n := len(revocationIDs(t, s)); n != 2 {
		t.Errorf("%d revocation rows after deleting nothing, want 2", n)
	}
}

func testWatchGap(t *testing.T, opts Options) {
	if opts.Driver != "sqlite" {
		t.Skip("only the polled feed can skip rows; PostgreSQL's listener is tested by reconnecting")
	}
	ctx := context.Background()
	s := migrated(t, opts)
	other := open(t, opts)
	c := collect(t, s)
	c.probe(t, other)

	// Rows the watcher has not read yet vanish, as when pruning overtakes a
	// watcher that was stopped for a day: the next id is not the one after
	// the last it read.
	_, err := other.db.ExecContext(ctx, "UPDATE sqlite_sequence SET seq = seq + 5 WHERE name = 'revocations'")
	check(t, "skip ids", err)
	skipped, err := other.CreateSession(ctx, newSession("a@example.com", "skipped", base))
	check(t, "CreateSession", err)
	check(t, "DeleteSession", other.DeleteSession(ctx, skipped.ID))
	if !c.await(RevokeAll, 2*time.Second) {
		t.Fatalf("no RevokeAll within 2s after a gap in the feed; got %v", c.seen)
	}

	next, err := other.CreateSession(ctx, newSession("a@example.com", "next", base))
	check(t, "CreateSession", err)
	check(t, "DeleteSession", other.DeleteSession(ctx, next.ID))
	if !c.await(next.ID, 2*time.Second) {
		t.Fatal("revocation after the gap not delivered within 2s")
	}
	if n := strings.Count(strings.Join(c.seen, " "), RevokeAll); n != 1 {
		t.Errorf("RevokeAll delivered %d times, want once: %v", n, c.seen)
	}
}

func testWatchReadFailure(t *testing.T, opts Options) {
	if opts.Driver != "sqlite" {
		t.Skip("PostgreSQL's listener is tested by killing its connection")
	}
	ctx := context.Background()
	logs := &logbuf.Buffer{}
	opts.Logger = slog.New(slog.NewTextHandler(logs, nil))
	s := migrated(t, opts)
	other := open(t, opts)
	c := collect(t, s)
	c.probe(t, other)

	_, err := other.db.ExecContext(ctx, "ALTER TABLE revocations RENAME TO revocations_away")
	check(t, "hide the feed", err)
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(logs.String(), `level=WARN msg="reading session revocations failed"`) {
		if time.Now().After(deadline) {
			t.Fatalf("no warning while the feed cannot be read; log:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(3 * revocationPollInterval)
	_, err = other.db.ExecContext(ctx, "ALTER TABLE revocations_away RENAME TO revocations")
	check(t, "restore the feed", err)
	if !c.await(RevokeAll, 2*time.Second) {
		t.Fatalf("no RevokeAll within 2s after reading failed; got %v", c.seen)
	}
	sess, err := other.CreateSession(ctx, newSession("a@example.com", "after", base))
	check(t, "CreateSession", err)
	check(t, "DeleteSession", other.DeleteSession(ctx, sess.ID))
	if !c.await(sess.ID, 2*time.Second) {
		t.Fatal("revocation after recovering not delivered within 2s")
	}
	for want, n := range map[string]int{
		`level=INFO msg="following session revocations"`:      1,
		`level=WARN msg="reading session revocations failed"`: 1,
		`level=WARN msg="reading session revocations again"`:  1,
	} {
		if got := strings.Count(logs.String(), want); got != n {
			t.Errorf("log has %s %d times, want %d; log:\n%s", want, got, n, logs.String())
		}
	}
}

func testPruneRevocations(t *testing.T, opts Options) {
	ctx := context.Background()
	clock := base
	opts.Now = func() time.Time { return clock }
	s := migrated(t, opts)
	var ids []string
	for i, at := range []time.Duration{-3 * time.Hour, -2 * time.Hour, -time.Hour} {
		clock = base.Add(at)
		sess, err := s.CreateSession(ctx, newSession("a@example.com", "s"+string(rune('a'+i)), base.Add(-4*time.Hour)))
		check(t, "CreateSession", err)
		check(t, "DeleteSession", s.DeleteSession(ctx, sess.ID))
		ids = append(ids, sess.ID)
	}

	n, err := s.PruneRevocations(ctx, base.Add(-90*time.Minute))
	check(t, "PruneRevocations", err)
	if got := revocationIDs(t, s); n != 2 || !slices.Equal(got, ids[2:]) {
		t.Fatalf("pruned %d, left %v; want 2 pruned and %v left", n, got, ids[2:])
	}
	// The newest row stays even when it is old: it marks the end of the
	// feed for watchers that start later.
	n, err = s.PruneRevocations(ctx, base)
	check(t, "PruneRevocations all", err)
	if got := revocationIDs(t, s); n != 0 || !slices.Equal(got, ids[2:]) {
		t.Fatalf("pruned %d, left %v; want the newest row kept", n, got)
	}
	c := collect(t, s)
	c.probe(t, s)
	if slices.Contains(c.seen, RevokeAll) {
		t.Errorf("a watcher started after pruning saw a gap: %v", c.seen)
	}
}

func testSessionByIDPrefix(t *testing.T, opts Options) {
	ctx := context.Background()
	s := migrated(t, opts)
	for _, id := range []string{"aaaa1111", "aaaa2222", "AAAA3333", "a_b%c!d", "axbxcxd", "abc", "abcdef"} {
		sess := newSession("a@example.com", id, base)
		sess.ID = id
		_, err := s.CreateSession(ctx, sess)
		check(t, "CreateSession "+id, err)
	}
	tests := []struct {
		name   string
		prefix string
		want   string
		err    error
	}{
		{name: "unique prefix", prefix: "aaaa1", want: "aaaa1111"},
		{name: "full ID", prefix: "aaaa2222", want: "aaaa2222"},
		{name: "exact ID that also starts another", prefix: "abc", want: "abc"},
		{name: "prefix of the longer one", prefix: "abcd", want: "abcdef"},
		{name: "ambiguous", prefix: "aaaa", err: ErrAmbiguous},
		{name: "none", prefix: "zzzz", err: ErrNotFound},
		{name: "longer than any ID", prefix: "aaaa11112", err: ErrNotFound},
		{name: "case matters", prefix: "AAAA", want: "AAAA3333"},
		{name: "case matters for none", prefix: "aaaa3", err: ErrNotFound},
		{name: "percent is literal", prefix: "%", err: ErrNotFound},
		{name: "underscore is literal", prefix: "a_", want: "a_b%c!d"},
		{name: "underscore does not match x", prefix: "a_b", want: "a_b%c!d"},
		{name: "escape character is literal", prefix: "a_b%c!", want: "a_b%c!d"},
		{name: "escape character alone", prefix: "!", err: ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.SessionByIDPrefix(ctx, tt.prefix)
			if tt.err != nil {
				wantErr(t, "SessionByIDPrefix("+tt.prefix+")", err, tt.err)
				return
			}
			check(t, "SessionByIDPrefix("+tt.prefix+")", err)
			if got.ID != tt.want || got.Email != "a@example.com" {
				t.Fatalf("SessionByIDPrefix(%q) = %q (%s), want %q", tt.prefix, got.ID, got.Email, tt.want)
			}
		})
	}
	if _, err := s.SessionByIDPrefix(ctx, ""); err == nil || errors.Is(err, ErrNotFound) {
		t.Errorf("empty prefix: %v, want an error other than not found", err)
	}
}
