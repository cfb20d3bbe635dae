// Package apptest runs a stand-in for the app behind Gatehouse in tests: a
// real HTTP server on 127.0.0.1 that records every request it receives.
package apptest

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// App is a recording upstream. Unless Handle is set, it answers 200 with the
// body "app <path>".
type App struct {
	*httptest.Server

	// Handle, when set, answers instead of the default. Set it before the
	// requests it should answer, or use SetHandler while requests run.
	Handle http.HandlerFunc

	mu   sync.Mutex
	reqs []*http.Request
}

// Start runs an app until the test ends.
func Start(t testing.TB) *App {
	a := &App{}
	a.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.reqs = append(a.reqs, r.Clone(context.Background()))
		h := a.Handle
		a.mu.Unlock()
		if h != nil {
			h(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, Body(r.URL.Path))
	}))
	t.Cleanup(a.Close)
	return a
}

// Body is what the default handler answers for path.
func Body(path string) string { return "app " + path }

// SetHandler replaces Handle safely while requests are being served.
func (a *App) SetHandler(h http.HandlerFunc) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.Handle = h
}

// Requests returns every request received so far.
func (a *App) Requests() []*http.Request {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]*http.Request(nil), a.reqs...)
}

// Count is how many requests arrived.
func (a *App) Count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.reqs)
}

// Last returns the newest request, failing the test if there is none.
func (a *App) Last(t testing.TB) *http.Request {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.reqs) == 0 {
		t.Fatal("the app received no request")
	}
	return a.reqs[len(a.reqs)-1]
}
