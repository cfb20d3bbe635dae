package authstore

import (
	"context"
	"database/sql"
	"sync"
	"testing"
	"time"
)

// TestPoolOptions checks that database.max_open_conns, max_idle_conns and
// conn_max_lifetime reach the connection pool, on both backends.
func TestPoolOptions(t *testing.T) {
	tests := []struct {
		name     string
		opts     Options
		wantOpen int // MaxOpenConnections reported by the pool
		wantIdle int // most idle connections kept after a burst; -1: not checked
	}{
		{name: "defaults", wantIdle: -1},
		{name: "explicit sizes", opts: Options{MaxOpenConns: 5, MaxIdleConns: 2}, wantOpen: 5, wantIdle: 2},
		{name: "idle above open is capped", opts: Options{MaxOpenConns: 3, MaxIdleConns: 9}, wantOpen: 3, wantIdle: 3},
	}
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					opts := b.newDB(t)
					opts.MaxOpenConns, opts.MaxIdleConns = tt.opts.MaxOpenConns, tt.opts.MaxIdleConns
					s := migrated(t, opts)
					want := tt.wantOpen
					if want == 0 {
						want = map[string]int{"sqlite": defaultSQLiteConns, "postgres": defaultPostgresConns}[b.name]
					}
					if got := s.db.Stats().MaxOpenConnections; got != want {
						t.Errorf("MaxOpenConnections = %d, want %d", got, want)
					}
					if tt.wantIdle < 0 {
						return
					}
					holdConns(t, s.db.DB, want)
					if got := s.db.Stats().Idle; got != tt.wantIdle {
						t.Errorf("%d idle connections after a burst of %d, want %d", got, want, tt.wantIdle)
					}
				})
			}
		})
	}
}

// TestPoolConnMaxLifetime checks that connections older than
// ConnMaxLifetime are closed instead of reused.
func TestPoolConnMaxLifetime(t *testing.T) {
	const lifetime = 50 * time.Millisecond
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			opts := b.newDB(t)
			opts.ConnMaxLifetime = lifetime
			s := migrated(t, opts)
			ctx := context.Background()
			check(t, "ping", s.Ping(ctx))
			// Whatever was opened so far is now past its lifetime: the
			// next use must replace it.
			time.Sleep(2 * lifetime)
			check(t, "ping after lifetime", s.Ping(ctx))
			if got := s.db.Stats().MaxLifetimeClosed; got == 0 {
				t.Fatal("no connection was closed for age; conn_max_lifetime is not applied")
			}
		})
	}
}

// holdConns takes n connections from the pool at once, then returns them
// all.
func holdConns(t *testing.T, db *sql.DB, n int) {
	t.Helper()
	ctx := context.Background()
	conns := make([]*sql.Conn, n)
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			c, err := db.Conn(ctx)
			if err == nil {
				err = c.PingContext(ctx)
			}
			conns[i], errs[i] = c, err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
	}
	if got := db.Stats().InUse; got != n {
		t.Fatalf("%d connections in use while holding %d", got, n)
	}
	for _, c := range conns {
		_ = c.Close()
	}
}
