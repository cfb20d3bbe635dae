package authstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"time"

	"github.com/uptrace/bun"

	"gatehouse/migrations"
)

// migrateLockKey is the PostgreSQL advisory lock that serializes Migrate
// across replicas ("gatehous" in ASCII).
const migrateLockKey int64 = 0x6761746568_6f7573

// MigrationState is one migration and whether the database has it.
type MigrationState struct {
	Name      string
	Applied   bool
	AppliedAt time.Time // zero when not applied
}

type migrationRow struct {
	bun.BaseModel `bun:"table:gatehouse_migrations"`

	Name      string    `bun:"name,pk"`
	AppliedAt time.Time `bun:"applied_at"`
}

type migration struct {
	name string
	up   string
}

// known returns the migrations embedded in this binary, in order.
func (s *Store) known() ([]migration, error) {
	fsys, err := migrations.FS(s.dialect)
	if err != nil {
		return nil, err
	}
	files, err := fs.Glob(fsys, "*.up.sql")
	if err != nil {
		return nil, fmt.Errorf("list migrations: %w", err)
	}
	slices.Sort(files)
	out := make([]migration, 0, len(files))
	for _, f := range files {
		b, err := fs.ReadFile(fsys, f)
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", f, err)
		}
		out = append(out, migration{name: strings.TrimSuffix(f, ".up.sql"), up: string(b)})
	}
	return out, nil
}

func (s *Store) createMigrationsTable() string {
	if s.postgres() {
		return `CREATE TABLE IF NOT EXISTS gatehouse_migrations (
    name       TEXT        NOT NULL PRIMARY KEY,
    applied_at TIMESTAMPTZ NOT NULL
)`
	}
	return `CREATE TABLE IF NOT EXISTS gatehouse_migrations (
    name       TEXT NOT NULL PRIMARY KEY,
    applied_at TEXT NOT NULL
)`
}

// Migrate applies the pending migrations in one transaction. On PostgreSQL
// the transaction first takes an advisory lock, on SQLite the write lock
// (BEGIN IMMEDIATE), so replicas starting together wait for each other and
// all succeed. A database that has a migration this binary does not know is
// refused with ErrSchemaTooNew and left unchanged.
func (s *Store) Migrate(ctx context.Context) error {
	known, err := s.known()
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	err = s.inTx(ctx, func(tx bun.Tx) error {
		if s.postgres() {
			if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock(?)", migrateLockKey); err != nil {
				return fmt.Errorf("lock: %w", err)
			}
		}
		if _, err := tx.ExecContext(ctx, s.createMigrationsTable()); err != nil {
			return fmt.Errorf("create migrations table: %w", err)
		}
		var applied []migrationRow
		if err := tx.NewSelect().Model(&applied).Scan(ctx); err != nil {
			return fmt.Errorf("read applied migrations: %w", err)
		}
		done := map[string]bool{}
		for _, a := range applied {
			done[a.Name] = true
		}
		if err := checkKnown(applied, known); err != nil {
			return err
		}
		for _, m := range known {
			if done[m.name] {
				continue
			}
			// The raw *sql.Tx keeps bun from reading '?' in the SQL as
			// placeholders.
			if _, err := tx.Tx.ExecContext(ctx, m.up); err != nil {
				return fmt.Errorf("apply %s: %w", m.name, err)
			}
			row := migrationRow{Name: m.name, AppliedAt: utc(s.now())}
			if _, err := tx.NewInsert().Model(&row).Exec(ctx); err != nil {
				return fmt.Errorf("record %s: %w", m.name, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

// checkKnown returns ErrSchemaTooNew when applied holds a migration that is
// not in known.
func checkKnown(applied []migrationRow, known []migration) error {
	var unknown []string
	for _, a := range applied {
		if !slices.ContainsFunc(known, func(m migration) bool { return m.name == a.Name }) {
			unknown = append(unknown, a.Name)
		}
	}
	if len(unknown) > 0 {
		return fmt.Errorf("%w: unknown migrations %s", ErrSchemaTooNew, strings.Join(unknown, ", "))
	}
	return nil
}

// MigrationStatus lists the migrations this binary knows, in order, and
// whether each is applied. Migrations applied by a newer binary follow,
// marked applied. It changes nothing in the database.
func (s *Store) MigrationStatus(ctx context.Context) ([]MigrationState, error) {
	known, err := s.known()
	if err != nil {
		return nil, fmt.Errorf("migration status: %w", err)
	}
	exists, err := s.migrationsTableExists(ctx)
	if err != nil {
		return nil, fmt.Errorf("migration status: %w", err)
	}
	var applied []migrationRow
	if exists {
		if err := s.db.NewSelect().Model(&applied).Order("name").Scan(ctx); err != nil {
			return nil, fmt.Errorf("migration status: read applied: %w", err)
		}
	}
	at := map[string]time.Time{}
	for _, a := range applied {
		at[a.Name] = a.AppliedAt.UTC()
	}
	out := make([]MigrationState, 0, len(known))
	for _, m := range known {
		t, ok := at[m.name]
		out = append(out, MigrationState{Name: m.name, Applied: ok, AppliedAt: t})
		delete(at, m.name)
	}
	for _, a := range applied {
		if t, ok := at[a.Name]; ok {
			out = append(out, MigrationState{Name: a.Name, Applied: true, AppliedAt: t})
		}
	}
	return out, nil
}

func (s *Store) migrationsTableExists(ctx context.Context) (bool, error) {
	var name sql.NullString
	var err error
	if s.postgres() {
		err = s.db.QueryRowContext(ctx, "SELECT to_regclass('gatehouse_migrations')::text").Scan(&name)
	} else {
		err = s.db.QueryRowContext(ctx,
			"SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'gatehouse_migrations'").Scan(&name)
		if errors.Is(err, sql.ErrNoRows) {
			return false, nil
		}
	}
	if err != nil {
		return false, fmt.Errorf("find migrations table: %w", err)
	}
	return name.Valid, nil
}
