package gateway

import (
	"net/http"
	"time"

	"github.com/gofiber/fiber/v2"

	"gatehouse/portal"
)

// maxFormBody bounds what Gatehouse's own endpoints read: they take a few
// short fields.
const maxFormBody = 64 << 10

// hdrRequestID carries the request id to the upstream and the client.
const hdrRequestID = "X-Request-Id"

// storeTimeout bounds a session read on a cache miss.
const storeTimeout = 10 * time.Second

// sameOriginRequest applies the standard library's cross-origin protection
// (Sec-Fetch-Site, then Origin against Host, and the public URL's origin as
// trusted) to a state-changing request.
func (s *Server) sameOriginRequest(c *fiber.Ctx) bool {
	r := &http.Request{Method: c.Method(), Host: factsOf(c).hostHeader, Header: http.Header{}}
	for _, k := range []string{"Sec-Fetch-Site", "Origin"} {
		if v := c.Request().Header.Peek(k); len(v) > 0 {
			r.Header.Set(k, string(v))
		}
	}
	return s.crossOrigin.Check(r) == nil
}

// portalFacts hands the portal what it needs of the request's facts.
func portalFacts(c *fiber.Ctx) portal.Facts {
	f := factsOf(c)
	return portal.Facts{IP: f.ip, RequestID: f.reqID, Own: f.own}
}

// fail answers with the portal's error page, or its JSON error for API
// clients: every error Gatehouse answers, on its own paths and on the
// app's, goes through the portal's one renderer.
func (s *Server) fail(c *fiber.Ctx, status int, kind, email string) error {
	return s.portal.Fail(c, status, kind, email)
}

// jsonError is the portal's JSON error, for answers that are never pages.
func (s *Server) jsonError(c *fiber.Ctx, status int, code string) error {
	return s.portal.JSONError(c, status, code)
}
