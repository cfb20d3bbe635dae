package gateway

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"
)

// TestRequestIDFromTrustedProxies: an X-Request-Id is kept only when a
// trusted proxy sent it and it is short printable ASCII; otherwise the
// gateway assigns its own. Either way the upstream and the client see the
// same single id.
func TestRequestIDFromTrustedProxies(t *testing.T) {
	loopback := []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	tests := []struct {
		name    string
		trusted []netip.Prefix
		sent    string
		kept    bool
	}{
		{"untrusted peer", nil, "abc-123", false},
		{"trusted peer", loopback, "abc-123", true},
		{"trusted peer, none sent", loopback, "", false},
		{"trusted peer, space inside", loopback, "abc 123", false},
		{"trusted peer, too long", loopback, strings.Repeat("a", 129), false},
		{"trusted peer, non-ASCII", loopback, "abc-ü", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, func(o *Options) { o.TrustedProxies = tt.trusted })
			req, _ := http.NewRequest(http.MethodGet, h.URL+"/public/x", nil)
			if tt.sent != "" {
				req.Header.Set("X-Request-Id", tt.sent)
			}
			resp := h.browser().do(req)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d", resp.StatusCode)
			}
			got := h.up.Last(t).Header.Values("X-Request-Id")
			if len(got) != 1 || got[0] == "" {
				t.Fatalf("upstream got X-Request-Id %q, want one id", got)
			}
			if kept := got[0] == tt.sent; kept != tt.kept {
				t.Errorf("upstream got %q for %q: kept = %v, want %v", got[0], tt.sent, kept, tt.kept)
			}
			if resp.Header.Get("X-Request-Id") != got[0] {
				t.Errorf("client saw id %q, upstream %q", resp.Header.Get("X-Request-Id"), got[0])
			}
		})
	}
}
