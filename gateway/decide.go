package gateway

import (
	"context"
	"errors"
	"strings"

	"github.com/valyala/fasthttp"

	"gatehouse/access"
	"gatehouse/session"
)

// question is a request as the decision sees it. Proxy mode fills it from
// the request itself; forward-auth from the fronting proxy's description of
// the original request. Everything else (the cookie, method-override
// headers, Origin) is read from the same headers in both modes.
type question struct {
	host    string // the Host asked for
	method  string
	path    string // cleaned
	upgrade bool   // asks to switch protocols
	header  *fasthttp.RequestHeader
}

// ruling is what the decision concluded.
type ruling int

const (
	// outcomeRefused: the request cannot be decided safely (a
	// method-override header the rules decide differently): 400.
	outcomeRefused     ruling = iota
	outcomeDenied             // a deny rule: 403
	outcomePublic             // forward without identity
	outcomeSignIn             // needs a session and has none: sign in
	outcomeForbidden          // signed in, not permitted (or a cross-site upgrade): 403
	outcomeUnavailable        // the store failed: 503, never forwarded
	outcomeAllowed            // forward with identity
)

// verdict is the decision and the principal it rests on.
type verdict struct {
	outcome ruling
	who     *principal // set for outcomeAllowed and outcomeForbidden
}

// label is the decision's name in the access log and metrics.
func (v verdict) label() string {
	switch v.outcome {
	case outcomeRefused:
		return "rejected"
	case outcomeDenied, outcomeForbidden:
		return "denied"
	case outcomePublic:
		return "public"
	case outcomeSignIn:
		return "redirected"
	case outcomeUnavailable:
		return "error"
	}
	return "allowed"
}

// decide is the one access decision, for proxied requests and forward-auth
// alike: the rules on host + method + path, method-override headers held to
// the same rule, the session cookie, the rule's allow list, and the origin of
// a protocol upgrade. Denials are audited here; callers only translate the
// verdict into a response.
func (s *Server) decide(ctx context.Context, f *facts, q question) verdict {
	rs := f.settings
	d := rs.access.Decide(q.host, q.method, q.path)
	if overrideConflicts(rs.access, q, d) {
		return verdict{outcome: outcomeRefused}
	}
	switch d.Policy {
	case access.PolicyDeny:
		s.recordEvent(f.ip, string(q.header.UserAgent()), "access.denied", "", "denied", "rule")
		return verdict{outcome: outcomeDenied}
	case access.PolicyPublic:
		return verdict{outcome: outcomePublic}
	}
	id, err := s.sessions.Authenticate(ctx, string(q.header.Cookie(s.cookie)))
	switch {
	case errors.Is(err, session.ErrNoSession):
		return verdict{outcome: outcomeSignIn}
	case err != nil:
		s.log.Error("session check failed", "err", err, "request_id", f.reqID)
		return verdict{outcome: outcomeUnavailable}
	}
	who := person(id, rs.groups)
	if !d.Admits(who.access()) {
		s.recordEvent(f.ip, string(q.header.UserAgent()), "access.denied", id.Email, "denied", "not permitted by rule")
		return verdict{outcome: outcomeForbidden, who: who}
	}
	if q.upgrade && !s.sameSiteOrigin(string(q.header.Peek("Origin")), rs) {
		// Cross-site WebSocket hijacking: the cookie rides along on a
		// cross-site upgrade, so the origin must be ours. Any protocol
		// switch is held to this, not only one spelled "websocket".
		return verdict{outcome: outcomeForbidden, who: who}
	}
	return verdict{outcome: outcomeAllowed, who: who}
}

// methodOverrides are the headers, in normalized form (see isSpoofable),
// through which many frameworks let a request ask for another method.
var methodOverrides = map[string]bool{
	"x-http-method-override": true,
	"x-http-method":          true,
	"x-method-override":      true,
}

// overrideConflicts reports whether a method-override header, in any
// spelling, repeated or not, names any method (of a comma-separated list)
// that the rules decide differently from the request's own: the upstream
// might run that method, so the request is refused rather than decided on a
// method it may not be.
func overrideConflicts(a *access.Decider, q question, d access.Decision) bool {
	conflict := false
	q.header.VisitAll(func(k, v []byte) {
		if conflict || !isMethodOverride(k) {
			return
		}
		for m := range strings.SplitSeq(string(v), ",") {
			if o := a.Decide(q.host, strings.TrimSpace(m), q.path); o.Rule != d.Rule || o.Policy != d.Policy {
				conflict = true
				return
			}
		}
	})
	return conflict
}

// isMethodOverride reports whether header name k is one of methodOverrides
// in any spelling. It runs for every header of every request, so it folds
// into a stack buffer instead of allocating.
func isMethodOverride(k []byte) bool {
	const shortest, longest = len("x-http-method"), len("x-http-method-override")
	if len(k) < shortest || len(k) > longest || k[0]|0x20 != 'x' {
		return false
	}
	var buf [longest]byte
	for i := 0; i < len(k); i++ {
		buf[i] = foldHeaderByte(k[i])
	}
	return methodOverrides[string(buf[:len(k)])]
}

// sameSiteOrigin reports whether an Origin header names the public URL or an
// allowed redirect host.
func (s *Server) sameSiteOrigin(origin string, rs *runtimeSettings) bool {
	return strings.EqualFold(origin, s.origin) || rs.redirects.AllowsOrigin(origin)
}
