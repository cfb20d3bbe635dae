package authstore

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
	"github.com/uptrace/bun/driver/pgdriver"
)

// RevokeAll is passed to a WatchRevocations callback when revocations may
// have been missed (after the listener reconnected, or the feed could not
// be read for a while): drop every cached session.
const RevokeAll = "*"

const (
	revocationChannel = "gatehouse_revocations"

	listenBackoffMin = 100 * time.Millisecond
	listenBackoffMax = 5 * time.Second
	// listenPingInterval is how often an idle listener checks that its
	// connection still delivers notifications.
	listenPingInterval = 15 * time.Second

	// revocationPollInterval is how often a watcher on SQLite reads the
	// revocations table: a revocation made by any process reaches it
	// within this, plus the time of one small primary-key read.
	revocationPollInterval = 250 * time.Millisecond
	// revocationBatch is the most rows one poll reads; a longer backlog is
	// read in further batches at once.
	revocationBatch = 1000
)

type revocationRow struct {
	bun.BaseModel `bun:"table:revocations"`

	ID        int64     `bun:"id,pk,autoincrement"`
	SessionID string    `bun:"session_id"`
	RevokedAt time.Time `bun:"revoked_at"`
}

// recordRevoked writes the revocation feed's rows for ids inside the
// transaction that deleted those sessions, so a revocation is announced if
// and only if the deletion commits. On PostgreSQL the same transaction
// also sends the IDs with NOTIFY, delivered to every listening process at
// commit.
func (s *Store) recordRevoked(ctx context.Context, tx bun.Tx, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	now := utc(s.now())
	for chunk := range slices.Chunk(ids, revocationBatch) {
		rows := make([]revocationRow, len(chunk))
		for i, id := range chunk {
			rows[i] = revocationRow{SessionID: id, RevokedAt: now}
		}
		if _, err := tx.NewInsert().Model(&rows).Exec(ctx); err != nil {
			return fmt.Errorf("record revocations: %w", err)
		}
	}
	if !s.postgres() {
		return nil
	}
	_, err := tx.ExecContext(ctx, "SELECT pg_notify(?, t.id) FROM unnest(?::text[]) AS t(id)",
		revocationChannel, pgdialect.Array(ids))
	if err != nil {
		return fmt.Errorf("notify revocations: %w", err)
	}
	return nil
}

// PruneRevocations deletes revocation rows older than before and returns
// how many. The newest row is always kept, so a watcher that starts later
// still finds the end of the feed. A watcher that had not yet read a
// pruned row is told RevokeAll.
func (s *Store) PruneRevocations(ctx context.Context, before time.Time) (int, error) {
	newest := s.db.NewSelect().Model((*revocationRow)(nil)).ColumnExpr("MAX(id)")
	res, err := s.db.NewDelete().Model((*revocationRow)(nil)).
		Where("revoked_at < ?", utc(before)).
		Where("id < (?)", newest).
		Exec(ctx)
	if err != nil {
		return 0, fmt.Errorf("prune revocations: %w", err)
	}
	n, err := affected(res)
	if err != nil {
		return 0, fmt.Errorf("prune revocations: %w", err)
	}
	return n, nil
}

// WatchRevocations calls fn with the ID of every session deleted by any
// Store on this database, in this process or another (the CLI, another
// server), until ctx is done; then it returns nil. It reports what is
// deleted after it starts. fn runs on the calling goroutine, one call at a
// time. fn(RevokeAll) means revocations may have been missed and every
// cached session must be dropped.
//
// On PostgreSQL the IDs come through LISTEN/NOTIFY. The first successful
// LISTEN is logged at info level. A lost connection is logged at warn level
// and retried with exponential backoff (at most 5 s); after each reconnect
// fn(RevokeAll) is called.
//
// On SQLite, which has no notification channel between processes, the
// revocations table is read every 250 ms by increasing id. The first
// successful read is logged at info level. A failed read is logged at warn
// level (once until reads succeed again) and followed, once reading works
// again, by fn(RevokeAll); so is a gap in the ids, which means rows were
// pruned before this watcher read them.
func (s *Store) WatchRevocations(ctx context.Context, fn func(sessionID string)) error {
	if s.postgres() {
		s.watchPostgres(ctx, fn)
		return nil
	}
	s.pollRevocations(ctx, fn, revocationPollInterval)
	return nil
}

// pollRevocations follows the revocations table every interval until ctx
// is done.
func (s *Store) pollRevocations(ctx context.Context, fn func(string), every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	var (
		last    int64
		started bool
		failing bool
	)
	for {
		var err error
		if !started {
			// Start at the end of the feed: what was revoked before the
			// watcher started is the caller's to know.
			last, err = s.latestRevocationID(ctx)
		} else {
			last, err = s.deliverRevocations(ctx, last, fn)
		}
		switch {
		case err != nil && ctx.Err() == nil:
			if !failing {
				s.log.Warn("reading session revocations failed", "err", err, "retry_every", every)
			}
			failing = true
		case err == nil && failing:
			s.log.Warn("reading session revocations again")
			fn(RevokeAll)
			failing = false
		}
		if err == nil && !started {
			s.log.Info("following session revocations", "every", every)
			started = true
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// latestRevocationID returns the greatest id in the revocations table, 0
// when it is empty.
func (s *Store) latestRevocationID(ctx context.Context) (int64, error) {
	var id sql.NullInt64
	if err := s.db.NewSelect().Model((*revocationRow)(nil)).ColumnExpr("MAX(id)").Scan(ctx, &id); err != nil {
		return 0, fmt.Errorf("latest revocation: %w", err)
	}
	return id.Int64, nil
}

// deliverRevocations passes the revocations after id last to fn and
// returns the new position. Ids follow each other without holes unless
// rows were pruned before they were read; then fn(RevokeAll) stands in for
// the batch.
func (s *Store) deliverRevocations(ctx context.Context, last int64, fn func(string)) (int64, error) {
	for {
		var rows []revocationRow
		err := s.db.NewSelect().Model(&rows).Column("id", "session_id").
			Where("id > ?", last).
			OrderExpr("id ASC").
			Limit(revocationBatch).
			Scan(ctx)
		if err != nil {
			return last, fmt.Errorf("read revocations: %w", err)
		}
		if len(rows) == 0 {
			return last, nil
		}
		if gap := holeAfter(last, rows); gap >= 0 {
			s.log.Warn("session revocations were pruned before they were read; dropping every cached session",
				"after", gap)
			fn(RevokeAll)
		} else {
			for _, r := range rows {
				fn(r.SessionID)
			}
		}
		last = rows[len(rows)-1].ID
		if len(rows) < revocationBatch || ctx.Err() != nil {
			return last, nil
		}
	}
}

func (s *Store) watchPostgres(ctx context.Context, fn func(string)) {
	backoff := listenBackoffMin
	reconnecting := false
	for {
		err := s.listen(ctx, fn, func() {
			if reconnecting {
				s.log.Warn("revocation listener reconnected")
				fn(RevokeAll)
			} else {
				s.log.Info("listening for session revocations")
			}
			backoff = listenBackoffMin
		})
		if ctx.Err() != nil {
			return
		}
		s.log.Warn("revocation listener disconnected", "err", err, "retry_in", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(backoff*2, listenBackoffMax)
		reconnecting = true
	}
}

// listen holds one listening connection until it fails or ctx is done,
// passing revocations to fn. connected runs once LISTEN has succeeded.
func (s *Store) listen(ctx context.Context, fn func(string), connected func()) error {
	pingChannel, err := randomPingChannel()
	if err != nil {
		return err
	}
	ln := pgdriver.NewListener(s.db)
	var closeOnce sync.Once
	closeListener := func() { closeOnce.Do(func() { _ = ln.Close() }) }
	defer closeListener()

	if err := ln.Listen(ctx, revocationChannel, pingChannel); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	connected()

	// Receive blocks without regard to ctx, and a connection that silently
	// died never returns an error; closing the listener ends Receive in
	// both cases.
	var lastRecv atomic.Int64
	lastRecv.Store(time.Now().UnixNano())
	var stalled atomic.Bool
	done := make(chan struct{})
	defer close(done)
	go func() {
		ticker := time.NewTicker(listenPingInterval)
		defer ticker.Stop()
		var pingSent time.Time
		for {
			select {
			case <-ctx.Done():
				closeListener()
				return
			case <-done:
				return
			case <-ticker.C:
				if !pingSent.IsZero() && lastRecv.Load() < pingSent.UnixNano() {
					stalled.Store(true)
					closeListener()
					return
				}
				pingSent = time.Now()
				// A failed ping shows up as silence at the next tick.
				_ = pgdriver.Notify(ctx, s.db, pingChannel, "")
			}
		}
	}()

	for {
		channel, payload, err := ln.Receive(ctx)
		if err != nil {
			if stalled.Load() {
				return errors.New("listener connection stopped answering")
			}
			return fmt.Errorf("receive: %w", err)
		}
		lastRecv.Store(time.Now().UnixNano())
		if channel == revocationChannel {
			fn(payload)
		}
	}
}

// randomPingChannel names a channel only this listener uses, so health
// pings do not wake other replicas.
func randomPingChannel() (string, error) {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("ping channel name: %w", err)
	}
	return "gatehouse_ping_" + hex.EncodeToString(b), nil
}

// holeAfter returns the id after which rows (read after last, in id order)
// miss one, or -1 when they follow last without a hole.
func holeAfter(last int64, rows []revocationRow) int64 {
	for _, r := range rows {
		if r.ID != last+1 {
			return last
		}
		last = r.ID
	}
	return -1
}
