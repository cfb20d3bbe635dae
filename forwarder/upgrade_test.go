package forwarder_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gorilla/websocket"
	"github.com/valyala/fasthttp"

	"gatehouse/forwarder"
)

// echoWS is a gorilla upstream: subprotocol "chat", a Set-Cookie on its
// 101, and it echoes every message prefixed with "echo: ". It also sends
// one message of its own first, to show upstream-initiated data flows.
func echoWS(t *testing.T) string {
	up := websocket.Upgrader{Subprotocols: []string{"chat"}}
	s := upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, http.Header{"Set-Cookie": {"ws=1; Path=/"}})
		if err != nil {
			return
		}
		defer c.Close()
		if err := c.WriteMessage(websocket.TextMessage, []byte("hello from upstream")); err != nil {
			return
		}
		for {
			mt, m, err := c.ReadMessage()
			if err != nil {
				return
			}
			if err := c.WriteMessage(mt, append([]byte("echo: "), m...)); err != nil {
				return
			}
		}
	}))
	return s.URL
}

func TestWebSocketTunnel(t *testing.T) {
	stream, cancel := context.WithCancel(context.Background())
	defer cancel()
	var done atomic.Int32
	var edited atomic.Bool
	g := startGate(t, gateOptions{target: mustURL(t, echoWS(t)), edit: func(c *fiber.Ctx, r *forwarder.Request) {
		r.Stream = stream
		r.Hooks = funcHooks{
			done: func(bool) { done.Add(1) },
			response: func(h *fasthttp.ResponseHeader) {
				edited.Store(true)
				h.Set("X-Gate", "seen")
			},
		}
	}})
	d := websocket.Dialer{Subprotocols: []string{"chat"}, HandshakeTimeout: 10 * time.Second}
	ws, resp, err := d.Dial("ws"+strings.TrimPrefix(g.URL, "http")+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	if resp.StatusCode != 101 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if ws.Subprotocol() != "chat" {
		t.Errorf("subprotocol %q", ws.Subprotocol())
	}
	if v := resp.Header.Get("Set-Cookie"); v != "ws=1; Path=/" {
		t.Errorf("Set-Cookie on the 101 = %q", v)
	}
	if !edited.Load() || resp.Header.Get("X-Gate") != "seen" {
		t.Errorf("Response edit not applied to the 101: %v", resp.Header)
	}
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, m, err := ws.ReadMessage(); err != nil || string(m) != "hello from upstream" {
		t.Fatalf("first message %q: %v", m, err)
	}
	for _, msg := range []string{"one", strings.Repeat("big", 50000), "three"} {
		if err := ws.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		_, m, err := ws.ReadMessage()
		if err != nil || string(m) != "echo: "+msg {
			t.Fatalf("echo of %.10q: %.20q, %v", msg, m, err)
		}
	}
	if n := done.Load(); n != 0 {
		t.Fatalf("Done called %d times while the tunnel is open", n)
	}

	// Ending Stream closes the open tunnel.
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	canceled := time.Now()
	cancel()
	if _, _, err := ws.ReadMessage(); err == nil {
		t.Fatal("tunnel still open after Stream ended")
	}
	if d := time.Since(canceled); d > 2*time.Second {
		t.Errorf("tunnel closed %v after Stream ended", d)
	}
	if !waitFor(2*time.Second, func() bool { return done.Load() == 1 }) {
		t.Errorf("Done called %d times, want 1", done.Load())
	}
}

func TestUpgradeRefusedAndH2C(t *testing.T) {
	var sawUpgrade, sawSettings atomic.Value
	up := upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sawUpgrade.Store(r.Header.Get("Upgrade"))
		sawSettings.Store(r.Header.Get("Http2-Settings"))
		if r.URL.Path == "/refuse" {
			http.Error(w, "no websockets here", http.StatusForbidden)
			return
		}
		_, _ = io.WriteString(w, "plain")
	}))
	g := startGate(t, gateOptions{target: mustURL(t, up.URL)})

	_, resp, body := rawExchange(t, g.URL, "GET /refuse HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
	if resp.StatusCode != 403 || !strings.Contains(body, "no websockets") {
		t.Fatalf("refused upgrade: %d %q", resp.StatusCode, body)
	}
	if !resp.Close {
		t.Errorf("an upgrade answered with a normal response must close the connection")
	}
	if v := sawUpgrade.Load(); v != "websocket" {
		t.Errorf("upstream saw Upgrade %q", v)
	}

	_, resp, body = rawExchange(t, g.URL, "GET /h2c HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n")
	if resp.StatusCode != 200 || body != "plain" {
		t.Fatalf("h2c request: %d %q", resp.StatusCode, body)
	}
	if v := sawUpgrade.Load(); v != "" {
		t.Errorf("upstream saw Upgrade %q for h2c", v)
	}
	if v := sawSettings.Load(); v != "" {
		t.Errorf("upstream saw HTTP2-Settings %q", v)
	}
}
