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

// jsonFlag gives cmd (and its subcommands) the one --json flag every
// listing command shares.
func jsonFlag(cmd *cobra.Command) {
	cmd.PersistentFlags().Bool("json", false, "print JSON instead of a table")
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
