package safeurl

import (
	"errors"
	"net/url"
	"strings"
	"testing"
)

func TestCleanPathAccepts(t *testing.T) {
	tests := []struct {
		name, raw, want string
	}{
		{"root", "/", "/"},
		{"plain", "/dashboard", "/dashboard"},
		{"nested", "/a/b/c", "/a/b/c"},
		{"trailing slash kept", "/public/", "/public/"},
		{"double slash collapsed", "/public//x", "/public/x"},
		{"leading double slash collapsed", "//public/x", "/public/x"},
		{"many slashes collapsed", "///a////b///", "/a/b/"},
		{"encoded space decoded", "/a%20b", "/a b"},
		{"encoded letters decoded", "/%70ublic/x", "/public/x"},
		{"lower-case escape", "/caf%c3%a9", "/café"},
		{"upper-case escape", "/caf%C3%A9", "/café"},
		{"raw UTF-8", "/café", "/café"},
		{"hangul", "/%ED%95%9C", "/한"},
		{"dot inside name", "/file.txt", "/file.txt"},
		{"encoded dot inside name", "/file%2Etxt", "/file.txt"},
		{"leading dot name", "/.well-known/x", "/.well-known/x"},
		{"encoded leading dot name", "/%2ewell-known/x", "/.well-known/x"},
		{"dots with letters", "/a..b", "/a..b"},
		{"trailing dot name", "/a.", "/a."},
		{"dot then letter", "/..a", "/..a"},
		{"semicolon parameter", "/a;jsessionid=1/b", "/a;jsessionid=1/b"},
		{"semicolon at end of name", "/a;", "/a;"},
		{"literal percent", "/100%25", "/100%"},
		{"literal percent harmless escape", "/a%2541", "/a%41"},
		{"literal percent not hex", "/a%25zz", "/a%zz"},
		{"iis unicode escape of a letter", "/%25u0041", "/%u0041"},
		{"double encoded letter", "/caf%25C3%25A9", "/caf%C3%A9"},
		{"encoded question mark", "/a%3Fb", "/a?b"},
		{"encoded hash", "/a%23b", "/a#b"},
		{"plus kept", "/a+b", "/a+b"},
		{"space segment", "/a/ /b", "/a/ /b"},
		{"ideographic full stop is not a dot", "/%E3%80%82%E3%80%82/x", "/。。/x"},
		{"colon", "/a:b", "/a:b"},
		{"tilde", "/~user", "/~user"},
		{"asterisk", "/a*b", "/a*b"},
		{"braces and brackets", "/{a}[b]", "/{a}[b]"},
		{"latin-1 letter", "/%C3%BC", "/ü"},
		{"decomposed form is not ASCII", "/u%CC%88", "/u\u0308"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := CleanPath(tt.raw)
			if err != nil {
				t.Fatalf("CleanPath(%q) error: %v", tt.raw, err)
			}
			if got != tt.want {
				t.Fatalf("CleanPath(%q) = %q, want %q", tt.raw, got, tt.want)
			}
		})
	}
}

func TestCleanPathRejects(t *testing.T) {
	tests := []struct {
		name, raw string
	}{
		{"empty", ""},
		{"relative", "public/x"},
		{"absolute form", "http://h/x"},
		{"authority form", "h:443"},
		{"asterisk form", "*"},
		{"dot segment", "/public/./x"},
		{"dot dot segment", "/public/../admin"},
		{"dot dot at end", "/public/.."},
		{"dot at end", "/public/."},
		{"dot dot first", "/../admin"},
		{"encoded dot dot lower", "/public/%2e%2e/admin"},
		{"encoded dot dot upper", "/public/%2E%2E/admin"},
		{"half encoded dot dot", "/public/.%2e/admin"},
		{"half encoded dot dot other half", "/public/%2e./admin"},
		{"encoded single dot", "/public/%2e/admin"},
		{"encoded slash lower", "/public%2f..%2fadmin"},
		{"encoded slash upper", "/public%2F..%2Fadmin"},
		{"encoded slash alone", "/a%2Fb"},
		{"raw backslash", "/public\\..\\admin"},
		{"encoded backslash", "/public%5C..%5Cadmin"},
		{"encoded backslash lower", "/a%5cb"},
		{"raw NUL", "/a\x00b"},
		{"encoded NUL", "/a%00b"},
		{"raw tab", "/a\tb"},
		{"encoded tab", "/a%09b"},
		{"raw newline", "/a\nb"},
		{"encoded CR", "/a%0db"},
		{"encoded LF", "/a%0Ab"},
		{"raw DEL", "/a\x7fb"},
		{"encoded DEL", "/a%7Fb"},
		{"encoded unit separator", "/a%1Fb"},
		{"C1 control", "/a%C2%85b"},
		{"truncated escape", "/a%2"},
		{"bare percent", "/a%"},
		{"non-hex escape", "/a%zzb"},
		{"half hex escape", "/a%2gb"},
		{"percent percent", "/a%%32%65"},
		{"invalid UTF-8 byte", "/a%FFb"},
		{"overlong dot C0AE", "/public/%C0%AE%C0%AE/admin"},
		{"overlong slash C0AF", "/public/..%C0%AFadmin"},
		{"overlong dot E080AE", "/public/%E0%80%AE%E0%80%AE/admin"},
		{"overlong slash E080AF", "/a%E0%80%AFb"},
		{"overlong backslash C19C", "/a%C1%9Cb"},
		{"surrogate half", "/a%ED%A0%80b"},
		{"raw invalid UTF-8", "/a\xffb"},
		{"tomcat dot dot semicolon", "/public/..;/admin"},
		{"tomcat dot semicolon", "/public/.;/admin"},
		{"tomcat dot dot semicolon param", "/public/..;jsessionid=x/admin"},
		{"encoded tomcat", "/public/%2e%2e;/admin"},
		{"empty name with param", "/;x/admin"},
		{"empty name with param mid", "/public/;/admin"},
		{"three dots", "/public/.../admin"},
		{"dot dot space", "/public/.. /admin"},
		{"encoded dot dot space", "/public/..%20/admin"},
		{"space dot dot", "/public/ ../admin"},
		{"double encoded dot", "/public/%252e%252e/admin"},
		{"double encoded slash", "/public%252f..%252fadmin"},
		{"double encoded backslash", "/a%255cb"},
		{"double encoded NUL", "/a%2500b"},
		{"double encoded percent", "/a%25252e"},
		{"double encoded newline", "/a%250ab"},
		{"double encoded split", "/public/%25%32%65%25%32%65/admin"},
		{"double encoded half split", "/public/%25%32e/admin"},
		{"double encoded overlong dot", "/public/%25C0%25AE%25C0%25AE/admin"},
		{"double encoded invalid UTF-8", "/a%25FFb"},
		{"double encoded fullwidth slash", "/admin%25EF%25BC%258Fsecret"},
		{"double encoded fullwidth letter", "/%25EF%25BD%2581dmin"},
		{"iis unicode escape dot", "/public/%25u002e%25u002e/admin"},
		{"iis unicode escape slash", "/a%25u002Fb"},
		{"iis unicode escape fullwidth slash", "/a%25uFF0Fb"},
		{"iis unicode escape fullwidth letter", "/%25uFF41dmin"},
		{"fullwidth solidus", "/public%EF%BC%8F..%EF%BC%8Fadmin"},
		{"fullwidth full stops", "/public/%EF%BC%8E%EF%BC%8E/admin"},
		{"raw fullwidth full stops", "/public/．．/admin"},
		{"fullwidth reverse solidus", "/a%EF%BC%BCb"},
		{"two dot leader", "/public/%E2%80%A5/admin"},
		{"small full stops", "/public/%EF%B9%92%EF%B9%92/admin"},
		{"fullwidth slash inside name", "/admin%EF%BC%8Fsecret"},
		{"fullwidth letters", "/%EF%BD%81dmin/x"},
		{"ligature", "/%EF%AC%81le"},
		{"no-break space", "/a%C2%A0b"},
		{"division slash", "/admin%E2%88%95secret"},
		{"fraction slash", "/admin%E2%81%84secret"},
		{"set minus", "/admin%E2%88%96secret"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := CleanPath(tt.raw)
			if err == nil {
				t.Fatalf("CleanPath(%q) = %q, want ErrBadPath", tt.raw, got)
			}
			if !errors.Is(err, ErrBadPath) {
				t.Fatalf("CleanPath(%q) error %v is not ErrBadPath", tt.raw, err)
			}
			if got != "" {
				t.Fatalf("CleanPath(%q) returned %q with its error", tt.raw, got)
			}
		})
	}
}

func TestCleanPathErrorNeverQuotesThePath(t *testing.T) {
	secret := "s3cr3t-token-value"
	for _, raw := range []string{
		"/" + secret + "/%2e%2e/x",
		"/" + secret + "%00",
		"/" + secret + "%zz",
		"/" + secret + "%EF%BC%8F",
	} {
		_, err := CleanPath(raw)
		if err == nil {
			t.Fatalf("CleanPath(%q) accepted", raw)
		}
		if strings.Contains(err.Error(), secret) {
			t.Fatalf("error %q quotes the request path", err)
		}
	}
}

func TestCleanPathRoundTrip(t *testing.T) {
	tests := []struct {
		name, raw string
	}{
		{"plain", "/a/b"},
		{"space", "/a%20b/"},
		{"unicode", "/caf%C3%A9/%ED%95%9C"},
		{"literal percent", "/100%25/x"},
		{"question mark", "/a%3Fb"},
		{"semicolon", "/a;b=c/d"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := CleanPath(tt.raw)
			if err != nil {
				t.Fatalf("CleanPath(%q): %v", tt.raw, err)
			}
			forwarded := (&url.URL{Path: p}).EscapedPath()
			again, err := CleanPath(forwarded)
			if err != nil {
				t.Fatalf("CleanPath of forwarded %q: %v", forwarded, err)
			}
			if again != p {
				t.Fatalf("forwarded path %q cleans to %q, want %q", forwarded, again, p)
			}
		})
	}
}

func TestCleanPathDoesNotAllocateForCleanPaths(t *testing.T) {
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := CleanPath("/public/assets/app.js"); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("CleanPath allocated %.0f times for a clean path", allocs)
	}
}
