package gateway

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"gatehouse/access"
	"gatehouse/session"
)

// wsEcho makes the harness upstream a WebSocket server: it negotiates the
// "chat.v2" subprotocol, sets a cookie on the 101, echoes every message
// with an "echo: " prefix, and closes from its side when told "bye".
func wsEcho(h *harness) {
	up := websocket.Upgrader{
		Subprotocols: []string{"chat.v2"},
		CheckOrigin:  func(*http.Request) bool { return true },
	}
	h.up.Handle = func(w http.ResponseWriter, r *http.Request) {
		if !websocket.IsWebSocketUpgrade(r) {
			_, _ = w.Write([]byte("not a websocket"))
			return
		}
		c, err := up.Upgrade(w, r, http.Header{"Set-Cookie": {"ws_seen=1; Path=/"}})
		if err != nil {
			return
		}
		defer c.Close()
		for {
			typ, msg, err := c.ReadMessage()
			if err != nil {
				return
			}
			if string(msg) == "bye" {
				_ = c.WriteControl(websocket.CloseMessage,
					websocket.FormatCloseMessage(websocket.CloseGoingAway, "upstream says bye"), time.Now().Add(5*time.Second))
				// Wait for the client's answer to the close.
				_, _, _ = c.ReadMessage()
				return
			}
			if err := c.WriteMessage(typ, append([]byte("echo: "), msg...)); err != nil {
				return
			}
		}
	}
}

// dialWS opens a WebSocket through the gateway.
func dialWS(t *testing.T, h *harness, path string, hdr http.Header) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	d := websocket.Dialer{
		HandshakeTimeout: 10 * time.Second,
		Subprotocols:     []string{"chat.v1", "chat.v2"},
	}
	c, resp, err := d.Dial("ws"+strings.TrimPrefix(h.URL, "http")+path, hdr)
	if c != nil {
		t.Cleanup(func() { _ = c.Close() })
	}
	return c, resp, err
}

func TestWebSocketThroughGateway(t *testing.T) {
	h := newHarness(t)
	wsEcho(h)
	b := h.browser()
	b.signIn("wendy@example.com", "/")
	hdr := http.Header{
		"Cookie":               {h.srv.cookie + "=" + b.sessionCookie() + "; theme=dark"},
		"Origin":               {h.URL},
		"X-Auth-Request-Email": {"mallory@evil.com"},
	}
	c, resp, err := dialWS(t, h, "/live/feed?room=7", hdr)
	if err != nil {
		t.Fatalf("dial: %v (response %v)", err, resp)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status = %d, want 101", resp.StatusCode)
	}
	if got := c.Subprotocol(); got != "chat.v2" {
		t.Errorf("negotiated subprotocol = %q, want chat.v2", got)
	}
	if got := resp.Header.Values("Set-Cookie"); len(got) != 1 || !strings.HasPrefix(got[0], "ws_seen=1") {
		t.Errorf("upstream Set-Cookie on the 101 = %q", got)
	}

	up := h.up.Last(t)
	if up.URL.Path != "/live/feed" || up.URL.RawQuery != "room=7" {
		t.Errorf("upstream saw %s?%s", up.URL.Path, up.URL.RawQuery)
	}
	for _, k := range identityHeaders {
		if v := up.Header.Values(k); len(v) != 1 || v[0] != "wendy@example.com" {
			t.Errorf("upgrade request %s = %q", k, v)
		}
	}
	if ck := up.Header.Get("Cookie"); strings.Contains(ck, h.srv.cookie) || !strings.Contains(ck, "theme=dark") {
		t.Errorf("upgrade request Cookie = %q", ck)
	}

	for _, msg := range []string{"hello", "second message", strings.Repeat("x", 70000)} {
		if err := c.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
			t.Fatalf("write %q: %v", msg[:min(len(msg), 20)], err)
		}
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, got, err := c.ReadMessage()
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		if string(got) != "echo: "+msg {
			t.Fatalf("echo of a %d-byte message came back as %d bytes", len(msg), len(got))
		}
	}
}

func TestWebSocketCloseFromEitherSide(t *testing.T) {
	h := newHarness(t)
	wsEcho(h)
	b := h.browser()
	b.signIn("wendy@example.com", "/")
	hdr := http.Header{"Cookie": {h.srv.cookie + "=" + b.sessionCookie()}, "Origin": {h.URL}}

	t.Run("upstream closes", func(t *testing.T) {
		c, _, err := dialWS(t, h, "/ws", hdr)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.WriteMessage(websocket.TextMessage, []byte("bye")); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, _, err = c.ReadMessage()
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != websocket.CloseGoingAway || ce.Text != "upstream says bye" {
			t.Fatalf("read after upstream close: %v, want close 1001 from the upstream", err)
		}
	})

	t.Run("client closes", func(t *testing.T) {
		closed := make(chan error, 1)
		up := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
		h.up.SetHandler(func(w http.ResponseWriter, r *http.Request) {
			c, err := up.Upgrade(w, r, nil)
			if err != nil {
				closed <- err
				return
			}
			defer c.Close()
			_, _, err = c.ReadMessage()
			closed <- err
		})
		c, _, err := dialWS(t, h, "/ws", hdr)
		if err != nil {
			t.Fatal(err)
		}
		msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "client done")
		if err := c.WriteControl(websocket.CloseMessage, msg, time.Now().Add(5*time.Second)); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-closed:
			var ce *websocket.CloseError
			if !errors.As(err, &ce) || ce.Code != websocket.CloseNormalClosure || ce.Text != "client done" {
				t.Fatalf("upstream saw %v, want the client's close 1000", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("upstream never saw the client's close")
		}
	})
}

func TestWebSocketUpgradeIsDecidedLikeAnyRequest(t *testing.T) {
	h := newHarness(t, func(o *Options) {
		o.Settings.Rules = []access.Rule{
			{Paths: []string{"/public/**"}, Policy: access.PolicyPublic},
			{Paths: []string{"/internal/**"}, Policy: access.PolicyDeny},
			{Paths: []string{"/admin/**"}, Policy: access.PolicyAuthenticated, Emails: []string{"root@example.com"}},
		}
		o.Settings.AllowedRedirectHosts = []string{"app.example.com"}
	})
	wsEcho(h)
	b := h.browser()
	b.signIn("wendy@example.com", "/")
	cookie := h.srv.cookie + "=" + b.sessionCookie()

	cases := []struct {
		name    string
		path    string
		cookie  string
		origin  string
		want    int
		reached bool
	}{
		{"deny rule", "/internal/ws", cookie, h.URL, http.StatusForbidden, false},
		{"no session", "/ws", "", h.URL, http.StatusUnauthorized, false},
		{"forged session", "/ws", h.srv.cookie + "=" + strings.Repeat("A", session.TokenLen), h.URL, http.StatusUnauthorized, false},
		{"not permitted by rule", "/admin/ws", cookie, h.URL, http.StatusForbidden, false},
		{"cross-site origin", "/ws", cookie, "https://evil.example", http.StatusForbidden, false},
		{"look-alike origin", "/ws", cookie, h.URL + ".evil.example", http.StatusForbidden, false},
		{"null origin", "/ws", cookie, "null", http.StatusForbidden, false},
		{"no origin", "/ws", cookie, "", http.StatusForbidden, false},
		{"allowed redirect host origin", "/ws", cookie, "https://app.example.com", http.StatusSwitchingProtocols, true},
		{"same origin", "/ws", cookie, h.URL, http.StatusSwitchingProtocols, true},
		{"public path from anywhere", "/public/ws", "", "https://evil.example", http.StatusSwitchingProtocols, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := h.up.Count()
			hdr := http.Header{}
			if tc.cookie != "" {
				hdr.Set("Cookie", tc.cookie)
			}
			if tc.origin != "" {
				hdr.Set("Origin", tc.origin)
			}
			c, resp, err := dialWS(t, h, tc.path, hdr)
			if resp == nil {
				t.Fatalf("no response: %v", err)
			}
			if resp.StatusCode != tc.want {
				t.Fatalf("status = %d, want %d (%v)", resp.StatusCode, tc.want, err)
			}
			if reached := h.up.Count() > before; reached != tc.reached {
				t.Fatalf("upstream reached = %v, want %v", reached, tc.reached)
			}
			if c != nil {
				if err := c.WriteMessage(websocket.TextMessage, []byte("ping")); err != nil {
					t.Fatal(err)
				}
				_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
				if _, got, err := c.ReadMessage(); err != nil || string(got) != "echo: ping" {
					t.Fatalf("echo = %q, %v", got, err)
				}
			}
		})
	}
}

// TestH2CUpgradeIsNotPassed stands up an upstream that switches to h2c
// whenever it is asked: the gateway must never let it.
func TestH2CUpgradeIsNotPassed(t *testing.T) {
	h := newHarness(t)
	h.up.Handle = func(w http.ResponseWriter, r *http.Request) {
		if strings.EqualFold(r.Header.Get("Upgrade"), "h2c") {
			conn, brw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				return
			}
			defer conn.Close()
			_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n")
			_ = brw.Flush()
			return
		}
		_, _ = w.Write([]byte("plain http/1.1"))
	}
	for _, tc := range []struct {
		name, path, upgrade, connection string
		signedIn                        bool
	}{
		{"public path", "/public/x", "h2c", "Upgrade, HTTP2-Settings", false},
		{"protected path", "/app", "h2c", "Upgrade, HTTP2-Settings", true},
		{"upper case", "/public/x", "H2C", "upgrade", false},
		{"in a list", "/public/x", "foo/1, h2c", "Upgrade", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", strings.TrimPrefix(h.URL, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			cookie := ""
			if tc.signedIn {
				b := h.browser()
				b.signIn("hank@example.com", "/")
				cookie = "Cookie: " + h.srv.cookie + "=" + b.sessionCookie() + "\r\n"
			}
			_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
			_, err = conn.Write([]byte("GET " + tc.path + " HTTP/1.1\r\nHost: " + strings.TrimPrefix(h.URL, "http://") + "\r\n" +
				"Connection: " + tc.connection + "\r\nUpgrade: " + tc.upgrade + "\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n" +
				cookie + "\r\n"))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status = %d, want 200 over plain HTTP/1.1", resp.StatusCode)
			}
			up := h.up.Last(t)
			if v := up.Header.Get("Upgrade"); v != "" {
				t.Errorf("upstream saw Upgrade: %q", v)
			}
			if v := up.Header.Get("Http2-Settings"); v != "" {
				t.Errorf("upstream saw HTTP2-Settings: %q", v)
			}
		})
	}
}

// TestAnyUpgradeNeedsSameSiteOrigin: the cross-site check holds for every
// protocol switch on a protected path, not only one named "websocket".
func TestAnyUpgradeNeedsSameSiteOrigin(t *testing.T) {
	h := newHarness(t)
	h.up.Handle = func(w http.ResponseWriter, r *http.Request) {
		if !strings.EqualFold(r.Header.Get("Upgrade"), "custom/1") {
			_, _ = w.Write([]byte("no upgrade"))
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: custom/1\r\n\r\nswitched")
		_ = brw.Flush()
	}
	b := h.browser()
	b.signIn("uri@example.com", "/")
	host := strings.TrimPrefix(h.URL, "http://")
	for _, tc := range []struct {
		name, origin string
		want         int
	}{
		{"cross-site", "https://evil.example", http.StatusForbidden},
		{"no origin", "", http.StatusForbidden},
		{"same origin", h.URL, http.StatusSwitchingProtocols},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := h.up.Count()
			origin := ""
			if tc.origin != "" {
				origin = "Origin: " + tc.origin + "\r\n"
			}
			resp, _ := rawRequest(t, h, "GET /tunnel HTTP/1.1\r\nHost: "+host+"\r\n"+
				"Connection: Upgrade\r\nUpgrade: custom/1\r\n"+origin+
				"Cookie: "+h.srv.cookie+"="+b.sessionCookie()+"\r\n\r\n")
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.want)
			}
			if reached := h.up.Count() > before; reached != (tc.want == http.StatusSwitchingProtocols) {
				t.Fatalf("upstream reached = %v", reached)
			}
		})
	}
}
