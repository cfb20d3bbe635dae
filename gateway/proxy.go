package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"gatehouse/forwarder"
)

// routes picks the upstream of a request.
type routes struct {
	def  *url.URL
	list []Route
}

func newRoutes(def *url.URL, list []Route) (*routes, error) {
	list = slices.Clone(list) // the caller's slice is left as it was
	for i, r := range list {
		if r.Upstream == nil || r.Upstream.Host == "" {
			return nil, fmt.Errorf("gateway: route %d: upstream URL is required", i)
		}
		if _, _, err := net.SplitHostPort(r.Host); err == nil {
			return nil, fmt.Errorf("gateway: route %d: host %q has a port; hosts are compared without one", i, r.Host)
		}
		list[i].Host = strings.TrimSuffix(strings.ToLower(r.Host), ".")
	}
	return &routes{def: def, list: list}, nil
}

// target is the first route whose host and path prefix match, else the
// default upstream.
func (rt *routes) target(host, path string) *url.URL {
	if len(rt.list) == 0 {
		return rt.def
	}
	host = strings.TrimSuffix(stripPort(strings.ToLower(host)), ".")
	for _, r := range rt.list {
		if r.Host != "" && !hostMatches(r.Host, host) {
			continue
		}
		if r.PathPrefix != "" && !hasPathPrefix(path, r.PathPrefix) {
			continue
		}
		return r.Upstream
	}
	return rt.def
}

// hasPathPrefix matches whole segments: "/app" matches "/app" and "/app/x",
// not "/apple".
func hasPathPrefix(path, prefix string) bool {
	prefix = strings.TrimSuffix(prefix, "/")
	if prefix == "" {
		return true
	}
	return path == prefix || strings.HasPrefix(path, prefix+"/")
}

func hostMatches(pattern, host string) bool {
	if rest, ok := strings.CutPrefix(pattern, "*."); ok {
		return strings.HasSuffix(host, "."+rest)
	}
	return pattern == host
}

func stripPort(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		return strings.Trim(h, "[]")
	}
	return host
}

// outbound is the gateway's part of one forwarded exchange (the
// forwarder's Hooks): it prepares the request's headers — what the client
// sent that could pose as an identity or as the gateway is removed, then
// the gateway's own forwarding and identity headers are set — edits the
// response's, and logs the exchange when it is over. It lives in the
// request's facts, so forwarding allocates nothing for it.
type outbound struct {
	s       *Server
	f       *facts
	who     *principal // nil on public paths
	sent    time.Time
	release func() // ends the stream's registration, if it has one
}

func (o *outbound) RequestHeader(h *fasthttp.RequestHeader) {
	stripSpoofable(h)
	dropSessionCookie(h, o.s.cookie)
	h.Set("X-Forwarded-For", o.f.ip)
	h.Set("X-Forwarded-Proto", o.f.proto)
	h.Set("X-Forwarded-Host", o.f.hostHeader)
	h.Set("X-Real-Ip", o.f.ip)
	h.Set(hdrRequestID, o.f.reqID)
	if o.who != nil {
		setIdentity(h, o.who)
	}
	o.sent = o.s.now()
}

// ResponseHeader runs when the upstream's headers arrive: it records the
// upstream latency, drops an X-Request-Id the upstream echoes so the client
// sees the gateway's one id, and keeps shared caches from storing an answer
// meant for one signed-in user.
func (o *outbound) ResponseHeader(h *fasthttp.ResponseHeader) {
	o.s.metrics.upstreamLatency(o.s.now().Sub(o.sent))
	h.Set(hdrRequestID, o.f.reqID)
	if o.who != nil {
		markPrivate(h)
	}
}

// Done is the forwarder's word that the exchange is over.
func (o *outbound) Done(complete bool) {
	if o.release != nil {
		o.release()
	}
	o.s.streamEnded(o.f, complete)
}

// markPrivate adds Cache-Control: private (unless the app already said
// private or no-store), drops public and s-maxage, and adds Vary: Cookie
// to a response for a signed-in user.
func markPrivate(h *fasthttp.ResponseHeader) {
	var directives []string
	private := false
	for _, line := range h.PeekAll("Cache-Control") {
		for d := range strings.SplitSeq(string(line), ",") {
			d = strings.TrimSpace(d)
			if d == "" {
				continue
			}
			name, _, _ := strings.Cut(strings.ToLower(d), "=")
			switch name {
			case "private", "no-store":
				private = true
			case "public", "s-maxage":
				// Permissions for shared caches, which a page for one
				// signed-in user must not have.
				continue
			}
			directives = append(directives, d)
		}
	}
	if !private {
		directives = append([]string{"private"}, directives...)
	}
	h.Set("Cache-Control", strings.Join(directives, ", "))
	if vary := h.PeekAll("Vary"); !forwarder.HeaderHasToken(vary, "cookie") && !forwarder.HeaderHasToken(vary, "*") {
		h.Add("Vary", "Cookie")
	}
}

// forward sends an allowed request to its upstream; who is nil on public
// paths. Failures before the answer started are rendered here.
func (s *Server) forward(c *fiber.Ctx, f *facts, who *principal) {
	rs := f.settings
	o := &f.out
	*o = outbound{s: s, f: f, who: who}
	var stream context.Context
	if f.upgrade || isEventStream(&c.Request().Header) {
		// The stream outlives this handler (fasthttp writes streamed bodies
		// and runs tunnels after it returns): it is released when the
		// forwarder says it is over.
		stream, o.release = s.streams.open(who)
	}
	f.stream.Store(streamForwarding)
	err := s.fwd.Forward(c.Context(), forwarder.Request{
		Target:       s.routes.target(f.host, f.path),
		Path:         f.path,
		PreserveHost: rs.PreserveHost,
		Via:          rs.Via,
		MaxBody:      rs.MaxRequestBody,
		Hooks:        o,
		Stream:       stream,
	})
	if err == nil {
		return
	}
	switch {
	case errors.Is(err, forwarder.ErrTooLarge):
		_ = s.fail(c, http.StatusRequestEntityTooLarge, "too_large", "")
	case errors.Is(err, forwarder.ErrBadBody):
		// The client's fault: not counted against the app.
		c.Context().SetConnectionClose()
		_ = s.fail(c, http.StatusBadRequest, "bad_request", "")
	case errors.Is(err, forwarder.ErrClientGone):
		// There is nobody to answer; should the connection still be
		// open, it ends with a 400 rather than an empty 200.
		f.cut = true
		s.metrics.upstreamError("canceled")
		c.Context().SetConnectionClose()
		c.Status(http.StatusBadRequest)
	case errors.Is(err, forwarder.ErrTimeout):
		s.metrics.upstreamError("timeout")
		s.log.Warn("upstream timeout", "path", f.path, "request_id", f.reqID)
		_ = s.fail(c, http.StatusGatewayTimeout, "timeout", "")
	case errors.Is(err, forwarder.ErrBusy):
		s.metrics.upstreamError("busy")
		s.log.Warn("upstream connections exhausted", "path", f.path, "request_id", f.reqID)
		_ = s.fail(c, http.StatusServiceUnavailable, "unavailable", "")
	default:
		s.metrics.upstreamError("unreachable")
		s.log.Warn("upstream unreachable", "path", f.path, "err", err, "request_id", f.reqID)
		_ = s.fail(c, http.StatusBadGateway, "unreachable", "")
	}
}

// isEventStream reports a request for a server-sent event stream.
func isEventStream(h *fasthttp.RequestHeader) bool {
	for _, v := range h.PeekAll("Accept") {
		if bytes.Contains(v, []byte("text/event-stream")) {
			return true
		}
	}
	return false
}

// dropSessionCookie removes the gateway's own cookie from the Cookie header
// sent upstream, in every copy, and a bare "name" without a value too (which
// the cookie parser keeps as a value without a name).
func dropSessionCookie(h *fasthttp.RequestHeader, name string) {
	h.DelCookie(name)
	bare := false
	h.VisitAllCookie(func(k, v []byte) {
		if len(k) == 0 && string(bytes.TrimSpace(v)) == name {
			bare = true
		}
	})
	if !bare {
		return
	}
	var kept [][2]string
	h.VisitAllCookie(func(k, v []byte) {
		if len(k) == 0 && string(bytes.TrimSpace(v)) == name {
			return
		}
		kept = append(kept, [2]string{string(k), string(v)})
	})
	h.DelAllCookies()
	for _, kv := range kept {
		h.SetCookie(kv[0], kv[1])
	}
}
