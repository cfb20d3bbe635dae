package authstore

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/uptrace/bun"
)

// secretSize is the length of the generated server secret in bytes.
const secretSize = 32

type secretRow struct {
	bun.BaseModel `bun:"table:server_secret"`

	ID        int       `bun:"id,pk"`
	Secret    []byte    `bun:"secret"`
	CreatedAt time.Time `bun:"created_at"`
}

// Secret returns the server secret, generating and storing 32 random bytes
// the first time. Concurrent first calls, from any number of processes, all
// get the same value: only the first insert wins, and everyone reads it back.
func (s *Store) Secret(ctx context.Context) ([]byte, error) {
	if b, err := s.readSecret(ctx); err == nil {
		return b, nil
	} else if !errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("secret: %w", err)
	}
	fresh := make([]byte, secretSize)
	if _, err := rand.Read(fresh); err != nil {
		return nil, fmt.Errorf("secret: generate: %w", err)
	}
	row := secretRow{ID: 1, Secret: fresh, CreatedAt: utc(s.now())}
	_, err := s.db.NewInsert().Model(&row).On("CONFLICT (id) DO NOTHING").Exec(ctx)
	if err != nil {
		return nil, fmt.Errorf("secret: store: %w", err)
	}
	b, err := s.readSecret(ctx)
	if err != nil {
		return nil, fmt.Errorf("secret: %w", err)
	}
	return b, nil
}

func (s *Store) readSecret(ctx context.Context) ([]byte, error) {
	var row secretRow
	err := s.db.NewSelect().Model(&row).Where("id = 1").Scan(ctx)
	if err != nil {
		return nil, notFound(err)
	}
	if len(row.Secret) != secretSize {
		return nil, fmt.Errorf("stored secret has %d bytes, want %d", len(row.Secret), secretSize)
	}
	return row.Secret, nil
}
