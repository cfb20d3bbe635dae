package gateway

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"

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

// requestIDFor keeps an X-Request-Id from a trusted proxy and otherwise
// makes a new one, so every log line and upstream request can be
// correlated. The client sees it in the response's X-Request-Id.
func (s *Server) requestIDFor(c *fiber.Ctx, peerTrusted bool) string {
	id := ""
	if v := c.Request().Header.Peek(hdrRequestID); peerTrusted && len(v) > 0 && len(v) <= 128 && printableASCII(string(v)) {
		id = string(v)
	} else {
		id = s.reqIDs.next()
	}
	c.Response().Header.Set(hdrRequestID, id)
	return id
}

// logRequest counts the request and writes its access log line. It hands
// the record to the handler itself: Logger.LogAttrs would also capture the
// caller's program counter on every request, which this line never shows.
func (s *Server) logRequest(f *facts) {
	decision, status := f.decision, f.status
	if decision == "" || f.cut {
		decision = "aborted"
	}
	s.metrics.request(decision, status)
	level := levelFor(status)
	ctx := context.Background()
	h := s.log.Handler()
	if !h.Enabled(ctx, level) {
		return
	}
	end := s.now()
	line := slog.NewRecord(end, level, "request", 0)
	line.AddAttrs(
		slog.String("method", f.method),
		slog.String("path", f.path),
		slog.Int("status", status),
		slog.String("decision", decision),
		slog.String("ip", f.ip),
		slog.Duration("duration", end.Sub(f.start)),
		slog.String("request_id", f.reqID),
	)
	_ = h.Handle(ctx, line)
}

func printableASCII(v string) bool {
	for i := 0; i < len(v); i++ {
		if v[i] < 0x21 || v[i] > 0x7e {
			return false
		}
	}
	return true
}

func auditEvent(now time.Time, ip, ua, typ, email, outcome, detail string) authstore.Event {
	if len(ua) > 512 {
		ua = ua[:512]
	}
	return authstore.Event{Time: now.UTC(), Type: typ, Email: email, IP: ip, UserAgent: ua, Outcome: outcome, Detail: detail}
}

// logPath is the path the request was decided on; a request refused before
// its path was cleaned logs the path as sent, without the query.
func logPath(c *fiber.Ctx, f *facts) string {
	if f.path != "" {
		return f.path
	}
	p := c.Request().Header.RequestURI()
	if i := bytes.IndexByte(p, '?'); i >= 0 {
		p = p[:i]
	}
	return string(p)
}
