package portal

import (
	"net/http"
	"testing"
)

func TestBrowserOrAPI(t *testing.T) {
	tests := []struct {
		name, method, accept string
		page, navigation     bool
	}{
		{"browser page load", http.MethodGet, "text/html,application/xhtml+xml,*/*;q=0.8", true, true},
		{"browser head", http.MethodHead, "text/html", true, true},
		{"browser form post", http.MethodPost, "text/html", true, false},
		{"fetch", http.MethodGet, "application/json", false, false},
		{"curl", http.MethodGet, "*/*", false, false},
		{"no accept", http.MethodGet, "", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := WantsPage([]byte(tt.accept)); got != tt.page {
				t.Errorf("WantsPage(%q) = %v, want %v", tt.accept, got, tt.page)
			}
			if got := IsNavigation(tt.method, []byte(tt.accept)); got != tt.navigation {
				t.Errorf("IsNavigation(%s, %q) = %v, want %v", tt.method, tt.accept, got, tt.navigation)
			}
		})
	}
}

func TestLoginPath(t *testing.T) {
	for rd, want := range map[string]string{
		"":               "/.gatehouse/login?rd=",
		"/":              "/.gatehouse/login?rd=%2F",
		"/a b?x=1&y=%2F": "/.gatehouse/login?rd=%2Fa+b%3Fx%3D1%26y%3D%252F",
	} {
		if got := LoginPath(rd); got != want {
			t.Errorf("LoginPath(%q) = %q, want %q", rd, got, want)
		}
	}
}

func TestAPIMessageKey(t *testing.T) {
	for code, want := range map[string]string{
		"code_wrong":      "code.wrong",
		"code_too_many":   "code.too_many",
		"unauthenticated": "error.unauthenticated.title",
		"csrf":            "error.csrf.title",
	} {
		if got := apiMessageKey(code); got != want {
			t.Errorf("apiMessageKey(%q) = %q, want %q", code, got, want)
		}
	}
}

func TestDeviceLabel(t *testing.T) {
	for ua, want := range map[string]string{
		"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0":                                       "Firefox · Linux",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Version/17.5 Mobile Safari/604.1": "Safari · iPhone",
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36 Edg/126.0":            "Edge · Windows",
		"curl/8.5.0": "curl",
		"":           "Browser",
	} {
		if got := deviceLabel(ua); got != want {
			t.Errorf("deviceLabel(%q) = %q, want %q", ua, got, want)
		}
	}
}
