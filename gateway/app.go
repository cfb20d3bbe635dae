package gateway

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"

	"gatehouse/pages"
)

// maxFormBody bounds what Gatehouse's own endpoints read: they take a few
// short fields.
const maxFormBody = 64 << 10

// Internal request headers set by the front server for the Fiber app. Any
// client copy is removed first (they are in the spoofable set).
const (
	hdrClientIP    = "X-Gatehouse-Client-Ip"
	hdrClientProto = "X-Gatehouse-Client-Proto"
	hdrRequestID   = "X-Request-Id"
)

// storeTimeout bounds each page or API handler's store work.
const storeTimeout = 10 * time.Second

func (s *Server) newApp() *fiber.App {
	app := fiber.New(fiber.Config{
		DisableStartupMessage: true,
		BodyLimit:             maxFormBody,
		ErrorHandler:          s.fiberError,
		StrictRouting:         false,
		CaseSensitive:         true,
	})
	g := app.Group(Prefix)
	g.Get("/healthz", s.handleHealth)
	g.Get("/readyz", s.handleReady)
	g.Get("/static/*", s.handleStatic)

	g.Get("/login", s.handleLoginPage)
	g.Post("/login", s.requireCSRF, s.handleLogin)
	g.Get("/verify", s.redirectToLogin)
	g.Post("/verify", s.requireCSRF, s.handleVerify)
	g.Get("/link", s.handleLinkPage)
	g.Post("/link", s.requireCSRF, s.handleLink)
	g.Get("/logout", s.redirectToAccount)
	g.Post("/logout", s.requireCSRF, s.handleLogout)
	g.Get("/account", s.handleAccount)
	g.Post("/logout-others", s.requireCSRF, s.handleLogoutOthers)
	g.Post("/sessions/revoke", s.requireCSRF, s.handleRevoke)
	g.Get("/auth", s.handleForwardAuth)

	api := g.Group("/api", s.requireJSON)
	api.Post("/otp/send", s.apiSend)
	api.Post("/otp/verify", s.apiVerify)
	api.Get("/session", s.apiSession)
	api.Post("/sign-out", s.apiSignOut)

	app.Use(func(c *fiber.Ctx) error { return s.pageError(c, http.StatusNotFound, "not_found", "") })
	return app
}

// appHandler puts the standard library's cross-origin protection in front of
// the Fiber app: unsafe methods from another site are refused before any
// handler runs.
func (s *Server) appHandler() http.Handler {
	cop := http.NewCrossOriginProtection()
	_ = cop.AddTrustedOrigin(s.origin)
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, http.StatusForbidden, "csrf", "")
	}))
	return cop.Handler(adaptor.FiberApp(s.app))
}

// serveOwn hands a /.gatehouse request to the Fiber app with the facts only
// the front server knows (client IP, scheme) in headers it controls.
func (s *Server) serveOwn(w http.ResponseWriter, r *http.Request) {
	if r.ContentLength > maxFormBody {
		s.writeError(w, r, http.StatusRequestEntityTooLarge, "too_large", "")
		return
	}
	for k := range r.Header {
		if strings.HasPrefix(strings.Map(foldHeaderRune, k), "x-gatehouse-") {
			delete(r.Header, k)
		}
	}
	r.Header.Set(hdrClientIP, s.clientIP(r))
	r.Header.Set(hdrClientProto, s.proto(r))
	if peerTrusted(r.RemoteAddr, s.trusted) {
		r.Header.Set(hdrPeerTrusted, "1")
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBody)
	s.appH.ServeHTTP(w, r)
}

// fiberError is the one place where handler errors become responses: the
// client gets a safe page, the log gets the detail.
func (s *Server) fiberError(c *fiber.Ctx, err error) error {
	var fe *fiber.Error
	if errors.As(err, &fe) {
		kind := "bad_request"
		switch fe.Code {
		case http.StatusNotFound:
			kind = "not_found"
		case http.StatusMethodNotAllowed:
			kind = "method_not_allowed"
		case http.StatusRequestEntityTooLarge:
			kind = "too_large"
		}
		return s.pageError(c, fe.Code, kind, "")
	}
	s.log.Error("gatehouse endpoint failed", "path", c.Path(), "err", err, "request_id", c.Get(hdrRequestID))
	return s.pageError(c, http.StatusServiceUnavailable, "unavailable", "")
}

func (s *Server) pageError(c *fiber.Ctx, status int, kind, email string) error {
	if !strings.Contains(c.Get("Accept"), "text/html") {
		return s.jsonError(c, status, kind)
	}
	rs := s.settings()
	rd := ""
	if c.Method() == http.MethodGet {
		rd = c.Query("rd")
	}
	return s.render(c, status, func(b pages.Base, buf *bytes.Buffer) error {
		return rs.Pages.Error(buf, pages.ErrorView{Base: b, Status: status, Kind: kind, Email: email, RD: rs.redirects.Safe(rd), RequestID: c.Get(hdrRequestID)})
	})
}

func (s *Server) jsonError(c *fiber.Ctx, status int, code string) error {
	rs := s.settings()
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
func (s *Server) render(c *fiber.Ctx, status int, page func(pages.Base, *bytes.Buffer) error) error {
	rs := s.settings()
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
	h := make(http.Header)
	setPageHeaders(h, nonce, rs.formCSP)
	for k, v := range h {
		c.Set(k, v[0])
	}
	c.Type("html", "utf-8")
	return c.Status(status).Send(buf.Bytes())
}

// langCookie remembers a language picked with ?lang= on Gatehouse's own
// pages, so that the forms, redirects and mail that follow keep it.
const langCookie = "gatehouse_lang"

// pageLang picks the language of a page or mail: a supported ?lang= value,
// else the one remembered in the language cookie, else the best match of
// Accept-Language. With remember set, a ?lang= choice is stored in the
// cookie.
func (s *Server) pageLang(c *fiber.Ctx, remember bool) string {
	p := s.settings().Pages
	if l, ok := p.Supported(c.Query("lang")); ok {
		if remember && c.Cookies(langCookie) != l {
			ck := http.Cookie{
				Name: langCookie, Value: l, Path: Prefix, MaxAge: 365 * 24 * 3600,
				HttpOnly: true, Secure: s.session.Secure, SameSite: http.SameSiteLaxMode,
			}
			addCookie(c, ck.String())
		}
		return l
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
func (s *Server) ensureCSRF(c *fiber.Ctx) string {
	if tok := s.csrfToken(c.Cookies(csrfCookieName(s.session.Secure))); tok != "" {
		return tok
	}
	v, setCookie := s.newCSRFCookie()
	if v == "" {
		return ""
	}
	addCookie(c, setCookie)
	// Later renders in this request must use the new cookie.
	c.Request().Header.SetCookie(csrfCookieName(s.session.Secure), v)
	return s.csrfToken(v)
}

// requireCSRF refuses form posts without a valid double-submit token.
func (s *Server) requireCSRF(c *fiber.Ctx) error {
	if !s.validCSRF(c.Cookies(csrfCookieName(s.session.Secure)), c.FormValue(csrfField)) {
		return s.pageError(c, http.StatusForbidden, "csrf", "")
	}
	return c.Next()
}

// requireJSON makes API calls that change state carry a JSON body: a
// cross-site form cannot send one without a CORS preflight, which Gatehouse
// never grants. A call with no body and no Content-Type (curl -X POST) is
// not a form either, so it passes.
func (s *Server) requireJSON(c *fiber.Ctx) error {
	if c.Method() == http.MethodGet || c.Method() == http.MethodHead {
		return c.Next()
	}
	if c.Get("Content-Type") == "" && len(c.Body()) == 0 {
		return c.Next()
	}
	mt, _, err := mime.ParseMediaType(c.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return s.jsonError(c, http.StatusUnsupportedMediaType, "json_required")
	}
	return c.Next()
}

// clientOf collects who is asking.
func (s *Server) clientOf(c *fiber.Ctx) client {
	ua := c.Get("User-Agent")
	if len(ua) > 512 {
		ua = ua[:512]
	}
	return client{
		IP:        c.Get(hdrClientIP),
		UserAgent: ua,
		Lang:      s.pageLang(c, false),
	}
}

// current returns the signed-in session, errNoSession, or a store error.
func (s *Server) current(c *fiber.Ctx) (identity, error) {
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	return s.authenticate(ctx, c.Cookies(s.cookie))
}

func (s *Server) handleHealth(c *fiber.Ctx) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c.Set("Cache-Control", "no-store")
	if err := s.store.Ping(ctx); err != nil {
		s.log.Error("health check: store unreachable", "err", err)
		return c.Status(http.StatusServiceUnavailable).JSON(fiber.Map{"status": "unavailable", "store": "unreachable"})
	}
	return c.JSON(fiber.Map{"status": "ok"})
}

func (s *Server) handleReady(c *fiber.Ctx) error {
	return s.handleReadyz(c)
}

func (s *Server) handleStatic(c *fiber.Ctx) error {
	name := path.Clean(c.Params("*"))
	if name == "." || strings.HasPrefix(name, "..") || strings.Contains(name, "/") {
		return fiber.ErrNotFound
	}
	data, err := fs.ReadFile(s.settings().Pages.Static(), name)
	if err != nil {
		return fiber.ErrNotFound
	}
	if ct := mime.TypeByExtension(path.Ext(name)); ct != "" {
		c.Set("Content-Type", ct)
	}
	c.Set("Cache-Control", "public, max-age=3600")
	c.Set("X-Content-Type-Options", "nosniff")
	// A logo may be an SVG: opened on its own it must not run script
	// in this origin.
	c.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; sandbox")
	return c.Send(data)
}

// redirectToLogin answers a GET of a form's target (a reload, or a
// language link on a page that a form post showed) with the sign-in page,
// keeping the redirect target and the language.
func (s *Server) redirectToLogin(c *fiber.Ctx) error {
	rs := s.settings()
	q := url.Values{}
	if rd := c.Query("rd"); rd != "" {
		q.Set("rd", rs.redirects.Safe(rd))
	}
	if l, ok := rs.Pages.Supported(c.Query("lang")); ok {
		q.Set("lang", l)
	}
	target := Prefix + "/login"
	if len(q) > 0 {
		target += "?" + q.Encode()
	}
	return c.Redirect(target, http.StatusSeeOther)
}

func (s *Server) redirectToAccount(c *fiber.Ctx) error {
	return c.Redirect(Prefix+"/account", http.StatusSeeOther)
}
