package main

import (
	"bufio"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"
)

// The served listener refuses ambiguous framing: net/http alone would
// quietly drop the Content-Length and let the request through.
func TestServeRefusesAmbiguousFraming(t *testing.T) {
	up := newUpstream(t, nil)
	cfg := writeConfig(t, t.TempDir(), setup{
		db:       database{"sqlite", filepath.Join(t.TempDir(), "gatehouse.db")},
		upstream: up.URL,
	})
	srv := startServer(t, cfg)
	conn, err := net.Dial("tcp", srv.URL[len("http://"):])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	req := "POST /public/x HTTP/1.1\r\nHost: example\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
	if _, err := conn.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("status %d, want 400", resp.StatusCode)
	}
	if n := len(up.Requests()); n != 0 {
		t.Fatalf("upstream received %d requests", n)
	}
}
