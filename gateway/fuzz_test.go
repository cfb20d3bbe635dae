package gateway

import (
	"net/url"
	"path"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

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
	a, err := NewAccess([]Rule{{Paths: []string{"/public/**"}, Policy: PolicyPublic}}, PolicyAuthenticated)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		p, err := CleanPath(raw)
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
		again, err := CleanPath(forwarded)
		if err != nil || again != p {
			t.Fatalf("CleanPath(%q) = %q, forwarded as %q cleans to %q, %v", raw, p, forwarded, again, err)
		}
		// The decision cannot depend on a spelling path.Clean would undo.
		if got, want := a.Decide("h", "GET", p).Policy, a.Decide("h", "GET", cleaned).Policy; got != want {
			t.Fatalf("decision on %q is %s, on %q it is %s", p, got, cleaned, want)
		}
	})
}

func FuzzSafeRedirect(f *testing.F) {
	for _, s := range []string{
		"/", "/dashboard?x=1#y", "//evil.com", "///evil.com", "/\\evil.com", "\\/evil.com",
		"/\t/evil.com", "/%09/evil.com", "/%2F/evil.com", "/%5Cevil.com", "https:evil.com",
		"http:/evil.com", "https://evil.com", "https://gate.example.com@evil.com",
		"https://evil.com\\@gate.example.com", "https://gate.example.com.evil.com",
		"javascript:alert(1)", "data:text/html,x", "//%65vil.com", "%2F%2Fevil.com",
		"/%2e%2e//evil.com", "／／evil.com", "/\u3002evil.com", "https://gate.example.com:99999",
		"https://gate.example.com/x", "https://eu.apps.example.com/", "/café", "/a b",
		"https://app.example.com/%C3%A9?q=%2F", "/%25252F/x",
	} {
		f.Add(s)
	}
	pub, err := url.Parse("https://gate.example.com")
	if err != nil {
		f.Fatal(err)
	}
	r := NewRedirects(pub, []string{"app.example.com", "*.apps.example.com"})
	base, err := url.Parse("https://gate.example.com/.gatehouse/verify")
	if err != nil {
		f.Fatal(err)
	}
	allowedHost := func(h string) bool {
		h = strings.ToLower(h)
		return h == "gate.example.com" || h == "app.example.com" || strings.HasSuffix(h, ".apps.example.com")
	}
	f.Fuzz(func(t *testing.T, rd string) {
		got := r.Safe(rd)
		if got == "" {
			t.Fatalf("Safe(%q) is empty", rd)
		}
		for i := 0; i < len(got); i++ {
			if c := got[i]; c < 0x20 || c >= 0x7f || c == '\\' || c == ' ' {
				t.Fatalf("Safe(%q) = %q holds byte %#x", rd, got, c)
			}
		}
		if got[0] == '/' {
			if len(got) > 1 && (got[1] == '/' || got[1] == '\\') {
				t.Fatalf("Safe(%q) = %q: scheme-relative", rd, got)
			}
		} else {
			u, err := url.Parse(got)
			if err != nil || !u.IsAbs() || u.User != nil || !allowedHost(u.Hostname()) {
				t.Fatalf("Safe(%q) = %q: not an allowed absolute URL (%v)", rd, got, err)
			}
			if s := strings.ToLower(u.Scheme); s != "https" {
				t.Fatalf("Safe(%q) = %q: scheme %q", rd, got, s)
			}
		}
		ref, err := url.Parse(got)
		if err != nil {
			t.Fatalf("Safe(%q) = %q does not parse: %v", rd, got, err)
		}
		if host := base.ResolveReference(ref).Hostname(); !allowedHost(host) {
			t.Fatalf("Safe(%q) = %q resolves to host %q", rd, got, host)
		}
		if again := r.Safe(got); again != got {
			t.Fatalf("Safe(%q) = %q, but Safe(%q) = %q", rd, got, got, again)
		}
	})
}
