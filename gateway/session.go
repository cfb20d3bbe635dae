package gateway

import (
	"context"

	"gatehouse/session"
)

// Revoked evicts a session from this instance's cache; "*" flushes it. It is
// the callback for the store's revocation feed.
//
// A revoked session's open WebSockets and event streams end with it; "*"
// (which does not say whose) ends every stream that belongs to a session,
// and their clients reconnect through a fresh decision.
func (s *Server) Revoked(sessionID string) {
	s.forget(sessionID)
}

// forget drops a session ("*": every session) from this instance: its cache
// entry and its open streams.
func (s *Server) forget(id string) {
	s.sessions.Revoke(id)
	s.streams.endSession(id)
}

// endSession deletes a session on the server, evicts it from the cache and
// ends its open streams.
func (s *Server) endSession(ctx context.Context, id string) error {
	s.streams.endSession(id)
	return s.sessions.End(ctx, id)
}

// portalSessions is the session manager as the portal uses it: ending or
// revoking a session there also ends its open streams.
type portalSessions struct {
	*session.Manager
	s *Server
}

func (p portalSessions) End(ctx context.Context, id string) error { return p.s.endSession(ctx, id) }

func (p portalSessions) Revoke(id string) { p.s.forget(id) }
