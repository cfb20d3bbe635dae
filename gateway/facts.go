package gateway

import (
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"

	"gatehouse/clientip"
	"gatehouse/forwarder"
)

// facts are what the gateway learned about a request before deciding it:
// they travel in the request's Fiber context, never in request headers.
type facts struct {
	start       time.Time
	ip          string // the client, believing X-Forwarded-For from trusted proxies only
	proto       string // http or https, as the client used it
	peerTrusted bool   // the socket peer is in server.trusted_proxies
	reqID       string
	path        string // the cleaned path: the one decided on and forwarded
	host        string // the normalized host (safeurl.Host): the one decided and routed on
	hostHeader  string // the Host header as sent, for X-Forwarded-Host and the origin check
	own         bool   // under /.gatehouse
	upgrade     bool   // the request asks to switch protocols
	decision    string // for the access log and metrics
	settings    *runtimeSettings
	method      string // a copy: Fiber's points into a buffer reused after the handler
	status      int
	// stream tracks an answer the forwarder is still writing after the
	// handler returned (a streamed body, a tunnel): its log line is written
	// when it ends, with its whole duration.
	stream atomic.Int32
	cut    bool // the streamed answer did not reach the client whole
	out    outbound
}

const (
	streamNone       int32 = iota // nothing forwarded, or the answer is complete
	streamForwarding              // inside Forward
	streamPending                 // the handler returned; the forwarder is still writing
	streamLogged
)

type factsKey struct{}

// newFacts records the request's facts in its context.
func (s *Server) newFacts(c *fiber.Ctx) *facts {
	h := &c.Request().Header
	f := &facts{
		start:    s.now(),
		method:   methodName(h.Method()),
		settings: s.settings(),
		upgrade:  forwarder.UpgradeWanted(h),
	}
	tls := c.Context().IsTLS()
	if peer, ok := tcpPeer(c.Context().RemoteAddr()); ok && !clientip.Trusted(peer, s.trusted) {
		// The common case, read straight from the socket address: a peer
		// that is not a trusted proxy is the client, and its headers
		// about the client are not believed.
		f.ip = peer.String()
		f.proto = "http"
		if tls {
			f.proto = "https"
		}
	} else {
		remote := c.Context().RemoteAddr().String()
		f.peerTrusted = clientip.PeerTrusted(remote, s.trusted)
		var xff []string
		if f.peerTrusted {
			for _, v := range h.PeekAll("X-Forwarded-For") {
				xff = append(xff, string(v))
			}
		}
		f.ip = clientip.Resolve(remote, xff, s.trusted).String()
		f.proto = clientip.Proto(remote, string(h.Peek("X-Forwarded-Proto")), tls, s.trusted)
	}
	f.reqID = s.requestIDFor(c, f.peerTrusted)
	c.Locals(factsKey{}, f)
	return f
}

// tcpPeer is the socket peer's address, as clientip normalizes it.
func tcpPeer(a net.Addr) (netip.Addr, bool) {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return netip.Addr{}, false
	}
	ip := ta.AddrPort().Addr().Unmap().WithZone("")
	return ip, ip.IsValid()
}

// factsOf returns the request's facts. A request fasthttp refused before
// any handler ran (a head too large) has none: it gets empty ones.
func factsOf(c *fiber.Ctx) *facts {
	if f, ok := c.Locals(factsKey{}).(*facts); ok {
		return f
	}
	return &facts{}
}

// methodName returns the method as a string that outlives the request,
// without allocating for the methods of HTTP/1.1.
func methodName(m []byte) string {
	switch string(m) {
	case fiber.MethodGet:
		return fiber.MethodGet
	case fiber.MethodHead:
		return fiber.MethodHead
	case fiber.MethodPost:
		return fiber.MethodPost
	case fiber.MethodPut:
		return fiber.MethodPut
	case fiber.MethodPatch:
		return fiber.MethodPatch
	case fiber.MethodDelete:
		return fiber.MethodDelete
	case fiber.MethodOptions:
		return fiber.MethodOptions
	case fiber.MethodConnect:
		return fiber.MethodConnect
	case fiber.MethodTrace:
		return fiber.MethodTrace
	}
	return string(m)
}
