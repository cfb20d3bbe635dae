package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"gatehouse/authstore"
	"gatehouse/config"
	"gatehouse/internal/wiring"
)

func (e *env) healthcheckCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "healthcheck",
		Short: "Exit 0 when the running server's /.gatehouse/healthz answers 200 (for container health checks)",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfig(configPath(cmd, e.environ), e.environ)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			return healthcheck(cmd.Context(), cfg.Server.Listen)
		},
	}
}

// healthcheck asks the server on its listen address, over loopback when it
// listens on every interface.
func healthcheck(ctx context.Context, listen string) error {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return fmt.Errorf("server.listen: %w", err)
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort(host, port)+"/.gatehouse/healthz", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("health check: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("health check: status %d", resp.StatusCode)
	}
	return nil
}

func (e *env) migrateCmd() *cobra.Command {
	cmd := groupCmd("migrate", "Apply or inspect database migrations")
	cmd.AddCommand(&cobra.Command{
		Use:   "up",
		Short: "Apply pending migrations",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.withStore(cmd, func(ctx context.Context, cfg *config.Config, st *authstore.Store) error {
				if err := st.Migrate(ctx); err != nil {
					return fmt.Errorf("migrate: %w", err)
				}
				_, err := fmt.Fprintf(e.stdout, "%s database is up to date\n", cfg.Database.Driver)
				return err
			})
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "status",
		Short: "List migrations and whether each is applied",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.withStore(cmd, func(ctx context.Context, cfg *config.Config, st *authstore.Store) error {
				states, err := st.MigrationStatus(ctx)
				if err != nil {
					return err
				}
				tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "MIGRATION\tSTATUS\tAPPLIED AT")
				for _, m := range states {
					status, at := "pending", ""
					if m.Applied {
						status, at = "applied", m.AppliedAt.UTC().Format(time.RFC3339)
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\n", m.Name, status, at)
				}
				return tw.Flush()
			})
		},
	})
	return cmd
}

// withStore loads the config and opens its store for an admin command.
func (e *env) withStore(cmd *cobra.Command, fn func(ctx context.Context, cfg *config.Config, st *authstore.Store) error) error {
	cfg, err := loadConfig(configPath(cmd, e.environ), e.environ)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	ctx := cmd.Context()
	st, err := wiring.OpenStore(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	defer st.Close()
	return fn(ctx, cfg, st)
}
