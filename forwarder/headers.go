package forwarder

import (
	"bufio"
	"bytes"
	"fmt"
	"iter"
	"strconv"
	"strings"

	"github.com/valyala/fasthttp"
)

// hopByHop lists the headers that describe one connection, not the message
// (RFC 9110 section 7.6.1), plus the pre-standard Proxy-Connection. TE and
// Upgrade are handled by the callers: "TE: trailers" and an accepted
// upgrade survive. Transfer-Encoding is recomputed by fasthttp from the
// body it actually sends.
func hopByHop() [8]string {
	return [...]string{
		fasthttp.HeaderConnection,
		fasthttp.HeaderKeepAlive,
		"Proxy-Connection",
		fasthttp.HeaderProxyAuthenticate,
		fasthttp.HeaderProxyAuthorization,
		fasthttp.HeaderTE,
		fasthttp.HeaderTransferEncoding,
		fasthttp.HeaderUpgrade,
	}
}

// connectionTokens appends the comma-separated names listed in every
// Connection line to dst, separated by commas. It is copied out because
// fasthttp reuses the buffer PeekAll returns.
func connectionTokens(dst []byte, lines [][]byte) []byte {
	for _, l := range lines {
		dst = append(dst, l...)
		dst = append(dst, ',')
	}
	return dst
}

// eachToken calls fn for every non-empty, trimmed token of a comma list.
func eachToken(list []byte, fn func(tok []byte)) {
	for len(list) > 0 {
		var tok []byte
		if i := bytes.IndexByte(list, ','); i >= 0 {
			tok, list = list[:i], list[i+1:]
		} else {
			tok, list = list, nil
		}
		if tok = bytes.TrimSpace(tok); len(tok) > 0 {
			fn(tok)
		}
	}
}

func hasToken(list []byte, token string) bool {
	found := false
	eachToken(list, func(tok []byte) {
		found = found || equalFold(tok, token)
	})
	return found
}

func hasTokenBytes(list, token []byte) bool {
	found := false
	eachToken(list, func(tok []byte) {
		found = found || bytes.EqualFold(tok, token)
	})
	return found
}

// HeaderHasToken reports whether any of a comma-separated header's lines
// holds token, case-insensitively, without allocating.
func HeaderHasToken(lines [][]byte, token string) bool {
	for _, l := range lines {
		if hasToken(l, token) {
			return true
		}
	}
	return false
}

// UpgradeWanted reports a request that asks to switch protocols. h2c is
// never honored: the upstream would answer in HTTP/2 on a connection this
// proxy reads as HTTP/1.1, so such a request goes out as a plain one.
func UpgradeWanted(h *fasthttp.RequestHeader) bool {
	up := h.Peek(fasthttp.HeaderUpgrade)
	if len(up) == 0 || hasToken(up, "h2c") {
		return false
	}
	return HeaderHasToken(h.PeekAll(fasthttp.HeaderConnection), "upgrade")
}

// forbiddenTrailer reports a trailer that must not cross the proxy in
// either direction: trailers are read after the access decision and after
// the gateway set identity headers, so one carrying identity, credentials
// or framing could override what was decided.
func forbiddenTrailer(name []byte) bool {
	n := string(name)
	for _, p := range [...]string{"X-Auth-Request-", "Remote-", "X-Forwarded-", "Proxy-"} {
		if len(n) >= len(p) && strings.EqualFold(n[:len(p)], p) {
			return true
		}
	}
	switch strings.ToLower(n) {
	case "authorization", "cookie", "set-cookie", "host", "content-length",
		"transfer-encoding", "content-type", "content-encoding", "content-range",
		"connection", "keep-alive", "te", "trailer", "upgrade", "forwarded",
		"x-real-ip", "x-request-id", "via", "expect", "location":
		return true
	}
	return false
}

// prepareRequest builds the outbound request header in x.req from the
// client's. It copies field by field, leaving out hop-by-hop fields, rather
// than copying and deleting: fasthttp deletes by swapping in the last
// field, which would reorder repeated fields. Then the gateway's Header
// edits run, so a client's "Connection: X-Auth-Request-Email" cannot
// delete an identity header the gateway sets.
func (x *exchange) prepareRequest(upgrade bool) {
	in := &x.ctx.Request.Header
	h := &x.req.Header
	h.Reset()
	h.SetMethodBytes(in.Method())
	x.tokens = connectionTokens(x.tokens[:0], in.PeekAll(fasthttp.HeaderConnection))
	keepTrailers := false
	for k, v := range in.All() {
		switch {
		case upgrade && equalFold(k, fasthttp.HeaderUpgrade):
			// The one hop-by-hop field kept, for the upgrade asked for.
		case equalFold(k, fasthttp.HeaderTE):
			keepTrailers = keepTrailers || hasToken(v, "trailers")
			continue
		case skipRequestField(k, x.tokens):
			continue
		}
		h.AddBytesKV(k, v)
	}
	if keepTrailers {
		h.Set(fasthttp.HeaderTE, "trailers")
	}
	if upgrade {
		h.Set(fasthttp.HeaderConnection, "Upgrade")
	}
	x.scratch2 = appendAllowedTrailers(x.scratch2[:0], in.Trailers())
	if len(x.scratch2) > 0 {
		_ = h.SetTrailerBytes(x.scratch2)
	}

	// The upstream connection is HTTP/1.1 whatever the client spoke.
	h.SetProtocol("HTTP/1.1")
	h.SetRequestURIBytes(x.requestURI())
	if !x.r.PreserveHost {
		h.SetHost(x.r.Target.Host)
	}
	if x.r.Via {
		if in.IsHTTP11() {
			h.Add(fasthttp.HeaderVia, "1.1 gatehouse")
		} else {
			h.Add(fasthttp.HeaderVia, "1.0 gatehouse")
		}
	}
	if x.r.Hooks != nil {
		x.r.Hooks.RequestHeader(h)
	}
}

// skipRequestField reports a client field that must not reach the
// upstream as is: hop-by-hop ones, those named in Connection, framing
// (fasthttp frames the body it sends), the announced trailer list (sent
// filtered), Expect (the server already answered "100-continue" before the
// handler ran) and HTTP2-Settings (h2c is never upgraded to).
func skipRequestField(k, connTokens []byte) bool {
	for _, name := range hopByHop() {
		if equalFold(k, name) {
			return true
		}
	}
	for _, name := range [...]string{
		fasthttp.HeaderContentLength, fasthttp.HeaderTrailer, fasthttp.HeaderExpect, "HTTP2-Settings",
	} {
		if equalFold(k, name) {
			return true
		}
	}
	return hasTokenBytes(connTokens, k)
}

func appendAllowedTrailers(dst []byte, names iter.Seq[[]byte]) []byte {
	for n := range names {
		if forbiddenTrailer(n) {
			continue
		}
		if len(dst) > 0 {
			dst = append(dst, ", "...)
		}
		dst = append(dst, n...)
	}
	return dst
}

// requestURI is Target's path joined with the escaped Path, then the
// client's raw query exactly as it arrived.
func (x *exchange) requestURI() []byte {
	b := x.uri[:0]
	base := x.r.Target.EscapedPath()
	if strings.HasSuffix(base, "/") && strings.HasPrefix(x.r.Path, "/") {
		base = base[:len(base)-1]
	}
	b = append(b, base...)
	b = appendEscapedPath(b, x.r.Path)
	if len(b) == 0 {
		b = append(b, '/')
	}
	raw := x.ctx.Request.Header.RequestURI()
	if i := bytes.IndexByte(raw, '?'); i >= 0 {
		q := raw[i:]
		if j := bytes.IndexByte(q, '#'); j >= 0 {
			q = q[:j]
		}
		b = append(b, q...)
	}
	x.uri = b
	return b
}

// appendEscapedPath escapes p as net/url does for a path, keeping "/".
func appendEscapedPath(dst []byte, p string) []byte {
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(p); i++ {
		c := p[i]
		if pathByteOK(c) {
			dst = append(dst, c)
			continue
		}
		dst = append(dst, '%', hex[c>>4], hex[c&15])
	}
	return dst
}

func pathByteOK(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '-', '_', '.', '~', '$', '&', '+', ',', '/', ':', ';', '=', '@':
		return true
	}
	return false
}

// copyResponseHeader sets the client's response header to the upstream's
// without hop-by-hop fields, the fields named in Connection and framing,
// which fasthttp writes from the body it actually sends. The header is
// serialized and parsed back rather than copied: parsing is the one way
// into a fasthttp.ResponseHeader that keeps the upstream's Date (Add and
// Set drop it, CopyTo re-enables the server's own) and the server's
// no-default-Content-Type setting, and it keeps every Set-Cookie line and
// the order of repeated fields.
func (x *exchange) copyResponseHeader(dst, src *fasthttp.ResponseHeader) error {
	x.tokens = connectionTokens(x.tokens[:0], src.PeekAll(fasthttp.HeaderConnection))
	b := append(x.head[:0], "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(src.StatusCode()), 10)
	b = append(b, ' ')
	b = append(b, src.StatusMessage()...)
	b = append(b, "\r\n"...)
	for k, v := range src.All() {
		if skipResponseField(k, x.tokens) {
			continue
		}
		b = appendField(b, k, v)
	}
	b = append(b, "\r\n"...)
	x.head = b
	x.headReader.Reset(b)
	br := x.f.readers.Get().(*bufio.Reader)
	br.Reset(&x.headReader)
	err := dst.Read(br)
	br.Reset(nil)
	x.f.readers.Put(br)
	if err != nil {
		return fmt.Errorf("copy response header: %w", err)
	}
	// Parsing a header without framing implies a body read until close;
	// whether the client's connection stays open is the server's call.
	dst.ResetConnectionClose()
	x.scratch2 = appendAllowedTrailers(x.scratch2[:0], src.Trailers())
	if len(x.scratch2) > 0 {
		_ = dst.SetTrailerBytes(x.scratch2)
	}
	return nil
}

func appendField(b, k, v []byte) []byte {
	b = append(b, k...)
	b = append(b, ": "...)
	b = append(b, v...)
	return append(b, "\r\n"...)
}

func skipResponseField(k, connTokens []byte) bool {
	for _, name := range hopByHop() {
		if equalFold(k, name) {
			return true
		}
	}
	return equalFold(k, fasthttp.HeaderContentLength) || equalFold(k, fasthttp.HeaderTrailer) ||
		hasTokenBytes(connTokens, k)
}

// equalFold compares a field name without converting it to a string.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c, d := b[i], s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if 'A' <= d && d <= 'Z' {
			d += 'a' - 'A'
		}
		if c != d {
			return false
		}
	}
	return true
}

// copyTrailers adds src's allowed trailer fields to dst's trailer section;
// dst announces a field it did not announce before (fasthttp only sends
// announced trailers).
func copyTrailers(trailers iter.Seq[[]byte], peekAll func(string) [][]byte, addTrailer func([]byte) error, add func(k, v []byte), buf *[]byte) {
	// Collect the names first: PeekAll reuses a buffer the iterator may
	// share.
	names := (*buf)[:0]
	for n := range trailers {
		if !forbiddenTrailer(n) {
			names = append(names, n...)
			names = append(names, ',')
		}
	}
	*buf = names
	eachToken(names, func(n []byte) {
		if addTrailer(n) != nil {
			return
		}
		for _, v := range peekAll(string(n)) {
			add(n, v)
		}
	})
}
