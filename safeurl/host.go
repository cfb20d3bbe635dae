package safeurl

import (
	"net/netip"
	"strings"
)

// Host normalizes the host of a request — its Host header, or the
// authority a fronting proxy describes for forward-auth — the one way the
// access rules, the routes and forward-auth all see it: lower case, port
// and trailing dot removed, brackets kept only around an IPv6 literal
// (in its canonical form). ok is false for anything else than an ASCII
// host name (letters, digits, hyphens and underscores; Unicode names in
// their xn-- form), an IPv4 address or a bracketed IPv6 literal without a
// zone, and for a bad port.
func Host(authority string) (host string, ok bool) {
	h, _, ok := SplitAuthority(authority)
	if !ok {
		return "", false
	}
	h = strings.ToLower(h)
	if strings.HasPrefix(h, "[") {
		a, err := netip.ParseAddr(strings.TrimSuffix(h[1:], "]"))
		if err != nil || !a.Is6() || a.Zone() != "" || !strings.HasSuffix(h, "]") {
			return "", false
		}
		return "[" + a.String() + "]", true
	}
	h = strings.TrimSuffix(h, ".")
	if !IsHostName(strings.ReplaceAll(h, "_", "x")) {
		// Underscores are allowed in a request's host (Docker and
		// Compose service names have them); no rule or route can name
		// such a host, so it simply matches none.
		return "", false
	}
	return h, true
}
