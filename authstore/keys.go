package authstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/uptrace/bun"
)

// signingKeyLockKey is the PostgreSQL advisory lock that serializes
// EnsureSigningKey across replicas ("gh-keys!" in ASCII).
const signingKeyLockKey int64 = 0x67682d6b657973_21

// SigningKey is a key that signs identity assertions. The store keeps the
// private half only as the caller sealed it; it never sees it in clear.
type SigningKey struct {
	KID           string // key ID: the public key's JWK thumbprint
	Alg           string // JOSE algorithm, "ES256"
	SealedPrivate []byte
	PublicJWK     string // the public key as a JWK (JSON)
	CreatedAt     time.Time
	ActivatesAt   time.Time // signs from then on (until a newer key activates)
	RetiredAt     time.Time // zero: not retired
}

type signingKeyRow struct {
	bun.BaseModel `bun:"table:signing_keys"`

	KID           string    `bun:"kid,pk"`
	Alg           string    `bun:"alg"`
	SealedPrivate []byte    `bun:"sealed_private"`
	PublicJWK     string    `bun:"public_jwk"`
	CreatedAt     time.Time `bun:"created_at"`
	ActivatesAt   time.Time `bun:"activates_at"`
	RetiredAt     time.Time `bun:"retired_at,nullzero"`
}

func (r signingKeyRow) key() SigningKey {
	return SigningKey{
		KID:           r.KID,
		Alg:           r.Alg,
		SealedPrivate: r.SealedPrivate,
		PublicJWK:     r.PublicJWK,
		CreatedAt:     utc(r.CreatedAt),
		ActivatesAt:   utc(r.ActivatesAt),
		RetiredAt:     utc(r.RetiredAt),
	}
}

func signingKeyRowOf(k SigningKey) (signingKeyRow, error) {
	switch {
	case k.KID == "":
		return signingKeyRow{}, errors.New("empty key ID")
	case k.Alg == "":
		return signingKeyRow{}, errors.New("empty algorithm")
	case len(k.SealedPrivate) == 0:
		return signingKeyRow{}, errors.New("empty sealed private key")
	case k.PublicJWK == "":
		return signingKeyRow{}, errors.New("empty public key")
	case k.CreatedAt.IsZero() || k.ActivatesAt.IsZero():
		return signingKeyRow{}, errors.New("creation or activation time missing")
	}
	return signingKeyRow{
		KID:           k.KID,
		Alg:           k.Alg,
		SealedPrivate: k.SealedPrivate,
		PublicJWK:     k.PublicJWK,
		CreatedAt:     utc(k.CreatedAt),
		ActivatesAt:   utc(k.ActivatesAt),
		RetiredAt:     utc(k.RetiredAt),
	}, nil
}

// SigningKeys returns every signing key, oldest first.
func (s *Store) SigningKeys(ctx context.Context) ([]SigningKey, error) {
	keys, err := s.signingKeys(ctx, s.db)
	if err != nil {
		return nil, fmt.Errorf("signing keys: %w", err)
	}
	return keys, nil
}

func (s *Store) signingKeys(ctx context.Context, db bun.IDB) ([]SigningKey, error) {
	var rows []signingKeyRow
	if err := db.NewSelect().Model(&rows).OrderExpr("created_at ASC, kid ASC").Scan(ctx); err != nil {
		return nil, err
	}
	out := make([]SigningKey, len(rows))
	for i, r := range rows {
		out[i] = r.key()
	}
	return out, nil
}

// AddSigningKey stores k; ErrExists if a key with its KID is stored.
func (s *Store) AddSigningKey(ctx context.Context, k SigningKey) error {
	row, err := signingKeyRowOf(k)
	if err != nil {
		return fmt.Errorf("add signing key: %w", err)
	}
	res, err := s.db.NewInsert().Model(&row).On("CONFLICT (kid) DO NOTHING").Exec(ctx)
	if err != nil {
		return fmt.Errorf("add signing key: %w", err)
	}
	if n, err := affected(res); err != nil {
		return fmt.Errorf("add signing key: %w", err)
	} else if n == 0 {
		return fmt.Errorf("add signing key %s: %w", k.KID, ErrExists)
	}
	return nil
}

// EnsureSigningKey stores k only if there is no signing key at all, and
// returns the oldest key stored afterwards: k if it was stored. Concurrent
// calls from any number of processes store one key between them: on
// PostgreSQL the transaction takes an advisory lock, on SQLite the write
// lock (BEGIN IMMEDIATE), before it looks.
func (s *Store) EnsureSigningKey(ctx context.Context, k SigningKey) (SigningKey, error) {
	row, err := signingKeyRowOf(k)
	if err != nil {
		return SigningKey{}, fmt.Errorf("ensure signing key: %w", err)
	}
	var out SigningKey
	err = s.inTx(ctx, func(tx bun.Tx) error {
		if s.postgres() {
			if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock(?)", signingKeyLockKey); err != nil {
				return fmt.Errorf("lock: %w", err)
			}
		}
		keys, err := s.signingKeys(ctx, tx)
		if err != nil {
			return err
		}
		if len(keys) > 0 {
			out = keys[0]
			return nil
		}
		if _, err := tx.NewInsert().Model(&row).Exec(ctx); err != nil {
			return err
		}
		out = row.key()
		return nil
	})
	if err != nil {
		return SigningKey{}, fmt.Errorf("ensure signing key: %w", err)
	}
	return out, nil
}

// RetireSigningKey sets the key's RetiredAt to at, unless it already
// retires earlier: a retirement is never postponed. ErrNotFound if there
// is no such key.
func (s *Store) RetireSigningKey(ctx context.Context, kid string, at time.Time) error {
	at = utc(at)
	res, err := s.db.NewUpdate().Model((*signingKeyRow)(nil)).
		Set("retired_at = ?", at).
		Where("kid = ?", kid).
		Where("(retired_at IS NULL OR retired_at > ?)", at).
		Exec(ctx)
	if err != nil {
		return fmt.Errorf("retire signing key: %w", err)
	}
	n, err := affected(res)
	if err != nil {
		return fmt.Errorf("retire signing key: %w", err)
	}
	if n == 1 {
		return nil
	}
	exists, err := s.db.NewSelect().Model((*signingKeyRow)(nil)).Where("kid = ?", kid).Exists(ctx)
	if err != nil {
		return fmt.Errorf("retire signing key: %w", err)
	}
	if !exists {
		return fmt.Errorf("retire signing key: %w", ErrNotFound)
	}
	return nil
}

// PruneSigningKeys deletes the keys retired before retiredBefore and
// returns how many. Keys not retired are never deleted.
func (s *Store) PruneSigningKeys(ctx context.Context, retiredBefore time.Time) (int, error) {
	res, err := s.db.NewDelete().Model((*signingKeyRow)(nil)).
		Where("retired_at IS NOT NULL").
		Where("retired_at < ?", utc(retiredBefore)).
		Exec(ctx)
	if err != nil {
		return 0, fmt.Errorf("prune signing keys: %w", err)
	}
	n, err := affected(res)
	if err != nil {
		return 0, fmt.Errorf("prune signing keys: %w", err)
	}
	return n, nil
}
