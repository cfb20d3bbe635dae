package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"gatehouse/authstore"
	"gatehouse/config"
	"gatehouse/gateway"
	"gatehouse/mailer"
	"gatehouse/pages"
)

// loadConfig loads and validates a config file, naming the file in errors.
func loadConfig(path string, environ []string) (*config.Config, error) {
	cfg, err := config.Load(path, environ)
	if err != nil {
		return nil, fmt.Errorf("invalid configuration in %s:\n%w", path, err)
	}
	return cfg, nil
}

func newLogger(cfg config.Log, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.Level}
	if cfg.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func (e *env) serve(ctx context.Context, path string) error {
	cfg, err := loadConfig(path, e.environ)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	reload := func() (*config.Config, error) { return loadConfig(path, e.environ) }
	return e.runGateway(ctx, cfg, reload, nil)
}

// openStore opens and migrates the store named by the config.
func openStore(ctx context.Context, cfg *config.Config, log *slog.Logger) (*authstore.Store, error) {
	st, err := authstore.Open(ctx, authstore.Options{
		Driver:          cfg.Database.Driver,
		DSN:             cfg.Database.DSN,
		MaxOpenConns:    cfg.Database.MaxOpenConns,
		MaxIdleConns:    cfg.Database.MaxIdleConns,
		ConnMaxLifetime: cfg.Database.ConnMaxLifetime,
		Logger:          log,
	})
	if err != nil {
		return nil, fmt.Errorf("open %s database: %w", cfg.Database.Driver, err)
	}
	return st, nil
}

// settingsFrom maps the hot-reloadable part of the config to the gateway.
func settingsFrom(cfg *config.Config, consoleOut io.Writer) (gateway.Settings, error) {
	rules := make([]gateway.Rule, 0, len(cfg.Access.Rules))
	for i, r := range cfg.Access.Rules {
		p, err := gateway.ParsePolicy(r.Policy)
		if err != nil {
			return gateway.Settings{}, fmt.Errorf("access.rules[%d].policy: %w", i, err)
		}
		rules = append(rules, gateway.Rule{Paths: r.Paths, Methods: r.Methods, Hosts: r.Hosts, Policy: p, Emails: r.Emails, Domains: r.Domains})
	}
	def, err := gateway.ParsePolicy(cfg.Access.Default)
	if err != nil {
		return gateway.Settings{}, fmt.Errorf("access.default: %w", err)
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
	m, err := newMailer(cfg.Mail, consoleOut)
	if err != nil {
		return gateway.Settings{}, err
	}
	return gateway.Settings{
		Rules:                rules,
		DefaultPolicy:        def,
		Signup:               gateway.Signup{Open: cfg.Access.Signup == "open", Emails: cfg.Access.AllowedEmails, Domains: cfg.Access.AllowedDomains},
		AllowedRedirectHosts: cfg.Redirect.AllowedHosts,
		OTP: gateway.OTPSettings{
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
		MaxRequestBody: cfg.Upstream.MaxRequestBody,
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

// runGateway starts everything the config names and serves until ctx ends.
// ready, if not nil, receives the bound address once the server listens.
func (e *env) runGateway(ctx context.Context, cfg *config.Config, reload func() (*config.Config, error), ready func(addr string)) error {
	log := newLogger(cfg.Log, e.stderr)
	if cfg.Mail.Driver == "log" {
		log.Warn("mail driver is 'log': sign-in codes are printed to the console, not mailed. Development only.")
	}
	st, err := openStore(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		return fmt.Errorf("migrate database: %w", err)
	}
	secret := []byte(cfg.Secret)
	if len(secret) == 0 {
		if secret, err = st.Secret(ctx); err != nil {
			return fmt.Errorf("load secret: %w", err)
		}
	}
	settings, err := settingsFrom(cfg, e.stderr)
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics, err := gateway.NewMetrics(reg)
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	routes := make([]gateway.Route, 0, len(cfg.Routes))
	for _, r := range cfg.Routes {
		routes = append(routes, gateway.Route{Host: r.Host, PathPrefix: r.PathPrefix, Upstream: r.Upstream})
	}
	gw, err := gateway.New(gateway.Options{
		PublicURL:       cfg.Server.PublicURL,
		Upstream:        cfg.Upstream.URL,
		UpstreamTimeout: cfg.Upstream.Timeout,
		Routes:          routes,
		TrustedProxies:  cfg.Server.TrustedProxies,
		Session: gateway.SessionSettings{
			CookieName:   cfg.Session.CookieName,
			CookieDomain: cfg.Session.CookieDomain,
			Lifetime:     cfg.Session.Lifetime,
			IdleTimeout:  cfg.Session.IdleTimeout,
			Secure:       cfg.CookieSecure(),
		},
		Settings: settings,
		Store:    st,
		Secret:   secret,
		Logger:   log,
		Metrics:  metrics,
	})
	if err != nil {
		return err
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var bg sync.WaitGroup
	defer bg.Wait()
	defer cancel()
	bg.Go(func() {
		if err := st.WatchRevocations(ctx, gw.Revoked); err != nil && ctx.Err() == nil {
			log.Error("revocation feed stopped", "err", err)
		}
	})
	bg.Go(func() { housekeeping(ctx, st, cfg, log) })
	if reload != nil {
		bg.Go(func() { watchReload(ctx, cfg, reload, gw, e.stderr, log) })
	}

	if cfg.Metrics.Listen != "" {
		ms := &http.Server{Addr: cfg.Metrics.Listen, Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), ReadHeaderTimeout: 10 * time.Second}
		ln, err := net.Listen("tcp", cfg.Metrics.Listen)
		if err != nil {
			return fmt.Errorf("metrics.listen: %w", err)
		}
		bg.Go(func() { _ = ms.Serve(ln) })
		defer ms.Close()
		log.Info("metrics listening", "addr", ln.Addr().String())
	}

	srv := &http.Server{
		Handler:           gw,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	ln, err := net.Listen("tcp", cfg.Server.Listen)
	if err != nil {
		return fmt.Errorf("server.listen: %w", err)
	}
	log.Info("gatehouse listening", "addr", ln.Addr().String(), "public_url", cfg.Server.PublicURL.String(), "upstream", cfg.Upstream.URL.String(), "version", version)
	if ready != nil {
		ready(ln.Addr().String())
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down", "timeout", cfg.Server.ShutdownTimeout.String())
	sctx, scancel := context.WithTimeout(context.Background(), cfg.Server.ShutdownTimeout)
	defer scancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("shutdown did not finish in time; closing remaining connections", "err", err)
		_ = srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}

// housekeeping prunes what has expired: sessions, counters, audit events
// past their retention.
func housekeeping(ctx context.Context, st *authstore.Store, cfg *config.Config, log *slog.Logger) {
	t := time.NewTicker(10 * time.Minute)
	defer t.Stop()
	for {
		now := time.Now().UTC()
		if _, err := st.DeleteExpiredSessions(ctx, now, cfg.Session.IdleTimeout); err != nil && ctx.Err() == nil {
			log.Warn("prune sessions", "err", err)
		}
		if _, err := st.PruneCounters(ctx, now.Add(-2*time.Hour-cfg.OTP.RateLimit.Window)); err != nil && ctx.Err() == nil {
			log.Warn("prune counters", "err", err)
		}
		if _, err := st.PruneEvents(ctx, now.Add(-cfg.Audit.Retention)); err != nil && ctx.Err() == nil {
			log.Warn("prune audit events", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// watchReload re-reads the config on SIGHUP and applies what can change
// while running; a bad file is rejected and the old config kept.
func watchReload(ctx context.Context, cur *config.Config, reload func() (*config.Config, error), gw *gateway.Server, console io.Writer, log *slog.Logger) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
		}
		next, err := reload()
		if err != nil {
			log.Error("config reload rejected; keeping the running config", "err", strings.ReplaceAll(err.Error(), "\n", "; "))
			continue
		}
		settings, err := settingsFrom(next, console)
		if err == nil {
			err = gw.Reload(settings)
		}
		if err != nil {
			log.Error("config reload rejected; keeping the running config", "err", err)
			continue
		}
		if keys := config.RestartRequired(cur, next); len(keys) > 0 {
			log.Warn("config reloaded; these changes need a restart to apply", "keys", strings.Join(keys, ","))
		} else {
			log.Info("config reloaded")
		}
		cur = next
	}
}
