package authstore

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

func testTokens(t *testing.T, opts Options) {
	ctx := context.Background()
	s := migrated(t, opts)

	ci, err := s.CreateToken(ctx, Token{Name: "ci", Groups: []string{"deploy", "read"}, CreatedAt: base.In(time.FixedZone("x", 3600)), ExpiresAt: base.Add(time.Hour)}, hash("secret:ci"))
	check(t, "CreateToken ci", err)
	if len(ci.ID) != 32 || ci.Name != "ci" || !slices.Equal(ci.Groups, []string{"deploy", "read"}) ||
		!ci.CreatedAt.Equal(base) || ci.CreatedAt.Location() != time.UTC || !ci.ExpiresAt.Equal(base.Add(time.Hour)) || !ci.LastUsedAt.IsZero() {
		t.Fatalf("CreateToken = %+v", ci)
	}
	// No groups, no expiry, no creation time: the store's clock.
	backup, err := s.CreateToken(ctx, Token{Name: "backup"}, hash("secret:backup"))
	check(t, "CreateToken backup", err)
	if !backup.CreatedAt.Equal(base) || !backup.ExpiresAt.IsZero() || len(backup.Groups) != 0 {
		t.Fatalf("CreateToken backup = %+v", backup)
	}

	_, err = s.CreateToken(ctx, Token{Name: "ci"}, hash("secret:other"))
	wantErr(t, "CreateToken with a taken name", err, ErrExists)
	for name, bad := range map[string]struct {
		tok  Token
		hash []byte
	}{
		"empty name":          {Token{}, hash("x")},
		"empty hash":          {Token{Name: "x"}, nil},
		"expiry before birth": {Token{Name: "x", CreatedAt: base, ExpiresAt: base}, hash("x")},
	} {
		if _, err := s.CreateToken(ctx, bad.tok, bad.hash); err == nil || errors.Is(err, ErrExists) {
			t.Errorf("CreateToken with %s: %v, want a validation error", name, err)
		}
	}

	got, err := s.TokenByHash(ctx, hash("secret:ci"), base.Add(59*time.Minute))
	check(t, "TokenByHash", err)
	if got.ID != ci.ID || !slices.Equal(got.Groups, ci.Groups) || !got.ExpiresAt.Equal(ci.ExpiresAt) {
		t.Fatalf("TokenByHash = %+v, want %+v", got, ci)
	}
	for name, at := range map[string]time.Time{"at expiry": base.Add(time.Hour), "after expiry": base.Add(2 * time.Hour)} {
		_, err := s.TokenByHash(ctx, hash("secret:ci"), at)
		wantErr(t, "TokenByHash "+name, err, ErrNotFound)
	}
	_, err = s.TokenByHash(ctx, hash("secret:unknown"), base)
	wantErr(t, "TokenByHash unknown", err, ErrNotFound)
	_, err = s.TokenByHash(ctx, nil, base)
	wantErr(t, "TokenByHash empty", err, ErrNotFound)
	if got, err := s.TokenByHash(ctx, hash("secret:backup"), base.Add(100*365*24*time.Hour)); err != nil || got.Name != "backup" {
		t.Fatalf("a token without expiry: %+v, %v", got, err)
	}

	byName, err := s.TokenByName(ctx, "ci")
	check(t, "TokenByName", err)
	if byName.ID != ci.ID {
		t.Fatalf("TokenByName = %+v", byName)
	}
	_, err = s.TokenByName(ctx, "nope")
	wantErr(t, "TokenByName unknown", err, ErrNotFound)

	check(t, "TouchToken", s.TouchToken(ctx, ci.ID, base.Add(10*time.Minute)))
	check(t, "TouchToken back in time", s.TouchToken(ctx, ci.ID, base.Add(5*time.Minute)))
	wantErr(t, "TouchToken unknown", s.TouchToken(ctx, "nope", base), ErrNotFound)

	list, err := s.ListTokens(ctx)
	check(t, "ListTokens", err)
	if len(list) != 2 || list[0].Name != "backup" || list[1].Name != "ci" {
		t.Fatalf("ListTokens = %+v, want backup then ci", list)
	}
	if !list[1].LastUsedAt.Equal(base.Add(10*time.Minute)) || !list[0].LastUsedAt.IsZero() {
		t.Fatalf("LastUsedAt = %v and %v, want 10m after base and never", list[1].LastUsedAt, list[0].LastUsedAt)
	}

	check(t, "RevokeToken", s.RevokeToken(ctx, "ci"))
	_, err = s.TokenByHash(ctx, hash("secret:ci"), base)
	wantErr(t, "TokenByHash after revoke", err, ErrNotFound)
	wantErr(t, "RevokeToken again", s.RevokeToken(ctx, "ci"), ErrNotFound)
	if got := revocationIDs(t, s); !slices.Equal(got, []string{"token:ci"}) {
		t.Fatalf("revocation feed = %v, want one token:ci (none for the failed revoke)", got)
	}
	// The name is free again; the new token is a new secret.
	again, err := s.CreateToken(ctx, Token{Name: "ci"}, hash("secret:ci2"))
	check(t, "CreateToken after revoke", err)
	if again.ID == ci.ID {
		t.Fatal("a recreated token kept the old ID")
	}
	_, err = s.CreateToken(ctx, Token{Name: "dup-hash"}, hash("secret:ci2"))
	if err == nil {
		t.Fatal("two tokens with one secret hash were stored")
	}
}

func testConcurrentCreateToken(t *testing.T, opts Options) {
	ctx := context.Background()
	a, b := migrated(t, opts), open(t, opts)
	const n = 10
	errs := make([]error, n)
	runConcurrently(n, func(i int) {
		_, errs[i] = []*Store{a, b}[i%2].CreateToken(ctx, Token{Name: "race"}, hash("secret:"+randomHex(t, 8)))
	})
	created := 0
	for _, err := range errs {
		switch {
		case err == nil:
			created++
		case !errors.Is(err, ErrExists):
			t.Errorf("CreateToken: %v, want nil or ErrExists", err)
		}
	}
	if created != 1 {
		t.Fatalf("%d concurrent creations of one name succeeded, want 1", created)
	}
}

// testWatchTokenRevocations: a running server (a watcher on another Store)
// hears of a revoked token within a second.
func testWatchTokenRevocations(t *testing.T, opts Options) {
	ctx := context.Background()
	s := migrated(t, opts)
	w := watch(t, s)
	cli := open(t, opts)
	waitListening(t, w, cli)

	name := "ci-" + randomHex(t, 6)
	_, err := cli.CreateToken(ctx, Token{Name: name}, hash("secret:"+name))
	check(t, "CreateToken", err)
	check(t, "RevokeToken", cli.RevokeToken(ctx, name))
	if !w.await(RevokedTokenPrefix+name, time.Second) {
		t.Fatalf("revocation of token %s not delivered within 1s", name)
	}
}
