package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"gatehouse/internal/apptest"
	"gatehouse/internal/logbuf"
	"gatehouse/internal/pgtest"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"gatehouse/authstore"
)

// binPath is the gatehouse binary every test runs. TestMain builds it
// with scripts/build-image.sh, the container image's own build steps, so
// the tests also prove that the script works.
var (
	binPath   string
	imageRoot string
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "gatehouse-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "temp dir:", err)
		os.Exit(1)
	}
	imageRoot = filepath.Join(dir, "rootfs")
	build := exec.Command("sh", filepath.Join("..", "..", "scripts", "build-image.sh"), imageRoot)
	build.Env = append(os.Environ(), "VERSION=test-build")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "scripts/build-image.sh failed: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	binPath = filepath.Join(imageRoot, "usr", "local", "bin", "gatehouse")
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// ---- databases ----

// database is an empty database of one kind for one test.
type database struct {
	driver string
	dsn    string
}

type backend struct {
	name  string
	fresh func(t *testing.T) database
}

func backends() []backend {
	return []backend{
		{"sqlite", func(t *testing.T) database {
			return database{"sqlite", filepath.Join(t.TempDir(), "data", "gatehouse.db")}
		}},
		{"postgres", freshPostgres},
	}
}

// freshPostgres creates a schema for the test and points search_path at
// it, so tests never see each other's tables.
func freshPostgres(t *testing.T) database {
	t.Helper()
	return database{"postgres", pgtest.New(t, "gh_cli")}
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// openStore opens (and migrates) the test's database from the test
// process, to seed it and to check what the binary did.
func (db database) openStore(t *testing.T) *authstore.Store {
	t.Helper()
	st, err := authstore.Open(context.Background(), authstore.Options{Driver: db.driver, DSN: db.dsn})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if err := st.Migrate(context.Background()); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return st
}

// ---- config ----

// setup is what a test's config file says.
type setup struct {
	db        database
	upstream  string // default: an upstream that is never called
	smtpPort  int    // 0: mail driver log
	rules     string // YAML list for access.rules; default: /public/** public
	extra     string // more top-level YAML
	retention string // audit.retention; default 2160h
	health    string // upstream.health_path
	shutdown  string // server.shutdown_timeout; default 20s
	level     string // log.level; default info
}

// writeConfig writes the config file for s into dir and returns its path.
func writeConfig(t *testing.T, dir string, s setup) string {
	t.Helper()
	p := filepath.Join(dir, "config.yaml")
	writeFile(t, p, s.yaml())
	return p
}

func (s setup) yaml() string {
	if s.upstream == "" {
		s.upstream = "http://127.0.0.1:9"
	}
	if s.rules == "" {
		s.rules = `[{paths: ["/public/**"], policy: public}]`
	}
	if s.retention == "" {
		s.retention = "2160h"
	}
	if s.shutdown == "" {
		s.shutdown = "20s"
	}
	if s.level == "" {
		s.level = "info"
	}
	mail := "mail:\n  driver: log\n"
	if s.smtpPort != 0 {
		mail = fmt.Sprintf("mail:\n  driver: smtp\n  from: \"Gatehouse <no-reply@example.com>\"\n  smtp: {host: 127.0.0.1, port: %d, tls: none}\n", s.smtpPort)
	}
	return fmt.Sprintf(`server:
  listen: "127.0.0.1:0"
  public_url: "http://127.0.0.1"
  shutdown_timeout: %s
upstream:
  url: %q
  health_path: %q
database:
  driver: %s
  dsn: %q
%sotp:
  resend_cooldown: 0s
access:
  rules: %s
log:
  format: json
  level: %s
metrics:
  listen: "127.0.0.2:0"
audit:
  retention: %s
%s`, s.shutdown, s.upstream, s.health, s.db.driver, s.db.dsn, mail, s.rules, s.level, s.retention, s.extra)
}

// writeFile replaces a file the way editors do: write a temporary file,
// then rename it over the old one.
func writeFile(t *testing.T, path, body string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// ---- running the CLI ----

type result struct {
	stdout, stderr string
	code           int
}

// gh runs the binary with args and returns what it printed and its exit
// status.
func gh(t *testing.T, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, args...)
	cmd.Env = append(baseEnv(), env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("run gatehouse %v: %v", args, err)
	}
	return result{out.String(), errOut.String(), code}
}

// baseEnv is the environment of every run: no GATEHOUSE_* variable from the
// test's own environment leaks in.
func baseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GATEHOUSE_") {
			env = append(env, kv)
		}
	}
	return append(env, "USER=tester")
}

// ---- running the server ----

// server is a running `gatehouse serve` process.
type server struct {
	t       *testing.T
	cmd     *exec.Cmd
	URL     string // http://127.0.0.1:port
	Metrics string // http://127.0.0.1:port/metrics
	log     *logbuf.Buffer
	exited  chan struct{}
	code    int
}

// startServer runs `gatehouse serve --config cfg` and waits until it
// listens. It is stopped (SIGTERM, then SIGKILL) when the test ends.
func startServer(t *testing.T, cfg string, env ...string) *server {
	t.Helper()
	s := &server{t: t, log: &logbuf.Buffer{}, exited: make(chan struct{})}
	s.cmd = exec.Command(binPath, "serve", "--config", cfg)
	s.cmd.Env = append(baseEnv(), env...)
	s.cmd.Stdout = s.log
	s.cmd.Stderr = s.log
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start gatehouse: %v", err)
	}
	go func() {
		err := s.cmd.Wait()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			s.code = ee.ExitCode()
		} else if err != nil {
			s.code = -1
		}
		close(s.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-s.exited:
			return
		default:
		}
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(15 * time.Second):
			_ = s.cmd.Process.Kill()
			<-s.exited
		}
		if t.Failed() {
			t.Logf("gatehouse log:\n%s", s.log.String())
		}
	})
	listening := s.waitLog(t, 30*time.Second, func(l logLine) bool { return l.msg() == "gatehouse listening" })
	s.URL = "http://" + listening.str("addr")
	if m, ok := s.findLog(func(l logLine) bool { return l.msg() == "metrics listening" }); ok {
		s.Metrics = "http://" + m.str("addr") + "/metrics"
	}
	return s
}

// stop sends SIGTERM and returns the exit status.
func (s *server) stop(t *testing.T, within time.Duration) int {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	return s.wait(t, within)
}

func (s *server) wait(t *testing.T, within time.Duration) int {
	t.Helper()
	select {
	case <-s.exited:
		return s.code
	case <-time.After(within):
		t.Fatalf("gatehouse did not exit within %s; log:\n%s", within, s.log.String())
		return -1
	}
}

// logLine is one JSON log record.
type logLine map[string]any

func (l logLine) str(k string) string {
	v, _ := l[k].(string)
	return v
}

func (l logLine) msg() string { return l.str("msg") }

// logLines parses the JSON log records written so far; other lines (the log
// mailer's output) are skipped.
func (s *server) logLines() []logLine {
	var out []logLine
	sc := bufio.NewScanner(strings.NewReader(s.log.String()))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		var l logLine
		if json.Unmarshal(sc.Bytes(), &l) == nil {
			out = append(out, l)
		}
	}
	return out
}

func (s *server) findLog(match func(logLine) bool) (logLine, bool) {
	for _, l := range s.logLines() {
		if match(l) {
			return l, true
		}
	}
	return nil, false
}

// waitLog waits for a log record that matches.
func (s *server) waitLog(t *testing.T, within time.Duration, match func(logLine) bool) logLine {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		if l, ok := s.findLog(match); ok {
			return l
		}
		select {
		case <-s.exited:
			t.Fatalf("gatehouse exited (status %d) before the expected log line; log:\n%s", s.code, s.log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no matching log line within %s; log:\n%s", within, s.log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// eventually retries check until it returns nil or the time is up.
func eventually(t *testing.T, within time.Duration, check func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("still failing after %s: %v", within, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ---- upstream ----

// newUpstream starts the app behind the gate; handle nil answers
// "app <path>".
func newUpstream(t *testing.T, handle http.HandlerFunc) *apptest.App {
	t.Helper()
	a := apptest.Start(t)
	a.Handle = handle
	return a
}
