package framing

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// smuggled is a second request hidden in the first one's body, aimed at a
// protected path: if any server on the way frames the first request by the
// other header, it sees this one.
const smuggled = "GET /admin HTTP/1.1\r\nHost: x\r\nX-Auth-Request-Email: root@example.com\r\n\r\n"

// chunkConn is a connection that delivers data in pieces of the given
// sizes, then io.EOF: it exercises every way a head or body can be split
// across reads.
type chunkConn struct {
	net.Conn // nil: only Read is used
	data     []byte
	sizes    []byte // read-only: the fuzzer owns it
	next     int
}

func (c *chunkConn) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := len(c.data)
	if len(c.sizes) > 0 {
		n = int(c.sizes[c.next%len(c.sizes)])%64 + 1
		c.next++
	}
	n = min(n, len(p), len(c.data))
	copy(p, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

// rawAmbiguous reads a head as bytes: several Content-Length lines, or
// Transfer-Encoding next to Content-Length or on HTTP/1.0.
func rawAmbiguous(head []byte) bool {
	lines := strings.Split(string(head), "\n")
	cl, te := 0, 0
	for _, l := range lines[1:] {
		name, _, ok := strings.Cut(strings.TrimSuffix(l, "\r"), ":")
		if !ok {
			continue
		}
		switch strings.ToLower(name) {
		case "content-length":
			cl++
		case "transfer-encoding":
			te++
		}
	}
	http10 := strings.HasSuffix(strings.TrimSuffix(lines[0], "\r"), "HTTP/1.0")
	return cl > 1 || (te > 0 && (cl > 0 || http10))
}

// FuzzGuard feeds byte streams through the framing guard in random
// pieces and reads the result as fasthttp (the server Gatehouse runs) and
// net/http do. The guard may only add its marker after a request line, and
// every request either accepts whose head was ambiguous must carry the
// marker.
func FuzzGuard(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled,
		"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc" + smuggled,
		"POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;x=1\r\nabc\r\n0\r\nT: 1\r\n\r\n" + smuggled,
		"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 20\r\n\r\n" + smuggled,
		"POST /a HTTP/1.0\nHost: a\nTransfer-Encoding: chunked\n\n0\r\n\r\n" + smuggled,
		"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n" + smuggled,
		"\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
	} {
		f.Add([]byte(s), []byte{3, 17, 1})
	}
	f.Fuzz(func(t *testing.T, in, sizes []byte) {
		if len(in) > 1<<16 {
			return
		}
		g := &conn{Conn: &chunkConn{data: in, sizes: sizes}}
		var out []byte
		buf := make([]byte, 7)
		for {
			n, err := g.Read(buf)
			out = append(out, buf[:n]...)
			if err != nil {
				break
			}
			if len(out) > 2*len(in)+64 {
				t.Fatalf("the guard produced %d bytes from %d", len(out), len(in))
			}
		}
		marker := []byte(AmbiguousHeader + ": 1\r\n")
		stripped := bytes.ReplaceAll(out, marker, nil)
		if !bytes.HasPrefix(bytes.ReplaceAll(in, marker, nil), stripped) {
			t.Fatalf("the guard changed the stream:\nin  %q\nout %q", in, out)
		}
		checkNetHTTP(t, out, marker)
		checkFasthttp(t, out, marker)
	})
}

// checkNetHTTP reads the guard's output as net/http's server would.
func checkNetHTTP(t *testing.T, out, marker []byte) {
	src := bytes.NewReader(out)
	br := bufio.NewReader(src)
	consumed := func() int { return len(out) - src.Len() - br.Buffered() }
	for {
		start := consumed()
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		head := bytes.ReplaceAll(out[start:consumed()], marker, nil)
		if rawAmbiguous(head) && req.Header.Get(AmbiguousHeader) == "" {
			t.Fatalf("net/http: ambiguous head passed unmarked: %q", head)
		}
		if _, err := io.Copy(io.Discard, req.Body); err != nil {
			return
		}
		if req.Header.Get("Upgrade") != "" || req.Header.Get(AmbiguousHeader) != "" {
			return // the connection ends or changes protocol here
		}
	}
}

// checkFasthttp reads the guard's output as fasthttp's server, the one
// Gatehouse runs, would: head, then body, request after request.
func checkFasthttp(t *testing.T, out, marker []byte) {
	src := bytes.NewReader(out)
	br := bufio.NewReader(src)
	consumed := func() int { return len(out) - src.Len() - br.Buffered() }
	var req fasthttp.Request
	for {
		req.Reset()
		start := consumed()
		if err := req.Header.Read(br); err != nil {
			return
		}
		head := bytes.ReplaceAll(out[start:consumed()], marker, nil)
		marked := len(req.Header.Peek(AmbiguousHeader)) > 0
		if rawAmbiguous(head) && !marked {
			t.Fatalf("fasthttp: ambiguous head passed unmarked: %q", head)
		}
		if err := req.ContinueReadBody(br, 0); err != nil {
			return
		}
		if len(req.Header.Peek("Upgrade")) > 0 || marked {
			return
		}
	}
}

// TestGuardReadsDrippedHeads feeds heads one byte per read (a slow
// client, or one splitting its packets on purpose): the guard finds every
// head end once, marks the ambiguous head and changes nothing else.
func TestGuardReadsDrippedHeads(t *testing.T) {
	padding := "X-Pad: " + strings.Repeat("p", 60000) + "\r\n"
	honest := "GET /a HTTP/1.1\r\nHost: a\r\n" + padding + "\r\n"
	ambiguous := "POST /b HTTP/1.1\r\nHost: a\r\n" + padding + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
	trailer := "POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-T: " + strings.Repeat("t", 30000) + "\r\n\r\n"
	in := honest + trailer + ambiguous
	g := &conn{Conn: &chunkConn{data: []byte(in), sizes: []byte{0}}}
	out, err := io.ReadAll(g)
	if err != nil {
		t.Fatal(err)
	}
	marker := AmbiguousHeader + ": 1\r\n"
	want := honest + trailer + strings.Replace(ambiguous, "\r\n", "\r\n"+marker, 1)
	if string(out) != want {
		t.Fatalf("guard output differs from input plus one marker (%d vs %d bytes)", len(out), len(want))
	}
}
