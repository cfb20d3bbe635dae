package authstore

import (
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
	"github.com/uptrace/bun/dialect/sqlitedialect"
	"github.com/uptrace/bun/driver/pgdriver"
	_ "modernc.org/sqlite" // registers the pure-Go "sqlite" driver
)

const (
	defaultSQLiteConns   = 4
	defaultPostgresConns = 20
)

func openSQLite(opts Options) (*bun.DB, error) {
	dsn, memory, err := sqliteDSN(opts.DSN)
	if err != nil {
		return nil, err
	}
	sqldb, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open sqlite: %w", err)
	}
	if memory {
		// An in-memory database lives and dies with its one connection:
		// never open a second, never close the first.
		sqldb.SetMaxOpenConns(1)
		sqldb.SetMaxIdleConns(1)
	} else {
		configurePool(sqldb, opts, defaultSQLiteConns)
	}
	return bun.NewDB(sqldb, sqlitedialect.New()), nil
}

// sqliteDSN turns the configured path (or "file:" URI) into a modernc.org/sqlite
// DSN with Gatehouse's pragmas and immediate transactions, creating the
// parent directory of a file database. memory reports an in-memory database.
func sqliteDSN(raw string) (dsn string, memory bool, err error) {
	path, query := raw, ""
	uri := strings.HasPrefix(raw, "file:")
	if uri {
		path = strings.TrimPrefix(raw, "file:")
		if i := strings.IndexByte(path, '?'); i >= 0 {
			path, query = path[:i], path[i+1:]
		}
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		return "", false, fmt.Errorf("sqlite dsn query: %w", err)
	}
	memory = path == ":memory:" || strings.EqualFold(q.Get("mode"), "memory")

	if !memory {
		file := path
		if uri {
			file, err = uriFilePath(path)
			if err != nil {
				return "", false, err
			}
		}
		if file == "" {
			return "", false, errors.New("sqlite dsn: empty file path")
		}
		if dir := filepath.Dir(file); dir != "." {
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return "", false, fmt.Errorf("create database directory: %w", err)
			}
		}
	}

	// Applied to every connection unless the DSN sets the same pragma.
	// busy_timeout lets writers queue instead of failing with SQLITE_BUSY;
	// WAL lets readers run beside the writer.
	pragmas := []struct{ name, value string }{
		{"busy_timeout", "5000"},
		{"journal_mode", "WAL"},
		{"foreign_keys", "1"},
		{"synchronous", "NORMAL"},
	}
	set := map[string]bool{}
	for _, p := range q["_pragma"] {
		name, _, _ := strings.Cut(p, "(")
		name, _, _ = strings.Cut(name, "=")
		set[strings.ToLower(strings.TrimSpace(name))] = true
	}
	for _, p := range pragmas {
		if set[p.name] || (memory && p.name == "journal_mode") {
			continue
		}
		q.Add("_pragma", p.name+"("+p.value+")")
	}
	if q.Get("_txlock") == "" {
		q.Set("_txlock", "immediate")
	}
	if uri {
		return "file:" + path + "?" + q.Encode(), memory, nil
	}
	return path + "?" + q.Encode(), memory, nil
}

// uriFilePath extracts the file name from the part of a "file:" URI after
// the scheme.
func uriFilePath(rest string) (string, error) {
	if strings.HasPrefix(rest, "//") {
		rest = strings.TrimPrefix(rest, "//")
		host, p, _ := strings.Cut(rest, "/")
		if host != "" && host != "localhost" {
			return "", fmt.Errorf("sqlite dsn: unsupported host %q in file URI", host)
		}
		rest = "/" + p
	}
	if i := strings.IndexByte(rest, '#'); i >= 0 {
		rest = rest[:i]
	}
	file, err := url.PathUnescape(rest)
	if err != nil {
		return "", fmt.Errorf("sqlite dsn path: %w", err)
	}
	return file, nil
}

func openPostgres(opts Options) (db *bun.DB, err error) {
	if err := checkPostgresDSN(opts.DSN); err != nil {
		return nil, err
	}
	// pgdriver panics on a DSN it cannot parse; its message may quote the
	// DSN, password included, so only a generic error leaves here.
	defer func() {
		if r := recover(); r != nil {
			db, err = nil, errors.New("invalid postgres DSN")
		}
	}()
	connector := pgdriver.NewConnector(pgdriver.WithDSN(opts.DSN))
	sqldb := sql.OpenDB(connector)
	configurePool(sqldb, opts, defaultPostgresConns)
	return bun.NewDB(sqldb, pgdialect.New()), nil
}

// configurePool applies the pool options, with defaultConns when
// MaxOpenConns is unset.
func configurePool(sqldb *sql.DB, opts Options, defaultConns int) {
	conns := opts.MaxOpenConns
	if conns <= 0 {
		conns = defaultConns
	}
	sqldb.SetMaxOpenConns(conns)
	if opts.MaxIdleConns > 0 {
		sqldb.SetMaxIdleConns(min(opts.MaxIdleConns, conns))
	}
	if opts.ConnMaxLifetime > 0 {
		sqldb.SetConnMaxLifetime(opts.ConnMaxLifetime)
	}
}

// checkPostgresDSN rejects what pgdriver cannot parse, with a message that
// never repeats the DSN (it may hold a password).
func checkPostgresDSN(dsn string) error {
	u, err := url.Parse(dsn)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			return fmt.Errorf("invalid postgres DSN: %w", uerr.Err)
		}
		return errors.New("invalid postgres DSN")
	}
	switch u.Scheme {
	case "postgres", "postgresql", "unix":
		return nil
	default:
		return fmt.Errorf("invalid postgres DSN: scheme %q (want postgres://)", u.Scheme)
	}
}
