// Package storetest opens a real, migrated store for tests: a fresh SQLite
// file in the test's temporary directory, closed when the test ends.
package storetest

import (
	"context"
	"path/filepath"
	"testing"

	"gatehouse/authstore"
)

// SQLite opens and migrates a new SQLite store for t.
func SQLite(t testing.TB) *authstore.Store {
	t.Helper()
	return SQLiteAt(t, filepath.Join(t.TempDir(), "gatehouse.db"))
}

// SQLiteAt opens and migrates the SQLite store at path (a test that
// reopens a file, as a restarted process would).
func SQLiteAt(t testing.TB, path string) *authstore.Store {
	t.Helper()
	ctx := context.Background()
	st, err := authstore.Open(ctx, authstore.Options{Driver: "sqlite", DSN: path})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return st
}
