package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// proxy forwards allowed requests to the upstream that serves them.
type proxy struct {
	s      *Server
	rp     *httputil.ReverseProxy
	def    *url.URL
	routes []Route
}

// forward is what the front server decided about one request, handed to
// the ReverseProxy's Rewrite through the request context.
type forward struct {
	target   *url.URL
	path     string // the cleaned path: the same one access was decided on
	email    string // "" on public paths
	clientIP string
	proto    string
	host     string // the Host the client asked for
	reqID    string
	settings *runtimeSettings
	sent     time.Time // when the request left for the upstream, for the latency histogram
}

type forwardKey struct{}

func newProxy(s *Server, def *url.URL, routes []Route, rt http.RoundTripper, timeout time.Duration) (*proxy, error) {
	routes = slices.Clone(routes) // the caller's slice is left as it was
	for i, r := range routes {
		if r.Upstream == nil || r.Upstream.Host == "" {
			return nil, fmt.Errorf("gateway: route %d: upstream URL is required", i)
		}
		routes[i].Host = strings.TrimSuffix(strings.ToLower(r.Host), ".")
	}
	if rt == nil {
		rt = newTransport(timeout)
	}
	p := &proxy{s: s, def: def, routes: routes}
	p.rp = &httputil.ReverseProxy{
		Rewrite:        p.rewrite,
		Transport:      rt,
		BufferPool:     newBufferPool(),
		ErrorHandler:   p.errorHandler,
		ModifyResponse: p.observe,
		ErrorLog:       nil,
	}
	return p, nil
}

// newTransport is tuned for one or a few upstreams under many concurrent
// clients: enough idle connections that a busy gateway never redials (the
// standard default keeps only 2 per host, so a burst of 64 clients would
// open and close connections on every request), and bodies passed through
// as they are, never decompressed.
func newTransport(headerTimeout time.Duration) *http.Transport {
	return &http.Transport{
		Proxy: nil,
		DialContext: (&net.Dialer{
			Timeout:   10 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   512,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: headerTimeout,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true,
		// Larger than the 4 KiB default: a streamed body crosses in fewer
		// system calls, for 64 KiB per busy upstream connection.
		WriteBufferSize: 32 << 10,
		ReadBufferSize:  32 << 10,
	}
}

// target picks the upstream: the first route whose host and path prefix
// match, else the default upstream.
func (p *proxy) target(host, path string) *url.URL {
	if len(p.routes) == 0 {
		return p.def
	}
	host = strings.TrimSuffix(stripPort(strings.ToLower(host)), ".")
	for _, r := range p.routes {
		if r.Host != "" && !hostMatches(r.Host, host) {
			continue
		}
		if r.PathPrefix != "" && !hasPathPrefix(path, r.PathPrefix) {
			continue
		}
		return r.Upstream
	}
	return p.def
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

func (p *proxy) serve(w http.ResponseWriter, r *http.Request, f *forward) {
	f.target = p.target(f.host, f.path)
	if max := f.settings.MaxRequestBody; max > 0 {
		if r.ContentLength > max {
			p.s.writeError(w, r, http.StatusRequestEntityTooLarge, "too_large", "")
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, max)
	}
	ctx := context.WithValue(r.Context(), forwardKey{}, f)
	f.sent = p.s.now()
	p.rp.ServeHTTP(w, r.WithContext(ctx))
}

// observe runs when the upstream's response headers arrive: it records
// the upstream latency, and drops an X-Request-Id the upstream echoes so
// the client sees the gateway's one id, not two.
func (p *proxy) observe(resp *http.Response) error {
	if f, _ := resp.Request.Context().Value(forwardKey{}).(*forward); f != nil {
		p.s.metrics.upstreamLatency(p.s.now().Sub(f.sent))
	}
	delete(resp.Header, hdrRequestID)
	return nil
}

// rewrite builds the outbound request. ReverseProxy has already removed
// hop-by-hop headers, including those named in Connection, so nothing the
// client lists there can remove what is set here.
func (p *proxy) rewrite(pr *httputil.ProxyRequest) {
	f, _ := pr.In.Context().Value(forwardKey{}).(*forward)
	out := pr.Out
	if f == nil { // cannot happen: serve always sets it; refuse to forward blind
		out.URL = &url.URL{Scheme: "http", Host: "0.0.0.0:0", Path: "/"}
		return
	}
	out.URL.Scheme = f.target.Scheme
	out.URL.Host = f.target.Host
	out.URL.Path = joinPath(f.target.Path, f.path)
	out.URL.RawPath = ""
	out.URL.RawQuery = pr.In.URL.RawQuery
	if f.settings.PreserveHost {
		out.Host = pr.In.Host
	} else {
		out.Host = ""
	}
	h := out.Header
	stripSpoofable(h)
	dropSessionCookie(h, p.s.cookie)
	// One backing array for the five single-value headers: one allocation
	// instead of five on every request.
	v := make([]string, 5)
	v[0], v[1], v[2], v[3], v[4] = f.clientIP, f.proto, f.host, f.clientIP, f.reqID
	h["X-Forwarded-For"] = v[0:1:1]
	h["X-Forwarded-Proto"] = v[1:2:2]
	h["X-Forwarded-Host"] = v[2:3:3]
	h["X-Real-Ip"] = v[3:4:4]
	if f.reqID != "" {
		h[hdrRequestID] = v[4:5:5]
	}
	if f.settings.Via {
		h.Add("Via", viaValue(pr.In.ProtoMajor, pr.In.ProtoMinor))
	}
	if f.email != "" {
		setIdentity(h, f.email, nil)
	}
	if len(pr.In.Trailer) > 0 {
		forwardTrailers(pr)
	}
}

func viaValue(major, minor int) string {
	switch {
	case major == 1 && minor == 1:
		return "1.1 gatehouse"
	case major == 1 && minor == 0:
		return "1.0 gatehouse"
	case major == 2:
		return "2 gatehouse"
	}
	return fmt.Sprintf("%d.%d gatehouse", major, minor)
}

// forwardTrailers passes the client's request trailers on. Their values
// exist only once the body has been read to the end, after the request
// has left, so the outbound body copies them over at EOF. Trailers that
// would mean something to the gateway are dropped: some servers merge
// trailers into headers, and an identity header must never arrive that
// way.
func forwardTrailers(pr *httputil.ProxyRequest) {
	in, out := pr.In, pr.Out
	keep := make(http.Header, len(in.Trailer))
	for k := range in.Trailer {
		if trailerAllowed(k) {
			keep[k] = nil
		}
	}
	if len(keep) == 0 || out.Body == nil {
		out.Trailer = nil
		return
	}
	out.Trailer = keep
	out.Body = &trailerBody{ReadCloser: out.Body, from: in, to: keep}
}

// trailerAllowed refuses trailers that carry identity, forwarding,
// framing, routing or credentials.
func trailerAllowed(k string) bool {
	if isSpoofable(k) {
		return false
	}
	switch http.CanonicalHeaderKey(k) {
	case "Authorization", "Proxy-Authorization", "Cookie", "Host", "Connection", "Keep-Alive",
		"Te", "Trailer", "Transfer-Encoding", "Upgrade", "Content-Length", "Content-Encoding",
		"Content-Type", "Content-Range", "Expect", "Max-Forwards", "Via", hdrRequestID:
		return false
	}
	return true
}

// trailerBody fills the outbound trailers from the inbound ones when the
// inbound body ends.
type trailerBody struct {
	io.ReadCloser
	from *http.Request
	to   http.Header
}

func (b *trailerBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		for k := range b.to {
			if v, ok := b.from.Trailer[k]; ok {
				b.to[k] = v
			}
		}
	}
	return n, err
}

// dropSessionCookie removes the gateway's own cookie from the Cookie header
// sent upstream. The usual shapes (one header line with the cookie alone,
// first or last) are cut without allocating; anything else goes through
// withoutCookie.
func dropSessionCookie(h http.Header, name string) {
	c := h["Cookie"]
	if len(c) == 0 {
		return
	}
	if len(c) == 1 {
		if rest, ok := cutEdgeCookie(c[0], name); ok {
			if rest == "" {
				delete(h, "Cookie")
			} else {
				c[0] = rest // the outbound header's own copy
			}
			return
		}
	}
	if kept := withoutCookie(c, name); len(kept) > 0 {
		h["Cookie"] = kept
	} else {
		delete(h, "Cookie")
	}
}

// cutEdgeCookie removes cookie name from line when it is the first or the
// last pair and appears nowhere else; ok is false when line has another
// shape.
func cutEdgeCookie(line, name string) (rest string, ok bool) {
	first := strings.TrimLeft(line, " \t")
	if isCookiePair(first, name) {
		i := strings.IndexByte(first, ';')
		if i < 0 {
			return "", true
		}
		rest = strings.TrimLeft(first[i+1:], " \t")
	} else if i := strings.LastIndexByte(line, ';'); i >= 0 && isCookiePair(strings.TrimLeft(line[i+1:], " \t"), name) {
		rest = strings.TrimRight(line[:i], " \t")
	} else {
		return "", false
	}
	if rest == "" || containsCookie(rest, name) {
		return "", false
	}
	return rest, true
}

// isCookiePair reports whether part (up to a ';') is the cookie name: "name",
// "name=value", or "name" followed by blanks, as withoutCookie reads it.
func isCookiePair(part, name string) bool {
	if !strings.HasPrefix(part, name) {
		return false
	}
	after := part[len(name):]
	if after == "" || after[0] == '=' {
		return true
	}
	if i := strings.IndexByte(after, ';'); i >= 0 {
		after = after[:i]
	}
	return strings.Trim(after, " \t") == ""
}

// joinPath appends the cleaned request path to the upstream's base path.
func joinPath(base, path string) string {
	if base == "" || base == "/" {
		return path
	}
	return strings.TrimSuffix(base, "/") + path
}

func (p *proxy) errorHandler(w http.ResponseWriter, r *http.Request, err error) {
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		p.s.writeError(w, r, http.StatusRequestEntityTooLarge, "too_large", "")
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		// The client went away; there is nobody to answer.
		p.s.metrics.upstreamError("canceled")
	case isTimeout(err):
		p.s.metrics.upstreamError("timeout")
		p.s.log.Warn("upstream timeout", "path", r.URL.Path, "err", err)
		p.s.writeError(w, r, http.StatusGatewayTimeout, "timeout", "")
	default:
		p.s.metrics.upstreamError("unreachable")
		p.s.log.Warn("upstream unreachable", "path", r.URL.Path, "err", err)
		p.s.writeError(w, r, http.StatusBadGateway, "unreachable", "")
	}
}

func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// copyBufferSize is the size of the buffers streamed bodies are copied
// through.
const copyBufferSize = 32 << 10

// bufferPool recycles the copy buffers of streamed bodies. It stores array
// pointers, so neither Get nor Put allocates.
type bufferPool struct{ p sync.Pool }

func newBufferPool() *bufferPool {
	return &bufferPool{p: sync.Pool{New: func() any { return new([copyBufferSize]byte) }}}
}

func (b *bufferPool) Get() []byte { return b.p.Get().(*[copyBufferSize]byte)[:] }

func (b *bufferPool) Put(v []byte) {
	if cap(v) >= copyBufferSize {
		b.p.Put((*[copyBufferSize]byte)(v[:copyBufferSize]))
	}
}
