// Package pgtest gives each test an empty PostgreSQL schema of its own on
// the server named by GATEHOUSE_TEST_POSTGRES_DSN, so tests of several
// packages can share one server without seeing each other's tables.
package pgtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"testing"

	"github.com/uptrace/bun/driver/pgdriver"
)

// EnvDSN names the environment variable holding the server's URL.
const EnvDSN = "GATEHOUSE_TEST_POSTGRES_DSN"

// ServerDSN returns the server's URL, or skips the test when it is unset.
func ServerDSN(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv(EnvDSN)
	if dsn == "" {
		t.Skipf("%s not set; set it to a PostgreSQL URL (CI does) to run the PostgreSQL cases", EnvDSN)
	}
	return dsn
}

// Schema creates an empty schema named prefix_<random> on the server at dsn
// and returns dsn pointed at it (search_path, and application_name to tell
// connections apart). The schema is dropped when the test ends, after the
// cleanups registered later have run.
func Schema(t testing.TB, dsn, prefix string) string {
	t.Helper()
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	schema := prefix + "_" + hex.EncodeToString(b)
	admin := sql.OpenDB(pgdriver.NewConnector(pgdriver.WithDSN(dsn)))
	if _, err := admin.ExecContext(context.Background(), "CREATE SCHEMA "+schema); err != nil {
		_ = admin.Close()
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		defer admin.Close()
		if _, err := admin.ExecContext(context.Background(), "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatalf("parse %s: %v", EnvDSN, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	q.Set("application_name", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// New is Schema on the server from the environment; it skips without one.
func New(t testing.TB, prefix string) string {
	t.Helper()
	return Schema(t, ServerDSN(t), prefix)
}
