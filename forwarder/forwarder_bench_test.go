package forwarder_test

import (
	"testing"

	"github.com/valyala/fasthttp"
)

// BenchmarkForward measures a small GET through Fiber and the forwarder to
// a fasthttp upstream, against the same GET sent to the upstream directly;
// the difference is the proxy's cost. allocs/op counts the whole process
// (client, Fiber, forwarder and upstream).
func BenchmarkForward(b *testing.B) {
	ln := listen(b)
	up := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		ctx.SetContentType("text/plain")
		ctx.SetBodyString("hello, world")
	}}
	go func() { _ = up.Serve(ln) }()
	b.Cleanup(func() { _ = up.Shutdown() })
	upURL := "http://" + ln.Addr().String()
	g := startGate(b, gateOptions{target: mustURL(b, upURL)})

	for _, bc := range []struct{ name, url string }{
		{"direct", upURL},
		{"forwarded", g.URL},
	} {
		b.Run(bc.name, func(b *testing.B) {
			hc := &fasthttp.HostClient{Addr: bc.url[len("http://"):]}
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			req.SetRequestURI(bc.url + "/small?q=1")
			for range 100 { // warm the pools
				if err := hc.Do(req, resp); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if err := hc.Do(req, resp); err != nil {
					b.Fatal(err)
				}
				if resp.StatusCode() != 200 || string(resp.Body()) != "hello, world" {
					b.Fatalf("answer %d %q", resp.StatusCode(), resp.Body())
				}
			}
		})
	}
}
