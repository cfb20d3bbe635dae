package forwarder_test

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"gatehouse/forwarder"
)

// heapPeak samples the Go heap in use until stop is called and returns the
// growth over the level when it started.
func heapPeak(t *testing.T) (stop func() uint64) {
	t.Helper()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	var peak atomic.Uint64
	done := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			if m.HeapInuse > peak.Load() {
				peak.Store(m.HeapInuse)
			}
		}
	}()
	return func() uint64 {
		close(done)
		<-exited
		if p := peak.Load(); p > base {
			return p - base
		}
		return 0
	}
}

// TestBigBodiesStream sends 256 MiB each way through one exchange (a
// chunked upload, a Content-Length download) and checks the bytes and that
// the process never held anything near a whole body.
func TestBigBodiesStream(t *testing.T) {
	const size = 256 << 20
	up := upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, err := io.Copy(h, r.Body)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		w.Header().Set("X-Upload-Sha256", hex.EncodeToString(h.Sum(nil)))
		w.Header().Set("X-Upload-Size", strconv.FormatInt(n, 10))
		// The download is generated after the upload was read whole.
		down := newPattern(size)
		w.Header().Set("Content-Length", strconv.Itoa(size))
		buf := make([]byte, 64<<10)
		_, _ = io.CopyBuffer(w, down, buf)
		// A trailer cannot follow a Content-Length body; the digest is
		// checked by the client recomputing the same pattern.
	}))
	g := startGate(t, gateOptions{target: mustURL(t, up.URL)})

	stop := heapPeak(t)
	upload := newPattern(size)
	req, _ := http.NewRequest("POST", g.URL+"/big", struct{ io.Reader }{upload})
	req.ContentLength = -1 // chunked
	resp, err := client(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("status %d %q", resp.StatusCode, b)
	}
	if got, want := resp.Header.Get("X-Upload-Sha256"), hex.EncodeToString(upload.h.Sum(nil)); got != want {
		t.Errorf("upload sha256 %s, want %s (size %s)", got, want, resp.Header.Get("X-Upload-Size"))
	}
	if resp.ContentLength != size {
		t.Errorf("download Content-Length %d", resp.ContentLength)
	}
	h := sha256.New()
	n, err := io.CopyBuffer(h, resp.Body, make([]byte, 64<<10))
	if err != nil {
		t.Fatal(err)
	}
	grew := stop()
	want := newPattern(size)
	_, _ = io.Copy(io.Discard, want)
	if n != size || !bytes.Equal(h.Sum(nil), want.h.Sum(nil)) {
		t.Errorf("download: %d bytes, digest mismatch=%v", n, !bytes.Equal(h.Sum(nil), want.h.Sum(nil)))
	}
	t.Logf("heap growth during 2x256 MiB: %d KiB", grew>>10)
	if grew > 32<<20 {
		t.Errorf("heap grew %d MiB while streaming: a body was buffered", grew>>20)
	}
}

// TestEventStreamLockStep has the upstream wait, before each event, until
// the client has read the previous one: any buffering until close would
// deadlock. Gaps between events are longer than HeaderTimeout and the
// whole stream lasts several of them, so it also shows HeaderTimeout does
// not bound a stream.
func TestEventStreamLockStep(t *testing.T) {
	const events = 4
	const timeout = 250 * time.Millisecond
	read := make(chan int)
	up := upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		for i := range events {
			time.Sleep(2 * timeout)
			fmt.Fprintf(w, "id: %d\ndata: event %d\n\n", i, i)
			w.(http.Flusher).Flush()
			select {
			case got := <-read:
				if got != i {
					return
				}
			case <-time.After(10 * time.Second):
				return // the client never saw it: buffered somewhere
			case <-r.Context().Done():
				return
			}
		}
	}))
	g := startGate(t, gateOptions{fw: forwarder.Options{HeaderTimeout: timeout}, target: mustURL(t, up.URL)})
	req, _ := http.NewRequest("GET", g.URL+"/events", nil)
	req.Header.Set("Accept", "text/event-stream")
	start := time.Now()
	resp, err := client(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("Content-Type %q", ct)
	}
	br := bufio.NewReader(resp.Body)
	for i := range events {
		var ev strings.Builder
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("event %d: %v after %v", i, err, time.Since(start))
			}
			if line == "\n" {
				break
			}
			ev.WriteString(line)
		}
		if want := fmt.Sprintf("id: %d\ndata: event %d\n", i, i); ev.String() != want {
			t.Fatalf("event %d = %q", i, ev.String())
		}
		read <- i
	}
	if _, err := io.ReadAll(br); err != nil {
		t.Errorf("end of stream: %v", err)
	}
	if d := time.Since(start); d < time.Duration(events)*2*timeout {
		t.Errorf("stream took %v: the upstream's pauses did not happen", d)
	}
}

// TestHeaderTimeoutSparesSlowBody: a Content-Length download that trickles
// for several HeaderTimeouts is delivered whole.
func TestHeaderTimeoutSparesSlowBody(t *testing.T) {
	const timeout = 200 * time.Millisecond
	const pieces = 5
	piece := strings.Repeat("z", 20<<10) // over smallBody: streamed
	up := upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(pieces*len(piece)))
		for range pieces {
			_, _ = io.WriteString(w, piece)
			w.(http.Flusher).Flush()
			time.Sleep(timeout)
		}
	}))
	g := startGate(t, gateOptions{fw: forwarder.Options{HeaderTimeout: timeout}, target: mustURL(t, up.URL)})
	resp, body := get(t, client(t), g.URL+"/slow")
	if resp.StatusCode != 200 || body != strings.Repeat(piece, pieces) {
		t.Fatalf("status %d, %d bytes", resp.StatusCode, len(body))
	}
}

// TestAbortedStreamDoesNotLeak cuts responses mid-body, once from the
// client side and once from the upstream side, and checks that the next
// requests through the same (single-connection) pool get clean answers:
// a half-read connection must never be reused.
func TestAbortedStreamDoesNotLeak(t *testing.T) {
	chunk := strings.Repeat("B", 32<<10)
	up := upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/big":
			for range 2000 { // 64 MiB, far more than the client reads
				if _, err := io.WriteString(w, chunk); err != nil {
					return
				}
			}
		case "/dies":
			w.Header().Set("Content-Length", "1000000")
			_, _ = io.WriteString(w, chunk)
			w.(http.Flusher).Flush()
			c, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				c.Close()
			}
		default:
			fmt.Fprintf(w, "small %s", r.URL.Path)
		}
	}))
	g := startGate(t, gateOptions{fw: forwarder.Options{MaxConnsPerHost: 1}, target: mustURL(t, up.URL)})

	// Client side: read a little of /big, then hang up.
	c, err := net.Dial("tcp", strings.TrimPrefix(g.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.WriteString(c, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
	_, _ = io.ReadFull(c, make([]byte, 100<<10))
	c.Close()

	hc := client(t)
	for i := range 5 {
		resp, body := get(t, hc, g.URL+"/s"+strconv.Itoa(i))
		if want := "small /s" + strconv.Itoa(i); resp.StatusCode != 200 || body != want {
			t.Fatalf("after client abort: %d %q, want %q", resp.StatusCode, body, want)
		}
	}

	// Upstream side: it dies 32 KiB into a 1 MB body.
	resp, err := hc.Get(g.URL + "/dies")
	if err == nil {
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	if err == nil {
		t.Errorf("a truncated upstream body reached the client as a complete one")
	}
	for i := range 5 {
		resp, body := get(t, hc, g.URL+"/d"+strconv.Itoa(i))
		if want := "small /d" + strconv.Itoa(i); resp.StatusCode != 200 || body != want {
			t.Fatalf("after upstream death: %d %q, want %q", resp.StatusCode, body, want)
		}
	}
}

// closeNotice is an upstream handler that reports when the request's
// connection closed (net/http cancels the request context then).
type closeNotice struct {
	started chan struct{}
	closed  chan struct{}
	once    sync.Once
	write   bool // send headers and one event before waiting
}

func newCloseNotice(write bool) *closeNotice {
	return &closeNotice{started: make(chan struct{}), closed: make(chan struct{}), write: write}
}

func (n *closeNotice) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if n.write {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "data: first\n\n")
		w.(http.Flusher).Flush()
	}
	n.once.Do(func() { close(n.started) })
	select {
	case <-r.Context().Done():
		close(n.closed)
	case <-time.After(30 * time.Second):
	}
}

// TestClientGoneClosesUpstream: when the client leaves, whether the
// upstream is mid-stream or has not answered at all (a long-poll), the
// upstream's connection is closed soon after, not when it next writes.
func TestClientGoneClosesUpstream(t *testing.T) {
	for _, tc := range []struct {
		name  string
		write bool
	}{{"long-poll", false}, {"idle stream", true}} {
		t.Run(tc.name, func(t *testing.T) {
			n := newCloseNotice(tc.write)
			up := upstream(t, n)
			g := startGate(t, gateOptions{target: mustURL(t, up.URL)})
			c, err := net.Dial("tcp", strings.TrimPrefix(g.URL, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.WriteString(c, "GET /wait HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
			select {
			case <-n.started:
			case <-time.After(10 * time.Second):
				t.Fatal("upstream never got the request")
			}
			if tc.write {
				br := bufio.NewReader(c)
				_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
				if _, err := http.ReadResponse(br, nil); err != nil {
					t.Fatal(err)
				}
			}
			time.Sleep(300 * time.Millisecond) // past the watch grace
			closedAt := time.Now()
			c.Close()
			select {
			case <-n.closed:
				t.Logf("upstream saw the close after %v", time.Since(closedAt))
			case <-time.After(3 * time.Second):
				t.Fatal("upstream connection still open 3s after the client left")
			}
			if !tc.write {
				select {
				case err := <-g.forwardErr:
					if !errors.Is(err, forwarder.ErrClientGone) {
						t.Errorf("Forward error %v, want ErrClientGone", err)
					}
				case <-time.After(3 * time.Second):
					t.Error("Forward did not return")
				}
			}
		})
	}
}

// TestPipelinedAfterWatch sends two pipelined requests in one write, the
// first slow enough for the client-gone watch to run: peeking must leave
// the second request for the server, and the connection must stay usable
// (its read deadline restored) for a third request sent later.
func TestPipelinedAfterWatch(t *testing.T) {
	up := upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			time.Sleep(300 * time.Millisecond)
		}
		fmt.Fprintf(w, "answer %s", r.URL.Path)
	}))
	g := startGate(t, gateOptions{target: mustURL(t, up.URL)})
	c, err := net.Dial("tcp", strings.TrimPrefix(g.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(c)
	read := func(want string) {
		t.Helper()
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		if string(b) != want {
			t.Fatalf("body %q, want %q", b, want)
		}
	}
	// The slow one alone first, so its watch sees an idle socket and parks.
	_, _ = io.WriteString(c, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
	read("answer /slow")
	_, _ = io.WriteString(c, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\nGET /next HTTP/1.1\r\nHost: x\r\n\r\n")
	read("answer /slow")
	read("answer /next")
	time.Sleep(200 * time.Millisecond)
	_, _ = io.WriteString(c, "GET /later HTTP/1.1\r\nHost: x\r\n\r\n")
	read("answer /later")
}

// TestManyConcurrentStreams keeps a few hundred event streams open at once.
func TestManyConcurrentStreams(t *testing.T) {
	const streams = 300
	release := make(chan struct{})
	up := upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "data: open\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-release:
			_, _ = io.WriteString(w, "data: bye\n\n")
		case <-r.Context().Done():
		}
	}))
	g := startGate(t, gateOptions{target: mustURL(t, up.URL), edit: func(c *fiber.Ctx, r *forwarder.Request) {}})
	tr := &http.Transport{MaxConnsPerHost: 0, MaxIdleConnsPerHost: streams}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	var wg sync.WaitGroup
	var open, done atomic.Int32
	errs := make(chan error, streams)
	for range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := hc.Get(g.URL + "/s")
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			br := bufio.NewReader(resp.Body)
			if l, err := br.ReadString('\n'); err != nil || l != "data: open\n" {
				errs <- fmt.Errorf("first line %q: %v", l, err)
				return
			}
			open.Add(1)
			b, err := io.ReadAll(br)
			if err != nil || !strings.Contains(string(b), "data: bye") {
				errs <- fmt.Errorf("rest %q: %v", b, err)
				return
			}
			done.Add(1)
		}()
	}
	if !waitFor(20*time.Second, func() bool { return open.Load()+int32(len(errs)) == streams }) {
		t.Fatalf("only %d of %d streams opened", open.Load(), streams)
	}
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if done.Load() != streams {
		t.Errorf("%d of %d streams completed", done.Load(), streams)
	}
}
