package safeurl

import (
	"net/url"
	"strings"
	"testing"
)

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
