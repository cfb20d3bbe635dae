package replicas

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"gatehouse/access"
	"gatehouse/authstore"
	"gatehouse/framing"
	"gatehouse/gateway"
	"gatehouse/internal/logbuf"
	"gatehouse/mailer"
	"gatehouse/pages"
	"gatehouse/session"
	"gatehouse/signin"
)

// TestStoreOutage cuts two running replicas off PostgreSQL under a steady
// stream of requests, then reconnects them: while the database is away,
// everything that needs it answers 503 and nothing reaches the app on an
// unchecked session; when it returns, service and revocations resume
// without a restart.
func TestStoreOutage(t *testing.T) {
	dsn := newSchema(t, serverDSN(t))
	link := newDBLink(t, dsn)
	c := newCluster(t, withHost(t, dsn, link.addr()))
	rs := c.startReady("A", "B")
	a, b := rs[0], rs[1]

	// alice's and dave's sessions are warm on A (they were created there)
	// and unknown to B.
	alice, _ := c.signIn(t, a, "alice@example.com")
	dave, _ := c.signIn(t, a, "dave@example.com")
	if st, err := a.app(alice); err != nil || st != http.StatusOK {
		t.Fatalf("alice on A before the outage: %d %v", st, err)
	}

	load := startLoad(t, rs)
	link.cut()

	for _, r := range rs {
		waitStatus(t, r.name+" healthz", r.health, http.StatusServiceUnavailable, 10*time.Second)
		waitStatus(t, r.name+" readyz", r.ready, http.StatusServiceUnavailable, 10*time.Second)
	}
	forwarded := c.up.count()
	checks := []struct {
		name string
		r    *replica
		do   func() (response, error)
		want int
	}{
		{name: "session unknown to B fails closed (API)", r: b, want: http.StatusServiceUnavailable, do: func() (response, error) {
			return b.call(http.MethodGet, "/private/report", alice, "application/json", "")
		}},
		{name: "session unknown to B fails closed (page)", r: b, want: http.StatusServiceUnavailable, do: func() (response, error) {
			return b.call(http.MethodGet, "/private/report", alice, "text/html", "")
		}},
		{name: "warm session on A goes on from the cache", r: a, want: http.StatusOK, do: func() (response, error) {
			return a.call(http.MethodGet, "/private/report", alice, "application/json", "")
		}},
		{name: "code request fails closed", r: a, want: http.StatusServiceUnavailable, do: func() (response, error) {
			return a.call(http.MethodPost, "/.gatehouse/api/otp/send", "", "application/json", `{"email":"bob@example.com"}`)
		}},
		{name: "code check fails closed", r: b, want: http.StatusServiceUnavailable, do: func() (response, error) {
			return b.call(http.MethodPost, "/.gatehouse/api/otp/verify", "", "application/json", `{"email":"bob@example.com","code":"123456"}`)
		}},
		{name: "sign-out cannot end the session and says so", r: a, want: http.StatusServiceUnavailable, do: func() (response, error) {
			return a.call(http.MethodPost, "/.gatehouse/api/sign-out", dave, "application/json", "{}")
		}},
		{name: "public paths need no store", r: b, want: http.StatusOK, do: func() (response, error) {
			return b.call(http.MethodGet, "/public/logo.svg", "", "text/html", "")
		}},
	}
	for _, tt := range checks {
		resp, err := tt.do()
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if resp.status != tt.want {
			t.Errorf("%s: status %d, want %d\n%s", tt.name, resp.status, tt.want, resp.body)
		}
		if resp.status == http.StatusServiceUnavailable && strings.Contains(resp.header.Get("Content-Type"), "text/html") &&
			!strings.Contains(resp.body, "<html") {
			t.Errorf("%s: 503 page is not a page:\n%s", tt.name, resp.body)
		}
	}
	if got := c.up.count() - forwarded; got != 2 {
		t.Errorf("the app received %d requests during the outage, want the warm session's and the public one", got)
	}
	// Hold the outage until each listener has failed to reconnect a few
	// times (its backoff doubles from 100ms), so the replicas really run
	// without a database for a while.
	for _, r := range rs {
		r.waitLog(t, `msg="revocation listener disconnected"`, 10*time.Second)
		r.waitLog(t, `retry_in=800ms`, 10*time.Second)
	}

	link.restore()
	for _, r := range rs {
		waitStatus(t, r.name+" healthz", r.health, http.StatusOK, 15*time.Second)
		waitStatus(t, r.name+" readyz", r.ready, http.StatusOK, 15*time.Second)
	}
	waitStatus(t, "alice on B", func() (int, error) { return b.app(alice) }, http.StatusOK, 10*time.Second)
	c.signIn(t, b, "carol@example.com")

	// The listeners come back by themselves, and revocations flow again.
	for _, r := range rs {
		r.waitLog(t, `msg="revocation listener reconnected"`, 15*time.Second)
	}
	stats := load.stop()
	a.signOut(t, alice)
	if d, err := waitDenied(b, alice, 5*time.Second); err != nil || d > revocationLimit {
		t.Errorf("sign-out on A after the outage reached B after %v (%v), want under %v", d, err, revocationLimit)
	}
	for _, r := range rs {
		if !r.alive() {
			t.Fatalf("replica %s exited", r.name)
		}
	}

	t.Logf("load during the outage: %s", stats)
	if stats.status[http.StatusOK] != 0 || stats.other != 0 || stats.errors != 0 {
		t.Errorf("an unknown session was answered with something other than 401 or 503: %s", stats)
	}
	if stats.status[http.StatusServiceUnavailable] == 0 || stats.status[http.StatusUnauthorized] == 0 {
		t.Errorf("the load saw no 503 during the outage or no 401 around it: %s", stats)
	}
}

// waitStatus polls check until it answers want.
func waitStatus(t *testing.T, what string, check func() (int, error), want int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		st, err := check()
		if err == nil && st == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still %d (%v) after %v, want %d", what, st, err, within, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// load sends requests with session tokens nobody issued to every replica
// until stopped: each must be refused with 401, or 503 while the store is
// away, never forwarded.
type load struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	stats  loadStats
}

type loadStats struct {
	status map[int]int
	other  int // statuses other than 200, 401, 503
	errors int // transport errors
}

func (s loadStats) String() string {
	return fmt.Sprintf("%d answered 401, %d answered 503, %d answered 200, %d other, %d transport errors",
		s.status[http.StatusUnauthorized], s.status[http.StatusServiceUnavailable], s.status[http.StatusOK], s.other, s.errors)
}

func startLoad(t *testing.T, rs []*replica) *load {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{cancel: cancel, stats: loadStats{status: map[int]int{}}}
	const workers = 4
	for i := range workers {
		r := rs[i%len(rs)]
		l.wg.Go(func() {
			for ctx.Err() == nil {
				st, err := r.app(randomToken(t))
				l.record(st, err)
				select {
				case <-ctx.Done():
				case <-time.After(5 * time.Millisecond):
				}
			}
		})
	}
	t.Cleanup(func() { l.stop() })
	return l
}

func (l *load) record(status int, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case err != nil:
		l.stats.errors++
	case status == http.StatusOK || status == http.StatusUnauthorized || status == http.StatusServiceUnavailable:
		l.stats.status[status]++
	default:
		l.stats.other++
	}
}

// stop ends the load and returns what it saw.
func (l *load) stop() loadStats {
	l.cancel()
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.stats
}

// randomToken is a well-formed session token that was never issued.
func randomToken(t *testing.T) string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Error(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// clock is a settable time source.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// TestWarmSessionOutlivesOutageOnlyForCacheTTL pins down the bound on what
// keeps working while the store is away: a session a gateway has cached
// goes on until its cache entry is SessionCacheTTL old, then fails closed.
// The gateway runs in-process for its clock; the database is real and cut
// off the same way.
func TestWarmSessionOutlivesOutageOnlyForCacheTTL(t *testing.T) {
	const ttl = 30 * time.Second
	g := newLinkedGateway(t, ttl, nil)
	warm, cold := g.session(t), g.session(t)
	if got, err := g.r.app(warm); err != nil || got != http.StatusOK {
		t.Fatalf("warm-up request: %d %v", got, err)
	}

	g.link.cut()
	steps := []struct {
		name    string
		advance time.Duration
		token   string
		want    int
	}{
		{name: "cached session right after the cut", token: warm, want: http.StatusOK},
		{name: "uncached session", token: cold, want: http.StatusServiceUnavailable},
		{name: "cached session just before its entry expires", advance: ttl - time.Millisecond, token: warm, want: http.StatusOK},
		{name: "cached session once its entry expired", advance: time.Millisecond, token: warm, want: http.StatusServiceUnavailable},
	}
	for _, s := range steps {
		g.clock.advance(s.advance)
		if got, err := g.r.app(s.token); err != nil || got != s.want {
			t.Fatalf("%s: %d (%v), want %d", s.name, got, err, s.want)
		}
	}
	g.link.restore()
	waitStatus(t, "cached session after the store returned", func() (int, error) { return g.r.app(warm) }, http.StatusOK, 10*time.Second)
}

// TestStalledStoreFailsClosedWithinDriverTimeouts is the outage a network
// partition makes: the database neither answers nor refuses. With
// read_timeout and dial_timeout in the DSN, a request that needs the store
// is refused once they pass instead of hanging, and the gateway recovers
// when the network does.
func TestStalledStoreFailsClosedWithinDriverTimeouts(t *testing.T) {
	const timeout = time.Second
	g := newLinkedGateway(t, 30*time.Second, url.Values{
		"read_timeout": {timeout.String()},
		"dial_timeout": {timeout.String()},
	})
	warm, cold := g.session(t), g.session(t)
	if got, err := g.r.app(warm); err != nil || got != http.StatusOK {
		t.Fatalf("warm-up request: %d %v", got, err)
	}

	g.link.stall()
	began := time.Now()
	got, err := g.r.app(cold)
	took := time.Since(began)
	if err != nil || got != http.StatusServiceUnavailable {
		t.Fatalf("uncached session while the store is stalled: %d (%v), want 503", got, err)
	}
	t.Logf("stalled store with read_timeout=%v: an uncached session was refused after %v", timeout, took.Round(time.Millisecond))
	if took < timeout || took > 5*timeout {
		t.Errorf("refused after %v, want about read_timeout (%v)", took, timeout)
	}
	if got, err := g.r.app(warm); err != nil || got != http.StatusOK {
		t.Errorf("cached session while the store is stalled: %d (%v), want 200", got, err)
	}
	if got, err := g.r.health(); err != nil || got != http.StatusServiceUnavailable {
		t.Errorf("healthz while the store is stalled: %d (%v), want 503", got, err)
	}

	g.link.restore()
	waitStatus(t, "uncached session after the network returned", func() (int, error) { return g.r.app(cold) }, http.StatusOK, 10*time.Second)
}

// linkedGateway is an in-process gateway whose store reaches PostgreSQL
// through a dbLink, with a settable clock.
type linkedGateway struct {
	r     *replica
	st    *authstore.Store
	link  *dbLink
	clock *clock
}

// newLinkedGateway starts a gateway on a fresh schema; query is added to the
// store's DSN.
func newLinkedGateway(t *testing.T, ttl time.Duration, query url.Values) *linkedGateway {
	t.Helper()
	dsn := newSchema(t, serverDSN(t))
	link := newDBLink(t, dsn)
	u, err := url.Parse(withHost(t, dsn, link.addr()))
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	for k, v := range query {
		q[k] = v
	}
	u.RawQuery = q.Encode()
	ctx := context.Background()
	st, err := authstore.Open(ctx, authstore.Options{Driver: "postgres", DSN: u.String()})
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
	clk := &clock{now: time.Now().UTC()}
	return &linkedGateway{r: inProcessGateway(t, st, secret, clk, ttl), st: st, link: link, clock: clk}
}

// session stores a session for a new token, as a sign-in would, and
// returns the token.
func (g *linkedGateway) session(t *testing.T) string {
	t.Helper()
	token := randomToken(t)
	h := sha256.Sum256([]byte(token))
	now := g.clock.Now()
	if _, err := g.st.CreateSession(context.Background(), authstore.Session{
		TokenHash: h[:], Email: "dora@example.com", CreatedAt: now, ExpiresAt: now.Add(time.Hour),
	}); err != nil {
		t.Fatal(err)
	}
	return token
}

// inProcessGateway serves a gateway on st with a settable clock and
// returns it as a replica for the request helpers.
func inProcessGateway(t *testing.T, st *authstore.Store, secret []byte, clk *clock, ttl time.Duration) *replica {
	t.Helper()
	renderer, err := pages.New(pages.Options{AppName: "Gatehouse", AccentColor: "#2563eb", DefaultLanguage: "en", Prefix: gateway.Prefix})
	if err != nil {
		t.Fatal(err)
	}
	up := newUpstream(t)
	upURL, _ := url.Parse(up.URL)
	pub, _ := url.Parse(publicURL)
	gw, err := gateway.New(gateway.Options{
		PublicURL: pub,
		Upstream:  upURL,
		Session: session.Settings{
			CookieName: sessionCookie, Lifetime: 24 * time.Hour, IdleTimeout: 24 * time.Hour,
		},
		Settings: gateway.Settings{
			DefaultPolicy: access.PolicyAuthenticated,
			Signup:        access.Signup{Open: true},
			OTP: signin.OTP{
				Length: 6, TTL: 5 * time.Minute, MaxAttempts: 5, MaxFailuresPerHour: 100,
				RateWindow: 15 * time.Minute, PerAddress: 5, PerIP: 30,
			},
			Mailer: mailer.NewLog(io.Discard),
			Pages:  renderer,
		},
		Store:           st,
		Secret:          secret,
		Now:             clk.Now,
		SessionCacheTTL: ttl,
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = gw.Serve(framing.Guard(ln)) }()
	t.Cleanup(func() { _ = gw.Close(); <-done })
	return &replica{t: t, name: "in-process", url: "http://" + ln.Addr().String(), client: &http.Client{}, logs: &logbuf.Buffer{}}
}
