package authstore

import (
	"context"
	"io/fs"
	"slices"
	"strings"
	"testing"

	"gatehouse/migrations"
)

// tables lists the tables of the store's database (its schema on
// PostgreSQL), sorted.
func tables(t *testing.T, s *Store) []string {
	t.Helper()
	q := "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
	if s.postgres() {
		q = "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY tablename"
	}
	var names []string
	rows, err := s.db.QueryContext(context.Background(), q)
	check(t, "list tables", err)
	defer rows.Close()
	for rows.Next() {
		var n string
		check(t, "scan table name", rows.Scan(&n))
		names = append(names, n)
	}
	check(t, "list tables", rows.Err())
	return names
}

// testDownMigrations: the tables the migrations create are the ones the
// code uses, and applying every .down.sql, newest first, drops them all.
func testDownMigrations(t *testing.T, opts Options) {
	ctx := context.Background()
	s := migrated(t, opts)
	want := []string{"events", "gatehouse_migrations", "login_codes", "rate_counters", "revocations",
		"server_secret", "service_tokens", "sessions", "signing_keys", "users"}
	if got := tables(t, s); !slices.Equal(got, want) {
		t.Fatalf("tables after Migrate = %v, want %v", got, want)
	}
	fsys, err := migrations.FS(s.dialect)
	check(t, "migrations.FS", err)
	downs, err := fs.Glob(fsys, "*.down.sql")
	check(t, "glob", err)
	slices.Sort(downs)
	slices.Reverse(downs)
	for _, f := range downs {
		b, err := fs.ReadFile(fsys, f)
		check(t, "read "+f, err)
		if _, err := s.db.DB.ExecContext(ctx, string(b)); err != nil {
			t.Fatalf("apply %s: %v", f, err)
		}
	}
	if got := tables(t, s); !slices.Equal(got, []string{"gatehouse_migrations"}) {
		t.Fatalf("tables left after every down migration: %v", strings.Join(got, ", "))
	}
}
