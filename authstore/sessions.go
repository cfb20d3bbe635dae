package authstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/uptrace/bun"
)

// Session is a signed-in browser. The cookie token itself is never stored,
// only its hash.
type Session struct {
	ID         string // opaque random ID, safe to show; not the token
	TokenHash  []byte // SHA-256 of the cookie token, computed by the caller
	Email      string
	CreatedAt  time.Time
	ExpiresAt  time.Time // absolute expiry
	LastSeenAt time.Time
	IP         string
	UserAgent  string // at most 512 bytes are kept
}

type sessionRow struct {
	bun.BaseModel `bun:"table:sessions"`

	ID         string    `bun:"id,pk"`
	TokenHash  []byte    `bun:"token_hash"`
	Email      string    `bun:"email"`
	CreatedAt  time.Time `bun:"created_at"`
	ExpiresAt  time.Time `bun:"expires_at"`
	LastSeenAt time.Time `bun:"last_seen_at"`
	IP         string    `bun:"ip"`
	UserAgent  string    `bun:"user_agent"`
}

func (r sessionRow) session() Session {
	return Session{
		ID:         r.ID,
		TokenHash:  r.TokenHash,
		Email:      r.Email,
		CreatedAt:  utc(r.CreatedAt),
		ExpiresAt:  utc(r.ExpiresAt),
		LastSeenAt: utc(r.LastSeenAt),
		IP:         r.IP,
		UserAgent:  r.UserAgent,
	}
}

// CreateSession stores sess and returns it as stored: with a random ID if
// sess.ID was empty, LastSeenAt defaulting to CreatedAt, times in UTC and
// the User-Agent cut to 512 bytes. It does not check the user: callers
// refuse disabled users before creating a session.
func (s *Store) CreateSession(ctx context.Context, sess Session) (Session, error) {
	switch {
	case sess.Email == "":
		return Session{}, fmt.Errorf("create session: %w", errEmptyEmail)
	case len(sess.TokenHash) == 0:
		return Session{}, errors.New("create session: empty token hash")
	case !sess.ExpiresAt.After(sess.CreatedAt):
		return Session{}, errors.New("create session: expiry not after creation")
	}
	if sess.ID == "" {
		id, err := newSessionID()
		if err != nil {
			return Session{}, fmt.Errorf("create session: %w", err)
		}
		sess.ID = id
	}
	if sess.LastSeenAt.IsZero() {
		sess.LastSeenAt = sess.CreatedAt
	}
	row := sessionRow{
		ID:         sess.ID,
		TokenHash:  sess.TokenHash,
		Email:      sess.Email,
		CreatedAt:  utc(sess.CreatedAt),
		ExpiresAt:  utc(sess.ExpiresAt),
		LastSeenAt: utc(sess.LastSeenAt),
		IP:         cleanText(sess.IP, fieldMax),
		UserAgent:  cleanText(sess.UserAgent, userAgentMax),
	}
	if _, err := s.db.NewInsert().Model(&row).Exec(ctx); err != nil {
		return Session{}, fmt.Errorf("create session: %w", err)
	}
	return row.session(), nil
}

// newSessionID returns 16 random bytes in hex.
func newSessionID() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("session id: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// SessionByTokenHash returns the session whose token hashes to tokenHash, or
// ErrNotFound. It does not judge expiry: the caller compares ExpiresAt and
// LastSeenAt with its clock.
func (s *Store) SessionByTokenHash(ctx context.Context, tokenHash []byte) (Session, error) {
	if len(tokenHash) == 0 {
		return Session{}, fmt.Errorf("session by token: %w", ErrNotFound)
	}
	var row sessionRow
	err := s.db.NewSelect().Model(&row).Where("token_hash = ?", tokenHash).Limit(1).Scan(ctx)
	if err != nil {
		return Session{}, fmt.Errorf("session by token: %w", notFound(err))
	}
	return row.session(), nil
}

// SessionByIDPrefix returns the session whose ID is prefix, or else the one
// session whose ID starts with prefix: ErrNotFound when none does,
// ErrAmbiguous when several do. The comparison is exact (case-sensitive)
// on both databases; LIKE's wildcards in prefix match only themselves.
func (s *Store) SessionByIDPrefix(ctx context.Context, prefix string) (Session, error) {
	if prefix == "" {
		return Session{}, errors.New("session by id prefix: empty prefix")
	}
	var rows []sessionRow
	err := s.db.NewSelect().Model(&rows).
		Where("id LIKE ? ESCAPE '!'", likePrefix(prefix)).
		// SQLite's LIKE ignores ASCII case; this makes the match exact.
		Where("substr(id, 1, ?) = ?", utf8.RuneCountInString(prefix), prefix).
		OrderExpr("CASE WHEN id = ? THEN 0 ELSE 1 END, id", prefix).
		Limit(2).
		Scan(ctx)
	switch {
	case err != nil:
		return Session{}, fmt.Errorf("session by id prefix: %w", err)
	case len(rows) == 0:
		return Session{}, fmt.Errorf("session by id prefix: %w", ErrNotFound)
	case len(rows) > 1 && rows[0].ID != prefix:
		return Session{}, fmt.Errorf("session by id prefix: %w", ErrAmbiguous)
	}
	return rows[0].session(), nil
}

// likePrefix is the LIKE pattern (escape character '!') matching the
// strings that start with prefix.
func likePrefix(prefix string) string {
	r := strings.NewReplacer("!", "!!", "%", "!%", "_", "!_")
	return r.Replace(prefix) + "%"
}

// TouchSession moves the session's LastSeenAt forward to lastSeen; it never
// moves it back. ErrNotFound if the session does not exist.
func (s *Store) TouchSession(ctx context.Context, id string, lastSeen time.Time) error {
	lastSeen = utc(lastSeen)
	res, err := s.db.NewUpdate().Model((*sessionRow)(nil)).
		Set("last_seen_at = ?", lastSeen).
		Where("id = ?", id).
		Where("last_seen_at < ?", lastSeen).
		Exec(ctx)
	if err != nil {
		return fmt.Errorf("touch session: %w", err)
	}
	n, err := affected(res)
	if err != nil {
		return fmt.Errorf("touch session: %w", err)
	}
	if n == 1 {
		return nil
	}
	exists, err := s.db.NewSelect().Model((*sessionRow)(nil)).Where("id = ?", id).Exists(ctx)
	if err != nil {
		return fmt.Errorf("touch session: %w", err)
	}
	if !exists {
		return fmt.Errorf("touch session: %w", ErrNotFound)
	}
	return nil
}

// DeleteSession deletes one session (ErrNotFound if absent) and announces it
// to WatchRevocations.
func (s *Store) DeleteSession(ctx context.Context, id string) error {
	ids, err := s.deleteSessionsTx(ctx, func(q *bun.DeleteQuery) *bun.DeleteQuery {
		return q.Where("id = ?", id)
	})
	if err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	if len(ids) == 0 {
		return fmt.Errorf("delete session: %w", ErrNotFound)
	}
	return nil
}

// ListSessions returns the sessions of email, or of everyone when email is
// "", newest first. Expired sessions are listed until they are pruned.
func (s *Store) ListSessions(ctx context.Context, email string) ([]Session, error) {
	var rows []sessionRow
	q := s.db.NewSelect().Model(&rows).OrderExpr("created_at DESC, id")
	if email != "" {
		q = q.Where("email = ?", email)
	}
	if err := q.Scan(ctx); err != nil {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	out := make([]Session, len(rows))
	for i, r := range rows {
		out[i] = r.session()
	}
	return out, nil
}

// DeleteUserSessions deletes every session of email except exceptID (""
// keeps none) and returns how many it deleted; they are announced to
// WatchRevocations.
func (s *Store) DeleteUserSessions(ctx context.Context, email string, exceptID string) (int, error) {
	ids, err := s.deleteSessionsTx(ctx, func(q *bun.DeleteQuery) *bun.DeleteQuery {
		q = q.Where("email = ?", email)
		if exceptID != "" {
			q = q.Where("id <> ?", exceptID)
		}
		return q
	})
	if err != nil {
		return 0, fmt.Errorf("delete user sessions: %w", err)
	}
	return len(ids), nil
}

// DeleteExpiredSessions deletes sessions past their absolute expiry at now
// or, when idle > 0, not seen for idle; it returns how many. They are
// announced to WatchRevocations like any other deletion.
func (s *Store) DeleteExpiredSessions(ctx context.Context, now time.Time, idle time.Duration) (int, error) {
	now = utc(now)
	ids, err := s.deleteSessionsTx(ctx, func(q *bun.DeleteQuery) *bun.DeleteQuery {
		return q.WhereGroup(" AND ", func(q *bun.DeleteQuery) *bun.DeleteQuery {
			q = q.Where("expires_at <= ?", now)
			if idle > 0 {
				q = q.WhereOr("last_seen_at <= ?", now.Add(-idle))
			}
			return q
		})
	})
	if err != nil {
		return 0, fmt.Errorf("delete expired sessions: %w", err)
	}
	return len(ids), nil
}

// CountSessions returns how many sessions are not past their absolute
// expiry at now.
func (s *Store) CountSessions(ctx context.Context, now time.Time) (int, error) {
	n, err := s.db.NewSelect().Model((*sessionRow)(nil)).
		Where("expires_at > ?", utc(now)).
		Count(ctx)
	if err != nil {
		return 0, fmt.Errorf("count sessions: %w", err)
	}
	return int(n), nil
}

// deleteSessionsTx deletes the sessions that where selects, and announces
// them, in a transaction of its own.
func (s *Store) deleteSessionsTx(ctx context.Context, where func(*bun.DeleteQuery) *bun.DeleteQuery) ([]string, error) {
	var ids []string
	err := s.inTx(ctx, func(tx bun.Tx) error {
		var err error
		ids, err = s.deleteSessionsWhere(ctx, tx, where)
		return err
	})
	if err != nil {
		return nil, err
	}
	return ids, nil
}

// deleteSessions deletes the sessions matching a simple condition inside tx
// and announces them in the revocation feed when tx commits.
func (s *Store) deleteSessions(ctx context.Context, tx bun.Tx, cond string, args ...any) ([]string, error) {
	return s.deleteSessionsWhere(ctx, tx, func(q *bun.DeleteQuery) *bun.DeleteQuery {
		return q.Where(cond, args...)
	})
}

func (s *Store) deleteSessionsWhere(ctx context.Context, tx bun.Tx, where func(*bun.DeleteQuery) *bun.DeleteQuery) ([]string, error) {
	var ids []string
	q := where(tx.NewDelete().Model((*sessionRow)(nil))).Returning("id")
	if err := q.Scan(ctx, &ids); err != nil {
		return nil, fmt.Errorf("delete sessions: %w", err)
	}
	if err := s.recordRevoked(ctx, tx, ids); err != nil {
		return nil, err
	}
	return ids, nil
}
