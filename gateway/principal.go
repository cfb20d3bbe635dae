package gateway

import (
	"strings"
	"time"

	"gatehouse/access"
	"gatehouse/session"
)

// principal is who an allowed (or forbidden) request comes from: a
// signed-in person or a service token, with the groups the current
// configuration gives them. Groups are resolved on every request, never
// kept with the session, so a reload applies to live sessions at once.
type principal struct {
	// user is what the User headers carry: the address, or "token:NAME".
	user string
	// email is the address; "" for a service token.
	email string
	// token is the service token's name; "" for a person.
	token string
	// groups are sorted; nil for none.
	groups []string
	// revokeKey is what the revocation feed names when this principal
	// ends: the session ID, or "token:NAME".
	revokeKey string
	// expires is when the session or token ends; zero means never.
	expires time.Time
}

// person is the principal of a signed-in session.
func person(id session.Identity, groups *access.GroupSet) *principal {
	return &principal{
		user:      id.Email,
		email:     id.Email,
		groups:    groups.Of(id.Email),
		revokeKey: id.ID,
		expires:   id.ExpiresAt,
	}
}

// access is the principal as the access rules see it.
func (p *principal) access() access.Principal {
	return access.Principal{Email: p.email, Token: p.token, Groups: p.groups}
}

// groupList is the group headers' value: comma-separated, sorted.
func (p *principal) groupList() string {
	if p == nil {
		return ""
	}
	return strings.Join(p.groups, ",")
}
