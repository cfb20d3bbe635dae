// Package logwriter batches a process's log lines into few writes: under
// load, one write system call per request for its access log line costs
// more than the line itself.
package logwriter

import (
	"io"
	"sync"
	"time"
)

// Writer collects whole writes (slog handlers write one line per call) and
// writes them out in order, at most Delay after the first one arrived, in
// one write to the underlying writer. A writer that gets Size bytes ahead
// of its output makes the next Write wait, so memory stays bounded and no
// line is dropped. It is safe for concurrent use.
type Writer struct {
	out   io.Writer
	delay time.Duration
	size  int

	mu     sync.Mutex
	buf    []byte
	spare  []byte
	err    error // the last error of the underlying writer
	closed bool
	timer  *time.Timer
	// writing is held while a batch is written, so Flush and Close can
	// wait for the write in progress.
	writing sync.Mutex
}

// New returns a Writer in front of out. A delay of 0 writes every line at
// once, as if out were used directly; size 0 means 64 KiB.
func New(out io.Writer, delay time.Duration, size int) *Writer {
	if size <= 0 {
		size = 64 << 10
	}
	return &Writer{out: out, delay: delay, size: size}
}

// Write queues p. It fails only after Close, or when the underlying
// writer failed (the error is reported once, on the next Write).
func (w *Writer) Write(p []byte) (int, error) {
	if w.delay <= 0 {
		w.writing.Lock()
		defer w.writing.Unlock()
		return w.out.Write(p)
	}
	w.mu.Lock()
	for !w.closed && len(w.buf) > 0 && len(w.buf)+len(p) > w.size {
		// Too far ahead of the output: write the batch now.
		w.mu.Unlock()
		w.Flush()
		w.mu.Lock()
	}
	if w.closed {
		w.mu.Unlock()
		return 0, io.ErrClosedPipe
	}
	if err := w.err; err != nil {
		w.err = nil
		w.mu.Unlock()
		return 0, err
	}
	w.buf = append(w.buf, p...)
	if w.timer == nil {
		w.timer = time.AfterFunc(w.delay, w.Flush)
	} else if len(w.buf) == len(p) {
		w.timer.Reset(w.delay)
	}
	w.mu.Unlock()
	return len(p), nil
}

// Flush writes everything queued so far and returns when it is written.
func (w *Writer) Flush() {
	w.writing.Lock()
	defer w.writing.Unlock()
	w.mu.Lock()
	if len(w.buf) == 0 {
		w.mu.Unlock()
		return
	}
	// Swap in the spare buffer; the two must never share an array while
	// b is being written and w.buf is appended to.
	b := w.buf
	w.buf, w.spare = w.spare[:0], nil
	w.mu.Unlock()
	_, err := w.out.Write(b)
	w.mu.Lock()
	if err != nil {
		w.err = err
	}
	// b becomes the next spare; one grown too large is dropped. Either
	// way spare must stop pointing at the array w.buf now uses.
	if cap(b) <= 2*w.size {
		w.spare = b[:0]
	} else {
		w.spare = nil
	}
	w.mu.Unlock()
}

// Close writes what is queued; later Writes fail.
func (w *Writer) Close() error {
	w.mu.Lock()
	w.closed = true
	if w.timer != nil {
		w.timer.Stop()
	}
	w.mu.Unlock()
	w.Flush()
	return nil
}
