package gateway

import (
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/gofiber/fiber/v2"
)

// hdrPeerTrusted tells the Fiber app that the socket peer is one of
// server.trusted_proxies; set only by the front server.
const hdrPeerTrusted = "X-Gatehouse-Peer-Trusted"

// original is the request a fronting proxy asks about.
type original struct {
	method string
	host   string
	path   string // cleaned
	url    string // absolute, for the redirect back after sign-in
	nginx  bool   // nginx auth_request: answer 401, never a redirect
}

// originalRequest reads the fronting proxy's description of the request:
// nginx's X-Original-URL/-Method, or Traefik's and Caddy's X-Forwarded-*.
func originalRequest(c *fiber.Ctx) (original, error) {
	var o original
	if raw := c.Get("X-Original-URL"); raw != "" {
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			return o, errors.New("bad X-Original-URL")
		}
		o.nginx = true
		o.method = c.Get("X-Original-Method", http.MethodGet)
		o.host = u.Host
		o.url = u.Scheme + "://" + u.Host + u.EscapedPath()
		if u.RawQuery != "" {
			o.url += "?" + u.RawQuery
		}
		p, err := CleanPath(u.EscapedPath())
		if err != nil {
			return o, err
		}
		o.path = p
		return o, nil
	}
	proto, host, uri := c.Get("X-Forwarded-Proto", "http"), c.Get("X-Forwarded-Host"), c.Get("X-Forwarded-Uri", "/")
	if host == "" || (proto != "http" && proto != "https") || strings.ContainsAny(host, "/\\@ ") {
		return o, errors.New("missing X-Forwarded-Host")
	}
	o.method = c.Get("X-Forwarded-Method", http.MethodGet)
	o.host = host
	raw := uri
	if i := strings.IndexByte(raw, '?'); i >= 0 {
		raw = raw[:i]
	}
	p, err := CleanPath(raw)
	if err != nil {
		return o, err
	}
	o.path = p
	o.url = proto + "://" + host + uri
	return o, nil
}

// handleForwardAuth answers a fronting proxy's "may this request pass?":
// 200 with identity headers, 401/302 to sign in, 403 when not permitted.
func (s *Server) handleForwardAuth(c *fiber.Ctx) error {
	c.Set("Cache-Control", "no-store")
	if c.Get(hdrPeerTrusted) != "1" {
		s.log.Warn("forward-auth request from an untrusted peer", "ip", c.Get(hdrClientIP))
		return s.jsonError(c, http.StatusUnauthorized, "untrusted_proxy")
	}
	o, err := originalRequest(c)
	if err != nil {
		return s.jsonError(c, http.StatusBadRequest, "bad_request")
	}
	d := s.settings().access.Decide(o.host, o.method, o.path)
	switch d.Policy {
	case PolicyDeny:
		return s.jsonError(c, http.StatusForbidden, "forbidden")
	case PolicyPublic:
		return c.SendStatus(http.StatusOK)
	}
	id, err := s.current(c)
	if errors.Is(err, errNoSession) {
		browser := (o.method == http.MethodGet || o.method == http.MethodHead) && strings.Contains(c.Get("Accept"), "text/html")
		if !o.nginx && browser {
			return c.Redirect(s.loginURL(o.url), http.StatusFound)
		}
		return s.jsonError(c, http.StatusUnauthorized, "unauthenticated")
	}
	if err != nil {
		return err
	}
	if !d.Permits(id.Email) {
		return s.jsonError(c, http.StatusForbidden, "forbidden")
	}
	for _, k := range identityHeaders {
		c.Set(k, id.Email)
	}
	return c.SendStatus(http.StatusOK)
}
