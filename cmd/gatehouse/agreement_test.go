package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"gatehouse/internal/logbuf"
)

// serveVerdict runs the real binary's `serve` on cfg and reports whether it
// started listening (then stops it) or exited, with what it printed.
func serveVerdict(t *testing.T, cfg string) (started bool, output string) {
	t.Helper()
	log := &logbuf.Buffer{}
	cmd := exec.Command(binPath, "serve", "--config", cfg)
	cmd.Env = baseEnv()
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	deadline := time.After(30 * time.Second)
	for {
		if strings.Contains(log.String(), `"msg":"gatehouse listening"`) {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(15 * time.Second):
				_ = cmd.Process.Kill()
				<-exited
			}
			return true, log.String()
		}
		select {
		case <-exited:
			return false, log.String()
		case <-deadline:
			_ = cmd.Process.Kill()
			<-exited
			t.Fatalf("serve neither started nor exited in 30s:\n%s", log.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// TestCheckConfigAgreesWithServe feeds the same documents to
// `gatehouse check-config` and `gatehouse serve`: a config that passes the
// check starts, and one that fails it is refused by serve too, both naming
// the same key. The cases include those where the two used to disagree.
func TestCheckConfigAgreesWithServe(t *testing.T) {
	for _, tc := range []struct {
		name  string
		rules string // access.rules
		extra string // more YAML under access:
		key   string // the key both name; "" = the config is valid
		top   string // more top-level YAML
	}{
		{"a rule with only hosts covers the whole host", `[{hosts: ["admin.example.com"], policy: deny}]`, "", "", ""},
		{"a wildcard host", `[{hosts: ["*.example.com"], paths: ["/admin/**"], policy: deny}]`, "", "", ""},
		{"a glob inside a host label", `[{hosts: ["app-*.example.com"], policy: deny}]`, "", "access.rules[0].hosts[0]", ""},
		{"an underscore in a rule's domain", `[{paths: ["/x/**"], policy: authenticated, domains: ["my_corp.example.com"]}]`, "", "access.rules[0].domains[0]", ""},
		{"a percent in a rule's address", `[{paths: ["/x/**"], policy: authenticated, emails: ["a%b@example.com"]}]`, "", "access.rules[0].emails[0]", ""},
		{"a rule without paths or hosts", `[{policy: deny}]`, "", "access.rules[0].paths", ""},
		{"a dot segment in a path", `[{paths: ["/a/../b"], policy: deny}]`, "", "access.rules[0].paths[0]", ""},
		{"a rule naming an undefined group", `[{paths: ["/x"], policy: authenticated, groups: [ops]}]`, "", "access.rules[0].groups[0]", ""},
		{"a rule naming a defined group", `[{paths: ["/x"], policy: authenticated, groups: [ops]}]`, "", "", "groups:\n  ops: [\"a@example.com\", \"@ops.example.com\"]\n"},
		{"a group member that is no address", `[{paths: ["/x"], policy: authenticated, groups: [ops]}]`, "", "groups.ops[1]", "groups:\n  ops: [\"a@example.com\", \"ops team\"]\n"},
		{"a rule admitting a service token", `[{paths: ["/api/**"], policy: authenticated, tokens: [ci-deploy]}]`, "", "", ""},
		{"a token on a deny rule", `[{paths: ["/api/**"], policy: deny, tokens: [ci-deploy]}]`, "", "access.rules[0].tokens", ""},
		{"an allowlist that matches", `[{paths: ["/public/**"], policy: public}]`, "  signup: allowlist\n  allowed_emails: [\"ok@example.com\"]\n  allowed_domains: [\"corp.example.com\", \"*.example.org\"]\n", "", ""},
		{"an allowlist domain that matches nobody", `[{paths: ["/public/**"], policy: public}]`, "  signup: allowlist\n  allowed_domains: [\"my_corp.example.com\"]\n", "access.allowed_domains[0]", ""},
		{"an allowlist address that matches nobody", `[{paths: ["/public/**"], policy: public}]`, "  signup: allowlist\n  allowed_emails: [\"ok@example.com\", \"a%b@example.com\"]\n", "access.allowed_emails[1]", ""},
		{"an empty allowlist", `[{paths: ["/public/**"], policy: public}]`, "  signup: allowlist\n", "access.signup", ""},
		{"a route for a host", "", "", "", "routes:\n  - host: \"api.example.com\"\n    upstream: \"http://127.0.0.1:9\"\n"},
		{"a route host with a port", "", "", "routes[0].host", "routes:\n  - host: \"api.example.com:8443\"\n    upstream: \"http://127.0.0.1:9\"\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := setup{db: database{"sqlite", filepath.Join(dir, "gatehouse.db")}, rules: tc.rules, extra: tc.top}
			body := s.yaml()
			if tc.extra != "" {
				body = strings.Replace(body, "access:\n", "access:\n"+tc.extra, 1)
			}
			cfg := filepath.Join(dir, "config.yaml")
			writeFile(t, cfg, body)

			check := gh(t, nil, "check-config", "--config", cfg)
			started, served := serveVerdict(t, cfg)
			if (check.code == 0) != started {
				t.Fatalf("check-config exit %d, serve started %v — they disagree\ncheck-config:\n%s%s\nserve:\n%s", check.code, started, check.stdout, check.stderr, served)
			}
			if tc.key == "" {
				if check.code != 0 {
					t.Fatalf("a valid config was refused:\n%s", check.stderr)
				}
				return
			}
			if check.code != 2 {
				t.Fatalf("check-config exit %d, want 2", check.code)
			}
			for what, out := range map[string]string{"check-config": check.stdout + check.stderr, "serve": served} {
				if !strings.Contains(out, tc.key+": ") {
					t.Errorf("%s does not name %s:\n%s", what, tc.key, out)
				}
			}
		})
	}
}

// TestStartupErrorsNameTheDatabaseFile: a SQLite file that cannot be
// opened (here: the path is a directory) stops serve with the file's path
// in the error, so the operator knows what to fix.
func TestStartupErrorsNameTheDatabaseFile(t *testing.T) {
	dir := t.TempDir()
	dbdir := filepath.Join(dir, "not-a-file.db")
	if err := os.Mkdir(dbdir, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "config.yaml")
	writeFile(t, cfg, setup{db: database{"sqlite", dbdir}}.yaml())
	started, out := serveVerdict(t, cfg)
	if started {
		t.Fatal("serve started on a database path that is a directory")
	}
	if !strings.Contains(out, dbdir) {
		t.Fatalf("the error does not name %s:\n%s", dbdir, out)
	}
}
