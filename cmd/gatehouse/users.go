package main

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"gatehouse/access"
	"gatehouse/authstore"
)

// The users command group: list, add, disable, enable, remove.

func (e *env) usersCmd() *cobra.Command {
	cmd := groupCmd("users", "List, add, disable, enable and remove users")
	jsonFlag(cmd)
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
	Groups      []string   `json:"groups"`
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
	// Groups come from the config, as the running server resolves them.
	groups, err := access.CompileGroups(a.cfg.Groups)
	if err != nil {
		return err
	}
	rows := make([]userJSON, 0, len(users))
	for _, u := range users {
		r := userJSON{Email: u.Email, Disabled: u.Disabled, Sessions: live[u.Email], CreatedAt: u.CreatedAt,
			Groups: append([]string{}, groups.Of(u.Email)...)}
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
	fmt.Fprintln(tw, "EMAIL\tSTATUS\tGROUPS\tSESSIONS\tCREATED\tLAST SIGN-IN")
	for _, r := range rows {
		status := "active"
		if r.Disabled {
			status = "disabled"
		}
		last := "never"
		if r.LastLoginAt != nil {
			last = stamp(*r.LastLoginAt)
		}
		g := strings.Join(r.Groups, ",")
		if g == "" {
			g = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", r.Email, status, g, r.Sessions, stamp(r.CreatedAt), last)
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
