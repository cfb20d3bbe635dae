package authstore

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestOpenRejects(t *testing.T) {
	tests := []struct {
		name    string
		opts    Options
		wantMsg string
	}{
		{name: "unknown driver", opts: Options{Driver: "mysql", DSN: "x"}, wantMsg: `unknown driver "mysql"`},
		{name: "empty DSN", opts: Options{Driver: "sqlite"}, wantMsg: "empty DSN"},
		{name: "postgres DSN with another scheme", opts: Options{Driver: "postgres", DSN: "mysql://u:hunter2@h/db"}, wantMsg: "scheme"},
		{name: "unparsable postgres DSN", opts: Options{Driver: "postgres", DSN: "postgres://u:hunter2@h:port/db"}, wantMsg: "invalid postgres DSN"},
		{name: "postgres DSN pgdriver refuses", opts: Options{Driver: "postgres", DSN: "postgres://u:hunter2@127.0.0.1:1/db?sslmode=bogus"}, wantMsg: "invalid postgres DSN"},
		{name: "unreachable postgres", opts: Options{Driver: "postgres", DSN: "postgres://u:hunter2@127.0.0.1:1/db?sslmode=disable&dial_timeout=1s"}, wantMsg: "ping postgres"},
		{name: "sqlite file URI with a remote host", opts: Options{Driver: "sqlite", DSN: "file://example.com/x.db"}, wantMsg: "unsupported host"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Open(context.Background(), tt.opts)
			if err == nil {
				_ = s.Close()
				t.Fatal("Open succeeded, want an error")
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("error %q does not mention %q", err, tt.wantMsg)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("error %q repeats the password", err)
			}
		})
	}
}

func TestSQLiteOpen(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		dsn  string
		file string // database file that must exist afterwards; "" for memory
		// want maps a pragma to its expected value on a pooled connection.
		want map[string]string
	}{
		{
			name: "plain path in a missing directory",
			dsn:  filepath.Join(dir, "a", "b", "gatehouse.db"),
			file: filepath.Join(dir, "a", "b", "gatehouse.db"),
			want: map[string]string{"journal_mode": "wal", "busy_timeout": "5000", "foreign_keys": "1", "synchronous": "1"},
		},
		{
			name: "file URI",
			dsn:  "file:" + filepath.Join(dir, "uri", "gatehouse.db"),
			file: filepath.Join(dir, "uri", "gatehouse.db"),
			want: map[string]string{"journal_mode": "wal", "busy_timeout": "5000", "foreign_keys": "1", "synchronous": "1"},
		},
		{
			name: "file URI keeps its own pragma",
			dsn:  "file:" + filepath.Join(dir, "own", "gatehouse.db") + "?_pragma=busy_timeout(9000)",
			file: filepath.Join(dir, "own", "gatehouse.db"),
			want: map[string]string{"journal_mode": "wal", "busy_timeout": "9000"},
		},
		{
			name: "in memory",
			dsn:  ":memory:",
			want: map[string]string{"journal_mode": "memory", "foreign_keys": "1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			s := migrated(t, Options{Driver: "sqlite", DSN: tt.dsn})
			for pragma, want := range tt.want {
				var got string
				if err := s.db.QueryRowContext(ctx, "PRAGMA "+pragma).Scan(&got); err != nil {
					t.Fatalf("PRAGMA %s: %v", pragma, err)
				}
				if strings.ToLower(got) != want {
					t.Errorf("PRAGMA %s = %s, want %s", pragma, got, want)
				}
			}
			if tt.file != "" {
				fi, err := os.Stat(filepath.Dir(tt.file))
				if err != nil {
					t.Fatalf("database directory: %v", err)
				}
				if perm := fi.Mode().Perm(); perm != 0o700 {
					t.Errorf("database directory mode %o, want 700", perm)
				}
				if _, err := os.Stat(tt.file); err != nil {
					t.Fatalf("database file: %v", err)
				}
			}
			// The schema is usable through the pool.
			if _, err := s.EnsureUser(ctx, "a@example.com", time.Now()); err != nil {
				t.Fatalf("EnsureUser: %v", err)
			}
		})
	}
}

// TestSQLiteTransactionsAreImmediate checks that a write transaction holds
// the write lock from BEGIN, so a second writer waits (busy_timeout)
// instead of failing when it upgrades.
func TestSQLiteTransactionsAreImmediate(t *testing.T) {
	ctx := context.Background()
	opts := newSQLiteDB(t)
	a := migrated(t, opts)
	b := open(t, opts)
	tx, err := a.db.BeginTx(ctx, nil)
	check(t, "BeginTx", err)
	defer func() { _ = tx.Rollback() }()

	// While a's transaction is open, b cannot get the write lock; with a
	// deferred BEGIN, a would not hold it yet and b's write would succeed.
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	conn, err := b.db.Conn(ctx)
	check(t, "Conn", err)
	defer func() { _ = conn.Close() }()
	_, err = conn.ExecContext(ctx, "PRAGMA busy_timeout = 0")
	check(t, "busy_timeout", err)
	_, err = conn.ExecContext(short, "INSERT INTO rate_counters (rate_key, window_start, hits) VALUES ('k', 'w', 1)")
	if err == nil {
		t.Fatal("second writer got the lock while an immediate transaction was open")
	}
	check(t, "Rollback", tx.Rollback())
	_, err = conn.ExecContext(ctx, "INSERT INTO rate_counters (rate_key, window_start, hits) VALUES ('k', 'w', 1)")
	check(t, "write after rollback", err)
}

func TestCleanText(t *testing.T) {
	tests := []struct {
		name string
		in   string
		max  int
		want string
	}{
		{name: "short", in: "abc", max: 5, want: "abc"},
		{name: "cut", in: "abcdef", max: 3, want: "abc"},
		{name: "cut on rune boundary", in: "aé", max: 2, want: "a"},
		{name: "NUL removed", in: "a\x00b", max: 5, want: "ab"},
		{name: "invalid UTF-8 replaced", in: "a\xffb", max: 10, want: "a\uFFFDb"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := cleanText(tt.in, tt.max); got != tt.want {
				t.Fatalf("cleanText(%q, %d) = %q, want %q", tt.in, tt.max, got, tt.want)
			}
		})
	}
}
