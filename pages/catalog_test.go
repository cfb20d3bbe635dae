package pages

import (
	"html"
	"io/fs"
	"regexp"
	"slices"
	"testing"
)

func loadTestCatalogs(t *testing.T) map[string]catalog {
	t.Helper()
	cats, err := loadCatalogs(embedded)
	if err != nil {
		t.Fatal(err)
	}
	if len(cats) < 2 {
		t.Fatalf("want at least en and ko catalogs, got %d", len(cats))
	}
	return cats
}

func TestCatalogParity(t *testing.T) {
	cats := loadTestCatalogs(t)
	placeholder := regexp.MustCompile(`\{[a-z_]+\}`)
	for lang, c := range cats {
		if lang == "en" {
			continue
		}
		t.Run(lang, func(t *testing.T) {
			for key, en := range cats["en"] {
				s, ok := c[key]
				if !ok {
					t.Errorf("%s lacks %q", lang, key)
					continue
				}
				if s == "" {
					t.Errorf("%s: %q is empty", lang, key)
				}
				a, b := placeholder.FindAllString(en, -1), placeholder.FindAllString(s, -1)
				slices.Sort(a)
				slices.Sort(b)
				if !slices.Equal(a, b) {
					t.Errorf("%q: placeholders differ: en %v, %s %v", key, a, lang, b)
				}
			}
			for key := range c {
				if _, ok := cats["en"][key]; !ok {
					t.Errorf("en lacks %q (present in %s)", key, lang)
				}
			}
		})
	}
}

// dynamicKeys are the keys callers pass in view models, and those templates
// build from a Kind; the template scan cannot see them.
func dynamicKeys() []string {
	keys := []string{
		"login.missing_email", "login.invalid_email", "login.throttled", "login.send_failed", "login.link_invalid",
		"code.sent", "code.resent", "code.wrong", "code.expired", "code.too_many", "code.missing", "code.invalid",
		"code.resend_too_early", "code.throttled", "code.send_failed",
		"form.expired", "account.revoked", "account.others_revoked", "error.generic", "time.layout", "lang.name", "mail.subject",
	}
	for _, kind := range []string{"bad_request", "forbidden", "not_found", "method_not_allowed", "too_large",
		"throttled", "server", "unreachable", "timeout", "unavailable", "send_failed", "csrf"} {
		keys = append(keys, "error."+kind+".title", "error."+kind+".text")
	}
	return keys
}

func TestTemplateKeysExist(t *testing.T) {
	cats := loadTestCatalogs(t)
	use := regexp.MustCompile(`\b(?:t|tf) "([^"]+)"`)
	files, err := fs.Glob(embedded, "templates/*")
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, f := range files {
		b, err := fs.ReadFile(embedded, f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range use.FindAllSubmatch(b, -1) {
			found++
			key := string(m[1])
			for lang, c := range cats {
				if _, ok := c[key]; !ok {
					t.Errorf("%s uses %q, missing from %s", f, key, lang)
				}
			}
		}
	}
	if found < 50 {
		t.Errorf("found only %d catalog uses in templates; is the scan broken?", found)
	}
	for _, key := range dynamicKeys() {
		for lang, c := range cats {
			if _, ok := c[key]; !ok {
				t.Errorf("key %q missing from %s", key, lang)
			}
		}
	}
}

func TestFormat(t *testing.T) {
	cases := []struct {
		name, s string
		escape  func(string) string
		args    []any
		want    string
	}{
		{"no args", "plain {x}", nil, nil, "plain {x}"},
		{"one value", "in {minutes} minutes", nil, []any{"minutes", 5}, "in 5 minutes"},
		{"two values, repeated", "{a}-{b}-{a}", nil, []any{"a", "1", "b", 2}, "1-2-1"},
		{"odd args ignore the last", "{a}{b}", nil, []any{"a", "x", "b"}, "x{b}"},
		{"value is not re-expanded", "{a}{b}", nil, []any{"a", "{b}", "b", "y"}, "{b}y"},
		{"escaped", "<{a}>", html.EscapeString, []any{"a", "<i>"}, "&lt;&lt;i&gt;&gt;"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := format(c.s, c.escape, c.args...); got != c.want {
				t.Errorf("format = %q, want %q", got, c.want)
			}
		})
	}
}
