// Package session issues, checks and ends the session cookies of signed-in
// users, with a cache so a warm session costs no store read.
package session

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"gatehouse/authstore"
)

// TokenBytes is the entropy of a session token: 256 bits. CSRF cookies and
// sign-in links use tokens of the same shape.
const TokenBytes = 32

// TokenLen is the length of a token in its cookie encoding (unpadded
// base64url of TokenBytes).
const TokenLen = (TokenBytes*8 + 5) / 6

// ErrNoSession means the request carries no live session. It is not a
// failure: the caller sends the client to sign in.
var ErrNoSession = errors.New("no session")

// Store keeps sessions. Tokens are never stored, only their SHA-256.
type Store interface {
	CreateSession(ctx context.Context, sess authstore.Session) (authstore.Session, error)
	SessionByTokenHash(ctx context.Context, tokenHash []byte) (authstore.Session, error)
	TouchSession(ctx context.Context, id string, lastSeen time.Time) error
	DeleteSession(ctx context.Context, id string) error
}

// Settings configure the session cookie and its lifetimes.
type Settings struct {
	CookieName   string
	CookieDomain string        // "" = host-only cookie
	Lifetime     time.Duration // absolute
	IdleTimeout  time.Duration
	Secure       bool // Secure attribute and __Host-/__Secure- prefix
}

// Identity is a live session as the hot path needs it.
type Identity struct {
	ID        string
	Email     string
	ExpiresAt time.Time
}

// Options are everything New needs. Fields marked optional have defaults.
type Options struct {
	Store    Store
	Settings Settings

	CacheTTL     time.Duration    // optional: 0 = 30s; how long a cached session is trusted without a store read
	StoreTimeout time.Duration    // optional: 0 = 10s; bounds the store read on a cache miss
	CacheMax     int              // optional: 0 = 100000 entries
	Logger       *slog.Logger     // optional: nil discards
	Now          func() time.Time // optional: nil = time.Now
	Rand         io.Reader        // optional: nil = crypto/rand
	OnCacheHit   func(hit bool)   // optional: told whether each lookup was served from the cache
	OnStoreError func()           // optional: told of each failed store read or write
}

// Manager authenticates, starts and ends sessions, and evicts revoked ones
// from its cache.
type Manager struct {
	store        Store
	settings     Settings
	cookie       string
	cache        *sessionCache
	storeTimeout time.Duration
	log          *slog.Logger
	now          func() time.Time
	rand         io.Reader
	onCacheHit   func(bool)
	onStoreError func()
}

// New returns a ready Manager.
func New(opts Options) (*Manager, error) {
	if opts.Store == nil {
		return nil, errors.New("session: store is required")
	}
	st := opts.Settings
	if st.CookieName == "" || st.Lifetime <= 0 || st.IdleTimeout <= 0 {
		return nil, errors.New("session: cookie name, lifetime and idle timeout are required")
	}
	ttl := opts.CacheTTL
	if ttl <= 0 {
		ttl = 30 * time.Second
	}
	max := opts.CacheMax
	if max <= 0 {
		max = 100000
	}
	timeout := opts.StoreTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	m := &Manager{
		store:        opts.Store,
		settings:     st,
		cookie:       cookieName(st),
		cache:        newSessionCache(ttl, max),
		storeTimeout: timeout,
		log:          opts.Logger,
		now:          opts.Now,
		rand:         opts.Rand,
		onCacheHit:   opts.OnCacheHit,
		onStoreError: opts.OnStoreError,
	}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	if m.now == nil {
		m.now = time.Now
	}
	if m.rand == nil {
		m.rand = rand.Reader
	}
	if m.onCacheHit == nil {
		m.onCacheHit = func(bool) {}
	}
	if m.onStoreError == nil {
		m.onStoreError = func() {}
	}
	return m, nil
}

// cookieName applies the cookie prefixes browsers enforce: __Host- pins the
// cookie to this exact host over https; with a shared domain only __Secure-
// is allowed.
func cookieName(ss Settings) string {
	switch {
	case !ss.Secure:
		return ss.CookieName
	case ss.CookieDomain != "":
		return "__Secure-" + ss.CookieName
	default:
		return "__Host-" + ss.CookieName
	}
}

// CookieName is the effective name of the session cookie, with the prefix
// a Secure cookie gets.
func (m *Manager) CookieName() string { return m.cookie }

// Revoke evicts a revoked session from this instance's cache; "*" empties
// the cache. The store's revocation feed calls it through the gateway.
func (m *Manager) Revoke(sessionID string) {
	if sessionID == "*" {
		m.cache.flush()
		return
	}
	m.cache.deleteID(sessionID)
}

// Flush empties the cache: every session is read from the store again.
func (m *Manager) Flush() { m.cache.flush() }

// ValidToken reports whether v has the shape of a token Gatehouse issues
// (TokenBytes of randomness, unpadded base64url), so garbage never reaches
// the store.
func ValidToken(v string) bool {
	if len(v) != TokenLen {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// touchInterval is how often a session's last-seen time is written: at most
// every minute and often enough that the idle timeout stays accurate.
func (m *Manager) touchInterval() time.Duration {
	return min(time.Minute, m.settings.IdleTimeout/4)
}

// Authenticate resolves a cookie token to a live session. It returns
// ErrNoSession when there is none; any other error means the store failed
// and the request must be denied.
func (m *Manager) Authenticate(ctx context.Context, token string) (Identity, error) {
	if !ValidToken(token) {
		return Identity{}, ErrNoSession
	}
	h := sha256.Sum256([]byte(token))
	now := m.now()
	e := m.cache.get(h, now)
	if e != nil {
		m.onCacheHit(true)
	} else {
		m.onCacheHit(false)
		var err error
		if e, err = m.loadSession(ctx, h, now); err != nil {
			return Identity{}, err
		}
	}
	if !now.Before(e.expiresAt) || now.Sub(time.Unix(0, e.lastSeen.Load())) > m.settings.IdleTimeout {
		m.cache.deleteHash(h)
		m.endSessionAsync(e.id)
		return Identity{}, ErrNoSession
	}
	e.lastSeen.Store(now.UnixNano())
	if now.Sub(time.Unix(0, e.touched.Load())) >= m.touchInterval() {
		e.touched.Store(now.UnixNano())
		m.touchAsync(e.id, now)
	}
	return Identity{ID: e.id, Email: e.email, ExpiresAt: e.expiresAt}, nil
}

func (m *Manager) loadSession(ctx context.Context, h [sha256.Size]byte, now time.Time) (*cachedSession, error) {
	// The bound is set here, not per request: a warm request never asks
	// the store, and should not pay for a timer it does not use.
	ctx, cancel := context.WithTimeout(ctx, m.storeTimeout)
	defer cancel()
	sess, err := m.store.SessionByTokenHash(ctx, h[:])
	if errors.Is(err, authstore.ErrNotFound) {
		m.cache.deleteHash(h)
		return nil, ErrNoSession
	}
	if err != nil {
		m.onStoreError()
		return nil, fmt.Errorf("load session: %w", err)
	}
	e := &cachedSession{
		id:        sess.ID,
		email:     sess.Email,
		createdAt: sess.CreatedAt,
		expiresAt: sess.ExpiresAt,
		fetched:   now,
	}
	last := sess.LastSeenAt
	if old := m.cache.peek(h); old != nil && old.id == sess.ID {
		if t := time.Unix(0, old.lastSeen.Load()); t.After(last) {
			last = t
		}
		e.touched.Store(old.touched.Load())
	} else {
		e.touched.Store(sess.LastSeenAt.UnixNano())
	}
	e.lastSeen.Store(last.UnixNano())
	m.cache.put(h, e, now)
	return e, nil
}

// touchAsync records activity without holding up the request.
func (m *Manager) touchAsync(id string, now time.Time) {
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := m.store.TouchSession(ctx, id, now); err != nil && !errors.Is(err, authstore.ErrNotFound) {
			m.onStoreError()
			m.log.Warn("record session activity", "session", id, "err", err)
		}
	}()
}

// endSessionAsync removes an expired session from the store.
func (m *Manager) endSessionAsync(id string) {
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := m.store.DeleteSession(ctx, id); err != nil && !errors.Is(err, authstore.ErrNotFound) {
			m.log.Warn("delete expired session", "session", id, "err", err)
		}
	}()
}

// Start starts a session for email with a fresh token; a token the client
// sent is never reused.
func (m *Manager) Start(ctx context.Context, email, ip, userAgent string) (token string, sess authstore.Session, err error) {
	var raw [TokenBytes]byte
	if _, err := io.ReadFull(m.rand, raw[:]); err != nil {
		return "", authstore.Session{}, fmt.Errorf("generate session token: %w", err)
	}
	token = base64.RawURLEncoding.EncodeToString(raw[:])
	h := sha256.Sum256([]byte(token))
	now := m.now().UTC()
	sess, err = m.store.CreateSession(ctx, authstore.Session{
		TokenHash:  h[:],
		Email:      email,
		CreatedAt:  now,
		ExpiresAt:  now.Add(m.settings.Lifetime),
		LastSeenAt: now,
		IP:         ip,
		UserAgent:  userAgent,
	})
	if err != nil {
		return "", authstore.Session{}, fmt.Errorf("create session: %w", err)
	}
	e := &cachedSession{id: sess.ID, email: sess.Email, createdAt: sess.CreatedAt, expiresAt: sess.ExpiresAt, fetched: now}
	e.lastSeen.Store(now.UnixNano())
	e.touched.Store(now.UnixNano())
	m.cache.put(h, e, now)
	return token, sess, nil
}

// End deletes a session on the server and evicts it from the cache.
func (m *Manager) End(ctx context.Context, id string) error {
	m.cache.deleteID(id)
	if err := m.store.DeleteSession(ctx, id); err != nil && !errors.Is(err, authstore.ErrNotFound) {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}

// Cookie is the Set-Cookie value for a new session token.
func (m *Manager) Cookie(token string) string {
	c := http.Cookie{
		Name:     m.cookie,
		Value:    token,
		Path:     "/",
		Domain:   m.settings.CookieDomain,
		MaxAge:   int(m.settings.Lifetime / time.Second),
		HttpOnly: true,
		Secure:   m.settings.Secure,
		SameSite: http.SameSiteLaxMode,
	}
	return c.String()
}

// ClearCookie is the Set-Cookie value that removes the session cookie.
func (m *Manager) ClearCookie() string {
	c := http.Cookie{
		Name:     m.cookie,
		Value:    "",
		Path:     "/",
		Domain:   m.settings.CookieDomain,
		MaxAge:   -1,
		HttpOnly: true,
		Secure:   m.settings.Secure,
		SameSite: http.SameSiteLaxMode,
	}
	return c.String()
}

// cachedSession is a session read from the store, trusted until fetched+ttl.
type cachedSession struct {
	id        string
	email     string
	createdAt time.Time
	expiresAt time.Time
	fetched   time.Time
	lastSeen  atomic.Int64 // unix nanoseconds, this instance's view
	touched   atomic.Int64 // last time lastSeen was written to the store
}

// sessionCache is a bounded map from token hash to session, so a warm
// session costs no store read. Revocations evict by session ID.
type sessionCache struct {
	ttl time.Duration
	max int

	mu     sync.RWMutex
	byHash map[[sha256.Size]byte]*cachedSession
	byID   map[string][sha256.Size]byte
}

func newSessionCache(ttl time.Duration, max int) *sessionCache {
	return &sessionCache{
		ttl:    ttl,
		max:    max,
		byHash: make(map[[sha256.Size]byte]*cachedSession),
		byID:   make(map[string][sha256.Size]byte),
	}
}

func (c *sessionCache) get(h [sha256.Size]byte, now time.Time) *cachedSession {
	c.mu.RLock()
	e := c.byHash[h]
	c.mu.RUnlock()
	if e == nil || now.Sub(e.fetched) >= c.ttl {
		return nil
	}
	return e
}

// peek returns an entry even when it is stale, to carry its last-seen time
// over a refresh.
func (c *sessionCache) peek(h [sha256.Size]byte) *cachedSession {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.byHash[h]
}

func (c *sessionCache) put(h [sha256.Size]byte, e *cachedSession, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.byHash) >= c.max {
		c.evictLocked(now)
	}
	if old, ok := c.byHash[h]; ok && old.id != e.id {
		delete(c.byID, old.id)
	}
	c.byHash[h] = e
	c.byID[e.id] = h
}

// evictLocked drops stale entries, and if none are stale, an arbitrary tenth
// of the cache (map order is random), so the cache never grows past max.
func (c *sessionCache) evictLocked(now time.Time) {
	n := 0
	for h, e := range c.byHash {
		if now.Sub(e.fetched) >= c.ttl {
			delete(c.byHash, h)
			delete(c.byID, e.id)
			n++
		}
	}
	if n > 0 {
		return
	}
	quota := c.max/10 + 1
	for h, e := range c.byHash {
		if quota == 0 {
			break
		}
		delete(c.byHash, h)
		delete(c.byID, e.id)
		quota--
	}
}

func (c *sessionCache) deleteID(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if h, ok := c.byID[id]; ok {
		delete(c.byHash, h)
		delete(c.byID, id)
	}
}

func (c *sessionCache) deleteHash(h [sha256.Size]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.byHash[h]; ok {
		delete(c.byID, e.id)
		delete(c.byHash, h)
	}
}

func (c *sessionCache) flush() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.byHash)
	clear(c.byID)
}

func (c *sessionCache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.byHash)
}
