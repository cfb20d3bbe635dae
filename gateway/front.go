package gateway

import (
	"context"
	"net/http"
	"net/url"
	"time"

	"github.com/gofiber/fiber/v2"

	"gatehouse/portal"
)

// serveApp decides a request for the app and answers it: forwarded, or an
// error, or the way to sign in. It returns the decision for the log.
func (s *Server) serveApp(c *fiber.Ctx, f *facts) string {
	q := question{
		host:    f.host,
		method:  c.Method(),
		path:    f.path,
		upgrade: f.upgrade,
		header:  &c.Request().Header,
	}
	// The store is asked only on a session-cache miss, with its own bound.
	v := s.decide(context.Background(), f, q)
	switch v.outcome {
	case outcomeRefused:
		_ = s.fail(c, http.StatusBadRequest, "bad_request", "")
	case outcomeDenied:
		_ = s.fail(c, http.StatusForbidden, "forbidden", "")
	case outcomeForbidden:
		_ = s.fail(c, http.StatusForbidden, "forbidden", v.who.email)
	case outcomeUnavailable:
		_ = s.fail(c, http.StatusServiceUnavailable, "unavailable", "")
	case outcomeSignIn:
		_ = s.unauthenticated(c)
	case outcomePublic:
		s.forward(c, f, nil)
	case outcomeAllowed:
		s.forward(c, f, v.who)
	}
	return v.label()
}

// unauthenticated sends browsers to the sign-in page and tells API clients
// 401.
func (s *Server) unauthenticated(c *fiber.Ctx) error {
	h := &c.Request().Header
	if portal.IsNavigation(c.Method(), h.Peek("Accept")) {
		// A path-only Location: the browser stays on the origin it used,
		// and nothing in it comes from the request's Host.
		c.Set("Cache-Control", "no-store")
		c.Set("Location", portal.LoginPath(string(h.RequestURI())))
		return c.SendStatus(http.StatusSeeOther)
	}
	c.Set("Cache-Control", "no-store")
	return c.Status(http.StatusUnauthorized).JSON(fiber.Map{
		"error":     "unauthenticated",
		"message":   "Sign in first.",
		"login_url": s.loginURL(""),
	})
}

// loginURL is the absolute sign-in URL, built from the public URL and never
// from Host.
func (s *Server) loginURL(rd string) string {
	u := s.origin + Prefix + "/login"
	if rd != "" {
		u += "?rd=" + url.QueryEscape(rd)
	}
	return u
}

// recordEvent records a security event without holding up the request;
// the event's failure to store is logged, never shown. At most
// maxAuditWriters events are written at once; past that, events are
// dropped and counted rather than letting a flood of denied requests pile up
// goroutines without bound.
func (s *Server) recordEvent(ip, ua, typ, email, outcome, detail string) {
	select {
	case s.auditSlots <- struct{}{}:
	default:
		if n := s.auditDropped.Add(1); n == 1 || n%1000 == 0 {
			s.log.Warn("audit events dropped: the store is not keeping up", "dropped_total", n)
		}
		s.metrics.auditDropped()
		return
	}
	ev := auditEvent(s.now(), ip, ua, typ, email, outcome, detail)
	s.pendingEvents.Go(func() {
		defer func() { <-s.auditSlots }()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.store.RecordEvent(ctx, ev); err != nil {
			s.metrics.storeError()
			s.log.Warn("record audit event", "type", typ, "err", err)
		}
	})
}
