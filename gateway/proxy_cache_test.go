package gateway

import (
	"net/http"
	"strings"
	"testing"
)

// TestSignedInAnswersAreNeverShared: the app's answer to a signed-in
// request is marked private (whatever it allowed shared caches) and varies
// by cookie; answers on public paths are left as the app sent them.
func TestSignedInAnswersAreNeverShared(t *testing.T) {
	h := newHarness(t)
	b := h.browser()
	b.signIn("cora@example.com", "/")
	for _, tc := range []struct {
		name, path, appCC, appVary string
		signedIn                   bool
		wantCC, wantVary           string
	}{
		{"nothing said", "/page", "", "", true, "private", "Cookie"},
		{"public with max-age", "/page", "public, max-age=600, s-maxage=3600", "", true, "private, max-age=600", "Cookie"},
		{"already private", "/page", "private, max-age=60", "Accept-Encoding", true, "private, max-age=60", "Accept-Encoding, Cookie"},
		{"no-store", "/page", "no-store", "Cookie", true, "no-store", "Cookie"},
		{"public path untouched", "/public/page", "public, max-age=600", "", false, "public, max-age=600", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h.up.Handle = func(w http.ResponseWriter, r *http.Request) {
				if tc.appCC != "" {
					w.Header().Set("Cache-Control", tc.appCC)
				}
				if tc.appVary != "" {
					w.Header().Set("Vary", tc.appVary)
				}
				_, _ = w.Write([]byte("page"))
			}
			req, _ := http.NewRequest(http.MethodGet, h.URL+tc.path, nil)
			var resp *http.Response
			var err error
			if tc.signedIn {
				resp, err = b.c.Do(req)
			} else {
				resp, err = http.DefaultClient.Do(req)
			}
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d", resp.StatusCode)
			}
			if got := strings.Join(resp.Header.Values("Cache-Control"), ", "); got != tc.wantCC {
				t.Errorf("Cache-Control = %q, want %q", got, tc.wantCC)
			}
			if got := strings.Join(resp.Header.Values("Vary"), ", "); got != tc.wantVary {
				t.Errorf("Vary = %q, want %q", got, tc.wantVary)
			}
		})
	}
}
