package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"gatehouse/authstore"
)

// tokenBytes is the entropy of a session token: 256 bits.
const tokenBytes = 32

// tokenLen is the length of a token in its cookie encoding.
var tokenLen = base64.RawURLEncoding.EncodedLen(tokenBytes)

// errNoSession means the request carries no live session. It is not a
// failure: the caller sends the client to sign in.
var errNoSession = errors.New("no session")

// identity is a live session as the hot path needs it.
type identity struct {
	ID        string
	Email     string
	ExpiresAt time.Time
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

// Revoked evicts a session from this instance's cache; "*" flushes it. It is
// the callback for the store's revocation feed.
//
// A revoked session's open WebSockets and event streams end with it; "*"
// (which does not say whose) ends every stream that belongs to a session,
// and their clients reconnect through a fresh decision.
func (s *Server) Revoked(sessionID string) {
	if sessionID == "*" {
		s.sessions.flush()
		s.streams.endSession("*")
		return
	}
	s.forget(sessionID)
}

// forget drops a session from this instance: its cache entry and its open
// streams.
func (s *Server) forget(id string) {
	s.sessions.deleteID(id)
	s.streams.endSession(id)
}

// validToken reports whether v has the shape of a token this server issues,
// so garbage never reaches the store.
func validToken(v string) bool {
	if len(v) != tokenLen {
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
func (s *Server) touchInterval() time.Duration {
	return min(time.Minute, s.session.IdleTimeout/4)
}

// authenticate resolves a cookie token to a live session. It returns
// errNoSession when there is none; any other error means the store failed
// and the request must be denied.
func (s *Server) authenticate(ctx context.Context, token string) (identity, error) {
	if !validToken(token) {
		return identity{}, errNoSession
	}
	h := sha256.Sum256([]byte(token))
	now := s.now()
	e := s.sessions.get(h, now)
	if e != nil {
		s.metrics.cacheHit(true)
	} else {
		s.metrics.cacheHit(false)
		var err error
		if e, err = s.loadSession(ctx, h, now); err != nil {
			return identity{}, err
		}
	}
	if !now.Before(e.expiresAt) || now.Sub(time.Unix(0, e.lastSeen.Load())) > s.session.IdleTimeout {
		s.sessions.deleteHash(h)
		s.endSessionAsync(e.id)
		return identity{}, errNoSession
	}
	e.lastSeen.Store(now.UnixNano())
	if now.Sub(time.Unix(0, e.touched.Load())) >= s.touchInterval() {
		e.touched.Store(now.UnixNano())
		s.touchAsync(e.id, now)
	}
	return identity{ID: e.id, Email: e.email, ExpiresAt: e.expiresAt}, nil
}

func (s *Server) loadSession(ctx context.Context, h [sha256.Size]byte, now time.Time) (*cachedSession, error) {
	// The bound is set here, not per request: a warm request never asks
	// the store, and should not pay for a timer it does not use.
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	sess, err := s.store.SessionByTokenHash(ctx, h[:])
	if errors.Is(err, authstore.ErrNotFound) {
		s.sessions.deleteHash(h)
		return nil, errNoSession
	}
	if err != nil {
		s.metrics.storeError()
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
	if old := s.sessions.peek(h); old != nil && old.id == sess.ID {
		if t := time.Unix(0, old.lastSeen.Load()); t.After(last) {
			last = t
		}
		e.touched.Store(old.touched.Load())
	} else {
		e.touched.Store(sess.LastSeenAt.UnixNano())
	}
	e.lastSeen.Store(last.UnixNano())
	s.sessions.put(h, e, now)
	return e, nil
}

// touchAsync records activity without holding up the request.
func (s *Server) touchAsync(id string, now time.Time) {
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.store.TouchSession(ctx, id, now); err != nil && !errors.Is(err, authstore.ErrNotFound) {
			s.metrics.storeError()
			s.log.Warn("record session activity", "session", id, "err", err)
		}
	}()
}

// endSessionAsync removes an expired session from the store.
func (s *Server) endSessionAsync(id string) {
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.store.DeleteSession(ctx, id); err != nil && !errors.Is(err, authstore.ErrNotFound) {
			s.log.Warn("delete expired session", "session", id, "err", err)
		}
	}()
}

// newSession starts a session for email with a fresh token; a token the
// client sent is never reused.
func (s *Server) newSession(ctx context.Context, email, ip, userAgent string) (token string, sess authstore.Session, err error) {
	var raw [tokenBytes]byte
	if _, err := io.ReadFull(s.rand, raw[:]); err != nil {
		return "", authstore.Session{}, fmt.Errorf("generate session token: %w", err)
	}
	token = base64.RawURLEncoding.EncodeToString(raw[:])
	h := sha256.Sum256([]byte(token))
	now := s.now().UTC()
	sess, err = s.store.CreateSession(ctx, authstore.Session{
		TokenHash:  h[:],
		Email:      email,
		CreatedAt:  now,
		ExpiresAt:  now.Add(s.session.Lifetime),
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
	s.sessions.put(h, e, now)
	return token, sess, nil
}

// endSession deletes a session on the server and evicts it from the cache.
func (s *Server) endSession(ctx context.Context, id string) error {
	s.forget(id)
	if err := s.store.DeleteSession(ctx, id); err != nil && !errors.Is(err, authstore.ErrNotFound) {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}

// sessionCookie is the Set-Cookie value for a new session token.
func (s *Server) sessionCookie(token string) string {
	c := http.Cookie{
		Name:     s.cookie,
		Value:    token,
		Path:     "/",
		Domain:   s.session.CookieDomain,
		MaxAge:   int(s.session.Lifetime / time.Second),
		HttpOnly: true,
		Secure:   s.session.Secure,
		SameSite: http.SameSiteLaxMode,
	}
	return c.String()
}

// clearCookie is the Set-Cookie value that removes the session cookie.
func (s *Server) clearCookie() string {
	c := http.Cookie{
		Name:     s.cookie,
		Value:    "",
		Path:     "/",
		Domain:   s.session.CookieDomain,
		MaxAge:   -1,
		HttpOnly: true,
		Secure:   s.session.Secure,
		SameSite: http.SameSiteLaxMode,
	}
	return c.String()
}
