package gateway

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestUpstreamFailuresGiveErrorPagesAndJSON(t *testing.T) {
	const timeout = 300 * time.Millisecond
	for _, tc := range []struct {
		name     string
		upstream func(h *harness, t *testing.T)
		want     int
		kind     string
	}{
		{
			name:     "connection refused",
			upstream: func(h *harness, t *testing.T) { h.up.Close() },
			want:     http.StatusBadGateway,
			kind:     "unreachable",
		},
		{
			name: "connection dropped before answering",
			upstream: func(h *harness, t *testing.T) {
				h.up.Handle = func(w http.ResponseWriter, r *http.Request) {
					if c, _, err := http.NewResponseController(w).Hijack(); err == nil {
						_ = c.Close()
					}
				}
			},
			want: http.StatusBadGateway,
			kind: "unreachable",
		},
		{
			name: "garbage instead of HTTP",
			upstream: func(h *harness, t *testing.T) {
				h.up.Handle = func(w http.ResponseWriter, r *http.Request) {
					if c, brw, err := http.NewResponseController(w).Hijack(); err == nil {
						_, _ = brw.WriteString("SSH-2.0-OpenSSH_9.6\r\n\r\n")
						_ = brw.Flush()
						_ = c.Close()
					}
				}
			},
			want: http.StatusBadGateway,
			kind: "unreachable",
		},
		{
			name: "slower than upstream.timeout",
			upstream: func(h *harness, t *testing.T) {
				release := make(chan struct{})
				t.Cleanup(func() { close(release) })
				h.up.Handle = func(w http.ResponseWriter, r *http.Request) {
					select {
					case <-release:
					case <-r.Context().Done():
					}
				}
			},
			want: http.StatusGatewayTimeout,
			kind: "timeout",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, func(o *Options) { o.UpstreamTimeout = timeout })
			tc.upstream(h, t)
			b := h.browser()
			b.signIn("erin@example.com", "/")
			for _, path := range []string{"/public/x", "/app/x"} {
				page := b.get(path)
				if page.StatusCode != tc.want || !strings.Contains(page.body, "<html") {
					t.Fatalf("%s page: status %d, want %d: %.200q", path, page.StatusCode, tc.want, page.body)
				}
				for _, leak := range []string{"dial tcp", "refused", "EOF", "awaiting", "malformed", strings.TrimPrefix(h.up.URL, "http://")} {
					if strings.Contains(page.body, leak) {
						t.Fatalf("%s page shows internal error text %q", path, leak)
					}
				}
				req, _ := http.NewRequest(http.MethodGet, h.URL+path, nil)
				req.Header.Set("Accept", "application/json")
				api := b.do(req)
				var body map[string]string
				if api.StatusCode != tc.want || json.Unmarshal([]byte(api.body), &body) != nil || body["error"] != tc.kind {
					t.Fatalf("%s API: status %d body %q, want %d with error %q", path, api.StatusCode, api.body, tc.want, tc.kind)
				}
				if ct := api.Header.Get("Content-Type"); ct != "application/json" {
					t.Fatalf("%s API Content-Type %q", path, ct)
				}
			}
		})
	}
}

// TestTimeoutCoversHeadersOnly: upstream.timeout bounds the wait for the
// response headers, not a body that takes longer to stream, and the
// upstream request is cancelled when it runs out.
func TestTimeoutCoversHeadersOnly(t *testing.T) {
	const timeout = 200 * time.Millisecond
	h := newHarness(t, func(o *Options) { o.UpstreamTimeout = timeout })
	cancelled := make(chan struct{}, 1)
	h.up.Handle = func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/public/slow-body":
			w.Header().Set("Content-Type", "text/plain")
			_, _ = io.WriteString(w, "first ")
			_ = http.NewResponseController(w).Flush()
			time.Sleep(3 * timeout)
			_, _ = io.WriteString(w, "second")
		case "/public/slow-headers":
			<-r.Context().Done()
			cancelled <- struct{}{}
		}
	}
	resp, err := http.Get(h.URL + "/public/slow-body")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || string(body) != "first second" {
		t.Fatalf("slow body: status %d body %q err %v", resp.StatusCode, body, err)
	}

	resp, err = http.Get(h.URL + "/public/slow-headers")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusGatewayTimeout {
		t.Fatalf("slow headers: status %d, want 504", resp.StatusCode)
	}
	select {
	case <-cancelled:
	case <-time.After(10 * time.Second):
		t.Fatal("upstream request was not cancelled after the timeout")
	}
}
