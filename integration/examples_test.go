package integration

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"gatehouse/config"
)

// TestExampleGatehouseConfigsLoad: every recipe's gatehouse.yaml passes
// Gatehouse's own validation as shipped, with only the SMTP password
// missing (it comes from the environment).
func TestExampleGatehouseConfigsLoad(t *testing.T) {
	for _, dir := range []string{"nginx", "caddy", "traefik"} {
		t.Run(dir, func(t *testing.T) {
			cfg, err := config.Load(filepath.Join(examplesDir, dir, "gatehouse.yaml"), nil)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Server.PublicURL.String() != "https://auth.example.com" || cfg.Session.CookieDomain != ".example.com" {
				t.Errorf("public_url %s, cookie_domain %q", cfg.Server.PublicURL, cfg.Session.CookieDomain)
			}
			if len(cfg.Server.TrustedProxies) != 1 || cfg.Server.TrustedProxies[0].String() != "127.0.0.1/32" {
				t.Errorf("trusted_proxies = %v, want the proxy on 127.0.0.1 only", cfg.Server.TrustedProxies)
			}
			if !slices.Equal(cfg.Redirect.AllowedHosts, []string{"app.example.com"}) {
				t.Errorf("redirect.allowed_hosts = %v", cfg.Redirect.AllowedHosts)
			}
		})
	}
}

// traefikDynamic is the part of Traefik's dynamic configuration the
// example uses.
type traefikDynamic struct {
	HTTP struct {
		Middlewares map[string]struct {
			Headers *struct {
				CustomRequestHeaders map[string]string `yaml:"customRequestHeaders"`
			} `yaml:"headers"`
			ForwardAuth *struct {
				Address             string   `yaml:"address"`
				TrustForwardHeader  bool     `yaml:"trustForwardHeader"`
				AuthResponseHeaders []string `yaml:"authResponseHeaders"`
			} `yaml:"forwardAuth"`
		} `yaml:"middlewares"`
		Routers map[string]struct {
			Rule        string   `yaml:"rule"`
			Middlewares []string `yaml:"middlewares"`
			Service     string   `yaml:"service"`
		} `yaml:"routers"`
		Services map[string]struct {
			LoadBalancer struct {
				Servers []struct {
					URL string `yaml:"url"`
				} `yaml:"servers"`
			} `yaml:"loadBalancer"`
		} `yaml:"services"`
	} `yaml:"http"`
}

// TestTraefikExampleIsConsistent checks what can be checked without a
// Traefik binary (none is packaged for this system): the dynamic
// configuration parses, its routers name existing middlewares and services,
// the strip middleware runs before forwardAuth, and forwardAuth asks
// /.gatehouse/auth without trusting client X-Forwarded-* and copies every
// identity header Gatehouse answers.
func TestTraefikExampleIsConsistent(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(examplesDir, "traefik", "dynamic", "gatehouse.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var d traefikDynamic
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	if err := dec.Decode(&d); err != nil {
		t.Fatal(err)
	}
	fa := d.HTTP.Middlewares["gatehouse"].ForwardAuth
	if fa == nil {
		t.Fatal("no forwardAuth middleware named gatehouse")
	}
	if fa.Address != "http://127.0.0.1:8080/.gatehouse/auth" || fa.TrustForwardHeader {
		t.Errorf("forwardAuth address %q, trustForwardHeader %v", fa.Address, fa.TrustForwardHeader)
	}
	for _, h := range []string{"X-Auth-Request-Email", "X-Auth-Request-User", "X-Auth-Request-Groups", "X-Forwarded-Email", "X-Forwarded-User", "Remote-Email", "Remote-User", "Remote-Groups"} {
		if !slices.Contains(fa.AuthResponseHeaders, h) {
			t.Errorf("authResponseHeaders lacks %s", h)
		}
	}
	strip := d.HTTP.Middlewares["gatehouse-strip"].Headers
	if strip == nil {
		t.Fatal("no headers middleware named gatehouse-strip")
	}
	for _, h := range []string{"X-Original-URL", "X-Original-Method", "X-Remote-User", "Forwarded"} {
		if v, ok := strip.CustomRequestHeaders[h]; !ok || v != "" {
			t.Errorf("gatehouse-strip does not delete %s", h)
		}
	}
	app, ok := d.HTTP.Routers["app"]
	if !ok || !slices.Equal(app.Middlewares, []string{"gatehouse-strip", "gatehouse"}) {
		t.Fatalf("app router middlewares = %v, want [gatehouse-strip gatehouse]", app.Middlewares)
	}
	for name, r := range d.HTTP.Routers {
		if _, ok := d.HTTP.Services[r.Service]; !ok {
			t.Errorf("router %s names unknown service %q", name, r.Service)
		}
		for _, m := range r.Middlewares {
			if _, ok := d.HTTP.Middlewares[m]; !ok {
				t.Errorf("router %s names unknown middleware %q", name, m)
			}
		}
	}
	if got := d.HTTP.Services["gatehouse"].LoadBalancer.Servers; len(got) != 1 || got[0].URL != "http://127.0.0.1:8080" {
		t.Errorf("gatehouse service servers = %v", got)
	}
}
