package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"testing"
	"time"

	"gatehouse/access"
	"gatehouse/authstore"
)

// fakeMigrations reports a fixed schema state; it injects the failures a
// real store cannot be made to show while it serves.
type fakeMigrations struct {
	states []authstore.MigrationState
	err    error
}

func (f fakeMigrations) MigrationStatus(context.Context) ([]authstore.MigrationState, error) {
	return f.states, f.err
}

func TestReadyz(t *testing.T) {
	applied := fakeMigrations{states: []authstore.MigrationState{{Name: "0001_init", Applied: true}}}
	tests := []struct {
		name       string
		edit       func(*Options)
		closeStore bool
		want       int
		checks     map[string]string
	}{
		{
			name:   "store only",
			edit:   func(*Options) {},
			want:   http.StatusOK,
			checks: map[string]string{"store": "ok"},
		},
		{
			name:   "migrations applied, upstream healthy",
			edit:   func(o *Options) { o.Migrations = applied; o.UpstreamHealthPath = "/health" },
			want:   http.StatusOK,
			checks: map[string]string{"store": "ok", "migrations": "ok", "upstream": "ok"},
		},
		{
			name: "migration pending",
			edit: func(o *Options) {
				o.Migrations = fakeMigrations{states: []authstore.MigrationState{{Name: "0001_init", Applied: true}, {Name: "0002_next"}}}
			},
			want:   http.StatusServiceUnavailable,
			checks: map[string]string{"store": "ok", "migrations": "pending"},
		},
		{
			name:   "migration state unreadable",
			edit:   func(o *Options) { o.Migrations = fakeMigrations{err: errors.New("boom")} },
			want:   http.StatusServiceUnavailable,
			checks: map[string]string{"migrations": "unknown"},
		},
		{
			name:       "store closed",
			edit:       func(*Options) {},
			closeStore: true,
			want:       http.StatusServiceUnavailable,
			checks:     map[string]string{"store": "unreachable"},
		},
		{
			name: "upstream unreachable",
			edit: func(o *Options) {
				o.Upstream = &url.URL{Scheme: "http", Host: "127.0.0.1:1"}
				o.UpstreamHealthPath = "/health"
			},
			want:   http.StatusServiceUnavailable,
			checks: map[string]string{"upstream": "unreachable"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, tt.edit)
			if tt.closeStore {
				_ = h.store.Close()
			}
			b := h.browser()
			req, _ := http.NewRequest(http.MethodGet, h.URL+"/.gatehouse/readyz", nil)
			resp := b.do(req)
			if resp.StatusCode != tt.want {
				t.Fatalf("readyz %d %s, want %d", resp.StatusCode, resp.body, tt.want)
			}
			var body struct {
				Status string            `json:"status"`
				Checks map[string]string `json:"checks"`
			}
			if err := json.Unmarshal([]byte(resp.body), &body); err != nil {
				t.Fatalf("body %q: %v", resp.body, err)
			}
			for k, v := range tt.checks {
				if body.Checks[k] != v {
					t.Errorf("check %s = %q, want %q (body %s)", k, body.Checks[k], v, resp.body)
				}
			}
			if wantStatus := map[bool]string{true: "ready", false: "not_ready"}[tt.want == http.StatusOK]; body.Status != wantStatus {
				t.Errorf("status %q, want %q", body.Status, wantStatus)
			}
			if resp.Header.Get("Cache-Control") != "no-store" {
				t.Error("readyz may be cached")
			}
		})
	}
}

func TestReadyzRejectsHealthPathOffTheUpstream(t *testing.T) {
	for _, p := range []string{"http://evil.example/health", "//evil.example/health"} {
		t.Run(p, func(t *testing.T) {
			h := newHarness(t)
			opts := h.opts
			opts.UpstreamHealthPath = p
			if _, err := New(opts); err == nil {
				t.Errorf("New accepted health path %q, which leaves the upstream", p)
			}
		})
	}
}

// TestCloseStreams: a proxied event stream ends when the server is told to
// close its streams, and one started afterwards ends at once, while an
// ordinary request is untouched.
func TestCloseStreams(t *testing.T) {
	h := newHarness(t)
	h.up.Handle = func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Accept") != "text/event-stream" {
			_, _ = w.Write([]byte("plain"))
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = w.Write([]byte("data: hello\n\n"))
		http.NewResponseController(w).Flush()
		<-r.Context().Done()
	}
	open := func() (*http.Response, error) {
		req, _ := http.NewRequest(http.MethodGet, h.URL+"/public/events", nil)
		req.Header.Set("Accept", "text/event-stream")
		return http.DefaultClient.Do(req)
	}
	resp, err := open()
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, 64)
	if n, err := resp.Body.Read(buf); err != nil || n == 0 {
		t.Fatalf("first event: %d %v", n, err)
	}
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		for {
			if _, err := resp.Body.Read(buf); err != nil {
				return
			}
		}
	}()
	h.srv.CloseStreams()
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		t.Fatal("the event stream did not end after CloseStreams")
	}

	// A stream that starts after CloseStreams ends at once.
	lateEnded := make(chan struct{})
	go func() {
		defer close(lateEnded)
		late, err := open()
		if err != nil {
			return
		}
		defer late.Body.Close()
		for {
			if _, err := late.Body.Read(buf); err != nil {
				return
			}
		}
	}()
	select {
	case <-lateEnded:
	case <-time.After(10 * time.Second):
		t.Fatal("an event stream opened after CloseStreams stayed open")
	}

	plain := h.browser()
	req, _ := http.NewRequest(http.MethodGet, h.URL+"/public/x", nil)
	if r := plain.do(req); r.StatusCode != http.StatusOK || r.body != "plain" {
		t.Errorf("ordinary request after CloseStreams: %d %q", r.StatusCode, r.body)
	}
}

// TestFlushAudit: once FlushAudit returns, the events of requests already
// answered are in the store, so a shutdown can close it safely.
func TestFlushAudit(t *testing.T) {
	h := newHarness(t, func(o *Options) {
		o.Settings.Rules = append([]access.Rule{{Paths: []string{"/denied/**"}, Policy: access.PolicyDeny}}, o.Settings.Rules...)
	})
	const n = 20
	for i := range n {
		req, _ := http.NewRequest(http.MethodGet, h.URL+"/denied/"+string(rune('a'+i)), nil)
		if r := h.browser().do(req); r.StatusCode != http.StatusForbidden {
			t.Fatalf("status %d", r.StatusCode)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.srv.FlushAudit(ctx); err != nil {
		t.Fatal(err)
	}
	evs, err := h.store.Events(context.Background(), authstore.EventFilter{Type: "access.denied"})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != n {
		t.Errorf("%d access.denied events stored after FlushAudit, want %d", len(evs), n)
	}
}
