package gateway

import (
	"context"
	"time"

	"gatehouse/authstore"
	"gatehouse/session"
)

// SessionStore keeps sessions: what the session package needs, and the
// listing and bulk sign-out the account page offers.
type SessionStore interface {
	session.Store
	ListSessions(ctx context.Context, email string) ([]authstore.Session, error)
	DeleteUserSessions(ctx context.Context, email string, exceptID string) (int, error)
}

// CodeStore keeps sign-in codes, stored as keyed hashes.
type CodeStore interface {
	CreateCode(ctx context.Context, c authstore.Code) error
	VerifyCode(ctx context.Context, email string, hash []byte, now time.Time, maxAttempts int) error
	ConsumeLink(ctx context.Context, linkHash []byte, now time.Time, maxAttempts int) (string, error)
}

// Counters are fixed-window rate-limit counters.
type Counters interface {
	Hit(ctx context.Context, key string, window time.Duration, now time.Time) (int, error)
	Count(ctx context.Context, key string, window time.Duration, now time.Time) (int, error)
}

// Users knows who has signed in before and who is disabled.
type Users interface {
	EnsureUser(ctx context.Context, email string, now time.Time) (authstore.User, error)
	UserByEmail(ctx context.Context, email string) (authstore.User, error)
	RecordLogin(ctx context.Context, email string, now time.Time) error
}

// Auditor records security events.
type Auditor interface {
	RecordEvent(ctx context.Context, e authstore.Event) error
}

// Store is everything the gateway needs from persistence.
type Store interface {
	SessionStore
	CodeStore
	Counters
	Users
	Auditor
	Ping(ctx context.Context) error
}
