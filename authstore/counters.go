package authstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/uptrace/bun"
)

type counterRow struct {
	bun.BaseModel `bun:"table:rate_counters"`

	Key         string    `bun:"rate_key,pk"`
	WindowStart time.Time `bun:"window_start,pk"`
	Hits        int       `bun:"hits"`
}

// windowStart returns the start of the fixed window of length window that
// contains now.
func windowStart(now time.Time, window time.Duration) (time.Time, error) {
	if window <= 0 {
		return time.Time{}, errors.New("window must be positive")
	}
	return utc(now.UTC().Truncate(window)), nil
}

// Hit counts one event for key in the fixed window of length window that
// contains now and returns the window's new count. The increment is a single
// atomic upsert, exact under any concurrency.
func (s *Store) Hit(ctx context.Context, key string, window time.Duration, now time.Time) (int, error) {
	start, err := windowStart(now, window)
	if err != nil {
		return 0, fmt.Errorf("hit: %w", err)
	}
	row := counterRow{Key: key, WindowStart: start, Hits: 1}
	var hits int
	err = s.db.NewInsert().Model(&row).
		On("CONFLICT (rate_key, window_start) DO UPDATE").
		Set("hits = ?TableAlias.hits + 1").
		Returning("hits").
		Scan(ctx, &hits)
	if err != nil {
		return 0, fmt.Errorf("hit: %w", err)
	}
	return hits, nil
}

// Count returns the count for key in the window containing now, without
// counting anything.
func (s *Store) Count(ctx context.Context, key string, window time.Duration, now time.Time) (int, error) {
	start, err := windowStart(now, window)
	if err != nil {
		return 0, fmt.Errorf("count: %w", err)
	}
	var row counterRow
	err = s.db.NewSelect().Model(&row).
		Where("rate_key = ?", key).
		Where("window_start = ?", start).
		Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("count: %w", err)
	}
	return row.Hits, nil
}

// PruneCounters deletes counters whose window started before before and
// returns how many.
func (s *Store) PruneCounters(ctx context.Context, before time.Time) (int, error) {
	n, err := s.deleteBefore(ctx, (*counterRow)(nil), "window_start", before)
	if err != nil {
		return 0, fmt.Errorf("prune counters: %w", err)
	}
	return n, nil
}
