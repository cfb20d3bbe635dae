package gateway

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"math/rand/v2"
	"mime/multipart"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// patternReader yields n deterministic, incompressible bytes without
// holding them in memory: a 1 MiB random block read at a shifting offset.
type patternReader struct {
	block []byte
	off   int64
	n     int64
}

func newPatternReader(seed uint64, n int64) *patternReader {
	block := make([]byte, 1<<20)
	rng := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)})
	_, _ = rng.Read(block)
	return &patternReader{block: block, n: n}
}

func (p *patternReader) Read(b []byte) (int, error) {
	if p.off >= p.n {
		return 0, io.EOF
	}
	b = b[:min(int64(len(b)), p.n-p.off)]
	for i := 0; i < len(b); {
		// Shift by one byte every pass over the block so no two MiB repeat.
		pos := (p.off + int64(i) + (p.off+int64(i))/int64(len(p.block))) % int64(len(p.block))
		i += copy(b[i:], p.block[pos:])
	}
	p.off += int64(len(b))
	return len(b), nil
}

// heapWatch samples the heap in use while a transfer runs; the gateway
// runs in this process, so its buffers are counted here.
type heapWatch struct {
	base uint64
	stop chan struct{}
	done chan uint64
}

func watchHeap() *heapWatch {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	w := &heapWatch{base: m.HeapInuse, stop: make(chan struct{}), done: make(chan uint64)}
	go func() {
		peak := m.HeapInuse
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-w.stop:
				w.done <- peak
				return
			case <-tick.C:
				runtime.ReadMemStats(&m)
				peak = max(peak, m.HeapInuse)
			}
		}
	}()
	return w
}

// growth returns the peak heap growth over the baseline.
func (w *heapWatch) growth() uint64 {
	close(w.stop)
	return <-w.done - w.base
}

type digest struct {
	Bytes int64  `json:"bytes"`
	Sum   string `json:"sum"`
}

func sumOf(h hash.Hash, n int64) digest { return digest{Bytes: n, Sum: hex.EncodeToString(h.Sum(nil))} }

// TestLargeBodiesStream sends 256 MiB up and 256 MiB down through the
// gateway and checks every byte arrives while the heap stays small: the
// bodies are streamed, never buffered.
func TestLargeBodiesStream(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 512 MiB through loopback")
	}
	const size = 256 << 20
	const heapLimit = 32 << 20
	h := newHarness(t)
	var mu sync.Mutex
	var served digest
	h.up.Handle = func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodPut:
			sum := sha256.New()
			n, err := io.Copy(sum, r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			_ = json.NewEncoder(w).Encode(sumOf(sum, n))
		case http.MethodGet:
			w.Header().Set("Content-Type", "application/octet-stream")
			if r.URL.Query().Get("length") == "known" {
				w.Header().Set("Content-Length", strconv.Itoa(size))
			}
			sum := sha256.New()
			n, _ := io.Copy(io.MultiWriter(w, sum), newPatternReader(2, size))
			mu.Lock()
			served = sumOf(sum, n)
			mu.Unlock()
		}
	}
	b := h.browser()
	b.signIn("uma@example.com", "/")
	client := &http.Client{Jar: b.c.Jar, Timeout: 5 * time.Minute}
	// The harness serves the gateway the way the binary does, behind the
	// framing guard, so its buffers are measured too.
	base := h.URL

	for _, tc := range []struct {
		name, method, path string
		chunked            bool
	}{
		{"upload with length", http.MethodPut, "/files/up", false},
		{"upload chunked", http.MethodPut, "/files/up-chunked", true},
		{"download with length", http.MethodGet, "/files/down?length=known", false},
		{"download chunked", http.MethodGet, "/files/down-chunked", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			watch := watchHeap()
			var req *http.Request
			sent := sha256.New()
			if tc.method == http.MethodPut {
				body := io.TeeReader(newPatternReader(1, size), sent)
				req, _ = http.NewRequest(tc.method, base+tc.path, io.NopCloser(body))
				req.ContentLength = size
				if tc.chunked {
					req.ContentLength = -1
				}
			} else {
				req, _ = http.NewRequest(tc.method, base+tc.path, nil)
			}
			resp, err := client.Do(req)
			if err != nil {
				watch.growth()
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				watch.growth()
				t.Fatalf("status %d", resp.StatusCode)
			}
			var got, want digest
			if tc.method == http.MethodPut {
				if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
					t.Fatal(err)
				}
				want = sumOf(sent, size)
			} else {
				sum := sha256.New()
				n, err := io.Copy(sum, resp.Body)
				if err != nil {
					t.Fatal(err)
				}
				got = sumOf(sum, n)
				// The handler records what it sent after its last write,
				// which the client may have read already.
				deadline := time.Now().Add(10 * time.Second)
				for {
					mu.Lock()
					want = served
					served = digest{}
					mu.Unlock()
					if want.Bytes != 0 || time.Now().After(deadline) {
						break
					}
					time.Sleep(5 * time.Millisecond)
				}
				if tc.chunked != (resp.ContentLength == -1) {
					t.Errorf("Content-Length %d, chunked %v", resp.ContentLength, tc.chunked)
				}
			}
			growth := watch.growth()
			if got != want || got.Bytes != size {
				t.Fatalf("received %d bytes sha256 %.16s…, sent %d bytes %.16s…", got.Bytes, got.Sum, want.Bytes, want.Sum)
			}
			t.Logf("%s: heap grew by %.1f MiB at most", tc.name, float64(growth)/(1<<20))
			if growth > heapLimit {
				t.Fatalf("heap grew by %d MiB while streaming %d MiB; limit %d MiB", growth>>20, size>>20, heapLimit>>20)
			}
		})
	}
}

// TestMaxRequestBody answers 413 once a body passes upstream.max_request_body,
// whether the client announced the length or streamed it chunked.
func TestMaxRequestBody(t *testing.T) {
	const limit = 64 << 10
	h := newHarness(t, func(o *Options) { o.Settings.MaxRequestBody = limit })
	var mu sync.Mutex
	var upstreamGot []int64
	h.up.Handle = func(w http.ResponseWriter, r *http.Request) {
		n, err := io.Copy(io.Discard, r.Body)
		mu.Lock()
		upstreamGot = append(upstreamGot, n)
		mu.Unlock()
		if err != nil {
			return
		}
		fmt.Fprintf(w, "got %d", n)
	}
	b := h.browser()
	b.signIn("max@example.com", "/")
	for _, tc := range []struct {
		name    string
		size    int64
		chunked bool
		accept  string
		want    int
	}{
		{"at the limit with length", limit, false, "", http.StatusOK},
		{"at the limit chunked", limit, true, "", http.StatusOK},
		{"over with length", limit + 1, false, "", http.StatusRequestEntityTooLarge},
		{"far over with length", 8 << 20, false, "", http.StatusRequestEntityTooLarge},
		{"over chunked", limit + 1, true, "", http.StatusRequestEntityTooLarge},
		{"far over chunked", 8 << 20, true, "", http.StatusRequestEntityTooLarge},
		{"over chunked from a browser", 1 << 20, true, "text/html", http.StatusRequestEntityTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mu.Lock()
			upstreamGot = nil
			mu.Unlock()
			req, _ := http.NewRequest(http.MethodPost, h.URL+"/upload", io.NopCloser(newPatternReader(3, tc.size)))
			req.ContentLength = tc.size
			if tc.chunked {
				req.ContentLength = -1
			}
			if tc.accept != "" {
				req.Header.Set("Accept", tc.accept)
			}
			resp, err := b.c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("status = %d, want %d: %.200s", resp.StatusCode, tc.want, body)
			}
			mu.Lock()
			got := append([]int64(nil), upstreamGot...)
			mu.Unlock()
			switch {
			case tc.want == http.StatusOK:
				if string(body) != fmt.Sprintf("got %d", tc.size) {
					t.Fatalf("upstream answered %q", body)
				}
			case !tc.chunked:
				// A declared length over the limit is refused before any
				// byte is forwarded.
				if len(got) != 0 {
					t.Fatalf("upstream was reached: %v", got)
				}
			default:
				// A chunked body is cut at the limit: the upstream never
				// sees a complete body past it.
				for _, n := range got {
					if n > limit {
						t.Fatalf("upstream read %d bytes, over the %d limit", n, limit)
					}
				}
			}
			if tc.want == http.StatusRequestEntityTooLarge {
				if tc.accept == "text/html" {
					if !strings.Contains(string(body), "<html") {
						t.Fatalf("413 for a browser is not a page: %.200s", body)
					}
				} else {
					var e map[string]string
					if err := json.Unmarshal(body, &e); err != nil || e["error"] != "too_large" {
						t.Fatalf("413 body = %.200s", body)
					}
				}
			}
		})
	}
}

// TestMultipartBodyArrivesByteForByte: a multipart upload is forwarded as
// the client sent it — boundary, part headers, binary content and all —
// never parsed and re-encoded by the gateway.
func TestMultipartBodyArrivesByteForByte(t *testing.T) {
	h := newHarness(t)
	var mu sync.Mutex
	var gotBody []byte
	var gotType string
	h.up.Handle = func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		gotBody, gotType = b, r.Header.Get("Content-Type")
		mu.Unlock()
		_, _ = io.WriteString(w, "ok")
	}
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	_ = mw.WriteField("title", "report\r\n--not-a-boundary")
	part, _ := mw.CreateFormFile("file", "data.bin")
	bin := make([]byte, 70000)
	for i := range bin {
		bin[i] = byte(i * 7)
	}
	_, _ = part.Write(bin)
	_ = mw.Close()
	sent := append([]byte(nil), body.Bytes()...)

	b := h.browser()
	b.signIn("mia@example.com", "/")
	req, _ := http.NewRequest(http.MethodPost, h.URL+"/upload", bytes.NewReader(sent))
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp := b.do(req)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, resp.body)
	}
	mu.Lock()
	defer mu.Unlock()
	if gotType != mw.FormDataContentType() {
		t.Errorf("Content-Type at the app = %q, want %q", gotType, mw.FormDataContentType())
	}
	if !bytes.Equal(gotBody, sent) {
		t.Fatalf("the app got %d bytes, not the %d sent, byte for byte", len(gotBody), len(sent))
	}
}

// TestMalformedBodiesAreTheClientsFault: a request body that is not valid
// chunked encoding gets 400 (the client's error), never a 502 that would
// count against the app or an empty 200; an oversized chunked body to
// Gatehouse's own endpoints gets 413.
func TestMalformedBodiesAreTheClientsFault(t *testing.T) {
	logs := &captureHandler{}
	h := newHarness(t, func(o *Options) { o.Logger = slog.New(logs) })
	for _, body := range []string{"zz\r\nabc\r\n0\r\n\r\n", "3\r\nabcXX\r\n0\r\n\r\n", "-1\r\n\r\n"} {
		resps := rawExchange(t, h.addr(), "POST /public/x HTTP/1.1\r\nHost: "+h.addr()+"\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"+body)
		if len(resps) != 1 || resps[0].status != http.StatusBadRequest {
			t.Errorf("body %q: %+v, want one 400", body, resps)
		}
	}
	logs.mu.Lock()
	for _, r := range logs.recs {
		if r.Message == "upstream unreachable" {
			t.Errorf("a client's malformed body was logged as the app's failure")
		}
	}
	logs.mu.Unlock()
	for _, line := range logs.requestLines() {
		if line["path"] == "/public/x" && line["status"] != "400" {
			t.Errorf("access line %v, want status 400", line)
		}
	}
	big := strings.Repeat("x", 70<<10)
	raw := fmt.Sprintf("POST /.gatehouse/api/otp/send HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nOrigin: %s\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n%x\r\n%s\r\n0\r\n\r\n", h.addr(), h.URL, len(big), big)
	if resps := rawExchange(t, h.addr(), raw); len(resps) != 1 || resps[0].status != http.StatusRequestEntityTooLarge {
		t.Errorf("70 KiB chunked to the API: %+v, want one 413", resps)
	}
	raw = fmt.Sprintf("POST /.gatehouse/api/otp/send HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nOrigin: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", h.addr(), h.URL, len(big), big)
	if resps := rawExchange(t, h.addr(), raw); len(resps) != 1 || resps[0].status != http.StatusRequestEntityTooLarge {
		t.Errorf("70 KiB with Content-Length to the API: %+v, want one 413", resps)
	}
	if n := len(h.mail.Messages()); n != 0 {
		t.Errorf("%d mails sent for refused bodies", n)
	}
}
