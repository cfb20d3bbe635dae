package portal

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"io"
	"net/http"

	"github.com/valyala/fasthttp"

	"gatehouse/session"
)

// CSRF defence is layered. The first layer is the standard library's
// http.CrossOriginProtection (Sec-Fetch-Site and Origin), in front of every
// Gatehouse endpoint. The second is a signed double-submit token for forms,
// for browsers that send neither header: a random cookie, and in each form
// an HMAC of it under the server secret. Being stateless it works on every
// replica, unlike a token kept in one process's memory.

const csrfField = "_csrf"

func csrfCookieName(secure bool) string {
	if secure {
		return "__Host-gatehouse_csrf"
	}
	return "gatehouse_csrf"
}

// csrfToken derives the form token from the CSRF cookie; "" when there is no
// usable cookie.
func (s *Portal) csrfToken(cookie string) string {
	if !session.ValidToken(cookie) {
		return ""
	}
	m := hmac.New(sha256.New, s.secret)
	m.Write([]byte("gatehouse csrf\x00"))
	m.Write([]byte(cookie))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// validCSRF checks a submitted form token against the cookie in constant
// time.
func (s *Portal) validCSRF(cookie, token string) bool {
	want := s.csrfToken(cookie)
	return want != "" && hmac.Equal([]byte(want), []byte(token))
}

// newCSRFCookie returns a fresh cookie value and its Set-Cookie line.
func (s *Portal) newCSRFCookie() (value, setCookie string) {
	var raw [session.TokenBytes]byte
	if _, err := io.ReadFull(s.rand, raw[:]); err != nil {
		return "", ""
	}
	value = base64.RawURLEncoding.EncodeToString(raw[:])
	c := http.Cookie{
		Name:     csrfCookieName(s.secure),
		Value:    value,
		Path:     "/",
		HttpOnly: true,
		Secure:   s.secure,
		SameSite: http.SameSiteLaxMode,
	}
	return value, c.String()
}

// newNonce returns a CSP nonce.
func newNonce(r io.Reader) string {
	var b [16]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return ""
	}
	return base64.RawStdEncoding.EncodeToString(b[:])
}

// setPageHeaders sets the security headers of every Gatehouse page.
func setPageHeaders(h *fasthttp.ResponseHeader, nonce, formAction string) {
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'nonce-"+nonce+"'; style-src 'self'; img-src 'self' data:; "+
		"object-src 'none'; form-action "+formAction+"; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
}
