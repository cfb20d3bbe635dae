// Package wiring turns a validated configuration into Gatehouse's running
// parts: the store, the gateway's settings and options. It is the one place
// where config keys meet components, shared by the CLI and by tests that run
// Gatehouse from a config file.
package wiring

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"path/filepath"
	"strings"

	"gatehouse/authstore"
	"gatehouse/config"
	"gatehouse/gateway"
	"gatehouse/mailer"
	"gatehouse/pages"
	"gatehouse/session"
	"gatehouse/signin"
)

// OpenStore opens the store named by the config; the caller migrates it.
func OpenStore(ctx context.Context, cfg *config.Config, log *slog.Logger) (*authstore.Store, error) {
	st, err := authstore.Open(ctx, authstore.Options{
		Driver:          cfg.Database.Driver,
		DSN:             cfg.Database.DSN,
		MaxOpenConns:    cfg.Database.MaxOpenConns,
		MaxIdleConns:    cfg.Database.MaxIdleConns,
		ConnMaxLifetime: cfg.Database.ConnMaxLifetime,
		Logger:          log,
	})
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", DatabaseName(cfg), err)
	}
	return st, nil
}

// DatabaseName names the configured database for messages: the SQLite
// file, or the PostgreSQL URL without its password (user info keeps the
// user name only; the query, which may hold a password too, is dropped).
func DatabaseName(cfg *config.Config) string {
	dsn := cfg.Database.DSN
	if cfg.Database.Driver != "postgres" {
		path, _, _ := strings.Cut(strings.TrimPrefix(dsn, "file:"), "?")
		if abs, err := filepath.Abs(path); err == nil {
			path = abs
		}
		return "SQLite database " + path
	}
	u, err := url.Parse(dsn)
	if err != nil || u.Host == "" {
		return "PostgreSQL database"
	}
	if u.User != nil {
		u.User = url.User(u.User.Username())
	}
	u.RawQuery, u.Fragment = "", ""
	return "PostgreSQL database " + u.String()
}

// Settings maps the hot-reloadable part of the config to the gateway. The
// log mail driver writes to console.
func Settings(cfg *config.Config, console io.Writer) (gateway.Settings, error) {
	// The same conversion check-config compiles: what passed it starts.
	rules, def, signup, err := cfg.Access.AccessRules()
	if err != nil {
		return gateway.Settings{}, err
	}
	renderer, err := pages.New(pages.Options{
		AppName:         cfg.UI.AppName,
		Logo:            cfg.UI.Logo,
		AccentColor:     cfg.UI.AccentColor,
		TemplatesDir:    cfg.UI.TemplatesDir,
		DefaultLanguage: cfg.UI.DefaultLanguage,
		Prefix:          gateway.Prefix,
	})
	if err != nil {
		return gateway.Settings{}, fmt.Errorf("ui: %w", err)
	}
	m, err := newMailer(cfg.Mail, console)
	if err != nil {
		return gateway.Settings{}, err
	}
	return gateway.Settings{
		Rules:                rules,
		DefaultPolicy:        def,
		Groups:               cfg.Groups,
		Signup:               signup,
		AllowedRedirectHosts: cfg.Redirect.AllowedHosts,
		OTP: signin.OTP{
			Length:             cfg.OTP.Length,
			TTL:                cfg.OTP.TTL,
			MaxAttempts:        cfg.OTP.MaxAttempts,
			ResendCooldown:     cfg.OTP.ResendCooldown,
			MaxFailuresPerHour: cfg.OTP.MaxFailuresPerHour,
			RateWindow:         cfg.OTP.RateLimit.Window,
			PerAddress:         cfg.OTP.RateLimit.PerAddress,
			PerIP:              cfg.OTP.RateLimit.PerIP,
		},
		Mailer:         m,
		Pages:          renderer,
		AppName:        cfg.UI.AppName,
		MaxRequestBody: int64(cfg.Upstream.MaxRequestBody),
		PreserveHost:   cfg.Upstream.PreserveHost,
		Via:            cfg.Upstream.Via,
	}, nil
}

func newMailer(cfg config.Mail, console io.Writer) (gateway.Mailer, error) {
	if cfg.Driver == "log" {
		return mailer.NewLog(console), nil
	}
	m, err := mailer.NewSMTP(mailer.SMTPOptions{
		Host:               cfg.SMTP.Host,
		Port:               cfg.SMTP.Port,
		Username:           cfg.SMTP.Username,
		Password:           cfg.SMTP.Password,
		TLS:                cfg.SMTP.TLS,
		From:               cfg.From,
		InsecureSkipVerify: cfg.SMTP.InsecureSkipVerify,
	})
	if err != nil {
		return nil, fmt.Errorf("mail: %w", err)
	}
	return m, nil
}

// Options maps the config to the gateway's options; secret is the
// configured one or the store's generated one.
func Options(cfg *config.Config, st *authstore.Store, secret []byte, settings gateway.Settings, log *slog.Logger, metrics *gateway.Metrics) gateway.Options {
	routes := make([]gateway.Route, 0, len(cfg.Routes))
	for _, r := range cfg.Routes {
		routes = append(routes, gateway.Route{Host: r.Host, PathPrefix: r.PathPrefix, Upstream: r.Upstream})
	}
	return gateway.Options{
		PublicURL:       cfg.Server.PublicURL,
		Upstream:        cfg.Upstream.URL,
		UpstreamTimeout: cfg.Upstream.Timeout,
		MaxHeaderBytes:  int(cfg.Server.MaxHeaderBytes),
		Routes:          routes,
		TrustedProxies:  cfg.Server.TrustedProxies,
		Session: session.Settings{
			CookieName:   cfg.Session.CookieName,
			CookieDomain: cfg.Session.CookieDomain,
			Lifetime:     cfg.Session.Lifetime,
			IdleTimeout:  cfg.Session.IdleTimeout,
			Secure:       cfg.CookieSecure(),
		},
		Settings:           settings,
		Store:              st,
		Secret:             secret,
		Logger:             log,
		Metrics:            metrics,
		Migrations:         st,
		UpstreamHealthPath: cfg.Upstream.HealthPath,
	}
}
