package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"gatehouse/authstore"
)

// The audit command: the audit log, filtered.

func (e *env) auditCmd() *cobra.Command {
	var user, since, until, typ string
	var limit int
	cmd := e.adminCmd("audit", "Show the audit log, newest first", cobra.NoArgs, func(a *admin, _ []string) error {
		f := authstore.EventFilter{Type: typ, Limit: limit}
		var err error
		if user != "" {
			if f.Email, err = parseEmail(user); err != nil {
				return err
			}
		}
		if f.Since, err = parseSince("--since", since, a.now); err != nil {
			return err
		}
		if f.Until, err = parseSince("--until", until, a.now); err != nil {
			return err
		}
		if limit < 1 {
			return usageError("--limit must be at least 1")
		}
		return a.audit(f)
	})
	jsonFlag(cmd)
	cmd.Flags().StringVar(&user, "user", "", "only events of this email")
	cmd.Flags().StringVar(&since, "since", "", "only events this recent (24h, 7d, 90m) or from this time on (2025-03-01, 2025-03-01T09:00:00Z)")
	cmd.Flags().StringVar(&until, "until", "", "only events before this time (same forms as --since)")
	cmd.Flags().StringVar(&typ, "type", "", "only events of this type, e.g. signin.ok")
	cmd.Flags().IntVar(&limit, "limit", 100, "at most this many events")
	return cmd
}

type eventJSON struct {
	Time      time.Time `json:"time"`
	Type      string    `json:"type"`
	Outcome   string    `json:"outcome"`
	Email     string    `json:"email"`
	IP        string    `json:"ip"`
	UserAgent string    `json:"user_agent"`
	Detail    string    `json:"detail"`
}

func (a *admin) audit(f authstore.EventFilter) error {
	events, err := a.st.Events(a.ctx, f)
	if err != nil {
		return err
	}
	rows := make([]eventJSON, 0, len(events))
	for _, ev := range events {
		rows = append(rows, eventJSON{Time: ev.Time, Type: ev.Type, Outcome: ev.Outcome, Email: ev.Email, IP: ev.IP, UserAgent: ev.UserAgent, Detail: ev.Detail})
	}
	if len(rows) == f.Limit {
		fmt.Fprintf(a.errOut, "showing the newest %d events; raise --limit or narrow with --since/--until to see more\n", f.Limit)
	}
	if a.json {
		return writeJSON(a.out, rows)
	}
	tw := newTable(a.out)
	fmt.Fprintln(tw, "TIME\tTYPE\tOUTCOME\tEMAIL\tIP\tDETAIL\tUSER AGENT")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", stamp(r.Time), cell(r.Type), cell(r.Outcome), orDash(cell(r.Email)), orDash(cell(r.IP)), orDash(cell(r.Detail)), shorten(r.UserAgent, 40))
	}
	return tw.Flush()
}

// parseSince reads a point in time: a duration back from now ("24h", "7d",
// "1d12h"), a date (midnight UTC) or an RFC 3339 time. Empty is no bound.
func parseSince(flag, v string, now time.Time) (time.Time, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return time.Time{}, nil
	}
	if d, err := parseDays(v); err == nil {
		if d < 0 {
			return time.Time{}, usageError("%s: negative duration %q", flag, v)
		}
		return now.Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, usageError("%s: invalid duration or time %q (want e.g. 24h, 7d, 2025-03-01 or 2025-03-01T09:00:00Z)", flag, v)
}

// parseDays is time.ParseDuration that also takes a leading whole number of
// days: "7d", "1d12h".
func parseDays(v string) (time.Duration, error) {
	days := time.Duration(0)
	if i := strings.IndexByte(v, 'd'); i > 0 {
		n, err := strconv.Atoi(v[:i])
		if err != nil || n < 0 || n > 100000 {
			return 0, fmt.Errorf("invalid days %q", v[:i])
		}
		days = time.Duration(n) * 24 * time.Hour
		v = v[i+1:]
		if v == "" {
			return days, nil
		}
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, err
	}
	return days + d, nil
}
