// Command upstream is the tiny app the benchmark puts behind the proxies:
// it answers every path with a small fixed body, streams large bodies on
// /big and swallows them on /sink, so the load test measures the proxies
// and not the app.
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"strconv"
	"time"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:3900", "address to listen on")
	size := flag.Int("size", 13, "bytes in the small response body")
	flag.Parse()
	srv := &http.Server{
		Addr:              *listen,
		Handler:           handler(*size),
		ReadHeaderTimeout: 10 * time.Second,
	}
	if err := srv.ListenAndServe(); err != nil {
		log.Print(err)
		os.Exit(1)
	}
}

func handler(size int) http.Handler {
	small := make([]byte, size)
	for i := range small {
		small[i] = "hello, world\n"[i%13]
	}
	zeros := make([]byte, 64<<10)
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Content-Length", strconv.Itoa(len(small)))
		_, _ = w.Write(small)
	})
	// GET /big?bytes=N streams N zero bytes (chunked unless length=1).
	mux.HandleFunc("GET /big", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.ParseInt(r.URL.Query().Get("bytes"), 10, 64)
		if err != nil || n < 0 {
			http.Error(w, "bytes=N required", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		if r.URL.Query().Get("length") == "1" {
			w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		}
		for n > 0 {
			k := min(n, int64(len(zeros)))
			if _, err := w.Write(zeros[:k]); err != nil {
				return
			}
			n -= k
		}
	})
	// PUT or POST /sink reads the whole body and answers its length and
	// SHA-256.
	mux.HandleFunc("/sink", func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, err := io.Copy(h, r.Body)
		if err != nil {
			http.Error(w, "read body: "+err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, "%d %s\n", n, hex.EncodeToString(h.Sum(nil)))
	})
	return mux
}
