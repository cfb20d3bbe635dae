package forwarder

import (
	"io"
)

// requestBody streams the client's body to the upstream, counting it
// against MaxBody and passing the client's trailers on at its end. It
// records why it stopped so the failure is blamed on the right side.
type requestBody struct {
	x        *exchange
	src      io.Reader
	max, n   int64
	tooLarge bool
	// clientErr is a failure reading from the client (it left, or sent a
	// malformed body): not the upstream's fault.
	clientErr error
}

func (b *requestBody) reset(src io.Reader, maxBody int64) {
	b.src, b.max, b.n, b.tooLarge, b.clientErr = src, maxBody, 0, false, nil
}

func (b *requestBody) Read(p []byte) (int, error) {
	n, err := b.src.Read(p)
	b.n += int64(n)
	if b.max > 0 && b.n > b.max {
		b.tooLarge = true
		return 0, ErrTooLarge
	}
	switch {
	case err == io.EOF:
		b.trailers()
	case err != nil:
		b.clientErr = err
	}
	return n, err
}

// SupportsBodyWriteTo lets fasthttp copy through WriteTo, with a pooled
// buffer larger than its own 4 KiB one.
func (b *requestBody) SupportsBodyWriteTo() bool { return true }

func (b *requestBody) WriteTo(w io.Writer) (int64, error) {
	return copyPooled(b.x.f, w, b)
}

// trailers passes the client's trailers (parsed by fasthttp once the
// chunked body ended) to the outbound request, which writes them after
// its last chunk.
func (b *requestBody) trailers() {
	in := &b.x.ctx.Request.Header
	out := &b.x.req.Header
	copyTrailers(in.Trailers(), in.PeekAll, out.AddTrailerBytes, out.AddBytesKV, &b.x.scratch2)
}

// responseBody is the upstream's body as fasthttp's server reads it after
// the handler returned. Its CloseWithError, which fasthttp calls once the
// body was written or the write failed, ends the exchange.
type responseBody struct {
	x    *exchange
	src  io.Reader
	eof  bool
	open bool
}

func (b *responseBody) reset(src io.Reader) {
	b.src, b.eof, b.open = src, false, true
}

func (b *responseBody) Read(p []byte) (int, error) {
	n, err := b.src.Read(p)
	if err == io.EOF {
		b.eof = true
		b.trailers()
	}
	return n, err
}

// SupportsBodyWriteTo makes fasthttp hand its writer to WriteTo: each read
// from the upstream is then written (and, chunked, flushed) at once, so an
// event stream reaches the client event by event.
func (b *responseBody) SupportsBodyWriteTo() bool { return true }

func (b *responseBody) WriteTo(w io.Writer) (int64, error) {
	return copyPooled(b.x.f, w, b)
}

// CloseWithError implements fasthttp.ReadCloserWithError. The connection is
// reused only when the body was read to its very end and written without
// error.
func (b *responseBody) CloseWithError(err error) error {
	if !b.open {
		return nil
	}
	b.open = false
	x := b.x
	x.finish(err == nil && b.eof && x.reusable(false), err == nil && b.eof)
	return nil
}

// trailers passes the upstream's trailers to the client's response, which
// fasthttp writes after the last chunk, right after this read returns.
func (b *responseBody) trailers() {
	src := &b.x.resp.Header
	dst := &b.x.ctx.Response.Header
	copyTrailers(src.Trailers(), src.PeekAll, dst.AddTrailerBytes, dst.AddBytesKV, &b.x.scratch2)
}

// copyPooled copies r to w with one of f's buffers, writing every read at
// once.
func copyPooled(f *Forwarder, w io.Writer, r io.Reader) (int64, error) {
	buf := f.copyBufs.Get().(*[copyBufSize]byte)
	defer f.copyBufs.Put(buf)
	var total int64
	for {
		n, err := r.Read(buf[:])
		if n > 0 {
			m, werr := w.Write(buf[:n])
			total += int64(m)
			if werr != nil {
				return total, werr
			}
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}
