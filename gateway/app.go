package gateway

import (
	"context"
	"io/fs"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"gatehouse/session"
	"gatehouse/signin"
)

// maxFormBody bounds what Gatehouse's own endpoints read: they take a few
// short fields.
const maxFormBody = 64 << 10

// hdrRequestID carries the request id to the upstream and the client.
const hdrRequestID = "X-Request-Id"

// storeTimeout bounds each page or API handler's store work.
const storeTimeout = 10 * time.Second

// requireCSRF refuses form posts without a valid double-submit token (entry
// has already refused cross-site ones).
func (s *Server) requireCSRF(c *fiber.Ctx) error {
	if !s.validCSRF(c.Cookies(csrfCookieName(s.session.Secure)), c.FormValue(csrfField)) {
		return s.fail(c, http.StatusForbidden, "csrf", "")
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
func (s *Server) clientOf(c *fiber.Ctx) signin.Client {
	ua := c.Get("User-Agent")
	if len(ua) > 512 {
		ua = ua[:512]
	}
	return signin.Client{
		IP:        factsOf(c).ip,
		UserAgent: ua,
		Lang:      s.pageLang(c, false),
	}
}

// sameOriginRequest applies the standard library's cross-origin protection
// (Sec-Fetch-Site, then Origin against Host, and the public URL's origin as
// trusted) to a state-changing request.
func (s *Server) sameOriginRequest(c *fiber.Ctx) bool {
	r := &http.Request{Method: c.Method(), Host: requestHost(c), Header: http.Header{}}
	for _, k := range []string{"Sec-Fetch-Site", "Origin"} {
		if v := c.Request().Header.Peek(k); len(v) > 0 {
			r.Header.Set(k, string(v))
		}
	}
	return s.crossOrigin.Check(r) == nil
}

// storeContext bounds a handler's store work.
func (s *Server) storeContext(c *fiber.Ctx) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), storeTimeout)
}

// current returns the signed-in session, session.ErrNoSession, or a store
// error.
func (s *Server) current(c *fiber.Ctx) (session.Identity, error) {
	ctx, cancel := s.storeContext(c)
	defer cancel()
	return s.sessions.Authenticate(ctx, c.Cookies(s.cookie))
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
