package migrations

import (
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"testing"
)

func names(t *testing.T, dialect string) []string {
	t.Helper()
	fsys, err := FS(dialect)
	if err != nil {
		t.Fatalf("FS(%q): %v", dialect, err)
	}
	matches, err := fs.Glob(fsys, "*.sql")
	if err != nil {
		t.Fatalf("glob %s: %v", dialect, err)
	}
	if len(matches) == 0 {
		t.Fatalf("no migrations for %s", dialect)
	}
	return matches
}

func TestDialectsHaveSameFiles(t *testing.T) {
	sqlite, postgres := names(t, "sqlite"), names(t, "postgres")
	if !slices.Equal(sqlite, postgres) {
		t.Fatalf("file names differ:\nsqlite:   %v\npostgres: %v", sqlite, postgres)
	}
}

func TestFileNamesAndPairs(t *testing.T) {
	for _, dialect := range []string{"sqlite", "postgres"} {
		t.Run(dialect, func(t *testing.T) {
			files := names(t, dialect)
			for _, name := range files {
				var base string
				switch {
				case strings.HasSuffix(name, ".up.sql"):
					base = strings.TrimSuffix(name, ".up.sql")
					if !slices.Contains(files, base+".down.sql") {
						t.Errorf("%s has no matching .down.sql", name)
					}
				case strings.HasSuffix(name, ".down.sql"):
					base = strings.TrimSuffix(name, ".down.sql")
					if !slices.Contains(files, base+".up.sql") {
						t.Errorf("%s has no matching .up.sql", name)
					}
				default:
					t.Errorf("%s: want NNNN_name.up.sql or NNNN_name.down.sql", name)
					continue
				}
				if len(base) < 6 || base[4] != '_' || strings.Trim(base[:4], "0123456789") != "" {
					t.Errorf("%s: want a four-digit number, '_' and a name", name)
				}
			}
		})
	}
}

func TestFS(t *testing.T) {
	tests := []struct {
		name    string
		dialect string
		wantErr bool
	}{
		{name: "sqlite", dialect: "sqlite"},
		{name: "postgres", dialect: "postgres"},
		{name: "unknown", dialect: "mysql", wantErr: true},
		{name: "empty", dialect: "", wantErr: true},
		{name: "path escape", dialect: "../migrations", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fsys, err := FS(tt.dialect)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("FS(%q) = nil error, want an error", tt.dialect)
				}
				return
			}
			if err != nil {
				t.Fatalf("FS(%q): %v", tt.dialect, err)
			}
			if _, err := fs.Stat(fsys, "0001_init.up.sql"); err != nil {
				t.Fatalf("0001_init.up.sql missing: %v", err)
			}
		})
	}
}

// TestNumbersFollowEachOther: migrations are numbered 0001, 0002, … with
// no gap and no number used twice, so every store applies the same
// sequence.
func TestNumbersFollowEachOther(t *testing.T) {
	for _, dialect := range []string{"sqlite", "postgres"} {
		t.Run(dialect, func(t *testing.T) {
			var ups []string
			for _, name := range names(t, dialect) {
				if strings.HasSuffix(name, ".up.sql") {
					ups = append(ups, name)
				}
			}
			slices.Sort(ups)
			for i, name := range ups {
				if want := fmt.Sprintf("%04d_", i+1); !strings.HasPrefix(name, want) {
					t.Errorf("migration %d is %s, want it numbered %s", i+1, name, want)
				}
			}
		})
	}
}

// TestTokensAndKeysMigration: 0003 creates the service token and signing
// key tables in both dialects, and its down file drops them.
func TestTokensAndKeysMigration(t *testing.T) {
	for _, dialect := range []string{"sqlite", "postgres"} {
		t.Run(dialect, func(t *testing.T) {
			fsys, err := FS(dialect)
			if err != nil {
				t.Fatal(err)
			}
			up, err := fs.ReadFile(fsys, "0003_tokens_keys.up.sql")
			if err != nil {
				t.Fatal(err)
			}
			down, err := fs.ReadFile(fsys, "0003_tokens_keys.down.sql")
			if err != nil {
				t.Fatal(err)
			}
			for _, table := range []string{"service_tokens", "signing_keys"} {
				if !strings.Contains(string(up), "CREATE TABLE "+table+" (") {
					t.Errorf("up does not create %s", table)
				}
				if !strings.Contains(string(down), "DROP TABLE IF EXISTS "+table+";") {
					t.Errorf("down does not drop %s", table)
				}
			}
		})
	}
}
