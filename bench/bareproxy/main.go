// Command bareproxy is the benchmark's baseline: a bare
// httputil.ReverseProxy in front of the upstream, with the same connection
// pool sizes as Gatehouse's transport and a pool of copy buffers (without
// one, every request allocates 32 KiB and the baseline is slower than it
// need be), and nothing else, so the difference to Gatehouse is the cost
// of the gate itself.
package main

import (
	"flag"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"sync"
	"time"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:3901", "address to listen on")
	upstream := flag.String("upstream", "http://127.0.0.1:3900", "upstream URL")
	flag.Parse()
	up, err := url.Parse(*upstream)
	if err != nil || up.Host == "" {
		log.Printf("bad -upstream %q", *upstream)
		os.Exit(2)
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(up)
			pr.SetXForwarded()
		},
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        1024,
			MaxIdleConnsPerHost: 512,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
		},
		BufferPool: &bufferPool{p: sync.Pool{New: func() any { return new([32 << 10]byte) }}},
	}
	srv := &http.Server{Addr: *listen, Handler: rp, ReadHeaderTimeout: 10 * time.Second}
	if err := srv.ListenAndServe(); err != nil {
		log.Print(err)
		os.Exit(1)
	}
}

// bufferPool recycles the 32 KiB buffers bodies are copied through.
type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte { return b.p.Get().(*[32 << 10]byte)[:] }

func (b *bufferPool) Put(v []byte) {
	if cap(v) >= 32<<10 {
		b.p.Put((*[32 << 10]byte)(v[:32<<10]))
	}
}
