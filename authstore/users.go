package authstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/uptrace/bun"
)

// User is an address that has signed in or was added by an operator.
type User struct {
	ID          int64
	Email       string
	Disabled    bool
	CreatedAt   time.Time
	LastLoginAt time.Time // zero if never
}

type userRow struct {
	bun.BaseModel `bun:"table:users"`

	ID          int64     `bun:"id,pk,autoincrement"`
	Email       string    `bun:"email"`
	Disabled    bool      `bun:"disabled"`
	CreatedAt   time.Time `bun:"created_at"`
	LastLoginAt time.Time `bun:"last_login_at,nullzero"`
}

func (r userRow) user() User {
	return User{
		ID:          r.ID,
		Email:       r.Email,
		Disabled:    r.Disabled,
		CreatedAt:   utc(r.CreatedAt),
		LastLoginAt: utc(r.LastLoginAt),
	}
}

var errEmptyEmail = errors.New("empty email")

// EnsureUser returns the user with email, creating it (enabled, created at
// now) if it does not exist. Concurrent calls for one address create one row.
func (s *Store) EnsureUser(ctx context.Context, email string, now time.Time) (User, error) {
	if email == "" {
		return User{}, fmt.Errorf("ensure user: %w", errEmptyEmail)
	}
	row := userRow{Email: email, CreatedAt: utc(now)}
	_, err := s.db.NewInsert().Model(&row).
		Column("email", "disabled", "created_at").
		On("CONFLICT (email) DO NOTHING").
		Returning("NULL").
		Exec(ctx)
	if err != nil {
		return User{}, fmt.Errorf("ensure user: %w", err)
	}
	u, err := s.UserByEmail(ctx, email)
	if err != nil {
		return User{}, fmt.Errorf("ensure user: %w", err)
	}
	return u, nil
}

// UserByEmail returns the user with email, or ErrNotFound.
func (s *Store) UserByEmail(ctx context.Context, email string) (User, error) {
	var row userRow
	err := s.db.NewSelect().Model(&row).Where("email = ?", email).Limit(1).Scan(ctx)
	if err != nil {
		return User{}, fmt.Errorf("user by email: %w", notFound(err))
	}
	return row.user(), nil
}

// ListUsers returns every user, ordered by email.
func (s *Store) ListUsers(ctx context.Context) ([]User, error) {
	var rows []userRow
	if err := s.db.NewSelect().Model(&rows).Order("email").Scan(ctx); err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	out := make([]User, len(rows))
	for i, r := range rows {
		out[i] = r.user()
	}
	return out, nil
}

// SetUserDisabled disables or enables the user with email (ErrNotFound if
// there is none). Disabling deletes the user's sessions in the same
// transaction and announces them to WatchRevocations.
func (s *Store) SetUserDisabled(ctx context.Context, email string, disabled bool) error {
	err := s.inTx(ctx, func(tx bun.Tx) error {
		res, err := tx.NewUpdate().Model((*userRow)(nil)).
			Set("disabled = ?", disabled).
			Where("email = ?", email).
			Exec(ctx)
		if err != nil {
			return err
		}
		if n, err := affected(res); err != nil {
			return err
		} else if n == 0 {
			return ErrNotFound
		}
		if !disabled {
			return nil
		}
		_, err = s.deleteSessions(ctx, tx, "email = ?", email)
		return err
	})
	if err != nil {
		return fmt.Errorf("set user disabled: %w", err)
	}
	return nil
}

// DeleteUser removes the user with email (ErrNotFound if there is none)
// together with their sessions and pending codes, and announces the
// sessions to WatchRevocations.
func (s *Store) DeleteUser(ctx context.Context, email string) error {
	err := s.inTx(ctx, func(tx bun.Tx) error {
		res, err := tx.NewDelete().Model((*userRow)(nil)).Where("email = ?", email).Exec(ctx)
		if err != nil {
			return err
		}
		if n, err := affected(res); err != nil {
			return err
		} else if n == 0 {
			return ErrNotFound
		}
		if _, err := tx.NewDelete().Model((*codeRow)(nil)).Where("email = ?", email).Exec(ctx); err != nil {
			return fmt.Errorf("delete codes: %w", err)
		}
		_, err = s.deleteSessions(ctx, tx, "email = ?", email)
		return err
	})
	if err != nil {
		return fmt.Errorf("delete user: %w", err)
	}
	return nil
}

// RecordLogin sets the user's last sign-in time (ErrNotFound if there is no
// such user).
func (s *Store) RecordLogin(ctx context.Context, email string, now time.Time) error {
	res, err := s.db.NewUpdate().Model((*userRow)(nil)).
		Set("last_login_at = ?", utc(now)).
		Where("email = ?", email).
		Exec(ctx)
	if err != nil {
		return fmt.Errorf("record login: %w", err)
	}
	n, err := affected(res)
	if err != nil {
		return fmt.Errorf("record login: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("record login: %w", ErrNotFound)
	}
	return nil
}
