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
	"reflect"
	"slices"
	"time"

	"github.com/spf13/viper"
)

// Config is Gatehouse's validated configuration. Durations, URLs, sizes,
// network prefixes and log levels are already parsed.
//
// Each field is the one place its key is spelled: the mapstructure tag names
// it, the default tag gives its default (written as in the environment), a
// restart tag marks a key a running server cannot apply, and a normalize tag
// ("lower", "upper", "trim") says how strings are cleaned after decoding. The
// key list, defaults, GATEHOUSE_* variables, unknown-key detection,
// RestartRequired and the README's key table all derive from these tags.
type Config struct {
	Server   Server   `mapstructure:"server"`
	Upstream Upstream `mapstructure:"upstream"`
	Routes   []Route  `mapstructure:"routes" restart:"true"`
	Database Database `mapstructure:"database"`
	// Secret keys the HMAC of sign-in codes and other server-side hashes.
	// Empty means a secret is generated once and kept in the database;
	// otherwise it has at least 32 characters.
	Secret   string   `mapstructure:"secret" restart:"true"`
	Session  Session  `mapstructure:"session"`
	OTP      OTP      `mapstructure:"otp"`
	Mail     Mail     `mapstructure:"mail"`
	Redirect Redirect `mapstructure:"redirect"`
	Access   Access   `mapstructure:"access"`
	// Groups maps a group name (lower case: letters, digits, '-' and '_')
	// to its members: lower-cased addresses, or "@domain" for everyone at
	// a domain. A group may be empty, for service tokens only.
	Groups  map[string][]string `mapstructure:"groups" normalize:"lower"`
	Log     Log                 `mapstructure:"log"`
	Metrics Metrics             `mapstructure:"metrics"`
	Audit   Audit               `mapstructure:"audit"`
	UI      UI                  `mapstructure:"ui"`
}

// Size is a number of bytes, written as an integer or with a unit such as
// "10MB" or "512KiB".
type Size int64

// SecureSetting is session.secure: "auto", "true" or "false". YAML booleans
// are accepted and stored as "true" or "false".
type SecureSetting string

// Server configures the front listener.
type Server struct {
	// Listen is the host:port the front server binds to.
	Listen string `mapstructure:"listen" default:"127.0.0.1:8080" restart:"true"`
	// PublicURL is the absolute http or https URL visitors use. Links and
	// redirects are built from it, never from the Host header. It has no
	// query, fragment or user information, and no trailing slash in its path.
	PublicURL *url.URL `mapstructure:"public_url" default:"http://localhost:8080" restart:"true"`
	// TrustedProxies lists the networks whose X-Forwarded-* headers are
	// believed. Bare IP addresses are stored as single-address prefixes.
	TrustedProxies []netip.Prefix `mapstructure:"trusted_proxies" restart:"true"`
	// ShutdownTimeout bounds the graceful shutdown.
	ShutdownTimeout time.Duration `mapstructure:"shutdown_timeout" default:"30s"`
	// MaxHeaderBytes bounds a request's line and headers; a larger head
	// is answered 431.
	MaxHeaderBytes Size `mapstructure:"max_header_bytes" default:"64KiB" restart:"true"`
}

// Upstream configures the default application behind the gate.
type Upstream struct {
	// URL is the absolute http or https URL of the application.
	URL *url.URL `mapstructure:"url" default:"http://127.0.0.1:3000" restart:"true"`
	// Timeout is how long to wait for the upstream's response headers.
	Timeout time.Duration `mapstructure:"timeout" default:"30s" restart:"true"`
	// MaxRequestBody caps request bodies in bytes; 0 means unlimited.
	MaxRequestBody Size `mapstructure:"max_request_body" default:"0"`
	// PreserveHost forwards the client's Host header instead of the upstream's.
	PreserveHost bool `mapstructure:"preserve_host" default:"false"`
	// Via adds a Via header to forwarded requests.
	Via bool `mapstructure:"via" default:"false"`
	// HealthPath, when set, is an upstream path probed for health.
	HealthPath string `mapstructure:"health_path" normalize:"trim" restart:"true"`
}

// Route sends matching requests to an upstream other than Upstream.URL.
// Routes are tried in order before the default upstream.
type Route struct {
	// Host is a lower-cased host name, optionally "*.example.com"; empty
	// matches every host.
	Host string `mapstructure:"host" normalize:"lower"`
	// PathPrefix starts with "/"; empty matches every path.
	PathPrefix string `mapstructure:"path_prefix" normalize:"trim"`
	// Upstream is the absolute http or https URL to forward to.
	Upstream *url.URL `mapstructure:"upstream"`
}

// Database selects the store.
type Database struct {
	// Driver is "sqlite" or "postgres".
	Driver string `mapstructure:"driver" default:"sqlite" restart:"true"`
	// DSN is a file path for sqlite or a postgres:// URL for postgres.
	DSN string `mapstructure:"dsn" default:"data/gatehouse.db" restart:"true"`
	// MaxOpenConns caps open connections; 0 leaves the driver default.
	MaxOpenConns int `mapstructure:"max_open_conns" default:"0" restart:"true"`
	// MaxIdleConns caps idle connections; 0 leaves the driver default.
	MaxIdleConns int `mapstructure:"max_idle_conns" default:"0" restart:"true"`
	// ConnMaxLifetime recycles connections; 0 means never.
	ConnMaxLifetime time.Duration `mapstructure:"conn_max_lifetime" default:"0s" restart:"true"`
}

// Session configures the session cookie and lifetimes.
type Session struct {
	// CookieName is the base cookie name, a valid cookie token.
	CookieName string `mapstructure:"cookie_name" default:"gatehouse_session" restart:"true"`
	// CookieDomain is empty (host-only cookie) or a domain such as
	// ".example.com" that covers the public URL's host.
	CookieDomain string `mapstructure:"cookie_domain" normalize:"lower" restart:"true"`
	// Lifetime is the absolute session lifetime.
	Lifetime time.Duration `mapstructure:"lifetime" default:"168h" restart:"true"`
	// IdleTimeout ends a session unused for this long; it is at most Lifetime.
	IdleTimeout time.Duration `mapstructure:"idle_timeout" default:"24h" restart:"true"`
	// Secure is "auto", "true" or "false"; see CookieSecure. A restart is
	// needed when the attribute it yields changes.
	Secure SecureSetting `mapstructure:"secure" default:"auto" normalize:"lower" restart:"true"`
}

// OTP configures sign-in codes.
type OTP struct {
	// Length is the number of digits, 6 to 10.
	Length int `mapstructure:"length" default:"6"`
	// TTL is how long a code is valid, at most 10 minutes.
	TTL time.Duration `mapstructure:"ttl" default:"5m"`
	// MaxAttempts is the number of wrong tries after which a code is void.
	MaxAttempts int `mapstructure:"max_attempts" default:"5"`
	// ResendCooldown is the minimum wait between two codes to one address.
	ResendCooldown time.Duration `mapstructure:"resend_cooldown" default:"30s"`
	// MaxFailuresPerHour caps failed verifications per account per hour.
	MaxFailuresPerHour int `mapstructure:"max_failures_per_hour" default:"100"`
	// RateLimit caps how many codes are sent.
	RateLimit RateLimit `mapstructure:"rate_limit"`
}

// RateLimit caps code sending per address and per client IP within Window.
type RateLimit struct {
	Window     time.Duration `mapstructure:"window" default:"15m"`
	PerAddress int           `mapstructure:"per_address" default:"5"`
	PerIP      int           `mapstructure:"per_ip" default:"30"`
}

// Mail configures how sign-in codes are delivered.
type Mail struct {
	// Driver is "log" (development: the code goes to the log) or "smtp".
	Driver string `mapstructure:"driver" default:"log"`
	// From is the sender, as accepted by net/mail.ParseAddress.
	From string `mapstructure:"from" default:"Gatehouse <no-reply@localhost>" normalize:"trim"`
	SMTP SMTP   `mapstructure:"smtp"`
}

// SMTP configures the SMTP driver.
type SMTP struct {
	// Host is required when Mail.Driver is "smtp".
	Host     string `mapstructure:"host"`
	Port     int    `mapstructure:"port" default:"587"`
	Username string `mapstructure:"username"`
	Password string `mapstructure:"password"`
	// TLS is "starttls", "tls" or "none".
	TLS string `mapstructure:"tls" default:"starttls"`
	// InsecureSkipVerify disables certificate verification. It exists for
	// testing against local servers only; never enable it in production.
	InsecureSkipVerify bool `mapstructure:"insecure_skip_verify" default:"false"`
}

// Redirect configures which absolute redirect targets are accepted.
type Redirect struct {
	// AllowedHosts are lower-cased host names, optionally with a port or a
	// leading "*." wildcard, allowed as absolute redirect targets besides the
	// public URL's own host.
	AllowedHosts []string `mapstructure:"allowed_hosts" normalize:"lower"`
}

// Access configures who may sign in and which requests need a session.
type Access struct {
	// Signup is "open" (anyone with a mailbox) or "allowlist".
	Signup string `mapstructure:"signup" default:"open"`
	// AllowedEmails are lower-cased addresses allowed to sign in.
	AllowedEmails []string `mapstructure:"allowed_emails" normalize:"lower"`
	// AllowedDomains are lower-cased domains whose addresses may sign in.
	AllowedDomains []string `mapstructure:"allowed_domains" normalize:"lower"`
	// Default is the policy when no rule matches: "authenticated", "public"
	// or "deny".
	Default string `mapstructure:"default" default:"authenticated"`
	// Rules are tried in order; the first match wins.
	Rules []Rule `mapstructure:"rules"`
}

// Rule decides the policy for matching requests.
type Rule struct {
	// Paths are doublestar globs on the normalized path, each starting with
	// "/". Required unless Hosts is set.
	Paths []string `mapstructure:"paths"`
	// Methods are upper-cased HTTP methods; empty matches all.
	Methods []string `mapstructure:"methods" normalize:"upper"`
	// Hosts are lower-cased host globs such as "*.example.com"; empty
	// matches all.
	Hosts []string `mapstructure:"hosts" normalize:"lower"`
	// Policy is "public", "authenticated" or "deny".
	Policy string `mapstructure:"policy" normalize:"trim"`
	// Emails restricts an authenticated rule to these lower-cased addresses.
	Emails []string `mapstructure:"emails" normalize:"lower"`
	// Domains restricts an authenticated rule to these lower-cased domains.
	Domains []string `mapstructure:"domains" normalize:"lower"`
	// Groups admits members of these groups (people and service tokens);
	// each must be defined under the top-level groups.
	Groups []string `mapstructure:"groups" normalize:"lower"`
	// Tokens admits these service tokens by name.
	Tokens []string `mapstructure:"tokens"`
}

// Log configures logging.
type Log struct {
	Level slog.Level `mapstructure:"level" default:"info"`
	// Format is "text" or "json".
	Format string `mapstructure:"format" default:"text" restart:"true"`
}

// Metrics configures the metrics listener.
type Metrics struct {
	// Listen is a host:port, or empty to serve no metrics.
	Listen string `mapstructure:"listen" restart:"true"`
}

// Audit configures the audit log.
type Audit struct {
	// Retention is how long audit events are kept.
	Retention time.Duration `mapstructure:"retention" default:"2160h"`
}

// UI configures the sign-in pages.
type UI struct {
	AppName string `mapstructure:"app_name" default:"Gatehouse"`
	// Logo is empty, a data:image/ URL, or an absolute path.
	Logo string `mapstructure:"logo"`
	// AccentColor is "#rgb" or "#rrggbb".
	AccentColor string `mapstructure:"accent_color" default:"#2563eb" normalize:"lower"`
	// TemplatesDir, when set, is an existing directory of template overrides.
	TemplatesDir string `mapstructure:"templates_dir"`
	// DefaultLanguage is "en" or "ko".
	DefaultLanguage string `mapstructure:"default_language" default:"en"`
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
// and new cannot be applied to a running server: the keys tagged restart
// (every server.* key except server.shutdown_timeout, every database.* key,
// metrics.listen, and what the gateway fixes at start: the upstreams, the
// session cookie and lifetimes, the secret, the log format). session.secure
// counts as changed when the cookie attribute it yields does. If either
// config is nil, all of those keys are returned.
func RestartRequired(old, new *Config) []string {
	var changed []string
	for _, f := range schema() {
		if !f.restart {
			continue
		}
		if old == nil || new == nil || !reflect.DeepEqual(restartValue(old, f), restartValue(new, f)) {
			changed = append(changed, f.key)
		}
	}
	slices.Sort(changed)
	return changed
}

// restartValue is what RestartRequired compares for f: the field itself,
// except for session.secure, whose effect depends on the public URL too.
func restartValue(c *Config, f field) any {
	if f.key == "session.secure" {
		return c.CookieSecure()
	}
	return reflect.ValueOf(c).Elem().FieldByIndex(f.index).Interface()
}

// load is the common path of Load, Parse and Default. hasFile is false for
// Default, which reads no document at all.
func load(data []byte, hasFile bool, source string, environ []string) (*Config, error) {
	fields := schema()
	v := viper.New()
	v.SetConfigType("yaml")
	p := newProblems()
	for _, f := range fields {
		def, err := envValue(f.kind, f.def)
		if err != nil {
			// A default that does not parse is a programming error the
			// tests catch; report it rather than panic.
			p.add(f.key, fmt.Errorf("bad built-in default: %w", err))
			continue
		}
		v.SetDefault(f.key, def)
	}
	if hasFile {
		if err := v.ReadConfig(bytes.NewReader(data)); err != nil {
			return nil, syntaxError(source, err)
		}
	}
	applyEnv(p, v, environ, fields)

	c := decode(p, v)
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
