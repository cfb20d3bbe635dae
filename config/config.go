// Package config turns a YAML file and GATEHOUSE_* environment variables into
// a typed, completely validated Config.
//
// Loading uses a private viper instance that holds a default for every key, so
// every key can be overridden from the environment. Only the environment slice
// handed to Load, Parse or Default is read; the process environment is never
// consulted behind the caller's back. Every problem found is reported at once,
// one per line, each line starting with the dotted key (or environment
// variable) it concerns.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/viper"
)

// Config is Gatehouse's validated configuration. Durations, URLs, sizes,
// network prefixes and log levels are already parsed.
type Config struct {
	Server   Server
	Upstream Upstream
	Routes   []Route
	Database Database
	// Secret keys the HMAC of sign-in codes and other server-side hashes.
	// Empty means a secret is generated once and kept in the database;
	// otherwise it has at least 32 characters.
	Secret   string
	Session  Session
	OTP      OTP
	Mail     Mail
	Redirect Redirect
	Access   Access
	Log      Log
	Metrics  Metrics
	Audit    Audit
	UI       UI
}

// Server configures the front listener.
type Server struct {
	// Listen is the host:port the front server binds to.
	Listen string
	// PublicURL is the absolute http or https URL visitors use. Links and
	// redirects are built from it, never from the Host header. It has no
	// query, fragment or user information, and no trailing slash in its path.
	PublicURL *url.URL
	// TrustedProxies lists the networks whose X-Forwarded-* headers are
	// believed. Bare IP addresses are stored as single-address prefixes.
	TrustedProxies []netip.Prefix
	// ShutdownTimeout bounds the graceful shutdown.
	ShutdownTimeout time.Duration
	// MaxHeaderBytes bounds a request's line and headers; a larger head
	// is answered 431.
	MaxHeaderBytes int64
}

// Upstream configures the default application behind the gate.
type Upstream struct {
	// URL is the absolute http or https URL of the application.
	URL *url.URL
	// Timeout is how long to wait for the upstream's response headers.
	Timeout time.Duration
	// MaxRequestBody caps request bodies in bytes; 0 means unlimited.
	MaxRequestBody int64
	// PreserveHost forwards the client's Host header instead of the upstream's.
	PreserveHost bool
	// Via adds a Via header to forwarded requests.
	Via bool
	// HealthPath, when set, is an upstream path probed for health.
	HealthPath string
}

// Route sends matching requests to an upstream other than Upstream.URL.
// Routes are tried in order before the default upstream.
type Route struct {
	// Host is a lower-cased host name, optionally "*.example.com"; empty
	// matches every host.
	Host string
	// PathPrefix starts with "/"; empty matches every path.
	PathPrefix string
	// Upstream is the absolute http or https URL to forward to.
	Upstream *url.URL
}

// Database selects the store.
type Database struct {
	// Driver is "sqlite" or "postgres".
	Driver string
	// DSN is a file path for sqlite or a postgres:// URL for postgres.
	DSN string
	// MaxOpenConns caps open connections; 0 leaves the driver default.
	MaxOpenConns int
	// MaxIdleConns caps idle connections; 0 leaves the driver default.
	MaxIdleConns int
	// ConnMaxLifetime recycles connections; 0 means never.
	ConnMaxLifetime time.Duration
}

// Session configures the session cookie and lifetimes.
type Session struct {
	// CookieName is the base cookie name, a valid cookie token.
	CookieName string
	// CookieDomain is empty (host-only cookie) or a domain such as
	// ".example.com" that covers the public URL's host.
	CookieDomain string
	// Lifetime is the absolute session lifetime.
	Lifetime time.Duration
	// IdleTimeout ends a session unused for this long; it is at most Lifetime.
	IdleTimeout time.Duration
	// Secure is "auto", "true" or "false"; see CookieSecure.
	Secure string
}

// OTP configures sign-in codes.
type OTP struct {
	// Length is the number of digits, 6 to 10.
	Length int
	// TTL is how long a code is valid, at most 10 minutes.
	TTL time.Duration
	// MaxAttempts is the number of wrong tries after which a code is void.
	MaxAttempts int
	// ResendCooldown is the minimum wait between two codes to one address.
	ResendCooldown time.Duration
	// MaxFailuresPerHour caps failed verifications per account per hour.
	MaxFailuresPerHour int
	// RateLimit caps how many codes are sent.
	RateLimit RateLimit
}

// RateLimit caps code sending per address and per client IP within Window.
type RateLimit struct {
	Window     time.Duration
	PerAddress int
	PerIP      int
}

// Mail configures how sign-in codes are delivered.
type Mail struct {
	// Driver is "log" (development: the code goes to the log) or "smtp".
	Driver string
	// From is the sender, as accepted by net/mail.ParseAddress.
	From string
	SMTP SMTP
}

// SMTP configures the SMTP driver.
type SMTP struct {
	// Host is required when Mail.Driver is "smtp".
	Host     string
	Port     int
	Username string
	Password string
	// TLS is "starttls", "tls" or "none".
	TLS string
	// InsecureSkipVerify disables certificate verification. It exists for
	// testing against local servers only; never enable it in production.
	InsecureSkipVerify bool
}

// Redirect configures which absolute redirect targets are accepted.
type Redirect struct {
	// AllowedHosts are lower-cased host names, optionally with a port or a
	// leading "*." wildcard, allowed as absolute redirect targets besides the
	// public URL's own host.
	AllowedHosts []string
}

// Access configures who may sign in and which requests need a session.
type Access struct {
	// Signup is "open" (anyone with a mailbox) or "allowlist".
	Signup string
	// AllowedEmails are lower-cased addresses allowed to sign in.
	AllowedEmails []string
	// AllowedDomains are lower-cased domains whose addresses may sign in.
	AllowedDomains []string
	// Default is the policy when no rule matches: "authenticated", "public"
	// or "deny".
	Default string
	// Rules are tried in order; the first match wins.
	Rules []Rule
}

// Rule decides the policy for matching requests.
type Rule struct {
	// Paths are doublestar globs on the normalized path, each starting with
	// "/". Required unless Hosts is set.
	Paths []string
	// Methods are upper-cased HTTP methods; empty matches all.
	Methods []string
	// Hosts are lower-cased host globs such as "*.example.com"; empty
	// matches all.
	Hosts []string
	// Policy is "public", "authenticated" or "deny".
	Policy string
	// Emails restricts an authenticated rule to these lower-cased addresses.
	Emails []string
	// Domains restricts an authenticated rule to these lower-cased domains.
	Domains []string
	// Groups is reserved for future use; a non-empty list is refused, so
	// that a restriction is never silently ignored.
	Groups []string
}

// Log configures logging.
type Log struct {
	Level slog.Level
	// Format is "text" or "json".
	Format string
}

// Metrics configures the metrics listener.
type Metrics struct {
	// Listen is a host:port, or empty to serve no metrics.
	Listen string
}

// Audit configures the audit log.
type Audit struct {
	// Retention is how long audit events are kept.
	Retention time.Duration
}

// UI configures the sign-in pages.
type UI struct {
	AppName string
	// Logo is empty, a data:image/ URL, or an absolute path.
	Logo string
	// AccentColor is "#rgb" or "#rrggbb".
	AccentColor string
	// TemplatesDir, when set, is an existing directory of template overrides.
	TemplatesDir string
	// DefaultLanguage is "en" or "ko".
	DefaultLanguage string
}

// Load reads the YAML file at path, which must exist, and applies overrides
// from environ, a slice of "KEY=value" entries as returned by os.Environ.
// The returned error names every problem, one per line.
func Load(path string, environ []string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load config: %w", err)
	}
	return load(data, true, path, environ)
}

// Parse is Load for a YAML document read from r.
func Parse(r io.Reader, environ []string) (*Config, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return load(data, true, "config", environ)
}

// Default returns the configuration made of every default, with the
// overrides from environ applied, validated like a loaded file.
func Default(environ []string) (*Config, error) {
	return load(nil, false, "", environ)
}

// CookieSecure reports whether the session cookie carries the Secure
// attribute: with session.secure "auto" it does when the public URL is https.
func (c *Config) CookieSecure() bool {
	switch c.Session.Secure {
	case "true":
		return true
	case "false":
		return false
	default:
		return c.Server.PublicURL != nil && c.Server.PublicURL.Scheme == "https"
	}
}

// Keys returns every configuration key in dotted form, sorted. The lists
// access.rules and routes appear as single keys.
func (c *Config) Keys() []string {
	fields := schema()
	keys := make([]string, 0, len(fields))
	for _, f := range fields {
		keys = append(keys, f.key)
	}
	slices.Sort(keys)
	return keys
}

// RestartRequired returns, sorted, the dotted keys whose change between old
// and new cannot be applied to a running server: every server.* key except
// server.shutdown_timeout, every database.* key, metrics.listen, and what
// the gateway fixes at start (the upstreams, the session cookie and
// lifetimes, the secret, the log format). If either config is nil, all of
// those keys are returned.
func RestartRequired(old, new *Config) []string {
	var changed []string
	for key, value := range restartValues() {
		if old == nil || new == nil || value(old) != value(new) {
			changed = append(changed, key)
		}
	}
	slices.Sort(changed)
	return changed
}

// restartValues renders, for comparison, each key that needs a restart.
func restartValues() map[string]func(*Config) string {
	return map[string]func(*Config) string{
		"server.listen":     func(c *Config) string { return c.Server.Listen },
		"server.public_url": func(c *Config) string { return urlString(c.Server.PublicURL) },
		"server.max_header_bytes": func(c *Config) string {
			return strconv.FormatInt(c.Server.MaxHeaderBytes, 10)
		},
		"server.trusted_proxies": func(c *Config) string {
			var b strings.Builder
			for _, p := range c.Server.TrustedProxies {
				b.WriteString(p.String())
				b.WriteByte(',')
			}
			return b.String()
		},
		"database.driver":            func(c *Config) string { return c.Database.Driver },
		"database.dsn":               func(c *Config) string { return c.Database.DSN },
		"database.max_open_conns":    func(c *Config) string { return strconv.Itoa(c.Database.MaxOpenConns) },
		"database.max_idle_conns":    func(c *Config) string { return strconv.Itoa(c.Database.MaxIdleConns) },
		"database.conn_max_lifetime": func(c *Config) string { return c.Database.ConnMaxLifetime.String() },
		"metrics.listen":             func(c *Config) string { return c.Metrics.Listen },
		"upstream.url":               func(c *Config) string { return urlString(c.Upstream.URL) },
		"upstream.timeout":           func(c *Config) string { return c.Upstream.Timeout.String() },
		"upstream.health_path":       func(c *Config) string { return c.Upstream.HealthPath },
		"routes": func(c *Config) string {
			var b strings.Builder
			for _, r := range c.Routes {
				fmt.Fprintf(&b, "%s|%s|%s,", r.Host, r.PathPrefix, urlString(r.Upstream))
			}
			return b.String()
		},
		"session.cookie_name":   func(c *Config) string { return c.Session.CookieName },
		"session.cookie_domain": func(c *Config) string { return c.Session.CookieDomain },
		"session.lifetime":      func(c *Config) string { return c.Session.Lifetime.String() },
		"session.idle_timeout":  func(c *Config) string { return c.Session.IdleTimeout.String() },
		"session.secure":        func(c *Config) string { return strconv.FormatBool(c.CookieSecure()) },
		"secret":                func(c *Config) string { return c.Secret },
		"log.format":            func(c *Config) string { return c.Log.Format },
	}
}

func urlString(u *url.URL) string {
	if u == nil {
		return ""
	}
	return u.String()
}

// load is the common path of Load, Parse and Default. hasFile is false for
// Default, which reads no document at all.
func load(data []byte, hasFile bool, source string, environ []string) (*Config, error) {
	fields := schema()
	v := viper.New()
	v.SetConfigType("yaml")
	for _, f := range fields {
		v.SetDefault(f.key, f.def)
	}

	p := newProblems()
	if hasFile {
		// A second instance without defaults sees only what the document
		// says, which is what the unknown-key check must walk.
		doc := viper.New()
		doc.SetConfigType("yaml")
		if err := doc.ReadConfig(bytes.NewReader(data)); err != nil {
			return nil, syntaxError(source, err)
		}
		checkUnknownKeys(p, doc.AllSettings(), fields)
		if err := v.ReadConfig(bytes.NewReader(data)); err != nil {
			return nil, syntaxError(source, err)
		}
	}
	applyEnv(p, v, environ, fields)

	c := decode(p, v, fields)
	validate(p, c)
	if err := p.err(); err != nil {
		return nil, err
	}
	return c, nil
}

// syntaxError strips viper's wrapper so the YAML parser's message, which
// names the line, follows the source name directly.
func syntaxError(source string, err error) error {
	var parseErr viper.ConfigParseError
	if errors.As(err, &parseErr) {
		err = parseErr.Unwrap()
	}
	return fmt.Errorf("%s: %w", source, err)
}
