package authstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/uptrace/bun"
)

// Event is one audit record.
type Event struct {
	ID        int64
	Time      time.Time
	Type      string // "code.requested", "signin.ok", "session.revoked", "user.disabled", …
	Email     string
	IP        string
	UserAgent string
	Outcome   string // "ok", "denied", "failed", …
	Detail    string // short reason; never a code, token or secret
}

type eventRow struct {
	bun.BaseModel `bun:"table:events"`

	ID        int64     `bun:"id,pk,autoincrement"`
	Time      time.Time `bun:"occurred_at"`
	Type      string    `bun:"event_type"`
	Email     string    `bun:"email"`
	IP        string    `bun:"ip"`
	UserAgent string    `bun:"user_agent"`
	Outcome   string    `bun:"outcome"`
	Detail    string    `bun:"detail"`
}

func (r eventRow) event() Event {
	return Event{
		ID:        r.ID,
		Time:      utc(r.Time),
		Type:      r.Type,
		Email:     r.Email,
		IP:        r.IP,
		UserAgent: r.UserAgent,
		Outcome:   r.Outcome,
		Detail:    r.Detail,
	}
}

// defaultEventLimit is how many events Events returns when the filter sets
// no limit.
const defaultEventLimit = 1000

// EventFilter selects events; zero fields match everything.
type EventFilter struct {
	Email string
	Since time.Time // events at or after Since
	Until time.Time // events before Until
	Type  string
	Limit int // 0 (or negative) means 1000
}

// RecordEvent stores e. A zero Time means now; text fields are made valid
// UTF-8 and bounded in length.
func (s *Store) RecordEvent(ctx context.Context, e Event) error {
	if e.Type == "" {
		return errors.New("record event: empty type")
	}
	if e.Time.IsZero() {
		e.Time = s.now()
	}
	row := eventRow{
		Time:      utc(e.Time),
		Type:      cleanText(e.Type, fieldMax),
		Email:     cleanText(e.Email, fieldMax),
		IP:        cleanText(e.IP, fieldMax),
		UserAgent: cleanText(e.UserAgent, userAgentMax),
		Outcome:   cleanText(e.Outcome, fieldMax),
		Detail:    cleanText(e.Detail, fieldMax),
	}
	if _, err := s.db.NewInsert().Model(&row).Returning("NULL").Exec(ctx); err != nil {
		return fmt.Errorf("record event: %w", err)
	}
	return nil
}

// Events returns the events matching f, newest first.
func (s *Store) Events(ctx context.Context, f EventFilter) ([]Event, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = defaultEventLimit
	}
	var rows []eventRow
	q := s.db.NewSelect().Model(&rows).OrderExpr("occurred_at DESC, id DESC").Limit(int64(limit))
	if f.Email != "" {
		q = q.Where("email = ?", f.Email)
	}
	if !f.Since.IsZero() {
		q = q.Where("occurred_at >= ?", utc(f.Since))
	}
	if !f.Until.IsZero() {
		q = q.Where("occurred_at < ?", utc(f.Until))
	}
	if f.Type != "" {
		q = q.Where("event_type = ?", f.Type)
	}
	if err := q.Scan(ctx); err != nil {
		return nil, fmt.Errorf("events: %w", err)
	}
	out := make([]Event, len(rows))
	for i, r := range rows {
		out[i] = r.event()
	}
	return out, nil
}

// LatestEventID returns the greatest event ID, 0 when there is none: the
// position from which a reader starts following the log (EventsAfter).
func (s *Store) LatestEventID(ctx context.Context) (int64, error) {
	var id sql.NullInt64
	if err := s.db.NewSelect().Model((*eventRow)(nil)).ColumnExpr("MAX(id)").Scan(ctx, &id); err != nil {
		return 0, fmt.Errorf("latest event id: %w", err)
	}
	return id.Int64, nil
}

// EventsAfter returns, oldest first, at most limit events with an ID
// greater than afterID, only those from ip when ip is not "". It reads the
// primary key range after afterID, so following the log costs in
// proportion to what is new.
func (s *Store) EventsAfter(ctx context.Context, afterID int64, ip string, limit int) ([]Event, error) {
	if limit <= 0 {
		limit = defaultEventLimit
	}
	var rows []eventRow
	q := s.db.NewSelect().Model(&rows).Where("id > ?", afterID).OrderExpr("id ASC").Limit(int64(limit))
	if ip != "" {
		q = q.Where("ip = ?", ip)
	}
	if err := q.Scan(ctx); err != nil {
		return nil, fmt.Errorf("events after: %w", err)
	}
	out := make([]Event, len(rows))
	for i, r := range rows {
		out[i] = r.event()
	}
	return out, nil
}

// PruneEvents deletes events older than before and returns how many.
func (s *Store) PruneEvents(ctx context.Context, before time.Time) (int, error) {
	n, err := s.deleteBefore(ctx, (*eventRow)(nil), "occurred_at", before)
	if err != nil {
		return 0, fmt.Errorf("prune events: %w", err)
	}
	return n, nil
}
