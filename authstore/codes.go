package authstore

import (
	"context"
	"crypto/subtle"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/uptrace/bun"
)

// Code is a sign-in code as the store keeps it: only hashes, never the code
// or link token.
type Code struct {
	Email     string
	CodeHash  []byte // HMAC of the code, computed by the caller
	LinkHash  []byte // SHA-256 of a one-click link token; nil or empty if none
	CreatedAt time.Time
	ExpiresAt time.Time
}

type codeRow struct {
	bun.BaseModel `bun:"table:login_codes"`

	ID         int64     `bun:"id,pk,autoincrement"`
	Email      string    `bun:"email"`
	CodeHash   []byte    `bun:"code_hash"`
	LinkHash   []byte    `bun:"link_hash"`
	CreatedAt  time.Time `bun:"created_at"`
	ExpiresAt  time.Time `bun:"expires_at"`
	Attempts   int       `bun:"attempts"`
	ConsumedAt time.Time `bun:"consumed_at,nullzero"`
	VoidedAt   time.Time `bun:"voided_at,nullzero"`
}

// CreateCode stores c and voids every older unused code of the same address
// in one transaction, so only the latest code can ever be used.
func (s *Store) CreateCode(ctx context.Context, c Code) error {
	switch {
	case c.Email == "":
		return fmt.Errorf("create code: %w", errEmptyEmail)
	case len(c.CodeHash) == 0:
		return errors.New("create code: empty code hash")
	case !c.ExpiresAt.After(c.CreatedAt):
		return errors.New("create code: expiry not after creation")
	}
	if len(c.LinkHash) == 0 {
		c.LinkHash = nil // no link: never matches any ConsumeLink
	}
	row := codeRow{
		Email:     c.Email,
		CodeHash:  c.CodeHash,
		LinkHash:  c.LinkHash,
		CreatedAt: utc(c.CreatedAt),
		ExpiresAt: utc(c.ExpiresAt),
	}
	err := s.inTx(ctx, func(tx bun.Tx) error {
		_, err := tx.NewUpdate().Model((*codeRow)(nil)).
			Set("voided_at = ?", row.CreatedAt).
			Where("email = ?", c.Email).
			Where("consumed_at IS NULL").
			Where("voided_at IS NULL").
			Exec(ctx)
		if err != nil {
			return fmt.Errorf("void older codes: %w", err)
		}
		_, err = tx.NewInsert().Model(&row).
			ExcludeColumn("id", "attempts", "consumed_at", "voided_at").
			Returning("NULL").
			Exec(ctx)
		return err
	})
	if err != nil {
		return fmt.Errorf("create code: %w", err)
	}
	return nil
}

// LatestCodeTime returns when the newest code for email was created, for a
// resend cooldown; ErrNotFound if none was ever created (or all were pruned).
func (s *Store) LatestCodeTime(ctx context.Context, email string) (time.Time, error) {
	var row codeRow
	err := s.db.NewSelect().Model(&row).Column("created_at").
		Where("email = ?", email).
		OrderExpr("id DESC").
		Limit(1).
		Scan(ctx)
	if err != nil {
		return time.Time{}, fmt.Errorf("latest code time: %w", notFound(err))
	}
	return utc(row.CreatedAt), nil
}

// VerifyCode checks hash against the newest code of email. It returns nil
// when the code matched and this call consumed it: of any number of
// concurrent callers, in any number of processes, at most one gets nil for
// a code. Otherwise it returns ErrNoCode (none, used, or replaced),
// ErrCodeExpired, ErrTooManyAttempts (maxAttempts wrong tries already; the
// code is void) or ErrWrongCode (the try was counted; the maxAttempts-th
// wrong try voids the code).
func (s *Store) VerifyCode(ctx context.Context, email string, hash []byte, now time.Time, maxAttempts int) error {
	if err := s.verifyCode(ctx, email, hash, utc(now), maxAttempts); err != nil {
		return fmt.Errorf("verify code: %w", err)
	}
	return nil
}

func (s *Store) verifyCode(ctx context.Context, email string, hash []byte, now time.Time, maxAttempts int) error {
	if maxAttempts < 1 {
		return errors.New("max attempts must be positive")
	}
	row, err := s.newestCode(ctx, email)
	if err != nil {
		return err
	}
	if err := row.usable(now, maxAttempts); err != nil {
		return err
	}
	if len(hash) == 0 || subtle.ConstantTimeCompare(hash, row.CodeHash) != 1 {
		return s.countWrongTry(ctx, row.ID, now, maxAttempts)
	}
	return s.consume(ctx, row.ID, now, maxAttempts)
}

// ConsumeLink consumes the live code whose link hash is linkHash and returns
// its address. Like VerifyCode it succeeds at most once per code; it fails
// with ErrNoCode (unknown, used, or replaced by a newer code),
// ErrCodeExpired or ErrTooManyAttempts.
func (s *Store) ConsumeLink(ctx context.Context, linkHash []byte, now time.Time, maxAttempts int) (string, error) {
	email, err := s.consumeLink(ctx, linkHash, utc(now), maxAttempts)
	if err != nil {
		return "", fmt.Errorf("consume link: %w", err)
	}
	return email, nil
}

func (s *Store) consumeLink(ctx context.Context, linkHash []byte, now time.Time, maxAttempts int) (string, error) {
	if maxAttempts < 1 {
		return "", errors.New("max attempts must be positive")
	}
	if len(linkHash) == 0 {
		return "", ErrNoCode
	}
	var row codeRow
	err := s.db.NewSelect().Model(&row).
		Where("link_hash = ?", linkHash).
		OrderExpr("id DESC").
		Limit(1).
		Scan(ctx)
	if err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return "", ErrNoCode
		}
		return "", fmt.Errorf("load code: %w", err)
	}
	// The lookup was by index; the hash is compared here too, in constant
	// time, so the decision never rests on the database's comparison alone.
	if subtle.ConstantTimeCompare(linkHash, row.LinkHash) != 1 {
		return "", ErrNoCode
	}
	// A link from an older mail is dead once a newer code was requested.
	newest, err := s.newestCode(ctx, row.Email)
	if err != nil {
		return "", err
	}
	if newest.ID != row.ID {
		return "", ErrNoCode
	}
	if err := row.usable(now, maxAttempts); err != nil {
		return "", err
	}
	if err := s.consume(ctx, row.ID, now, maxAttempts); err != nil {
		return "", err
	}
	return row.Email, nil
}

// newestCode loads the most recently created code of email; ErrNoCode if
// there is none.
func (s *Store) newestCode(ctx context.Context, email string) (codeRow, error) {
	var row codeRow
	err := s.db.NewSelect().Model(&row).
		Where("email = ?", email).
		OrderExpr("id DESC").
		Limit(1).
		Scan(ctx)
	if err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return codeRow{}, ErrNoCode
		}
		return codeRow{}, fmt.Errorf("load code: %w", err)
	}
	return row, nil
}

// usable reports why a code can no longer be used, or nil.
func (r codeRow) usable(now time.Time, maxAttempts int) error {
	switch {
	case !r.ConsumedAt.IsZero() || !r.VoidedAt.IsZero():
		return ErrNoCode
	case r.Attempts >= maxAttempts:
		return ErrTooManyAttempts
	case !now.Before(r.ExpiresAt):
		return ErrCodeExpired
	}
	return nil
}

// liveCode limits an UPDATE to a code that is still usable at now. Every
// state change is one such conditional UPDATE, so concurrent callers are
// serialized by the database and at most one of them can consume a code.
func liveCode(q *bun.UpdateQuery, id int64, now time.Time, maxAttempts int) *bun.UpdateQuery {
	return q.Where("id = ?", id).
		Where("consumed_at IS NULL").
		Where("voided_at IS NULL").
		Where("attempts < ?", maxAttempts).
		Where("expires_at > ?", now)
}

func (s *Store) consume(ctx context.Context, id int64, now time.Time, maxAttempts int) error {
	q := s.db.NewUpdate().Model((*codeRow)(nil)).Set("consumed_at = ?", now)
	res, err := liveCode(q, id, now, maxAttempts).Exec(ctx)
	if err != nil {
		return fmt.Errorf("consume code: %w", err)
	}
	n, err := affected(res)
	if err != nil {
		return err
	}
	if n == 1 {
		return nil
	}
	return s.whyNotLive(ctx, id, now, maxAttempts)
}

// countWrongTry adds one to the code's attempts and reports ErrWrongCode.
func (s *Store) countWrongTry(ctx context.Context, id int64, now time.Time, maxAttempts int) error {
	q := s.db.NewUpdate().Model((*codeRow)(nil)).Set("attempts = attempts + 1")
	res, err := liveCode(q, id, now, maxAttempts).Exec(ctx)
	if err != nil {
		return fmt.Errorf("count attempt: %w", err)
	}
	n, err := affected(res)
	if err != nil {
		return err
	}
	if n == 1 {
		return ErrWrongCode
	}
	return s.whyNotLive(ctx, id, now, maxAttempts)
}

// whyNotLive explains why a conditional update on a code changed nothing:
// another caller used, replaced or exhausted it in the meantime.
func (s *Store) whyNotLive(ctx context.Context, id int64, now time.Time, maxAttempts int) error {
	var row codeRow
	if err := s.db.NewSelect().Model(&row).Where("id = ?", id).Scan(ctx); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNoCode
		}
		return fmt.Errorf("reload code: %w", err)
	}
	if err := row.usable(now, maxAttempts); err != nil {
		return err
	}
	// Still usable on reload: the update lost a race it should not
	// lose. Fail closed.
	return ErrNoCode
}

// PruneCodes deletes codes that expired before before and returns how many.
func (s *Store) PruneCodes(ctx context.Context, before time.Time) (int, error) {
	n, err := s.deleteBefore(ctx, (*codeRow)(nil), "expires_at", before)
	if err != nil {
		return 0, fmt.Errorf("prune codes: %w", err)
	}
	return n, nil
}
