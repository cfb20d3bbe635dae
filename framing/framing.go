// Package framing guards a listener against requests whose framing is
// ambiguous on the wire (request smuggling).
package framing

import (
	"bytes"
	"io"
	"net"
	"strconv"
)

// AmbiguousHeader marks a request whose head was ambiguous on the wire.
// The guard adds it; the server must refuse any request that carries it
// (a client sending it itself only gets its own request refused).
const AmbiguousHeader = "X-Gatehouse-Ambiguous-Framing"

// Limits of the framing guard. A head or chunk line longer than these is
// handed to the server as it is and the connection ends after it, so the
// server's own limits answer it.
const (
	maxGuardedHead      = 1<<20 + 4096
	maxGuardedChunkLine = 4096
)

// Guard wraps the listener the gateway is served on, so that requests
// whose framing is ambiguous are refused with 400 and never forwarded.
//
// An HTTP server resolves such heads silently (fasthttp lets
// Transfer-Encoding win over a Content-Length next to it, as net/http
// does), so a handler never sees the ambiguity, while a proxy in front of
// Gatehouse may have framed the same bytes differently (request
// smuggling). The guard reads every HTTP/1 request head on the connection
// and marks a head with a Content-Length and a Transfer-Encoding, several
// Content-Length or Host headers, or a Transfer-Encoding on HTTP/1.0. It
// follows each message's body to find the next head; after a protocol
// upgrade it steps aside, and the gateway closes the connection of any
// upgrade request it does not switch. Whatever it cannot follow (a
// transfer coding other than chunked, differing lengths, an oversized
// head) ends the connection after the bytes already read, so no byte the
// guard did not check is ever parsed as a request.
func Guard(ln net.Listener) net.Listener {
	return &listener{Listener: ln}
}

type listener struct {
	net.Listener
}

func (l *listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &conn{Conn: c}, nil
}

// NetConn is the connection underneath, for the forwarder's watch on
// clients that leave and for the server's lingering close.
func (c *conn) NetConn() net.Conn { return c.Conn }

type framingState int

const (
	stateHead        framingState = iota // reading a request head
	stateBody                            // Content-Length bytes left in remaining
	stateChunkLine                       // reading a chunk-size line
	stateChunkData                       // chunk data (and its CRLF) left in remaining
	stateTrailer                         // reading trailer lines after the last chunk
	statePassthrough                     // after an upgrade: bytes are not HTTP/1 any more
	stateEnd                             // framing lost: no more bytes are delivered
)

// conn checks the request stream as the server reads it. Reads come
// from one goroutine at a time (the server's connection loop guarantees
// it), so the parser state needs no lock.
type conn struct {
	net.Conn
	state     framingState
	remaining int64
	upgrade   bool   // the current message asked for a protocol upgrade
	in        []byte // read from the socket, not yet checked
	out       []byte // checked, to be returned to the server
	inBase    []byte // the buffers in and out are windows of
	outBase   []byte
	scratch   []byte
	// scan is how far into in the search for a line end has got without
	// finding one that completes the current head or line, so a head
	// dripped in byte by byte is read once, not once per byte.
	scan int
}

func (c *conn) Read(p []byte) (int, error) {
	for len(c.out) == 0 {
		if c.state == stateEnd {
			return 0, io.EOF
		}
		if len(c.in) == 0 {
			switch {
			case c.state == statePassthrough:
				return c.Conn.Read(p)
			case c.state == stateBody && c.remaining > 0:
				// Body bytes need no parsing: they go straight to the
				// reader, up to the body's end.
				n, err := c.Conn.Read(p[:min(int64(len(p)), c.remaining)])
				c.remaining -= int64(n)
				if c.remaining == 0 {
					c.endMessage()
				}
				return n, err
			case c.state == stateChunkData && c.remaining > 2:
				n, err := c.Conn.Read(p[:min(int64(len(p)), c.remaining-2)])
				c.remaining -= int64(n)
				return n, err
			}
		}
		if c.advance() {
			continue
		}
		if c.scratch == nil {
			// Heads and chunk lines are read through it; body bytes go
			// straight to the reader (above), so it can stay small: it is
			// held by every open connection.
			c.scratch = make([]byte, 4<<10)
		}
		n, err := c.Conn.Read(c.scratch)
		c.in = appendWindow(&c.inBase, c.in, c.scratch[:n])
		if err != nil && n == 0 {
			// Unchecked bytes stay buffered: a timeout is routine (a server
			// aborts its background read with one) and must not release
			// them unchecked.
			return 0, err
		}
	}
	n := copy(p, c.out)
	c.out = c.out[n:]
	return n, nil
}

// appendWindow appends b to win, a window into *base that is consumed from
// the front, reusing the space before it: an empty window starts over at
// the front, and one that would outgrow the buffer moves there first. A
// long body read in small pieces so reuses one buffer instead of leaving a
// trail of garbage.
func appendWindow(base *[]byte, win []byte, b []byte) []byte {
	if len(win) == 0 {
		win = (*base)[:0]
	} else if cap(win)-len(win) < len(b) && len(win)+len(b) <= cap(*base) {
		win = (*base)[:copy((*base)[:cap(*base)], win)]
	}
	win = append(win, b...)
	if cap(win) > cap(*base) {
		// append moved the window to a bigger buffer of its own.
		*base = win[:0]
	}
	return win
}

// release moves n checked bytes of input to the output.
func (c *conn) release(n int) {
	c.out = appendWindow(&c.outBase, c.out, c.in[:n])
	c.in = c.in[n:]
	c.scan = 0
}

// giveUp delivers what was read and ends the stream: the server will refuse
// the malformed message, and nothing after it goes unchecked.
func (c *conn) giveUp() {
	c.release(len(c.in))
	c.state = stateEnd
}

// advance makes progress on buffered input and reports whether it did.
func (c *conn) advance() bool {
	switch c.state {
	case stateHead:
		return c.advanceHead()
	case stateBody, stateChunkData:
		if len(c.in) == 0 {
			return false
		}
		if c.state == stateChunkData && c.remaining <= 2 {
			return c.advanceChunkEnd()
		}
		n := int64(len(c.in))
		if c.state == stateChunkData {
			n = min(n, c.remaining-2)
		} else {
			n = min(n, c.remaining)
		}
		c.release(int(n))
		c.remaining -= n
		if c.state == stateBody && c.remaining == 0 {
			c.endMessage()
		}
		return true
	case stateChunkLine:
		return c.advanceChunkLine()
	case stateTrailer:
		return c.advanceTrailer()
	case statePassthrough:
		if len(c.in) == 0 {
			return false
		}
		c.release(len(c.in))
		return true
	}
	return false
}

// endMessage starts on the next request, or steps aside after an upgrade.
func (c *conn) endMessage() {
	if c.upgrade {
		c.state = statePassthrough
		return
	}
	c.state = stateHead
}

// mark delivers head with the ambiguity marker after its request line.
func (c *conn) mark(head []byte) {
	line := bytes.IndexByte(head, '\n') + 1
	c.out = appendWindow(&c.outBase, c.out, head[:line])
	c.out = appendWindow(&c.outBase, c.out, []byte(AmbiguousHeader+": 1\r\n"))
	c.out = appendWindow(&c.outBase, c.out, head[line:])
}

func (c *conn) advanceHead() bool {
	// Servers skip a few stray line breaks between requests.
	skip := 0
	for skip < len(c.in) && (c.in[skip] == '\r' || c.in[skip] == '\n') {
		skip++
	}
	if skip > 0 {
		c.release(skip)
		return true
	}
	end, resume := headEnd(c.in, c.scan)
	if end < 0 {
		c.scan = resume
		if len(c.in) > maxGuardedHead {
			c.giveUp()
			return true
		}
		return false
	}
	head := c.in[:end]
	f, ok := readHead(head)
	switch {
	case !ok && f.ambiguous:
		// Not followed, but ambiguous: the server must see the marker,
		// and nothing after the head.
		c.mark(head)
		c.in = c.in[end:]
		c.state = stateEnd
		return true
	case !ok:
		c.giveUp()
		return true
	case f.passthrough:
		c.state = statePassthrough
		return c.advance()
	}
	if f.ambiguous {
		c.mark(head)
		c.in = c.in[end:]
		c.scan = 0
	} else {
		c.release(end)
	}
	c.upgrade = f.upgrade
	switch {
	case f.chunked:
		c.state = stateChunkLine
	case f.length > 0:
		c.state, c.remaining = stateBody, f.length
	default:
		c.endMessage()
	}
	return true
}

// headEnd returns the length of the head (through its empty line), or -1
// and the start of the first incomplete line when the empty line has not
// arrived yet; from is such a start from an earlier call. Lines end in LF,
// with or without CR, as HTTP/1.1 servers read them.
func headEnd(b []byte, from int) (end, resume int) {
	i := from
	for i < len(b) {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			break
		}
		line := b[i : i+j]
		i += j + 1
		if len(line) == 0 || (len(line) == 1 && line[0] == '\r') {
			return i, 0
		}
	}
	return -1, i
}

// framing is what a request head says about the message.
type framing struct {
	ambiguous   bool
	chunked     bool
	length      int64
	upgrade     bool
	passthrough bool // not HTTP/1: HTTP/2 prior knowledge
}

// readHead reads a complete head the way the server does. ok is false when
// the guard will not follow its body (then the guard need not follow the body).
func readHead(head []byte) (f framing, ok bool) {
	// Lines are walked in place: a head is read on every request, and
	// splitting it into a slice would allocate each time.
	reqLine, rest, _ := bytes.Cut(head, []byte("\n"))
	reqLine = bytes.TrimSuffix(reqLine, []byte("\r"))
	if bytes.HasPrefix(reqLine, []byte("PRI * HTTP/2")) {
		return framing{passthrough: true}, true
	}
	sp := bytes.LastIndexByte(reqLine, ' ')
	if sp < 0 {
		return f, false
	}
	proto := string(reqLine[sp+1:])
	major, minor, okProto := parseHTTPVersion(proto)
	if !okProto || major != 1 {
		return f, false
	}
	http11 := minor >= 1
	var cl, te [][]byte
	hosts := 0
	lastFraming := false
	for l := range bytes.SplitSeq(rest, []byte("\n")) {
		l = bytes.TrimSuffix(l, []byte("\r"))
		if len(l) == 0 {
			break
		}
		if l[0] == ' ' || l[0] == '\t' {
			// A folded line continues the previous header's value.
			if lastFraming {
				f.ambiguous = true
			}
			continue
		}
		colon := bytes.IndexByte(l, ':')
		if colon <= 0 {
			return f, false
		}
		name, value := l[:colon], bytes.Trim(l[colon+1:], " \t")
		lastFraming = true
		switch {
		case asciiEqualFold(name, "content-length"):
			cl = append(cl, value)
		case asciiEqualFold(name, "transfer-encoding"):
			te = append(te, value)
		case asciiEqualFold(name, "host"):
			hosts++
		case asciiEqualFold(name, "upgrade"):
			f.upgrade = true
			lastFraming = false
		default:
			lastFraming = false
		}
	}
	if len(cl) > 1 || hosts > 1 || (len(te) > 0 && (len(cl) > 0 || !http11 || len(te) > 1)) {
		f.ambiguous = true
	}
	if len(te) > 0 && http11 {
		if len(te) != 1 || !asciiEqualFold(te[0], "chunked") {
			// A coding other than chunked alone: servers read such a body
			// in different ways (fasthttp as none at all), so the request
			// is refused and the connection ends.
			f.ambiguous = true
			return f, false
		}
		f.chunked = true
		return f, true
	}
	if len(cl) > 0 {
		for _, v := range cl[1:] {
			if !bytes.Equal(v, cl[0]) {
				return f, false // differing lengths: the connection ends
			}
		}
		n, err := strconv.ParseUint(string(cl[0]), 10, 63)
		if err != nil {
			return f, false
		}
		f.length = int64(n)
	}
	return f, true
}

func parseHTTPVersion(v string) (major, minor int, ok bool) {
	if len(v) != len("HTTP/1.1") || v[:5] != "HTTP/" || v[6] != '.' {
		return 0, 0, false
	}
	if v[5] < '0' || v[5] > '9' || v[7] < '0' || v[7] > '9' {
		return 0, 0, false
	}
	return int(v[5] - '0'), int(v[7] - '0'), true
}

func asciiEqualFold(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// lineEnd returns the index of the LF ending the line at the start of the
// input, or -1, resuming where the last search stopped.
func (c *conn) lineEnd() int {
	if j := bytes.IndexByte(c.in[c.scan:], '\n'); j >= 0 {
		return c.scan + j
	}
	c.scan = len(c.in)
	return -1
}

// advanceChunkLine reads a chunk-size line, which must end in CRLF.
func (c *conn) advanceChunkLine() bool {
	i := c.lineEnd()
	if i < 0 {
		if len(c.in) > maxGuardedChunkLine {
			c.giveUp()
			return true
		}
		return false
	}
	line := c.in[:i]
	if len(line) == 0 || line[len(line)-1] != '\r' || bytes.IndexByte(line[:len(line)-1], '\r') >= 0 {
		c.giveUp()
		return true
	}
	line = line[:len(line)-1]
	if semi := bytes.IndexByte(line, ';'); semi >= 0 {
		line = line[:semi]
	}
	line = bytes.Trim(line, " \t")
	size, err := strconv.ParseUint(string(line), 16, 64)
	if err != nil || len(line) > 16 || size > 1<<62 {
		c.giveUp()
		return true
	}
	c.release(i + 1)
	if size == 0 {
		c.state = stateTrailer
		return true
	}
	c.state, c.remaining = stateChunkData, int64(size)+2
	return true
}

// advanceChunkEnd checks the CRLF after a chunk's data.
func (c *conn) advanceChunkEnd() bool {
	want := "\r\n"[2-c.remaining:]
	n := min(len(c.in), len(want))
	if string(c.in[:n]) != want[:n] {
		c.giveUp()
		return true
	}
	c.release(n)
	c.remaining -= int64(n)
	if c.remaining == 0 {
		c.state = stateChunkLine
	}
	return true
}

// advanceTrailer skips trailer fields up to the empty line.
func (c *conn) advanceTrailer() bool {
	i := c.lineEnd()
	if i < 0 {
		if len(c.in) > maxGuardedHead {
			c.giveUp()
			return true
		}
		return false
	}
	empty := i == 0 || (i == 1 && c.in[0] == '\r')
	c.release(i + 1)
	if empty {
		c.endMessage()
	}
	return true
}
