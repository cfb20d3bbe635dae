package config

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

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
	kindMap                  // a mapping of names to lists; a JSON object in the environment
)

// field is one configuration key, read off the Config struct's tags.
type field struct {
	key     string
	kind    kind
	def     string // the default, written as in the environment
	restart bool   // a running server cannot apply a change
	index   []int  // the field's place in Config, for reflect
}

// envPrefix starts every environment variable that sets a key.
const envPrefix = "GATEHOUSE_"

var (
	typeDuration = reflect.TypeFor[time.Duration]()
	typeSize     = reflect.TypeFor[Size]()
	typeSecure   = reflect.TypeFor[SecureSetting]()
	typeURL      = reflect.TypeFor[*url.URL]()
	typePrefix   = reflect.TypeFor[netip.Prefix]()
	typeLevel    = reflect.TypeFor[slog.Level]()
)

// schema lists every key Gatehouse knows, in the order of the Config
// struct, with its kind and default. It is derived from the struct's tags
// and is the single source for defaults, environment variable names and
// Keys; the decoder reads the same tags for names and unknown keys.
func schema() []field {
	var out []field
	walkFields(reflect.TypeFor[Config](), "", nil, &out)
	return out
}

// walkFields appends the keys of struct type t, whose key prefix is prefix.
// A struct field is a section; every other field is a key.
func walkFields(t reflect.Type, prefix string, index []int, out *[]field) {
	for i := range t.NumField() {
		sf := t.Field(i)
		name := sf.Tag.Get("mapstructure")
		if name == "" {
			panic("config: field " + t.Name() + "." + sf.Name + " has no mapstructure tag")
		}
		key := name
		if prefix != "" {
			key = prefix + "." + name
		}
		idx := append(slices.Clone(index), i)
		if sf.Type.Kind() == reflect.Struct && sf.Type != typePrefix {
			walkFields(sf.Type, key, idx, out)
			continue
		}
		*out = append(*out, field{
			key:     key,
			kind:    kindOf(sf.Type),
			def:     sf.Tag.Get("default"),
			restart: sf.Tag.Get("restart") == "true",
			index:   idx,
		})
	}
}

// kindOf is how a value of type t is written in the environment.
func kindOf(t reflect.Type) kind {
	switch {
	case t == typeDuration:
		return kindDuration
	case t == typeSize:
		return kindSize
	case t == typeSecure:
		return kindSecure
	case t == typeURL, t == typeLevel:
		return kindString
	}
	switch t.Kind() {
	case reflect.Int:
		return kindInt
	case reflect.Bool:
		return kindBool
	case reflect.Map:
		return kindMap
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Struct && t.Elem() != typePrefix {
			return kindObjects
		}
		return kindStrings
	default:
		return kindString
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
	case kindMap:
		if strings.TrimSpace(s) == "" {
			return map[string]any{}, nil
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(s), &m); err != nil {
			return nil, wrong("must be a JSON object such as {\"ops\": [\"a@example.com\"]}")
		}
		return m, nil
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
