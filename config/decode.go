package config

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/spf13/viper"
)

// decoder turns the raw values held by viper into typed fields, reporting
// values of the wrong type or syntax. Range and cross-key checks belong to
// validate.
type decoder struct {
	v        *viper.Viper
	defaults map[string]any
	p        *problems
}

// decode builds a Config from v. Fields whose value could not be read are
// left at their zero value and reported.
func decode(p *problems, v *viper.Viper, fields []field) *Config {
	d := &decoder{v: v, defaults: make(map[string]any, len(fields)), p: p}
	for _, f := range fields {
		d.defaults[f.key] = f.def
	}
	return &Config{
		Server: Server{
			Listen:          d.str("server.listen"),
			PublicURL:       d.publicURL("server.public_url"),
			TrustedProxies:  d.prefixes("server.trusted_proxies"),
			ShutdownTimeout: d.duration("server.shutdown_timeout"),
			MaxHeaderBytes:  d.size("server.max_header_bytes"),
		},
		Upstream: Upstream{
			URL:            d.httpURL("upstream.url", d.raw("upstream.url")),
			Timeout:        d.duration("upstream.timeout"),
			MaxRequestBody: d.size("upstream.max_request_body"),
			PreserveHost:   d.boolean("upstream.preserve_host"),
			Via:            d.boolean("upstream.via"),
			HealthPath:     d.str("upstream.health_path"),
		},
		Routes: d.routes("routes"),
		Database: Database{
			Driver:          d.str("database.driver"),
			DSN:             d.str("database.dsn"),
			MaxOpenConns:    d.integer("database.max_open_conns"),
			MaxIdleConns:    d.integer("database.max_idle_conns"),
			ConnMaxLifetime: d.duration("database.conn_max_lifetime"),
		},
		Secret: d.str("secret"),
		Session: Session{
			CookieName:   d.str("session.cookie_name"),
			CookieDomain: strings.ToLower(d.str("session.cookie_domain")),
			Lifetime:     d.duration("session.lifetime"),
			IdleTimeout:  d.duration("session.idle_timeout"),
			Secure:       d.secure("session.secure"),
		},
		OTP: OTP{
			Length:             d.integer("otp.length"),
			TTL:                d.duration("otp.ttl"),
			MaxAttempts:        d.integer("otp.max_attempts"),
			ResendCooldown:     d.duration("otp.resend_cooldown"),
			MaxFailuresPerHour: d.integer("otp.max_failures_per_hour"),
			RateLimit: RateLimit{
				Window:     d.duration("otp.rate_limit.window"),
				PerAddress: d.integer("otp.rate_limit.per_address"),
				PerIP:      d.integer("otp.rate_limit.per_ip"),
			},
		},
		Mail: Mail{
			Driver: d.str("mail.driver"),
			From:   strings.TrimSpace(d.str("mail.from")),
			SMTP: SMTP{
				Host:               d.str("mail.smtp.host"),
				Port:               d.integer("mail.smtp.port"),
				Username:           d.str("mail.smtp.username"),
				Password:           d.str("mail.smtp.password"),
				TLS:                d.str("mail.smtp.tls"),
				InsecureSkipVerify: d.boolean("mail.smtp.insecure_skip_verify"),
			},
		},
		Redirect: Redirect{
			AllowedHosts: lower(d.strs("redirect.allowed_hosts", d.raw("redirect.allowed_hosts"))),
		},
		Access: Access{
			Signup:         d.str("access.signup"),
			AllowedEmails:  lower(d.strs("access.allowed_emails", d.raw("access.allowed_emails"))),
			AllowedDomains: lower(d.strs("access.allowed_domains", d.raw("access.allowed_domains"))),
			Default:        d.str("access.default"),
			Rules:          d.rules("access.rules"),
		},
		Log: Log{
			Level:  d.level("log.level"),
			Format: d.str("log.format"),
		},
		Metrics: Metrics{Listen: d.str("metrics.listen")},
		Audit:   Audit{Retention: d.duration("audit.retention")},
		UI: UI{
			AppName:         d.str("ui.app_name"),
			Logo:            d.str("ui.logo"),
			AccentColor:     strings.ToLower(d.str("ui.accent_color")),
			TemplatesDir:    d.str("ui.templates_dir"),
			DefaultLanguage: d.str("ui.default_language"),
		},
	}
}

// raw returns the value of key from the environment, the document or the
// defaults, in that order. A value is missing only when a parent section
// was not a mapping, which is reported already; the default stands in.
func (d *decoder) raw(key string) any {
	if v := d.v.Get(key); v != nil {
		return v
	}
	return d.defaults[key]
}

func (d *decoder) str(key string) string {
	return d.strValue(key, d.raw(key))
}

func (d *decoder) strValue(key string, raw any) string {
	switch v := raw.(type) {
	case nil:
		return ""
	case string:
		return v
	default:
		d.p.add(key, errMustBeString)
		return ""
	}
}

func (d *decoder) integer(key string) int {
	n, ok := asInt(d.raw(key))
	if !ok {
		d.p.add(key, errMustBeInteger)
	}
	return n
}

// asInt accepts the integer types a YAML decoder produces. Floats are
// refused even when whole: configuration integers are written as integers.
func asInt(raw any) (int, bool) {
	switch v := raw.(type) {
	case int:
		return v, true
	case int64:
		if v < math.MinInt || v > math.MaxInt {
			return 0, false
		}
		return int(v), true
	case uint64:
		if v > math.MaxInt {
			return 0, false
		}
		return int(v), true
	case int32:
		return int(v), true
	case uint32:
		return int(v), true
	default:
		return 0, false
	}
}

func (d *decoder) boolean(key string) bool {
	b, ok := d.raw(key).(bool)
	if !ok {
		d.p.add(key, errMustBeBoolean)
	}
	return b
}

func (d *decoder) duration(key string) time.Duration {
	s, ok := d.raw(key).(string)
	if !ok {
		d.p.addf(key, "must be a duration string such as \"5m\" or \"24h\"")
		return 0
	}
	v, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		d.p.add(key, err)
		return 0
	}
	return v
}

func (d *decoder) size(key string) int64 {
	switch v := d.raw(key).(type) {
	case string:
		n, err := parseSize(v)
		if err != nil {
			d.p.add(key, err)
		}
		return n
	default:
		n, ok := asInt(v)
		if !ok {
			d.p.addf(key, "must be a number of bytes or a size such as \"10MB\"")
			return 0
		}
		if n < 0 {
			d.p.addf(key, "must not be negative")
			return 0
		}
		return int64(n)
	}
}

// secure reads session.secure, which YAML users naturally write as a
// boolean, and normalizes it to "auto", "true" or "false".
func (d *decoder) secure(key string) string {
	switch v := d.raw(key).(type) {
	case bool:
		if v {
			return "true"
		}
		return "false"
	case string:
		return strings.ToLower(strings.TrimSpace(v))
	default:
		d.p.addf(key, "must be one of auto, true, false")
		return ""
	}
}

func (d *decoder) level(key string) slog.Level {
	s := d.str(key)
	switch s {
	case "debug":
		return slog.LevelDebug
	case "info":
		return slog.LevelInfo
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	d.p.addf(key, "must be one of debug, info, warn, error")
	return slog.LevelInfo
}

// list reads a list value; nil stands for an empty list.
func (d *decoder) list(key string, raw any) []any {
	switch v := raw.(type) {
	case nil:
		return nil
	case []any:
		return v
	case []string:
		out := make([]any, len(v))
		for i, s := range v {
			out[i] = s
		}
		return out
	default:
		d.p.add(key, errMustBeList)
		return nil
	}
}

// strs reads a list of strings; elements of another type are reported by
// index and left out.
func (d *decoder) strs(key string, raw any) []string {
	items := d.list(key, raw)
	if len(items) == 0 {
		return nil
	}
	out := make([]string, 0, len(items))
	for i, item := range items {
		s, ok := item.(string)
		if !ok {
			d.p.add(index(key, i), errMustBeString)
			continue
		}
		out = append(out, strings.TrimSpace(s))
	}
	return out
}

func (d *decoder) prefixes(key string) []netip.Prefix {
	items := d.strs(key, d.raw(key))
	if len(items) == 0 {
		return nil
	}
	out := make([]netip.Prefix, 0, len(items))
	for i, s := range items {
		p, err := parsePrefix(s)
		if err != nil {
			d.p.add(index(key, i), err)
			continue
		}
		out = append(out, p)
	}
	return out
}

// parsePrefix accepts a CIDR or a bare IP address, which stands for itself
// alone (/32 or /128).
func parsePrefix(s string) (netip.Prefix, error) {
	errBad := errors.New("must be a CIDR such as 10.0.0.0/8 or an IP address")
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, errBad
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, errBad
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// httpURL parses an absolute http or https URL with a host and without user
// information, query or fragment. Messages never quote the URL, which could
// hold credentials.
func (d *decoder) httpURL(key string, raw any) *url.URL {
	s, ok := raw.(string)
	if !ok {
		d.p.add(key, errMustBeString)
		return nil
	}
	u, err := url.Parse(strings.TrimSpace(s))
	switch {
	case err != nil, u.Scheme != "http" && u.Scheme != "https", u.Opaque != "", u.Hostname() == "":
		d.p.addf(key, "must be an absolute http or https URL")
		return nil
	case u.User != nil:
		d.p.addf(key, "must not contain user information")
		return nil
	case u.RawQuery != "" || u.ForceQuery:
		d.p.addf(key, "must not contain a query")
		return nil
	case u.Fragment != "":
		d.p.addf(key, "must not contain a fragment")
		return nil
	}
	return u
}

// publicURL is httpURL with the host lower-cased and trailing slashes
// removed from the path, so links can be built by appending "/.gatehouse/…".
func (d *decoder) publicURL(key string) *url.URL {
	u := d.httpURL(key, d.raw(key))
	if u == nil {
		return nil
	}
	u.Host = strings.ToLower(u.Host)
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = strings.TrimRight(u.RawPath, "/")
	return u
}

// ruleFields and routeFields are the keys allowed inside list elements.
func ruleFields() []string {
	return []string{"paths", "methods", "hosts", "policy", "emails", "domains", "groups"}
}

func routeFields() []string {
	return []string{"host", "path_prefix", "upstream"}
}

// element returns list element i as a mapping, reporting a non-mapping and
// every key not in allowed.
func (d *decoder) element(key string, item any, allowed []string) (map[string]any, bool) {
	m, ok := item.(map[string]any)
	if !ok {
		d.p.addf(key, "must be a mapping")
		return nil, false
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !slices.Contains(allowed, k) {
			d.p.addf(key+"."+k, "unknown key")
		}
	}
	return m, true
}

func (d *decoder) rules(key string) []Rule {
	items := d.list(key, d.raw(key))
	if len(items) == 0 {
		return nil
	}
	out := make([]Rule, 0, len(items))
	for i, item := range items {
		k := index(key, i)
		m, ok := d.element(k, item, ruleFields())
		if !ok {
			continue
		}
		out = append(out, Rule{
			Paths:   d.strs(k+".paths", m["paths"]),
			Methods: upper(d.strs(k+".methods", m["methods"])),
			Hosts:   lower(d.strs(k+".hosts", m["hosts"])),
			Policy:  strings.TrimSpace(d.strValue(k+".policy", m["policy"])),
			Emails:  lower(d.strs(k+".emails", m["emails"])),
			Domains: lower(d.strs(k+".domains", m["domains"])),
			Groups:  d.strs(k+".groups", m["groups"]),
		})
	}
	return out
}

func (d *decoder) routes(key string) []Route {
	items := d.list(key, d.raw(key))
	if len(items) == 0 {
		return nil
	}
	out := make([]Route, 0, len(items))
	for i, item := range items {
		k := index(key, i)
		m, ok := d.element(k, item, routeFields())
		if !ok {
			continue
		}
		r := Route{
			Host:       strings.ToLower(strings.TrimSpace(d.strValue(k+".host", m["host"]))),
			PathPrefix: strings.TrimSpace(d.strValue(k+".path_prefix", m["path_prefix"])),
		}
		if raw, ok := m["upstream"]; ok && raw != nil {
			r.Upstream = d.httpURL(k+".upstream", raw)
		} else {
			d.p.addf(k+".upstream", "required")
		}
		out = append(out, r)
	}
	return out
}

func index(key string, i int) string {
	return fmt.Sprintf("%s[%d]", key, i)
}

func lower(s []string) []string {
	for i := range s {
		s[i] = strings.ToLower(s[i])
	}
	return s
}

func upper(s []string) []string {
	for i := range s {
		s[i] = strings.ToUpper(s[i])
	}
	return s
}
