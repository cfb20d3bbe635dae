package authstore

import (
	"context"
	"testing"
	"time"
)

// TestFollowingEvents covers what a reader of the log uses: the latest ID,
// the events after a position (oldest first, optionally from one IP), and
// the Until bound of Events.
func TestFollowingEvents(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			s := migrated(t, b.newDB(t))
			ctx := context.Background()
			if id, err := s.LatestEventID(ctx); err != nil || id != 0 {
				t.Fatalf("LatestEventID on an empty log = %d, %v; want 0", id, err)
			}
			record := func(at time.Duration, typ, ip string) {
				t.Helper()
				if err := s.RecordEvent(ctx, Event{Time: base.Add(at), Type: typ, IP: ip}); err != nil {
					t.Fatal(err)
				}
			}
			record(-3*time.Hour, "signin.ok", "192.0.2.1")
			start, err := s.LatestEventID(ctx)
			if err != nil || start == 0 {
				t.Fatalf("LatestEventID = %d, %v", start, err)
			}
			record(-2*time.Hour, "user.disabled", "cli")
			record(-time.Hour, "signin.ok", "192.0.2.1")
			record(0, "session.revoked", "cli")

			tests := []struct {
				name  string
				after int64
				ip    string
				limit int
				want  []string
			}{
				{"everything after the start", start, "", 0, []string{"user.disabled", "signin.ok", "session.revoked"}},
				{"one IP", start, "cli", 0, []string{"user.disabled", "session.revoked"}},
				{"limit keeps the oldest", start, "", 1, []string{"user.disabled"}},
				{"from the beginning", 0, "192.0.2.1", 0, []string{"signin.ok", "signin.ok"}},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					evs, err := s.EventsAfter(ctx, tt.after, tt.ip, tt.limit)
					if err != nil {
						t.Fatal(err)
					}
					var got []string
					for i, ev := range evs {
						got = append(got, ev.Type)
						if ev.ID <= tt.after || (i > 0 && ev.ID <= evs[i-1].ID) {
							t.Errorf("event IDs %d not ascending after %d", ev.ID, tt.after)
						}
					}
					if len(got) != len(tt.want) {
						t.Fatalf("got %v, want %v", got, tt.want)
					}
					for i := range got {
						if got[i] != tt.want[i] {
							t.Fatalf("got %v, want %v", got, tt.want)
						}
					}
				})
			}

			t.Run("until", func(t *testing.T) {
				evs, err := s.Events(ctx, EventFilter{Since: base.Add(-150 * time.Minute), Until: base.Add(-30 * time.Minute)})
				if err != nil {
					t.Fatal(err)
				}
				if len(evs) != 2 || evs[0].Type != "signin.ok" || evs[1].Type != "user.disabled" {
					t.Errorf("events between -150m and -30m: %+v", evs)
				}
			})
		})
	}
}
