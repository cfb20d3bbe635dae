package safeurl

import (
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// maxRedirectLen bounds a redirect target; longer ones fall back to "/".
const maxRedirectLen = 2048

// maxDecodeLayers is how many rounds of percent-decoding a relative target
// is inspected for; a path still holding escapes after that many is
// refused, whatever a server behind might make of it.
const maxDecodeLayers = 4

// Redirects validates post-sign-in / sign-out targets.
type Redirects struct {
	origin    string // scheme://host[:port] of the public URL, "" when unset
	httpsOnly bool   // the public URL is https: no downgrade to http
	hosts     []redirectHost
}

// redirectHost is one host absolute targets may name, with its port in
// canonical decimal or "" for the target scheme's default port.
type redirectHost struct {
	name     string // lower case; ".example.com" for a subdomain wildcard
	wildcard bool
	port     string
}

func (h redirectHost) match(name, scheme, port string) bool {
	if effectivePort(scheme, port) != effectivePort(scheme, h.port) {
		return false
	}
	if h.wildcard {
		return len(name) > len(h.name) && strings.HasSuffix(name, h.name)
	}
	return name == h.name
}

// NewRedirects returns a validator for redirect targets. Absolute targets
// may name publicURL's own host and port, or one of allowedHosts:
// "app.example.com" exactly, "*.example.com" for subdomains only (not the
// apex unless listed too), each with an optional ":port" (without one, only
// the scheme's default port is allowed). Entries that are not host names
// are ignored: they never match. When publicURL is https, absolute targets
// must be https too. A nil publicURL allows relative targets only.
func NewRedirects(publicURL *url.URL, allowedHosts []string) *Redirects {
	r := &Redirects{}
	if publicURL != nil && publicURL.Host != "" {
		scheme := strings.ToLower(publicURL.Scheme)
		if h, ok := parseRedirectHost(publicURL.Host); ok && !h.wildcard {
			h.port = effectivePort(scheme, h.port)
			r.origin = scheme + "://" + strings.ToLower(publicURL.Host)
			r.httpsOnly = scheme == "https"
			r.hosts = append(r.hosts, h)
		}
	}
	for _, a := range allowedHosts {
		if h, ok := parseRedirectHost(a); ok {
			r.hosts = append(r.hosts, h)
		}
	}
	return r
}

// parseRedirectHost parses "host", "*.domain", "host:port" or
// "[v6]:port".
func parseRedirectHost(s string) (redirectHost, bool) {
	s = strings.ToLower(s)
	host, port, ok := SplitAuthority(s)
	if !ok {
		return redirectHost{}, false
	}
	h := redirectHost{name: host, port: canonicalPort(port)}
	if strings.HasPrefix(host, "*.") {
		h.name, h.wildcard = host[1:], true
		if !IsHostName(host[2:]) || strings.HasPrefix(host[2:], "[") {
			return redirectHost{}, false
		}
		return h, true
	}
	return h, IsHostName(host)
}

// SplitAuthority splits "host[:port]" or "[v6][:port]" and checks the port
// is 1 to 65535. The host is not validated (IsHostName does that).
func SplitAuthority(s string) (host, port string, ok bool) {
	host = s
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return "", "", false
		}
		host, port = s[:end+1], s[end+1:]
		if port != "" {
			if port[0] != ':' {
				return "", "", false
			}
			port = port[1:]
			if !validPort(port) {
				return "", "", false
			}
		}
		return host, port, true
	}
	if i := strings.IndexByte(s, ':'); i >= 0 {
		host, port = s[:i], s[i+1:]
		if !validPort(port) {
			return "", "", false
		}
	}
	return host, port, host != ""
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

func validPort(p string) bool {
	if p == "" || len(p) > 5 || !isDigits(p) {
		return false
	}
	n, err := strconv.Atoi(p)
	return err == nil && n >= 1 && n <= 65535
}

// canonicalPort returns a valid port in canonical decimal ("0443" is
// "443"), or "" for none.
func canonicalPort(port string) string {
	if port == "" {
		return ""
	}
	n, _ := strconv.Atoi(port)
	return strconv.Itoa(n)
}

// effectivePort returns port, or the default port of scheme when empty.
func effectivePort(scheme, port string) string {
	if port != "" {
		return port
	}
	if scheme == "https" {
		return "443"
	}
	return "80"
}

// Safe returns rd if it is a same-site path ("/x?y", returned as-is but
// normalized so it starts with exactly one "/" followed by a non-"/"
// non-"\" char) or an absolute http(s) URL whose host is the public URL's
// host or an allowed host; otherwise fallback "/". Never returns something
// a browser would treat as another origin.
//
// Refused outright: more than 2048 bytes, invalid UTF-8, any ASCII control
// character or backslash anywhere, a "%" not starting an escape, userinfo, schemes other than http and
// https, scheme-relative and "https:host" forms, percent-encoded or
// non-ASCII hosts, ports out of range. The path part of a target is
// percent-decoded up to four times and every layer (and its NFKC form) must
// still start with a single "/" and hold no control character, backslash,
// empty segment or dot segment, so "/%2F/evil.com", "/%09/evil.com",
// "/%2e%2e//evil.com" and "/／evil.com" all fall back. Non-ASCII bytes and
// spaces in an accepted target are percent-encoded (and the 2048-byte limit
// holds for the encoded form, so Safe(Safe(rd)) == Safe(rd)).
func (r *Redirects) Safe(rd string) string {
	if rd == "" || len(rd) > maxRedirectLen || !utf8.ValidString(rd) {
		return "/"
	}
	for i := 0; i < len(rd); i++ {
		c := rd[i]
		if isControlByte(c) || c == '\\' {
			return "/"
		}
		if c == '%' && (i+2 >= len(rd) || !isHexByte(rd[i+1]) || !isHexByte(rd[i+2])) {
			return "/"
		}
	}
	switch {
	case rd[0] == '/':
		// The standard parser must agree that this is a path on this site.
		u, err := url.Parse(rd)
		if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || !safeRelative(rd) {
			return "/"
		}
	case !r.safeAbsolute(rd):
		return "/"
	}
	if out := encodeRedirect(rd); len(out) <= maxRedirectLen {
		return out
	}
	return "/"
}

// Absolute returns the absolute URL for a safe target (public URL origin +
// path for relative targets), for Location headers that must be absolute
// (forward-auth). The target is validated again; without a public URL a
// relative target is returned unchanged.
func (r *Redirects) Absolute(safe string) string {
	s := r.Safe(safe)
	if s[0] == '/' {
		return r.origin + s
	}
	return s
}

// safeRelative checks a target that starts with "/".
func safeRelative(rd string) bool {
	path := rd
	if i := strings.IndexAny(rd, "?#"); i >= 0 {
		path = rd[:i]
	}
	return safeRedirectPath(path)
}

// safeRedirectPath checks every percent-decoding layer of a path.
func safeRedirectPath(path string) bool {
	layer := path
	for n := 0; ; n++ {
		if !safePathLayer(layer) {
			return false
		}
		if !isASCIIString(layer) && !norm.NFKC.IsNormalString(layer) && !safePathLayer(norm.NFKC.String(layer)) {
			return false
		}
		if !strings.Contains(layer, "%") {
			return true
		}
		next, err := url.PathUnescape(layer)
		if err != nil {
			// A literal "%" left after decoding is just a percent sign
			// (Safe has checked the escapes of the first layer).
			return n > 0
		}
		if n+1 >= maxDecodeLayers || !utf8.ValidString(next) {
			return false
		}
		layer = next
	}
}

// safePathLayer reports whether p, one decoding of a target's path, starts
// with exactly one slash and holds no control or format character,
// backslash, empty segment or dot segment.
func safePathLayer(p string) bool {
	if p == "" || p[0] != '/' {
		return false
	}
	if p == "/" {
		return true
	}
	if strings.Contains(p, "//") || strings.ContainsRune(p, '\\') {
		return false
	}
	for _, r := range p {
		if r == utf8.RuneError || unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return false
		}
	}
	for _, seg := range strings.Split(p[1:], "/") {
		if seg != "" && checkSegment(seg) != nil {
			return false
		}
	}
	return true
}

// AllowsOrigin reports whether an Origin header value
// ("scheme://host[:port]") names the public URL's site or an allowed host:
// the sites a redirect may go to are the sites Gatehouse trusts.
func (r *Redirects) AllowsOrigin(origin string) bool {
	i := strings.Index(origin, "://")
	if i < 0 || strings.ContainsAny(origin[i+3:], "/?#") {
		return false
	}
	return r.safeAbsolute(origin)
}

// safeAbsolute checks "http(s)://host[:port][/path][?query][#fragment]".
func (r *Redirects) safeAbsolute(rd string) bool {
	i := strings.Index(rd, "://")
	if i < 0 {
		return false
	}
	scheme := strings.ToLower(rd[:i])
	if scheme != "https" && (scheme != "http" || r.httpsOnly) {
		return false
	}
	rest := rd[i+3:]
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	authority, tail := strings.ToLower(rest[:end]), rest[end:]
	for j := 0; j < len(authority); j++ {
		c := authority[j]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || strings.IndexByte("-.:[]", c) >= 0) {
			return false // userinfo, escapes, non-ASCII, …
		}
	}
	host, port, ok := SplitAuthority(authority)
	if !ok || !IsHostName(host) {
		return false
	}
	// The standard parser must see the same host, or a browser might not.
	u, err := url.Parse(rd)
	if err != nil || u.User != nil || u.Opaque != "" || !strings.EqualFold(u.Host, authority) {
		return false
	}
	port = canonicalPort(port)
	matched := false
	for _, h := range r.hosts {
		if h.match(host, scheme, port) {
			matched = true
			break
		}
	}
	if !matched {
		return false
	}
	if tail != "" && tail[0] == '/' {
		path := tail
		if k := strings.IndexAny(tail, "?#"); k >= 0 {
			path = tail[:k]
		}
		return safeRedirectPath(path)
	}
	return true
}

// encodeRedirect percent-encodes non-ASCII bytes and spaces, so the target
// is plain ASCII in a Location header; it changes nothing else.
func encodeRedirect(s string) string {
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf || s[i] == ' ' {
			n++
		}
	}
	if n == 0 {
		return s
	}
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s) + 2*n)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf || c == ' ' {
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// IsHostName reports whether s is an ASCII host name (letters, digits,
// hyphens, dots; labels of 1 to 63), an IPv4 address or a bracketed IPv6
// literal. Unicode names must be given in their xn-- form.
func IsHostName(s string) bool {
	if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		// Brackets hold an IPv6 literal and nothing else: "[wiki.example]"
		// is not a host, and a rule for wiki.example must not be dodged
		// by writing it so.
		a, err := netip.ParseAddr(s[1 : len(s)-1])
		return err == nil && a.Is6() && a.Zone() == ""
	}
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if !IsHostLabel(label) {
			return false
		}
	}
	return true
}

// IsHostLabel reports whether label is 1 to 63 letters, digits and
// hyphens, neither starting nor ending with a hyphen (an LDH label).
func IsHostLabel(label string) bool {
	if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
		return false
	}
	for i := 0; i < len(label); i++ {
		c := label[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}
