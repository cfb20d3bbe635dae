package logwriter

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// recorder is the underlying writer: it keeps every write separately.
type recorder struct {
	mu     sync.Mutex
	writes []string
	fail   error
}

func (r *recorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return 0, r.fail
	}
	r.writes = append(r.writes, string(p))
	return len(p), nil
}

func (r *recorder) snapshot() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.writes...)
}

func TestLinesAreBatchedAndWrittenAfterTheDelay(t *testing.T) {
	out := &recorder{}
	w := New(out, 50*time.Millisecond, 0)
	for i := range 100 {
		fmt.Fprintf(w, "line %d\n", i)
	}
	if got := out.snapshot(); len(got) != 0 {
		t.Fatalf("written before the delay: %d writes", len(got))
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(out.snapshot()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("nothing written after the delay")
		}
		time.Sleep(5 * time.Millisecond)
	}
	got := out.snapshot()
	if len(got) != 1 {
		t.Fatalf("%d writes, want the 100 lines in one", len(got))
	}
	var want strings.Builder
	for i := range 100 {
		fmt.Fprintf(&want, "line %d\n", i)
	}
	if got[0] != want.String() {
		t.Fatalf("batch = %q", got[0])
	}
}

func TestCloseWritesWhatIsQueued(t *testing.T) {
	out := &recorder{}
	w := New(out, time.Hour, 0)
	_, _ = w.Write([]byte("last words\n"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(out.snapshot(), ""); got != "last words\n" {
		t.Fatalf("after Close: %q", got)
	}
	if _, err := w.Write([]byte("late\n")); err == nil {
		t.Fatal("Write after Close succeeded")
	}
}

// A writer that gets size bytes ahead writes at once instead of growing:
// every line arrives, whole and in order, in batches of at most size.
func TestFullBufferIsWrittenAtOnce(t *testing.T) {
	out := &recorder{}
	const size = 1 << 10
	w := New(out, time.Hour, size)
	line := strings.Repeat("x", 99) + "\n"
	for range 100 {
		_, _ = w.Write([]byte(line))
	}
	_ = w.Close()
	got := out.snapshot()
	if len(got) < 10 {
		t.Fatalf("%d writes for 10 KB through a 1 KiB buffer", len(got))
	}
	all := strings.Join(got, "")
	if all != strings.Repeat(line, 100) {
		t.Fatalf("lines lost or torn: %d bytes", len(all))
	}
	for i, b := range got {
		if len(b) > size {
			t.Fatalf("write %d has %d bytes, more than the buffer", i, len(b))
		}
		if !strings.HasSuffix(b, "\n") {
			t.Fatalf("write %d ends inside a line", i)
		}
	}
}

func TestConcurrentWritersKeepLinesWhole(t *testing.T) {
	var buf bytes.Buffer
	var mu sync.Mutex
	out := writerFunc(func(p []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return buf.Write(p) })
	w := New(out, time.Millisecond, 512)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				fmt.Fprintf(w, "g%d-%d %s\n", g, i, strings.Repeat("y", 20))
			}
		})
	}
	wg.Wait()
	_ = w.Close()
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 8*200 {
		t.Fatalf("%d lines, want %d", len(lines), 8*200)
	}
	for _, l := range lines {
		if !strings.HasSuffix(l, strings.Repeat("y", 20)) {
			t.Fatalf("torn line %q", l)
		}
	}
}

func TestUnderlyingErrorIsReported(t *testing.T) {
	out := &recorder{fail: errors.New("disk full")}
	w := New(out, time.Hour, 0)
	_, _ = w.Write([]byte("a\n"))
	w.Flush()
	if _, err := w.Write([]byte("b\n")); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("Write after a failed flush: %v", err)
	}
}

func TestZeroDelayWritesThrough(t *testing.T) {
	out := &recorder{}
	w := New(out, 0, 0)
	_, _ = w.Write([]byte("now\n"))
	if got := out.snapshot(); len(got) != 1 || got[0] != "now\n" {
		t.Fatalf("writes = %q", got)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// gate is an underlying writer whose Write waits to be released, then
// keeps what it was given at that moment.
type gate struct {
	entered chan struct{}
	release chan struct{}
	mu      sync.Mutex
	got     []string
}

func (g *gate) Write(p []byte) (int, error) {
	g.entered <- struct{}{}
	<-g.release
	g.mu.Lock()
	g.got = append(g.got, string(p))
	g.mu.Unlock()
	return len(p), nil
}

// TestBatchBeingWrittenIsNeverReused: lines logged while a batch is being
// written go to another buffer, also after a flush that found nothing to
// write (which once left both buffers on one array).
func TestBatchBeingWrittenIsNeverReused(t *testing.T) {
	g := &gate{entered: make(chan struct{}), release: make(chan struct{})}
	w := New(g, time.Hour, 1<<10)
	flush := func() chan struct{} {
		done := make(chan struct{})
		go func() { w.Flush(); close(done) }()
		return done
	}
	_, _ = w.Write([]byte("first\n"))
	done := flush()
	<-g.entered
	g.release <- struct{}{}
	<-done
	w.Flush() // nothing queued
	_, _ = w.Write([]byte("second\n"))
	done = flush()
	<-g.entered                        // the batch "second\n" is being written...
	_, _ = w.Write([]byte("THIRD!\n")) // ...while another line arrives
	g.release <- struct{}{}
	<-done
	done = flush()
	<-g.entered
	g.release <- struct{}{}
	<-done
	if want := []string{"first\n", "second\n", "THIRD!\n"}; strings.Join(g.got, "|") != strings.Join(want, "|") {
		t.Fatalf("batches written = %q, want %q", g.got, want)
	}
}
