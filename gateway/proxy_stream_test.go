package gateway

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// streamDeadline is how long one event may take to cross the gateway. The
// issue asks for 100 ms; the bound here is loose so a loaded machine does
// not fail the test, while buffering still would: the upstream does not
// send the next event until the client has read the previous one, so a
// gateway that held events back would never deliver them at all.
const streamDeadline = 5 * time.Second

// TestStreamsArriveEventByEvent runs a lock-step stream: the upstream sends
// one event and flushes, then waits for the test to report that the client
// received it before it sends the next.
func TestStreamsArriveEventByEvent(t *testing.T) {
	for _, tc := range []struct {
		name, contentType, path string
		signedIn                bool
	}{
		{"server-sent events, signed in", "text/event-stream", "/events", true},
		{"server-sent events with charset, public", "text/event-stream; charset=utf-8", "/public/events", false},
		{"chunked ndjson, signed in", "application/x-ndjson", "/feed", true},
		{"chunked octets, public", "application/octet-stream", "/public/feed", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			received := make(chan int)
			const events = 5
			h.up.Handle = func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", tc.contentType)
				w.Header().Set("Cache-Control", "no-cache")
				w.WriteHeader(http.StatusOK)
				for i := 1; i <= events; i++ {
					fmt.Fprintf(w, "data: event %d\n\n", i)
					if err := http.NewResponseController(w).Flush(); err != nil {
						return
					}
					select {
					case <-received:
					case <-r.Context().Done():
						return
					}
				}
			}
			req, _ := http.NewRequest(http.MethodGet, h.URL+tc.path, nil)
			req.Header.Set("Accept", "text/event-stream")
			client := http.DefaultClient
			if tc.signedIn {
				b := h.browser()
				b.signIn("sam@example.com", "/")
				client = b.c
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d", resp.StatusCode)
			}
			lines := make(chan string)
			go func() {
				defer close(lines)
				sc := bufio.NewScanner(resp.Body)
				for sc.Scan() {
					if sc.Text() != "" {
						lines <- sc.Text()
					}
				}
			}()
			var slowest time.Duration
			for i := 1; i <= events; i++ {
				sent := time.Now()
				select {
				case got := <-lines:
					if want := fmt.Sprintf("data: event %d", i); got != want {
						t.Fatalf("got %q, want %q", got, want)
					}
				case <-time.After(streamDeadline):
					t.Fatalf("event %d did not arrive: the gateway buffers the stream", i)
				}
				d := time.Since(sent)
				if d > streamDeadline {
					t.Fatalf("event %d took %v", i, d)
				}
				slowest = max(slowest, d)
				if i < events {
					received <- i
				}
			}
			received <- events
			if _, ok := <-lines; ok {
				t.Fatal("more data after the last event")
			}
			t.Logf("slowest event took %v from the upstream's send to the client", slowest)
		})
	}
}

// TestEndlessStreamIsCancelledWhenClientLeaves: an upstream that would
// stream forever sees its request cancelled once the client hangs up.
func TestEndlessStreamIsCancelledWhenClientLeaves(t *testing.T) {
	for _, tc := range []struct {
		name     string
		path     string
		signedIn bool
	}{
		{"public", "/public/ticks", false},
		{"signed in", "/ticks", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			cancelled := make(chan struct{})
			h.up.Handle = func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/event-stream")
				tick := time.NewTicker(5 * time.Millisecond)
				defer tick.Stop()
				for n := 0; ; n++ {
					if _, err := fmt.Fprintf(w, "data: tick %d\n\n", n); err != nil {
						break
					}
					_ = http.NewResponseController(w).Flush()
					select {
					case <-r.Context().Done():
						close(cancelled)
						return
					case <-tick.C:
					}
				}
				<-r.Context().Done()
				close(cancelled)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, h.URL+tc.path, nil)
			client := &http.Client{}
			if tc.signedIn {
				b := h.browser()
				b.signIn("sam@example.com", "/")
				client = b.c
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			r := bufio.NewReader(resp.Body)
			for i := 0; i < 3; i++ {
				line, err := r.ReadString('\n')
				if err != nil {
					t.Fatal(err)
				}
				if !strings.HasPrefix(line, "data: tick ") {
					t.Fatalf("line %q", line)
				}
				_, _ = r.ReadString('\n')
			}
			cancel()
			_ = resp.Body.Close()
			select {
			case <-cancelled:
			case <-time.After(10 * time.Second):
				t.Fatal("the upstream request was not cancelled after the client left")
			}
		})
	}
}

// TestAbortedStreamLeavesNoHalfReadConnection: after clients abort
// downloads mid-body, every following request through the same gateway
// gets its own complete response, never the rest of another one.
func TestAbortedStreamLeavesNoHalfReadConnection(t *testing.T) {
	h := newHarness(t)
	big := strings.Repeat("BIGBODY!", 1<<17) // 1 MiB
	h.up.Handle = func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/public/big":
			w.Header().Set("Content-Type", "application/octet-stream")
			w.Header().Set("Content-Length", fmt.Sprint(len(big)))
			_, _ = io.WriteString(w, big)
		case "/public/stream":
			w.Header().Set("Content-Type", "text/plain")
			for i := 0; i < 1000; i++ {
				if _, err := io.WriteString(w, strings.Repeat("s", 4096)); err != nil {
					return
				}
				_ = http.NewResponseController(w).Flush()
			}
		default:
			_, _ = io.WriteString(w, "own "+r.URL.Path)
		}
	}
	client := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1}}
	defer client.CloseIdleConnections()
	for i := 0; i < 10; i++ {
		for _, path := range []string{"/public/big", "/public/stream"} {
			resp, err := client.Get(h.URL + path)
			if err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 1000)
			if _, err := io.ReadFull(resp.Body, buf); err != nil {
				t.Fatal(err)
			}
			_ = resp.Body.Close() // mid-body
		}
		want := fmt.Sprintf("own /public/next/%d", i)
		resp, err := client.Get(h.URL + fmt.Sprintf("/public/next/%d", i))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(body) != want {
			t.Fatalf("round %d: status %d, body %.40q, want %q", i, resp.StatusCode, body, want)
		}
	}
}

// captureHandler keeps every log record, for tests that read the log.
type captureHandler struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (c *captureHandler) Enabled(context.Context, slog.Level) bool { return true }
func (c *captureHandler) Handle(_ context.Context, r slog.Record) error {
	c.mu.Lock()
	c.recs = append(c.recs, r.Clone())
	c.mu.Unlock()
	return nil
}
func (c *captureHandler) WithAttrs([]slog.Attr) slog.Handler { return c }
func (c *captureHandler) WithGroup(string) slog.Handler      { return c }

// requestLines returns the access log lines as attribute maps.
func (c *captureHandler) requestLines() []map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []map[string]string
	for _, r := range c.recs {
		if r.Message != "request" {
			continue
		}
		m := map[string]string{}
		r.Attrs(func(a slog.Attr) bool { m[a.Key] = a.Value.String(); return true })
		out = append(out, m)
	}
	return out
}

// TestAbortedResponseIsStillLogged: when the client leaves mid-body the
// proxy aborts the handler, and the request still gets its access log line.
func TestAbortedResponseIsStillLogged(t *testing.T) {
	logs := &captureHandler{}
	h := newHarness(t, func(o *Options) { o.Logger = slog.New(logs) })
	sent := make(chan struct{})
	h.up.Handle = func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		chunk := strings.Repeat("z", 32<<10)
		for i := 0; ; i++ {
			if _, err := io.WriteString(w, chunk); err != nil {
				return
			}
			_ = http.NewResponseController(w).Flush()
			if i == 0 {
				close(sent)
			}
			select {
			case <-r.Context().Done():
				return
			case <-time.After(time.Millisecond):
			}
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, h.URL+"/public/endless", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	<-sent
	if _, err := io.ReadFull(resp.Body, make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	cancel()
	_ = resp.Body.Close()

	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, line := range logs.requestLines() {
			if line["path"] == "/public/endless" {
				if line["decision"] != "aborted" || line["status"] != "200" || line["request_id"] == "" {
					t.Fatalf("access log line %v, want decision aborted, status 200 and a request id", line)
				}
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no access log line for the aborted request; lines: %v", logs.requestLines())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestLongPollIsCancelledWhenClientLeaves: a request the app has not
// answered yet (a long-poll) does not hold its upstream connection after
// the client hung up: the gateway notices the close on the client's socket
// (through the framing guard) and closes the upstream connection.
func TestLongPollIsCancelledWhenClientLeaves(t *testing.T) {
	h := newHarness(t)
	started := make(chan struct{}, 1)
	cancelled := make(chan time.Time, 1)
	h.up.Handle = func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		select {
		case <-r.Context().Done():
			cancelled <- time.Now()
		case <-time.After(30 * time.Second):
			_, _ = io.WriteString(w, "too late")
		}
	}
	b := h.browser()
	b.signIn("lou@example.com", "/")
	c, err := net.Dial("tcp", strings.TrimPrefix(h.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.WriteString(c, "GET /poll HTTP/1.1\r\nHost: "+strings.TrimPrefix(h.URL, "http://")+"\r\nCookie: "+h.srv.cookie+"="+b.sessionCookie()+"\r\n\r\n")
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("the app never got the request")
	}
	time.Sleep(200 * time.Millisecond)
	left := time.Now()
	_ = c.Close()
	select {
	case at := <-cancelled:
		t.Logf("the app saw its request cancelled %v after the client left", at.Sub(left))
	case <-time.After(5 * time.Second):
		t.Fatal("the app's request is still open 5s after the client left")
	}
}
