// Command gatehouse runs the Gatehouse login gate and its admin tools.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Environ(), os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "gatehouse:", err)
		os.Exit(exitCode(err))
	}
}

// exitError carries a specific exit status.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func exitCode(err error) int {
	var e *exitError
	if errors.As(err, &e) {
		return e.code
	}
	return exitRuntime
}

// env is what every subcommand may use from the process.
type env struct {
	environ []string
	stdout  io.Writer
	stderr  io.Writer
}

// run builds the command tree and executes it; it is main without os.Exit,
// so tests can call it.
func run(ctx context.Context, args, environ []string, stdout, stderr io.Writer) error {
	e := &env{environ: environ, stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:           "gatehouse",
		Short:         "Gatehouse: an email-code login gate in front of any web app",
		SilenceUsage:  true,
		SilenceErrors: true,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageError("unknown command %q; see gatehouse --help", args[0])
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.serve(cmd.Context(), configPath(cmd, environ))
		},
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return &exitError{code: exitUsage, err: err}
	})
	root.PersistentFlags().String("config", "", "config file (default: $GATEHOUSE_CONFIG or config.yaml)")
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(
		e.serveCmd(), e.demoCmd(), e.checkConfigCmd(), e.versionCmd(), e.healthcheckCmd(),
		e.migrateCmd(), e.usersCmd(), e.sessionsCmd(), e.auditCmd(),
	)
	return root.ExecuteContext(ctx)
}

// configPath: --config, else GATEHOUSE_CONFIG, else config.yaml.
func configPath(cmd *cobra.Command, environ []string) string {
	if p, _ := cmd.Flags().GetString("config"); p != "" {
		return p
	}
	if p := lookupEnv(environ, "GATEHOUSE_CONFIG"); p != "" {
		return p
	}
	return "config.yaml"
}

func lookupEnv(environ []string, key string) string {
	for _, kv := range environ {
		if len(kv) > len(key) && kv[len(key)] == '=' && kv[:len(key)] == key {
			return kv[len(key)+1:]
		}
	}
	return ""
}

func (e *env) serveCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "serve",
		Short: "Run the gateway (the default command)",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.serve(cmd.Context(), configPath(cmd, e.environ))
		},
	}
}

func (e *env) versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, err := fmt.Fprintf(e.stdout, "gatehouse %s\n", version)
			return err
		},
	}
}

func (e *env) checkConfigCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "check-config",
		Short: "Validate the config file and name every bad key",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := configPath(cmd, e.environ)
			if _, err := loadConfig(path, e.environ); err != nil {
				return &exitError{code: 2, err: err}
			}
			_, err := fmt.Fprintf(e.stdout, "%s: ok\n", path)
			return err
		},
	}
}
