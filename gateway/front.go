package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"gatehouse/pages"
)

// ServeHTTP decides every request: Gatehouse's own endpoints, then the
// access rules on the cleaned path, the session, and finally the proxy.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := s.now()
	s.assignRequestID(w, r)
	if isLongLived(r) {
		var done func()
		r, done = s.streams.track(r)
		defer done()
	}
	rec := &statusRecorder{ResponseWriter: w, upgrade: len(r.Header["Upgrade"]) > 0}
	ip := s.clientIP(r)
	// Deferred so a response the proxy cannot finish (the client or the
	// upstream went away mid-body: ReverseProxy then panics with
	// http.ErrAbortHandler) is still counted and logged.
	defer s.logRequest(r, rec, ip, start)
	rec.decision = s.serve(rec, r, ip)
}

// logRequest counts the request and writes its access log line. It hands
// the record to the handler itself: Logger.LogAttrs would also capture the
// caller's program counter on every request, which this line never shows.
func (s *Server) logRequest(r *http.Request, rec *statusRecorder, ip string, start time.Time) {
	decision := rec.decision
	if decision == "" {
		decision = "aborted"
	}
	s.metrics.request(decision, rec.status)
	status := rec.statusOrOK()
	level := levelFor(status)
	ctx := r.Context()
	h := s.log.Handler()
	if !h.Enabled(ctx, level) {
		return
	}
	end := s.now()
	line := slog.NewRecord(end, level, "request", 0)
	line.AddAttrs(
		slog.String("method", r.Method),
		slog.String("path", r.URL.Path),
		slog.Int("status", status),
		slog.String("decision", decision),
		slog.String("ip", ip),
		slog.Duration("duration", end.Sub(start)),
		slog.String("request_id", requestID(r)),
	)
	_ = h.Handle(ctx, line)
}

// serve answers the request and returns the decision it made, for the
// access log and metrics. ip is the client's address (see ClientIP).
func (s *Server) serve(w http.ResponseWriter, r *http.Request, ip string) string {
	if r.Method == http.MethodConnect || !strings.HasPrefix(r.RequestURI, "/") {
		// Absolute-form targets and CONNECT are for forward proxies.
		s.writeError(w, r, http.StatusBadRequest, "bad_request", "")
		return "rejected"
	}
	if len(r.Header["Content-Length"]) > 1 || (len(r.TransferEncoding) > 0 && len(r.Header["Content-Length"]) > 0) ||
		len(r.Header[hdrAmbiguousFraming]) > 0 {
		// net/http hides most ambiguous framing from handlers; GuardFraming
		// marks it. Nothing more is read from this connection.
		w.Header().Set("Connection", "close")
		s.writeError(w, r, http.StatusBadRequest, "bad_request", "")
		return "rejected"
	}
	rawPath := r.RequestURI
	if i := strings.IndexByte(rawPath, '?'); i >= 0 {
		rawPath = rawPath[:i]
	}
	path, err := CleanPath(rawPath)
	if err != nil {
		s.writeError(w, r, http.StatusBadRequest, "bad_request", "")
		return "rejected"
	}
	if path == Prefix || strings.HasPrefix(path, Prefix+"/") {
		if path == forwardAuthPath {
			joinRepeated(r.Header)
		}
		s.serveOwn(w, r)
		return "gatehouse"
	}
	dropH2CUpgrade(r.Header)

	rs := s.settings()
	d := rs.access.Decide(r.Host, r.Method, path)
	if overrideConflicts(rs.access, r, path, d) {
		s.writeError(w, r, http.StatusBadRequest, "bad_request", "")
		return "rejected"
	}
	f := &forward{
		path:     path,
		clientIP: ip,
		proto:    s.proto(r),
		host:     r.Host,
		reqID:    requestID(r),
		settings: rs,
	}
	switch d.Policy {
	case PolicyDeny:
		s.audit(r, "access.denied", "", "denied", "rule")
		s.writeError(w, r, http.StatusForbidden, "forbidden", "")
		return "denied"
	case PolicyPublic:
		s.proxy.serve(w, r, f)
		return "public"
	}

	id, err := s.authenticate(r.Context(), cookieValue(r.Header["Cookie"], s.cookie))
	switch {
	case errors.Is(err, errNoSession):
		s.unauthenticated(w, r)
		return "redirected"
	case err != nil:
		s.log.Error("session check failed", "err", err)
		s.writeError(w, r, http.StatusServiceUnavailable, "unavailable", "")
		return "error"
	}
	if !d.Permits(id.Email) {
		s.audit(r, "access.denied", id.Email, "denied", "not permitted by rule")
		s.writeError(w, r, http.StatusForbidden, "forbidden", id.Email)
		return "denied"
	}
	if isUpgrade(r) && !s.sameSiteOrigin(r.Header.Get("Origin"), rs) {
		// Cross-site WebSocket hijacking: the cookie rides along on a
		// cross-site upgrade, so the origin must be ours. Any protocol
		// switch is held to this, not only one spelled "websocket".
		s.writeError(w, r, http.StatusForbidden, "forbidden", id.Email)
		return "denied"
	}
	f.email = id.Email
	s.proxy.serve(w, r, f)
	return "allowed"
}

// unauthenticated sends browsers to the sign-in page and tells API clients
// 401.
func (s *Server) unauthenticated(w http.ResponseWriter, r *http.Request) {
	if isBrowser(r) {
		// A path-only Location: the browser stays on the origin it used,
		// and nothing in it comes from the request's Host.
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Location", loginPath(r.RequestURI))
		w.WriteHeader(http.StatusSeeOther)
		return
	}
	s.writeJSON(w, http.StatusUnauthorized, map[string]string{
		"error":     "unauthenticated",
		"message":   "Sign in first.",
		"login_url": s.loginURL(""),
	})
}

// loginPath is the sign-in page's path with rd.
func loginPath(rd string) string {
	return Prefix + "/login?rd=" + url.QueryEscape(rd)
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

// isBrowser: a page navigation, as opposed to an API or script call.
func isBrowser(r *http.Request) bool {
	return (r.Method == http.MethodGet || r.Method == http.MethodHead) &&
		strings.Contains(r.Header.Get("Accept"), "text/html")
}

// isUpgrade: the request asks to switch protocols, as ReverseProxy reads
// it (it passes any protocol name through).
func isUpgrade(r *http.Request) bool {
	return len(r.Header["Upgrade"]) > 0 && headerHasToken(r.Header["Connection"], "upgrade")
}

func isWebSocket(r *http.Request) bool {
	return headerHasToken(r.Header["Connection"], "upgrade") && headerHasToken(r.Header["Upgrade"], "websocket")
}

// methodOverrides are the headers, in normalized form (see isSpoofable),
// through which many frameworks let a request ask for another method.
var methodOverrides = map[string]bool{
	"x-http-method-override": true,
	"x-http-method":          true,
	"x-method-override":      true,
}

// overrideConflicts reports whether a method-override header, in any
// spelling, names a method the rules decide differently from the request's
// own: the upstream might run that method, so the request is refused rather
// than decided on a method it may not be.
func overrideConflicts(a *Access, r *http.Request, path string, d Decision) bool {
	for k, vs := range r.Header {
		if !isMethodOverride(k) {
			continue
		}
		for _, v := range vs {
			if o := a.Decide(r.Host, strings.TrimSpace(v), path); o.Rule != d.Rule || o.Policy != d.Policy {
				return true
			}
		}
	}
	return false
}

// isMethodOverride reports whether header name k is one of methodOverrides
// in any spelling. It runs for every header of every request, so it folds
// into a stack buffer instead of allocating.
func isMethodOverride(k string) bool {
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

// dropH2CUpgrade refuses to pass an h2c upgrade through: the upstream would
// switch protocols behind the gateway's back.
func dropH2CUpgrade(h http.Header) {
	if headerHasToken(h["Upgrade"], "h2c") {
		delete(h, "Upgrade")
		delete(h, "Http2-Settings")
	}
}

// headerHasToken reports whether a comma-separated header holds token,
// case-insensitively, without allocating.
func headerHasToken(values []string, token string) bool {
	for _, v := range values {
		for v != "" {
			var t string
			t, v, _ = strings.Cut(v, ",")
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// sameSiteOrigin reports whether an Origin header names the public URL or an
// allowed redirect host.
func (s *Server) sameSiteOrigin(origin string, rs *runtimeSettings) bool {
	return strings.EqualFold(origin, s.origin) || rs.redirects.AllowsOrigin(origin)
}

func (s *Server) clientIP(r *http.Request) string {
	return ClientIP(r.RemoteAddr, r.Header["X-Forwarded-For"], s.trusted).String()
}

func (s *Server) proto(r *http.Request) string {
	return ForwardedProto(r.RemoteAddr, r.Header.Get("X-Forwarded-Proto"), r.TLS != nil, s.trusted)
}

// writeError answers with an error page for browsers and JSON for others.
// It never shows internal error text.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, status int, kind, email string) {
	if !acceptsHTML(r) {
		rs := s.settings()
		lang := rs.Pages.Negotiate(r.Header.Get("Accept-Language"), "")
		s.writeJSON(w, status, map[string]string{"error": kind, "message": rs.Pages.Message(lang, apiMessageKey(kind))})
		return
	}
	rd := ""
	if r.Method == http.MethodGet {
		rd = r.RequestURI
	}
	rs := s.settings()
	nonce := newNonce(s.rand)
	token := s.csrfToken(cookieValue(r.Header["Cookie"], csrfCookieName(s.session.Secure)))
	if token == "" && email != "" {
		// The "switch account" button posts a form: a browser that kept
		// its session cookie but lost the CSRF cookie needs a new one.
		if v, setCookie := s.newCSRFCookie(); v != "" {
			w.Header().Add("Set-Cookie", setCookie)
			token = s.csrfToken(v)
		}
	}
	v := pages.ErrorView{
		Base:      pages.Base{Lang: rs.Pages.Negotiate(r.Header.Get("Accept-Language"), r.URL.Query().Get("lang")), Nonce: nonce, CSRFName: csrfField, CSRFToken: token},
		Status:    status,
		Kind:      kind,
		Email:     email,
		RD:        rs.redirects.Safe(rd),
		RequestID: requestID(r),
	}
	var buf bytes.Buffer
	if err := rs.Pages.Error(&buf, v); err != nil {
		s.log.Error("render error page", "err", err)
		http.Error(w, http.StatusText(status), status)
		return
	}
	setPageHeaders(w.Header(), nonce, rs.formCSP)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func acceptsHTML(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), "text/html")
}

func (s *Server) writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// audit records a security event without holding up the request; the
// event's failure to store is logged, never shown.
func (s *Server) audit(r *http.Request, typ, email, outcome, detail string) {
	s.recordEvent(s.clientIP(r), r.UserAgent(), typ, email, outcome, detail)
}

// At most maxAuditWriters events are written at once; past that, events are
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

// statusRecorder remembers the status for the access log while passing
// Flush, Hijack and friends through (http.ResponseController unwraps it).
type statusRecorder struct {
	http.ResponseWriter
	status   int
	upgrade  bool   // the request asked for a protocol upgrade
	decision string // set when serve returns; "" while the response is unfinished
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
		if r.upgrade && code != http.StatusSwitchingProtocols {
			// An upgrade that did not happen ends the connection: what
			// the client sends next was meant for another protocol, and
			// GuardFraming no longer follows it.
			r.Header().Set("Connection", "close")
		}
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.WriteHeader(http.StatusOK)
	}
	return r.ResponseWriter.Write(b)
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (r *statusRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (r *statusRecorder) statusOrOK() int {
	if r.status == 0 {
		return http.StatusOK
	}
	return r.status
}
