package config

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/viper"
)

// kind is how a key's raw value is read.
type kind int

const (
	kindString   kind = iota // a YAML string
	kindInt                  // a YAML integer
	kindBool                 // a YAML boolean
	kindDuration             // a string for time.ParseDuration
	kindSize                 // an integer of bytes or a string such as "10MB"
	kindSecure               // "auto", "true", "false" or a YAML boolean
	kindStrings              // a list of strings; comma-separated in the environment
	kindObjects              // a list of mappings; a JSON array in the environment
)

// field is one configuration key with its kind and default.
type field struct {
	key  string
	kind kind
	def  any
}

// envPrefix starts every environment variable that sets a key.
const envPrefix = "GATEHOUSE_"

// schema lists every key Gatehouse knows, with its default. It is the single
// source for defaults, environment variable names, unknown-key detection and
// Keys.
func schema() []field {
	none := []any{}
	return []field{
		{"server.listen", kindString, "127.0.0.1:8080"},
		{"server.public_url", kindString, "http://localhost:8080"},
		{"server.trusted_proxies", kindStrings, none},
		{"server.shutdown_timeout", kindDuration, "30s"},
		{"server.max_header_bytes", kindSize, "64KiB"},

		{"upstream.url", kindString, "http://127.0.0.1:3000"},
		{"upstream.timeout", kindDuration, "30s"},
		{"upstream.max_request_body", kindSize, 0},
		{"upstream.preserve_host", kindBool, false},
		{"upstream.via", kindBool, false},
		{"upstream.health_path", kindString, ""},

		{"routes", kindObjects, none},

		{"database.driver", kindString, "sqlite"},
		{"database.dsn", kindString, "data/gatehouse.db"},
		{"database.max_open_conns", kindInt, 0},
		{"database.max_idle_conns", kindInt, 0},
		{"database.conn_max_lifetime", kindDuration, "0s"},

		{"secret", kindString, ""},

		{"session.cookie_name", kindString, "gatehouse_session"},
		{"session.cookie_domain", kindString, ""},
		{"session.lifetime", kindDuration, "168h"},
		{"session.idle_timeout", kindDuration, "24h"},
		{"session.secure", kindSecure, "auto"},

		{"otp.length", kindInt, 6},
		{"otp.ttl", kindDuration, "5m"},
		{"otp.max_attempts", kindInt, 5},
		{"otp.resend_cooldown", kindDuration, "30s"},
		{"otp.max_failures_per_hour", kindInt, 100},
		{"otp.rate_limit.window", kindDuration, "15m"},
		{"otp.rate_limit.per_address", kindInt, 5},
		{"otp.rate_limit.per_ip", kindInt, 30},

		{"mail.driver", kindString, "log"},
		{"mail.from", kindString, "Gatehouse <no-reply@localhost>"},
		{"mail.smtp.host", kindString, ""},
		{"mail.smtp.port", kindInt, 587},
		{"mail.smtp.username", kindString, ""},
		{"mail.smtp.password", kindString, ""},
		{"mail.smtp.tls", kindString, "starttls"},
		{"mail.smtp.insecure_skip_verify", kindBool, false},

		{"redirect.allowed_hosts", kindStrings, none},

		{"access.signup", kindString, "open"},
		{"access.allowed_emails", kindStrings, none},
		{"access.allowed_domains", kindStrings, none},
		{"access.default", kindString, "authenticated"},
		{"access.rules", kindObjects, none},

		{"log.level", kindString, "info"},
		{"log.format", kindString, "text"},

		{"metrics.listen", kindString, ""},

		{"audit.retention", kindDuration, "2160h"},

		{"ui.app_name", kindString, "Gatehouse"},
		{"ui.logo", kindString, ""},
		{"ui.accent_color", kindString, "#2563eb"},
		{"ui.templates_dir", kindString, ""},
		{"ui.default_language", kindString, "en"},
	}
}

// envName is the environment variable that overrides key.
func envName(key string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// ignoredEnv reports whether a GATEHOUSE_ variable is deliberately not a
// configuration key: the config file location, and variables reserved for
// the test suites.
func ignoredEnv(name string) bool {
	return name == envPrefix+"CONFIG" || strings.HasPrefix(name, envPrefix+"TEST_")
}

// checkUnknownKeys reports every key in the document that the schema does
// not know, and every section given as something other than a mapping.
// Element keys of list values (access.rules[i], routes[i]) are checked when
// those lists are decoded, since they may also come from the environment.
func checkUnknownKeys(p *problems, doc map[string]any, fields []field) {
	leaves := make(map[string]bool, len(fields))
	sections := make(map[string]bool)
	for _, f := range fields {
		leaves[f.key] = true
		parts := strings.Split(f.key, ".")
		for i := 1; i < len(parts); i++ {
			sections[strings.Join(parts[:i], ".")] = true
		}
	}
	walkUnknown(p, doc, "", leaves, sections)
}

func walkUnknown(p *problems, m map[string]any, prefix string, leaves, sections map[string]bool) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		full := k
		if prefix != "" {
			full = prefix + "." + k
		}
		switch {
		case leaves[full]:
			// Its value is checked when decoded.
		case sections[full]:
			sub, ok := m[k].(map[string]any)
			if !ok {
				p.addf(full, "must be a mapping")
				continue
			}
			walkUnknown(p, sub, full, leaves, sections)
		default:
			p.addf(full, "unknown key")
		}
	}
}

// applyEnv sets an override on v for every GATEHOUSE_ variable in environ.
// Values are converted to what a YAML document would hold, so decoding is
// the same whatever the source. When a variable appears twice the last one
// wins, as with os/exec. Unknown GATEHOUSE_ variables are reported so that
// a typo is never silently ignored.
func applyEnv(p *problems, v *viper.Viper, environ []string, fields []field) {
	byName := make(map[string]field, len(fields))
	for _, f := range fields {
		byName[envName(f.key)] = f
	}
	values := make(map[string]string)
	var names []string
	for _, kv := range environ {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, envPrefix) || ignoredEnv(name) {
			continue
		}
		if _, seen := values[name]; !seen {
			names = append(names, name)
		}
		values[name] = value
	}
	slices.Sort(names)
	for _, name := range names {
		f, ok := byName[name]
		if !ok {
			p.addf(name, "unknown environment variable (no such configuration key)")
			continue
		}
		raw, err := envValue(f.kind, values[name])
		if err != nil {
			p.add(f.key, fmt.Errorf("%w (set by %s)", err, name))
			continue
		}
		v.Set(f.key, raw)
	}
}

// envValue converts an environment string into the raw value a YAML
// document would give for a key of kind k.
func envValue(k kind, s string) (any, error) {
	switch k {
	case kindInt:
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			return nil, errMustBeInteger
		}
		return n, nil
	case kindBool:
		b, err := strconv.ParseBool(strings.TrimSpace(s))
		if err != nil {
			return nil, errMustBeBoolean
		}
		return b, nil
	case kindStrings:
		items := []any{}
		for _, item := range strings.Split(s, ",") {
			if item = strings.TrimSpace(item); item != "" {
				items = append(items, item)
			}
		}
		return items, nil
	case kindObjects:
		if strings.TrimSpace(s) == "" {
			return []any{}, nil
		}
		var list any
		if err := json.Unmarshal([]byte(s), &list); err != nil {
			return nil, fmt.Errorf("must be a JSON array: %w", err)
		}
		return list, nil
	default:
		return s, nil
	}
}
