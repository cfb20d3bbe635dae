package email

import (
	"errors"
	"strings"
	"testing"
)

func TestParseAccepts(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"plain", "alice@example.com", "alice@example.com"},
		{"lower-cased", "Alice@Example.COM", "alice@example.com"},
		{"surrounding spaces trimmed", "  alice@example.com ", "alice@example.com"},
		{"dots in local part", "a.b.c@example.com", "a.b.c@example.com"},
		{"plus tag", "alice+tag@example.com", "alice+tag@example.com"},
		{"apostrophe", "o'brien@example.ie", "o'brien@example.ie"},
		{"atext symbols", "a#$&*=?^_`{|}~-/b@example.com", "a#$&*=?^_`{|}~-/b@example.com"},
		{"subdomain", "a@mail.eu.example.com", "a@mail.eu.example.com"},
		{"hyphen in label", "a@my-site.example", "a@my-site.example"},
		{"digits in label", "a@123.example.com", "a@123.example.com"},
		{"short tld", "a@b.c", "a@b.c"},
		{"max local part", strings.Repeat("a", 64) + "@example.com", strings.Repeat("a", 64) + "@example.com"},
		{"max label", "a@" + strings.Repeat("b", 63) + ".com", "a@" + strings.Repeat("b", 63) + ".com"},
		{"german idn", "a@bücher.de", "a@xn--bcher-kva.de"},
		{"german idn upper case", "A@BÜCHER.DE", "a@xn--bcher-kva.de"},
		{"idn already punycode", "a@xn--bcher-kva.de", "a@xn--bcher-kva.de"},
		{"punycode upper case", "a@XN--BCHER-KVA.DE", "a@xn--bcher-kva.de"},
		{"korean idn", "user@예시.한국", "user@xn--vv4b11d.xn--3e0b707e"},
		{"japanese kanji and kana", "user@例え.jp", "user@xn--r8jz45g.jp"},
		{"cyrillic under cyrillic tld", "user@почта.рф", "user@xn--80a1acny.xn--p1ai"},
		{"cyrillic lookalikes under cyrillic tld", "user@сосо.рф", "user@xn--n1aahb.xn--p1ai"},
		{"cyrillic with non-lookalike letters", "user@пример.com", "user@xn--e1afmkfd.com"},
		{"greek", "user@παράδειγμα.gr", "user@xn--hxajbheg2az3al.gr"},
		{"fullwidth latin folded", "a@ｅｘａｍｐｌｅ.com", "a@example.com"},
		{"ideographic full stop", "a@example。com", "a@example.com"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.in)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Fatalf("Parse(%q) = %q, want %q", tt.in, got, tt.want)
			}
			again, err := Parse(got)
			if err != nil || again != got {
				t.Fatalf("Parse(%q) = %q, %v: not stable", got, again, err)
			}
		})
	}
}

func TestParseRejects(t *testing.T) {
	tests := []struct {
		name, in string
	}{
		{"empty", ""},
		{"only spaces", "   "},
		{"no at", "alice.example.com"},
		{"two ats", "alice@evil.com@example.com"},
		{"at in quoted local", `"alice@evil"@example.com`},
		{"quoted local part", `"alice"@example.com`},
		{"display name", "Alice <alice@example.com>"},
		{"angle brackets only", "<alice@example.com>"},
		{"comment", "alice(comment)@example.com"},
		{"comment in domain", "alice@(c)example.com"},
		{"list with comma", "alice@example.com,eve@evil.com"},
		{"list with semicolon", "alice@example.com;eve@evil.com"},
		{"colon group", "group:alice@example.com"},
		{"backslash", `al\ice@example.com`},
		{"CR", "alice@example.com\r"},
		{"LF header injection", "alice@example.com\nBcc: eve@evil.com"},
		{"CRLF header injection", "alice@example.com\r\nBcc: eve@evil.com"},
		{"NUL", "alice@example.com\x00"},
		{"NUL in local", "ali\x00ce@example.com"},
		{"tab", "alice@example.com\t"},
		{"DEL", "ali\x7fce@example.com"},
		{"inner space", "ali ce@example.com"},
		{"space before at", "alice @example.com"},
		{"no-break space", "alice\u00a0@example.com"},
		{"line separator", "alice@example.com\u2028"},
		{"zero width joiner", "alice@exa\u200dmple.com"},
		{"zero width space", "alice@exa\u200bmple.com"},
		{"right to left override", "alice@\u202eexample.com"},
		{"invalid UTF-8", "alice@exa\xffmple.com"},
		{"empty local", "@example.com"},
		{"empty domain", "alice@"},
		{"leading dot local", ".alice@example.com"},
		{"trailing dot local", "alice.@example.com"},
		{"double dot local", "al..ice@example.com"},
		{"percent relay", "alice%evil.com@example.com"},
		{"bang relay", "evil!alice@example.com"},
		{"non-ASCII local", "jörg@example.com"},
		{"cyrillic local", "аlice@example.com"},
		{"local too long", strings.Repeat("a", 65) + "@example.com"},
		{"address too long", "a@" + strings.Repeat(strings.Repeat("b", 60)+".", 5) + "com"},
		{"domain without dot", "alice@localhost"},
		{"trailing dot domain", "alice@example.com."},
		{"leading dot domain", "alice@.example.com"},
		{"empty label", "alice@example..com"},
		{"ipv4 literal", "alice@[1.2.3.4]"},
		{"ipv6 literal", "alice@[IPv6:::1]"},
		{"bare ipv4", "alice@1.2.3.4"},
		{"numeric tld", "alice@example.123"},
		{"label leading hyphen", "alice@-example.com"},
		{"label trailing hyphen", "alice@example-.com"},
		{"hyphens in third and fourth", "alice@ab--cd.com"},
		{"label too long", "alice@" + strings.Repeat("b", 64) + ".com"},
		{"underscore in domain", "alice@my_site.com"},
		{"invalid punycode", "alice@xn--99999999999a.com"},
		{"punycode decoding to nothing", "alice@xn--a.com"},
		{"punycode of ASCII", "alice@xn--abc-.com"},
		{"punycode of a symbol", "alice@xn--zz-zzz.com"},
		{"emoji", "alice@💩.com"},
		{"emoji punycode", "alice@xn--ls8h.com"},
		{"snowman", "alice@☃.com"},
		{"fraction slash", "alice@example⁄evil.com"},
		{"latin with cyrillic a", "alice@pаypal.com"},
		{"latin with cyrillic a punycode", "alice@xn--pypal-4ve.com"},
		{"latin with greek omicron", "alice@gοogle.com"},
		{"cyrillic imitating latin", "alice@аррӏе.com"},
		{"cyrillic imitating latin punycode", "alice@xn--80ak6aa92e.com"},
		{"greek imitating latin", "alice@ροκ.com"},
		{"cyrillic lookalike tld", "alice@example.сом"},
		{"hangul with cyrillic", "alice@한국а.com"},
		{"japanese with cyrillic", "alice@例えа.jp"},
		{"armenian with latin", "alice@goօgle.com"},
		{"two other scripts", "alice@ไทยعربي.com"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.in)
			if err == nil {
				t.Fatalf("Parse(%q) = %q, want ErrBadAddress", tt.in, got)
			}
			if !errors.Is(err, ErrBadAddress) {
				t.Fatalf("Parse(%q) error %v is not ErrBadAddress", tt.in, err)
			}
			if got != "" {
				t.Fatalf("Parse(%q) returned %q with its error", tt.in, got)
			}
		})
	}
}

func TestParseErrorNeverQuotesTheAddress(t *testing.T) {
	for _, in := range []string{
		"secretname@example.com\n",
		"secretname@pаypal.com",
		"secretname@localhost",
		"Secret Name <secretname@example.com>",
	} {
		_, err := Parse(in)
		if err == nil {
			t.Fatalf("Parse(%q) accepted", in)
		}
		if strings.Contains(err.Error(), "secretname") {
			t.Fatalf("error %q quotes the address", err)
		}
	}
}

func TestCanonicalDomain(t *testing.T) {
	tests := []struct {
		name, in, want string
		ok             bool
	}{
		{"lower-cased", "Example.COM", "example.com", true},
		{"idn to punycode", "bücher.de", "xn--bcher-kva.de", true},
		{"punycode kept", "XN--BCHER-KVA.DE", "xn--bcher-kva.de", true},
		{"empty", "", "", false},
		{"trailing dot", "example.com.", "", false},
		{"no dot", "localhost", "", false},
		{"numeric tld", "1.2.3.4", "", false},
		{"hyphen at label end", "a-.example.com", "", false},
		{"mixed scripts", "pаypal.com", "", false},
		{"cyrillic lookalike", "аррӏе.com", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := CanonicalDomain(tt.in)
			if !tt.ok {
				if !errors.Is(err, ErrBadAddress) || got != "" {
					t.Fatalf("CanonicalDomain(%q) = %q, %v; want ErrBadAddress", tt.in, got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("CanonicalDomain(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}
