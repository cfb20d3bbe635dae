package safeurl

import (
	"strings"
	"testing"
)

func TestHost(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"wiki.example.test", "wiki.example.test", true},
		{"Wiki.Example.TEST:8080", "wiki.example.test", true},
		{"wiki.example.test.", "wiki.example.test", true},
		{"wiki.example.test.:80", "wiki.example.test", true},
		{"127.0.0.1:8080", "127.0.0.1", true},
		{"[::1]:8080", "[::1]", true},
		{"[0:0::1]", "[::1]", true},
		{"[2001:DB8::1]", "[2001:db8::1]", true},
		{"localhost", "localhost", true},
		{"xn--bcher-kva.de", "xn--bcher-kva.de", true},
		{"[wiki.example.test]:80", "", false},
		{"[wiki.example.test]", "", false},
		{"[127.0.0.1]", "", false},
		{"[::ffff:127.0.0.1]", "[::ffff:127.0.0.1]", true},
		{"[fe80::1%eth0]", "", false},
		{"[::1", "", false},
		{"::1", "", false},
		{"", "", false},
		{":80", "", false},
		{"wiki.example.test:", "", false},
		{"wiki.example.test:99999", "", false},
		{"wiki.example.test:8o", "", false},
		{"wiki example.test", "", false},
		{"gate_house:8080", "gate_house", true},
		{"_", "_", true},
		{"bücher.de", "", false},
		{"a..b", "", false},
		{"evil.test/x", "", false},
		{"user@evil.test", "", false},
	} {
		got, ok := Host(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("Host(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

// FuzzHost: a normalized host normalizes to itself, is never bracketed
// unless it is an IPv6 literal, and is what IsHostName accepts.
func FuzzHost(f *testing.F) {
	for _, s := range []string{"wiki.example.test", "[::1]:80", "[wiki.example.test]:80", "A.B.:1", "127.0.0.1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		h, ok := Host(in)
		if !ok {
			if h != "" {
				t.Fatalf("Host(%q) refused but returned %q", in, h)
			}
			return
		}
		if again, ok2 := Host(h); !ok2 || again != h {
			t.Fatalf("Host(%q) = %q, which normalizes to %q, %v", in, h, again, ok2)
		}
		if !IsHostName(strings.ReplaceAll(h, "_", "x")) {
			t.Fatalf("Host(%q) = %q, which is not a host name", in, h)
		}
	})
}
