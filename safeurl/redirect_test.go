package safeurl

import (
	"net/url"
	"strings"
	"testing"
)

func testRedirects(t *testing.T, public string, allowed ...string) *Redirects {
	t.Helper()
	u, err := url.Parse(public)
	if err != nil {
		t.Fatalf("parse %q: %v", public, err)
	}
	return NewRedirects(u, allowed)
}

func TestSafeRefusesKnownBypasses(t *testing.T) {
	r := testRedirects(t, "https://gate.example.com", "app.example.com", "*.apps.example.com")
	tests := []struct {
		name, rd string
	}{
		{"empty", ""},
		{"scheme relative", "//evil.com"},
		{"scheme relative path", "//evil.com/x"},
		{"triple slash", "///evil.com"},
		{"slash backslash", "/\\evil.com"},
		{"backslash slash", "\\/evil.com"},
		{"double backslash", "\\\\evil.com"},
		{"slash tab slash", "/\t/evil.com"},
		{"slash newline slash", "/\n/evil.com"},
		{"slash CR slash", "/\r/evil.com"},
		{"encoded tab", "/%09/evil.com"},
		{"encoded newline", "/%0a/evil.com"},
		{"encoded CR", "/%0D/evil.com"},
		{"encoded NUL", "/%00/evil.com"},
		{"encoded slash", "/%2F/evil.com"},
		{"encoded slash lower", "/%2f/evil.com"},
		{"encoded backslash", "/%5Cevil.com"},
		{"encoded backslash lower", "/%5cevil.com"},
		{"double encoded slash", "/%252F/evil.com"},
		{"double encoded backslash", "/%255Cevil.com"},
		{"double encoded tab", "/%2509/evil.com"},
		{"triple encoded slash", "/%25252F/evil.com"},
		{"deeply encoded slash", "/%2525252F/evil.com"},
		{"encoded first slash", "%2F%2Fevil.com"},
		{"encoded both slashes", "%2f%2fevil.com"},
		{"encoded letter after double slash", "//%65vil.com"},
		{"encoded dot dot double slash", "/%2e%2e//evil.com"},
		{"dot dot double slash", "/..//evil.com"},
		{"dot segment", "/./x"},
		{"dot dot segment", "/a/../x"},
		{"encoded dot dot", "/a/%2e%2e/x"},
		{"inner double slash", "/a//evil.com"},
		{"invalid escape", "/%zz"},
		{"invalid escape in fragment", "/#00%"},
		{"invalid escape in query", "/?a=%g0"},
		{"truncated escape in absolute", "https://gate.example.com/?a=%4"},
		{"https without slashes", "https:evil.com"},
		{"http with one slash", "http:/evil.com"},
		{"other host", "https://evil.com"},
		{"other host path", "https://evil.com/x"},
		{"userinfo public host", "https://gate.example.com@evil.com"},
		{"userinfo with password", "https://gate.example.com:443@evil.com"},
		{"userinfo on public host", "https://user@gate.example.com/"},
		{"backslash userinfo", "https://evil.com\\@gate.example.com"},
		{"public host as subdomain", "https://gate.example.com.evil.com"},
		{"public host suffix", "https://evilgate.example.com"},
		{"public host trailing dot", "https://gate.example.com./x"},
		{"encoded host", "https://%67ate.example.com/"},
		{"encoded dot in host", "https://gate%2Eexample.com/"},
		{"fullwidth host", "https://ｇate.example.com/"},
		{"port out of range", "https://gate.example.com:99999"},
		{"port zero", "https://gate.example.com:0/"},
		{"other port on public host", "https://gate.example.com:8443/"},
		{"empty port", "https://gate.example.com:/"},
		{"port with sign", "https://gate.example.com:+443/"},
		{"downgrade to http", "http://gate.example.com/"},
		{"ftp", "ftp://gate.example.com/"},
		{"javascript", "javascript:alert(1)"},
		{"javascript mixed case", "JaVaScRiPt:alert(1)"},
		{"javascript leading space", " javascript:alert(1)"},
		{"javascript after slashes", "javascript://gate.example.com/%0aalert(1)"},
		{"data", "data:text/html,<script>alert(1)</script>"},
		{"vbscript", "vbscript:msgbox(1)"},
		{"bare host", "evil.com"},
		{"bare relative", "dashboard"},
		{"NUL first", "\x00/x"},
		{"NUL later", "/x\x00"},
		{"DEL", "/x\x7f"},
		{"leading space", " /x"},
		{"leading tab", "\t/x"},
		{"fullwidth slashes", "／／evil.com"},
		{"slash fullwidth slash", "/／evil.com"},
		{"slash fullwidth backslash", "/＼evil.com"},
		{"encoded fullwidth slash", "/%EF%BC%8Fevil.com"},
		{"bidi override", "/\u202eevil.com"},
		{"C1 control", "/\u0085/evil.com"},
		{"invalid UTF-8", "/\xff"},
		{"too long", "/" + strings.Repeat("a", 2048)},
		{"too long once encoded", "/" + strings.Repeat(" ", 1000)},
		{"too long once unicode is encoded", "/" + strings.Repeat("é", 400)},
		{"backslash in query", "/x?a=\\b"},
		{"newline in query", "/x?a=\nb"},
		{"wildcard apex", "https://apps.example.com/"},
		{"wildcard lookalike", "https://evilapps.example.com/"},
		{"allowed host other port", "https://app.example.com:8443/"},
		{"allowed host as userinfo", "https://app.example.com@evil.com/"},
		{"allowed host encoded path slash", "https://app.example.com/%2F/evil.com"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := r.Safe(tt.rd); got != "/" {
				t.Fatalf("Safe(%q) = %q, want /", tt.rd, got)
			}
		})
	}
}

func TestSafeAccepts(t *testing.T) {
	r := testRedirects(t, "https://gate.example.com", "app.example.com", "*.apps.example.com", "ops.example.com:8443", "[::1]:9000", "not a host")
	tests := []struct {
		name, rd, want string
	}{
		{"root", "/", "/"},
		{"path", "/dashboard", "/dashboard"},
		{"path query fragment", "/dashboard?x=1#y", "/dashboard?x=1#y"},
		{"query with encoded slashes", "/login?next=%2F%2Fevil.com", "/login?next=%2F%2Fevil.com"},
		{"query with slashes", "/a?b=//c", "/a?b=//c"},
		{"query only", "/?x=1", "/?x=1"},
		{"fragment only", "/#top", "/#top"},
		{"encoded space", "/a%20b", "/a%20b"},
		{"space encoded", "/a b", "/a%20b"},
		{"literal percent", "/100%25", "/100%25"},
		{"unicode path encoded", "/café", "/caf%C3%A9"},
		{"ideographic full stop is a path", "/\u3002evil.com", "/%E3%80%82evil.com"},
		{"dots inside names", "/a.b/c..d/.well-known", "/a.b/c..d/.well-known"},
		{"trailing slash", "/a/b/", "/a/b/"},
		{"longest", "/" + strings.Repeat("a", 2047), "/" + strings.Repeat("a", 2047)},
		{"public host", "https://gate.example.com/x", "https://gate.example.com/x"},
		{"public host no path", "https://gate.example.com", "https://gate.example.com"},
		{"public host default port", "https://gate.example.com:443/x", "https://gate.example.com:443/x"},
		{"public host upper case", "HTTPS://GATE.example.com/x", "HTTPS://GATE.example.com/x"},
		{"public host query", "https://gate.example.com?x=1", "https://gate.example.com?x=1"},
		{"allowed host", "https://app.example.com/x?y=1#z", "https://app.example.com/x?y=1#z"},
		{"wildcard subdomain", "https://eu.apps.example.com/", "https://eu.apps.example.com/"},
		{"wildcard deep subdomain", "https://a.b.apps.example.com/", "https://a.b.apps.example.com/"},
		{"allowed host with port", "https://ops.example.com:8443/", "https://ops.example.com:8443/"},
		{"allowed ipv6 with port", "https://[::1]:9000/", "https://[::1]:9000/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := r.Safe(tt.rd)
			if got != tt.want {
				t.Fatalf("Safe(%q) = %q, want %q", tt.rd, got, tt.want)
			}
			if again := r.Safe(got); again != got {
				t.Fatalf("Safe(%q) = %q: not stable", got, again)
			}
		})
	}
}

func TestSafeHTTPPublicURL(t *testing.T) {
	r := testRedirects(t, "http://localhost:8080", "app.test")
	tests := []struct {
		name, rd, want string
	}{
		{"same origin", "http://localhost:8080/x", "http://localhost:8080/x"},
		{"other port", "http://localhost:9090/x", "/"},
		{"default port", "http://localhost/x", "/"},
		{"allowed host http", "http://app.test/", "http://app.test/"},
		{"allowed host https", "https://app.test/", "https://app.test/"},
		{"allowed host explicit default port", "http://app.test:80/", "http://app.test:80/"},
		{"allowed host other port", "http://app.test:8080/", "/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := r.Safe(tt.rd); got != tt.want {
				t.Fatalf("Safe(%q) = %q, want %q", tt.rd, got, tt.want)
			}
		})
	}
}

func TestSafeIPPublicURL(t *testing.T) {
	tests := []struct {
		name, public, rd, want string
	}{
		{"ipv4 same origin", "http://127.0.0.1:8080", "http://127.0.0.1:8080/x", "http://127.0.0.1:8080/x"},
		{"ipv4 other port", "http://127.0.0.1:8080", "http://127.0.0.1:8081/x", "/"},
		{"ipv4 other address", "http://127.0.0.1:8080", "http://127.0.0.2:8080/x", "/"},
		{"ipv4 decimal trick", "http://127.0.0.1:8080", "http://2130706433:8080/x", "/"},
		{"ipv6 same origin", "http://[::1]:8080", "http://[::1]:8080/x", "http://[::1]:8080/x"},
		{"ipv6 other port", "http://[::1]:8080", "http://[::1]:9090/x", "/"},
		{"ipv6 zone", "http://[::1]:8080", "http://[::1%25eth0]:8080/x", "/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := testRedirects(t, tt.public)
			if got := r.Safe(tt.rd); got != tt.want {
				t.Fatalf("Safe(%q) = %q, want %q", tt.rd, got, tt.want)
			}
		})
	}
}

func TestSafeWithoutPublicURL(t *testing.T) {
	r := NewRedirects(nil, nil)
	if got := r.Safe("/x"); got != "/x" {
		t.Fatalf("Safe(/x) = %q", got)
	}
	if got := r.Safe("https://gate.example.com/x"); got != "/" {
		t.Fatalf("absolute target accepted without public URL: %q", got)
	}
	if got := r.Absolute("/x"); got != "/x" {
		t.Fatalf("Absolute(/x) = %q", got)
	}
}

func TestAbsolute(t *testing.T) {
	r := testRedirects(t, "https://Gate.Example.com/base/", "app.example.com")
	tests := []struct {
		name, in, want string
	}{
		{"relative", "/dashboard?x=1", "https://gate.example.com/dashboard?x=1"},
		{"root", "/", "https://gate.example.com/"},
		{"absolute kept", "https://app.example.com/x", "https://app.example.com/x"},
		{"unsafe revalidated", "//evil.com", "https://gate.example.com/"},
		{"unsafe absolute", "https://evil.com/", "https://gate.example.com/"},
		{"unicode encoded", "/é", "https://gate.example.com/%C3%A9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := r.Absolute(tt.in); got != tt.want {
				t.Fatalf("Absolute(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// TestSafeResultStaysOnAllowedOrigin checks, with the standard parser, that
// whatever Safe returns resolves on the public origin or an allowed host.
func TestSafeResultStaysOnAllowedOrigin(t *testing.T) {
	r := testRedirects(t, "https://gate.example.com", "app.example.com")
	base, _ := url.Parse("https://gate.example.com/.gatehouse/verify")
	inputs := []string{
		"/x", "//evil.com", "/\\evil.com", "https://evil.com", "/%2F/evil.com",
		"https://app.example.com/x", "https://gate.example.com@evil.com",
		"/a?b=//evil.com", "/#//evil.com", "/?//evil.com",
	}
	allowed := map[string]bool{"gate.example.com": true, "app.example.com": true}
	for _, in := range inputs {
		t.Run(in, func(t *testing.T) {
			got := r.Safe(in)
			ref, err := url.Parse(got)
			if err != nil {
				t.Fatalf("Safe(%q) = %q does not parse: %v", in, got, err)
			}
			if host := base.ResolveReference(ref).Hostname(); !allowed[host] {
				t.Fatalf("Safe(%q) = %q resolves to host %q", in, got, host)
			}
		})
	}
}

func TestAllowsOrigin(t *testing.T) {
	pub, _ := url.Parse("https://auth.example.com")
	r := NewRedirects(pub, []string{"*.apps.example.com", "wiki.example.com"})
	for _, tc := range []struct {
		origin string
		want   bool
	}{
		{"https://auth.example.com", true},
		{"https://a.apps.example.com", true},
		{"https://wiki.example.com", true},
		{"https://wiki.example.com:443", true},
		{"http://auth.example.com", false},  // public URL is https
		{"https://apps.example.com", false}, // wildcard covers subdomains only
		{"https://evil.com", false},
		{"https://auth.example.com.evil.com", false},
		{"https://auth.example.com/path", false},
		{"null", false},
		{"", false},
		{"https://user@auth.example.com", false},
	} {
		if got := r.AllowsOrigin(tc.origin); got != tc.want {
			t.Errorf("AllowsOrigin(%q) = %v, want %v", tc.origin, got, tc.want)
		}
	}
}
