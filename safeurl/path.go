// Package safeurl reads request paths and redirect targets the one way that
// the gateway, browsers and the upstream cannot disagree about.
package safeurl

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// ErrBadPath is returned for request paths that must be refused with 400.
var ErrBadPath = errors.New("bad request path")

// CleanPath takes the raw, still-encoded request target path
// (r.URL.EscapedPath() or the path part of r.RequestURI) and returns the one
// canonical decoded path used BOTH for the access decision and for
// forwarding, or ErrBadPath (wrapped with a reason).
//
// The gateway and the upstream must never disagree about which resource a
// request names, so every spelling that some server, framework or proxy
// behind the gateway could read differently is refused rather than guessed:
//
//   - the target must start with "/" (absolute-form and authority-form
//     targets are not paths);
//   - encoded "/" (%2F) and any "\" (raw or %5C) are refused, as are NUL and
//     every other control character, raw or percent-encoded, and C1 controls
//     after decoding;
//   - a "%" must start a valid two-digit escape; the decoded path must be
//     valid UTF-8, which refuses overlong forms such as %C0%AE and %C0%AF;
//   - a segment made only of dots (and spaces), raw or encoded (".", "..",
//     "%2e%2e", ".%2E", "...") is refused, as is one whose name before a ";"
//     parameter is empty or only dots (Tomcat-style "..;x", ".;x", ";x");
//   - a decoded path that still holds an escape of a dangerous character
//     ("%2e", "%2f", "%5c", "%00", "%25", any control, or IIS-style
//     "%u002e") is refused, so an upstream that decodes a second time
//     cannot find a dot segment or a slash the gateway did not see; the
//     Unicode rules below hold for that second decoding too;
//   - a non-ASCII character that NFKC normalisation turns into ASCII
//     (fullwidth "／", "．", "ａ", the two-dot leader "‥", the ligature
//     "ﬁ", no-break space) is refused, as are slash lookalikes such as
//     U+2215 that some servers' best-fit mappings turn into "/" or "\".
//
// Repeated slashes are collapsed ("/public//x" becomes "/public/x"); a
// trailing slash is kept. The query is never an input. The result is
// decoded ("/a b" for "/a%20b"); forwarding re-encodes it.
func CleanPath(rawPath string) (string, error) {
	if rawPath == "" || rawPath[0] != '/' {
		return "", badPath("target is not an absolute path")
	}
	p, err := decodePath(rawPath)
	if err != nil {
		return "", err
	}
	if err := checkDecodedPath(p); err != nil {
		return "", err
	}
	if err := checkUnicode(p); err != nil {
		return "", err
	}
	if strings.IndexByte(p, '%') >= 0 {
		// An upstream that decodes again must not meet overlong forms
		// ("%C0%AE" left from "%25C0%25AE") or lookalikes either.
		if err := checkUnicode(decodeValidEscapes(p)); err != nil {
			return "", fmt.Errorf("after a second decoding: %w", err)
		}
	}
	return p, nil
}

// checkUnicode refuses invalid UTF-8 (overlong forms among it), C1
// controls, slash lookalikes, and characters that NFKC normalisation turns
// into ASCII.
func checkUnicode(p string) error {
	if isASCIIString(p) {
		return nil
	}
	if !utf8.ValidString(p) {
		return badPath("invalid UTF-8")
	}
	for _, r := range p {
		if unicode.IsControl(r) {
			return badPath("control character")
		}
		if strings.ContainsRune(slashLookalikes, r) {
			return badPath("slash lookalike")
		}
	}
	// Some upstreams apply compatibility normalisation (or a similar
	// best-fit mapping) before routing: "/ａｄｍｉｎ" would become "/admin"
	// there but not here, so no non-ASCII character may stand for an
	// ASCII one.
	if !norm.NFKC.IsNormalString(p) && standsForASCII(p) {
		return badPath("compatibility character standing for ASCII")
	}
	return nil
}

// decodeValidEscapes decodes the well-formed "%XX" escapes of p and leaves
// any other "%" as it is, the way a lenient server would.
func decodeValidEscapes(p string) string {
	var b strings.Builder
	b.Grow(len(p))
	for i := 0; i < len(p); i++ {
		if p[i] == '%' && i+2 < len(p) && isHexByte(p[i+1]) && isHexByte(p[i+2]) {
			b.WriteByte(hexByteValue(p[i+1])<<4 | hexByteValue(p[i+2]))
			i += 2
			continue
		}
		b.WriteByte(p[i])
	}
	return b.String()
}

// slashLookalikes are characters that some servers map to "/" or "\\"
// (Windows best-fit conversions among them) without NFKC doing so.
const slashLookalikes = "\u2215\u2044\u29f8\u2216\u29f5\u29f9\ufe68\uff0f\uff3c"

// standsForASCII reports whether a non-ASCII character of s has an NFKC
// form holding ASCII ("ａ" is "a", "‥" is ".."). Composition only ever
// turns ASCII into non-ASCII ("u" + U+0308 is "ü"), so looking at each
// character alone is enough.
func standsForASCII(s string) bool {
	for _, r := range s {
		if r < utf8.RuneSelf {
			continue
		}
		var buf [utf8.UTFMax]byte
		c := buf[:utf8.EncodeRune(buf[:], r)]
		if norm.NFKC.IsNormal(c) {
			continue
		}
		for _, b := range norm.NFKC.Bytes(c) {
			if b < utf8.RuneSelf {
				return true
			}
		}
	}
	return false
}

// badPath wraps ErrBadPath with the reason, which never quotes the path.
func badPath(reason string) error {
	return fmt.Errorf("%w: %s", ErrBadPath, reason)
}

// decodePath percent-decodes raw once, collapsing repeated slashes and
// refusing bytes that must never reach the decision or the upstream. It
// returns raw itself, without allocating, when nothing changes.
func decodePath(raw string) (string, error) {
	clean := true
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c == '%' || c == '\\' || isControlByte(c) || (c == '/' && i > 0 && raw[i-1] == '/') {
			clean = false
			break
		}
	}
	if clean {
		return raw, nil
	}
	var b strings.Builder
	b.Grow(len(raw))
	last := byte(0)
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case c == '%':
			if i+2 >= len(raw) || !isHexByte(raw[i+1]) || !isHexByte(raw[i+2]) {
				return "", badPath("invalid percent escape")
			}
			c = hexByteValue(raw[i+1])<<4 | hexByteValue(raw[i+2])
			i += 2
			switch {
			case c == '/':
				return "", badPath("encoded slash")
			case c == '\\':
				return "", badPath("encoded backslash")
			case isControlByte(c):
				return "", badPath("encoded control character")
			}
		case c == '\\':
			return "", badPath("backslash")
		case isControlByte(c):
			return "", badPath("control character")
		case c == '/' && last == '/':
			continue
		}
		b.WriteByte(c)
		last = c
	}
	return b.String(), nil
}

// checkDecodedPath applies the checks that hold for a decoded path: no
// backslash, no control byte, no repeated slash, no dot segment and no
// escape an upstream could decode into one of those.
func checkDecodedPath(p string) error {
	if p == "" || p[0] != '/' {
		return badPath("target is not an absolute path")
	}
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case c == '\\':
			return badPath("backslash")
		case isControlByte(c):
			return badPath("control character")
		case c == '/' && i > 0 && p[i-1] == '/':
			return badPath("repeated slash")
		case c == '%':
			if dangerousEscapeAt(p, i) {
				return badPath("double-encoded special character")
			}
		}
	}
	rest := p[1:]
	for rest != "" {
		seg := rest
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			seg, rest = rest[:i], rest[i+1:]
		} else {
			rest = ""
		}
		if err := checkSegment(seg); err != nil {
			return err
		}
	}
	return nil
}

// checkSegment refuses dot segments in every spelling that a server behind
// the gateway might resolve: ".", "..", runs of dots, dots with trailing
// spaces (Windows), and Tomcat's path parameters ("..;x", ";x").
func checkSegment(seg string) error {
	name := seg
	if i := strings.IndexByte(seg, ';'); i >= 0 {
		name = seg[:i]
		if name == "" {
			return badPath("segment with parameters but no name")
		}
	}
	dots := false
	for i := 0; i < len(name); i++ {
		switch name[i] {
		case '.':
			dots = true
		case ' ':
		default:
			return nil
		}
	}
	if dots {
		return badPath("dot segment")
	}
	return nil
}

// dangerousEscapeAt reports whether the '%' at p[i] starts an escape that
// would decode to a character CleanPath refuses, were the upstream to decode
// the path again: "%2e", "%2f", "%5c", "%25", any control, or the
// non-standard "%uXXXX" form some servers accept.
func dangerousEscapeAt(p string, i int) bool {
	if i+2 < len(p) && isHexByte(p[i+1]) && isHexByte(p[i+2]) {
		return dangerousByte(hexByteValue(p[i+1])<<4 | hexByteValue(p[i+2]))
	}
	if i+5 < len(p) && (p[i+1] == 'u' || p[i+1] == 'U') &&
		isHexByte(p[i+2]) && isHexByte(p[i+3]) && isHexByte(p[i+4]) && isHexByte(p[i+5]) {
		r := rune(hexByteValue(p[i+2]))<<12 | rune(hexByteValue(p[i+3]))<<8 | rune(hexByteValue(p[i+4]))<<4 | rune(hexByteValue(p[i+5]))
		if r < utf8.RuneSelf {
			return dangerousByte(byte(r))
		}
		return unicode.IsControl(r) || strings.ContainsRune(slashLookalikes, r) || standsForASCII(string(r))
	}
	return false
}

// dangerousByte reports whether c, appearing in a path after one more round
// of decoding, could change which resource the path names.
func dangerousByte(c byte) bool {
	return c == '/' || c == '\\' || c == '.' || c == '%' || isControlByte(c)
}

func isControlByte(c byte) bool { return c < 0x20 || c == 0x7f }

func isHexByte(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func hexByteValue(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

func isASCIIString(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}
