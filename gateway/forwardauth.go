package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"gatehouse/access"
	"gatehouse/portal"
	"gatehouse/safeurl"
)

// dialect is the way a fronting proxy describes the request it asks about.
type dialect int

const (
	// dialectForwarded: Traefik's forwardAuth and Caddy's forward_auth send
	// X-Forwarded-Method, -Proto, -Host and -Uri, and pass the answer's
	// status and body to the client.
	dialectForwarded dialect = iota
	// dialectNginx: nginx auth_request sends X-Original-URL and
	// X-Original-Method (set in its config) and only tells 2xx, 401 and 403
	// apart; every other status becomes a 500 there.
	dialectNginx
)

// The headers that describe the original request.
const (
	hdrOriginalURL     = "X-Original-Url"
	hdrOriginalMethod  = "X-Original-Method"
	hdrForwardedMethod = "X-Forwarded-Method"
	hdrForwardedProto  = "X-Forwarded-Proto"
	hdrForwardedHost   = "X-Forwarded-Host"
	hdrForwardedURI    = "X-Forwarded-Uri"
)

// errBadOriginal is wrapped by every reason to refuse a forward-auth
// request; the reasons never quote header values, which may hold tokens.
var errBadOriginal = errors.New("bad forward-auth request")

func badOriginal(reason string) error {
	return fmt.Errorf("%w: %s", errBadOriginal, reason)
}

// original is the request a fronting proxy asks about.
type original struct {
	dialect dialect
	method  string
	host    string // safeurl.Host: lower case, no port, no trailing dot
	path    string // CleanPath result: what the access rules see
	url     string // absolute original URL, for the redirect back after sign-in
}

// parseOriginal reads the fronting proxy's description of the request from
// the auth request's headers h.
//
// The proxies differ in which headers they set and which client headers
// they pass through unchanged: nginx copies a client's X-Forwarded-Uri into
// the auth request, Traefik and Caddy copy a client's X-Original-URL. So a
// request that carries both descriptions is refused rather than believing
// either, as is any header sent twice, a missing method, host or URI (no
// default could be safe), and any path CleanPath refuses. The dialect is set
// even when an error is returned, so the refusal can be worded for the
// proxy.
func parseOriginal(h http.Header) (original, error) {
	o := original{dialect: dialectForwarded}
	if _, ok := h[hdrOriginalURL]; ok {
		o.dialect = dialectNginx
		if _, fwd := h[hdrForwardedURI]; fwd {
			return o, badOriginal("both X-Original-URL and X-Forwarded-Uri")
		}
		if _, fwd := h[hdrForwardedMethod]; fwd {
			return o, badOriginal("both X-Original-URL and X-Forwarded-Method")
		}
		raw, err := single(h, hdrOriginalURL)
		if err != nil {
			return o, err
		}
		if o.method, err = method(h, hdrOriginalMethod); err != nil {
			return o, err
		}
		scheme, rest, ok := strings.Cut(raw, "://")
		if !ok {
			return o, badOriginal("X-Original-URL is not absolute")
		}
		authority, target := rest, "/"
		if i := strings.IndexAny(rest, "/?#"); i >= 0 {
			authority, target = rest[:i], rest[i:]
		}
		if target[0] != '/' {
			target = "/" + target
		}
		return o, o.fill(scheme, authority, target)
	}
	if _, ok := h[hdrForwardedURI]; !ok {
		return o, badOriginal("neither X-Original-URL nor X-Forwarded-Uri")
	}
	var err error
	if o.method, err = method(h, hdrForwardedMethod); err != nil {
		return o, err
	}
	proto, err := single(h, hdrForwardedProto)
	if err != nil {
		return o, err
	}
	host, err := single(h, hdrForwardedHost)
	if err != nil {
		return o, err
	}
	uri, err := single(h, hdrForwardedURI)
	if err != nil {
		return o, err
	}
	return o, o.fill(proto, host, uri)
}

// fill checks and sets the scheme, authority and request target.
func (o *original) fill(scheme, authority, target string) error {
	scheme = strings.ToLower(scheme)
	if scheme != "http" && scheme != "https" {
		return badOriginal("scheme is not http or https")
	}
	authority = strings.ToLower(authority)
	// The same normalization proxied requests get (safeurl.Host).
	host, ok := safeurl.Host(authority)
	if !ok {
		return badOriginal("host is not a host name with an optional port")
	}
	if target == "" || target[0] != '/' {
		return badOriginal("request target is not an absolute path")
	}
	for i := 0; i < len(target); i++ {
		// A raw '#' never comes from a browser; an upstream might cut the
		// path there while the rules would not.
		if c := target[i]; c == '#' || isControlByte(c) || c == ' ' {
			return badOriginal("request target holds a fragment, space or control character")
		}
	}
	rawPath, _, _ := strings.Cut(target, "?")
	p, err := safeurl.CleanPath(rawPath)
	if err != nil {
		return fmt.Errorf("%w: %w", errBadOriginal, err)
	}
	o.host = host
	o.path = p
	o.url = scheme + "://" + authority + target
	return nil
}

func isControlByte(c byte) bool { return c < 0x20 || c == 0x7f }

// single returns the one value of header k and refuses a missing one or one
// sent more than once: the proxies would not agree on which copy counts.
func single(h http.Header, k string) (string, error) {
	v := h[k]
	switch {
	case len(v) > 1:
		return "", badOriginal(k + " sent more than once")
	case len(v) == 0 || v[0] == "":
		return "", badOriginal(k + " is missing")
	}
	return strings.TrimSpace(v[0]), nil
}

// method reads a required method header: a default would let a rule that
// names methods be decided for the wrong one.
func method(h http.Header, k string) (string, error) {
	m, err := single(h, k)
	if err != nil {
		return "", err
	}
	if !access.IsMethod(m) {
		return "", badOriginal(k + " is not a method")
	}
	return strings.ToUpper(m), nil
}

// handleForwardAuth answers a fronting proxy's "may this request pass?"
// with the one decision proxied requests get: 200 with identity headers to
// copy, 401 or a 302 to sign in, 403 when not permitted. Only the reading
// of the question and the wording of the answer are forward-auth's own.
func (s *Server) handleForwardAuth(c *fiber.Ctx) error {
	c.Set("Cache-Control", "no-store")
	f := factsOf(c)
	if !f.peerTrusted {
		s.log.Warn("forward-auth request from a peer not in server.trusted_proxies", "ip", f.ip)
		return s.jsonError(c, http.StatusUnauthorized, "untrusted_proxy")
	}
	h := &c.Request().Header
	o, err := parseOriginal(originalHeaders(h))
	if err != nil {
		s.log.Warn("forward-auth request refused", "reason", err.Error(), "ip", f.ip)
		return s.refuseOriginal(c, o.dialect)
	}
	ctx := context.Background() // the store is asked only on a cache miss, with its own bound
	// Proxies drop the hop-by-hop Upgrade and Connection headers from the
	// auth request more often than not, so Sec-WebSocket-Key counts too.
	upgrade := len(h.Peek("Upgrade")) > 0 || len(h.Peek("Sec-Websocket-Key")) > 0
	v := s.decide(ctx, f, question{host: o.host, method: o.method, path: o.path, upgrade: upgrade, header: h})
	f.decision = v.label()
	switch v.outcome {
	case outcomeRefused:
		s.log.Warn("forward-auth request refused", "reason", "method override decided differently", "ip", f.ip)
		return s.refuseOriginal(c, o.dialect)
	case outcomeDenied:
		return s.fail(c, http.StatusForbidden, "forbidden", "")
	case outcomeForbidden:
		return s.fail(c, http.StatusForbidden, "forbidden", v.who.email)
	case outcomeUnavailable:
		return s.fail(c, http.StatusServiceUnavailable, "unavailable", "")
	case outcomeSignIn:
		return s.forwardAuthSignIn(c, o, f.settings)
	case outcomePublic:
		return allow(c, nil)
	}
	return allow(c, v.who)
}

// originalHeaders collects, every copy kept, the headers in which a
// fronting proxy describes the original request.
func originalHeaders(h *fasthttp.RequestHeader) http.Header {
	out := make(http.Header, 4)
	for _, k := range []string{hdrOriginalURL, hdrOriginalMethod, hdrForwardedMethod, hdrForwardedProto, hdrForwardedHost, hdrForwardedURI} {
		for _, v := range h.PeekAll(k) {
			out[k] = append(out[k], string(v))
		}
	}
	return out
}

// refuseOriginal answers a request whose description parseOriginal
// refused: 400, except to nginx, which turns anything but 401 and 403 into
// a 500.
func (s *Server) refuseOriginal(c *fiber.Ctx, d dialect) error {
	if d == dialectNginx {
		return s.jsonError(c, http.StatusForbidden, "bad_request")
	}
	return s.jsonError(c, http.StatusBadRequest, "bad_request")
}

// allow answers 200, without a body, with every identity and group header, empty ones
// included: a proxy that copies a header the answer lacks may keep the
// client's copy (or, Caddy 2.6, set the unexpanded placeholder), while an
// empty value tells it there is no identity to pass on.
func allow(c *fiber.Ctx, who *principal) error {
	user, email := "", ""
	if who != nil {
		user, email = who.user, who.email
	}
	for _, k := range emailHeaders {
		c.Set(k, email)
	}
	for _, k := range userHeaders {
		c.Set(k, user)
	}
	groups := who.groupList()
	for _, k := range groupHeaders {
		c.Set(k, groups)
	}
	// No body: nginx ends its keepalive connection to Gatehouse after an
	// auth_request answer that has one, and the answer is the headers.
	c.Status(http.StatusOK)
	return nil
}

// forwardAuthSignIn answers a request without a session. Browsers are sent
// to the sign-in page with the original URL as rd: Traefik and Caddy pass a
// 302 on; nginx gets 401 with the same Location, which its config turns
// into the redirect (nginx cannot URL-encode rd itself). Others get 401.
func (s *Server) forwardAuthSignIn(c *fiber.Ctx, o original, rs *runtimeSettings) error {
	rd := rs.redirects.Safe(o.url)
	if rd == "/" {
		s.log.Warn("forward-auth host is neither public_url's host nor in redirect.allowed_hosts; after sign-in the visitor lands on /", "host", o.host)
		rd = ""
	}
	login := s.loginURL(rd)
	browser := portal.IsNavigation(o.method, c.Request().Header.Peek("Accept"))
	if browser && o.dialect == dialectForwarded {
		return c.Redirect(login, http.StatusFound)
	}
	if browser {
		c.Set("Location", login)
	}
	lang := rs.Pages.Negotiate(c.Get("Accept-Language"), "")
	return c.Status(http.StatusUnauthorized).JSON(fiber.Map{
		"error":     "unauthenticated",
		"message":   rs.Pages.Message(lang, "error.unauthenticated.title"),
		"login_url": s.loginURL(""),
	})
}
