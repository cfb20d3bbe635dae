package main

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"os"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestGracefulShutdown sends SIGTERM while slow requests are in flight and
// a WebSocket and an event stream are open: every accepted request must
// complete, the streams must be told to close, and the process must exit 0
// long before server.shutdown_timeout.
func TestGracefulShutdown(t *testing.T) {
	const slow = 20
	var arrived atomic.Int32
	allArrived := make(chan struct{})
	release := make(chan struct{})
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/public/slow":
			if arrived.Add(1) == slow {
				close(allArrived)
			}
			<-release // held until SIGTERM has been sent
			time.Sleep(200 * time.Millisecond)
			_, _ = io.WriteString(w, "done")
		case "/public/events":
			w.Header().Set("Content-Type", "text/event-stream")
			for {
				if _, err := io.WriteString(w, "data: tick\n\n"); err != nil {
					return
				}
				http.NewResponseController(w).Flush()
				select {
				case <-r.Context().Done():
					return
				case <-time.After(100 * time.Millisecond):
				}
			}
		case "/public/ws":
			u := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
			c, err := u.Upgrade(w, r, nil)
			if err != nil {
				return
			}
			defer c.Close()
			for {
				mt, msg, err := c.ReadMessage()
				if err != nil {
					return
				}
				if err := c.WriteMessage(mt, msg); err != nil {
					return
				}
			}
		}
	})
	dir := t.TempDir()
	cfg := writeConfig(t, dir, setup{db: database{"sqlite", dir + "/gatehouse.db"}, upstream: up.URL, shutdown: "60s"})
	srv := startServer(t, cfg)

	// An event stream, open and ticking.
	sseReq, _ := http.NewRequest(http.MethodGet, srv.URL+"/public/events", nil)
	sseReq.Header.Set("Accept", "text/event-stream")
	sseResp, err := http.DefaultClient.Do(sseReq)
	if err != nil {
		t.Fatal(err)
	}
	defer sseResp.Body.Close()
	sseEnded := make(chan struct{})
	sseFirst := make(chan struct{})
	go func() {
		defer close(sseEnded)
		sc := bufio.NewScanner(sseResp.Body)
		first := true
		for sc.Scan() {
			if first && strings.HasPrefix(sc.Text(), "data:") {
				close(sseFirst)
				first = false
			}
		}
	}()
	select {
	case <-sseFirst:
	case <-time.After(10 * time.Second):
		t.Fatal("no event through the gateway")
	}

	// A WebSocket, open and echoing.
	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+"/public/ws", nil)
	if err != nil {
		t.Fatalf("websocket: %v", err)
	}
	defer ws.Close()
	if err := ws.WriteMessage(websocket.TextMessage, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if _, msg, err := ws.ReadMessage(); err != nil || string(msg) != "hello" {
		t.Fatalf("echo: %q %v", msg, err)
	}
	wsEnded := make(chan error, 1)
	go func() {
		for {
			if _, _, err := ws.ReadMessage(); err != nil {
				wsEnded <- err
				return
			}
		}
	}()

	// Slow requests, each on its own connection, all accepted and waiting
	// on the upstream.
	type outcome struct {
		status int
		body   string
		err    error
	}
	results := make(chan outcome, slow)
	var wg sync.WaitGroup
	for range slow {
		wg.Go(func() {
			c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 50 * time.Second}
			resp, err := c.Get(srv.URL + "/public/slow")
			if err != nil {
				results <- outcome{err: err}
				return
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			results <- outcome{resp.StatusCode, string(b), err}
		})
	}
	select {
	case <-allArrived:
	case <-time.After(20 * time.Second):
		t.Fatalf("only %d of %d requests reached the upstream", arrived.Load(), slow)
	}

	began := time.Now()
	if err := srv.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	srv.waitLog(t, 10*time.Second, func(l logLine) bool { return strings.HasPrefix(l.msg(), "shutting down: finishing") })
	close(release)

	wg.Wait()
	close(results)
	for r := range results {
		if r.err != nil || r.status != http.StatusOK || r.body != "done" {
			t.Errorf("an accepted request failed during shutdown: status %d body %q err %v", r.status, r.body, r.err)
		}
	}
	select {
	case <-sseEnded:
	case <-time.After(15 * time.Second):
		t.Error("the event stream was not closed on shutdown")
	}
	select {
	case <-wsEnded:
	case <-time.After(15 * time.Second):
		t.Error("the WebSocket was not closed on shutdown")
	}
	if code := srv.wait(t, 30*time.Second); code != 0 {
		t.Errorf("exit status %d, want 0", code)
	}
	if took := time.Since(began); took > 40*time.Second {
		t.Errorf("shutdown took %s: the streams held it until the timeout", took)
	}
	srv.waitLog(t, time.Second, func(l logLine) bool { return l.msg() == "stopped" })
	srv.waitLog(t, time.Second, func(l logLine) bool {
		return l.msg() == "shutting down: closed long-lived streams" && l["count"] == float64(2)
	})
}

// connCounter counts the connections a client opens.
type connCounter struct {
	mu       sync.Mutex
	opened   int
	requests int
}

func (c *connCounter) trace() *httptrace.ClientTrace {
	return &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.requests++
		if !info.Reused {
			c.opened++
		}
	}}
}

// TestHotReload changes the config file under a running server: new access
// rules apply without dropping a keep-alive connection, a broken file is
// rejected with the bad key logged and the old rules kept, restart-only
// changes are reported, and SIGHUP reloads too.
func TestHotReload(t *testing.T) {
	up := newUpstream(t, nil)
	dir := t.TempDir()
	base := setup{db: database{"sqlite", dir + "/gatehouse.db"}, upstream: up.URL}
	v1 := base
	v1.rules = `[{paths: ["/public/**"], policy: public}, {paths: ["/internal/**"], policy: deny}]`
	cfg := writeConfig(t, dir, v1)
	srv := startServer(t, cfg)

	counter := &connCounter{}
	client := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1}, Timeout: 10 * time.Second}
	status := func(path string) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), counter.trace()))
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	expect := func(t *testing.T, within time.Duration, want map[string]int) {
		t.Helper()
		eventually(t, within, func() error {
			for path, code := range want {
				if got := status(path); got != code {
					return fmt.Errorf("GET %s = %d, want %d", path, got, code)
				}
			}
			return nil
		})
	}
	reloads := func(result string) string {
		m := regexp.MustCompile(`gatehouse_config_reloads_total\{result="` + result + `"\} (\d+)`).FindStringSubmatch(scrape(t, srv.Metrics))
		if m == nil {
			return "0"
		}
		return m[1]
	}

	steps := []struct {
		name string
		do   func(t *testing.T)
	}{
		{"initial rules", func(t *testing.T) {
			expect(t, time.Second, map[string]int{"/public/a": 200, "/internal/a": 403})
		}},
		{"changed rules apply", func(t *testing.T) {
			v2 := base
			v2.rules = `[{paths: ["/public/**"], policy: deny}, {paths: ["/internal/**"], policy: public}]`
			writeFile(t, cfg, v2.yaml())
			expect(t, 10*time.Second, map[string]int{"/public/a": 403, "/internal/a": 200})
			srv.waitLog(t, 5*time.Second, func(l logLine) bool { return l.msg() == "config reloaded" && l.str("reason") == "file changed" })
		}},
		{"a broken file is rejected and the old rules stay", func(t *testing.T) {
			bad := base
			bad.rules = `[{paths: ["/public/**"], policy: sometimes}]`
			writeFile(t, cfg, bad.yaml())
			l := srv.waitLog(t, 10*time.Second, func(l logLine) bool { return l.msg() == "config reload rejected; keeping the running config" })
			if !strings.Contains(l.str("err"), "access.rules[0].policy") {
				t.Errorf("the rejection does not name the bad key: %q", l.str("err"))
			}
			expect(t, time.Second, map[string]int{"/public/a": 403, "/internal/a": 200})
			if got := reloads("rejected"); got != "1" {
				t.Errorf("rejected reloads = %s, want 1", got)
			}
		}},
		{"restart-only changes are reported", func(t *testing.T) {
			v3 := base
			v3.rules = `[{paths: ["/public/**"], policy: public}]`
			v3.extra = "session:\n  lifetime: 48h\n"
			writeFile(t, cfg, v3.yaml())
			l := srv.waitLog(t, 10*time.Second, func(l logLine) bool { return l.msg() == "config reloaded; these changes need a restart to apply" })
			if l.str("keys") != "session.lifetime" {
				t.Errorf("restart keys %q, want session.lifetime", l.str("keys"))
			}
			expect(t, time.Second, map[string]int{"/public/a": 200, "/internal/a": 401})
		}},
		{"SIGHUP reloads", func(t *testing.T) {
			before := reloads("applied")
			if err := srv.cmd.Process.Signal(syscall.SIGHUP); err != nil {
				t.Fatal(err)
			}
			srv.waitLog(t, 10*time.Second, func(l logLine) bool {
				return strings.HasPrefix(l.msg(), "config reloaded") && l.str("reason") == "SIGHUP"
			})
			if after := reloads("applied"); after == before {
				t.Errorf("applied reloads still %s after SIGHUP", after)
			}
		}},
		{"log level applies", func(t *testing.T) {
			// The access line is written (or suppressed) before the
			// response leaves, so a response received means the level in
			// force decided its line.
			logged := func(path string) bool {
				_, ok := srv.findLog(func(l logLine) bool { return l.msg() == "request" && l.str("path") == path })
				return ok
			}
			setLevel := func(level string) {
				before := reloads("applied")
				v := base
				v.rules = `[{paths: ["/public/**"], policy: public}]`
				v.level = level
				writeFile(t, cfg, v.yaml())
				eventually(t, 10*time.Second, func() error {
					if reloads("applied") == before {
						return fmt.Errorf("log.level %s not applied yet", level)
					}
					return nil
				})
			}
			setLevel("warn")
			if got := status("/public/quiet"); got != 200 {
				t.Fatalf("status %d", got)
			}
			setLevel("info")
			if got := status("/public/loud"); got != 200 {
				t.Fatalf("status %d", got)
			}
			eventually(t, 10*time.Second, func() error {
				if !logged("/public/loud") {
					return fmt.Errorf("no access line after returning to level info")
				}
				return nil
			})
			// The output is read in order: with the later line in, the
			// earlier one would be too.
			if logged("/public/quiet") {
				t.Error("an info access line was logged at level warn")
			}
		}},
		{"no connection was dropped", func(t *testing.T) {
			counter.mu.Lock()
			defer counter.mu.Unlock()
			if counter.opened != 1 || counter.requests < 6 {
				t.Errorf("%d connections for %d requests, want 1: a reload dropped the keep-alive connection", counter.opened, counter.requests)
			}
		}},
	}
	for _, s := range steps {
		t.Run(s.name, s.do)
	}
	if code := srv.stop(t, 20*time.Second); code != 0 {
		t.Errorf("exit status %d", code)
	}
}

// TestReloadRefusesIncompleteFiles: a config file that is empty or only
// partly written (a tool writing in place, a crash halfway) is never
// loaded as "all defaults": the running rules stay in force until a whole
// file is there.
func TestReloadRefusesIncompleteFiles(t *testing.T) {
	up := newUpstream(t, nil)
	dir := t.TempDir()
	v1 := setup{db: database{"sqlite", dir + "/gatehouse.db"}, upstream: up.URL,
		rules: `[{paths: ["/public/**"], policy: public}, {paths: ["/internal/**"], policy: deny}]`}
	cfg := writeConfig(t, dir, v1)
	srv := startServer(t, cfg)
	status := func(path string) int {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	rejected := func(t *testing.T, why string) {
		t.Helper()
		srv.waitLog(t, 10*time.Second, func(l logLine) bool {
			return l.msg() == "config reload rejected; keeping the running config" && strings.Contains(l.str("err"), why)
		})
		if got := status("/internal/a"); got != http.StatusForbidden {
			t.Fatalf("the deny rule stopped applying: GET /internal/a = %d", got)
		}
	}
	if got := status("/internal/a"); got != http.StatusForbidden {
		t.Fatalf("GET /internal/a = %d, want 403", got)
	}
	full := v1.yaml()

	t.Run("empty file", func(t *testing.T) {
		if err := os.WriteFile(cfg, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		rejected(t, "holds no settings")
	})
	t.Run("file cut before its access section", func(t *testing.T) {
		cut := full[:strings.Index(full, "access:")]
		if err := os.WriteFile(cfg, []byte(cut), 0o600); err != nil {
			t.Fatal(err)
		}
		rejected(t, "lacks the access section")
	})
	t.Run("the whole file applies again", func(t *testing.T) {
		v2 := v1
		v2.rules = `[{paths: ["/public/**"], policy: public}, {paths: ["/internal/**"], policy: public}]`
		writeFile(t, cfg, v2.yaml())
		eventually(t, 10*time.Second, func() error {
			if got := status("/internal/a"); got != http.StatusOK {
				return fmt.Errorf("GET /internal/a = %d, want 200", got)
			}
			return nil
		})
	})
}
