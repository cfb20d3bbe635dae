package gateway

import (
	"context"

	"gatehouse/authstore"
	"gatehouse/session"
	"gatehouse/signin"
)

// Store is everything the gateway needs from persistence: what its session
// manager and sign-in flow keep, the account page's list of sessions and
// bulk sign-out, the audit log, and a liveness check.
type Store interface {
	session.Store
	signin.Store
	ListSessions(ctx context.Context, email string) ([]authstore.Session, error)
	DeleteUserSessions(ctx context.Context, email string, exceptID string) (int, error)
	RecordEvent(ctx context.Context, e authstore.Event) error
	Ping(ctx context.Context) error
}
