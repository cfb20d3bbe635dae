package gateway

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/gofiber/fiber/v2"
)

// hdrPeerTrusted tells the Fiber app that the socket peer is one of
// server.trusted_proxies; set only by the front server.
const hdrPeerTrusted = "X-Gatehouse-Peer-Trusted"

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
	host    string // host[:port], validated, lower case
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
	host, _, ok := splitAuthority(authority)
	if !ok || !isHostName(host) {
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
	p, err := CleanPath(rawPath)
	if err != nil {
		return fmt.Errorf("%w: %w", errBadOriginal, err)
	}
	o.host = authority
	o.path = p
	o.url = scheme + "://" + authority + target
	return nil
}

// forwardAuthPath is the forward-auth endpoint's cleaned path.
const forwardAuthPath = Prefix + "/auth"

// joinRepeated folds repeated forward-auth headers into one comma-joined
// value before the request reaches the Fiber app, which keeps only the last
// copy of a header; a joined value is never a valid method, scheme, host or
// request target, so such a request is refused instead of decided on one
// arbitrary copy.
func joinRepeated(h http.Header) {
	for _, k := range []string{hdrOriginalURL, hdrOriginalMethod, hdrForwardedMethod, hdrForwardedProto, hdrForwardedHost, hdrForwardedURI} {
		if v := h[k]; len(v) > 1 {
			h[k] = []string{strings.Join(v, ", ")}
		}
	}
	// Every method an override header names must be seen.
	for k, v := range h {
		if len(v) > 1 && len(k) <= 32 && methodOverrides[normalizeLong(k)] {
			h[k] = []string{strings.Join(v, ",")}
		}
	}
}

// overrideConflict is proxy mode's method-override check applied to the
// original request: the fronting proxy passes the client's headers to the
// app, so a method-override header (any spelling, any of a comma-separated
// list) naming a method the rules decide differently refuses the request.
func overrideConflict(a *Access, h http.Header, o original, d Decision) bool {
	for k, vs := range h {
		if len(k) > 32 || !methodOverrides[normalizeLong(k)] {
			continue
		}
		for _, v := range vs {
			for _, m := range strings.Split(v, ",") {
				if x := a.Decide(o.host, strings.TrimSpace(m), o.path); x.Rule != d.Rule || x.Policy != d.Policy {
					return true
				}
			}
		}
	}
	return false
}

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
	if !isToken(m) {
		return "", badOriginal(k + " is not a method")
	}
	return strings.ToUpper(m), nil
}

// handleForwardAuth answers a fronting proxy's "may this request pass?" with
// the same rules, session check and upgrade origin check as proxied
// requests: 200 with identity headers to copy, 401 or a 302 to sign in,
// 403 when not permitted.
func (s *Server) handleForwardAuth(c *fiber.Ctx) error {
	c.Set("Cache-Control", "no-store")
	ip := c.Get(hdrClientIP)
	if c.Get(hdrPeerTrusted) != "1" {
		s.log.Warn("forward-auth request from a peer not in server.trusted_proxies", "ip", ip)
		return s.jsonError(c, http.StatusUnauthorized, "untrusted_proxy")
	}
	h := http.Header(c.GetReqHeaders())
	o, err := parseOriginal(h)
	if err != nil {
		s.log.Warn("forward-auth request refused", "reason", err.Error(), "ip", ip)
		return s.refuseOriginal(c, o.dialect)
	}
	rs := s.settings()
	d := rs.access.Decide(o.host, o.method, o.path)
	if overrideConflict(rs.access, h, o, d) {
		s.log.Warn("forward-auth request refused", "reason", "method override decided differently", "ip", ip)
		return s.refuseOriginal(c, o.dialect)
	}
	switch d.Policy {
	case PolicyDeny:
		s.recordEvent(ip, c.Get("User-Agent"), "access.denied", "", "denied", "rule")
		return s.pageError(c, http.StatusForbidden, "forbidden", "")
	case PolicyPublic:
		return allow(c, "")
	}
	id, err := s.current(c)
	if errors.Is(err, errNoSession) {
		return s.forwardAuthSignIn(c, o, rs)
	}
	if err != nil {
		return fmt.Errorf("forward-auth session check: %w", err)
	}
	if !d.Permits(id.Email) {
		s.recordEvent(ip, c.Get("User-Agent"), "access.denied", id.Email, "denied", "not permitted by rule")
		return s.pageError(c, http.StatusForbidden, "forbidden", id.Email)
	}
	if forwardedUpgrade(c) && !s.sameSiteOrigin(c.Get("Origin"), rs) {
		// Cross-site WebSocket hijacking: the cookie rides along on a
		// cross-site upgrade, so the origin must be ours, whatever the
		// protocol.
		return s.pageError(c, http.StatusForbidden, "forbidden", id.Email)
	}
	return allow(c, id.Email)
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

// allow answers 200 with every identity and group header, empty ones
// included: a proxy that copies a header the answer lacks may keep the
// client's copy (or, Caddy 2.6, set the unexpanded placeholder), while an
// empty value tells it there is no identity to pass on.
func allow(c *fiber.Ctx, email string) error {
	for _, k := range identityHeaders {
		c.Set(k, email)
	}
	for _, k := range groupHeaders {
		c.Set(k, "")
	}
	return c.SendStatus(http.StatusOK)
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
	browser := (o.method == http.MethodGet || o.method == http.MethodHead) && strings.Contains(c.Get("Accept"), "text/html")
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

// forwardedUpgrade reports whether the original request asks to switch
// protocols. Proxies drop the hop-by-hop Upgrade and Connection headers from
// the auth request more often than not, so Sec-WebSocket-Key counts too.
func forwardedUpgrade(c *fiber.Ctx) bool {
	return c.Get("Upgrade") != "" || c.Get("Sec-WebSocket-Key") != ""
}
