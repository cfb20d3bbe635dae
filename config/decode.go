package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"net/url"
	"reflect"
	"regexp"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"
)

// decode builds a Config from everything v holds (defaults, the document,
// the environment) with viper's UnmarshalExact, so a key the struct does
// not name is an error. Type and syntax problems are filed under their
// keys; range and cross-key checks belong to validate. Fields whose value
// could not be read are left at their zero value.
func decode(p *problems, v *viper.Viper) *Config {
	c := &Config{}
	err := v.UnmarshalExact(c, func(dc *mapstructure.DecoderConfig) {
		dc.DecodeHook = decodeHook
		// Types are checked by decodeHook: a YAML 5 is not a string and
		// 2.5 is not an integer.
		dc.WeaklyTypedInput = false
		dc.TagName = "mapstructure"
	})
	fileDecodeErrors(p, err)
	normalize(reflect.ValueOf(c).Elem(), "")
	if u := c.Server.PublicURL; u != nil {
		// Links are built by appending "/.gatehouse/…" to the public URL.
		u.Host = strings.ToLower(u.Host)
		u.Path = strings.TrimRight(u.Path, "/")
		u.RawPath = strings.TrimRight(u.RawPath, "/")
	}
	return c
}

// fileDecodeErrors files each of mapstructure's errors under the key it
// names. Its messages are replaced by ours, which never quote a value, so
// that a secret given in the wrong place does not end up in a log.
func fileDecodeErrors(p *problems, err error) {
	if err == nil {
		return
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			fileDecodeErrors(p, e)
		}
		return
	}
	de, ok := err.(*mapstructure.DecodeError)
	if !ok {
		// mapstructure wraps its list in one message of its own.
		if inner := errors.Unwrap(err); inner != nil {
			fileDecodeErrors(p, inner)
		} else {
			p.add("config", errors.New("cannot be decoded"))
		}
		return
	}
	inner := de.Unwrap()
	if j, ok := inner.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			fileDecodeErrors(p, e)
		}
		return
	}
	if _, nested := inner.(*mapstructure.DecodeError); nested {
		fileDecodeErrors(p, inner)
		return
	}
	key := mapKey.ReplaceAllString(de.Name(), ".$1")
	if list, ok := strings.CutPrefix(inner.Error(), "has invalid keys: "); ok {
		for _, k := range strings.Split(list, ", ") {
			p.addf(joinKey(key, k), "unknown key")
		}
		return
	}
	if key == "" {
		key = "config"
	}
	var hookErr *valueError
	var conv *mapstructure.UnconvertibleTypeError
	switch {
	case errors.As(inner, &hookErr):
		p.add(key, hookErr)
	case errors.As(inner, &conv):
		p.add(key, expectation(conv.Expected.Type()))
	default:
		p.add(key, errors.New("has a value of the wrong type"))
	}
}

// mapKey finds mapstructure's spelling of a map entry, "groups[ops]", which
// the config's keys write "groups.ops".
var mapKey = regexp.MustCompile(`\[([^\]0-9][^\]]*)\]`)

func joinKey(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

// valueError is a message of decodeHook's, which never quotes the value.
type valueError struct{ msg string }

func (e *valueError) Error() string { return e.msg }

func wrong(msg string) error { return &valueError{msg} }

var (
	errMustBeString   = wrong("must be a string")
	errMustBeInteger  = wrong("must be an integer")
	errMustBeBoolean  = wrong("must be a boolean (true or false)")
	errMustBeList     = wrong("must be a list")
	errMustBeMapping  = wrong("must be a mapping")
	errMustBeDuration = wrong("must be a duration such as \"90s\", \"5m\" or \"24h\" (units: ms, s, m, h)")
	errMustBeSize     = wrong("must be a number of bytes or a size such as \"10MB\"")
	errMustBeSecure   = wrong("must be one of auto, true, false")
	errMustBeLevel    = wrong("must be one of debug, info, warn, error")
)

// expectation is the message for a value that is not of type t.
func expectation(t reflect.Type) error {
	switch t {
	case typeDuration:
		return errMustBeDuration
	case typeSize:
		return errMustBeSize
	case typeSecure:
		return errMustBeSecure
	case typeLevel:
		return errMustBeLevel
	case typeURL, typePrefix:
		return errMustBeString
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int64:
		return errMustBeInteger
	case reflect.Bool:
		return errMustBeBoolean
	case reflect.Slice:
		return errMustBeList
	case reflect.Struct, reflect.Map:
		return errMustBeMapping
	default:
		return errMustBeString
	}
}

// decodeHook converts a raw YAML (or environment) value into the type of
// the field it is decoded into, or says why it cannot be.
func decodeHook(from, to reflect.Value) (any, error) {
	if !from.IsValid() {
		return nil, nil
	}
	in := from.Interface()
	switch to.Type() {
	case typeDuration:
		return toDuration(in)
	case typeSize:
		return toSize(in)
	case typeSecure:
		return toSecure(in)
	case typeLevel:
		return toLevel(in)
	case typeURL:
		if _, done := in.(*url.URL); done {
			return in, nil
		}
		s, ok := in.(string)
		if !ok {
			return nil, errMustBeString
		}
		return parseHTTPURL(s)
	case typePrefix:
		if _, done := in.(netip.Prefix); done {
			return in, nil
		}
		s, ok := in.(string)
		if !ok {
			return nil, errMustBeString
		}
		return parsePrefix(strings.TrimSpace(s))
	}
	if to.Type() == reflect.TypeFor[url.URL]() {
		return in, nil // the pointer's element, already parsed
	}
	switch to.Kind() {
	case reflect.String:
		if from.Kind() != reflect.String {
			return nil, errMustBeString
		}
	case reflect.Int:
		if _, ok := asInt(in); !ok {
			return nil, errMustBeInteger
		}
	case reflect.Bool:
		if from.Kind() != reflect.Bool {
			return nil, errMustBeBoolean
		}
	case reflect.Slice:
		if from.Kind() != reflect.Slice {
			return nil, errMustBeList
		}
	case reflect.Struct, reflect.Map:
		if from.Kind() != reflect.Map {
			return nil, errMustBeMapping
		}
	}
	return in, nil
}

// asInt accepts the integer types a YAML decoder produces. Floats are
// refused even when whole: configuration integers are written as integers.
func asInt(raw any) (int, bool) {
	v := reflect.ValueOf(raw)
	switch v.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n := v.Int()
		return int(n), int64(int(n)) == n
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n := v.Uint()
		return int(n), n <= uint64(^uint(0)>>1)
	default:
		return 0, false
	}
}

func toDuration(in any) (any, error) {
	switch v := in.(type) {
	case time.Duration:
		return v, nil
	case string:
		d, err := time.ParseDuration(strings.TrimSpace(v))
		if err != nil {
			return nil, errMustBeDuration
		}
		return d, nil
	default:
		return nil, errMustBeDuration
	}
}

func toSize(in any) (any, error) {
	switch v := in.(type) {
	case Size:
		return v, nil
	case string:
		n, err := parseSize(v)
		if err != nil {
			return nil, wrong(err.Error())
		}
		return Size(n), nil
	default:
		n, ok := asInt(v)
		if !ok {
			return nil, errMustBeSize
		}
		if n < 0 {
			return nil, wrong("must not be negative")
		}
		return Size(n), nil
	}
}

// toSecure reads session.secure, which YAML users naturally write as a
// boolean.
func toSecure(in any) (any, error) {
	switch v := in.(type) {
	case SecureSetting:
		return v, nil
	case bool:
		if v {
			return SecureSetting("true"), nil
		}
		return SecureSetting("false"), nil
	case string:
		s := SecureSetting(strings.ToLower(strings.TrimSpace(v)))
		if s != "auto" && s != "true" && s != "false" {
			return nil, errMustBeSecure
		}
		return s, nil
	default:
		return nil, errMustBeSecure
	}
}

func toLevel(in any) (any, error) {
	if l, ok := in.(slog.Level); ok {
		return l, nil
	}
	s, _ := in.(string)
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return nil, errMustBeLevel
}

// parsePrefix accepts a CIDR or a bare IP address, which stands for itself
// alone (/32 or /128).
func parsePrefix(s string) (netip.Prefix, error) {
	errBad := wrong("must be a CIDR such as 10.0.0.0/8 or an IP address")
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

// parseHTTPURL parses an absolute http or https URL with a host and without
// user information, query or fragment. Messages never quote the URL, which
// could hold credentials.
func parseHTTPURL(s string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSpace(s))
	switch {
	case err != nil, u.Scheme != "http" && u.Scheme != "https", u.Opaque != "", u.Hostname() == "":
		return nil, wrong("must be an absolute http or https URL")
	case u.User != nil:
		return nil, wrong("must not contain user information")
	case u.RawQuery != "" || u.ForceQuery:
		return nil, wrong("must not contain a query")
	case u.Fragment != "":
		return nil, wrong("must not contain a fragment")
	}
	return u, nil
}

// normalize applies the normalize tags below v, and trims every element of
// a list of strings. "lower" and "upper" trim too.
func normalize(v reflect.Value, how string) {
	switch v.Kind() {
	case reflect.Struct:
		t := v.Type()
		if t == typePrefix {
			return
		}
		for i := range t.NumField() {
			normalize(v.Field(i), t.Field(i).Tag.Get("normalize"))
		}
	case reflect.Slice:
		if v.Len() == 0 {
			// An empty list and no list are the same setting.
			v.SetZero()
			return
		}
		for i := range v.Len() {
			e := v.Index(i)
			if e.Kind() == reflect.String {
				e.SetString(cleanString(e.String(), "trim"))
			}
			normalize(e, how)
		}
	case reflect.Map:
		if v.Len() == 0 {
			v.SetZero()
			return
		}
		for _, k := range v.MapKeys() {
			e := reflect.New(v.Type().Elem()).Elem()
			e.Set(v.MapIndex(k))
			normalize(e, how)
			v.SetMapIndex(k, e)
		}
	case reflect.String:
		v.SetString(cleanString(v.String(), how))
	}
}

func cleanString(s, how string) string {
	switch how {
	case "trim":
		return strings.TrimSpace(s)
	case "lower":
		return strings.ToLower(strings.TrimSpace(s))
	case "upper":
		return strings.ToUpper(strings.TrimSpace(s))
	case "":
		return s
	default:
		panic(fmt.Sprintf("config: unknown normalize tag %q", how))
	}
}

func index(key string, i int) string {
	return fmt.Sprintf("%s[%d]", key, i)
}
