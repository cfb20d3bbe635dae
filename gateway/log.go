package gateway

import (
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"sync/atomic"
	"time"

	"gatehouse/authstore"
)

// levelFor logs server-side failures louder than ordinary traffic.
func levelFor(status int) slog.Level {
	if status >= 500 {
		return slog.LevelWarn
	}
	return slog.LevelInfo
}

// requestIDs are a random per-process prefix and a counter: unique, cheap,
// and not secret.
type requestIDs struct {
	prefix string
	n      atomic.Uint64
}

func newRequestIDs() *requestIDs {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return &requestIDs{prefix: hex.EncodeToString(b[:])}
}

func (g *requestIDs) next() string {
	return g.prefix + "-" + strconv.FormatUint(g.n.Add(1), 36)
}

// requestID is the id the front server assigned (see assignRequestID).
func requestID(r *http.Request) string {
	if v := r.Header[hdrRequestID]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// assignRequestID keeps an X-Request-Id from a trusted proxy and otherwise
// replaces it, so every log line and upstream request can be correlated.
func (s *Server) assignRequestID(w http.ResponseWriter, r *http.Request) {
	id := ""
	if v := r.Header.Get(hdrRequestID); v != "" && len(v) <= 128 && printableASCII(v) && peerTrusted(r.RemoteAddr, s.trusted) {
		id = v
	} else {
		id = s.reqIDs.next()
	}
	r.Header[hdrRequestID] = []string{id}
	w.Header()[hdrRequestID] = []string{id}
}

func printableASCII(v string) bool {
	for i := 0; i < len(v); i++ {
		if v[i] < 0x21 || v[i] > 0x7e {
			return false
		}
	}
	return true
}

// peerTrusted reports whether the socket peer is a trusted proxy.
func peerTrusted(remoteAddr string, trusted []netip.Prefix) bool {
	if len(trusted) == 0 {
		return false
	}
	ap, err := netip.ParseAddrPort(remoteAddr)
	if err != nil {
		return false
	}
	a := ap.Addr().Unmap()
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func foldHeaderRune(r rune) rune {
	if r < 0x80 {
		return rune(foldHeaderByte(byte(r)))
	}
	return r
}

func auditEvent(now time.Time, ip, ua, typ, email, outcome, detail string) authstore.Event {
	if len(ua) > 512 {
		ua = ua[:512]
	}
	return authstore.Event{Time: now.UTC(), Type: typ, Email: email, IP: ip, UserAgent: ua, Outcome: outcome, Detail: detail}
}
