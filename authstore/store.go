// Package authstore is Gatehouse's persistent store: users, sessions and
// service tokens (with the feed of their revocations), login codes,
// rate-limit counters, audit events, the server secret and the assertion
// signing keys, kept in SQLite or PostgreSQL through bun.
//
// Every method takes the caller's context first. Where a decision depends on
// the time, the caller passes now; all times are stored in UTC with
// microsecond precision. Emails are stored exactly as given: callers
// normalize them first.
package authstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/uptrace/bun"
)

// Sentinel errors. Compare with errors.Is: the store wraps them with the
// operation that failed.
var (
	// ErrNotFound means the user, session, service token or signing key
	// does not exist (or, for a token looked up by its hash, has expired).
	ErrNotFound = errors.New("not found")
	// ErrAmbiguous means a session ID prefix matches more than one session.
	ErrAmbiguous = errors.New("ambiguous")
	// ErrNoCode means the address has no live code: none was sent, it was
	// used, or a newer one replaced it.
	ErrNoCode = errors.New("no live code")
	// ErrCodeExpired means the newest code is past its expiry.
	ErrCodeExpired = errors.New("code expired")
	// ErrWrongCode means the code did not match; the attempt was counted.
	ErrWrongCode = errors.New("wrong code")
	// ErrTooManyAttempts means the code was void after too many wrong tries.
	ErrTooManyAttempts = errors.New("too many attempts")
	// ErrSchemaTooNew means the database holds a migration this binary does
	// not know: a newer Gatehouse migrated it.
	ErrSchemaTooNew = errors.New("database schema is newer than this binary")
)

const (
	driverSQLite   = "sqlite"
	driverPostgres = "postgres"

	// userAgentMax is the most bytes of a User-Agent kept with a session or
	// an event.
	userAgentMax = 512
	// fieldMax bounds the other free-text fields callers pass in.
	fieldMax = 1024
)

// Options configure Open. Driver and DSN are required.
type Options struct {
	// Driver is "sqlite" or "postgres".
	Driver string
	// DSN is a file path (or "file:" URI) for SQLite, a postgres:// URL for
	// PostgreSQL.
	DSN string
	// MaxOpenConns bounds the pool; 0 means 4 for SQLite, 20 for PostgreSQL.
	// An in-memory SQLite database (":memory:") always uses one connection
	// and ignores the pool options.
	MaxOpenConns int
	// MaxIdleConns bounds idle pooled connections; 0 means database/sql's
	// default.
	MaxIdleConns int
	// ConnMaxLifetime closes connections older than this; 0 means never.
	ConnMaxLifetime time.Duration
	// Logger receives the revocation watcher's start (info) and its
	// trouble (warnings). nil discards.
	Logger *slog.Logger
	// Now is the clock used where the caller passes no time: an Event
	// without Time, when a migration or the secret was created, when a
	// session was revoked. nil means time.Now.
	Now func() time.Time
}

// Store is the persistent store. It is safe for concurrent use; several
// Store values (in one process or several) may share one database.
type Store struct {
	db      *bun.DB
	dialect string
	log     *slog.Logger
	now     func() time.Time
}

// Open connects to the database and checks that it answers. It does not
// migrate: call Migrate.
func Open(ctx context.Context, opts Options) (*Store, error) {
	if opts.DSN == "" {
		return nil, errors.New("open store: empty DSN")
	}
	var (
		db  *bun.DB
		err error
	)
	switch opts.Driver {
	case driverSQLite:
		db, err = openSQLite(opts)
	case driverPostgres:
		db, err = openPostgres(opts)
	default:
		return nil, fmt.Errorf("open store: unknown driver %q (want sqlite or postgres)", opts.Driver)
	}
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open store: ping %s: %w", opts.Driver, err)
	}
	s := &Store{
		db:      db,
		dialect: opts.Driver,
		log:     opts.Logger,
		now:     opts.Now,
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s, nil
}

// Close closes the connection pool.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close store: %w", err)
	}
	return nil
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		return fmt.Errorf("ping store: %w", err)
	}
	return nil
}

// Dialect returns "sqlite" or "postgres".
func (s *Store) Dialect() string { return s.dialect }

func (s *Store) postgres() bool { return s.dialect == driverPostgres }

// inTx runs fn in a transaction. On SQLite the DSN makes every transaction
// BEGIN IMMEDIATE, so it takes the write lock up front instead of failing
// with SQLITE_BUSY when it later upgrades from reading to writing.
func (s *Store) inTx(ctx context.Context, fn func(tx bun.Tx) error) error {
	return s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		return fn(tx)
	})
}

// utc drops the location and monotonic reading, and truncates to what both
// databases keep, so a value read back equals the value written.
func utc(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC().Truncate(time.Microsecond)
}

// cleanText makes caller-supplied text storable in both databases: valid
// UTF-8, no NUL, at most max bytes (cut on a rune boundary).
func cleanText(s string, max int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.ReplaceAll(s, "\x00", "")
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

// notFound translates sql.ErrNoRows into ErrNotFound.
func notFound(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	return err
}

// affected returns how many rows a statement changed.
// deleteBefore deletes the rows of model whose column is before t and
// returns how many. column is always a constant of this package.
func (s *Store) deleteBefore(ctx context.Context, model any, column string, t time.Time) (int, error) {
	res, err := s.db.NewDelete().Model(model).
		Where("? < ?", bun.Ident(column), utc(t)).
		Exec(ctx)
	if err != nil {
		return 0, err
	}
	return affected(res)
}

func affected(res sql.Result) (int, error) {
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("rows affected: %w", err)
	}
	return int(n), nil
}
