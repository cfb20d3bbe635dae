package portal

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"

	"gatehouse/authstore"
)

// MigrationReporter tells which schema migrations the database has; /readyz
// needs every one this binary knows to be applied.
type MigrationReporter interface {
	MigrationStatus(ctx context.Context) ([]authstore.MigrationState, error)
}

const (
	// readyTTL is how long a readiness verdict is reused, so a probe storm
	// costs the store and the upstream one check per interval.
	readyTTL = 2 * time.Second
	// readyTimeout bounds each check.
	readyTimeout = 2 * time.Second
)

// readiness answers /readyz: the store answers, the schema is migrated and,
// when a health path is configured, the upstream answers it.
type readiness struct {
	store      Store
	migrations MigrationReporter // nil: not checked
	upstream   string            // health URL of the default upstream; "" = not checked
	client     *http.Client
	now        func() time.Time
	log        *slog.Logger

	mu      sync.Mutex
	checked time.Time
	report  readyReport
}

// readyReport is the verdict and, per check, "ok" or a short reason that
// holds no internal detail.
type readyReport struct {
	Ready  bool              `json:"-"`
	Status string            `json:"status"`
	Checks map[string]string `json:"checks"`
}

func newReadiness(s *Portal, opts Options) (*readiness, error) {
	r := &readiness{store: opts.Store, migrations: opts.Migrations, now: s.now, log: s.log}
	if opts.UpstreamHealthPath != "" {
		u, err := opts.Upstream.Parse(opts.UpstreamHealthPath)
		if err != nil || u.Host != opts.Upstream.Host || u.Scheme != opts.Upstream.Scheme {
			return nil, fmt.Errorf("gateway: upstream health path %q is not a path on the upstream", opts.UpstreamHealthPath)
		}
		r.upstream = u.String()
		r.client = &http.Client{
			Transport: &http.Transport{Proxy: nil, ResponseHeaderTimeout: readyTimeout, DisableCompression: true},
			Timeout:   readyTimeout,
			// A redirect answers the probe: 3xx counts as up.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	return r, nil
}

// check returns the cached verdict, or runs the checks when it is stale.
// Concurrent probes wait for one run instead of each starting their own.
func (r *readiness) check(ctx context.Context) readyReport {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	if !r.checked.IsZero() {
		if age := now.Sub(r.checked); age >= 0 && age < readyTTL {
			return r.report
		}
	}
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	rep := readyReport{Ready: true, Status: "ready", Checks: map[string]string{}}
	fail := func(name, reason string) {
		rep.Ready, rep.Status = false, "not_ready"
		rep.Checks[name] = reason
	}
	if err := r.store.Ping(ctx); err != nil {
		fail("store", "unreachable")
	} else {
		rep.Checks["store"] = "ok"
	}
	if r.migrations != nil {
		if reason := r.checkMigrations(ctx); reason != "" {
			fail("migrations", reason)
		} else {
			rep.Checks["migrations"] = "ok"
		}
	}
	if r.upstream != "" {
		if reason := r.checkUpstream(ctx); reason != "" {
			fail("upstream", reason)
		} else {
			rep.Checks["upstream"] = "ok"
		}
	}
	if rep.Ready != r.report.Ready || r.checked.IsZero() {
		// Logged when the verdict changes, not on every probe.
		if rep.Ready {
			r.log.Info("ready", "checks", rep.Checks)
		} else {
			r.log.Warn("not ready", "checks", rep.Checks)
		}
	}
	r.checked, r.report = now, rep
	return rep
}

func (r *readiness) checkMigrations(ctx context.Context) string {
	states, err := r.migrations.MigrationStatus(ctx)
	if err != nil {
		return "unknown"
	}
	for _, m := range states {
		if !m.Applied {
			return "pending"
		}
	}
	return ""
}

func (r *readiness) checkUpstream(ctx context.Context) string {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.upstream, nil)
	if err != nil {
		return "unreachable"
	}
	req.Header.Set("User-Agent", "gatehouse-readiness")
	resp, err := r.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) && ue.Timeout() {
			return "timeout"
		}
		return "unreachable"
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode >= 400 {
		return fmt.Sprintf("status %d", resp.StatusCode)
	}
	return ""
}

// handleReadyz answers 200 when every check passes and 503 otherwise, with
// the checks' results in the body.
func (s *Portal) handleReadyz(c *fiber.Ctx) error {
	rep := s.ready.check(context.Background())
	c.Set("Cache-Control", "no-store")
	if !rep.Ready {
		return c.Status(http.StatusServiceUnavailable).JSON(rep)
	}
	return c.JSON(rep)
}
