package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"gatehouse/authstore"
	"gatehouse/config"
	"gatehouse/framing"
	"gatehouse/gateway"
	"gatehouse/internal/logwriter"
	"gatehouse/internal/wiring"
)

// loadConfig loads and validates a config file, naming the file in errors.
func loadConfig(path string, environ []string) (*config.Config, error) {
	cfg, err := config.Load(path, environ)
	if err != nil {
		return nil, fmt.Errorf("invalid configuration in %s:\n%w", path, err)
	}
	return cfg, nil
}

// logDelay is how late a log line may be written: long enough to batch a
// busy second's access log into a few writes, short enough to watch.
const logDelay = 100 * time.Millisecond

// newLogger builds the process logger. Its level is level, which a config
// reload may change; the format is fixed for the life of the process.
func newLogger(format string, level *slog.LevelVar, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func (e *env) serve(ctx context.Context, path string) error {
	cfg, err := loadConfig(path, e.environ)
	if err != nil {
		return &exitError{code: exitUsage, err: err}
	}
	rl := &reloader{path: path, load: func() (*config.Config, error) { return loadConfig(path, e.environ) }}
	return e.runGateway(ctx, cfg, rl, nil)
}

// runGateway starts everything the config names and serves until ctx ends,
// then shuts down gracefully. rl, if not nil, reloads the config on SIGHUP
// and when its file changes. ready, if not nil, receives the bound address
// once the server listens.
func (e *env) runGateway(ctx context.Context, cfg *config.Config, rl *reloader, ready func(addr string)) error {
	level := new(slog.LevelVar)
	level.Set(cfg.Log.Level)
	// Lines are written in batches, at most logDelay late: one write per
	// access log line would cost more than the request it records.
	lw := logwriter.New(e.stderr, logDelay, 0)
	defer func() { _ = lw.Close() }()
	log := newLogger(cfg.Log.Format, level, lw)
	if cfg.Mail.Driver == "log" {
		log.Warn("mail driver is 'log': sign-in codes are printed to the console, not mailed. Development only.")
	}
	st, err := wiring.OpenStore(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer func() {
		if err := st.Close(); err != nil {
			log.Warn("close store", "err", err)
		}
	}()
	if err := st.Migrate(ctx); err != nil {
		return fmt.Errorf("migrate %s: %w", wiring.DatabaseName(cfg), err)
	}
	secret := []byte(cfg.Secret)
	if len(secret) == 0 {
		if secret, err = st.Secret(ctx); err != nil {
			return fmt.Errorf("load secret: %w", err)
		}
	}
	settings, err := wiring.Settings(cfg, e.stderr)
	if err != nil {
		return err
	}
	reg, metrics, reloads, err := newMetrics()
	if err != nil {
		return err
	}
	gw, err := gateway.New(wiring.Options(cfg, st, secret, settings, log, metrics))
	if err != nil {
		return err
	}
	live := &liveConfig{}
	live.cfg.Store(cfg)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var bg sync.WaitGroup
	defer bg.Wait()
	defer cancel()
	// Every session deleted by any process on this database (another
	// replica, the CLI) is evicted from this one's cache.
	bg.Go(func() {
		if err := st.WatchRevocations(ctx, gw.Revoked); err != nil && ctx.Err() == nil {
			log.Error("revocation feed stopped", "err", err)
		}
	})
	bg.Go(func() { housekeeping(ctx, st, live, metrics, log) })
	if rl != nil {
		apply := func(next *config.Config) error {
			s, err := wiring.Settings(next, e.stderr)
			if err == nil {
				err = gw.Reload(s)
			}
			if err != nil {
				return err
			}
			level.Set(next.Log.Level)
			live.cfg.Store(next)
			return nil
		}
		w := &reloadWatcher{rl: rl, cur: cfg, apply: apply, log: log, reloads: reloads}
		bg.Go(func() { w.run(ctx) })
	}

	if cfg.Metrics.Listen != "" {
		stop, err := serveMetrics(cfg.Metrics.Listen, reg, &bg, log)
		if err != nil {
			return err
		}
		defer stop()
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
	// The framing guard refuses requests whose length is ambiguous on the
	// wire, which a proxy in front might frame differently.
	go func() { errc <- gw.Serve(framing.Guard(ln)) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	return shutdown(gw, errc, live.cfg.Load().Server.ShutdownTimeout, log)
}

// newMetrics builds the registry the metrics listener serves: the Go and
// process collectors, the gateway's series and the config reload counter.
func newMetrics() (*prometheus.Registry, *gateway.Metrics, *prometheus.CounterVec, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics, err := gateway.NewMetrics(reg)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("metrics: %w", err)
	}
	reloads := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gatehouse_config_reloads_total", Help: "Config reloads by result (applied, rejected).",
	}, []string{"result"})
	if err := reg.Register(reloads); err != nil {
		return nil, nil, nil, fmt.Errorf("metrics: %w", err)
	}
	return reg, metrics, reloads, nil
}

// serveMetrics serves the Prometheus exposition on its own listener, apart
// from public traffic; stop closes it.
func serveMetrics(listen string, reg *prometheus.Registry, bg *sync.WaitGroup, log *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("metrics.listen: %w", err)
	}
	ms := &http.Server{Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), ReadHeaderTimeout: 10 * time.Second}
	bg.Go(func() { _ = ms.Serve(ln) })
	log.Info("metrics listening", "addr", ln.Addr().String())
	return func() { _ = ms.Close() }, nil
}

// shutdown stops accepting, lets in-flight requests finish within timeout,
// then closes what is left and waits (at most 5 s) for the last audit
// events to be written, before the caller closes the store. A second
// SIGINT or SIGTERM closes at once.
func shutdown(gw *gateway.Server, errc <-chan error, timeout time.Duration, log *slog.Logger) error {
	began := time.Now()
	log.Info("shutting down: finishing in-flight requests", "timeout", timeout.String())
	again := make(chan os.Signal, 1)
	signal.Notify(again, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(again)
	sctx, scancel := context.WithTimeout(context.Background(), timeout)
	defer scancel()
	go func() {
		select {
		case <-again:
			log.Warn("second signal: closing every connection now")
			scancel()
		case <-sctx.Done():
		}
	}()
	if err := gw.Shutdown(sctx); err != nil {
		log.Warn("shutdown did not finish in time; closed remaining connections", "err", err)
	}
	serveErr := <-errc
	fctx, fcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer fcancel()
	if err := gw.FlushAudit(fctx); err != nil {
		log.Warn("shutting down: audit events may be lost", "err", err)
	}
	if serveErr != nil {
		return fmt.Errorf("serve: %w", serveErr)
	}
	log.Info("stopped", "after", time.Since(began).Round(time.Millisecond).String())
	return nil
}

// liveConfig is the config in force, replaced by each accepted reload.
type liveConfig struct {
	cfg atomic.Pointer[config.Config]
}

const (
	// pruneInterval spaces the pruning of expired sessions, counters,
	// audit events and old revocations.
	pruneInterval = 10 * time.Minute
	// gaugeInterval spaces the count behind the active sessions gauge, so
	// a scrape never queries the store.
	gaugeInterval = 30 * time.Second
	// revocationHistory is how long the revocation feed keeps its rows: a
	// watcher reads them within a second; one that was stopped for longer
	// than this is told to drop its whole cache instead.
	revocationHistory = 24 * time.Hour
)

// housekeeping prunes what has expired (sessions, counters, audit events
// past audit.retention, the revocation feed's history) and keeps the
// active sessions gauge current. It
// reads the config in force at each round, so a reloaded retention applies.
func housekeeping(ctx context.Context, st *authstore.Store, live *liveConfig, metrics *gateway.Metrics, log *slog.Logger) {
	prune := time.NewTicker(pruneInterval)
	defer prune.Stop()
	gauge := time.NewTicker(gaugeInterval)
	defer gauge.Stop()
	failed := func(what string, err error) {
		if ctx.Err() == nil {
			metrics.StoreError()
			log.Warn(what, "err", err)
		}
	}
	pruneOnce := func() {
		cfg := live.cfg.Load()
		now := time.Now().UTC()
		if _, err := st.DeleteExpiredSessions(ctx, now, cfg.Session.IdleTimeout); err != nil {
			failed("prune sessions", err)
		}
		if _, err := st.PruneCounters(ctx, now.Add(-2*time.Hour-cfg.OTP.RateLimit.Window)); err != nil {
			failed("prune counters", err)
		}
		// Expired codes are useless; an hour's grace keeps "expired"
		// answers for codes that just ran out.
		if _, err := st.PruneCodes(ctx, now.Add(-time.Hour)); err != nil {
			failed("prune codes", err)
		}
		if _, err := st.PruneRevocations(ctx, now.Add(-revocationHistory)); err != nil {
			failed("prune revocations", err)
		}
		if n, err := st.PruneEvents(ctx, now.Add(-cfg.Audit.Retention)); err != nil {
			failed("prune audit events", err)
		} else if n > 0 {
			log.Info("pruned audit events past retention", "count", n, "retention", cfg.Audit.Retention.String())
		}
	}
	countOnce := func() {
		n, err := st.CountSessions(ctx, time.Now())
		if err != nil {
			failed("count sessions", err)
			return
		}
		metrics.SetActiveSessions(n)
	}
	pruneOnce()
	countOnce()
	for {
		select {
		case <-ctx.Done():
			return
		case <-prune.C:
			pruneOnce()
		case <-gauge.C:
			countOnce()
		}
	}
}
