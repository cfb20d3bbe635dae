package integration

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestNginxForwardAuth runs the walk through nginx configured with
// examples/nginx: only the listen address, certificate paths and the
// Gatehouse and app addresses are replaced.
func TestNginxForwardAuth(t *testing.T) {
	bin := needBinary(t, "nginx", "/usr/sbin/nginx")
	s := newStack(t, "nginx")
	dir := t.TempDir()
	cert, key, roots := selfSignedCert(t, dir)
	s.roots = roots
	writeFile(t, filepath.Join(dir, "conf.d", "gatehouse.conf"), []byte(example(t, "nginx/gatehouse.conf",
		"listen 443 ssl;", "listen 127.0.0.1:"+s.port+" ssl;",
		"/etc/ssl/example.com/fullchain.pem", cert,
		"/etc/ssl/example.com/privkey.pem", key,
		"127.0.0.1:8080", s.gate,
		"127.0.0.1:3000", strings.TrimPrefix(s.up.URL, "http://"),
	)))
	snippets, err := filepath.Glob(filepath.Join(examplesDir, "nginx", "snippets", "*.conf"))
	if err != nil || len(snippets) == 0 {
		t.Fatalf("no nginx snippets in the examples (%v)", err)
	}
	for _, f := range snippets {
		f = filepath.Base(f)
		writeFile(t, filepath.Join(dir, "snippets", f), []byte(example(t, "nginx/snippets/"+f)))
	}
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o755); err != nil {
		t.Fatal(err)
	}
	user := ""
	if os.Geteuid() == 0 {
		// Workers must be able to use the temporary directories.
		user = "user root;"
	}
	writeFile(t, filepath.Join(dir, "nginx.conf"), []byte(fmt.Sprintf(`%[1]s
worker_processes 1;
pid %[2]s/nginx.pid;
error_log %[2]s/error.log warn;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path %[2]s/tmp/body;
    proxy_temp_path %[2]s/tmp/proxy;
    fastcgi_temp_path %[2]s/tmp/fastcgi;
    uwsgi_temp_path %[2]s/tmp/uwsgi;
    scgi_temp_path %[2]s/tmp/scgi;
    include conf.d/gatehouse.conf;
}
`, user, dir)))
	p := start(t, nil, []string{filepath.Join(dir, "error.log")}, bin,
		"-p", dir+"/", "-c", filepath.Join(dir, "nginx.conf"), "-e", filepath.Join(dir, "error.log"), "-g", "daemon off;")
	s.waitReady(p)
	walk(t, s)
}

// TestCaddyForwardAuth runs the walk through Caddy configured with
// examples/caddy/Caddyfile: only the Gatehouse and app addresses are
// replaced, and a global options block puts Caddy on loopback ports with
// certificates from its own local CA.
func TestCaddyForwardAuth(t *testing.T) {
	bin := needBinary(t, "caddy", "/usr/bin/caddy")
	s := newStack(t, "caddy")
	dir := t.TempDir()
	global := fmt.Sprintf("{\n\tadmin off\n\tlocal_certs\n\tskip_install_trust\n\tdefault_bind 127.0.0.1\n\thttp_port %s\n\thttps_port %s\n}\n\n", freePort(t), s.port)
	caddyfile := filepath.Join(dir, "Caddyfile")
	writeFile(t, caddyfile, []byte(global+example(t, "caddy/Caddyfile",
		"127.0.0.1:8080", s.gate,
		"127.0.0.1:3000", strings.TrimPrefix(s.up.URL, "http://"),
	)))
	env := append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+filepath.Join(dir, "data"), "XDG_CONFIG_HOME="+filepath.Join(dir, "config"))
	p := start(t, env, nil, bin, "run", "--config", caddyfile, "--adapter", "caddyfile")
	s.roots = waitCaddyRoot(t, p, filepath.Join(dir, "data", "caddy", "pki", "authorities", "local", "root.crt"))
	s.waitReady(p)
	walk(t, s)
}

// waitCaddyRoot waits for Caddy's local CA and returns a pool trusting it.
func waitCaddyRoot(t *testing.T, p *process, path string) *x509.CertPool {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if p.exited() {
			t.Fatal("caddy exited early")
		}
		if data, err := os.ReadFile(path); err == nil {
			if block, _ := pem.Decode(data); block != nil {
				cert, err := x509.ParseCertificate(block.Bytes)
				if err != nil {
					t.Fatal(err)
				}
				pool := x509.NewCertPool()
				pool.AddCert(cert)
				return pool
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("caddy wrote no local CA at %s", path)
	return nil
}

// identityNames are every identity header Gatehouse sets, and
// otherNames other names apps read identity from, all in folded form
// (lower case, "_" and "." read as "-").
var (
	identityNames = []string{"x-auth-request-email", "x-auth-request-user", "x-forwarded-email", "x-forwarded-user", "remote-email", "remote-user"}
	groupNames    = []string{"x-auth-request-groups", "remote-groups"}
	otherNames    = []string{"x-auth-request-preferred-username", "x-auth-request-access-token", "x-forwarded-groups", "x-forwarded-preferred-username", "x-forwarded-access-token", "remote-name", "x-remote-user", "x-remote-email", "x-webauth-user", "x-webauth-email", "authorization-email"}
)

func fold(name string) string {
	return strings.NewReplacer("_", "-", ".", "-").Replace(strings.ToLower(name))
}

// spoofed is every identity header, in the spellings servers and frameworks
// read as one, claiming to be the admin.
func spoofed() http.Header {
	h := http.Header{}
	for _, n := range append(append(append([]string{}, identityNames...), groupNames...), otherNames...) {
		h[http.CanonicalHeaderKey(n)] = []string{"admin@example.com"}
		h[strings.ToUpper(n)] = []string{"admin@example.com"}
		h[strings.ReplaceAll(n, "-", "_")] = []string{"admin@example.com"}
		h[strings.ReplaceAll(n, "-", ".")] = []string{"admin@example.com"}
	}
	return h
}

// checkIdentity asserts what identity the app received: every identity
// header equal to email (absent or empty when email is ""), no other
// identity name with a value, and no unexpanded proxy placeholder.
func checkIdentity(t *testing.T, r *http.Request, email string) {
	t.Helper()
	seen := map[string]bool{}
	for k, vs := range r.Header {
		f := fold(k)
		for _, v := range vs {
			if strings.Contains(v, "{") {
				t.Errorf("app received %s: %q (an unexpanded placeholder)", k, v)
			}
			for _, n := range identityNames {
				if f == n {
					seen[n] = true
					if v != email {
						t.Errorf("app received %s: %q, want %q", k, v, email)
					}
				}
			}
			for _, n := range groupNames {
				if f == n {
					seen[n] = true
				}
				if f == n && v != groupsOf[email] {
					t.Errorf("app received %s: %q, want %q", k, v, groupsOf[email])
				}
			}
			for _, n := range otherNames {
				if f == n && v != "" {
					t.Errorf("app received %s: %q, want none", k, v)
				}
			}
		}
	}
	if email == "" {
		return
	}
	for _, n := range identityNames {
		if !seen[n] {
			t.Errorf("app received no %s", n)
		}
	}
	for _, n := range groupNames {
		if groupsOf[email] != "" && !seen[n] {
			t.Errorf("app received no %s", n)
		}
	}
}

// groupsOf are the groups the stack's config (GATEHOUSE_GROUPS) gives each
// address, as the group headers must carry them.
var groupsOf = map[string]string{"alice@example.com": "ops,staff"}

// cookieList normalizes a Cookie header for comparison.
func cookieList(h string) string {
	var parts []string
	for _, p := range strings.Split(h, ";") {
		if p = strings.TrimSpace(p); p != "" {
			parts = append(parts, p)
		}
	}
	return strings.Join(parts, "; ")
}

// walk is the forward-auth journey through a fronting proxy: sign in on
// the auth host, come back to the original URL on the app host, with
// spoofing, bypass and sign-out checks along the way.
func walk(t *testing.T, s *stack) {
	const alice = "alice@example.com"
	b := s.browser()
	original := s.appOrigin() + "/reports/q3?year=2024&view=full"
	wantLogin := s.authOrigin() + "/.gatehouse/login?rd=" + url.QueryEscape(original)

	anon := b.page(original)
	if anon.StatusCode != http.StatusFound || anon.Header.Get("Location") != wantLogin {
		t.Fatalf("anonymous page: %d Location %q, want 302 %q", anon.StatusCode, anon.Header.Get("Location"), wantLogin)
	}
	if n := len(s.up.Requests()); n != 0 {
		t.Fatalf("the app was reached %d times without a session", n)
	}

	login := b.page(wantLogin)
	if login.StatusCode != http.StatusOK || !strings.Contains(login.body, `name="email"`) {
		t.Fatalf("login page through the proxy: %d\n%s", login.StatusCode, login.body)
	}
	codePage := b.form(s.authOrigin()+"/.gatehouse/login", url.Values{"email": {alice}, "rd": {original}, "_csrf": {b.csrf(login)}})
	if codePage.StatusCode != http.StatusOK || !strings.Contains(codePage.body, `name="code"`) {
		t.Fatalf("request code: %d\n%s", codePage.StatusCode, codePage.body)
	}
	code := s.mail.WaitFor(t, alice, 1).Code()
	done := b.form(s.authOrigin()+"/.gatehouse/verify", url.Values{"email": {alice}, "code": {code}, "rd": {original}, "_csrf": {b.csrf(codePage)}})
	if done.StatusCode != http.StatusSeeOther || done.Header.Get("Location") != original {
		t.Fatalf("verify: %d Location %q, want 303 %q", done.StatusCode, done.Header.Get("Location"), original)
	}
	var cookie string
	for _, c := range done.Header.Values("Set-Cookie") {
		if strings.HasPrefix(c, "__Secure-gatehouse_session=") {
			cookie = c
		}
	}
	for _, attr := range []string{"Domain=example.com", "Secure", "HttpOnly", "SameSite=Lax"} {
		if !strings.Contains(cookie, attr) {
			t.Errorf("session cookie %q lacks %s", cookie, attr)
		}
	}

	back := b.page(original)
	if back.StatusCode != http.StatusOK || back.body != "app /reports/q3" {
		t.Fatalf("original URL after sign-in: %d %q", back.StatusCode, back.body)
	}
	reqs := s.up.Requests()
	if len(reqs) != 1 {
		t.Fatalf("the app received %d requests, want 1", len(reqs))
	}
	if got := reqs[0].URL.RequestURI(); got != "/reports/q3?year=2024&view=full" {
		t.Errorf("the app received %q", got)
	}
	checkIdentity(t, reqs[0], alice)

	t.Run("spoofed identity", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			who    *browser
			path   string
			status int
			email  string
		}{
			{"signed in", b, "/reports/q3", http.StatusOK, alice},
			{"anonymous on a public path", s.browser(), "/public/logo.txt", http.StatusOK, ""},
			{"anonymous on a GET-only public path", s.browser(), "/healthz", http.StatusOK, ""},
			{"anonymous on a protected path", s.browser(), "/reports/q3", http.StatusUnauthorized, ""},
		} {
			t.Run(tc.name, func(t *testing.T) {
				before := len(s.up.Requests())
				resp := tc.who.do(http.MethodGet, s.appOrigin()+tc.path, nil, spoofed())
				if resp.StatusCode != tc.status {
					t.Fatalf("status %d, want %d\n%s", resp.StatusCode, tc.status, resp.body)
				}
				reqs := s.up.Requests()
				if tc.status != http.StatusOK {
					if len(reqs) != before {
						t.Fatal("the app was reached")
					}
					return
				}
				if len(reqs) != before+1 {
					t.Fatalf("the app received %d requests, want 1", len(reqs)-before)
				}
				checkIdentity(t, reqs[len(reqs)-1], tc.email)
			})
		}
	})

	t.Run("session cookie never reaches the app", func(t *testing.T) {
		u, _ := url.Parse(s.appOrigin())
		token := ""
		for _, c := range b.c.Jar.Cookies(u) {
			if c.Name == "__Secure-gatehouse_session" {
				token = c.Value
			}
		}
		if token == "" {
			t.Fatal("the browser holds no session cookie for the app host")
		}
		session := "__Secure-gatehouse_session=" + token
		plain := &browser{t: t, c: &http.Client{Timeout: 20 * time.Second, Transport: s.transport(),
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
		for _, tc := range []struct {
			name, cookie, want string
		}{
			{"alone", session, ""},
			{"first", session + "; theme=dark; lang=ko", "theme=dark; lang=ko"},
			{"middle", "theme=dark; " + session + "; lang=ko", "theme=dark; lang=ko"},
			{"last", "theme=dark; lang=ko; " + session, "theme=dark; lang=ko"},
			{"lookalike names kept", "my_gatehouse_session=1; " + session, "my_gatehouse_session=1"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				before := len(s.up.Requests())
				resp := plain.do(http.MethodGet, s.appOrigin()+"/reports/q3", nil, http.Header{"Cookie": {tc.cookie}})
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("status %d", resp.StatusCode)
				}
				reqs := s.up.Requests()
				if len(reqs) != before+1 {
					t.Fatalf("the app received %d requests, want 1", len(reqs)-before)
				}
				r := reqs[len(reqs)-1]
				checkIdentity(t, r, alice)
				got := strings.Join(r.Header.Values("Cookie"), "; ")
				if strings.Contains(got, token) {
					t.Fatal("the app received the session token")
				}
				if cookieList(got) != cookieList(tc.want) {
					t.Fatalf("the app received Cookie %q, want %q", got, tc.want)
				}
			})
		}
	})

	t.Run("forwarding headers rebuilt", func(t *testing.T) {
		before := len(s.up.Requests())
		resp := b.do(http.MethodGet, s.appOrigin()+"/reports/q3", nil, http.Header{
			"X-Forwarded-For":   {"203.0.113.9"},
			"X-Real-Ip":         {"203.0.113.9"},
			"Forwarded":         {"for=203.0.113.9;host=evil.example.org;proto=http"},
			"X-Forwarded-Host":  {"evil.example.org"},
			"X-Forwarded-Proto": {"http"},
		})
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d", resp.StatusCode)
		}
		reqs := s.up.Requests()
		if len(reqs) != before+1 {
			t.Fatalf("the app received %d requests, want 1", len(reqs)-before)
		}
		r := reqs[len(reqs)-1]
		for k, vs := range r.Header {
			for _, v := range vs {
				if strings.Contains(v, "203.0.113.9") || strings.Contains(v, "evil.example.org") {
					t.Errorf("the app received the client's %s: %q", k, v)
				}
			}
		}
		if got := r.Header.Get("X-Forwarded-Proto"); got != "https" {
			t.Errorf("X-Forwarded-Proto = %q, want https", got)
		}
		if got := r.Header.Get("X-Forwarded-For"); got != "127.0.0.1" {
			t.Errorf("X-Forwarded-For = %q, want 127.0.0.1", got)
		}
	})

	t.Run("Gatehouse's pages on the app host", func(t *testing.T) {
		before := len(s.up.Requests())
		health := b.do(http.MethodGet, s.appOrigin()+"/.gatehouse/healthz", nil, nil)
		if health.StatusCode != http.StatusOK || !strings.Contains(health.body, `"ok"`) {
			t.Fatalf("healthz on the app host: %d %q", health.StatusCode, health.body)
		}
		if login := s.browser().page(s.appOrigin() + "/.gatehouse/login?rd=%2Freports"); login.StatusCode != http.StatusOK || !strings.Contains(login.body, `name="email"`) {
			t.Fatalf("login page on the app host: %d", login.StatusCode)
		}
		if n := len(s.up.Requests()) - before; n != 0 {
			t.Fatalf("the app was reached %d times", n)
		}
	})

	t.Run("refused by the proxy", func(t *testing.T) {
		anonAPI := s.browser()
		for _, tc := range []struct {
			name   string
			who    *browser
			method string
			path   string
			accept string
			status int // 0: any 4xx
			header []string
		}{
			{"deny rule", b, "GET", "/internal/report", "text/html", http.StatusForbidden, nil},
			{"not on the rule's list", b, "GET", "/admin/users", "text/html", http.StatusForbidden, nil},
			{"repeated slash into a denied path", b, "GET", "//internal/report", "text/html", http.StatusForbidden, nil},
			{"escaped letter into a denied path", b, "GET", "/%69nternal/report", "text/html", http.StatusForbidden, nil},
			{"dot segment out of a public path", b, "GET", "/public/../internal/report", "text/html", 0, nil},
			{"encoded dot segment", b, "GET", "/public/%2e%2e/internal/report", "text/html", 0, nil},
			{"encoded slash", b, "GET", "/public%2f..%2finternal/report", "text/html", 0, nil},
			{"encoded backslash", b, "GET", "/public/..%5cinternal/report", "text/html", 0, nil},
			{"path parameter dots", b, "GET", "/public/..;/internal/report", "text/html", 0, nil},
			{"matrix parameter into a denied path", b, "GET", "/internal;x/report", "text/html", http.StatusForbidden, nil},
			{"double-encoded dots", b, "GET", "/public/%252e%252e/internal/report", "text/html", 0, nil},
			{"anonymous API call", anonAPI, "GET", "/api/items", "application/json", http.StatusUnauthorized, nil},
			{"anonymous form post", anonAPI, "POST", "/reports/q3", "text/html", http.StatusUnauthorized, nil},
			{"anonymous on a denied path", anonAPI, "GET", "/internal/report", "text/html", http.StatusForbidden, nil},
			{"method override on a GET-only public path", anonAPI, "GET", "/healthz", "application/json", 0, []string{"X-HTTP-Method-Override", "POST"}},
			{"method override in another spelling", anonAPI, "GET", "/healthz", "application/json", 0, []string{"X-Method-Override", "DELETE"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				before := len(s.up.Requests())
				hdr := http.Header{"Accept": {tc.accept}}
				for i := 0; i+1 < len(tc.header); i += 2 {
					hdr.Add(tc.header[i], tc.header[i+1])
				}
				resp := tc.who.do(tc.method, s.appOrigin()+tc.path, nil, hdr)
				if tc.status != 0 && resp.StatusCode != tc.status || resp.StatusCode < 400 || resp.StatusCode > 499 {
					t.Fatalf("status %d, want %d (or any 4xx when 0)", resp.StatusCode, tc.status)
				}
				if n := len(s.up.Requests()) - before; n != 0 {
					t.Fatalf("the app was reached %d times", n)
				}
			})
		}
	})

	t.Run("sign-out ends access on every host", func(t *testing.T) {
		account := b.page(s.authOrigin() + "/.gatehouse/account")
		if account.StatusCode != http.StatusOK {
			t.Fatalf("account page: %d", account.StatusCode)
		}
		out := b.form(s.authOrigin()+"/.gatehouse/logout", url.Values{"_csrf": {b.csrf(account)}})
		if out.StatusCode != http.StatusSeeOther {
			t.Fatalf("sign-out: %d", out.StatusCode)
		}
		again := b.page(original)
		if again.StatusCode != http.StatusFound || again.Header.Get("Location") != wantLogin {
			t.Fatalf("after sign-out: %d Location %q", again.StatusCode, again.Header.Get("Location"))
		}
	})
}
