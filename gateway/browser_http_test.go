package gateway

import (
	"net/http"
	"strings"
	"testing"
)

// Checks at the HTTP level of what the browser tests rely on, so that a
// regression shows without Chromium too.

func TestPageCookiesAreSeparateHeaders(t *testing.T) {
	h := newHarness(t)
	cases := []struct {
		name string
		path string
		want []string // cookie names, each on its own Set-Cookie line
	}{
		{"first visit", "/.gatehouse/login", []string{"gatehouse_csrf"}},
		{"first visit with a language", "/.gatehouse/login?lang=ko", []string{"gatehouse_lang", "gatehouse_csrf"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := h.browser().get(tc.path)
			lines := resp.Header.Values("Set-Cookie")
			if len(lines) != len(tc.want) {
				t.Fatalf("Set-Cookie lines = %q, want one for each of %v", lines, tc.want)
			}
			got := map[string]bool{}
			for _, c := range resp.Cookies() {
				got[c.Name] = true
			}
			for _, name := range tc.want {
				if !got[name] {
					t.Errorf("cookie %s missing from %q", name, lines)
				}
			}
		})
	}
}

func TestLanguageChoiceIsRemembered(t *testing.T) {
	h := newHarness(t)
	cases := []struct {
		name, path, accept, want string
	}{
		{"accept-language alone", "/.gatehouse/login", "ko-KR", `<html lang="ko">`},
		{"?lang= wins", "/.gatehouse/login?lang=en", "ko-KR", `<html lang="en">`},
		{"choice kept without ?lang=", "/.gatehouse/login", "ko-KR", `<html lang="en">`},
		{"unsupported ?lang= keeps the choice", "/.gatehouse/login?lang=fr", "ko-KR", `<html lang="en">`},
		{"a new choice replaces it", "/.gatehouse/login?lang=ko", "en", `<html lang="ko">`},
		{"new choice kept", "/.gatehouse/login", "en", `<html lang="ko">`},
	}
	b := h.browser() // one browser through every step: the cookie carries the choice
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b.header.Set("Accept-Language", tc.accept)
			resp := b.get(tc.path)
			if resp.StatusCode != http.StatusOK || !strings.Contains(resp.body, tc.want) {
				t.Fatalf("status %d, page lacks %s", resp.StatusCode, tc.want)
			}
		})
	}
}
