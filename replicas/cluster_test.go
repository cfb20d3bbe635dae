package replicas

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"gatehouse/internal/logbuf"
	"gatehouse/internal/pgtest"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/uptrace/bun/driver/pgdriver"

	"gatehouse/internal/smtptest"
)

// publicURL is what every replica believes visitors use: one name for the
// whole cluster, as behind a load balancer.
const publicURL = "http://gatehouse.test"

// sessionCookie is the session cookie's name over plain http.
const sessionCookie = "gatehouse_session"

func TestMain(m *testing.M) {
	code := m.Run()
	if binary.dir != "" {
		_ = os.RemoveAll(binary.dir)
	}
	os.Exit(code)
}

// binary is the gatehouse command, built once for the whole package.
var binary struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// gatehouseBinary builds ./cmd/gatehouse the first time it is called.
func gatehouseBinary(t *testing.T) string {
	t.Helper()
	binary.once.Do(func() {
		dir, err := os.MkdirTemp("", "gatehouse-replicas-")
		if err != nil {
			binary.err = err
			return
		}
		binary.dir = dir
		binary.path = filepath.Join(dir, "gatehouse")
		gobin, err := exec.LookPath("go")
		if err != nil {
			gobin = filepath.Join(runtime.GOROOT(), "bin", "go")
		}
		out, err := exec.Command(gobin, "build", "-o", binary.path, "gatehouse/cmd/gatehouse").CombinedOutput()
		if err != nil {
			binary.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binary.err != nil {
		t.Fatalf("build gatehouse: %v", binary.err)
	}
	return binary.path
}

// serverDSN returns the PostgreSQL URL from the environment or skips.
func serverDSN(t *testing.T) string { return pgtest.ServerDSN(t) }

// newSchema creates an empty schema for the test and returns dsn pointed at
// it; the schema is dropped when the test ends, after everything started
// later has stopped.
func newSchema(t *testing.T, dsn string) string { return pgtest.Schema(t, dsn, "gh_replicas") }

// withHost returns dsn with its host and port replaced by addr.
func withHost(t *testing.T, dsn, addr string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = addr
	return u.String()
}

// openDB opens a plain connection pool on dsn for the test's own queries.
func openDB(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	db := sql.OpenDB(pgdriver.NewConnector(pgdriver.WithDSN(dsn)))
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// upstream is the protected app: it answers 200 and remembers the identity
// it was given.
type upstream struct {
	*httptest.Server
	mu     sync.Mutex
	emails []string
}

func newUpstream(t *testing.T) *upstream {
	u := &upstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.emails = append(u.emails, r.Header.Get("X-Auth-Request-Email"))
		u.mu.Unlock()
		_, _ = io.WriteString(w, "app "+r.URL.Path)
	}))
	t.Cleanup(u.Close)
	return u
}

// count is how many requests the app received.
func (u *upstream) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.emails)
}

// lastEmail is the identity on the last request the app received.
func (u *upstream) lastEmail() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.emails) == 0 {
		return ""
	}
	return u.emails[len(u.emails)-1]
}

// cluster is what replicas share: the database schema, the app and the
// mail server.
type cluster struct {
	t    *testing.T
	bin  string
	dsn  string // what the replicas connect to
	up   *upstream
	mail *smtptest.Server
	conf string // an empty config file: everything comes from the environment
}

func newCluster(t *testing.T, dsn string) *cluster {
	t.Helper()
	c := &cluster{t: t, bin: gatehouseBinary(t), dsn: dsn, up: newUpstream(t), mail: smtptest.Start(t)}
	c.conf = filepath.Join(t.TempDir(), "gatehouse.yaml")
	if err := os.WriteFile(c.conf, []byte("# every key comes from GATEHOUSE_* variables\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return c
}

// env is the environment of a gatehouse process of this cluster: the
// caller's, without any GATEHOUSE_ variable, plus the cluster's settings.
func (c *cluster) env() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GATEHOUSE_") {
			env = append(env, kv)
		}
	}
	return append(env,
		"GATEHOUSE_CONFIG="+c.conf,
		"GATEHOUSE_DATABASE_DRIVER=postgres",
		"GATEHOUSE_DATABASE_DSN="+c.dsn,
		"GATEHOUSE_SERVER_LISTEN=127.0.0.1:0",
		"GATEHOUSE_SERVER_PUBLIC_URL="+publicURL,
		"GATEHOUSE_SERVER_SHUTDOWN_TIMEOUT=5s",
		"GATEHOUSE_UPSTREAM_URL="+c.up.URL,
		"GATEHOUSE_MAIL_DRIVER=smtp",
		"GATEHOUSE_MAIL_SMTP_HOST="+c.mail.Host,
		"GATEHOUSE_MAIL_SMTP_PORT="+strconv.Itoa(c.mail.Port),
		"GATEHOUSE_MAIL_SMTP_TLS=none",
		"GATEHOUSE_OTP_RESEND_COOLDOWN=0s",
		// Every request comes from 127.0.0.1: the per-IP limit must not
		// get in the way, and a window this long never rolls over in the
		// middle of a test that counts sends.
		"GATEHOUSE_OTP_RATE_LIMIT_WINDOW=24h",
		"GATEHOUSE_OTP_RATE_LIMIT_PER_IP=1000",
		`GATEHOUSE_ACCESS_RULES=[{"paths":["/public/**"],"policy":"public"}]`,
		// Not the same string as server.listen, which the config refuses.
		"GATEHOUSE_METRICS_LISTEN=localhost:0",
	)
}

// command runs a gatehouse CLI command of this cluster to its end and
// returns its output and exit code.
func (c *cluster) command(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.bin, args...)
	cmd.Env = c.env()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		code = exit.ExitCode()
	default:
		t.Fatalf("gatehouse %s: %v", strings.Join(args, " "), err)
	}
	return out.String(), errb.String(), code
}

// replica is one `gatehouse serve` process.
type replica struct {
	t       *testing.T
	name    string
	cmd     *exec.Cmd
	logs    *logbuf.Buffer
	exited  chan struct{}
	waitErr error
	client  *http.Client

	url     string // http://127.0.0.1:port, known once ready
	metrics string // the metrics listener's address
}

// start launches a replica; it does not wait for it to be ready.
func (c *cluster) start(name string) *replica {
	c.t.Helper()
	r := &replica{
		t:      c.t,
		name:   name,
		cmd:    exec.Command(c.bin, "serve"),
		logs:   &logbuf.Buffer{},
		exited: make(chan struct{}),
		client: &http.Client{
			Timeout:       15 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
	r.cmd.Env = c.env()
	r.cmd.Stdout, r.cmd.Stderr = r.logs, r.logs
	if err := r.cmd.Start(); err != nil {
		c.t.Fatalf("start replica %s: %v", name, err)
	}
	go func() {
		r.waitErr = r.cmd.Wait()
		close(r.exited)
	}()
	c.t.Cleanup(r.stop)
	return r
}

// startReady launches replicas together and waits until all are ready.
func (c *cluster) startReady(names ...string) []*replica {
	c.t.Helper()
	rs := make([]*replica, len(names))
	for i, n := range names {
		rs[i] = c.start(n)
	}
	for _, r := range rs {
		r.waitReady()
	}
	return rs
}

var (
	listeningRE = regexp.MustCompile(`msg="gatehouse listening" addr=(\S+)`)
	metricsRE   = regexp.MustCompile(`msg="metrics listening" addr=(\S+)`)
)

// waitReady waits until the replica listens, answers its health check and
// follows revocations.
func (r *replica) waitReady() {
	r.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		logs := r.logs.String()
		if m := listeningRE.FindStringSubmatch(logs); m != nil && r.url == "" {
			r.url = "http://" + m[1]
		}
		if m := metricsRE.FindStringSubmatch(logs); m != nil {
			r.metrics = m[1]
		}
		if r.url != "" && strings.Contains(logs, `msg="listening for session revocations"`) {
			if st, err := r.health(); err == nil && st == http.StatusOK {
				return
			}
		}
		select {
		case <-r.exited:
			r.t.Fatalf("replica %s exited before it was ready (%v); log:\n%s", r.name, r.waitErr, logs)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("replica %s not ready after 30s; log:\n%s", r.name, logs)
		}
	}
}

// stop ends the replica with SIGTERM, as an orchestrator would, and checks
// that it shut down cleanly and never panicked.
func (r *replica) stop() {
	select {
	case <-r.exited:
	default:
		_ = r.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-r.exited:
			if r.waitErr != nil {
				r.t.Errorf("replica %s: unclean exit after SIGTERM: %v", r.name, r.waitErr)
			}
		case <-time.After(15 * time.Second):
			_ = r.cmd.Process.Kill()
			<-r.exited
			r.t.Errorf("replica %s did not stop within 15s of SIGTERM", r.name)
		}
	}
	logs := r.logs.String()
	if strings.Contains(logs, "panic") || strings.Contains(logs, "goroutine ") {
		r.t.Errorf("replica %s panicked; log:\n%s", r.name, logs)
	} else if r.t.Failed() {
		r.t.Logf("replica %s log (last lines):\n%s", r.name, lastLines(logs, 40))
	}
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.SplitAfter(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "")
}

// alive reports whether the process is still running.
func (r *replica) alive() bool {
	select {
	case <-r.exited:
		return false
	default:
		return true
	}
}

// response is an answer with its body read.
type response struct {
	status int
	header http.Header
	body   string
}

// call sends one request to the replica. token, if set, is sent as the
// session cookie. It returns an error rather than failing the test so that
// it can be used from any goroutine.
func (r *replica) call(method, path, token, accept, body string) (response, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, r.url+path, rd)
	if err != nil {
		return response{}, err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", accept)
	if token != "" {
		req.Header.Set("Cookie", sessionCookie+"="+token)
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return response{}, fmt.Errorf("replica %s: %s %s: %w", r.name, method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, fmt.Errorf("replica %s: read %s: %w", r.name, path, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: string(data)}, nil
}

// health returns the status of /.gatehouse/healthz.
func (r *replica) health() (int, error) {
	resp, err := r.call(http.MethodGet, "/.gatehouse/healthz", "", "application/json", "")
	return resp.status, err
}

// ready returns the status of /.gatehouse/readyz.
func (r *replica) ready() (int, error) {
	resp, err := r.call(http.MethodGet, "/.gatehouse/readyz", "", "application/json", "")
	return resp.status, err
}

// app requests a protected page of the app as an API client would, and
// returns the status: 200 forwarded, 401 no session, 503 store trouble.
func (r *replica) app(token string) (int, error) {
	resp, err := r.call(http.MethodGet, "/private/report", token, "application/json", "")
	return resp.status, err
}

// sendCode asks for a sign-in code through the JSON API.
func (r *replica) sendCode(t *testing.T, email string) {
	t.Helper()
	resp, err := r.call(http.MethodPost, "/.gatehouse/api/otp/send", "", "application/json", `{"email":"`+email+`"}`)
	if err != nil {
		t.Fatal(err)
	}
	if resp.status != http.StatusOK || !strings.Contains(resp.body, `"status":"sent"`) {
		t.Fatalf("replica %s: send code: %d %s", r.name, resp.status, resp.body)
	}
}

// verified is the outcome of a code check through the JSON API.
type verified struct {
	status    int
	token     string // the new session token on success
	sessionID string
	errorKind string // the JSON error code otherwise
}

// verify checks a code through the JSON API.
func (r *replica) verify(email, code string) (verified, error) {
	resp, err := r.call(http.MethodPost, "/.gatehouse/api/otp/verify", "", "application/json",
		`{"email":"`+email+`","code":"`+code+`"}`)
	if err != nil {
		return verified{}, err
	}
	v := verified{status: resp.status}
	var body struct {
		SessionID string `json:"session_id"`
		Error     string `json:"error"`
	}
	if err := json.Unmarshal([]byte(resp.body), &body); err != nil {
		return v, fmt.Errorf("replica %s: verify answer %d %q: %w", r.name, resp.status, resp.body, err)
	}
	v.sessionID, v.errorKind = body.SessionID, body.Error
	for _, sc := range resp.header.Values("Set-Cookie") {
		if c, err := http.ParseSetCookie(sc); err == nil && c.Name == sessionCookie {
			v.token = c.Value
		}
	}
	return v, nil
}

// signOut ends the session through the JSON API.
func (r *replica) signOut(t *testing.T, token string) {
	t.Helper()
	resp, err := r.call(http.MethodPost, "/.gatehouse/api/sign-out", token, "application/json", "{}")
	if err != nil {
		t.Fatal(err)
	}
	if resp.status != http.StatusOK {
		t.Fatalf("replica %s: sign-out: %d %s", r.name, resp.status, resp.body)
	}
}

// cacheLookups reads the replica's session cache counters from its metrics.
func (r *replica) cacheLookups(t *testing.T) (hits, misses int) {
	t.Helper()
	resp, err := r.client.Get("http://" + r.metrics + "/metrics")
	if err != nil {
		t.Fatalf("replica %s metrics: %v", r.name, err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		for label, dst := range map[string]*int{`result="hit"`: &hits, `result="miss"`: &misses} {
			if strings.HasPrefix(line, "gatehouse_session_cache_total{") && strings.Contains(line, label) {
				f := strings.Fields(line)
				n, err := strconv.ParseFloat(f[len(f)-1], 64)
				if err != nil {
					t.Fatalf("replica %s metrics line %q: %v", r.name, line, err)
				}
				*dst = int(n)
			}
		}
	}
	return hits, misses
}

// waitLog waits until the replica's log contains s.
func (r *replica) waitLog(t *testing.T, s string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !strings.Contains(r.logs.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("replica %s logged no %s within %v; log:\n%s", r.name, s, within, r.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// signIn asks for a code through via, reads it from the mail and verifies
// it through via too; it returns the session token and ID.
func (c *cluster) signIn(t *testing.T, via *replica, email string) (token, id string) {
	t.Helper()
	code := c.codeFor(t, via, email)
	v, err := via.verify(email, code)
	if err != nil {
		t.Fatal(err)
	}
	if v.status != http.StatusOK || v.token == "" {
		t.Fatalf("replica %s: verify: %d %s", via.name, v.status, v.errorKind)
	}
	return v.token, v.sessionID
}

// codeFor asks for a code through via and returns the one mailed.
func (c *cluster) codeFor(t *testing.T, via *replica, email string) string {
	t.Helper()
	n := c.mailsTo(email) + 1
	via.sendCode(t, email)
	code := c.mail.WaitFor(t, email, n).Code()
	if code == "" {
		t.Fatalf("no code in the mail to %s", email)
	}
	return code
}

// mailsTo counts the mails delivered to email so far.
func (c *cluster) mailsTo(email string) int {
	n := 0
	for _, m := range c.mail.Messages() {
		for _, to := range m.To {
			if strings.EqualFold(to, email) {
				n++
			}
		}
	}
	return n
}

// waitDenied polls r with token until it answers 401 and returns how long
// that took; it gives up after limit.
func waitDenied(r *replica, token string, limit time.Duration) (time.Duration, error) {
	start := time.Now()
	for {
		st, err := r.app(token)
		if err != nil {
			return 0, err
		}
		elapsed := time.Since(start)
		if st == http.StatusUnauthorized {
			return elapsed, nil
		}
		if st != http.StatusOK {
			return elapsed, fmt.Errorf("replica %s answered %d while the revocation was pending", r.name, st)
		}
		if elapsed > limit {
			return elapsed, fmt.Errorf("replica %s still accepts the session after %v", r.name, elapsed)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
