package portal

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

// storeTimeout bounds each page or API handler's store work.
const storeTimeout = 10 * time.Second

// requireCSRF refuses form posts without a valid double-submit token (entry
// has already refused cross-site ones).
func (s *Portal) requireCSRF(c *fiber.Ctx) error {
	if !s.validCSRF(c.Cookies(csrfCookieName(s.secure)), c.FormValue(csrfField)) {
		return s.Fail(c, http.StatusForbidden, "csrf", "")
	}
	return c.Next()
}

// requireJSON makes API calls that change state carry a JSON body: a
// cross-site form cannot send one without a CORS preflight, which Gatehouse
// never grants. A call with no body and no Content-Type (curl -X POST) is
// not a form either, so it passes.
func (s *Portal) requireJSON(c *fiber.Ctx) error {
	if c.Method() == http.MethodGet || c.Method() == http.MethodHead {
		return c.Next()
	}
	if c.Get("Content-Type") == "" && len(c.Body()) == 0 {
		return c.Next()
	}
	mt, _, err := mime.ParseMediaType(c.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return s.JSONError(c, http.StatusUnsupportedMediaType, "json_required")
	}
	return c.Next()
}

// clientOf collects who is asking.
func (s *Portal) clientOf(c *fiber.Ctx) signin.Client {
	ua := c.Get("User-Agent")
	if len(ua) > 512 {
		ua = ua[:512]
	}
	return signin.Client{
		IP:        s.facts(c).IP,
		UserAgent: ua,
		Lang:      s.pageLang(c, false),
	}
}

// storeContext bounds a handler's store work.
func (s *Portal) storeContext(c *fiber.Ctx) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), storeTimeout)
}

// current returns the signed-in session, session.ErrNoSession, or a store
// error.
func (s *Portal) current(c *fiber.Ctx) (session.Identity, error) {
	ctx, cancel := s.storeContext(c)
	defer cancel()
	return s.sessions.Authenticate(ctx, c.Cookies(s.cookie))
}

func (s *Portal) handleHealth(c *fiber.Ctx) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c.Set("Cache-Control", "no-store")
	if err := s.store.Ping(ctx); err != nil {
		s.log.Error("health check: store unreachable", "err", err)
		return c.Status(http.StatusServiceUnavailable).JSON(fiber.Map{"status": "unavailable", "store": "unreachable"})
	}
	return c.JSON(fiber.Map{"status": "ok"})
}

func (s *Portal) handleStatic(c *fiber.Ctx) error {
	name := path.Clean(c.Params("*"))
	if name == "." || strings.HasPrefix(name, "..") || strings.Contains(name, "/") {
		return fiber.ErrNotFound
	}
	data, err := fs.ReadFile(s.settings(c).Pages.Static(), name)
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
func (s *Portal) redirectToLogin(c *fiber.Ctx) error {
	rs := s.settings(c)
	q := url.Values{}
	if rd := c.Query("rd"); rd != "" {
		q.Set("rd", rs.Redirects.Safe(rd))
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

func (s *Portal) redirectToAccount(c *fiber.Ctx) error {
	return c.Redirect(Prefix+"/account", http.StatusSeeOther)
}
