package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"gatehouse/authstore"
)

// The sessions command group: list and revoke.

func (e *env) sessionsCmd() *cobra.Command {
	cmd := groupCmd("sessions", "List and revoke sessions")
	jsonFlag(cmd)

	var listUser string
	list := e.adminCmd("list", "List sessions, newest first", cobra.NoArgs, func(a *admin, _ []string) error {
		return a.sessionsList(listUser)
	})
	list.Flags().StringVar(&listUser, "user", "", "only the sessions of this email")

	var revokeUser string
	revoke := e.adminCmd("revoke [ID]", "Revoke one session by ID (or a unique prefix of 8+ characters), or every session of --user",
		cobra.MaximumNArgs(1), func(a *admin, args []string) error {
			switch {
			case revokeUser != "" && len(args) == 1:
				return usageError("give a session ID or --user, not both")
			case revokeUser != "":
				return a.revokeUser(revokeUser)
			case len(args) == 1:
				return a.revokeSession(args[0])
			default:
				return usageError("give a session ID or --user EMAIL")
			}
		})
	revoke.Flags().StringVar(&revokeUser, "user", "", "revoke every session of this email")
	cmd.AddCommand(list, revoke)
	return cmd
}

type sessionJSON struct {
	ID         string    `json:"id"`
	Email      string    `json:"email"`
	State      string    `json:"state"`
	IP         string    `json:"ip"`
	UserAgent  string    `json:"user_agent"`
	CreatedAt  time.Time `json:"created_at"`
	LastSeenAt time.Time `json:"last_seen_at"`
	ExpiresAt  time.Time `json:"expires_at"`
}

// sessionState: "active", or "expired" for a session past its absolute
// lifetime or idle timeout that the background pruning has not removed yet.
func sessionState(s authstore.Session, now time.Time, idle time.Duration) string {
	if !now.Before(s.ExpiresAt) || (idle > 0 && !now.Before(s.LastSeenAt.Add(idle))) {
		return "expired"
	}
	return "active"
}

func (a *admin) sessionsList(user string) error {
	email := ""
	if user != "" {
		var err error
		if email, err = parseEmail(user); err != nil {
			return err
		}
		if _, err := a.existingUser(email); err != nil {
			return err
		}
	}
	sessions, err := a.st.ListSessions(a.ctx, email)
	if err != nil {
		return err
	}
	rows := make([]sessionJSON, 0, len(sessions))
	for _, s := range sessions {
		rows = append(rows, sessionJSON{
			ID: s.ID, Email: s.Email, State: sessionState(s, a.now, a.cfg.Session.IdleTimeout),
			IP: s.IP, UserAgent: s.UserAgent,
			CreatedAt: s.CreatedAt, LastSeenAt: s.LastSeenAt, ExpiresAt: s.ExpiresAt,
		})
	}
	if a.json {
		return writeJSON(a.out, rows)
	}
	tw := newTable(a.out)
	fmt.Fprintln(tw, "ID\tEMAIL\tSTATE\tIP\tSIGNED IN\tLAST SEEN\tUSER AGENT")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, cell(r.Email), r.State, orDash(cell(r.IP)), stamp(r.CreatedAt), stamp(r.LastSeenAt), shorten(r.UserAgent, 60))
	}
	return tw.Flush()
}

func (a *admin) revokeSession(ref string) error {
	ref = strings.ToLower(strings.TrimSpace(ref))
	if len(ref) < 8 || strings.Trim(ref, "0123456789abcdef") != "" {
		return usageError("invalid session ID %q: want the ID from gatehouse sessions list (at least 8 hex characters)", ref)
	}
	s, err := a.st.SessionByIDPrefix(a.ctx, ref)
	switch {
	case errors.Is(err, authstore.ErrNotFound):
		return notFoundError("no session %s", ref)
	case errors.Is(err, authstore.ErrAmbiguous):
		return usageError("session ID prefix %q matches more than one session; give more characters", ref)
	case err != nil:
		return err
	}
	if err := a.st.DeleteSession(a.ctx, s.ID); err != nil {
		if errors.Is(err, authstore.ErrNotFound) {
			return notFoundError("no session %s", ref)
		}
		return err
	}
	text := fmt.Sprintf("revoked session %s of %s", s.ID, s.Email)
	if err := a.emit(actionJSON{Action: eventSessionRevoked, Email: s.Email, Session: s.ID, Changed: true, SessionsEnded: 1}, text); err != nil {
		return err
	}
	return a.record(eventSessionRevoked, s.Email, "session "+s.ID)
}

func (a *admin) revokeUser(user string) error {
	email, err := parseEmail(user)
	if err != nil {
		return err
	}
	if _, err := a.existingUser(email); err != nil {
		return err
	}
	n, err := a.st.DeleteUserSessions(a.ctx, email, "")
	if err != nil {
		return err
	}
	text := fmt.Sprintf("revoked %s of %s", plural(n, "session"), email)
	if err := a.emit(actionJSON{Action: eventSessionRevoked, Email: email, Changed: n > 0, SessionsEnded: n}, text); err != nil {
		return err
	}
	if n == 0 {
		return nil
	}
	return a.record(eventSessionRevoked, email, "all sessions ("+strconv.Itoa(n)+")")
}
