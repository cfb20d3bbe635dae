package authstore

import (
	"bytes"
	"context"
	"testing"
	"time"
)

func newKey(kid string, created time.Time) SigningKey {
	return SigningKey{
		KID:           kid,
		Alg:           "ES256",
		SealedPrivate: []byte("sealed:" + kid + "\x00\xff"),
		PublicJWK:     `{"kty":"EC","kid":"` + kid + `"}`,
		CreatedAt:     created,
		ActivatesAt:   created.Add(2 * time.Minute),
	}
}

func kids(keys []SigningKey) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k.KID
	}
	return out
}

func testSigningKeys(t *testing.T, opts Options) {
	ctx := context.Background()
	s := migrated(t, opts)

	keys, err := s.SigningKeys(ctx)
	check(t, "SigningKeys empty", err)
	if len(keys) != 0 {
		t.Fatalf("SigningKeys on a new database = %v", kids(keys))
	}

	first := newKey("k1", base)
	got, err := s.EnsureSigningKey(ctx, first)
	check(t, "EnsureSigningKey", err)
	if got.KID != "k1" || !bytes.Equal(got.SealedPrivate, first.SealedPrivate) || got.PublicJWK != first.PublicJWK ||
		!got.CreatedAt.Equal(base) || !got.ActivatesAt.Equal(base.Add(2*time.Minute)) || !got.RetiredAt.IsZero() {
		t.Fatalf("EnsureSigningKey = %+v", got)
	}
	got, err = s.EnsureSigningKey(ctx, newKey("other", base.Add(time.Second)))
	check(t, "EnsureSigningKey again", err)
	if got.KID != "k1" {
		t.Fatalf("EnsureSigningKey with a key stored = %s, want the stored k1", got.KID)
	}

	// Added out of order: listed by creation time.
	check(t, "AddSigningKey k3", s.AddSigningKey(ctx, newKey("k3", base.Add(2*time.Hour))))
	check(t, "AddSigningKey k2", s.AddSigningKey(ctx, newKey("k2", base.Add(time.Hour))))
	wantErr(t, "AddSigningKey duplicate", s.AddSigningKey(ctx, newKey("k2", base)), ErrExists)
	for name, bad := range map[string]SigningKey{
		"no kid":        {Alg: "ES256", SealedPrivate: []byte("x"), PublicJWK: "{}", CreatedAt: base, ActivatesAt: base},
		"no alg":        {KID: "x", SealedPrivate: []byte("x"), PublicJWK: "{}", CreatedAt: base, ActivatesAt: base},
		"no private":    {KID: "x", Alg: "ES256", PublicJWK: "{}", CreatedAt: base, ActivatesAt: base},
		"no public":     {KID: "x", Alg: "ES256", SealedPrivate: []byte("x"), CreatedAt: base, ActivatesAt: base},
		"no activation": {KID: "x", Alg: "ES256", SealedPrivate: []byte("x"), PublicJWK: "{}", CreatedAt: base},
	} {
		if err := s.AddSigningKey(ctx, bad); err == nil {
			t.Errorf("AddSigningKey with %s: no error", name)
		}
		if _, err := s.EnsureSigningKey(ctx, bad); err == nil {
			t.Errorf("EnsureSigningKey with %s: no error", name)
		}
	}
	keys, err = s.SigningKeys(ctx)
	check(t, "SigningKeys", err)
	if got := kids(keys); len(got) != 3 || got[0] != "k1" || got[1] != "k2" || got[2] != "k3" {
		t.Fatalf("SigningKeys = %v, want k1 k2 k3", got)
	}

	retire := base.Add(10 * time.Minute)
	check(t, "RetireSigningKey", s.RetireSigningKey(ctx, "k1", retire))
	check(t, "RetireSigningKey later", s.RetireSigningKey(ctx, "k1", retire.Add(time.Hour)))
	check(t, "RetireSigningKey k2", s.RetireSigningKey(ctx, "k2", retire.Add(time.Hour)))
	check(t, "RetireSigningKey k2 sooner", s.RetireSigningKey(ctx, "k2", retire.Add(30*time.Minute)))
	wantErr(t, "RetireSigningKey unknown", s.RetireSigningKey(ctx, "nope", retire), ErrNotFound)
	keys, err = s.SigningKeys(ctx)
	check(t, "SigningKeys", err)
	if !keys[0].RetiredAt.Equal(retire) || !keys[1].RetiredAt.Equal(retire.Add(30*time.Minute)) || !keys[2].RetiredAt.IsZero() {
		t.Fatalf("retirements = %v, %v, %v; want the earliest asked for, and none for k3", keys[0].RetiredAt, keys[1].RetiredAt, keys[2].RetiredAt)
	}

	n, err := s.PruneSigningKeys(ctx, retire)
	check(t, "PruneSigningKeys at the retirement", err)
	if n != 0 {
		t.Fatalf("pruned %d keys retired exactly at the bound, want 0", n)
	}
	n, err = s.PruneSigningKeys(ctx, retire.Add(31*time.Minute))
	check(t, "PruneSigningKeys", err)
	keys, err = s.SigningKeys(ctx)
	check(t, "SigningKeys", err)
	if n != 2 || len(keys) != 1 || keys[0].KID != "k3" {
		t.Fatalf("pruned %d, left %v; want k1 and k2 gone, k3 (never retired) kept", n, kids(keys))
	}
	n, err = s.PruneSigningKeys(ctx, base.Add(1000*time.Hour))
	check(t, "PruneSigningKeys far ahead", err)
	if n != 0 {
		t.Fatalf("pruned %d keys that are not retired", n)
	}
}

// testConcurrentEnsureSigningKey: replicas starting together with no key
// end with exactly one, and all of them are handed that one.
func testConcurrentEnsureSigningKey(t *testing.T, opts Options) {
	ctx := context.Background()
	a, b := migrated(t, opts), open(t, opts)
	const n = 10
	got := make([]SigningKey, n)
	errs := make([]error, n)
	runConcurrently(n, func(i int) {
		got[i], errs[i] = []*Store{a, b}[i%2].EnsureSigningKey(ctx, newKey("k"+randomHex(t, 8), base))
	})
	for i := range n {
		check(t, "EnsureSigningKey", errs[i])
		if got[i].KID != got[0].KID {
			t.Fatalf("concurrent calls returned keys %s and %s", got[0].KID, got[i].KID)
		}
	}
	keys, err := a.SigningKeys(ctx)
	check(t, "SigningKeys", err)
	if len(keys) != 1 || keys[0].KID != got[0].KID {
		t.Fatalf("stored keys = %v, want only %s", kids(keys), got[0].KID)
	}
}
