package integration

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"gatehouse/authstore"
	"gatehouse/config"
	"gatehouse/framing"
	"gatehouse/gateway"
	"gatehouse/internal/apptest"
	"gatehouse/internal/logbuf"
	"gatehouse/internal/smtptest"
	"gatehouse/internal/wiring"
)

// examplesDir is where the configurations under test live.
const examplesDir = "../examples"

// needBinary finds an external program the test drives. Without it the test
// is skipped on a developer's machine and fails in CI, which must run it.
func needBinary(t *testing.T, name string, fallbacks ...string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, p := range fallbacks {
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is not installed; CI must install it (apt-get install %s)", name, name)
	}
	t.Skipf("%s is not installed (apt-get install %s); skipping", name, name)
	return ""
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return fmt.Sprint(ln.Addr().(*net.TCPAddr).Port)
}

// stack is one deployment under test: a fronting proxy on port, Gatehouse
// and the app behind it, and the SMTP server that receives the codes.
type stack struct {
	t     *testing.T
	port  string // the fronting proxy's HTTPS port on 127.0.0.1
	roots *x509.CertPool
	gate  string // Gatehouse's listen address
	up    *apptest.App
	mail  *smtptest.Server
}

func (s *stack) authOrigin() string { return "https://auth.example.com:" + s.port }
func (s *stack) appOrigin() string  { return "https://app.example.com:" + s.port }

// newStack starts Gatehouse from the example gatehouse.yaml in dir, with
// only addresses and the database and mail settings overridden, for a
// fronting proxy that will listen on a fresh port.
func newStack(t *testing.T, dir string) *stack {
	t.Helper()
	s := &stack{t: t, port: freePort(t), up: apptest.Start(t), mail: smtptest.Start(t)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.gate = ln.Addr().String()
	env := []string{
		"GATEHOUSE_SERVER_LISTEN=" + s.gate,
		"GATEHOUSE_SERVER_PUBLIC_URL=" + s.authOrigin(),
		"GATEHOUSE_REDIRECT_ALLOWED_HOSTS=app.example.com:" + s.port,
		"GATEHOUSE_UPSTREAM_URL=" + s.up.URL,
		"GATEHOUSE_DATABASE_DSN=" + filepath.Join(t.TempDir(), "gatehouse.db"),
		"GATEHOUSE_MAIL_SMTP_HOST=" + s.mail.Host,
		fmt.Sprintf("GATEHOUSE_MAIL_SMTP_PORT=%d", s.mail.Port),
		"GATEHOUSE_MAIL_SMTP_TLS=none",
		"GATEHOUSE_MAIL_SMTP_USERNAME=",
		"GATEHOUSE_OTP_RESEND_COOLDOWN=0s",
		`GATEHOUSE_GROUPS={"ops":["alice@example.com"],"staff":["@example.com"],"ci":[]}`,
	}
	cfg, err := config.Load(filepath.Join(examplesDir, dir, "gatehouse.yaml"), env)
	if err != nil {
		t.Fatalf("example %s/gatehouse.yaml: %v", dir, err)
	}
	srv := gatehouseFromConfig(t, cfg)
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(framing.Guard(ln)) }()
	t.Cleanup(func() { _ = srv.Close(); <-done })
	return s
}

// gatehouseFromConfig wires a gateway from a loaded config the way
// `gatehouse serve` does.
func gatehouseFromConfig(t *testing.T, cfg *config.Config) *gateway.Server {
	t.Helper()
	ctx := context.Background()
	st, err := authstore.Open(ctx, authstore.Options{Driver: cfg.Database.Driver, DSN: cfg.Database.DSN})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	secret, err := st.Secret(ctx)
	if err != nil {
		t.Fatal(err)
	}
	settings, err := wiring.Settings(cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := gateway.New(wiring.Options(cfg, st, secret, settings, nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	return srv
}

// selfSignedCert writes a certificate for *.example.com and returns the
// certificate and key paths and a pool that trusts it.
func selfSignedCert(t *testing.T, dir string) (certFile, keyFile string, roots *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "example.com test"},
		DNSNames:              []string{"example.com", "*.example.com"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeFile(t, certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	writeFile(t, keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	roots = x509.NewCertPool()
	roots.AddCert(cert)
	return certFile, keyFile, roots
}

func writeFile(t *testing.T, name string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// example reads an example file and applies replacements, each of which
// must occur: when the example changes, the test must be told.
func example(t *testing.T, name string, replace ...string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(examplesDir, name))
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	for i := 0; i+1 < len(replace); i += 2 {
		if !strings.Contains(s, replace[i]) {
			t.Fatalf("example %s no longer contains %q", name, replace[i])
		}
		s = strings.ReplaceAll(s, replace[i], replace[i+1])
	}
	return s
}

// process is an external server started for one test.
type process struct {
	cmd    *exec.Cmd
	output *logbuf.Buffer
	logs   []string      // files worth showing when the test fails
	done   chan struct{} // closed when the process has exited
}

// start runs name with args until the test ends, then stops it (SIGTERM,
// then SIGKILL) and, if the test failed, shows what it printed.
func start(t *testing.T, env []string, logs []string, name string, args ...string) *process {
	t.Helper()
	p := &process{cmd: exec.Command(name, args...), output: &logbuf.Buffer{}, logs: logs, done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p.output, p.output
	if env != nil {
		p.cmd.Env = env
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			p.dump(t)
		}
	})
	return p
}

func (p *process) dump(t *testing.T) {
	t.Logf("%s output:\n%s", filepath.Base(p.cmd.Path), p.output.String())
	for _, f := range p.logs {
		if data, err := os.ReadFile(f); err == nil {
			t.Logf("%s:\n%s", f, data)
		}
	}
}

// exited reports whether the process has stopped.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// browser is a client with a cookie jar that resolves every host name to
// the fronting proxy and trusts roots; it does not follow redirects, so
// every hop is checked.
type browser struct {
	t *testing.T
	c *http.Client
}

func (s *stack) browser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: s.t, c: &http.Client{
		Jar:           jar,
		Timeout:       20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport:     s.transport(),
	}}
}

func (s *stack) transport() *http.Transport {
	d := &net.Dialer{Timeout: 5 * time.Second}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, "127.0.0.1:"+s.port)
		},
		TLSClientConfig:   &tls.Config{RootCAs: s.roots, MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2: false,
	}
	s.t.Cleanup(tr.CloseIdleConnections)
	return tr
}

type response struct {
	*http.Response
	body string
}

func (b *browser) do(method, rawURL string, body io.Reader, hdr http.Header) response {
	b.t.Helper()
	req, err := http.NewRequest(method, rawURL, body)
	if err != nil {
		b.t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, rawURL, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return response{resp, string(data)}
}

// page navigates like a browser's address bar.
func (b *browser) page(rawURL string) response {
	b.t.Helper()
	return b.do(http.MethodGet, rawURL, nil, http.Header{"Accept": {"text/html,application/xhtml+xml"}})
}

// form submits a same-origin form.
func (b *browser) form(rawURL string, v url.Values) response {
	b.t.Helper()
	u, _ := url.Parse(rawURL)
	return b.do(http.MethodPost, rawURL, strings.NewReader(v.Encode()), http.Header{
		"Content-Type":   {"application/x-www-form-urlencoded"},
		"Accept":         {"text/html"},
		"Origin":         {u.Scheme + "://" + u.Host},
		"Sec-Fetch-Site": {"same-origin"},
	})
}

var csrfRE = regexp.MustCompile(`name="_csrf" value="([^"]+)"`)

func (b *browser) csrf(page response) string {
	b.t.Helper()
	m := csrfRE.FindStringSubmatch(page.body)
	if m == nil {
		b.t.Fatalf("no CSRF token in page (%d):\n%s", page.StatusCode, page.body)
	}
	return m[1]
}

// waitReady polls until the fronting proxy answers Gatehouse's health check
// through it and completes a TLS handshake for the app's host too (Caddy
// may still be issuing that host's certificate when the first answers), or
// fails the test when the process died or time ran out.
func (s *stack) waitReady(p *process) {
	s.t.Helper()
	c := &http.Client{Timeout: 2 * time.Second, Transport: s.transport(),
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	deadline := time.Now().Add(30 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		if p.exited() {
			s.t.Fatalf("%s exited early", filepath.Base(p.cmd.Path))
		}
		resp, err := c.Get(s.authOrigin() + "/.gatehouse/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				// Any answer from the app host proves its certificate is served.
				if app, err := c.Get(s.appOrigin() + "/.gatehouse/healthz"); err == nil {
					app.Body.Close()
					return
				} else {
					last = err
				}
				time.Sleep(100 * time.Millisecond)
				continue
			}
			err = errors.New(resp.Status)
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	s.t.Fatalf("%s did not get ready: %v", filepath.Base(p.cmd.Path), last)
}
