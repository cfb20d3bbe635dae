package config

import (
	"errors"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/viper"
)

// parseString parses a YAML document given as a string.
func parseString(t *testing.T, doc string, environ ...string) (*Config, error) {
	t.Helper()
	return Parse(strings.NewReader(doc), environ)
}

// errorLines splits a joined error into its lines.
func errorLines(err error) []string {
	if err == nil {
		return nil
	}
	return strings.Split(err.Error(), "\n")
}

// hasLine reports whether some line starts with "key: " and contains want.
func hasLine(err error, key, want string) bool {
	for _, l := range errorLines(err) {
		if strings.HasPrefix(l, key+": ") && strings.Contains(l, want) {
			return true
		}
	}
	return false
}

func TestDefaults(t *testing.T) {
	c, err := Default(nil)
	if err != nil {
		t.Fatalf("Default: %v", err)
	}
	tests := []struct {
		name string
		got  any
		want any
	}{
		{"server.listen", c.Server.Listen, "127.0.0.1:8080"},
		{"server.public_url", c.Server.PublicURL.String(), "http://localhost:8080"},
		{"server.trusted_proxies", len(c.Server.TrustedProxies), 0},
		{"server.shutdown_timeout", c.Server.ShutdownTimeout, 30 * time.Second},
		{"upstream.url", c.Upstream.URL.String(), "http://127.0.0.1:3000"},
		{"upstream.timeout", c.Upstream.Timeout, 30 * time.Second},
		{"upstream.max_request_body", c.Upstream.MaxRequestBody, Size(0)},
		{"upstream.preserve_host", c.Upstream.PreserveHost, false},
		{"upstream.via", c.Upstream.Via, false},
		{"upstream.health_path", c.Upstream.HealthPath, ""},
		{"routes", len(c.Routes), 0},
		{"database.driver", c.Database.Driver, "sqlite"},
		{"database.dsn", c.Database.DSN, "data/gatehouse.db"},
		{"database.max_open_conns", c.Database.MaxOpenConns, 0},
		{"database.max_idle_conns", c.Database.MaxIdleConns, 0},
		{"database.conn_max_lifetime", c.Database.ConnMaxLifetime, time.Duration(0)},
		{"secret", c.Secret, ""},
		{"session.cookie_name", c.Session.CookieName, "gatehouse_session"},
		{"session.cookie_domain", c.Session.CookieDomain, ""},
		{"session.lifetime", c.Session.Lifetime, 168 * time.Hour},
		{"session.idle_timeout", c.Session.IdleTimeout, 24 * time.Hour},
		{"session.secure", c.Session.Secure, SecureSetting("auto")},
		{"otp.length", c.OTP.Length, 6},
		{"otp.ttl", c.OTP.TTL, 5 * time.Minute},
		{"otp.max_attempts", c.OTP.MaxAttempts, 5},
		{"otp.resend_cooldown", c.OTP.ResendCooldown, 30 * time.Second},
		{"otp.max_failures_per_hour", c.OTP.MaxFailuresPerHour, 100},
		{"otp.rate_limit.window", c.OTP.RateLimit.Window, 15 * time.Minute},
		{"otp.rate_limit.per_address", c.OTP.RateLimit.PerAddress, 5},
		{"otp.rate_limit.per_ip", c.OTP.RateLimit.PerIP, 30},
		{"mail.driver", c.Mail.Driver, "log"},
		{"mail.from", c.Mail.From, "Gatehouse <no-reply@localhost>"},
		{"mail.smtp.host", c.Mail.SMTP.Host, ""},
		{"mail.smtp.port", c.Mail.SMTP.Port, 587},
		{"mail.smtp.tls", c.Mail.SMTP.TLS, "starttls"},
		{"mail.smtp.insecure_skip_verify", c.Mail.SMTP.InsecureSkipVerify, false},
		{"redirect.allowed_hosts", len(c.Redirect.AllowedHosts), 0},
		{"access.signup", c.Access.Signup, "open"},
		{"access.default", c.Access.Default, "authenticated"},
		{"access.rules", len(c.Access.Rules), 0},
		{"log.level", c.Log.Level, slog.LevelInfo},
		{"log.format", c.Log.Format, "text"},
		{"metrics.listen", c.Metrics.Listen, ""},
		{"audit.retention", c.Audit.Retention, 90 * 24 * time.Hour},
		{"ui.app_name", c.UI.AppName, "Gatehouse"},
		{"ui.logo", c.UI.Logo, ""},
		{"ui.accent_color", c.UI.AccentColor, "#2563eb"},
		{"ui.templates_dir", c.UI.TemplatesDir, ""},
		{"ui.default_language", c.UI.DefaultLanguage, "en"},
		{"cookie secure", c.CookieSecure(), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !reflect.DeepEqual(tt.got, tt.want) {
				t.Errorf("got %#v, want %#v", tt.got, tt.want)
			}
		})
	}

	t.Run("empty document equals defaults", func(t *testing.T) {
		fromDoc, err := parseString(t, "")
		if err != nil {
			t.Fatalf("Parse: %v", err)
		}
		if !reflect.DeepEqual(fromDoc, c) {
			t.Errorf("empty document:\n%+v\nDefault:\n%+v", fromDoc, c)
		}
	})
}

func TestRepoConfig(t *testing.T) {
	const path = "../config.yaml"
	c, err := Load(path, nil)
	if err != nil {
		t.Fatalf("Load(%s): %v", path, err)
	}
	def, err := Default(nil)
	if err != nil {
		t.Fatalf("Default: %v", err)
	}

	t.Run("matches the defaults apart from the example rules", func(t *testing.T) {
		withoutRules := *c
		withoutRules.Access.Rules = nil
		if !reflect.DeepEqual(&withoutRules, def) {
			t.Errorf("config.yaml differs from the defaults:\n%+v\n%+v", withoutRules, *def)
		}
	})

	t.Run("example rules", func(t *testing.T) {
		want := []Rule{
			{Paths: []string{"/public/**"}, Policy: "public"},
			{Paths: []string{"/healthz"}, Methods: []string{"GET", "HEAD"}, Policy: "public"},
		}
		if !reflect.DeepEqual(c.Access.Rules, want) {
			t.Errorf("rules = %+v, want %+v", c.Access.Rules, want)
		}
	})

	t.Run("every key is written out", func(t *testing.T) {
		doc := viper.New()
		doc.SetConfigFile(path)
		if err := doc.ReadInConfig(); err != nil {
			t.Fatalf("read %s: %v", path, err)
		}
		for _, key := range c.Keys() {
			if !doc.InConfig(key) {
				t.Errorf("%s: missing from config.yaml", key)
			}
		}
	})

	t.Run("the admin example works once uncommented", func(t *testing.T) {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		uncommented := strings.ReplaceAll(string(data), "\n#   - paths: [\"/admin/**\"]", "\n    - paths: [\"/admin/**\"]")
		uncommented = strings.ReplaceAll(uncommented, "\n#     ", "\n      ")
		c, err := parseString(t, uncommented)
		if err != nil {
			t.Fatalf("Parse: %v", err)
		}
		if len(c.Access.Rules) != 3 {
			t.Fatalf("got %d rules, want 3", len(c.Access.Rules))
		}
		admin := c.Access.Rules[2]
		if !slices.Equal(admin.Paths, []string{"/admin/**"}) || admin.Policy != "authenticated" ||
			!slices.Equal(admin.Emails, []string{"admin@example.com"}) {
			t.Errorf("admin rule = %+v", admin)
		}
	})
}

func TestInvalid(t *testing.T) {
	tests := []struct {
		name    string
		doc     string
		environ []string
		key     string
		want    string
	}{
		{"bad duration", "otp:\n  ttl: banana\n", nil, "otp.ttl", `must be a duration such as "90s"`},
		{"duration as integer", "otp:\n  ttl: 300\n", nil, "otp.ttl", "must be a duration such as"},
		{"bad url", "upstream:\n  url: \"not a url\"\n", nil, "upstream.url", "must be an absolute http or https URL"},
		{"url with other scheme", "upstream:\n  url: \"ftp://example.com\"\n", nil, "upstream.url", "must be an absolute http or https URL"},
		{"url without host", "upstream:\n  url: \"http:///x\"\n", nil, "upstream.url", "must be an absolute http or https URL"},
		{"public url with query", "server:\n  public_url: \"https://example.com/?a=b\"\n", nil, "server.public_url", "query"},
		{"public url with userinfo", "server:\n  public_url: \"https://u:p@example.com\"\n", nil, "server.public_url", "user information"},
		{"public url with fragment", "server:\n  public_url: \"https://example.com/#x\"\n", nil, "server.public_url", "fragment"},
		{"unknown top-level key", "sekret: x\n", nil, "sekret", "unknown key"},
		{"unknown nested key", "otp:\n  tll: 5m\n", nil, "otp.tll", "unknown key"},
		{"unknown deeply nested key", "otp:\n  rate_limit:\n    per_adress: 3\n", nil, "otp.rate_limit.per_adress", "unknown key"},
		{"section not a mapping", "otp: 5\n", nil, "otp", "must be a mapping"},
		{"route upstream not a string", "routes:\n  - host: x.example.com\n    upstream: [1]\n", nil, "routes[0].upstream", "must be a string"},
		{"trusted proxy not a string", "server:\n  trusted_proxies: [1]\n", nil, "server.trusted_proxies[0]", "must be a string"},
		{"log level not a string", "log:\n  level: 3\n", nil, "log.level", "must be one of debug"},
		{"unknown key inside a rule", "access:\n  rules:\n    - paths: [\"/a\"]\n      policy: public\n      pathz: [\"/b\"]\n", nil, "access.rules[0].pathz", "unknown key"},
		{"unknown key inside a route", "routes:\n  - path_prefix: /api\n    upstream: http://127.0.0.1:4000\n    timeout: 5s\n", nil, "routes[0].timeout", "unknown key"},
		{"rule not a mapping", "access:\n  rules:\n    - /public/**\n", nil, "access.rules[0]", "must be a mapping"},
		{"bad policy", "access:\n  rules:\n    - paths: [\"/a\"]\n      policy: public\n    - paths: [\"/b\"]\n      policy: public\n    - paths: [\"/c\"]\n      policy: allow\n", nil, "access.rules[2].policy", "must be one of public, authenticated, deny"},
		{"missing policy", "access:\n  rules:\n    - paths: [\"/a\"]\n", nil, "access.rules[0].policy", "required"},
		{"bad method", "access:\n  rules:\n    - paths: [\"/a\"]\n      methods: [\"GE T\"]\n      policy: deny\n", nil, "access.rules[0].methods[0]", "HTTP method"},
		{"undefined group in a rule", "access:\n  rules:\n    - paths: [\"/a\"]\n      policy: authenticated\n      groups: [ops]\n", nil, "access.rules[0].groups[0]", "not a defined group"},
		{"bad group member", "groups:\n  ops: [\"bob\"]\n", nil, "groups.ops[0]", "must be an address or @domain"},
		{"bad group domain", "groups:\n  ops: [\"@not a domain\"]\n", nil, "groups.ops[0]", "must be an address or @domain"},
		{"group not a list", "groups:\n  ops: a@example.com\n", nil, "groups.ops", "must be a list"},
		{"groups not a mapping", "groups: [ops]\n", nil, "groups", "must be a mapping"},
		{"bad glob", "access:\n  rules:\n    - paths: [\"/a/[b\"]\n      policy: deny\n", nil, "access.rules[0].paths[0]", "not a valid glob"},
		{"relative glob", "access:\n  rules:\n    - paths: [\"admin/**\"]\n      policy: deny\n", nil, "access.rules[0].paths[0]", `must start with "/"`},
		{"glob with dot segment", "access:\n  rules:\n    - paths: [\"/a/../admin/**\"]\n      policy: deny\n", nil, "access.rules[0].paths[0]", "segments"},
		{"rule without paths or hosts", "access:\n  rules:\n    - policy: deny\n", nil, "access.rules[0].paths", "required unless hosts is set"},
		{"paths not a list", "access:\n  rules:\n    - paths: /a\n      policy: deny\n", nil, "access.rules[0].paths", "must be a list"},
		{"emails with public policy", "access:\n  rules:\n    - paths: [\"/a\"]\n      policy: public\n      emails: [a@example.com]\n", nil, "access.rules[0].emails", "only allowed with policy authenticated"},
		{"domains with deny policy", "access:\n  rules:\n    - paths: [\"/a\"]\n      policy: deny\n      domains: [example.com]\n", nil, "access.rules[0].domains", "only allowed with policy authenticated"},
		{"bad rule email", "access:\n  rules:\n    - paths: [\"/a\"]\n      policy: authenticated\n      emails: [\"Bob <bob@example.com>\"]\n", nil, "access.rules[0].emails[0]", "email address"},
		{"idle timeout above lifetime", "session:\n  lifetime: 1h\n  idle_timeout: 2h\n", nil, "session.idle_timeout", "must not exceed session.lifetime"},
		{"zero idle timeout", "session:\n  idle_timeout: 0s\n", nil, "session.idle_timeout", "greater than 0"},
		{"smtp without host", "mail:\n  driver: smtp\n", nil, "mail.smtp.host", "required when mail.driver is smtp"},
		{"smtp host with port", "mail:\n  driver: smtp\n  smtp:\n    host: \"mail.example.com:25\"\n", nil, "mail.smtp.host", "without port"},
		{"bad smtp tls", "mail:\n  smtp:\n    tls: ssl\n", nil, "mail.smtp.tls", "must be one of starttls, tls, none"},
		{"bad smtp port", "mail:\n  smtp:\n    port: 70000\n", nil, "mail.smtp.port", "between 1 and 65535"},
		{"bad from", "mail:\n  from: \"not an address\"\n", nil, "mail.from", "must be an address"},
		{"from with a header injection", "mail:\n  from: \"a@example.com\\r\\nBcc: b@example.com\"\n", nil, "mail.from", "must be an address"},
		{"bad mail driver", "mail:\n  driver: sendmail\n", nil, "mail.driver", "must be one of log, smtp"},
		{"ttl above 10m", "otp:\n  ttl: 11m\n", nil, "otp.ttl", "at most 10m"},
		{"zero ttl", "otp:\n  ttl: 0s\n", nil, "otp.ttl", "greater than 0"},
		{"short otp", "otp:\n  length: 4\n", nil, "otp.length", "between 6 and 10"},
		{"too many attempts", "otp:\n  max_attempts: 11\n", nil, "otp.max_attempts", "between 1 and 10"},
		{"too many failures per hour", "otp:\n  max_failures_per_hour: 101\n", nil, "otp.max_failures_per_hour", "between 1 and 100"},
		{"negative cooldown", "otp:\n  resend_cooldown: -1s\n", nil, "otp.resend_cooldown", "must not be negative"},
		{"zero per address", "otp:\n  rate_limit:\n    per_address: 0\n", nil, "otp.rate_limit.per_address", "at least 1"},
		{"integer as string", "otp:\n  length: \"6\"\n", nil, "otp.length", "must be an integer"},
		{"integer as float", "otp:\n  length: 6.0\n", nil, "otp.length", "must be an integer"},
		{"boolean as string", "upstream:\n  via: \"yes\"\n", nil, "upstream.via", "must be a boolean"},
		{"string as number", "mail:\n  smtp:\n    password: 123456\n", nil, "mail.smtp.password", "must be a string"},
		{"bad trusted proxy cidr", "server:\n  trusted_proxies: [\"10.0.0.0/8\", \"10.0.0.0/33\"]\n", nil, "server.trusted_proxies[1]", "must be a CIDR"},
		{"trusted proxy host name", "server:\n  trusted_proxies: [\"proxy.local\"]\n", nil, "server.trusted_proxies[0]", "must be a CIDR"},
		{"bad size", "upstream:\n  max_request_body: 10XB\n", nil, "upstream.max_request_body", `invalid size "10XB"`},
		{"negative size", "upstream:\n  max_request_body: -1\n", nil, "upstream.max_request_body", "must not be negative"},
		{"header limit too small", "server:\n  max_header_bytes: 1KiB\n", nil, "server.max_header_bytes", "between 4KiB and 1MiB"},
		{"header limit too large", "server:\n  max_header_bytes: 2MiB\n", nil, "server.max_header_bytes", "between 4KiB and 1MiB"},
		{"header limit not a size", "server:\n  max_header_bytes: lots\n", nil, "server.max_header_bytes", "invalid size"},
		{"bad listen", "server:\n  listen: \"8080\"\n", nil, "server.listen", "host:port"},
		{"bad listen port", "server:\n  listen: \"127.0.0.1:http\"\n", nil, "server.listen", "host:port"},
		{"bad metrics listen", "metrics:\n  listen: \"localhost\"\n", nil, "metrics.listen", "host:port"},
		{"metrics on the server address", "metrics:\n  listen: \"127.0.0.1:8080\"\n", nil, "metrics.listen", "must differ from server.listen"},
		{"bad health path", "upstream:\n  health_path: health\n", nil, "upstream.health_path", `starting with "/"`},
		{"route without upstream", "routes:\n  - path_prefix: /api\n", nil, "routes[0].upstream", "required"},
		{"route with bad upstream", "routes:\n  - path_prefix: /api\n    upstream: \"127.0.0.1:4000\"\n", nil, "routes[0].upstream", "absolute http or https URL"},
		{"route with relative prefix", "routes:\n  - path_prefix: api\n    upstream: http://127.0.0.1:4000\n", nil, "routes[0].path_prefix", `must start with "/"`},
		{"route matching everything", "routes:\n  - upstream: http://127.0.0.1:4000\n", nil, "routes[0]", "must set host, path_prefix or both"},
		{"route host with a port", "routes:\n  - host: api.example.com:8443\n    upstream: http://127.0.0.1:4000\n", nil, "routes[0].host", "without a port"},
		{"bad database driver", "database:\n  driver: mysql\n", nil, "database.driver", "must be one of sqlite, postgres"},
		{"empty dsn", "database:\n  dsn: \"\"\n", nil, "database.dsn", "required"},
		{"postgres with a file dsn", "database:\n  driver: postgres\n", nil, "database.dsn", "postgres:// or postgresql://"},
		{"negative max open conns", "database:\n  max_open_conns: -1\n", nil, "database.max_open_conns", "must not be negative"},
		{"short secret", "secret: \"0123456789\"\n", nil, "secret", "at least 32 characters"},
		{"bad cookie name", "session:\n  cookie_name: \"my session\"\n", nil, "session.cookie_name", "cookie name"},
		{"cookie name with prefix", "session:\n  cookie_name: \"__Host-gh\"\n", nil, "session.cookie_name", "__Host-"},
		{"cookie domain not covering public url", "server:\n  public_url: https://app.example.com\nsession:\n  cookie_domain: .example.org\n", nil, "session.cookie_domain", "parent domain"},
		{"bad secure", "session:\n  secure: maybe\n", nil, "session.secure", "must be one of auto, true, false"},
		{"bad redirect host", "redirect:\n  allowed_hosts: [\"https://example.com/\"]\n", nil, "redirect.allowed_hosts[0]", "host name"},
		{"bad signup", "access:\n  signup: closed\n", nil, "access.signup", "must be one of open, allowlist"},
		{"allowlist without entries", "access:\n  signup: allowlist\n", nil, "access.signup", "at least one entry"},
		{"bad allowed email", "access:\n  allowed_emails: [\"bob\"]\n", nil, "access.allowed_emails[0]", "email address"},
		{"allowed domain with at", "access:\n  allowed_domains: [\"@example.com\"]\n", nil, "access.allowed_domains[0]", "without \"@\""},
		{"bad default policy", "access:\n  default: allow\n", nil, "access.default", "must be one of authenticated, public, deny"},
		{"bad log level", "log:\n  level: verbose\n", nil, "log.level", "must be one of debug, info, warn, error"},
		{"bad log format", "log:\n  format: xml\n", nil, "log.format", "must be one of text, json"},
		{"zero audit retention", "audit:\n  retention: 0s\n", nil, "audit.retention", "greater than 0"},
		{"bad accent color", "ui:\n  accent_color: blue\n", nil, "ui.accent_color", "color"},
		{"bad logo", "ui:\n  logo: \"//evil.example/logo.png\"\n", nil, "ui.logo", "absolute path"},
		{"missing templates dir", "ui:\n  templates_dir: \"does-not-exist\"\n", nil, "ui.templates_dir", "existing directory"},
		{"bad language", "ui:\n  default_language: fr\n", nil, "ui.default_language", "must be one of en, ko"},
		{"empty app name", "ui:\n  app_name: \"\"\n", nil, "ui.app_name", "non-empty"},
		{"bad env integer", "", []string{"GATEHOUSE_OTP_LENGTH=six"}, "otp.length", "must be an integer (set by GATEHOUSE_OTP_LENGTH)"},
		{"bad env boolean", "", []string{"GATEHOUSE_UPSTREAM_VIA=sure"}, "upstream.via", "must be a boolean"},
		{"bad env json", "", []string{"GATEHOUSE_ACCESS_RULES=[{"}, "access.rules", "must be a JSON array"},
		{"env json not a list", "", []string{`GATEHOUSE_ROUTES={"path_prefix":"/a"}`}, "routes", "must be a list"},
		{"unknown key in env rule", "", []string{`GATEHOUSE_ACCESS_RULES=[{"paths":["/a"],"policy":"public","polcy":"deny"}]`}, "access.rules[0].polcy", "unknown key"},
		{"unknown environment variable", "", []string{"GATEHOUSE_OTP_TLL=5m"}, "GATEHOUSE_OTP_TLL", "unknown environment variable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseString(t, tt.doc, tt.environ...)
			if err == nil {
				t.Fatalf("Parse succeeded, want an error for %s", tt.key)
			}
			if c != nil {
				t.Errorf("Parse returned a config along with the error")
			}
			if !hasLine(err, tt.key, tt.want) {
				t.Errorf("no line %q containing %q in:\n%v", tt.key+": ", tt.want, err)
			}
		})
	}
}

func TestValidEdgeCases(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name  string
		doc   string
		check func(*Config) bool
	}{
		{"trusted proxies: CIDRs and bare IPs", "server:\n  trusted_proxies: [\"10.1.2.3/8\", \"127.0.0.1\", \"::1\"]\n", func(c *Config) bool {
			return slices.Equal(c.Server.TrustedProxies, []netip.Prefix{
				netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("::1/128"),
			})
		}},
		{"public url: trailing slash trimmed, host lower-cased", "server:\n  public_url: \"https://Auth.Example.com/gate/\"\n", func(c *Config) bool {
			return c.Server.PublicURL.String() == "https://auth.example.com/gate"
		}},
		{"size with unit", "upstream:\n  max_request_body: 10MB\n", func(c *Config) bool {
			return c.Upstream.MaxRequestBody == 10_000_000
		}},
		{"size as integer", "upstream:\n  max_request_body: 1048576\n", func(c *Config) bool {
			return c.Upstream.MaxRequestBody == 1<<20
		}},
		{"secure as YAML boolean", "session:\n  secure: true\n", func(c *Config) bool {
			return c.Session.Secure == "true"
		}},
		{"rule normalization", "access:\n  rules:\n    - hosts: [\"*.Example.com\"]\n      methods: [get, Post]\n      policy: authenticated\n      emails: [Admin@Example.com]\n      domains: [Example.ORG]\n", func(c *Config) bool {
			r := c.Access.Rules[0]
			return slices.Equal(r.Hosts, []string{"*.example.com"}) && slices.Equal(r.Methods, []string{"GET", "POST"}) &&
				slices.Equal(r.Emails, []string{"admin@example.com"}) && slices.Equal(r.Domains, []string{"example.org"}) &&
				len(r.Groups) == 0 && len(r.Paths) == 0
		}},
		{"routes", "routes:\n  - host: API.example.com\n    path_prefix: /v1/\n    upstream: http://127.0.0.1:4000\n", func(c *Config) bool {
			return len(c.Routes) == 1 && c.Routes[0].Host == "api.example.com" && c.Routes[0].PathPrefix == "/v1/" &&
				c.Routes[0].Upstream.String() == "http://127.0.0.1:4000"
		}},
		{"allowlist with a domain", "access:\n  signup: allowlist\n  allowed_domains: [Example.com]\n", func(c *Config) bool {
			return slices.Equal(c.Access.AllowedDomains, []string{"example.com"})
		}},
		{"redirect hosts", "redirect:\n  allowed_hosts: [\"*.Example.com\", \"app.example.com:8443\", \"[::1]:8080\", \"127.0.0.1\"]\n", func(c *Config) bool {
			return slices.Equal(c.Redirect.AllowedHosts, []string{"*.example.com", "app.example.com:8443", "[::1]:8080", "127.0.0.1"})
		}},
		{"cookie domain covering public url", "server:\n  public_url: https://app.example.com\nsession:\n  cookie_domain: .Example.com\n", func(c *Config) bool {
			return c.Session.CookieDomain == ".example.com"
		}},
		{"postgres", "database:\n  driver: postgres\n  dsn: postgres://gatehouse:pw@127.0.0.1:5432/gatehouse?sslmode=disable\n", func(c *Config) bool {
			return c.Database.Driver == "postgres"
		}},
		{"templates dir exists", "ui:\n  templates_dir: " + dir + "\n", func(c *Config) bool {
			return c.UI.TemplatesDir == dir
		}},
		{"logo data url", "ui:\n  logo: \"data:image/png;base64,iVBORw0KGgo=\"\n  accent_color: \"#ABC\"\n", func(c *Config) bool {
			return c.UI.Logo == "data:image/png;base64,iVBORw0KGgo=" && c.UI.AccentColor == "#abc"
		}},
		{"null value keeps the default", "secret:\notp:\n  ttl:\n", func(c *Config) bool {
			return c.Secret == "" && c.OTP.TTL == 5*time.Minute
		}},
		{"log level", "log:\n  level: debug\n  format: json\n", func(c *Config) bool {
			return c.Log.Level == slog.LevelDebug && c.Log.Format == "json"
		}},
		{"listen on every interface", "server:\n  listen: \":8080\"\nmetrics:\n  listen: \"127.0.0.1:9090\"\n", func(c *Config) bool {
			return c.Server.Listen == ":8080" && c.Metrics.Listen == "127.0.0.1:9090"
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseString(t, tt.doc)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !tt.check(c) {
				t.Errorf("unexpected result: %+v", c)
			}
		})
	}
}

func TestMultipleErrors(t *testing.T) {
	doc := `
otp:
  ttl: banana
  tll: 5m
upstream:
  url: "ftp://x"
session:
  lifetime: 1h
  idle_timeout: 2h
access:
  rules:
    - paths: ["/a"]
      policy: maybe
`
	_, err := parseString(t, doc, "GATEHOUSE_NOPE=1")
	if err == nil {
		t.Fatal("Parse succeeded, want errors")
	}
	wantKeys := []string{"otp.ttl", "otp.tll", "upstream.url", "session.idle_timeout", "access.rules[0].policy", "GATEHOUSE_NOPE"}
	for _, key := range wantKeys {
		if !hasLine(err, key, "") {
			t.Errorf("missing a line for %s in:\n%v", key, err)
		}
	}
	lines := errorLines(err)
	if len(lines) != len(wantKeys) {
		t.Errorf("got %d lines, want %d (one per problem):\n%v", len(lines), len(wantKeys), err)
	}
	var joined interface{ Unwrap() []error }
	if !errors.As(err, &joined) || len(joined.Unwrap()) != len(wantKeys) {
		t.Errorf("error is not an errors.Join of %d problems: %#v", len(wantKeys), err)
	}
}

func TestOneProblemPerKey(t *testing.T) {
	// A value that failed to parse must not be reported again by range checks.
	_, err := parseString(t, "otp:\n  ttl: banana\nsession:\n  lifetime: nope\n")
	if err == nil {
		t.Fatal("Parse succeeded, want errors")
	}
	if n := len(errorLines(err)); n != 2 {
		t.Errorf("got %d lines, want 2:\n%v", n, err)
	}
}

func TestSectionProblemIsReportedOnce(t *testing.T) {
	// A section that is not a mapping is one problem, not one per key in it.
	for _, doc := range []string{"server: 5\n", "server: [a]\n", "otp:\n  rate_limit: fast\n"} {
		_, err := parseString(t, doc)
		if err == nil {
			t.Fatalf("%q: Parse succeeded, want an error", doc)
		}
		if lines := errorLines(err); len(lines) != 1 || !strings.Contains(lines[0], "must be a mapping") {
			t.Errorf("%q: want one line saying the section must be a mapping, got:\n%v", doc, err)
		}
	}
}

func TestSecretsStayOutOfErrors(t *testing.T) {
	const (
		secret   = "tooshort-s3cr3t"
		password = "hunter2-p4ss"
	)
	doc := "secret: " + secret + "\n" +
		"database:\n  driver: postgres\n  dsn: \"mysql://root:" + password + "@db/x\"\n" +
		"upstream:\n  url: \"http://user:" + password + "@[bad\"\n"
	_, err := parseString(t, doc, "GATEHOUSE_MAIL_SMTP_PORT="+password)
	if err == nil {
		t.Fatal("Parse succeeded, want errors")
	}
	for _, key := range []string{"secret", "database.dsn", "upstream.url", "mail.smtp.port"} {
		if !hasLine(err, key, "") {
			t.Errorf("missing a line for %s in:\n%v", key, err)
		}
	}
	for _, value := range []string{secret, password} {
		if strings.Contains(err.Error(), value) {
			t.Errorf("error reveals a secret value:\n%v", err)
		}
	}
}

func TestSyntaxError(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want string
	}{
		{"bad indentation", "server:\n  listen: a\n bad: [\n", "line "},
		{"not a mapping", "- a\n- b\n", "line 1"},
		{"duplicate key", "otp:\n  ttl: 5m\n  ttl: 6m\n", "line 3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "gatehouse.yaml")
			if err := os.WriteFile(path, []byte(tt.doc), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Load(path, nil)
			if err == nil {
				t.Fatal("Load succeeded, want a syntax error")
			}
			if !strings.HasPrefix(err.Error(), path+": ") || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q should start with the file name and contain %q", err, tt.want)
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "absent.yaml")
	_, err := Load(path, nil)
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load(missing) = %v, want an error wrapping os.ErrNotExist", err)
	}
}

func TestEnvOverrides(t *testing.T) {
	const doc = "upstream:\n  url: http://127.0.0.1:3000\notp:\n  rate_limit:\n    per_ip: 10\n"
	tests := []struct {
		name    string
		environ []string
		check   func(*Config) bool
	}{
		{"scalar", []string{"GATEHOUSE_UPSTREAM_URL=http://10.0.0.5:9000"}, func(c *Config) bool {
			return c.Upstream.URL.String() == "http://10.0.0.5:9000"
		}},
		{"top-level secret", []string{"GATEHOUSE_SECRET=" + strings.Repeat("k", 40)}, func(c *Config) bool {
			return c.Secret == strings.Repeat("k", 40)
		}},
		{"nested", []string{"GATEHOUSE_OTP_RATE_LIMIT_PER_ADDRESS=7", "GATEHOUSE_OTP_RATE_LIMIT_PER_IP=99"}, func(c *Config) bool {
			return c.OTP.RateLimit.PerAddress == 7 && c.OTP.RateLimit.PerIP == 99
		}},
		{"file value kept when not overridden", nil, func(c *Config) bool {
			return c.OTP.RateLimit.PerIP == 10
		}},
		{"duration", []string{"GATEHOUSE_OTP_TTL=2m"}, func(c *Config) bool {
			return c.OTP.TTL == 2*time.Minute
		}},
		{"boolean", []string{"GATEHOUSE_UPSTREAM_PRESERVE_HOST=true"}, func(c *Config) bool {
			return c.Upstream.PreserveHost
		}},
		{"size", []string{"GATEHOUSE_UPSTREAM_MAX_REQUEST_BODY=512KiB"}, func(c *Config) bool {
			return c.Upstream.MaxRequestBody == 512<<10
		}},
		{"list", []string{"GATEHOUSE_SERVER_TRUSTED_PROXIES=10.0.0.0/8, 127.0.0.1"}, func(c *Config) bool {
			return slices.Equal(c.Server.TrustedProxies, []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("127.0.0.1/32")})
		}},
		{"empty list", []string{"GATEHOUSE_REDIRECT_ALLOWED_HOSTS="}, func(c *Config) bool {
			return len(c.Redirect.AllowedHosts) == 0
		}},
		{"JSON rules", []string{`GATEHOUSE_ACCESS_RULES=[{"paths":["/public/**"],"policy":"public"},{"paths":["/admin/**"],"policy":"authenticated","emails":["Admin@Example.com"]}]`}, func(c *Config) bool {
			return len(c.Access.Rules) == 2 && c.Access.Rules[0].Policy == "public" &&
				slices.Equal(c.Access.Rules[1].Emails, []string{"admin@example.com"})
		}},
		{"JSON routes", []string{`GATEHOUSE_ROUTES=[{"path_prefix":"/api","upstream":"http://127.0.0.1:4000"}]`}, func(c *Config) bool {
			return len(c.Routes) == 1 && c.Routes[0].Upstream.Host == "127.0.0.1:4000"
		}},
		{"secure", []string{"GATEHOUSE_SESSION_SECURE=true"}, func(c *Config) bool {
			return c.CookieSecure()
		}},
		{"last duplicate wins", []string{"GATEHOUSE_OTP_LENGTH=7", "GATEHOUSE_OTP_LENGTH=8"}, func(c *Config) bool {
			return c.OTP.Length == 8
		}},
		{"GATEHOUSE_CONFIG and GATEHOUSE_TEST_ ignored", []string{"GATEHOUSE_CONFIG=/etc/gatehouse.yaml", "GATEHOUSE_TEST_POSTGRES=1", "HOME=/root", "gatehouse_otp_ttl=banana"}, func(c *Config) bool {
			return c.OTP.TTL == 5*time.Minute
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseString(t, doc, tt.environ...)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !tt.check(c) {
				t.Errorf("override not applied: %+v", c)
			}
		})
	}

	t.Run("Default applies overrides too", func(t *testing.T) {
		c, err := Default([]string{"GATEHOUSE_DATABASE_DSN=/var/lib/gatehouse/db.sqlite"})
		if err != nil {
			t.Fatalf("Default: %v", err)
		}
		if c.Database.DSN != "/var/lib/gatehouse/db.sqlite" {
			t.Errorf("dsn = %q", c.Database.DSN)
		}
	})

	t.Run("Default rejects unknown variables", func(t *testing.T) {
		_, err := Default([]string{"GATEHOUSE_DATABSE_DSN=x"})
		if !hasLine(err, "GATEHOUSE_DATABSE_DSN", "unknown environment variable") {
			t.Errorf("Default error = %v", err)
		}
	})
}

func TestEnvNames(t *testing.T) {
	seen := make(map[string]string)
	for _, f := range schema() {
		name := envName(f.key)
		if other, dup := seen[name]; dup {
			t.Errorf("%s and %s share %s", f.key, other, name)
		}
		seen[name] = f.key
		if ignoredEnv(name) {
			t.Errorf("%s maps to an ignored variable %s", f.key, name)
		}
	}
	for key, want := range map[string]string{
		"upstream.url":                   "GATEHOUSE_UPSTREAM_URL",
		"otp.rate_limit.per_address":     "GATEHOUSE_OTP_RATE_LIMIT_PER_ADDRESS",
		"secret":                         "GATEHOUSE_SECRET",
		"server.trusted_proxies":         "GATEHOUSE_SERVER_TRUSTED_PROXIES",
		"access.rules":                   "GATEHOUSE_ACCESS_RULES",
		"mail.smtp.insecure_skip_verify": "GATEHOUSE_MAIL_SMTP_INSECURE_SKIP_VERIFY",
	} {
		if got := envName(key); got != want {
			t.Errorf("envName(%s) = %s, want %s", key, got, want)
		}
	}
}

func TestEveryKeyOverridable(t *testing.T) {
	// Each key set through its variable to a valid non-default value must
	// change the result, which proves the variable reaches the right field.
	values := map[string]string{
		"server.listen": "127.0.0.1:8081", "server.public_url": "https://gate.example.com",
		"server.trusted_proxies": "10.0.0.1", "server.shutdown_timeout": "5s", "server.max_header_bytes": "128KiB",
		"upstream.url": "http://127.0.0.1:3001", "upstream.timeout": "5s", "upstream.max_request_body": "1MB",
		"upstream.preserve_host": "true", "upstream.via": "true", "upstream.health_path": "/up",
		"routes":          `[{"path_prefix":"/x","upstream":"http://127.0.0.1:4000"}]`,
		"database.driver": "sqlite", "database.dsn": "other.db", "database.max_open_conns": "4",
		"database.max_idle_conns": "2", "database.conn_max_lifetime": "1h",
		"secret":              strings.Repeat("s", 32),
		"session.cookie_name": "gh", "session.cookie_domain": "example.com", "session.lifetime": "48h",
		"session.idle_timeout": "1h", "session.secure": "false",
		"otp.length": "8", "otp.ttl": "3m", "otp.max_attempts": "3", "otp.resend_cooldown": "10s",
		"otp.max_failures_per_hour": "50", "otp.rate_limit.window": "5m", "otp.rate_limit.per_address": "2",
		"otp.rate_limit.per_ip": "9",
		"mail.driver":           "smtp", "mail.from": "a@example.com", "mail.smtp.host": "smtp.example.com",
		"mail.smtp.port": "465", "mail.smtp.username": "u", "mail.smtp.password": "p", "mail.smtp.tls": "tls",
		"mail.smtp.insecure_skip_verify": "true",
		"redirect.allowed_hosts":         "example.com",
		"access.signup":                  "allowlist", "access.allowed_emails": "a@example.com",
		"access.allowed_domains": "example.com", "access.default": "deny",
		"access.rules": `[{"paths":["/x"],"policy":"public"}]`,
		"groups":       `{"ops":["a@example.com","@ops.example.com"]}`,
		"log.level":    "warn", "log.format": "json", "metrics.listen": "127.0.0.1:9090",
		"audit.retention": "24h",
		"ui.app_name":     "Acme", "ui.logo": "/logo.svg", "ui.accent_color": "#000", "ui.templates_dir": t.TempDir(),
		"ui.default_language": "ko",
	}
	def, err := Default(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range def.Keys() {
		t.Run(key, func(t *testing.T) {
			value, ok := values[key]
			if !ok {
				t.Fatalf("no test value for %s", key)
			}
			environ := []string{envName(key) + "=" + value}
			// Some values need a companion to be valid on their own.
			switch key {
			case "session.cookie_domain":
				environ = append(environ, "GATEHOUSE_SERVER_PUBLIC_URL=https://gate.example.com")
			case "mail.driver":
				environ = append(environ, "GATEHOUSE_MAIL_SMTP_HOST=smtp.example.com")
			case "access.signup":
				environ = append(environ, "GATEHOUSE_ACCESS_ALLOWED_DOMAINS=example.com")
			}
			c, err := Default(environ)
			if err != nil {
				t.Fatalf("Default(%v): %v", environ, err)
			}
			if key == "database.driver" {
				return // sqlite is the only driver valid with the default dsn
			}
			if reflect.DeepEqual(c, def) {
				t.Errorf("%s=%s changed nothing", envName(key), value)
			}
		})
	}
}

func TestCookieSecure(t *testing.T) {
	tests := []struct {
		name      string
		publicURL string
		secure    string
		want      bool
	}{
		{"auto over http", "http://localhost:8080", "auto", false},
		{"auto over https", "https://gate.example.com", "auto", true},
		{"forced on over http", "http://localhost:8080", "true", true},
		{"forced off over https", "https://gate.example.com", "false", false},
		{"YAML boolean true", "http://localhost:8080", "yes-bool", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			secure := `"` + tt.secure + `"`
			if tt.secure == "yes-bool" {
				secure = "true"
			}
			c, err := parseString(t, "server:\n  public_url: "+tt.publicURL+"\nsession:\n  secure: "+secure+"\n")
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got := c.CookieSecure(); got != tt.want {
				t.Errorf("CookieSecure() = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr bool
	}{
		{"0", 0, false},
		{"1024", 1024, false},
		{"10B", 10, false},
		{"10KB", 10_000, false},
		{"10MB", 10_000_000, false},
		{"1GB", 1_000_000_000, false},
		{"2TB", 2_000_000_000_000, false},
		{"512KiB", 512 << 10, false},
		{"3MiB", 3 << 20, false},
		{"1GiB", 1 << 30, false},
		{"1TiB", 1 << 40, false},
		{"10 mb", 10_000_000, false},
		{" 7 gib ", 7 << 30, false},
		{"", 0, true},
		{"MB", 0, true},
		{"-1MB", 0, true},
		{"1.5MB", 0, true},
		{"10XB", 0, true},
		{"10M", 0, true},
		{"9223372036854775807", 9223372036854775807, false},
		{"9223372036854775808", 0, true},
		{"9000000TiB", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseSize(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseSize(%q) error = %v, wantErr %v", tt.in, err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("parseSize(%q) = %d, want %d", tt.in, got, tt.want)
			}
		})
	}
}

func TestRestartRequired(t *testing.T) {
	base := func(t *testing.T, environ ...string) *Config {
		t.Helper()
		c, err := Default(environ)
		if err != nil {
			t.Fatalf("Default: %v", err)
		}
		return c
	}
	tests := []struct {
		name    string
		environ []string
		want    []string
	}{
		{"nothing changed", nil, nil},
		{"hot keys only", []string{"GATEHOUSE_OTP_TTL=2m", "GATEHOUSE_ACCESS_DEFAULT=deny", "GATEHOUSE_SERVER_SHUTDOWN_TIMEOUT=5s", "GATEHOUSE_UPSTREAM_MAX_REQUEST_BODY=1MB", "GATEHOUSE_LOG_LEVEL=debug"}, nil},
		{"upstream and session", []string{"GATEHOUSE_UPSTREAM_URL=http://127.0.0.1:3001", "GATEHOUSE_SESSION_LIFETIME=48h", "GATEHOUSE_LOG_FORMAT=json"}, []string{"log.format", "session.lifetime", "upstream.url"}},
		{"listen", []string{"GATEHOUSE_SERVER_LISTEN=127.0.0.1:9000"}, []string{"server.listen"}},
		{"public url and proxies", []string{"GATEHOUSE_SERVER_PUBLIC_URL=https://x.example.com", "GATEHOUSE_SERVER_TRUSTED_PROXIES=10.0.0.0/8"}, []string{"server.public_url", "server.trusted_proxies", "session.secure"}},
		{"database", []string{"GATEHOUSE_DATABASE_DSN=other.db", "GATEHOUSE_DATABASE_MAX_OPEN_CONNS=3", "GATEHOUSE_DATABASE_MAX_IDLE_CONNS=1", "GATEHOUSE_DATABASE_CONN_MAX_LIFETIME=1h"},
			[]string{"database.conn_max_lifetime", "database.dsn", "database.max_idle_conns", "database.max_open_conns"}},
		{"metrics", []string{"GATEHOUSE_METRICS_LISTEN=127.0.0.1:9090"}, []string{"metrics.listen"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := RestartRequired(base(t), base(t, tt.environ...))
			if !slices.Equal(got, tt.want) {
				t.Errorf("RestartRequired = %v, want %v", got, tt.want)
			}
		})
	}

	t.Run("nil reports every restart key", func(t *testing.T) {
		got := RestartRequired(nil, base(t))
		if !slices.Contains(got, "database.dsn") || !slices.Contains(got, "metrics.listen") || !slices.IsSorted(got) {
			t.Errorf("RestartRequired(nil, c) = %v", got)
		}
	})

	t.Run("covers exactly the keys fixed at start", func(t *testing.T) {
		fixed := []string{"upstream.url", "upstream.timeout", "upstream.health_path", "routes",
			"session.cookie_name", "session.cookie_domain", "session.lifetime", "session.idle_timeout", "session.secure",
			"secret", "log.format", "metrics.listen"}
		var want []string
		for _, f := range schema() {
			server := strings.HasPrefix(f.key, "server.") && f.key != "server.shutdown_timeout"
			if server || strings.HasPrefix(f.key, "database.") || slices.Contains(fixed, f.key) {
				want = append(want, f.key)
			}
		}
		slices.Sort(want)
		if got := RestartRequired(nil, nil); !slices.Equal(got, want) {
			t.Errorf("restart keys = %v, want %v", got, want)
		}
	})
}

func TestKeys(t *testing.T) {
	c, err := Default(nil)
	if err != nil {
		t.Fatal(err)
	}
	keys := c.Keys()
	if !slices.IsSorted(keys) {
		t.Errorf("Keys not sorted: %v", keys)
	}
	for _, want := range []string{"access.rules", "otp.rate_limit.per_ip", "routes", "secret", "mail.smtp.insecure_skip_verify"} {
		if !slices.Contains(keys, want) {
			t.Errorf("Keys lacks %s", want)
		}
	}
	if len(keys) != len(schema()) {
		t.Errorf("got %d keys, want %d", len(keys), len(schema()))
	}
}

func TestSchemaComesFromTags(t *testing.T) {
	seen := map[string]bool{}
	for _, f := range schema() {
		if seen[f.key] {
			t.Errorf("key %s is declared twice", f.key)
		}
		seen[f.key] = true
		if (f.kind == kindInt || f.kind == kindBool || f.kind == kindDuration || f.kind == kindSize) && f.def == "" {
			t.Errorf("%s has no default tag; numbers, booleans, durations and sizes need one", f.key)
		}
		if _, err := envValue(f.kind, f.def); err != nil {
			t.Errorf("%s: default %q does not parse: %v", f.key, f.def, err)
		}
	}
	// Every key is settable from the environment and reads back typed.
	c, err := Default([]string{"GATEHOUSE_OTP_RATE_LIMIT_PER_IP=7", "GATEHOUSE_SESSION_SECURE=true", "GATEHOUSE_LOG_LEVEL=debug"})
	if err != nil {
		t.Fatal(err)
	}
	if c.OTP.RateLimit.PerIP != 7 || c.Session.Secure != "true" || c.Log.Level != slog.LevelDebug {
		t.Errorf("environment overrides not decoded: %+v %+v %+v", c.OTP.RateLimit, c.Session, c.Log)
	}
}

func TestGroupsAreReadAsLowerCase(t *testing.T) {
	c, err := parseString(t, "groups:\n  Ops: [\" Ana@Example.COM \", \"@Corp.Example.com\"]\naccess:\n  rules:\n    - paths: [\"/x\"]\n      policy: authenticated\n      groups: [OPS]\n")
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Groups["ops"]; !slices.Equal(got, []string{"ana@example.com", "@corp.example.com"}) {
		t.Errorf("groups = %v", c.Groups)
	}
	if got := c.Access.Rules[0].Groups; !slices.Equal(got, []string{"ops"}) {
		t.Errorf("rule groups = %v", got)
	}
}
