package replicas

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"gatehouse/authstore"
	"gatehouse/migrations"
)

// revocationLimit is how soon every replica must refuse a revoked session.
const revocationLimit = time.Second

// TestCrossReplica runs two replicas on one database and moves every step
// of the sign-in between them, as a load balancer without sticky sessions
// would.
func TestCrossReplica(t *testing.T) {
	dsn := newSchema(t, serverDSN(t))
	c := newCluster(t, dsn)
	rs := c.startReady("A", "B")
	a, b := rs[0], rs[1]
	st, err := authstore.Open(context.Background(), authstore.Options{Driver: "postgres", DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })

	t.Run("code requested on A signs in on B with A's form", func(t *testing.T) {
		testFormAcrossReplicas(t, c, a, b)
	})
	t.Run("five wrong tries spread over A and B void the code", func(t *testing.T) {
		const email = "wrong@example.com"
		code := c.codeFor(t, a, email)
		for i := range 5 {
			r := []*replica{a, b}[i%2]
			v, err := r.verify(email, otherCode(code))
			if err != nil {
				t.Fatal(err)
			}
			if v.status != http.StatusUnauthorized || v.errorKind != "code_wrong" {
				t.Fatalf("wrong try %d on %s: %d %s, want 401 code_wrong", i+1, r.name, v.status, v.errorKind)
			}
		}
		v, err := b.verify(email, code)
		if err != nil {
			t.Fatal(err)
		}
		if v.status != http.StatusUnauthorized || v.errorKind != "code_too_many" || v.token != "" {
			t.Fatalf("right code after five wrong tries: %d %s, want 401 code_too_many and no session", v.status, v.errorKind)
		}
	})
	t.Run("twenty concurrent right codes over A and B give one session", func(t *testing.T) {
		const email = "race@example.com"
		code := c.codeFor(t, b, email)
		const n = 20
		results := make([]verified, n)
		errs := make([]error, n)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				<-start
				results[i], errs[i] = []*replica{a, b}[i%2].verify(email, code)
			})
		}
		close(start)
		wg.Wait()
		won := 0
		for i, v := range results {
			switch {
			case errs[i] != nil:
				t.Fatal(errs[i])
			case v.status == http.StatusOK && v.token != "":
				won++
			case v.status != http.StatusUnauthorized:
				t.Errorf("submission %d: status %d %s, want 200 or 401", i, v.status, v.errorKind)
			}
		}
		sessions, err := st.ListSessions(context.Background(), email)
		if err != nil {
			t.Fatal(err)
		}
		if won != 1 || len(sessions) != 1 {
			t.Fatalf("%d submissions succeeded and the store holds %d sessions, want exactly one of each", won, len(sessions))
		}
	})
	t.Run("send limit per address counts sends on both replicas", func(t *testing.T) {
		const email = "limit@example.com"
		// otp.rate_limit.per_address is 5 per window (24h here): the
		// sixth request answers like the others but mails nothing.
		for i := range 6 {
			[]*replica{a, b}[i%2].sendCode(t, email)
		}
		if got := c.mailsTo(email); got != 5 {
			t.Fatalf("%d mails after six requests over two replicas, want 5", got)
		}
	})
	t.Run("warm sessions cost no store read", func(t *testing.T) {
		token, _ := c.signIn(t, a, "warm@example.com")
		if st, err := b.app(token); err != nil || st != http.StatusOK {
			t.Fatalf("first request on B: %d %v", st, err)
		}
		hits, misses := b.cacheLookups(t)
		const n = 25
		for range n {
			if st, err := b.app(token); err != nil || st != http.StatusOK {
				t.Fatalf("request on B: %d %v", st, err)
			}
		}
		hits2, misses2 := b.cacheLookups(t)
		if hits2-hits != n || misses2 != misses {
			t.Fatalf("%d requests with a warm session: %d cache hits, %d misses, want %d hits and no miss", n, hits2-hits, misses2-misses, n)
		}
	})
	t.Run("sign-out on A is refused by B within 1s", func(t *testing.T) {
		var took []time.Duration
		for i := range 8 {
			token, _ := c.signIn(t, a, fmt.Sprintf("out%d@example.com", i))
			// B must hold the session in its cache, or it would refuse it
			// by reading the store and prove nothing.
			if st, err := b.app(token); err != nil || st != http.StatusOK {
				t.Fatalf("session from A on B: %d %v", st, err)
			}
			if got := c.up.lastEmail(); got != fmt.Sprintf("out%d@example.com", i) {
				t.Fatalf("app got identity %q", got)
			}
			a.signOut(t, token)
			d, err := waitDenied(b, token, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if d > revocationLimit {
				t.Errorf("sign-out %d took %v to reach B, want under %v", i, d, revocationLimit)
			}
			took = append(took, d)
		}
		slices.Sort(took)
		t.Logf("sign-out on A until B refuses, %d runs: median %v, max %v", len(took), took[len(took)/2], took[len(took)-1])
	})
	t.Run("sessions revoke on the CLI is refused by both within 1s", func(t *testing.T) {
		var took []time.Duration
		for i := range 4 {
			token, id := c.signIn(t, b, fmt.Sprintf("cli%d@example.com", i))
			for _, r := range rs {
				if st, err := r.app(token); err != nil || st != http.StatusOK {
					t.Fatalf("session on %s before revoking: %d %v", r.name, st, err)
				}
			}
			out, errOut, code := c.command(t, "sessions", "revoke", id)
			if code != 0 || !strings.Contains(out, "revoked session "+id) {
				t.Fatalf("gatehouse sessions revoke: exit %d\n%s%s", code, out, errOut)
			}
			var (
				wg sync.WaitGroup
				mu sync.Mutex
			)
			for _, r := range rs {
				wg.Go(func() {
					d, err := waitDenied(r, token, 5*time.Second)
					if err != nil {
						t.Error(err)
						return
					}
					if d > revocationLimit {
						t.Errorf("revocation took %v to reach %s, want under %v", d, r.name, revocationLimit)
					}
					mu.Lock()
					took = append(took, d)
					mu.Unlock()
				})
			}
			wg.Wait()
		}
		slices.Sort(took)
		if len(took) > 0 {
			t.Logf("CLI revoke until a replica refuses, %d measurements: median %v, max %v", len(took), took[len(took)/2], took[len(took)-1])
		}
	})
}

// otherCode returns a well-formed code that is not code.
func otherCode(code string) string {
	b := []byte(code)
	b[0] = '0' + (b[0]-'0'+1)%10
	return string(b)
}

var csrfRE = regexp.MustCompile(`name="_csrf" value="([^"]+)"`)

// testFormAcrossReplicas walks the browser flow with one cookie jar: the
// login page from A, the code request to A, the code form posted to B (so
// B accepts A's CSRF token), and the protected page from both.
func testFormAcrossReplicas(t *testing.T, c *cluster, a, b *replica) {
	const email = "form@example.com"
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Jar: jar, Timeout: 15 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	do := func(method string, r *replica, path string, form url.Values) response {
		t.Helper()
		var req *http.Request
		if form == nil {
			req, _ = http.NewRequest(method, r.url+path, nil)
		} else {
			req, _ = http.NewRequest(method, r.url+path, strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Origin", publicURL)
			req.Header.Set("Sec-Fetch-Site", "same-origin")
		}
		req.Header.Set("Accept", "text/html")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return response{status: resp.StatusCode, header: resp.Header, body: string(body)}
	}
	csrf := func(page string) string {
		t.Helper()
		m := csrfRE.FindStringSubmatch(page)
		if m == nil {
			t.Fatalf("no CSRF token in page:\n%s", page)
		}
		return m[1]
	}

	login := do(http.MethodGet, a, "/.gatehouse/login?rd=/private/report", nil)
	if login.status != http.StatusOK {
		t.Fatalf("login page on A: %d", login.status)
	}
	n := c.mailsTo(email) + 1
	codePage := do(http.MethodPost, a, "/.gatehouse/login", url.Values{"email": {email}, "rd": {"/private/report"}, "_csrf": {csrf(login.body)}})
	if codePage.status != http.StatusOK {
		t.Fatalf("code request on A: %d\n%s", codePage.status, codePage.body)
	}
	code := c.mail.WaitFor(t, email, n).Code()
	done := do(http.MethodPost, b, "/.gatehouse/verify", url.Values{"email": {email}, "code": {code}, "rd": {"/private/report"}, "_csrf": {csrf(codePage.body)}})
	if loc := strings.TrimPrefix(done.header.Get("Location"), publicURL); done.status != http.StatusSeeOther || loc != "/private/report" {
		t.Fatalf("code on B: %d to %q, want 303 to /private/report\n%s", done.status, done.header.Get("Location"), done.body)
	}
	for _, r := range []*replica{b, a} {
		page := do(http.MethodGet, r, "/private/report", nil)
		if page.status != http.StatusOK || c.up.lastEmail() != email {
			t.Fatalf("protected page on %s: %d, app saw %q", r.name, page.status, c.up.lastEmail())
		}
	}
}

// knownMigrations lists the PostgreSQL migrations this source tree has.
func knownMigrations(t *testing.T) []string {
	t.Helper()
	fsys, err := migrations.FS("postgres")
	if err != nil {
		t.Fatal(err)
	}
	files, err := fs.Glob(fsys, "*.up.sql")
	if err != nil || len(files) == 0 {
		t.Fatalf("no PostgreSQL migrations (%v)", err)
	}
	for i, f := range files {
		files[i] = strings.TrimSuffix(f, ".up.sql")
	}
	slices.Sort(files)
	return files
}

// TestReplicasStartTogether starts two replicas at the same moment on an
// empty schema: both migrate it (one waits for the other's lock), both
// serve, and they share one generated secret.
func TestReplicasStartTogether(t *testing.T) {
	dsn := newSchema(t, serverDSN(t))
	c := newCluster(t, dsn)
	rs := c.startReady("A", "B")
	a, b := rs[0], rs[1]

	db := openDB(t, dsn)
	rows, err := db.QueryContext(context.Background(), "SELECT name FROM gatehouse_migrations ORDER BY name")
	if err != nil {
		t.Fatal(err)
	}
	var applied []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		applied = append(applied, name)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if want := knownMigrations(t); !slices.Equal(applied, want) {
		t.Fatalf("applied migrations %v, want each of %v once", applied, want)
	}
	var secrets int
	if err := db.QueryRowContext(context.Background(), "SELECT count(*) FROM server_secret").Scan(&secrets); err != nil || secrets != 1 {
		t.Fatalf("%d stored secrets (%v), want 1", secrets, err)
	}
	// A code hashed with A's secret verifies on B only if both hold the
	// same secret.
	const email = "together@example.com"
	v, err := b.verify(email, c.codeFor(t, a, email))
	if err != nil || v.status != http.StatusOK {
		t.Fatalf("code from A verified on B: %+v %v", v, err)
	}
	out, errOut, code := c.command(t, "migrate", "status")
	if code != 0 {
		t.Fatalf("migrate status: exit %d\n%s", code, errOut)
	}
	for _, m := range knownMigrations(t) {
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(m) + `\s+applied\s`).MatchString(out) {
			t.Errorf("migrate status does not show %s applied:\n%s", m, out)
		}
	}
}

// TestNewerSchemaIsRefused puts a migration this binary does not know into
// the database: neither serve nor migrate up may touch it.
func TestNewerSchemaIsRefused(t *testing.T) {
	dsn := newSchema(t, serverDSN(t))
	c := newCluster(t, dsn)
	if _, _, code := c.command(t, "migrate", "up"); code != 0 {
		t.Fatalf("migrate up on an empty schema: exit %d", code)
	}
	db := openDB(t, dsn)
	const future = "9999_from_a_newer_gatehouse"
	if _, err := db.ExecContext(context.Background(),
		"INSERT INTO gatehouse_migrations (name, applied_at) VALUES ($1, now())", future); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		run  func() (output string, code int)
	}{
		{name: "serve", run: func() (string, int) {
			r := c.start("newer")
			select {
			case <-r.exited:
			case <-time.After(30 * time.Second):
				t.Fatal("serve kept running against a newer schema")
			}
			code := r.cmd.ProcessState.ExitCode()
			if strings.Contains(r.logs.String(), "gatehouse listening") {
				t.Error("serve listened before refusing the schema")
			}
			return r.logs.String(), code
		}},
		{name: "migrate up", run: func() (string, int) {
			out, errOut, code := c.command(t, "migrate", "up")
			return out + errOut, code
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, code := tt.run()
			if code == 0 {
				t.Fatalf("exit 0, want a refusal; output:\n%s", out)
			}
			if !strings.Contains(out, "newer than this binary") || !strings.Contains(out, future) {
				t.Fatalf("output does not explain the refusal:\n%s", out)
			}
			var n int
			if err := db.QueryRowContext(context.Background(), "SELECT count(*) FROM gatehouse_migrations").Scan(&n); err != nil {
				t.Fatal(err)
			}
			if want := len(knownMigrations(t)) + 1; n != want {
				t.Fatalf("%d migration rows after the refusal, want %d unchanged", n, want)
			}
		})
	}
}
