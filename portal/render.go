package portal

import (
	"bytes"
	"net/http"
	"strings"

	"github.com/gofiber/fiber/v2"

	"gatehouse/pages"
)

// WantsPage is the one answer to "browser or API?": a client that accepts
// HTML gets pages (and error pages), anything else JSON.
func WantsPage(accept []byte) bool {
	return bytes.Contains(accept, []byte("text/html"))
}

// IsNavigation reports a browser's page load, the only request that can be
// sent to the sign-in page and back: a GET or HEAD that wants a page.
func IsNavigation(method string, accept []byte) bool {
	return (method == http.MethodGet || method == http.MethodHead) && WantsPage(accept)
}

// Fail answers with an error: an error page for browsers, JSON for the
// rest. Every error Gatehouse itself answers, on its own paths and on the
// app's, goes through here; it never shows internal error text. email, when
// set, is the signed-in user the page offers to switch away from.
func (s *Portal) Fail(c *fiber.Ctx, status int, kind, email string) error {
	if !WantsPage(c.Request().Header.Peek("Accept")) {
		return s.JSONError(c, status, kind)
	}
	f := s.facts(c)
	rs := s.settings(c)
	rd := ""
	if c.Method() == http.MethodGet {
		if f.Own {
			rd = c.Query("rd")
		} else {
			rd = string(c.Request().Header.RequestURI())
		}
	}
	return s.render(c, status, func(b pages.Base, buf *bytes.Buffer) error {
		return rs.Pages.Error(buf, pages.ErrorView{Base: b, Status: status, Kind: kind, Email: email, RD: rs.Redirects.Safe(rd), RequestID: f.RequestID})
	})
}

// JSONError is Fail's answer for API clients, and the API's own errors.
func (s *Portal) JSONError(c *fiber.Ctx, status int, code string) error {
	rs := s.settings(c)
	lang := rs.Pages.Negotiate(c.Get("Accept-Language"), "")
	c.Set("Cache-Control", "no-store")
	return c.Status(status).JSON(fiber.Map{"error": code, "message": rs.Pages.Message(lang, apiMessageKey(code))})
}

// apiMessageKey is the catalog key of an API error code's message: sign-in
// outcomes (code_wrong) use the code form's own texts, the rest the error
// pages' titles.
func apiMessageKey(code string) string {
	if rest, ok := strings.CutPrefix(code, "code_"); ok {
		return "code." + rest
	}
	return "error." + code + ".title"
}

// render writes a page with its security headers and a CSRF token.
func (s *Portal) render(c *fiber.Ctx, status int, page func(pages.Base, *bytes.Buffer) error) error {
	rs := s.settings(c)
	nonce := newNonce(s.rand)
	b := pages.Base{
		Lang:      s.pageLang(c, true),
		Nonce:     nonce,
		CSRFName:  csrfField,
		CSRFToken: s.ensureCSRF(c),
	}
	var buf bytes.Buffer
	if err := page(b, &buf); err != nil {
		s.log.Error("render page", "path", c.Path(), "err", err)
		c.Set("Cache-Control", "no-store")
		return c.Status(http.StatusInternalServerError).SendString("Internal error")
	}
	setPageHeaders(&c.Response().Header, nonce, rs.FormCSP)
	c.Type("html", "utf-8")
	return c.Status(status).Send(buf.Bytes())
}

// langCookie remembers a language picked with ?lang= on Gatehouse's own
// pages, so that the forms, redirects and mail that follow keep it.
const langCookie = "gatehouse_lang"

// pageLang picks the language of a page or mail: a supported ?lang= value
// (on Gatehouse's own pages only: the app's query is the app's), else the
// one remembered in the language cookie, else the best match of
// Accept-Language. With remember set, a ?lang= choice is stored in the
// cookie.
func (s *Portal) pageLang(c *fiber.Ctx, remember bool) string {
	p := s.settings(c).Pages
	if s.facts(c).Own {
		if l, ok := p.Supported(c.Query("lang")); ok {
			if remember && c.Cookies(langCookie) != l {
				ck := http.Cookie{
					Name: langCookie, Value: l, Path: Prefix, MaxAge: 365 * 24 * 3600,
					HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteLaxMode,
				}
				addCookie(c, ck.String())
			}
			return l
		}
	}
	if l, ok := p.Supported(c.Cookies(langCookie)); ok {
		return l
	}
	return p.Negotiate(c.Get("Accept-Language"), "")
}

// addCookie adds a Set-Cookie line. Fiber's Append would join a second
// cookie to the first with a comma, which browsers read as one cookie.
func addCookie(c *fiber.Ctx, setCookie string) {
	c.Response().Header.Add(fiber.HeaderSetCookie, setCookie)
}

// ensureCSRF returns the form token for this browser, setting the CSRF
// cookie if it has none yet.
func (s *Portal) ensureCSRF(c *fiber.Ctx) string {
	if tok := s.csrfToken(c.Cookies(csrfCookieName(s.secure))); tok != "" {
		return tok
	}
	v, setCookie := s.newCSRFCookie()
	if v == "" {
		return ""
	}
	addCookie(c, setCookie)
	// Later renders in this request must use the new cookie.
	c.Request().Header.SetCookie(csrfCookieName(s.secure), v)
	return s.csrfToken(v)
}
