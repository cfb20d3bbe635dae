package session

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"gatehouse/authstore"
	"gatehouse/internal/storetest"
)

func openStore(t *testing.T) *authstore.Store { return storetest.SQLite(t) }

// clock is a settable time source.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func newManager(t *testing.T, st Store, clk *clock) *Manager {
	t.Helper()
	m, err := New(Options{
		Store:    st,
		Settings: Settings{CookieName: "gatehouse_session", Lifetime: 24 * time.Hour, IdleTimeout: time.Hour},
		Now:      clk.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestTokenShape(t *testing.T) {
	if want := base64.RawURLEncoding.EncodedLen(TokenBytes); TokenLen != want {
		t.Fatalf("TokenLen = %d, want %d", TokenLen, want)
	}
	tests := []struct {
		name, token string
		want        bool
	}{
		{"letters, digits, - and _", strings.Repeat("aZ0-_", 9)[:TokenLen], true},
		{"too short", strings.Repeat("A", TokenLen-1), false},
		{"too long", strings.Repeat("A", TokenLen+1), false},
		{"padding", strings.Repeat("A", TokenLen-1) + "=", false},
		{"standard base64", strings.Repeat("A", TokenLen-1) + "+", false},
		{"empty", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ValidToken(tt.token); got != tt.want {
				t.Fatalf("ValidToken(%q) = %v, want %v", tt.token, got, tt.want)
			}
		})
	}
}

func TestStartAuthenticateEnd(t *testing.T) {
	clk := &clock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	m := newManager(t, openStore(t), clk)
	ctx := context.Background()
	token, sess, err := m.Start(ctx, "alice@example.com", "192.0.2.1", "test")
	if err != nil {
		t.Fatal(err)
	}
	if !ValidToken(token) {
		t.Fatalf("Start returned token %q of the wrong shape", token)
	}
	id, err := m.Authenticate(ctx, token)
	if err != nil || id.ID != sess.ID || id.Email != "alice@example.com" || !id.ExpiresAt.Equal(clk.Now().Add(24*time.Hour)) {
		t.Fatalf("Authenticate = %+v, %v; want session %s of alice until %s", id, err, sess.ID, clk.Now().Add(24*time.Hour))
	}
	if err := m.End(ctx, sess.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Authenticate(ctx, token); !errors.Is(err, ErrNoSession) {
		t.Fatalf("Authenticate after End: %v, want ErrNoSession", err)
	}
	if err := m.End(ctx, sess.ID); err != nil {
		t.Fatalf("second End: %v, want nil", err)
	}
}

func TestAuthenticateRefuses(t *testing.T) {
	clk := &clock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	st := openStore(t)
	ctx := context.Background()
	tests := []struct {
		name string
		run  func(m *Manager, token string)
	}{
		{"idle past the timeout", func(m *Manager, token string) { clk.add(time.Hour + time.Second) }},
		{"past the lifetime while busy", func(m *Manager, token string) {
			for range 25 {
				clk.add(59 * time.Minute)
				if _, err := m.Authenticate(ctx, token); err != nil {
					return
				}
			}
		}},
		{"revoked elsewhere", func(m *Manager, token string) {
			id, _ := m.Authenticate(ctx, token)
			if err := st.DeleteSession(ctx, id.ID); err != nil {
				t.Fatal(err)
			}
			m.Revoke(id.ID)
		}},
		{"all revoked elsewhere", func(m *Manager, token string) {
			id, _ := m.Authenticate(ctx, token)
			if err := st.DeleteSession(ctx, id.ID); err != nil {
				t.Fatal(err)
			}
			m.Revoke("*")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newManager(t, st, clk)
			token, _, err := m.Start(ctx, "bob@example.com", "192.0.2.1", "test")
			if err != nil {
				t.Fatal(err)
			}
			tt.run(m, token)
			if _, err := m.Authenticate(ctx, token); !errors.Is(err, ErrNoSession) {
				t.Fatalf("Authenticate: %v, want ErrNoSession", err)
			}
		})
	}
	m := newManager(t, st, clk)
	for _, token := range []string{"", "short", strings.Repeat("A", TokenLen)} {
		if _, err := m.Authenticate(ctx, token); !errors.Is(err, ErrNoSession) {
			t.Fatalf("Authenticate(%q): %v, want ErrNoSession", token, err)
		}
	}
}

// failingStore fails every read, to show that a store error is not taken
// for "no session".
type failingStore struct{ Store }

func (failingStore) SessionByTokenHash(context.Context, []byte) (authstore.Session, error) {
	return authstore.Session{}, errors.New("database is down")
}

func TestAuthenticateStoreErrorIsNotNoSession(t *testing.T) {
	clk := &clock{now: time.Now()}
	errs := 0
	m, err := New(Options{
		Store:        failingStore{openStore(t)},
		Settings:     Settings{CookieName: "s", Lifetime: time.Hour, IdleTimeout: time.Hour},
		Now:          clk.Now,
		OnStoreError: func() { errs++ },
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = m.Authenticate(context.Background(), strings.Repeat("A", TokenLen))
	if err == nil || errors.Is(err, ErrNoSession) {
		t.Fatalf("Authenticate with a failing store: %v, want a store error", err)
	}
	if errs != 1 {
		t.Fatalf("OnStoreError called %d times, want 1", errs)
	}
}

func TestCookies(t *testing.T) {
	tests := []struct {
		name     string
		settings Settings
		wantName string
		wantSet  []string
	}{
		{"plain", Settings{CookieName: "gs"}, "gs", []string{"HttpOnly", "SameSite=Lax", "Path=/"}},
		{"secure host-only", Settings{CookieName: "gs", Secure: true}, "__Host-gs", []string{"Secure"}},
		{"secure shared domain", Settings{CookieName: "gs", Secure: true, CookieDomain: "example.com"}, "__Secure-gs", []string{"Domain=example.com", "Secure"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.settings.Lifetime, tt.settings.IdleTimeout = time.Hour, time.Hour
			m, err := New(Options{Store: openStore(t), Settings: tt.settings})
			if err != nil {
				t.Fatal(err)
			}
			if got := m.CookieName(); got != tt.wantName {
				t.Fatalf("CookieName = %q, want %q", got, tt.wantName)
			}
			set := m.Cookie("tok")
			if !strings.HasPrefix(set, tt.wantName+"=tok;") || !strings.Contains(set, "Max-Age=3600") {
				t.Fatalf("Cookie = %q", set)
			}
			clear := m.ClearCookie()
			if !strings.HasPrefix(clear, tt.wantName+"=;") || !strings.Contains(clear, "Max-Age=0") {
				t.Fatalf("ClearCookie = %q", clear)
			}
			for _, attr := range tt.wantSet {
				if !strings.Contains(set, attr) || !strings.Contains(clear, attr) {
					t.Fatalf("Cookie %q or ClearCookie %q lacks %s", set, clear, attr)
				}
			}
		})
	}
}

func TestNewRefusesIncompleteOptions(t *testing.T) {
	st := openStore(t)
	for name, opts := range map[string]Options{
		"no store":        {Settings: Settings{CookieName: "s", Lifetime: time.Hour, IdleTimeout: time.Hour}},
		"no cookie name":  {Store: st, Settings: Settings{Lifetime: time.Hour, IdleTimeout: time.Hour}},
		"no lifetime":     {Store: st, Settings: Settings{CookieName: "s", IdleTimeout: time.Hour}},
		"no idle timeout": {Store: st, Settings: Settings{CookieName: "s", Lifetime: time.Hour}},
	} {
		if m, err := New(opts); err == nil || m != nil {
			t.Errorf("%s: New = %v, %v; want an error", name, m, err)
		}
	}
}
