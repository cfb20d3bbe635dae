package gateway

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// openWS signs b in (if needed) and opens a WebSocket on path with its
// session cookie.
func openWS(t *testing.T, h *harness, b *browser, path string) *websocket.Conn {
	t.Helper()
	hdr := http.Header{"Origin": {h.URL}}
	if b != nil {
		hdr.Set("Cookie", h.srv.cookie+"="+b.sessionCookie())
	}
	c, resp, err := dialWS(t, h, path, hdr)
	if err != nil {
		t.Fatalf("dial %s: %v (response %v)", path, err, resp)
	}
	if err := c.WriteMessage(websocket.TextMessage, []byte("ping")); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, msg, err := c.ReadMessage(); err != nil || string(msg) != "echo: ping" {
		t.Fatalf("echo: %q, %v", msg, err)
	}
	return c
}

// wsEnds reports whether the socket is closed by the gateway within d.
func wsEnds(c *websocket.Conn, d time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(d))
	_, _, err := c.ReadMessage()
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

// TestOpenStreamsEndWithTheirSession: a WebSocket or an event stream opened
// with a session is cut when that session ends — sign-out, revocation from
// elsewhere (the replicas' feed), or its absolute expiry — while streams of
// other sessions and of public paths stay open.
func TestOpenStreamsEndWithTheirSession(t *testing.T) {
	t.Run("sign-out", func(t *testing.T) {
		h := newHarness(t)
		wsEcho(h)
		alice, bob := h.browser(), h.browser()
		alice.signIn("alice@example.com", "/")
		bob.signIn("bob@example.com", "/")
		aliceWS := openWS(t, h, alice, "/live")
		bobWS := openWS(t, h, bob, "/live")
		publicWS := openWS(t, h, nil, "/public/live")

		account := alice.get("/.gatehouse/account")
		if out := alice.post("/.gatehouse/logout", url.Values{"_csrf": {alice.csrf(account.body)}}); out.StatusCode != http.StatusSeeOther {
			t.Fatalf("logout: %d", out.StatusCode)
		}
		if !wsEnds(aliceWS, 3*time.Second) {
			t.Fatal("alice's WebSocket outlived her sign-out")
		}
		if wsEnds(bobWS, 300*time.Millisecond) {
			t.Fatal("bob's WebSocket ended with alice's session")
		}
		if wsEnds(publicWS, 300*time.Millisecond) {
			t.Fatal("a public WebSocket ended with alice's session")
		}
	})

	t.Run("revoked elsewhere", func(t *testing.T) {
		h := newHarness(t)
		wsEcho(h)
		carol := h.browser()
		carol.signIn("carol@example.com", "/")
		ws := openWS(t, h, carol, "/live")
		sess, err := h.srv.sessions.Authenticate(context.Background(), carol.sessionCookie())
		if err != nil {
			t.Fatal(err)
		}
		// What the store's revocation feed calls when another replica, or
		// `gatehouse sessions revoke`, ends the session.
		h.srv.Revoked(sess.ID)
		if !wsEnds(ws, 3*time.Second) {
			t.Fatal("the WebSocket outlived its revoked session")
		}
	})

	t.Run("expiry", func(t *testing.T) {
		h := newHarness(t, func(o *Options) { o.Session.Lifetime = 2 * time.Second })
		wsEcho(h)
		dave := h.browser()
		dave.signIn("dave@example.com", "/")
		ws := openWS(t, h, dave, "/live")
		start := time.Now()
		if !wsEnds(ws, 6*time.Second) {
			t.Fatal("the WebSocket outlived its session's expiry")
		}
		if time.Since(start) > 5*time.Second {
			t.Fatalf("cut %v after opening, session lifetime 2s", time.Since(start))
		}
	})

	t.Run("event stream on sign-out", func(t *testing.T) {
		h := newHarness(t)
		h.up.Handle = func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			for i := 0; ; i++ {
				if _, err := io.WriteString(w, "data: tick\n\n"); err != nil {
					return
				}
				_ = http.NewResponseController(w).Flush()
				select {
				case <-r.Context().Done():
					return
				case <-time.After(100 * time.Millisecond):
				}
			}
		}
		erin := h.browser()
		erin.signIn("erin@example.com", "/")
		req, _ := http.NewRequest(http.MethodGet, h.URL+"/events", nil)
		req.Header.Set("Accept", "text/event-stream")
		req.Header.Set("Cookie", h.srv.cookie+"="+erin.sessionCookie())
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		events := make(chan error, 1)
		go func() {
			r := bufio.NewReader(resp.Body)
			for {
				if _, err := r.ReadString('\n'); err != nil {
					events <- err
					return
				}
			}
		}()
		time.Sleep(300 * time.Millisecond)
		account := erin.get("/.gatehouse/account")
		if out := erin.post("/.gatehouse/logout", url.Values{"_csrf": {erin.csrf(account.body)}}); out.StatusCode != http.StatusSeeOther {
			t.Fatalf("logout: %d", out.StatusCode)
		}
		select {
		case <-events:
		case <-time.After(3 * time.Second):
			t.Fatal("the event stream outlived its session")
		}
	})
}
