package safeurl

import (
	"strings"
	"testing"
)

func TestSplitAuthority(t *testing.T) {
	tests := []struct {
		name, in, host, port string
		ok                   bool
	}{
		{"host", "example.com", "example.com", "", true},
		{"host and port", "example.com:8080", "example.com", "8080", true},
		{"ipv6", "[::1]", "[::1]", "", true},
		{"ipv6 and port", "[::1]:443", "[::1]", "443", true},
		{"leading zero port", "example.com:0443", "example.com", "0443", true},
		{"empty", "", "", "", false},
		{"port only", ":80", "", "", false},
		{"port zero", "example.com:0", "", "", false},
		{"port too big", "example.com:65536", "", "", false},
		{"empty port", "example.com:", "", "", false},
		{"signed port", "example.com:+80", "", "", false},
		{"two colons", "example.com:80:80", "", "", false},
		{"unclosed bracket", "[::1", "", "", false},
		{"junk after bracket", "[::1]x", "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			host, port, ok := SplitAuthority(tt.in)
			if ok != tt.ok || (ok && (host != tt.host || port != tt.port)) {
				t.Fatalf("SplitAuthority(%q) = %q, %q, %v; want %q, %q, %v", tt.in, host, port, ok, tt.host, tt.port, tt.ok)
			}
		})
	}
}

func TestIsHostName(t *testing.T) {
	tests := []struct {
		name, in string
		want     bool
	}{
		{"name", "app.example.com", true},
		{"single label", "localhost", true},
		{"upper case", "App.Example.COM", true},
		{"ipv4", "192.0.2.1", true},
		{"ipv6 literal", "[2001:db8::1]", true},
		{"punycode", "xn--bcher-kva.de", true},
		{"empty", "", false},
		{"empty brackets", "[]", false},
		{"bracket with zone escape", "[fe80::1%25eth0]", false},
		{"empty label", "a..b", false},
		{"trailing dot", "example.com.", false},
		{"leading hyphen", "-a.example.com", false},
		{"trailing hyphen", "a-.example.com", false},
		{"underscore", "a_b.example.com", false},
		{"non-ASCII", "bücher.de", false},
		{"label too long", strings.Repeat("a", 64) + ".com", false},
		{"longest label", strings.Repeat("a", 63) + ".com", true},
		{"wildcard", "*.example.com", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := IsHostName(tt.in); got != tt.want {
				t.Fatalf("IsHostName(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}
