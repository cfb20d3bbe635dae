package pages

import (
	"encoding/json"
	"fmt"
	htmltemplate "html/template"
	"io/fs"
	"path"
	"slices"
	"strings"
	"time"
)

// catalog maps a message key to its text in one language. Texts may hold
// named placeholders such as "{minutes}", filled by format.
type catalog map[string]string

// genericKey names the message shown when a requested key is unknown, so a
// caller that passes raw error text instead of a key never shows it.
const genericKey = "error.generic"

// loadCatalogs reads catalog/<lang>.json for every language present.
func loadCatalogs(fsys fs.FS) (map[string]catalog, error) {
	files, err := fs.Glob(fsys, "catalog/*.json")
	if err != nil {
		return nil, fmt.Errorf("list catalogs: %w", err)
	}
	cats := make(map[string]catalog, len(files))
	for _, f := range files {
		b, err := fs.ReadFile(fsys, f)
		if err != nil {
			return nil, fmt.Errorf("read catalog %s: %w", f, err)
		}
		var c catalog
		if err := json.Unmarshal(b, &c); err != nil {
			return nil, fmt.Errorf("parse catalog %s: %w", f, err)
		}
		cats[strings.TrimSuffix(path.Base(f), ".json")] = c
	}
	if _, ok := cats["en"]; !ok {
		return nil, fmt.Errorf("load catalogs: catalog/en.json is missing")
	}
	return cats, nil
}

// languageOrder lists the catalog languages, def first, the rest sorted.
func languageOrder(cats map[string]catalog, def string) []string {
	langs := make([]string, 0, len(cats))
	for l := range cats {
		if l != def {
			langs = append(langs, l)
		}
	}
	slices.Sort(langs)
	if _, ok := cats[def]; ok {
		langs = append([]string{def}, langs...)
	}
	return langs
}

// text looks key up in lang, then in English, then falls back to the
// generic message.
func (r *Renderer) text(lang, key string) string {
	if s, ok := r.catalogs[lang][key]; ok {
		return s
	}
	if s, ok := r.catalogs["en"][key]; ok {
		return s
	}
	if s, ok := r.catalogs[lang][genericKey]; ok {
		return s
	}
	return r.catalogs["en"][genericKey]
}

// format replaces each "{name}" in s with the value following name in args
// (name, value, name, value, ...). escape, when set, is applied to the
// catalog text and to every value except those of type htmltemplate.HTML.
func format(s string, escape func(string) string, args ...any) string {
	if escape != nil {
		s = escape(s)
	}
	if len(args) < 2 {
		return s
	}
	pairs := make([]string, 0, len(args))
	for i := 0; i+1 < len(args); i += 2 {
		name := fmt.Sprint(args[i])
		var value string
		switch v := args[i+1].(type) {
		case htmltemplate.HTML:
			value = string(v)
		default:
			value = fmt.Sprint(v)
			if escape != nil {
				value = escape(value)
			}
		}
		pairs = append(pairs, "{"+name+"}", value)
	}
	return strings.NewReplacer(pairs...).Replace(s)
}

// htmlFuncs are the functions page and HTML mail templates call; the string
// functions read lang's catalog.
//
//	t "key"                       catalog text, escaped by html/template
//	tf "key" "name" value ...     catalog text with placeholders filled; values escaped
//	bold, code s                  s escaped inside <b> or <code>, for use as a tf value
//	seconds n                     n inside the element the resend countdown updates
//	when time                     a <time> element with the time written for lang
//	safeHref s                    s when it is a path on this site or an http(s) URL, else "/"
func (r *Renderer) htmlFuncs(lang string) htmltemplate.FuncMap {
	esc := htmltemplate.HTMLEscapeString
	return htmltemplate.FuncMap{
		"t": func(key string) string { return r.text(lang, key) },
		"tf": func(key string, args ...any) htmltemplate.HTML {
			return htmltemplate.HTML(format(r.text(lang, key), esc, args...))
		},
		"bold": func(s string) htmltemplate.HTML { return htmltemplate.HTML("<b>" + esc(s) + "</b>") },
		"code": func(s string) htmltemplate.HTML { return htmltemplate.HTML("<code>" + esc(s) + "</code>") },
		"seconds": func(n int) htmltemplate.HTML {
			return htmltemplate.HTML(fmt.Sprintf(`<span data-resend-seconds>%d</span>`, n))
		},
		"when": func(t time.Time) htmltemplate.HTML {
			if t.IsZero() {
				return "–"
			}
			t = t.UTC()
			return htmltemplate.HTML(`<time datetime="` + t.Format(time.RFC3339) + `" data-local>` +
				esc(t.Format(r.text(lang, "time.layout"))) + `</time>`)
		},
		"safeHref": safeHref,
	}
}

// textFuncs are the functions of the plain-text mail template.
func (r *Renderer) textFuncs(lang string) map[string]any {
	return map[string]any{
		"t":  func(key string) string { return r.text(lang, key) },
		"tf": func(key string, args ...any) string { return format(r.text(lang, key), nil, args...) },
	}
}

// safeHref keeps links built from a redirect target on this site or on an
// http(s) URL; the caller validates rd, this is a second line.
func safeHref(s string) string {
	lower := strings.ToLower(s)
	switch {
	case isLocalPath(s) && !strings.ContainsAny(s, "\\\r\n\t"):
		return s
	case strings.HasPrefix(lower, "https://"), strings.HasPrefix(lower, "http://"):
		if !strings.ContainsAny(s, "\\\r\n\t") {
			return s
		}
	}
	return "/"
}
