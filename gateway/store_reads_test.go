package gateway

import (
	"context"
	"crypto/sha256"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gatehouse/authstore"
)

// countingStore is the real store with a counter on every read and on the
// session writes the hot path could make.
type countingStore struct {
	*authstore.Store
	reads   atomic.Int64
	touches atomic.Int64
}

func (c *countingStore) SessionByTokenHash(ctx context.Context, h []byte) (authstore.Session, error) {
	c.reads.Add(1)
	return c.Store.SessionByTokenHash(ctx, h)
}

func (c *countingStore) ListSessions(ctx context.Context, email string) ([]authstore.Session, error) {
	c.reads.Add(1)
	return c.Store.ListSessions(ctx, email)
}

func (c *countingStore) UserByEmail(ctx context.Context, email string) (authstore.User, error) {
	c.reads.Add(1)
	return c.Store.UserByEmail(ctx, email)
}

func (c *countingStore) Count(ctx context.Context, key string, window time.Duration, now time.Time) (int, error) {
	c.reads.Add(1)
	return c.Store.Count(ctx, key, window, now)
}

func (c *countingStore) Ping(ctx context.Context) error {
	c.reads.Add(1)
	return c.Store.Ping(ctx)
}

func (c *countingStore) TouchSession(ctx context.Context, id string, t time.Time) error {
	c.touches.Add(1)
	return c.Store.TouchSession(ctx, id, t)
}

func newCountingHarness(t *testing.T) (*harness, *countingStore) {
	t.Helper()
	var cs *countingStore
	h := newHarness(t, func(o *Options) {
		cs = &countingStore{Store: o.Store.(*authstore.Store)}
		o.Store = cs
		// Long enough that a slow machine cannot age the cache during the
		// test; the default is 30s.
		o.SessionCacheTTL = time.Hour
	})
	return h, cs
}

// TestWarmSessionCostsNoStoreRead: 1,000 authenticated requests on a warm
// session read nothing from the store and write nothing to it.
func TestWarmSessionCostsNoStoreRead(t *testing.T) {
	h, cs := newCountingHarness(t)
	b := h.browser()
	b.signIn("nora@example.com", "/")
	cookie := h.srv.cookie + "=" + b.sessionCookie()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	defer client.CloseIdleConnections()
	get := func(path string) int {
		req, _ := http.NewRequest(http.MethodGet, h.URL+path, nil)
		req.Header.Set("Cookie", cookie)
		resp, err := client.Do(req)
		if err != nil {
			t.Error(err)
			return 0
		}
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	if code := get("/first"); code != http.StatusOK {
		t.Fatalf("first request: %d", code)
	}
	reads, touches := cs.reads.Load(), cs.touches.Load()
	upBefore := h.up.Count()

	const total, workers = 1000, 4
	var wg sync.WaitGroup
	var failed atomic.Int64
	for w := 0; w < workers; w++ {
		wg.Go(func() {
			for i := 0; i < total/workers; i++ {
				if get("/app/data") != http.StatusOK {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d of %d requests failed", n, total)
	}
	if got := h.up.Count() - upBefore; got != total {
		t.Fatalf("upstream saw %d requests, want %d", got, total)
	}
	if got := cs.reads.Load() - reads; got != 0 {
		t.Errorf("%d store reads over %d warm requests, want 0", got, total)
	}
	if got := cs.touches.Load() - touches; got > 1 {
		t.Errorf("%d last-seen writes over %d requests, want at most one", got, total)
	}
}

// TestRevocationIsImmediateOnSameInstance: a warm, cached session stops
// working on the very next request after it is ended, however it ends.
func TestRevocationIsImmediateOnSameInstance(t *testing.T) {
	for _, tc := range []struct {
		name string
		// end ends victim's session, using victim or another browser of
		// the same user.
		end func(t *testing.T, h *harness, victim, other *browser)
	}{
		{"sign-out form", func(t *testing.T, h *harness, victim, _ *browser) {
			page := victim.get("/.gatehouse/account")
			resp := victim.post("/.gatehouse/logout", url.Values{"_csrf": {victim.csrf(page.body)}})
			if resp.StatusCode != http.StatusSeeOther {
				t.Fatalf("logout: %d", resp.StatusCode)
			}
		}},
		{"sign-out API", func(t *testing.T, h *harness, victim, _ *browser) {
			req, _ := http.NewRequest(http.MethodPost, h.URL+"/.gatehouse/api/sign-out", strings.NewReader("{}"))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Origin", h.URL)
			if resp := victim.do(req); resp.StatusCode != http.StatusOK {
				t.Fatalf("sign-out API: %d %s", resp.StatusCode, resp.body)
			}
		}},
		{"signed out elsewhere", func(t *testing.T, h *harness, _, other *browser) {
			page := other.get("/.gatehouse/account")
			resp := other.post("/.gatehouse/logout-others", url.Values{"_csrf": {other.csrf(page.body)}})
			if resp.StatusCode != http.StatusSeeOther {
				t.Fatalf("logout-others: %d", resp.StatusCode)
			}
		}},
		{"ended by another instance, then the revocation feed", func(t *testing.T, h *harness, victim, _ *browser) {
			sum := sha256.Sum256([]byte(victim.sessionCookie()))
			sess, err := h.store.SessionByTokenHash(context.Background(), sum[:])
			if err != nil {
				t.Fatal(err)
			}
			if err := h.store.DeleteSession(context.Background(), sess.ID); err != nil {
				t.Fatal(err)
			}
			h.srv.Revoked(sess.ID)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, cs := newCountingHarness(t)
			victim, other := h.browser(), h.browser()
			victim.signIn("vic@example.com", "/")
			other.signIn("vic@example.com", "/")
			token := victim.sessionCookie()
			get := func() int {
				req, _ := http.NewRequest(http.MethodGet, h.URL+"/app", nil)
				req.Header.Set("Cookie", h.srv.cookie+"="+token)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				_ = resp.Body.Close()
				return resp.StatusCode
			}
			signedIn := cs.reads.Load()
			for i := 0; i < 3; i++ {
				if code := get(); code != http.StatusOK {
					t.Fatalf("warm-up request: %d", code)
				}
			}
			if n := cs.reads.Load() - signedIn; n != 0 {
				t.Fatalf("%d store reads for a session created on this instance", n)
			}
			tc.end(t, h, victim, other)
			before := h.up.Count()
			if code := get(); code != http.StatusUnauthorized {
				t.Fatalf("request right after the session ended: %d, want 401", code)
			}
			if h.up.Count() != before {
				t.Fatal("the ended session reached the upstream")
			}
		})
	}
}
