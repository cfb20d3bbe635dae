package gateway

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// Raw HTTP/1.1 over TCP, for the attacks net/http's client would normalize
// away (dot segments, absolute-form targets, duplicate or conflicting
// framing headers).

// guarded is the address of the harness's gateway, which is served behind
// framing.Guard as cmd/gatehouse does.
func (h *harness) guarded() string { return h.addr() }

// addr is the harness's listener.
func (h *harness) addr() string { return strings.TrimPrefix(h.URL, "http://") }

// rawResponse is one response read off a raw connection.
type rawResponse struct {
	status int
	header http.Header
	body   string
	close  bool // the server said Connection: close
}

// rawExchange writes raw to addr and reads every response the server sends
// until it closes the connection or goes quiet. Requests in raw should say
// "Connection: close" on the last one so the exchange ends promptly.
func rawExchange(t testing.TB, addr, raw string) []rawResponse {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatalf("write: %v", err)
	}
	br := bufio.NewReader(conn)
	var out []rawResponse
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return out
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		out = append(out, rawResponse{status: resp.StatusCode, header: resp.Header, body: string(body), close: resp.Close})
		if resp.Close {
			return out
		}
		// A short quiet period ends the exchange for servers that keep
		// the connection open after the last expected response.
		_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	}
}

// rawGet sends one request line and headers (without the final empty line)
// and returns the single response.
func rawGet(t *testing.T, addr, target string, headers ...string) rawResponse {
	t.Helper()
	var b strings.Builder
	b.WriteString("GET " + target + " HTTP/1.1\r\nHost: " + addr + "\r\n")
	for _, h := range headers {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("Connection: close\r\n\r\n")
	resps := rawExchange(t, addr, b.String())
	if len(resps) == 0 {
		t.Fatalf("GET %q: no response", target)
	}
	return resps[0]
}

// linkToken returns the token of a one-click sign-in link.
func linkToken(link string) string {
	u, err := url.Parse(link)
	if err != nil {
		return ""
	}
	return u.Query().Get("t")
}
