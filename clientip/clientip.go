// Package clientip names the client of a request, and the scheme it used,
// believing forwarding headers only from trusted proxies.
package clientip

import (
	"net/netip"
	"strings"
)

// Resolve returns the client address: the socket's peer, unless the peer
// is in trusted, in which case X-Forwarded-For is walked from the right,
// skipping trusted hops, and the first untrusted address is the client (the
// rightmost-untrusted rule; never the leftmost, which the client writes).
// Malformed XFF entries stop the walk (the last good hop is used); when
// every hop is trusted, the leftmost one is the client.
//
// xff holds the X-Forwarded-For header lines in the order received; each
// may list several comma-separated addresses, with or without a port.
// IPv4-mapped IPv6 addresses are unmapped and zones dropped. The result is
// the zero Addr only when remoteAddr is not an IP address (a Unix socket).
func Resolve(remoteAddr string, xff []string, trusted []netip.Prefix) netip.Addr {
	client, ok := parseHop(remoteAddr)
	if !ok || !Trusted(client, trusted) {
		return client
	}
	for i := len(xff) - 1; i >= 0; i-- {
		line, more := xff[i], true
		for more {
			entry := line
			if j := strings.LastIndexByte(line, ','); j >= 0 {
				entry, line = line[j+1:], line[:j]
			} else {
				more = false
			}
			hop, ok := parseHop(strings.Trim(entry, " \t"))
			if !ok {
				return client
			}
			client = hop
			if !Trusted(hop, trusted) {
				return client
			}
		}
	}
	return client
}

// Proto returns "https" or "http": from X-Forwarded-Proto only when
// the peer is trusted (its last, nearest value, when the header lists
// several), else from whether the connection has TLS. A value other than
// http or https is ignored.
func Proto(remoteAddr string, xfp string, tls bool, trusted []netip.Prefix) string {
	proto := "http"
	if tls {
		proto = "https"
	}
	peer, ok := parseHop(remoteAddr)
	if !ok || !Trusted(peer, trusted) {
		return proto
	}
	v := xfp
	if j := strings.LastIndexByte(v, ','); j >= 0 {
		v = v[j+1:]
	}
	switch v = strings.Trim(v, " \t"); {
	case strings.EqualFold(v, "https"):
		return "https"
	case strings.EqualFold(v, "http"):
		return "http"
	}
	return proto
}

// PeerTrusted reports whether the socket peer remoteAddr ("ip:port") is a
// trusted proxy, whose forwarding headers may be believed.
func PeerTrusted(remoteAddr string, trusted []netip.Prefix) bool {
	if len(trusted) == 0 {
		return false
	}
	ap, err := netip.ParseAddrPort(remoteAddr)
	if err != nil {
		return false
	}
	a := ap.Addr().Unmap()
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// parseHop parses "ip", "ip:port", "[ipv6]" or "[ipv6]:port".
func parseHop(s string) (netip.Addr, bool) {
	if s == "" {
		return netip.Addr{}, false
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return normalizeHop(ap.Addr()), true
	}
	if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		s = s[1 : len(s)-1]
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, false
	}
	return normalizeHop(a), true
}

func normalizeHop(a netip.Addr) netip.Addr {
	return a.Unmap().WithZone("")
}

// Trusted reports whether a (normalized: unmapped, no zone) is in trusted.
func Trusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// RateKey is the client address as a rate-limit key: an IPv6 address stands
// for its /64, since one subscriber usually holds a whole /64 and could
// otherwise pick a fresh address for every request. IPv4 addresses (and
// anything that does not parse) are used as they are.
func RateKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil || !a.Is6() || a.Is4In6() {
		return ip
	}
	p, err := a.WithZone("").Prefix(64)
	if err != nil {
		return ip
	}
	return p.String()
}
