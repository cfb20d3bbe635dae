// Package portal serves Gatehouse's own pages and JSON API under
// /.gatehouse, and renders every error page Gatehouse shows.
package portal

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"time"

	"github.com/gofiber/fiber/v2"

	"gatehouse/authstore"
	"gatehouse/pages"
	"gatehouse/safeurl"
	"gatehouse/session"
	"gatehouse/signin"
)

// Prefix is the reserved path prefix of Gatehouse's own endpoints.
const Prefix = "/.gatehouse"

// Facts are what the gateway learned about a request that the pages use.
type Facts struct {
	IP        string // the client, believing X-Forwarded-For from trusted proxies only
	RequestID string
	Own       bool // under /.gatehouse
}

// Settings are the parts of the pages' configuration that can change while
// the server runs.
type Settings struct {
	Pages     *pages.Renderer
	Redirects *safeurl.Redirects
	FormCSP   string // the form-action sources of the pages' CSP
	SignIn    signin.Settings
}

// Store is what the pages read and change directly: the account page's
// sessions, and the health check's ping.
type Store interface {
	ListSessions(ctx context.Context, email string) ([]authstore.Session, error)
	DeleteUserSessions(ctx context.Context, email string, exceptID string) (int, error)
	Ping(ctx context.Context) error
}

// Sessions is the session manager as the pages use it. The gateway's
// implementation also ends a session's open streams when it ends or
// revokes it.
type Sessions interface {
	Authenticate(ctx context.Context, token string) (session.Identity, error)
	End(ctx context.Context, id string) error
	Revoke(id string)
	Cookie(token string) string
	ClearCookie() string
	CookieName() string
}

// Options are everything New needs. Fields marked optional have defaults.
type Options struct {
	Store    Store
	Sessions Sessions
	SignIn   *signin.Service
	Secret   []byte // HMAC key for CSRF tokens, >= 32 bytes
	// SecureCookies sets the Secure attribute (and the __Host- prefix of
	// the CSRF cookie).
	SecureCookies bool
	// Settings returns the settings request c runs with: one snapshot for
	// the whole request, even when a reload lands halfway through it.
	Settings func(c *fiber.Ctx) *Settings
	// Facts returns what the gateway recorded about the request.
	Facts func(c *fiber.Ctx) Facts
	// Record records a security event; nil records nothing.
	Record func(ip, ua, typ, email, outcome, detail string)

	// Upstream is the default upstream, for the readiness check of
	// UpstreamHealthPath.
	Upstream *url.URL
	// Migrations is optional: when set, /readyz also needs every schema
	// migration applied.
	Migrations MigrationReporter
	// UpstreamHealthPath is optional: when set, /readyz also needs a GET of
	// this path on the default upstream to answer 2xx or 3xx.
	UpstreamHealthPath string

	Logger *slog.Logger     // optional: nil discards
	Now    func() time.Time // optional: nil = time.Now
	Rand   io.Reader        // optional: nil = crypto/rand
}

// Portal serves Gatehouse's own pages and API.
type Portal struct {
	store    Store
	sessions Sessions
	signin   *signin.Service
	secret   []byte
	secure   bool
	cookie   string // the session cookie's name
	settings func(c *fiber.Ctx) *Settings
	facts    func(c *fiber.Ctx) Facts
	record   func(ip, ua, typ, email, outcome, detail string)
	ready    *readiness
	log      *slog.Logger
	now      func() time.Time
	rand     io.Reader
}

// New returns a ready Portal.
func New(opts Options) (*Portal, error) {
	var errs []error
	if opts.Store == nil {
		errs = append(errs, errors.New("store is required"))
	}
	if opts.Sessions == nil {
		errs = append(errs, errors.New("sessions are required"))
	}
	if opts.SignIn == nil {
		errs = append(errs, errors.New("sign-in service is required"))
	}
	if len(opts.Secret) < 32 {
		errs = append(errs, errors.New("secret must be at least 32 bytes"))
	}
	if opts.Settings == nil || opts.Facts == nil {
		errs = append(errs, errors.New("settings and facts are required"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("portal: %w", err)
	}
	s := &Portal{
		store:    opts.Store,
		sessions: opts.Sessions,
		signin:   opts.SignIn,
		secret:   opts.Secret,
		secure:   opts.SecureCookies,
		cookie:   opts.Sessions.CookieName(),
		settings: opts.Settings,
		facts:    opts.Facts,
		record:   opts.Record,
		log:      opts.Logger,
		now:      opts.Now,
		rand:     opts.Rand,
	}
	if s.record == nil {
		s.record = func(ip, ua, typ, email, outcome, detail string) {}
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.rand == nil {
		s.rand = rand.Reader
	}
	var err error
	if s.ready, err = newReadiness(s, opts); err != nil {
		return nil, err
	}
	return s, nil
}

// Register adds the pages' and the API's routes to g, the router for
// Prefix.
func (s *Portal) Register(g fiber.Router) {
	g.Get("/healthz", s.handleHealth)
	g.Get("/readyz", s.handleReadyz)
	g.Get("/static/*", s.handleStatic)

	g.Get("/login", s.handleLoginPage)
	g.Post("/login", s.requireCSRF, s.handleLogin)
	g.Get("/verify", s.redirectToLogin)
	g.Post("/verify", s.requireCSRF, s.handleVerify)
	g.Get("/link", s.handleLinkPage)
	g.Post("/link", s.requireCSRF, s.handleLink)
	g.Get("/logout", s.redirectToAccount)
	g.Post("/logout", s.requireCSRF, s.handleLogout)
	g.Get("/account", s.handleAccount)
	g.Post("/logout-others", s.requireCSRF, s.handleLogoutOthers)
	g.Post("/sessions/revoke", s.requireCSRF, s.handleRevoke)

	api := g.Group("/api", s.requireJSON)
	api.Post("/otp/send", s.apiSend)
	api.Post("/otp/verify", s.apiVerify)
	api.Get("/session", s.apiSession)
	api.Post("/sign-out", s.apiSignOut)
}

// LoginPath is the sign-in page's path with rd.
func LoginPath(rd string) string {
	return Prefix + "/login?rd=" + url.QueryEscape(rd)
}
