package wiring

import (
	"strings"
	"testing"

	"gatehouse/config"
)

func TestDatabaseNameNamesTheFileAndNeverAPassword(t *testing.T) {
	for _, tc := range []struct {
		driver, dsn, want string
	}{
		{"sqlite", "/var/lib/gatehouse/gatehouse.db", "SQLite database /var/lib/gatehouse/gatehouse.db"},
		{"sqlite", "file:/data/g.db?_pragma=busy_timeout(5000)", "SQLite database /data/g.db"},
		{"postgres", "postgres://gate:s3cret@db.internal:5432/gatehouse?sslmode=verify-full&password=s3cret", "PostgreSQL database postgres://gate@db.internal:5432/gatehouse"},
		{"postgres", "host=db user=gate password=s3cret", "PostgreSQL database"},
	} {
		cfg := &config.Config{}
		cfg.Database.Driver, cfg.Database.DSN = tc.driver, tc.dsn
		got := DatabaseName(cfg)
		if got != tc.want {
			t.Errorf("DatabaseName(%s %q) = %q, want %q", tc.driver, tc.dsn, got, tc.want)
		}
		if strings.Contains(got, "s3cret") {
			t.Errorf("DatabaseName leaks the password: %q", got)
		}
	}
}
