package authstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/uptrace/bun"
)

// RevokedTokenPrefix starts the ID that RevokeToken announces to
// WatchRevocations: "token:" and the token's name. Session IDs are hex,
// so the two never collide.
const RevokedTokenPrefix = "token:"

// ErrExists means a service token of that name (or a signing key of that
// ID) already exists.
var ErrExists = errors.New("already exists")

// Token is a service token. Its secret is never stored, only the secret's
// hash, which the store never hands back.
type Token struct {
	ID         string // opaque random ID, safe to show; not the secret
	Name       string
	Groups     []string
	CreatedAt  time.Time
	ExpiresAt  time.Time // zero: never expires
	LastUsedAt time.Time // zero: never used
}

type tokenRow struct {
	bun.BaseModel `bun:"table:service_tokens"`

	ID         string    `bun:"id,pk"`
	Name       string    `bun:"name"`
	SecretHash []byte    `bun:"secret_hash"`
	Groups     string    `bun:"groups"`
	CreatedAt  time.Time `bun:"created_at"`
	ExpiresAt  time.Time `bun:"expires_at,nullzero"`
	LastUsedAt time.Time `bun:"last_used_at,nullzero"`
}

func (r tokenRow) token() (Token, error) {
	var groups []string
	if err := json.Unmarshal([]byte(r.Groups), &groups); err != nil {
		return Token{}, fmt.Errorf("token %s: groups: %w", r.Name, err)
	}
	return Token{
		ID:         r.ID,
		Name:       r.Name,
		Groups:     groups,
		CreatedAt:  utc(r.CreatedAt),
		ExpiresAt:  utc(r.ExpiresAt),
		LastUsedAt: utc(r.LastUsedAt),
	}, nil
}

// tokenColumns are what a read returns: never the hash.
var tokenColumns = []string{"id", "name", "groups", "created_at", "expires_at", "last_used_at"}

// CreateToken stores t with the hash of its secret and returns it as
// stored: a random ID if t.ID was empty, CreatedAt defaulting to now,
// times in UTC, LastUsedAt zero. ErrExists if a token of that name exists.
// Names and groups are stored as given: callers validate them.
func (s *Store) CreateToken(ctx context.Context, t Token, secretHash []byte) (Token, error) {
	if t.CreatedAt.IsZero() {
		t.CreatedAt = s.now()
	}
	switch {
	case t.Name == "":
		return Token{}, errors.New("create token: empty name")
	case len(secretHash) == 0:
		return Token{}, errors.New("create token: empty secret hash")
	case !t.ExpiresAt.IsZero() && !t.ExpiresAt.After(t.CreatedAt):
		return Token{}, errors.New("create token: expiry not after creation")
	}
	if t.ID == "" {
		id, err := newSessionID()
		if err != nil {
			return Token{}, fmt.Errorf("create token: %w", err)
		}
		t.ID = id
	}
	groups := t.Groups
	if groups == nil {
		groups = []string{}
	}
	gj, err := json.Marshal(groups)
	if err != nil {
		return Token{}, fmt.Errorf("create token: groups: %w", err)
	}
	row := tokenRow{
		ID:         t.ID,
		Name:       cleanText(t.Name, fieldMax),
		SecretHash: secretHash,
		Groups:     string(gj),
		CreatedAt:  utc(t.CreatedAt),
		ExpiresAt:  utc(t.ExpiresAt),
	}
	res, err := s.db.NewInsert().Model(&row).On("CONFLICT (name) DO NOTHING").Exec(ctx)
	if err != nil {
		return Token{}, fmt.Errorf("create token: %w", err)
	}
	if n, err := affected(res); err != nil {
		return Token{}, fmt.Errorf("create token: %w", err)
	} else if n == 0 {
		return Token{}, fmt.Errorf("create token %s: %w", row.Name, ErrExists)
	}
	out, err := row.token()
	if err != nil {
		return Token{}, fmt.Errorf("create token: %w", err)
	}
	return out, nil
}

// TokenByHash returns the token whose secret hashes to hash, or
// ErrNotFound when there is none or it has expired at now.
func (s *Store) TokenByHash(ctx context.Context, hash []byte, now time.Time) (Token, error) {
	if len(hash) == 0 {
		return Token{}, fmt.Errorf("token by hash: %w", ErrNotFound)
	}
	t, err := s.oneToken(ctx, func(q *bun.SelectQuery) *bun.SelectQuery {
		return q.Where("secret_hash = ?", hash).
			Where("(expires_at IS NULL OR expires_at > ?)", utc(now))
	})
	if err != nil {
		return Token{}, fmt.Errorf("token by hash: %w", err)
	}
	return t, nil
}

// TokenByName returns the token called name, expired or not, or
// ErrNotFound.
func (s *Store) TokenByName(ctx context.Context, name string) (Token, error) {
	t, err := s.oneToken(ctx, func(q *bun.SelectQuery) *bun.SelectQuery {
		return q.Where("name = ?", name)
	})
	if err != nil {
		return Token{}, fmt.Errorf("token by name: %w", err)
	}
	return t, nil
}

func (s *Store) oneToken(ctx context.Context, where func(*bun.SelectQuery) *bun.SelectQuery) (Token, error) {
	var row tokenRow
	if err := where(s.db.NewSelect().Model(&row).Column(tokenColumns...)).Limit(1).Scan(ctx); err != nil {
		return Token{}, notFound(err)
	}
	return row.token()
}

// ListTokens returns every token, expired ones included, ordered by name.
func (s *Store) ListTokens(ctx context.Context) ([]Token, error) {
	var rows []tokenRow
	if err := s.db.NewSelect().Model(&rows).Column(tokenColumns...).Order("name").Scan(ctx); err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	out := make([]Token, len(rows))
	for i, r := range rows {
		t, err := r.token()
		if err != nil {
			return nil, fmt.Errorf("list tokens: %w", err)
		}
		out[i] = t
	}
	return out, nil
}

// RevokeToken deletes the token called name (ErrNotFound if absent) and,
// in the same transaction, announces RevokedTokenPrefix+name to
// WatchRevocations, so every running server forgets it.
func (s *Store) RevokeToken(ctx context.Context, name string) error {
	err := s.inTx(ctx, func(tx bun.Tx) error {
		var ids []string
		err := tx.NewDelete().Model((*tokenRow)(nil)).Where("name = ?", name).Returning("id").Scan(ctx, &ids)
		if err != nil {
			return err
		}
		if len(ids) == 0 {
			return ErrNotFound
		}
		return s.recordRevoked(ctx, tx, []string{RevokedTokenPrefix + name})
	})
	if err != nil {
		return fmt.Errorf("revoke token: %w", err)
	}
	return nil
}

// TouchToken moves the token's LastUsedAt forward to at; it never moves
// it back. ErrNotFound if the token does not exist.
func (s *Store) TouchToken(ctx context.Context, id string, at time.Time) error {
	at = utc(at)
	res, err := s.db.NewUpdate().Model((*tokenRow)(nil)).
		Set("last_used_at = ?", at).
		Where("id = ?", id).
		Where("(last_used_at IS NULL OR last_used_at < ?)", at).
		Exec(ctx)
	if err != nil {
		return fmt.Errorf("touch token: %w", err)
	}
	n, err := affected(res)
	if err != nil {
		return fmt.Errorf("touch token: %w", err)
	}
	if n == 1 {
		return nil
	}
	exists, err := s.db.NewSelect().Model((*tokenRow)(nil)).Where("id = ?", id).Exists(ctx)
	if err != nil {
		return fmt.Errorf("touch token: %w", err)
	}
	if !exists {
		return fmt.Errorf("touch token: %w", ErrNotFound)
	}
	return nil
}
