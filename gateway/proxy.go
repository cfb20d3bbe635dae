package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
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
	for i, r := range routes {
		if r.Upstream == nil || r.Upstream.Host == "" {
			return nil, fmt.Errorf("gateway: route %d: upstream URL is required", i)
		}
		routes[i].Host = strings.ToLower(r.Host)
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
// clients: enough idle connections that a busy gateway never redials, and
// bodies passed through as they are.
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
	}
}

// target picks the upstream: the first route whose host and path prefix
// match, else the default upstream.
func (p *proxy) target(host, path string) *url.URL {
	if len(p.routes) == 0 {
		return p.def
	}
	host = stripPort(strings.ToLower(host))
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
// the upstream latency.
func (p *proxy) observe(resp *http.Response) error {
	if f, _ := resp.Request.Context().Value(forwardKey{}).(*forward); f != nil {
		p.s.metrics.upstreamLatency(p.s.now().Sub(f.sent))
	}
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
	if c := h["Cookie"]; len(c) > 0 {
		if kept := withoutCookie(c, p.s.cookie); len(kept) > 0 {
			h["Cookie"] = kept
		} else {
			delete(h, "Cookie")
		}
	}
	h["X-Forwarded-For"] = []string{f.clientIP}
	h["X-Forwarded-Proto"] = []string{f.proto}
	h["X-Forwarded-Host"] = []string{f.host}
	h["X-Real-Ip"] = []string{f.clientIP}
	if f.reqID != "" {
		h["X-Request-Id"] = []string{f.reqID}
	}
	if f.settings.Via {
		h.Add("Via", fmt.Sprintf("%d.%d gatehouse", pr.In.ProtoMajor, pr.In.ProtoMinor))
	}
	if f.email != "" {
		setIdentity(h, f.email, nil)
	}
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

// bufferPool recycles the 32 KiB copy buffers of streamed bodies.
type bufferPool struct{ p sync.Pool }

func newBufferPool() *bufferPool {
	return &bufferPool{p: sync.Pool{New: func() any { b := make([]byte, 32*1024); return &b }}}
}

func (b *bufferPool) Get() []byte  { return *(b.p.Get().(*[]byte)) }
func (b *bufferPool) Put(v []byte) { b.p.Put(&v) }
