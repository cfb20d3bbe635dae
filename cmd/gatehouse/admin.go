package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/spf13/cobra"

	"gatehouse/authstore"
	"gatehouse/config"
	"gatehouse/email"
)

// Exit statuses of every command, documented for scripts.
const (
	exitRuntime  = 1 // the store or the system failed
	exitUsage    = 2 // bad arguments, flags or configuration
	exitNotFound = 3 // the user or session named does not exist
)

// cliIP is the client IP recorded on audit events made by admin commands,
// so the audit log tells them from requests. A running server learns of
// the sessions they end from the store's revocation feed, not from these.
const cliIP = "cli"

// Audit event types recorded by admin commands.
const (
	eventUserAdded      = "user.added"
	eventUserDisabled   = "user.disabled"
	eventUserEnabled    = "user.enabled"
	eventUserRemoved    = "user.removed"
	eventSessionRevoked = "session.revoked"
)

func usageError(format string, args ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, args...)}
}

func notFoundError(format string, args ...any) error {
	return &exitError{code: exitNotFound, err: fmt.Errorf(format, args...)}
}

// usageArgs makes cobra's argument errors exit with the usage status.
func usageArgs(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := check(cmd, args); err != nil {
			return &exitError{code: exitUsage, err: err}
		}
		return nil
	}
}

// groupCmd is a command that only holds subcommands: run bare or with an
// unknown subcommand it is a usage error.
func groupCmd(use, short string) *cobra.Command {
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageError("unknown command %q for %q; see %s --help", args[0], cmd.CommandPath(), cmd.CommandPath())
			}
			return usageError("%s needs a subcommand; see %s --help", cmd.CommandPath(), cmd.CommandPath())
		},
	}
}

// admin is what every admin command shares: the open store, the config,
// where to write, and who is acting (for the audit log).
type admin struct {
	ctx    context.Context
	cfg    *config.Config
	st     *authstore.Store
	out    io.Writer
	errOut io.Writer
	json   bool
	actor  string
	now    time.Time
}

// withAdmin opens the store for an admin command and checks that the
// database is migrated, so a command never writes into a missing schema.
func (e *env) withAdmin(cmd *cobra.Command, fn func(a *admin) error) error {
	asJSON, _ := cmd.Flags().GetBool("json")
	return e.withStore(cmd, func(ctx context.Context, cfg *config.Config, st *authstore.Store) error {
		states, err := st.MigrationStatus(ctx)
		if err != nil {
			return err
		}
		for _, m := range states {
			if !m.Applied {
				return fmt.Errorf("the %s database is not migrated (%s pending): run gatehouse migrate up, or start the server once", cfg.Database.Driver, m.Name)
			}
		}
		actor := lookupEnv(e.environ, "USER")
		if actor == "" {
			actor = "unknown"
		}
		return fn(&admin{ctx: ctx, cfg: cfg, st: st, out: e.stdout, errOut: e.stderr, json: asJSON, actor: actor, now: time.Now().UTC()})
	})
}

// record writes the audit event of an admin action that succeeded. A
// failure is reported: the action happened but left no trace.
func (a *admin) record(typ, email, detail string) error {
	err := a.st.RecordEvent(a.ctx, authstore.Event{
		Time:      a.now,
		Type:      typ,
		Email:     email,
		IP:        cliIP,
		UserAgent: "gatehouse-cli (user " + a.actor + ")",
		Outcome:   "ok",
		Detail:    detail,
	})
	if err != nil {
		return fmt.Errorf("the change was made, but recording the %s audit event failed: %w", typ, err)
	}
	return nil
}

// emit prints a result: v as JSON with --json, else the text line.
func (a *admin) emit(v any, text string) error {
	if a.json {
		return writeJSON(a.out, v)
	}
	_, err := fmt.Fprintln(a.out, text)
	return err
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// parseEmail normalizes an address exactly as the sign-in form does.
func parseEmail(s string) (string, error) {
	addr, err := email.Parse(s)
	if err != nil {
		return "", usageError("%q: %v", s, err)
	}
	return addr, nil
}

// existingUser returns the user or a not-found error naming the address.
func (a *admin) existingUser(email string) (authstore.User, error) {
	u, err := a.st.UserByEmail(a.ctx, email)
	if errors.Is(err, authstore.ErrNotFound) {
		return authstore.User{}, notFoundError("no user %s", email)
	}
	return u, err
}

// ---- users ----

func (e *env) usersCmd() *cobra.Command {
	cmd := groupCmd("users", "List, add, disable, enable and remove users")
	cmd.PersistentFlags().Bool("json", false, "print JSON instead of a table")
	cmd.AddCommand(
		e.adminCmd("list", "List every user with their status and session count", cobra.NoArgs, (*admin).usersList),
		e.adminCmd("add EMAIL", "Add a user (they can sign in if access.signup allows the address)", cobra.ExactArgs(1), (*admin).usersAdd),
		e.adminCmd("disable EMAIL", "Disable a user: they cannot sign in and their sessions end at once", cobra.ExactArgs(1), (*admin).usersDisable),
		e.adminCmd("enable EMAIL", "Enable a disabled user", cobra.ExactArgs(1), (*admin).usersEnable),
		e.adminCmd("remove EMAIL", "Remove a user with their sessions and pending codes", cobra.ExactArgs(1), (*admin).usersRemove),
	)
	return cmd
}

// adminCmd builds a leaf admin command.
func (e *env) adminCmd(use, short string, args cobra.PositionalArgs, fn func(a *admin, args []string) error) *cobra.Command {
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  usageArgs(args),
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.withAdmin(cmd, func(a *admin) error { return fn(a, args) })
		},
	}
}

type userJSON struct {
	Email       string     `json:"email"`
	Disabled    bool       `json:"disabled"`
	Sessions    int        `json:"sessions"`
	CreatedAt   time.Time  `json:"created_at"`
	LastLoginAt *time.Time `json:"last_login_at"`
}

func (a *admin) usersList(_ []string) error {
	users, err := a.st.ListUsers(a.ctx)
	if err != nil {
		return err
	}
	sessions, err := a.st.ListSessions(a.ctx, "")
	if err != nil {
		return err
	}
	live := map[string]int{}
	for _, s := range sessions {
		if sessionState(s, a.now, a.cfg.Session.IdleTimeout) == "active" {
			live[s.Email]++
		}
	}
	rows := make([]userJSON, 0, len(users))
	for _, u := range users {
		r := userJSON{Email: u.Email, Disabled: u.Disabled, Sessions: live[u.Email], CreatedAt: u.CreatedAt}
		if !u.LastLoginAt.IsZero() {
			t := u.LastLoginAt
			r.LastLoginAt = &t
		}
		rows = append(rows, r)
	}
	if a.json {
		return writeJSON(a.out, rows)
	}
	tw := newTable(a.out)
	fmt.Fprintln(tw, "EMAIL\tSTATUS\tSESSIONS\tCREATED\tLAST SIGN-IN")
	for _, r := range rows {
		status := "active"
		if r.Disabled {
			status = "disabled"
		}
		last := "never"
		if r.LastLoginAt != nil {
			last = stamp(*r.LastLoginAt)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", r.Email, status, r.Sessions, stamp(r.CreatedAt), last)
	}
	return tw.Flush()
}

type actionJSON struct {
	Action        string `json:"action"`
	Email         string `json:"email,omitempty"`
	Session       string `json:"session,omitempty"`
	Changed       bool   `json:"changed"`
	SessionsEnded int    `json:"sessions_ended"`
}

func (a *admin) usersAdd(args []string) error {
	email, err := parseEmail(args[0])
	if err != nil {
		return err
	}
	_, err = a.st.UserByEmail(a.ctx, email)
	switch {
	case err == nil:
		return a.emit(actionJSON{Action: eventUserAdded, Email: email}, email+" already exists; nothing changed")
	case !errors.Is(err, authstore.ErrNotFound):
		return err
	}
	if _, err := a.st.EnsureUser(a.ctx, email, a.now); err != nil {
		return err
	}
	if err := a.emit(actionJSON{Action: eventUserAdded, Email: email, Changed: true}, "added "+email); err != nil {
		return err
	}
	return a.record(eventUserAdded, email, "")
}

func (a *admin) usersDisable(args []string) error {
	return a.setDisabled(args[0], true)
}

func (a *admin) usersEnable(args []string) error {
	return a.setDisabled(args[0], false)
}

func (a *admin) setDisabled(arg string, disabled bool) error {
	email, err := parseEmail(arg)
	if err != nil {
		return err
	}
	u, err := a.existingUser(email)
	if err != nil {
		return err
	}
	action, verb := eventUserEnabled, "enabled"
	if disabled {
		action, verb = eventUserDisabled, "disabled"
	}
	if u.Disabled == disabled {
		return a.emit(actionJSON{Action: action, Email: email}, email+" is already "+verb+"; nothing changed")
	}
	ended := 0
	if disabled {
		if ended, err = a.liveSessions(email); err != nil {
			return err
		}
	}
	if err := a.st.SetUserDisabled(a.ctx, email, disabled); err != nil {
		if errors.Is(err, authstore.ErrNotFound) {
			return notFoundError("no user %s", email)
		}
		return err
	}
	text := verb + " " + email
	if disabled {
		text += fmt.Sprintf("; %s ended", plural(ended, "session"))
	}
	if err := a.emit(actionJSON{Action: action, Email: email, Changed: true, SessionsEnded: ended}, text); err != nil {
		return err
	}
	return a.record(action, email, "")
}

// liveSessions counts the user's stored sessions, for the report of an
// action that ends them.
func (a *admin) liveSessions(email string) (int, error) {
	ss, err := a.st.ListSessions(a.ctx, email)
	if err != nil {
		return 0, err
	}
	return len(ss), nil
}

func (a *admin) usersRemove(args []string) error {
	email, err := parseEmail(args[0])
	if err != nil {
		return err
	}
	if _, err := a.existingUser(email); err != nil {
		return err
	}
	ended, err := a.liveSessions(email)
	if err != nil {
		return err
	}
	if err := a.st.DeleteUser(a.ctx, email); err != nil {
		if errors.Is(err, authstore.ErrNotFound) {
			return notFoundError("no user %s", email)
		}
		return err
	}
	text := fmt.Sprintf("removed %s; %s ended", email, plural(ended, "session"))
	if err := a.emit(actionJSON{Action: eventUserRemoved, Email: email, Changed: true, SessionsEnded: ended}, text); err != nil {
		return err
	}
	return a.record(eventUserRemoved, email, "")
}

// ---- sessions ----

func (e *env) sessionsCmd() *cobra.Command {
	cmd := groupCmd("sessions", "List and revoke sessions")
	cmd.PersistentFlags().Bool("json", false, "print JSON instead of a table")

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

// ---- audit ----

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
	cmd.Flags().Bool("json", false, "print JSON instead of a table")
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

// ---- output helpers ----

func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
}

// stamp formats a time for tables: UTC, to the second.
func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// cell makes stored text safe for a terminal table: control characters
// (tabs, newlines, escape sequences a client put in its User-Agent) become
// spaces, so they can neither break the columns nor drive the terminal.
func cell(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
}

// shorten cuts s to n runes for a table cell.
func shorten(s string, n int) string {
	s = cell(s)
	if s == "" {
		return "-"
	}
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}
