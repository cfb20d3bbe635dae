package gateway

import (
	"github.com/valyala/fasthttp"
)

// Identity headers set on every forwarded request for a signed-in user.
var identityHeaders = []string{
	"X-Auth-Request-Email",
	"X-Auth-Request-User",
	"X-Forwarded-Email",
	"X-Forwarded-User",
	"Remote-Email",
	"Remote-User",
}

// emailHeaders carry the address (empty for a service token), userHeaders
// the address or "token:NAME".
var (
	emailHeaders = []string{"X-Auth-Request-Email", "X-Forwarded-Email", "Remote-Email"}
	userHeaders  = []string{"X-Auth-Request-User", "X-Forwarded-User", "Remote-User"}
)

// Group headers: the principal's groups, comma-separated and sorted; set
// only when it has groups.
var groupHeaders = []string{"X-Auth-Request-Groups", "Remote-Groups"}

// spoofable lists, in normalized form (lower case, '_' and '.' read as '-'),
// every header a client could use to pose as a user or as the gateway:
// removed from every request before forwarding, on every path.
var spoofable = map[string]bool{
	"x-auth-request-email":              true,
	"x-auth-request-user":               true,
	"x-auth-request-groups":             true,
	"x-auth-request-preferred-username": true,
	"x-auth-request-access-token":       true,
	"x-forwarded-email":                 true,
	"x-forwarded-user":                  true,
	"x-forwarded-groups":                true,
	"x-forwarded-preferred-username":    true,
	"x-forwarded-access-token":          true,
	"remote-email":                      true,
	"remote-user":                       true,
	"remote-groups":                     true,
	"remote-name":                       true,
	"x-remote-user":                     true,
	"x-remote-email":                    true,
	"x-webauth-user":                    true,
	"x-webauth-email":                   true,
	"authorization-email":               true,
	"x-gatehouse-session":               true,
	"x-gatehouse-client-ip":             true,
	"x-gatehouse-client-proto":          true,
	"x-gatehouse-request-id":            true,
	// Requests to rewrite the path, method, host or scheme: frameworks
	// behind a proxy (Symfony, Spring, ASP.NET, IIS) route by them, which
	// would let a request decided for one path reach another.
	"x-original-url":        true,
	"x-original-uri":        true,
	"x-rewrite-url":         true,
	"x-forwarded-uri":       true,
	"x-forwarded-prefix":    true,
	"x-forwarded-path":      true,
	"x-envoy-original-path": true,
	"x-original-method":     true,
	"x-forwarded-method":    true,
	"x-original-host":       true,
	"x-forwarded-server":    true,
	"x-forwarded-ssl":       true,
	"x-forwarded-scheme":    true,
	"x-url-scheme":          true,
	"front-end-https":       true,
	// Rebuilt from the socket, or believed only from trusted proxies.
	"x-forwarded-for":   true,
	"x-forwarded-proto": true,
	"x-forwarded-host":  true,
	"x-forwarded-port":  true,
	"x-real-ip":         true,
	"forwarded":         true,
}

// stripSpoofable removes every client-supplied identity and forwarding
// header, in every spelling. A request without any costs one pass over its
// header names and no allocation.
func stripSpoofable(h *fasthttp.RequestHeader) {
	var found []string
	h.VisitAll(func(k, _ []byte) {
		if isSpoofable(k) {
			found = append(found, string(k))
		}
	})
	for _, k := range found {
		h.Del(k)
	}
}

// isSpoofable folds case and reads '_' and '.' as '-', the spellings that
// proxies and frameworks treat as one header, without allocating.
func isSpoofable[T string | []byte](k T) bool {
	if len(k) == 0 || len(k) > 64 {
		if len(k) <= 64 {
			return false
		}
		n := normalizeLong(string(k))
		return spoofable[n] || inSpoofableFamily([]byte(n))
	}
	switch k[0] | 0x20 { // every spoofable name starts with x, r, a or f
	case 'x', 'r', 'a', 'f':
	default:
		return false
	}
	var buf [64]byte
	for i := 0; i < len(k); i++ {
		buf[i] = foldHeaderByte(k[i])
	}
	return spoofable[string(buf[:len(k)])] || inSpoofableFamily(buf[:len(k)])
}

// spoofableFamilies are name prefixes whose every member carries identity
// or forwarding facts somewhere (X-Auth-Request-Roles, Remote-Role,
// X-WebAuth-Role, X-Remote-Groups, X-Forwarded-Client-Cert, …): a client's
// copy is removed whatever the rest of the name, and Gatehouse sets the
// members it owns (X-Forwarded-For, -Proto, -Host, the identity headers)
// itself afterwards.
var spoofableFamilies = []string{"x-auth-request-", "x-forwarded-", "remote-", "x-remote-", "x-webauth-", "x-gatehouse-"}

func inSpoofableFamily(folded []byte) bool {
	for _, p := range spoofableFamilies {
		if len(folded) > len(p) && string(folded[:len(p)]) == p {
			return true
		}
	}
	return false
}

func normalizeLong(k string) string {
	b := []byte(k)
	for i := range b {
		b[i] = foldHeaderByte(b[i])
	}
	return string(b)
}

func foldHeaderByte(c byte) byte {
	switch {
	case c >= 'A' && c <= 'Z':
		return c + ('a' - 'A')
	case c == '_' || c == '.':
		return '-'
	}
	return c
}

// setIdentity sets the identity headers for who. A service token has no
// address: its email headers are left out (the client's copies are
// already stripped).
func setIdentity(h *fasthttp.RequestHeader, who *principal) {
	if who.email != "" {
		for _, k := range emailHeaders {
			h.Set(k, who.email)
		}
	}
	for _, k := range userHeaders {
		h.Set(k, who.user)
	}
	if len(who.groups) > 0 {
		g := who.groupList()
		for _, k := range groupHeaders {
			h.Set(k, g)
		}
	}
}
