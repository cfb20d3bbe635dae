// Command bareproxy is the benchmark's baseline proxies, with nothing but
// proxying in them:
//
//   - -engine nethttp (default): a bare httputil.ReverseProxy, with a
//     keep-alive pool of 1024 connections like Gatehouse's and a pool of
//     copy buffers (without one, every request allocates 32 KiB and the
//     baseline is slower than it need be);
//   - -engine fasthttp: a bare fasthttp server whose handler hands each
//     request to a fasthttp.HostClient (bodies buffered, no streaming, no
//     header hygiene, no log): the floor of the engine Gatehouse runs on.
//
// The difference to Gatehouse is the cost of the gate itself.
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

	"github.com/valyala/fasthttp"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:3901", "address to listen on")
	upstream := flag.String("upstream", "http://127.0.0.1:3900", "upstream URL")
	engine := flag.String("engine", "nethttp", "nethttp or fasthttp")
	flag.Parse()
	up, err := url.Parse(*upstream)
	if err != nil || up.Host == "" {
		log.Printf("bad -upstream %q", *upstream)
		os.Exit(2)
	}
	if *engine == "fasthttp" {
		serveFasthttp(*listen, up)
		return
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

// serveFasthttp proxies with fasthttp alone: server and client.
func serveFasthttp(listen string, up *url.URL) {
	hc := &fasthttp.HostClient{Addr: up.Host, MaxConns: 1024, MaxIdleConnDuration: 90 * time.Second}
	srv := &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			req := &ctx.Request
			req.SetHost(up.Host)
			req.Header.Set("X-Forwarded-For", ctx.RemoteIP().String())
			if err := hc.Do(req, &ctx.Response); err != nil {
				ctx.Error("bad gateway", fasthttp.StatusBadGateway)
			}
		},
		NoDefaultServerHeader: true,
		NoDefaultDate:         true,
		ReadTimeout:           90 * time.Second,
	}
	if err := srv.ListenAndServe(listen); err != nil {
		log.Print(err)
		os.Exit(1)
	}
}
