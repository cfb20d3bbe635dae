package pages

import (
	"bytes"
	"fmt"
	htmltemplate "html/template"
	"io"
	"strings"
)

const defaultCSRFName = "_csrf"

// page is what page templates receive: the chrome every page shares, and
// the page's own view model as V.
type page struct {
	App       string
	Logo      htmltemplate.URL
	Prefix    string
	CSS, JS   string // stylesheet and script URLs
	Lang      string
	Nonce     string
	CSRFName  string
	CSRFToken string
	RD        string // kept by the language links
	Languages []languageLink
	V         any
}

type languageLink struct {
	Code, Name string
	Current    bool
}

// Login writes the email form.
func (r *Renderer) Login(w io.Writer, v LoginView) error {
	return r.render(w, loginFile, v.Base, v.RD, v)
}

// Code writes the code form.
func (r *Renderer) Code(w io.Writer, v CodeView) error {
	if v.CodeLength <= 0 {
		v.CodeLength = 6
	}
	if v.Notice == "" {
		v.Notice = "code.sent"
	}
	if v.ResendIn < 0 {
		v.ResendIn = 0
	}
	return r.render(w, codeFile, v.Base, v.RD, v)
}

// Confirm writes the landing page of the one-click link: "Sign in as X?"
// with a button that posts the token.
func (r *Renderer) Confirm(w io.Writer, v ConfirmView) error {
	return r.render(w, confirmFile, v.Base, v.RD, v)
}

// Account writes the account page with the user's sessions.
func (r *Renderer) Account(w io.Writer, v AccountView) error {
	return r.render(w, accountFile, v.Base, "", v)
}

// Error writes an error page. An unknown or empty Kind is derived from
// Status, falling back to "server".
func (r *Renderer) Error(w io.Writer, v ErrorView) error {
	v.Kind = errorKind(v.Status, v.Kind)
	return r.render(w, errorFile, v.Base, v.RD, v)
}

// errorKind returns kind when it is known, else the kind that goes with
// status, else "server".
func errorKind(status int, kind string) string {
	switch kind {
	case "bad_request", "forbidden", "not_found", "method_not_allowed", "too_large",
		"throttled", "server", "unreachable", "timeout", "unavailable", "send_failed", "csrf":
		return kind
	}
	switch status {
	case 400:
		return "bad_request"
	case 403:
		return "forbidden"
	case 404:
		return "not_found"
	case 405:
		return "method_not_allowed"
	case 413:
		return "too_large"
	case 429:
		return "throttled"
	case 502:
		return "unreachable"
	case 503:
		return "unavailable"
	case 504:
		return "timeout"
	}
	return "server"
}

// Mail renders the sign-in mail in v.Lang.
func (r *Renderer) Mail(v MailView) (Mail, error) {
	lang := r.lang(v.Lang)
	v.Lang = lang
	if v.AppName == "" {
		v.AppName = r.opts.AppName
	}
	data := struct {
		MailView
		Accent, OnAccent htmltemplate.CSS
	}{v, htmltemplate.CSS(r.theme.light.accent), htmltemplate.CSS(r.theme.light.onAccent)}

	var text, html bytes.Buffer
	if err := r.mailText[lang].Execute(&text, data); err != nil {
		return Mail{}, fmt.Errorf("render mail text: %w", err)
	}
	if err := r.mailHTML[lang].Execute(&html, data); err != nil {
		return Mail{}, fmt.Errorf("render mail html: %w", err)
	}
	subject := format(r.text(lang, "mail.subject"), nil, "app", v.AppName)
	return Mail{
		Subject: strings.Join(strings.Fields(subject), " "),
		Text:    text.String(),
		HTML:    html.String(),
	}, nil
}

// render executes a page into a buffer first, so that a failing template
// writes nothing and the caller can still answer with an error.
func (r *Renderer) render(w io.Writer, file string, b Base, rd string, v any) error {
	lang := r.lang(b.Lang)
	if b.CSRFName == "" {
		b.CSRFName = defaultCSRFName
	}
	links := make([]languageLink, len(r.langs))
	for i, l := range r.langs {
		links[i] = languageLink{Code: l, Name: r.text(l, "lang.name"), Current: l == lang}
	}
	p := page{
		App:       r.opts.AppName,
		Logo:      r.logo,
		Prefix:    r.opts.Prefix,
		CSS:       r.cssURL,
		JS:        r.jsURL,
		Lang:      lang,
		Nonce:     b.Nonce,
		CSRFName:  b.CSRFName,
		CSRFToken: b.CSRFToken,
		RD:        rd,
		Languages: links,
		V:         v,
	}
	var buf bytes.Buffer
	if err := r.pages[file][lang].ExecuteTemplate(&buf, "page", p); err != nil {
		return fmt.Errorf("render %s: %w", file, err)
	}
	if _, err := buf.WriteTo(w); err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	return nil
}
