// Package servicetoken makes and recognizes Gatehouse service tokens: the
// bearer secrets that machines (CI jobs, scripts) present instead of a
// session cookie.
//
// A token is "gh_", 43 characters of base64url (32 random bytes, no
// padding) and a 6-character checksum: base64url of the first 4 bytes of
// the SHA-256 of those 32 bytes. The checksum lets a typo or a truncated
// copy be refused without a store lookup, and the prefix lets secret
// scanners and the gateway recognize a token on sight.
package servicetoken

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"io"
	"strings"
)

// Prefix starts every service token.
const Prefix = "gh_"

const (
	randomBytes = 32
	bodyLen     = 43 // base64url of 32 bytes, unpadded
	checksumLen = 6  // base64url of 4 bytes, unpadded
	// Len is the length of every well-formed token.
	Len = len(Prefix) + bodyLen + checksumLen
)

var b64 = base64.RawURLEncoding.Strict()

// New returns a fresh token and its Hash. rand is the source of the 32
// random bytes; nil means crypto/rand.
func New(rand io.Reader) (secret string, hash []byte, err error) {
	if rand == nil {
		rand = cryptoRand
	}
	raw := make([]byte, randomBytes)
	if _, err := io.ReadFull(rand, raw); err != nil {
		return "", nil, fmt.Errorf("new service token: %w", err)
	}
	secret = Prefix + b64.EncodeToString(raw) + checksum(raw)
	return secret, Hash(secret), nil
}

var cryptoRand = rand.Reader

// Hash is what the store keeps of a token: the SHA-256 of the whole
// secret. A 256-bit random secret cannot be guessed or brute-forced from
// its hash, so a slow password hash (bcrypt, Argon2) would add cost on
// every request and no safety; a plain hash also lets the store find the
// token by an indexed lookup.
func Hash(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// Parse returns the token in an Authorization header value of exactly
// "Bearer gh_…": the scheme in any case, one or more spaces, and a token
// of the right length whose checksum matches. Anything else gives
// ok == false, so an app's own bearer tokens (and Basic credentials) are
// left alone. A malformed Gatehouse token also gives ok == false: use
// Looks to tell it apart.
func Parse(authorization string) (secret string, ok bool) {
	rest, ok := cutScheme(authorization, " ")
	if !ok {
		return "", false
	}
	rest = strings.TrimLeft(rest, " ")
	if !Valid(rest) {
		return "", false
	}
	return rest, true
}

// Valid reports whether secret is a well-formed token: the prefix, the
// length, canonical base64url and a matching checksum.
func Valid(secret string) bool {
	if len(secret) != Len || !strings.HasPrefix(secret, Prefix) {
		return false
	}
	body := secret[len(Prefix) : len(Prefix)+bodyLen]
	sum := secret[len(Prefix)+bodyLen:]
	raw, err := b64.DecodeString(body)
	if err != nil || len(raw) != randomBytes {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(checksum(raw)), []byte(sum)) == 1
}

// Looks reports whether an Authorization header value claims to carry a
// Gatehouse token, well-formed or not: a Bearer scheme (any case, after
// any spaces or tabs) whose credentials start with "gh_". Every header
// Parse accepts Looks like a token; the gateway answers those that Looks
// but do not Parse (or match no token) with 401 instead of passing a
// mangled secret on to the app.
func Looks(authorization string) bool {
	rest, ok := cutScheme(strings.TrimLeft(authorization, " \t"), " \t")
	if !ok {
		return false
	}
	return strings.HasPrefix(strings.TrimLeft(rest, " \t"), Prefix)
}

// cutScheme returns what follows "Bearer" (any case) and a first
// separator from seps.
func cutScheme(v, seps string) (string, bool) {
	const scheme = "Bearer"
	if len(v) <= len(scheme) || !strings.EqualFold(v[:len(scheme)], scheme) {
		return "", false
	}
	if !strings.ContainsRune(seps, rune(v[len(scheme)])) {
		return "", false
	}
	return v[len(scheme)+1:], true
}

func checksum(raw []byte) string {
	h := sha256.Sum256(raw)
	return b64.EncodeToString(h[:4])
}
