// Package pages renders every HTML page and sign-in mail Gatehouse shows,
// in each supported language, from templates parsed once at construction.
//
// The templates are embedded; Options.TemplatesDir may replace any of them
// by file name: base.html (the layout), login.html, code.html,
// confirm.html, account.html, error.html (each defines
// "title" and "main"), mail.html and mail.txt. Page templates receive the
// shared chrome (.App, .Prefix, .Lang, .CSRFName, .CSRFToken, ...) and
// their view model as .V; mail templates receive the MailView. They call
// t "key" and tf "key" "name" value ... for catalog strings.
package pages

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	texttemplate "text/template"

	"golang.org/x/text/language"
)

//go:embed templates/*.html templates/*.txt static/* catalog/*.json
var embedded embed.FS

// Defaults applied by New to empty Options fields.
const (
	DefaultAppName     = "Gatehouse"
	DefaultAccentColor = "#2563eb"
	DefaultLanguage    = "en"
	DefaultPrefix      = "/.gatehouse"
)

// Options configures a Renderer. Every field is optional.
type Options struct {
	AppName         string // shown in titles, the header and mails; "" = "Gatehouse"
	Logo            string // "" or a data:image/ URL or an absolute path; shown in the header as <img alt="">
	AccentColor     string // "#rgb" or "#rrggbb"; "" = "#2563eb"
	TemplatesDir    string // a file here replaces the embedded template of the same name (other .html/.txt names are an error), and images here (.png .svg .jpg .jpeg .gif .webp .ico, up to 1 MiB) are served with the static files, for a logo such as "/.gatehouse/static/logo.svg"; "" = embedded only
	DefaultLanguage string // one of Languages(); "" = "en"
	Prefix          string // URL prefix of Gatehouse's own pages; "" = "/.gatehouse"
}

// Renderer renders pages and mails. It is safe for concurrent use.
type Renderer struct {
	opts     Options
	logo     htmltemplate.URL
	langs    []string // supported languages, default first
	matcher  language.Matcher
	catalogs map[string]catalog
	pages    map[string]map[string]*htmltemplate.Template // page file → language → template
	mailHTML map[string]*htmltemplate.Template
	mailText map[string]*texttemplate.Template
	theme    theme
	static   staticFS
	cssURL   string
	jsURL    string
}

// Template files. Page files define "title" and "main", which the layout in
// base.html places into a complete document.
const (
	baseFile     = "base.html"
	loginFile    = "login.html"
	codeFile     = "code.html"
	confirmFile  = "confirm.html"
	accountFile  = "account.html"
	errorFile    = "error.html"
	mailHTMLFile = "mail.html"
	mailTextFile = "mail.txt"
)

func pageFiles() []string {
	return []string{loginFile, codeFile, confirmFile, accountFile, errorFile}
}

// New validates opts, loads the string catalogs, parses every template
// (applying overrides from opts.TemplatesDir), renders each page once to
// surface template errors, and builds the static assets.
func New(opts Options) (*Renderer, error) {
	opts, logo, err := normalize(opts)
	if err != nil {
		return nil, err
	}
	r := &Renderer{opts: opts, logo: logo}
	if r.catalogs, err = loadCatalogs(embedded); err != nil {
		return nil, fmt.Errorf("pages: %w", err)
	}
	r.langs = languageOrder(r.catalogs, opts.DefaultLanguage)
	if !slices.Contains(r.langs, opts.DefaultLanguage) {
		return nil, fmt.Errorf("pages: default language %q is not one of %v", opts.DefaultLanguage, r.langs)
	}
	tags := make([]language.Tag, len(r.langs))
	for i, l := range r.langs {
		tags[i] = language.Make(l)
	}
	r.matcher = language.NewMatcher(tags)

	if r.theme, err = newTheme(opts.AccentColor); err != nil {
		return nil, fmt.Errorf("pages: accent color: %w", err)
	}
	if err := r.buildStatic(); err != nil {
		return nil, fmt.Errorf("pages: %w", err)
	}
	src, err := loadSources(opts.TemplatesDir)
	if err != nil {
		return nil, fmt.Errorf("pages: %w", err)
	}
	if err := r.parse(src); err != nil {
		return nil, fmt.Errorf("pages: %w", err)
	}
	if err := r.check(); err != nil {
		return nil, fmt.Errorf("pages: %w", err)
	}
	return r, nil
}

func normalize(opts Options) (Options, htmltemplate.URL, error) {
	if opts.AppName == "" {
		opts.AppName = DefaultAppName
	}
	if opts.AccentColor == "" {
		opts.AccentColor = DefaultAccentColor
	}
	if opts.DefaultLanguage == "" {
		opts.DefaultLanguage = DefaultLanguage
	}
	opts.DefaultLanguage = strings.ToLower(opts.DefaultLanguage)
	if opts.Prefix == "" {
		opts.Prefix = DefaultPrefix
	}
	opts.Prefix = strings.TrimRight(opts.Prefix, "/")
	if !isLocalPath(opts.Prefix + "/") {
		return opts, "", fmt.Errorf("pages: prefix %q must be an absolute path such as %q", opts.Prefix, DefaultPrefix)
	}
	var errs []error
	if strings.ContainsAny(opts.AppName, "\r\n\x00") {
		errs = append(errs, errors.New("pages: app name must not contain line breaks"))
	}
	logo := htmltemplate.URL("")
	switch {
	case opts.Logo == "":
	case strings.HasPrefix(opts.Logo, "data:image/"), isLocalPath(opts.Logo):
		if strings.ContainsAny(opts.Logo, "\"'<> \r\n\t\x00") {
			errs = append(errs, errors.New("pages: logo contains characters not allowed in a URL"))
		}
		// Trusted configuration, checked above; html/template would otherwise
		// replace every data: URL with a placeholder.
		logo = htmltemplate.URL(opts.Logo)
	default:
		errs = append(errs, errors.New("pages: logo must be a data:image/ URL or an absolute path on this server (pages load nothing from other sites)"))
	}
	return opts, logo, errors.Join(errs...)
}

// isLocalPath reports whether p is a path on this site: it starts with one
// slash that is not followed by another slash or a backslash.
func isLocalPath(p string) bool {
	return len(p) >= 1 && p[0] == '/' && (len(p) == 1 || (p[1] != '/' && p[1] != '\\'))
}

// loadSources returns the text of every template file: the embedded one,
// or the file of the same name in dir when present.
func loadSources(dir string) (map[string]string, error) {
	names := append([]string{baseFile, mailHTMLFile, mailTextFile}, pageFiles()...)
	src := make(map[string]string, len(names))
	for _, name := range names {
		b, err := embedded.ReadFile(path.Join("templates", name))
		if err != nil {
			return nil, fmt.Errorf("read embedded template %s: %w", name, err)
		}
		src[name] = string(b)
	}
	if dir == "" {
		return src, nil
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read templates dir: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || (path.Ext(name) != ".html" && path.Ext(name) != ".txt") {
			continue
		}
		if _, known := src[name]; !known {
			return nil, fmt.Errorf("templates dir: %s does not replace any template (known: %s)", name, strings.Join(sortedKeys(src), ", "))
		}
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("read template override %s: %w", name, err)
		}
		src[name] = string(b)
	}
	return src, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// parse parses each file once, then gives every language its own clone whose
// string functions read that language's catalog.
func (r *Renderer) parse(src map[string]string) error {
	def := r.opts.DefaultLanguage
	base, err := htmltemplate.New(baseFile).Funcs(r.htmlFuncs(def)).Parse(src[baseFile])
	if err != nil {
		return fmt.Errorf("parse template %s: %w", baseFile, err)
	}
	r.pages = make(map[string]map[string]*htmltemplate.Template, len(pageFiles()))
	for _, name := range pageFiles() {
		t, err := base.Clone()
		if err != nil {
			return fmt.Errorf("clone layout for %s: %w", name, err)
		}
		if _, err := t.New(name).Parse(src[name]); err != nil {
			return fmt.Errorf("parse template %s: %w", name, err)
		}
		for _, block := range []string{"page", "title", "main"} {
			if t.Lookup(block) == nil {
				return fmt.Errorf("parse template %s: no %q template defined (pages define \"title\" and \"main\", %s defines \"page\")", name, block, baseFile)
			}
		}
		r.pages[name] = make(map[string]*htmltemplate.Template, len(r.langs))
		for _, lang := range r.langs {
			c, err := t.Clone()
			if err != nil {
				return fmt.Errorf("clone template %s: %w", name, err)
			}
			r.pages[name][lang] = c.Funcs(r.htmlFuncs(lang))
		}
	}

	mh, err := htmltemplate.New(mailHTMLFile).Funcs(r.htmlFuncs(def)).Parse(src[mailHTMLFile])
	if err != nil {
		return fmt.Errorf("parse template %s: %w", mailHTMLFile, err)
	}
	mt, err := texttemplate.New(mailTextFile).Funcs(r.textFuncs(def)).Parse(src[mailTextFile])
	if err != nil {
		return fmt.Errorf("parse template %s: %w", mailTextFile, err)
	}
	r.mailHTML = make(map[string]*htmltemplate.Template, len(r.langs))
	r.mailText = make(map[string]*texttemplate.Template, len(r.langs))
	for _, lang := range r.langs {
		h, err := mh.Clone()
		if err != nil {
			return fmt.Errorf("clone template %s: %w", mailHTMLFile, err)
		}
		r.mailHTML[lang] = h.Funcs(r.htmlFuncs(lang))
		t, err := mt.Clone()
		if err != nil {
			return fmt.Errorf("clone template %s: %w", mailTextFile, err)
		}
		r.mailText[lang] = t.Funcs(r.textFuncs(lang))
	}
	return nil
}

// check renders every page and mail once in every language, so that errors
// html/template finds only on first execution (and fields an override
// misspells) fail New instead of a visitor's request.
func (r *Renderer) check() error {
	for _, lang := range r.langs {
		b := Base{Lang: lang}
		checks := []struct {
			file   string
			render func() error
		}{
			{loginFile, func() error { return r.Login(io.Discard, LoginView{Base: b}) }},
			{codeFile, func() error { return r.Code(io.Discard, CodeView{Base: b, ResendIn: 1, TTLMinutes: 5}) }},
			{confirmFile, func() error { return r.Confirm(io.Discard, ConfirmView{Base: b}) }},
			{accountFile, func() error {
				return r.Account(io.Discard, AccountView{Base: b, Sessions: []SessionView{{Current: true}, {}}})
			}},
			{errorFile, func() error { return r.Error(io.Discard, ErrorView{Base: b, Status: 403, Email: "a@example.com"}) }},
			{mailHTMLFile + ", " + mailTextFile, func() error {
				_, err := r.Mail(MailView{Lang: lang, TTLMinutes: 5, LinkURL: "https://example.com/"})
				return err
			}},
		}
		for _, c := range checks {
			if err := c.render(); err != nil {
				return fmt.Errorf("check template %s (%s): %w", c.file, lang, err)
			}
		}
	}
	return nil
}

// Languages returns the supported language codes, the default first.
func (r *Renderer) Languages() []string { return slices.Clone(r.langs) }

// Negotiate picks the language of a response: override (a ?lang= value)
// when supported, else the best supported match of the Accept-Language
// header, else the default language.
func (r *Renderer) Negotiate(acceptLanguage, override string) string {
	if l, ok := r.Supported(override); ok {
		return l
	}
	if acceptLanguage == "" {
		return r.opts.DefaultLanguage
	}
	tags, _, err := language.ParseAcceptLanguage(acceptLanguage)
	if err != nil {
		tags = lenientTags(acceptLanguage)
	}
	if len(tags) == 0 {
		return r.opts.DefaultLanguage
	}
	_, i, conf := r.matcher.Match(tags...)
	if conf == language.No {
		return r.opts.DefaultLanguage
	}
	return r.langs[i]
}

// lenientTags reads the languages of an Accept-Language header that the
// strict parser refuses (a stray parameter, a bad weight), in the order
// given, skipping entries that are not language tags. A visitor whose
// browser or proxy mangles the weights still gets their first language.
func lenientTags(header string) []language.Tag {
	var tags []language.Tag
	for _, part := range strings.Split(header, ",") {
		name, _, _ := strings.Cut(part, ";")
		name = strings.TrimSpace(name)
		if name == "" || name == "*" || len(name) > 35 {
			continue
		}
		if tag, err := language.Parse(name); err == nil {
			tags = append(tags, tag)
		}
		if len(tags) == 8 {
			break
		}
	}
	return tags
}

// Supported returns the language code that a ?lang= value such as "ko",
// "KO" or "ko-KR" names, and whether it is one of Languages().
func (r *Renderer) Supported(lang string) (string, bool) {
	if lang == "" || len(lang) > 35 {
		return "", false
	}
	tag, err := language.Parse(lang)
	if err != nil {
		return "", false
	}
	base, _ := tag.Base()
	code := base.String()
	if !slices.Contains(r.langs, code) {
		return "", false
	}
	return code, true
}

// lang returns l when supported and the default language otherwise.
func (r *Renderer) lang(l string) string {
	l = strings.ToLower(l)
	if _, ok := r.catalogs[l]; ok {
		return l
	}
	return r.opts.DefaultLanguage
}

// Static returns the files to serve under {Prefix}/static/: style.css (with
// the accent color built in) and app.js. Pages link them with a content hash
// in the query, so they may be served with a long cache lifetime.
func (r *Renderer) Static() fs.FS { return r.static }

// Message returns the catalog string key in lang, for messages outside
// pages such as JSON API errors. An unknown lang falls back to the default
// language; an unknown key to the English string, then to a generic
// "something went wrong" message, never to the key itself.
func (r *Renderer) Message(lang, key string) string {
	return r.text(r.lang(lang), key)
}

func (r *Renderer) buildStatic() error {
	css, err := embedded.ReadFile("static/style.css")
	if err != nil {
		return fmt.Errorf("read style.css: %w", err)
	}
	js, err := embedded.ReadFile("static/app.js")
	if err != nil {
		return fmt.Errorf("read app.js: %w", err)
	}
	var buf bytes.Buffer
	buf.WriteString(r.theme.css())
	buf.Write(css)
	r.static = staticFS{"style.css": buf.Bytes(), "app.js": js}
	if err := r.static.addImages(r.opts.TemplatesDir); err != nil {
		return err
	}
	r.cssURL = r.opts.Prefix + "/static/style.css?v=" + r.static.version("style.css")
	r.jsURL = r.opts.Prefix + "/static/app.js?v=" + r.static.version("app.js")
	return nil
}
