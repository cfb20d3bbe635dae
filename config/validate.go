package config

import (
	"fmt"
	"net"
	"net/mail"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// maxOTPTTL is the longest a sign-in code may live.
const maxOTPTTL = 10 * time.Minute

// minSecretLength is the shortest configured secret accepted.
const minSecretLength = 32

// validate checks ranges, allowed values and the relations between keys. It
// only reads c (and, for ui.templates_dir, the file system) and reports into
// p; keys that already failed to decode are not reported again.
func validate(p *problems, c *Config) {
	validateServer(p, c)
	validateUpstream(p, c)
	validateDatabase(p, c.Database)
	if n := utf8.RuneCountInString(c.Secret); n > 0 && n < minSecretLength {
		p.addf("secret", "must be empty (generated and kept in the database) or at least %d characters", minSecretLength)
	}
	validateSession(p, c)
	validateOTP(p, c.OTP)
	validateMail(p, c.Mail)
	for i, h := range c.Redirect.AllowedHosts {
		if !validHostPattern(h, true) {
			p.addf(index("redirect.allowed_hosts", i), "must be a host name, optionally with a port or a leading \"*.\"")
		}
	}
	validateAccess(p, c.Access, c.Groups)
	oneOf(p, "log.format", c.Log.Format, "text", "json")
	if c.Metrics.Listen != "" {
		if err := checkListen(c.Metrics.Listen); err != nil {
			p.add("metrics.listen", err)
		} else if c.Metrics.Listen == c.Server.Listen {
			p.addf("metrics.listen", "must differ from server.listen")
		}
	}
	positive(p, "audit.retention", c.Audit.Retention)
	validateUI(p, c.UI)
}

func validateServer(p *problems, c *Config) {
	if err := checkListen(c.Server.Listen); err != nil {
		p.add("server.listen", err)
	}
	notNegative(p, "server.shutdown_timeout", c.Server.ShutdownTimeout)
	if n := c.Server.MaxHeaderBytes; p.ok("server.max_header_bytes") && (n < 4<<10 || n > 1<<20) {
		p.add("server.max_header_bytes", fmt.Errorf("must be between 4KiB and 1MiB, got %d bytes", n))
	}
}

func validateUpstream(p *problems, c *Config) {
	positive(p, "upstream.timeout", c.Upstream.Timeout)
	if h := c.Upstream.HealthPath; h != "" && !absolutePath(h) {
		p.addf("upstream.health_path", "must be empty or a path starting with \"/\"")
	}
	for i, r := range c.Routes {
		k := index("routes", i)
		if r.Host != "" && !validHostPattern(r.Host, false) {
			// The request's host is compared without its port, so a
			// route host with one would never match.
			p.addf(k+".host", "must be a host name or \"*.\" and a domain, without a port")
		}
		if r.PathPrefix != "" && !absolutePath(r.PathPrefix) {
			p.addf(k+".path_prefix", "must start with \"/\"")
		}
		if r.Upstream == nil {
			p.addf(k+".upstream", "required")
		}
		if r.Host == "" && r.PathPrefix == "" && p.ok(k+".host", k+".path_prefix") {
			p.addf(k, "must set host, path_prefix or both (otherwise upstream.url is never used)")
		}
	}
}

func validateDatabase(p *problems, db Database) {
	oneOf(p, "database.driver", db.Driver, "sqlite", "postgres")
	switch {
	case strings.TrimSpace(db.DSN) == "":
		p.addf("database.dsn", "required")
	case db.Driver == "postgres" && !postgresDSN(db.DSN):
		p.addf("database.dsn", "must be a postgres:// or postgresql:// URL when database.driver is postgres")
	}
	if db.MaxOpenConns < 0 {
		p.addf("database.max_open_conns", "must not be negative")
	}
	if db.MaxIdleConns < 0 {
		p.addf("database.max_idle_conns", "must not be negative")
	}
	notNegative(p, "database.conn_max_lifetime", db.ConnMaxLifetime)
}

// postgresDSN reports whether dsn is a URL the postgres driver accepts.
func postgresDSN(dsn string) bool {
	u, err := url.Parse(dsn)
	return err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql")
}

func validateSession(p *problems, c *Config) {
	s := c.Session
	name := strings.ToLower(s.CookieName)
	switch {
	case !isToken(s.CookieName):
		p.addf("session.cookie_name", "must be a non-empty cookie name (letters, digits and !#$%%&'*+-.^_`|~)")
	case strings.HasPrefix(name, "__host-") || strings.HasPrefix(name, "__secure-"):
		p.addf("session.cookie_name", "must not start with __Host- or __Secure-: the prefix is added when the cookie is Secure")
	}
	if s.CookieDomain != "" {
		validateCookieDomain(p, s.CookieDomain, c.Server.PublicURL)
	}
	positive(p, "session.lifetime", s.Lifetime)
	positive(p, "session.idle_timeout", s.IdleTimeout)
	if s.IdleTimeout > s.Lifetime && p.ok("session.idle_timeout", "session.lifetime") {
		p.addf("session.idle_timeout", "must not exceed session.lifetime")
	}
	oneOf(p, "session.secure", string(s.Secure), "auto", "true", "false")
}

// validateCookieDomain requires a domain that browsers will accept for the
// public URL: its host or a parent domain of it.
func validateCookieDomain(p *problems, domain string, public *url.URL) {
	d := strings.TrimPrefix(domain, ".")
	if !validHostname(d) {
		p.addf("session.cookie_domain", "must be empty or a domain name such as .example.com")
		return
	}
	if public == nil {
		return
	}
	host := public.Hostname()
	if _, err := netip.ParseAddr(host); err == nil || (host != d && !strings.HasSuffix(host, "."+d)) {
		p.addf("session.cookie_domain", "must be server.public_url's host or a parent domain of it")
	}
}

func validateOTP(p *problems, o OTP) {
	between(p, "otp.length", o.Length, 6, 10)
	positive(p, "otp.ttl", o.TTL)
	if o.TTL > maxOTPTTL {
		p.addf("otp.ttl", "must be at most 10m (codes are short-lived)")
	}
	between(p, "otp.max_attempts", o.MaxAttempts, 1, 10)
	notNegative(p, "otp.resend_cooldown", o.ResendCooldown)
	between(p, "otp.max_failures_per_hour", o.MaxFailuresPerHour, 1, 100)
	positive(p, "otp.rate_limit.window", o.RateLimit.Window)
	if o.RateLimit.PerAddress < 1 {
		p.addf("otp.rate_limit.per_address", "must be at least 1")
	}
	if o.RateLimit.PerIP < 1 {
		p.addf("otp.rate_limit.per_ip", "must be at least 1")
	}
}

func validateMail(p *problems, m Mail) {
	oneOf(p, "mail.driver", m.Driver, "log", "smtp")
	if _, err := mail.ParseAddress(m.From); err != nil || strings.ContainsFunc(m.From, isControl) {
		p.addf("mail.from", "must be an address such as \"Gatehouse <no-reply@example.com>\"")
	}
	host := strings.TrimSpace(m.SMTP.Host)
	switch {
	case host == "" && m.Driver == "smtp":
		p.addf("mail.smtp.host", "required when mail.driver is smtp")
	case host != "" && (!validHostPattern(host, false) || strings.HasPrefix(host, "*.")):
		p.addf("mail.smtp.host", "must be a host name or IP address without port (see mail.smtp.port)")
	}
	between(p, "mail.smtp.port", m.SMTP.Port, 1, 65535)
	oneOf(p, "mail.smtp.tls", m.SMTP.TLS, "starttls", "tls", "none")
}

func validateAccess(p *problems, a Access, groups map[string][]string) {
	oneOf(p, "access.signup", a.Signup, "open", "allowlist")
	if a.Signup == "allowlist" && len(a.AllowedEmails) == 0 && len(a.AllowedDomains) == 0 {
		p.addf("access.signup", "allowlist needs at least one entry in access.allowed_emails or access.allowed_domains")
	}
	// Rules, the default policy and the allowlist are checked by compiling
	// them with the very code serve uses: what passes here starts.
	validateAccessRules(p, a, groups)
}

func validateUI(p *problems, u UI) {
	if strings.TrimSpace(u.AppName) == "" || strings.ContainsFunc(u.AppName, isControl) {
		p.addf("ui.app_name", "must be a non-empty name without control characters")
	}
	if u.Logo != "" && !validLogo(u.Logo) {
		p.addf("ui.logo", "must be empty, a data:image/ URL or an absolute path such as /logo.svg")
	}
	if !validColor(u.AccentColor) {
		p.addf("ui.accent_color", "must be a color such as #2563eb or #26e")
	}
	if u.TemplatesDir != "" {
		if st, err := os.Stat(u.TemplatesDir); err != nil || !st.IsDir() {
			p.addf("ui.templates_dir", "must be empty or an existing directory")
		}
	}
	oneOf(p, "ui.default_language", u.DefaultLanguage, "en", "ko")
}

func validLogo(s string) bool {
	if strings.ContainsFunc(s, func(r rune) bool { return isControl(r) || r == ' ' || r == '"' || r == '\'' || r == '<' || r == '>' }) {
		return false
	}
	if strings.HasPrefix(s, "data:image/") {
		return true
	}
	return absolutePath(s)
}

func validColor(s string) bool {
	if !strings.HasPrefix(s, "#") || (len(s) != 4 && len(s) != 7) {
		return false
	}
	for _, r := range s[1:] {
		if !strings.ContainsRune("0123456789abcdefABCDEF", r) {
			return false
		}
	}
	return true
}

// absolutePath reports whether s is a path on this origin: it starts with
// one "/" and is not a protocol-relative or backslash-relative URL.
func absolutePath(s string) bool {
	return strings.HasPrefix(s, "/") && !strings.HasPrefix(s, "//") && !strings.HasPrefix(s, "/\\") &&
		!strings.ContainsFunc(s, isControl)
}

// validHostname accepts DNS names made of letters, digits, '-' and '_'.
func validHostname(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return false
			}
		}
	}
	return true
}

// validHostPattern accepts a host name or IP address, optionally with a
// port when allowPort is set, optionally starting with "*." to cover every
// subdomain.
func validHostPattern(s string, allowPort bool) bool {
	host := s
	if h, port, err := net.SplitHostPort(s); err == nil {
		if !allowPort || !validPort(port, 1) {
			return false
		}
		host = h
	} else if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		host = s[1 : len(s)-1]
	}
	if rest, ok := strings.CutPrefix(host, "*."); ok {
		return validHostname(rest)
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return a.Zone() == ""
	}
	return validHostname(host)
}

// checkListen accepts host:port with a numeric port; an empty host means
// every interface and port 0 lets the system choose.
func checkListen(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil || !validPort(port, 0) {
		return fmt.Errorf("must be host:port, such as 127.0.0.1:8080 or :8080")
	}
	if host != "" && (!validHostPattern(host, false) || strings.HasPrefix(host, "*")) {
		return fmt.Errorf("must be host:port with a valid host name or IP address")
	}
	return nil
}

func validPort(s string, min int) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n >= min && n <= 65535 && s == strconv.Itoa(n)
}

// isToken reports whether s is an RFC 9110 token, the syntax of both
// cookie names and method names.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
			strings.ContainsRune("!#$%&'*+-.^_`|~", r)) {
			return false
		}
	}
	return true
}

func isControl(r rune) bool {
	return r < 0x20 || r == 0x7f
}

func oneOf(p *problems, key, value string, allowed ...string) {
	if !slices.Contains(allowed, value) {
		p.addf(key, "must be one of %s", strings.Join(allowed, ", "))
	}
}

func between(p *problems, key string, n, lo, hi int) {
	if n < lo || n > hi {
		p.addf(key, "must be between %d and %d", lo, hi)
	}
}

func positive(p *problems, key string, d time.Duration) {
	if d <= 0 {
		p.addf(key, "must be greater than 0")
	}
}

func notNegative(p *problems, key string, d time.Duration) {
	if d < 0 {
		p.addf(key, "must not be negative")
	}
}
