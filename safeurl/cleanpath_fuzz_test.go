package safeurl_test

import (
	"net/url"
	"path"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"gatehouse/access"
	"gatehouse/safeurl"
)

// FuzzCleanPath lives outside the package so it can also check that the
// access decision cannot depend on a spelling path.Clean would undo.
func FuzzCleanPath(f *testing.F) {
	for _, s := range []string{
		"/", "/public/x", "//public//x/", "/public/../admin", "/public/%2e%2e/admin",
		"/public%2F..%2Fadmin", "/public\\..\\admin", "/a%00b", "/%C0%AE%C0%AE/",
		"/public/..;/admin", "/public/%252e%252e/admin", "/caf%C3%A9", "/100%25",
		"/a%25%32%65", "/%EF%BC%8E%EF%BC%8E/", "/a;b/c", "/.well-known/x", "/a%20b",
		"http://h/x", "/%u002e", "/%25u002e", "/u%CC%88", "/%E2%80%A5",
	} {
		f.Add(s)
	}
	a, err := access.Compile([]access.Rule{{Paths: []string{"/public/**"}, Policy: access.PolicyPublic}}, access.PolicyAuthenticated, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		p, err := safeurl.CleanPath(raw)
		if err != nil {
			if p != "" {
				t.Fatalf("CleanPath(%q) returned %q with error %v", raw, p, err)
			}
			return
		}
		if !strings.HasPrefix(p, "/") {
			t.Fatalf("CleanPath(%q) = %q: does not start with /", raw, p)
		}
		if strings.Contains(p, "//") {
			t.Fatalf("CleanPath(%q) = %q: repeated slash", raw, p)
		}
		if strings.ContainsAny(p, "\x00\\") {
			t.Fatalf("CleanPath(%q) = %q: NUL or backslash", raw, p)
		}
		if !utf8.ValidString(p) {
			t.Fatalf("CleanPath(%q) = %q: invalid UTF-8", raw, p)
		}
		for _, r := range p {
			if unicode.IsControl(r) {
				t.Fatalf("CleanPath(%q) = %q: control character", raw, p)
			}
		}
		for _, seg := range strings.Split(p, "/") {
			name, _, _ := strings.Cut(seg, ";")
			if name != "" && strings.Trim(name, ".") == "" {
				t.Fatalf("CleanPath(%q) = %q: dot segment %q", raw, p, seg)
			}
		}
		// Being free of dot segments and repeated slashes, p is clean up
		// to a trailing slash.
		cleaned := path.Clean(p)
		if cleaned != p && cleaned+"/" != p {
			t.Fatalf("CleanPath(%q) = %q, but path.Clean gives %q", raw, p, cleaned)
		}
		// One standard decoding of the input, slashes collapsed, is p.
		dec, err := url.PathUnescape(raw)
		if err != nil {
			t.Fatalf("CleanPath(%q) accepted what url.PathUnescape refuses: %v", raw, err)
		}
		for strings.Contains(dec, "//") {
			dec = strings.ReplaceAll(dec, "//", "/")
		}
		if dec != p {
			t.Fatalf("CleanPath(%q) = %q, standard decoding gives %q", raw, p, dec)
		}
		// Forwarding re-encodes p; the upstream must see the same path.
		forwarded := (&url.URL{Path: p}).EscapedPath()
		again, err := safeurl.CleanPath(forwarded)
		if err != nil || again != p {
			t.Fatalf("CleanPath(%q) = %q, forwarded as %q cleans to %q, %v", raw, p, forwarded, again, err)
		}
		// The decision cannot depend on a spelling path.Clean would undo.
		if got, want := a.Decide("h", "GET", p).Policy, a.Decide("h", "GET", cleaned).Policy; got != want {
			t.Fatalf("decision on %q is %s, on %q it is %s", p, got, cleaned, want)
		}
	})
}
