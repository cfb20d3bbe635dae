package gateway

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// smuggled is a second request hidden in the first one's body, aimed at a
// protected path: if any server on the way frames the first request by the
// other header, it sees this one.
const smuggled = "GET /admin HTTP/1.1\r\nHost: x\r\nX-Auth-Request-Email: root@example.com\r\n\r\n"

func TestAmbiguousFramingIsRefused(t *testing.T) {
	h := newHarness(t)
	addr := h.guarded()
	chunkedBody := "0\r\n\r\n" + smuggled
	cases := []struct {
		name string
		raw  string
	}{
		{"content-length then transfer-encoding",
			"POST /public/x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n" + chunkedBody},
		{"transfer-encoding then content-length",
			"POST /public/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n" + chunkedBody},
		{"content-length zero with transfer-encoding",
			"POST /public/x HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n" + chunkedBody},
		{"lower-case names",
			"POST /public/x HTTP/1.1\r\nhost: a\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n" + chunkedBody},
		{"upper-case chunked and tab",
			"POST /public/x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding:\tCHUNKED\r\n\r\n" + chunkedBody},
		{"bare LF line ends",
			"POST /public/x HTTP/1.1\nHost: a\nContent-Length: 5\nTransfer-Encoding: chunked\n\n" + chunkedBody},
		{"duplicate identical content-length",
			"POST /public/x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello" + smuggled},
		{"duplicate differing content-length",
			"POST /public/x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 66\r\n\r\nhello" + smuggled},
		{"content-length list",
			"POST /public/x HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\nhello" + smuggled},
		{"duplicate host",
			"GET /public/x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"},
		{"transfer-encoding on HTTP/1.0",
			"POST /public/x HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n" + chunkedBody},
		{"transfer-encoding alone on HTTP/1.0",
			"POST /public/x HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" + chunkedBody},
		{"two transfer-encodings",
			"POST /public/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n" + chunkedBody},
		{"transfer-encoding list",
			"POST /public/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity, chunked\r\n\r\n" + chunkedBody},
		{"unknown transfer-encoding",
			"POST /public/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\nContent-Length: 5\r\n\r\n" + chunkedBody},
		{"space before colon",
			"POST /public/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\nContent-Length: 5\r\n\r\n" + chunkedBody},
		{"folded content-length",
			"POST /public/x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n 6\r\n\r\nhello" + smuggled},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := h.up.Count()
			resps := rawExchange(t, addr, tc.raw)
			if len(resps) == 0 {
				t.Fatal("no response: the connection was dropped instead of answered")
			}
			if s := resps[0].status; s < 400 {
				t.Fatalf("status %d, want a refusal", s)
			}
			if len(resps) > 1 {
				t.Fatalf("the smuggled request was answered too: %d responses, second %d", len(resps), resps[1].status)
			}
			if n := h.up.Count() - before; n != 0 {
				t.Fatalf("%d requests reached the upstream", n)
			}
		})
	}
}

// TestMalformedChunksHideNoRequest: a body that net/http and a lenient
// server would end at different places must not let the guard lose track
// and pass a smuggled request.
func TestMalformedChunksHideNoRequest(t *testing.T) {
	h := newHarness(t)
	addr := h.guarded()
	for name, chunks := range map[string]string{
		"bare LF after size":    "0\n\r\n",
		"bare LF after data":    "3\r\nabc\n0\r\n\r\n",
		"size not hex":          "0x3\r\nabc\r\n0\r\n\r\n",
		"CR inside size line":   "3\r;x\r\nabc\r\n0\r\n\r\n",
		"data longer than size": "3\r\nabcd\r\n0\r\n\r\n",
		"negative size":         "-1\r\n\r\n",
		"oversized size":        "fffffffffffffffff\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			raw := "POST /public/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks + smuggled
			resps := rawExchange(t, addr, raw)
			if len(resps) > 1 {
				t.Fatalf("%d responses: the smuggled request was answered", len(resps))
			}
			for _, r := range h.up.Requests() {
				if r.URL.Path == "/admin" {
					t.Fatal("the smuggled request reached the upstream")
				}
			}
		})
	}
}

func TestAmbiguousFramingAnswers400AndCloses(t *testing.T) {
	h := newHarness(t)
	addr := h.guarded()
	for _, raw := range []string{
		"POST /public/x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled,
		"POST /public/x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello" + smuggled,
	} {
		resps := rawExchange(t, addr, raw)
		if len(resps) != 1 || resps[0].status != http.StatusBadRequest {
			t.Fatalf("responses %+v, want exactly one 400", resps)
		}
		if !resps[0].close {
			t.Error("the connection stays open after ambiguous framing")
		}
	}
	if h.up.Count() != 0 {
		t.Fatal("upstream was reached")
	}
}

// TestFramingGuardKeepsHonestTraffic pipelines well-framed requests whose
// bodies look like requests: the guard must follow each body exactly, so
// every request is answered and the body text is never read as a request.
func TestFramingGuardKeepsHonestTraffic(t *testing.T) {
	h := newHarness(t)
	h.up.Handle = func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		_, _ = io.WriteString(w, r.URL.Path+" "+string(body))
	}
	addr := h.guarded()
	chunked := "7\r\nGET /ad\r\n" + "3;ext=1\r\nmin\r\n" + "0\r\nX-Trailer: 1\r\n\r\n"
	raw := "POST /public/a HTTP/1.1\r\nHost: a\r\nContent-Length: " + strconv.Itoa(len(smuggled)) + "\r\n\r\n" + smuggled +
		"POST /public/b HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked +
		"\r\n" + // a stray line break between requests is tolerated
		"GET /public/c HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
	resps := rawExchange(t, addr, raw)
	if len(resps) != 3 {
		t.Fatalf("%d responses, want 3: %+v", len(resps), resps)
	}
	want := []string{"/public/a " + smuggled, "/public/b GET /admin", "/public/c "}
	for i, r := range resps {
		if r.status != http.StatusOK || r.body != want[i] {
			t.Errorf("response %d: %d %q, want 200 %q", i, r.status, r.body, want[i])
		}
	}
	var paths []string
	for _, r := range h.up.Requests() {
		paths = append(paths, r.URL.Path)
	}
	if strings.Join(paths, " ") != "/public/a /public/b /public/c" {
		t.Fatalf("upstream saw %q", paths)
	}
}

func TestRequestTargetsForProxiesAreRefused(t *testing.T) {
	h := newHarness(t)
	addr := h.guarded()
	cases := []struct{ name, raw string }{
		{"absolute-form to a protected path", "GET http://" + addr + "/admin HTTP/1.1\r\nHost: " + addr + "\r\nConnection: close\r\n\r\n"},
		{"absolute-form to a public path", "GET http://" + addr + "/public/x HTTP/1.1\r\nHost: " + addr + "\r\nConnection: close\r\n\r\n"},
		{"absolute-form naming another host", "GET http://evil.example/public/../admin HTTP/1.1\r\nHost: " + addr + "\r\nConnection: close\r\n\r\n"},
		{"authority-form CONNECT", "CONNECT " + addr + " HTTP/1.1\r\nHost: " + addr + "\r\nConnection: close\r\n\r\n"},
		{"relative target", "GET public/x HTTP/1.1\r\nHost: " + addr + "\r\nConnection: close\r\n\r\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resps := rawExchange(t, addr, tc.raw)
			if len(resps) != 1 || resps[0].status != http.StatusBadRequest {
				t.Fatalf("responses %+v, want one 400", resps)
			}
		})
	}
	// "OPTIONS *" asks about the server: answered with an empty 200, never forwarded.
	if resps := rawExchange(t, addr, "OPTIONS * HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"); len(resps) != 1 || resps[0].status != http.StatusOK || resps[0].body != "" {
		t.Fatalf("OPTIONS *: %+v", resps)
	}
	if h.up.Count() != 0 {
		t.Fatal("upstream was reached")
	}
}

func TestUpgradesPassTheSameDecision(t *testing.T) {
	h := newHarness(t)
	addr := h.guarded()
	ws := "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"

	t.Run("websocket to a protected path without a session", func(t *testing.T) {
		resps := rawExchange(t, addr, "GET /admin/socket HTTP/1.1\r\nHost: a\r\n"+ws+"\r\n")
		if len(resps) != 1 || resps[0].status != http.StatusUnauthorized {
			t.Fatalf("responses %+v, want one 401", resps)
		}
		if h.up.Count() != 0 {
			t.Fatal("upstream was reached")
		}
	})
	t.Run("refused upgrade closes the connection", func(t *testing.T) {
		// After a refused upgrade the connection must not carry more
		// requests: the bytes after an upgrade head are not HTTP/1.
		raw := "GET /admin/socket HTTP/1.1\r\nHost: a\r\n" + ws + "\r\n" +
			"POST /public/x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled
		resps := rawExchange(t, addr, raw)
		if len(resps) != 1 {
			t.Fatalf("%d responses after a refused upgrade, want 1", len(resps))
		}
		if !resps[0].close {
			t.Error("the connection stays open after a refused upgrade")
		}
		if h.up.Count() != 0 {
			t.Fatal("upstream was reached")
		}
	})
	t.Run("websocket from another site with a session", func(t *testing.T) {
		b := h.browser()
		b.signIn("ws@example.com", "/")
		resps := rawExchange(t, addr, "GET /socket HTTP/1.1\r\nHost: a\r\nCookie: gatehouse_session="+b.sessionCookie()+"\r\nOrigin: https://evil.example\r\n"+ws+"\r\n")
		if len(resps) != 1 || resps[0].status != http.StatusForbidden {
			t.Fatalf("responses %+v, want one 403", resps)
		}
		if h.up.Count() != 0 {
			t.Fatal("upstream was reached")
		}
	})
	t.Run("HTTP/2 prior knowledge is not spoken", func(t *testing.T) {
		before := h.up.Count()
		resps := rawExchange(t, addr, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
		for _, r := range resps {
			if r.status < 400 {
				t.Fatalf("answered %d to an HTTP/2 preface", r.status)
			}
		}
		if h.up.Count() != before {
			t.Fatal("upstream was reached")
		}
	})
	t.Run("h2c upgrade is not passed on", func(t *testing.T) {
		resps := rawExchange(t, addr, "GET /public/x HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n")
		if len(resps) != 1 || resps[0].status != http.StatusOK {
			t.Fatalf("responses %+v, want one 200 from the upstream over HTTP/1.1", resps)
		}
		got := h.up.Last(t)
		if got.Header.Get("Upgrade") != "" || got.Header.Get("Http2-Settings") != "" {
			t.Fatalf("upstream saw Upgrade %q, HTTP2-Settings %q", got.Header.Get("Upgrade"), got.Header.Get("Http2-Settings"))
		}
	})
}

// TestFramingGuardPassesWebSockets: after a switched protocol the guard
// steps aside, so frames flow both ways untouched, including frames sent
// right behind the upgrade request.
func TestFramingGuardPassesWebSockets(t *testing.T) {
	h := newHarness(t)
	up := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
	h.up.Handle = func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for {
			typ, msg, err := c.ReadMessage()
			if err != nil {
				return
			}
			if err := c.WriteMessage(typ, append([]byte("echo: "), msg...)); err != nil {
				return
			}
		}
	}
	addr := h.guarded()
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	c, _, err := d.Dial("ws://"+addr+"/public/ws", nil)
	if err != nil {
		t.Fatalf("dial through the guard: %v", err)
	}
	defer c.Close()
	// Frames that look like HTTP heads with ambiguous framing must pass
	// as they are.
	for _, msg := range []string{"hello", smuggled, strings.Repeat("x", 70000)} {
		if err := c.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, got, err := c.ReadMessage()
		if err != nil || string(got) != "echo: "+msg {
			t.Fatalf("echo of %.20q: %.40q, %v", msg, got, err)
		}
	}
}
