package email

import (
	"strings"
	"testing"
)

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"alice@example.com", "Alice@Example.COM", " a@b.c ", "Bob <b@x.com>", "a@b@c.com",
		"a@example.com\r\nBcc: x@y.z", "a@bücher.de", "user@예시.한국", "a@pаypal.com",
		"a@xn--pypal-4ve.com", "a@[1.2.3.4]", "\"a\"@b.com", "a@ｅｘａｍｐｌｅ.com",
		"a@example。com", "a@例え.jp", "a@аррӏе.com", "o'brien@example.ie",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out, err := Parse(s)
		if err != nil {
			if out != "" {
				t.Fatalf("Parse(%q) returned %q with error %v", s, out, err)
			}
			return
		}
		if strings.Count(out, "@") != 1 {
			t.Fatalf("Parse(%q) = %q: want one @", s, out)
		}
		if len(out) > 254 {
			t.Fatalf("Parse(%q) = %q: longer than 254 bytes", s, out)
		}
		for i := 0; i < len(out); i++ {
			if c := out[i]; c <= ' ' || c >= 0x7f || strings.IndexByte(`<>()[]\,;:"`, c) >= 0 {
				t.Fatalf("Parse(%q) = %q holds byte %#x", s, out, c)
			}
		}
		if strings.ToLower(out) != out {
			t.Fatalf("Parse(%q) = %q: not lower-case", s, out)
		}
		if again, err := Parse(out); err != nil || again != out {
			t.Fatalf("Parse(%q) = %q, which parses to %q, %v", s, out, again, err)
		}
	})
}
