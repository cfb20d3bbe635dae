// Package gateway is Gatehouse's front server, the one Fiber app: it decides
// every request once, against the access rules and the session cookie, then
// forwards it to the upstream app with the signed-in user's identity in
// headers or answers forward-auth; requests under /.gatehouse go to the
// portal.
package gateway

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"

	"gatehouse/access"
	"gatehouse/forwarder"
	"gatehouse/mailer"
	"gatehouse/pages"
	"gatehouse/portal"
	"gatehouse/safeurl"
	"gatehouse/session"
	"gatehouse/signin"
)

// Prefix is the reserved path prefix of Gatehouse's own endpoints.
const Prefix = portal.Prefix

// Mailer delivers a finished sign-in mail.
type Mailer interface {
	Send(ctx context.Context, m mailer.Message) error
}

// Route sends requests for a host and/or path prefix to another upstream.
type Route struct {
	Host       string // "" = any; "*.example.com" matches subdomains
	PathPrefix string // "" = any
	Upstream   *url.URL
}

// Settings are the parts of the configuration that can change while the
// server runs (see Server.Reload).
type Settings struct {
	Rules         []access.Rule
	DefaultPolicy access.Policy
	// Groups maps group names to members (see access.CompileGroups);
	// they are resolved on every request, so a reload applies at once.
	Groups               map[string][]string
	Signup               access.Signup
	AllowedRedirectHosts []string
	OTP                  signin.OTP
	Mailer               Mailer
	Pages                *pages.Renderer
	AppName              string
	MaxRequestBody       int64 // 0 = unlimited
	PreserveHost         bool
	Via                  bool
}

// Options are everything New needs. Fields marked optional have defaults.
type Options struct {
	PublicURL       *url.URL
	Upstream        *url.URL
	Routes          []Route
	TrustedProxies  []netip.Prefix
	UpstreamTimeout time.Duration // optional: 0 = 30s to wait for the upstream's response headers
	Session         session.Settings
	Settings        Settings
	Store           Store
	Secret          []byte // HMAC key for codes and CSRF tokens, >= 32 bytes

	Logger          *slog.Logger     // optional: nil discards
	Metrics         *Metrics         // optional: nil records nothing
	Now             func() time.Time // optional: nil = time.Now
	Rand            io.Reader        // optional: nil = crypto/rand
	SessionCacheTTL time.Duration    // optional: 0 = 30s; how long a cached session is trusted without a store read
	SessionCacheMax int              // optional: 0 = 100000 entries
	// MaxHeaderBytes is optional: 0 = 64 KiB for the request line and
	// headers; a larger head is answered 431.
	MaxHeaderBytes int
	// Migrations is optional: when set, /readyz also needs every schema
	// migration applied.
	Migrations portal.MigrationReporter
	// UpstreamHealthPath is optional: when set, /readyz also needs a GET of
	// this path on the default upstream to answer 2xx or 3xx.
	UpstreamHealthPath string
}

// Server is Gatehouse's one HTTP server: a Fiber app that decides every
// request and forwards it, answers forward-auth, or serves Gatehouse's own
// pages.
type Server struct {
	publicURL *url.URL
	origin    string // scheme://host[:port] of publicURL
	trusted   []netip.Prefix
	session   session.Settings
	cookie    string // effective cookie name (with prefix when secure)
	store     Store
	secret    []byte
	log       *slog.Logger
	metrics   *Metrics
	now       func() time.Time
	rand      io.Reader

	cur         atomic.Pointer[runtimeSettings]
	sessions    *session.Manager
	signin      *signin.Service
	routes      *routes
	fwd         *forwarder.Forwarder
	app         *fiber.App
	crossOrigin *http.CrossOriginProtection
	conns       connTracker
	shutdown    atomic.Bool
	// listeners are those Serve was given, closed by Shutdown and Close
	// even when Serve was called after them.
	lnMu      sync.Mutex
	listeners []net.Listener
	reqIDs    *requestIDs
	portal    *portal.Portal
	streams   *streams
	// pendingEvents are audit writes still in flight (see FlushAudit).
	pendingEvents sync.WaitGroup
	auditSlots    chan struct{} // bounds concurrent audit writes
	auditDropped  atomic.Uint64
}

// maxAuditWriters bounds the audit writes in flight.
const maxAuditWriters = 256

// runtimeSettings is Settings compiled for use on the hot path.
type runtimeSettings struct {
	Settings
	access    *access.Decider
	groups    *access.GroupSet
	redirects *safeurl.Redirects
	portal    portal.Settings
}

// New returns a ready Server.
func New(opts Options) (*Server, error) {
	var errs []error
	if opts.PublicURL == nil || opts.PublicURL.Host == "" {
		errs = append(errs, errors.New("public URL is required"))
	}
	if opts.Upstream == nil || opts.Upstream.Host == "" {
		errs = append(errs, errors.New("upstream URL is required"))
	}
	if opts.Store == nil {
		errs = append(errs, errors.New("store is required"))
	}
	if len(opts.Secret) < 32 {
		errs = append(errs, errors.New("secret must be at least 32 bytes"))
	}
	if opts.Session.CookieName == "" || opts.Session.Lifetime <= 0 || opts.Session.IdleTimeout <= 0 {
		errs = append(errs, errors.New("session cookie name, lifetime and idle timeout are required"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	sessions, err := session.New(session.Options{
		Store:        opts.Store,
		Settings:     opts.Session,
		CacheTTL:     opts.SessionCacheTTL,
		CacheMax:     opts.SessionCacheMax,
		StoreTimeout: storeTimeout,
		Logger:       opts.Logger,
		Now:          opts.Now,
		Rand:         opts.Rand,
		OnCacheHit:   opts.Metrics.cacheHit,
		OnStoreError: opts.Metrics.storeError,
	})
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	s := &Server{
		publicURL:  opts.PublicURL,
		origin:     opts.PublicURL.Scheme + "://" + opts.PublicURL.Host,
		trusted:    opts.TrustedProxies,
		session:    opts.Session,
		cookie:     sessions.CookieName(),
		sessions:   sessions,
		store:      opts.Store,
		secret:     opts.Secret,
		log:        opts.Logger,
		metrics:    opts.Metrics,
		now:        opts.Now,
		rand:       opts.Rand,
		reqIDs:     newRequestIDs(),
		auditSlots: make(chan struct{}, maxAuditWriters),
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
	if err := s.Reload(opts.Settings); err != nil {
		return nil, err
	}
	s.signin, err = signin.New(signin.Options{
		Store:    opts.Store,
		Sessions: sessions,
		Secret:   opts.Secret,
		LoginURL: s.origin + Prefix + "/login",
		LinkURL:  s.origin + Prefix + "/link",
		Record:   s.recordEvent,
		OnCode:   opts.Metrics.codeEvent,
		OnSignin: opts.Metrics.signin,
		Logger:   s.log,
		Now:      s.now,
		Rand:     s.rand,
	})
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	timeout := opts.UpstreamTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	if s.routes, err = newRoutes(opts.Upstream, opts.Routes); err != nil {
		return nil, err
	}
	s.fwd = forwarder.New(forwarder.Options{HeaderTimeout: timeout, Logger: s.log})
	s.portal, err = portal.New(portal.Options{
		Store:              opts.Store,
		Sessions:           portalSessions{Manager: sessions, s: s},
		SignIn:             s.signin,
		Secret:             opts.Secret,
		SecureCookies:      opts.Session.Secure,
		Settings:           s.portalSettings,
		Facts:              portalFacts,
		Record:             s.recordEvent,
		Upstream:           opts.Upstream,
		Migrations:         opts.Migrations,
		UpstreamHealthPath: opts.UpstreamHealthPath,
		Logger:             s.log,
		Now:                s.now,
		Rand:               s.rand,
	})
	if err != nil {
		// Its one failure a caller can cause, a bad health path, is
		// already worded for the gateway's caller.
		return nil, err
	}
	s.crossOrigin = http.NewCrossOriginProtection()
	if err := s.crossOrigin.AddTrustedOrigin(s.origin); err != nil {
		return nil, fmt.Errorf("gateway: public URL as trusted origin: %w", err)
	}
	s.streams = newStreams()
	maxHeader := opts.MaxHeaderBytes
	if maxHeader <= 0 {
		maxHeader = defaultMaxHeaderBytes
	}
	s.app = s.newApp(maxHeader)
	return s, nil
}

// Reload swaps the hot-reloadable settings. In-flight requests finish with
// the settings they started with.
func (s *Server) Reload(st Settings) error {
	var errs []error
	if st.Pages == nil {
		errs = append(errs, errors.New("pages renderer is required"))
	}
	if st.Mailer == nil {
		errs = append(errs, errors.New("mailer is required"))
	}
	if st.OTP.Length < 6 || st.OTP.TTL <= 0 || st.OTP.MaxAttempts < 1 || st.OTP.RateWindow <= 0 ||
		st.OTP.PerAddress < 1 || st.OTP.PerIP < 1 || st.OTP.MaxFailuresPerHour < 1 {
		errs = append(errs, errors.New("otp settings are incomplete"))
	}
	groups, err := access.CompileGroups(st.Groups)
	if err != nil {
		errs = append(errs, err)
	}
	decider, err := access.Compile(st.Rules, st.DefaultPolicy, groups)
	if err != nil {
		errs = append(errs, err)
	}
	// The allowlist is compiled once per reload, not on every sign-in.
	signup, err := access.CompileSignup(st.Signup)
	if err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("gateway settings: %w", err)
	}
	if st.AppName == "" {
		st.AppName = "Gatehouse"
	}
	rs := &runtimeSettings{
		Settings:  st,
		access:    decider,
		groups:    groups,
		redirects: safeurl.NewRedirects(s.publicURL, st.AllowedRedirectHosts),
	}
	rs.portal = portal.Settings{
		Pages:     st.Pages,
		Redirects: rs.redirects,
		FormCSP:   formActionSources(s.origin, st.AllowedRedirectHosts),
		SignIn:    signin.Settings{OTP: st.OTP, Signup: signup, Mail: st.Pages, Mailer: st.Mailer, AppName: st.AppName},
	}
	s.cur.Store(rs)
	return nil
}

func (s *Server) settings() *runtimeSettings { return s.cur.Load() }

// portalSettings is the snapshot request c started with (its facts hold
// it), so one request never sees two configurations.
func (s *Server) portalSettings(c *fiber.Ctx) *portal.Settings {
	if f := factsOf(c); f.settings != nil {
		return &f.settings.portal
	}
	return &s.settings().portal
}

// formActionSources lists where sign-in forms may redirect to, for the CSP
// form-action directive (browsers apply it to the redirect after a POST).
func formActionSources(origin string, hosts []string) string {
	var b strings.Builder
	b.WriteString("'self' ")
	b.WriteString(origin)
	for _, h := range hosts {
		h = strings.ToLower(strings.TrimSpace(h))
		if h == "" || strings.ContainsAny(h, " ;,'\"") {
			continue
		}
		b.WriteString(" https://" + h + " http://" + h)
	}
	return b.String()
}
