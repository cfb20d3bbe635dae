package clientip

import (
	"net/netip"
	"testing"
)

func mustPrefixes(t *testing.T, ss ...string) []netip.Prefix {
	t.Helper()
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			t.Fatalf("parse prefix %q: %v", s, err)
		}
		out[i] = p
	}
	return out
}

func TestResolve(t *testing.T) {
	trusted := mustPrefixes(t, "10.0.0.0/8", "fd00::/8", "192.168.1.1/32")
	tests := []struct {
		name    string
		remote  string
		xff     []string
		trusted []netip.Prefix
		want    string
	}{
		{"untrusted peer ignores xff", "203.0.113.9:5555", []string{"1.1.1.1"}, trusted, "203.0.113.9"},
		{"untrusted peer no xff", "203.0.113.9:5555", nil, trusted, "203.0.113.9"},
		{"no trusted proxies", "10.0.0.1:5555", []string{"1.1.1.1"}, nil, "10.0.0.1"},
		{"trusted peer no xff", "10.0.0.1:5555", nil, trusted, "10.0.0.1"},
		{"trusted peer one hop", "10.0.0.1:5555", []string{"198.51.100.7"}, trusted, "198.51.100.7"},
		{"rightmost untrusted, not leftmost", "10.0.0.1:5555", []string{"6.6.6.6, 198.51.100.7"}, trusted, "198.51.100.7"},
		{"spoofed left entries ignored", "10.0.0.1:5555", []string{"127.0.0.1, 10.9.9.9, 198.51.100.7, 10.0.0.2"}, trusted, "198.51.100.7"},
		{"trusted hops skipped", "10.0.0.1:5555", []string{"198.51.100.7, 10.0.0.3, 10.0.0.2"}, trusted, "198.51.100.7"},
		{"several header lines", "10.0.0.1:5555", []string{"6.6.6.6", "198.51.100.7, 10.0.0.2"}, trusted, "198.51.100.7"},
		{"walk crosses header lines", "10.0.0.1:5555", []string{"6.6.6.6, 198.51.100.7", "10.0.0.2"}, trusted, "198.51.100.7"},
		{"all trusted gives leftmost", "10.0.0.1:5555", []string{"10.0.0.4, 10.0.0.3"}, trusted, "10.0.0.4"},
		{"malformed stops walk", "10.0.0.1:5555", []string{"198.51.100.7, garbage, 10.0.0.2"}, trusted, "10.0.0.2"},
		{"malformed right after peer", "10.0.0.1:5555", []string{"198.51.100.7, garbage"}, trusted, "10.0.0.1"},
		{"empty entry stops walk", "10.0.0.1:5555", []string{"198.51.100.7,,10.0.0.2"}, trusted, "10.0.0.2"},
		{"trailing comma stops walk", "10.0.0.1:5555", []string{"198.51.100.7,"}, trusted, "10.0.0.1"},
		{"empty header line", "10.0.0.1:5555", []string{""}, trusted, "10.0.0.1"},
		{"hostname entry is malformed", "10.0.0.1:5555", []string{"evil.example.com"}, trusted, "10.0.0.1"},
		{"cidr entry is malformed", "10.0.0.1:5555", []string{"1.2.3.0/24"}, trusted, "10.0.0.1"},
		{"entry with port", "10.0.0.1:5555", []string{"198.51.100.7:4711"}, trusted, "198.51.100.7"},
		{"bracketed ipv6 entry with port", "10.0.0.1:5555", []string{"[2001:db8::7]:4711"}, trusted, "2001:db8::7"},
		{"bracketed ipv6 entry", "10.0.0.1:5555", []string{"[2001:db8::7]"}, trusted, "2001:db8::7"},
		{"bare ipv6 entry", "10.0.0.1:5555", []string{"2001:db8::7"}, trusted, "2001:db8::7"},
		{"spaces and tabs trimmed", "10.0.0.1:5555", []string{" 198.51.100.7 ,\t10.0.0.2\t"}, trusted, "198.51.100.7"},
		{"ipv6 peer trusted", "[fd00::1]:5555", []string{"198.51.100.7"}, trusted, "198.51.100.7"},
		{"ipv6 peer untrusted", "[2001:db8::1]:5555", []string{"198.51.100.7"}, trusted, "2001:db8::1"},
		{"mapped peer matches ipv4 prefix", "[::ffff:10.0.0.1]:5555", []string{"198.51.100.7"}, trusted, "198.51.100.7"},
		{"mapped entry is unmapped", "10.0.0.1:5555", []string{"::ffff:198.51.100.7"}, trusted, "198.51.100.7"},
		{"mapped trusted entry skipped", "10.0.0.1:5555", []string{"198.51.100.7, ::ffff:10.0.0.2"}, trusted, "198.51.100.7"},
		{"zoned peer", "[fe80::1%eth0]:5555", nil, mustPrefixes(t, "fe80::/10"), "fe80::1"},
		{"zoned peer trusted", "[fe80::1%eth0]:5555", []string{"198.51.100.7"}, mustPrefixes(t, "fe80::/10"), "198.51.100.7"},
		{"host-only single address prefix", "192.168.1.1:1", []string{"198.51.100.7"}, trusted, "198.51.100.7"},
		{"neighbour of single address not trusted", "192.168.1.2:1", []string{"198.51.100.7"}, trusted, "192.168.1.2"},
		{"peer without port", "10.0.0.1", []string{"198.51.100.7"}, trusted, "198.51.100.7"},
		{"unix socket peer", "@", []string{"198.51.100.7"}, trusted, "invalid IP"},
		{"empty peer", "", []string{"198.51.100.7"}, trusted, "invalid IP"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Resolve(tt.remote, tt.xff, tt.trusted)
			if got.String() != tt.want {
				t.Fatalf("Resolve(%q, %q) = %s, want %s", tt.remote, tt.xff, got, tt.want)
			}
		})
	}
}

func TestProto(t *testing.T) {
	trusted := mustPrefixes(t, "10.0.0.0/8")
	tests := []struct {
		name   string
		remote string
		xfp    string
		tls    bool
		want   string
	}{
		{"untrusted plain", "203.0.113.9:1", "https", false, "http"},
		{"untrusted tls", "203.0.113.9:1", "http", true, "https"},
		{"trusted says https", "10.0.0.1:1", "https", false, "https"},
		{"trusted says http over tls", "10.0.0.1:1", "http", true, "http"},
		{"trusted upper case", "10.0.0.1:1", "HTTPS", false, "https"},
		{"trusted list takes nearest", "10.0.0.1:1", "http, https", false, "https"},
		{"trusted list nearest http", "10.0.0.1:1", "https,http", true, "http"},
		{"trusted empty falls back", "10.0.0.1:1", "", true, "https"},
		{"trusted garbage falls back", "10.0.0.1:1", "javascript", false, "http"},
		{"trusted spaces", "10.0.0.1:1", "  https ", false, "https"},
		{"unparsable peer", "@", "https", false, "http"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Proto(tt.remote, tt.xfp, tt.tls, trusted); got != tt.want {
				t.Fatalf("Proto(%q, %q, %v) = %q, want %q", tt.remote, tt.xfp, tt.tls, got, tt.want)
			}
		})
	}
}

func TestPeerTrusted(t *testing.T) {
	trusted := mustPrefixes(t, "10.0.0.0/8", "fd00::/8")
	tests := []struct {
		name    string
		remote  string
		trusted []netip.Prefix
		want    bool
	}{
		{"trusted v4", "10.1.2.3:443", trusted, true},
		{"untrusted v4", "203.0.113.9:443", trusted, false},
		{"trusted v6", "[fd00::1]:443", trusted, true},
		{"mapped v4 unmapped", "[::ffff:10.1.2.3]:443", trusted, true},
		{"untrusted v6", "[2001:db8::1]:443", trusted, false},
		{"no port", "10.1.2.3", trusted, false},
		{"unix socket", "@", trusted, false},
		{"nothing trusted", "10.1.2.3:443", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := PeerTrusted(tt.remote, tt.trusted); got != tt.want {
				t.Fatalf("PeerTrusted(%q) = %v, want %v", tt.remote, got, tt.want)
			}
		})
	}
}

func TestRateKey(t *testing.T) {
	tests := []struct {
		name, ip, want string
	}{
		{"v4 as is", "203.0.113.9", "203.0.113.9"},
		{"v6 stands for its /64", "2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"},
		{"v6 zone dropped", "fe80::1%eth0", "fe80::/64"},
		{"mapped v4 as is", "::ffff:192.0.2.1", "::ffff:192.0.2.1"},
		{"not an address", "unix", "unix"},
		{"empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := RateKey(tt.ip); got != tt.want {
				t.Fatalf("RateKey(%q) = %q, want %q", tt.ip, got, tt.want)
			}
		})
	}
}
