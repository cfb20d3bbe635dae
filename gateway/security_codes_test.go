package gateway

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"gatehouse/access"
	"gatehouse/mailer"
)

// dbRows returns every row of table as strings, column by column, read
// with a connection of its own: what an attacker with the database file
// would see.
func (h *harness) dbRows(table string) []map[string]string {
	h.t.Helper()
	db, err := sql.Open("sqlite", h.dbPath)
	if err != nil {
		h.t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query("SELECT * FROM " + table)
	if err != nil {
		h.t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out []map[string]string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			h.t.Fatal(err)
		}
		row := map[string]string{}
		for i, c := range cols {
			switch v := vals[i].(type) {
			case []byte:
				row[c] = string(v)
			case nil:
				row[c] = ""
			default:
				row[c] = fmt.Sprint(v)
			}
		}
		out = append(out, row)
	}
	return out
}

// api posts JSON to a Gatehouse API endpoint the way a same-origin script
// does, with extra headers.
func (b *browser) api(path, body string, headers ...string) response {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, b.h.URL+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", b.h.URL)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return b.do(req)
}

// wrongCode returns a well-formed code that is not code.
func wrongCode(code string) string {
	if code == "000000" {
		return "111111"
	}
	return "000000"
}

func trustLoopback(o *Options) {
	o.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
}

func TestCodesAreStoredOnlyAsKeyedHashes(t *testing.T) {
	h := newHarness(t)
	h.browser().requestCode("kim@example.com", "/")
	msg := h.mail.WaitFor(t, "kim@example.com", 1)
	code, link := msg.Code(), msg.Link()
	token := linkToken(link)
	rows := h.dbRows("login_codes")
	if len(rows) != 1 {
		t.Fatalf("%d code rows, want 1", len(rows))
	}
	for col, v := range rows[0] {
		if strings.Contains(v, code) || strings.Contains(v, token) {
			t.Errorf("column %s holds the code or link token in plain text", col)
		}
	}
	stored := []byte(rows[0]["code_hash"])
	keyed := hmac.New(sha256.New, []byte("0123456789abcdef0123456789abcdef"))
	keyed.Write([]byte("gatehouse code\x00kim@example.com\x00" + code))
	if !hmac.Equal(stored, keyed.Sum(nil)) {
		t.Fatal("code_hash is not the HMAC of address and code under the server secret")
	}
	for name, unkeyed := range map[string][32]byte{
		"sha256(code)":         sha256.Sum256([]byte(code)),
		"sha256(email, code)":  sha256.Sum256([]byte("kim@example.com" + code)),
		"sha256(email\\0code)": sha256.Sum256([]byte("kim@example.com\x00" + code)),
	} {
		if hmac.Equal(stored, unkeyed[:]) {
			t.Fatalf("code_hash is %s: a leaked database gives every code away in 10^6 tries", name)
		}
	}
	if linkHash := []byte(rows[0]["link_hash"]); len(linkHash) == 0 || hmac.Equal(linkHash, func() []byte { s := sha256.Sum256([]byte(token)); return s[:] }()) {
		t.Fatal("link_hash is missing or unkeyed")
	}
}

func TestConcurrentCorrectCodesOnEveryEndpointGiveOneSession(t *testing.T) {
	h := newHarness(t)
	b := h.browser()
	page := b.requestCode("nia@example.com", "/")
	code := h.mail.WaitFor(t, "nia@example.com", 1).Code()
	csrf := b.csrf(page.body)
	var wg sync.WaitGroup
	statuses := make(chan int, 20)
	start := make(chan struct{})
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			var req *http.Request
			if i%2 == 0 {
				form := url.Values{"email": {"nia@example.com"}, "code": {code}, "rd": {"/"}, "_csrf": {csrf}}
				req, _ = http.NewRequest(http.MethodPost, h.URL+"/.gatehouse/verify", strings.NewReader(form.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			} else {
				req, _ = http.NewRequest(http.MethodPost, h.URL+"/.gatehouse/api/otp/verify", strings.NewReader(`{"email":"nia@example.com","code":"`+code+`"}`))
				req.Header.Set("Content-Type", "application/json")
			}
			req.Header.Set("Origin", h.URL)
			<-start
			resp, err := b.c.Do(req)
			if err != nil {
				statuses <- 0
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			statuses <- resp.StatusCode
		}(i)
	}
	close(start)
	wg.Wait()
	close(statuses)
	won := 0
	for s := range statuses {
		if s == http.StatusOK || s == http.StatusSeeOther {
			won++
		}
	}
	if won != 1 {
		t.Fatalf("%d of 20 concurrent correct submissions signed in, want 1", won)
	}
	if list, err := h.store.ListSessions(context.Background(), "nia@example.com"); err != nil || len(list) != 1 {
		t.Fatalf("%d sessions (%v), want 1", len(list), err)
	}
}

func TestNewerCodeVoidsOlderCodeAndLink(t *testing.T) {
	h := newHarness(t)
	b := h.browser()
	b.requestCode("ole@example.com", "/")
	first := h.mail.WaitFor(t, "ole@example.com", 1)
	page := b.requestCode("ole@example.com", "/")
	second := h.mail.WaitFor(t, "ole@example.com", 2)
	if first.Code() == second.Code() {
		t.Skip("the two random codes are equal; nothing to tell apart")
	}
	if r := b.verify("ole@example.com", first.Code(), "/", page.body); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("older code: %d, want 401", r.StatusCode)
	}
	token := linkToken(first.Link())
	confirm := b.get("/.gatehouse/link?t=" + token)
	if r := b.post("/.gatehouse/link", url.Values{"token": {token}, "_csrf": {b.csrf(confirm.body)}}); r.StatusCode == http.StatusSeeOther {
		t.Fatal("the older mail's link still signs in")
	}
	if r := b.verify("ole@example.com", second.Code(), "/", page.body); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("newest code: %d, want 303", r.StatusCode)
	}
}

// TestWrongTriesVoidTheCodeWhateverTheRoute spreads the wrong tries over
// client addresses (believed, through a trusted proxy), path spellings,
// the form and the API: they all count against the one code.
func TestWrongTriesVoidTheCodeWhateverTheRoute(t *testing.T) {
	h := newHarness(t, trustLoopback)
	b := h.browser()
	page := b.requestCode("pat@example.com", "/")
	code := h.mail.WaitFor(t, "pat@example.com", 1).Code()
	wrong := wrongCode(code)
	csrf := b.csrf(page.body)
	form := func(path, xff string) response {
		req, _ := http.NewRequest(http.MethodPost, h.URL+path, strings.NewReader(url.Values{
			"email": {"pat@example.com"}, "code": {wrong}, "rd": {"/"}, "_csrf": {csrf}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", h.URL)
		req.Header.Set("X-Forwarded-For", xff)
		req.Header.Set("User-Agent", "agent "+xff)
		return b.do(req)
	}
	api := func(path, xff string) response {
		return b.api(path, `{"email":"PAT@example.com","code":"`+wrong+`"}`, "X-Forwarded-For", xff, "X-Real-Ip", xff)
	}
	tries := []struct {
		name string
		do   func() response
	}{
		{"form", func() response { return form("/.gatehouse/verify", "203.0.113.1") }},
		{"api", func() response { return api("/.gatehouse/api/otp/verify", "203.0.113.2") }},
		{"form, repeated slash", func() response { return form("/.gatehouse//verify", "203.0.113.3") }},
		{"form, trailing slash", func() response { return form("/.gatehouse/verify/", "203.0.113.4") }},
		{"api, encoded letter", func() response { return api("/.gatehouse/api/otp/%76erify", "203.0.113.5") }},
		{"api, repeated slash", func() response { return api("/.gatehouse/api//otp/verify", "2001:db8::6") }},
		{"form, another IPv6", func() response { return form("/.gatehouse/verify", "2001:db8::7") }},
		{"api, trailing slash", func() response { return api("/.gatehouse/api/otp/verify/", "192.0.2.8") }},
		{"api, IPv4-mapped", func() response { return api("/.gatehouse/api/otp/verify", "::ffff:192.0.2.9") }},
	}
	counted := 0
	for _, tr := range tries {
		r := tr.do()
		switch r.StatusCode {
		case http.StatusUnauthorized:
			counted++
		case http.StatusNotFound, http.StatusBadRequest:
			// Not a verify endpoint under this spelling: nothing was tried.
		default:
			t.Fatalf("%s: status %d", tr.name, r.StatusCode)
		}
		if counted == 5 {
			break
		}
	}
	if counted < 5 {
		t.Fatalf("only %d wrong tries were answered", counted)
	}
	if r := b.api("/.gatehouse/api/otp/verify", `{"email":"pat@example.com","code":"`+code+`"}`, "X-Forwarded-For", "198.51.100.9"); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("right code after 5 wrong tries from 5 routes: %d, want 401", r.StatusCode)
	}
	if r := b.verify("pat@example.com", code, "/", page.body); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("right code by form after 5 wrong tries: %d, want 401", r.StatusCode)
	}
}

func TestSendLimits(t *testing.T) {
	t.Run("per address, whatever the client address", func(t *testing.T) {
		h := newHarness(t, trustLoopback)
		for i := 0; i < 7; i++ {
			r := h.browser().api("/.gatehouse/api/otp/send", `{"email":"quinn@example.com"}`, "X-Forwarded-For", fmt.Sprintf("198.51.100.%d", i+1))
			if r.StatusCode != http.StatusOK {
				t.Fatalf("send %d: %d", i, r.StatusCode)
			}
		}
		h.mail.WaitFor(t, "quinn@example.com", 5)
		time.Sleep(100 * time.Millisecond)
		if n := len(h.mailsTo("quinn@example.com")); n != 5 {
			t.Fatalf("%d mails to one address, want 5 (otp.rate_limit.per_address)", n)
		}
	})
	perIP := func(o *Options) { o.Settings.OTP.PerIP = 3 }
	cases := []struct {
		name      string
		edit      []func(*Options)
		xff       string // %d is the request number
		wantMails int
	}{
		// X-Forwarded-For from an untrusted peer is ignored: all sends
		// come from one address.
		{"per IP, spoofed X-Forwarded-For ignored", []func(*Options){perIP}, "192.0.2.%d", 3},
		// Through a trusted proxy each forwarded address is a client of
		// its own (this is what makes the case above meaningful)...
		{"per IP, trusted proxy", []func(*Options){perIP, trustLoopback}, "192.0.2.%d", 6},
		// ...but an IPv6 client cannot step around the limit by taking a
		// fresh address from its /64 for every request.
		{"per IP, rotating within an IPv6 /64", []func(*Options){perIP, trustLoopback}, "2001:db8:7:8::%d", 3},
		{"per IP, separate IPv6 /64s", []func(*Options){perIP, trustLoopback}, "2001:db8:7:%d::1", 6},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.edit...)
			for i := 0; i < 6; i++ {
				b := h.browser()
				ip := fmt.Sprintf(tc.xff, i+1)
				b.header.Set("X-Forwarded-For", ip)
				b.header.Set("X-Real-Ip", ip)
				b.header.Set("Forwarded", "for=\""+ip+"\"")
				if r := b.requestCode(fmt.Sprintf("r%d@example.com", i), "/"); r.StatusCode != http.StatusOK {
					t.Fatalf("send %d: %d", i, r.StatusCode)
				}
			}
			deadline := time.Now().Add(5 * time.Second)
			for len(h.mail.Messages()) < tc.wantMails && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			time.Sleep(100 * time.Millisecond)
			if n := len(h.mail.Messages()); n != tc.wantMails {
				t.Fatalf("%d mails sent, want %d", n, tc.wantMails)
			}
		})
	}
}

// TestFailedVerificationsPerAccountAreBounded: at most
// otp.max_failures_per_hour failed tries in any 60 minutes, whatever the
// codes, clients or endpoints, and none at all once the bound is reached.
func TestFailedVerificationsPerAccountAreBounded(t *testing.T) {
	var mu sync.Mutex
	now := time.Now().UTC().Truncate(time.Hour).Add(50 * time.Minute)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	h := newHarness(t, trustLoopback, func(o *Options) {
		o.Now = clock
		o.Settings.OTP.PerAddress = 1000
		o.Settings.OTP.PerIP = 1000
		o.Settings.OTP.MaxFailuresPerHour = 100
	})
	b := h.browser()
	failures := 0
	for n := 1; failures < 100; n++ {
		b.api("/.gatehouse/api/otp/send", `{"email":"rae@example.com"}`)
		code := h.mail.WaitFor(t, "rae@example.com", n).Code()
		for i := 0; i < 5 && failures < 100; i++ {
			r := b.api("/.gatehouse/api/otp/verify", `{"email":"rae@example.com","code":"`+wrongCode(code)+`"}`, "X-Forwarded-For", fmt.Sprintf("203.0.113.%d", failures%250+1))
			if r.StatusCode != http.StatusUnauthorized {
				t.Fatalf("failure %d: %d", failures, r.StatusCode)
			}
			failures++
		}
	}
	advance(time.Minute)
	fresh := func() string {
		n := len(h.mailsTo("rae@example.com")) + 1
		if r := b.api("/.gatehouse/api/otp/send", `{"email":"rae@example.com"}`); r.StatusCode != http.StatusOK {
			t.Fatalf("send: %d %s", r.StatusCode, r.body)
		}
		return h.mail.WaitFor(t, "rae@example.com", n).Code()
	}
	code := fresh()
	if r := b.api("/.gatehouse/api/otp/verify", `{"email":"rae@example.com","code":"`+code+`"}`); r.StatusCode != http.StatusUnauthorized || !strings.Contains(r.body, "too_many") {
		t.Fatalf("right code after 100 failures this hour: %d %s, want 401 too_many", r.StatusCode, r.body)
	}
	// A fixed hourly window would start afresh on the hour; the bound is on
	// any 60 minutes.
	advance(15 * time.Minute)
	code = fresh()
	if r := b.api("/.gatehouse/api/otp/verify", `{"email":"rae@example.com","code":"`+wrongCode(code)+`"}`); !strings.Contains(r.body, "too_many") {
		t.Fatalf("a new clock hour reopened the account to guessing: %d %s", r.StatusCode, r.body)
	}
	advance(2 * time.Hour)
	code = fresh()
	if r := b.api("/.gatehouse/api/otp/verify", `{"email":"rae@example.com","code":"`+code+`"}`); r.StatusCode != http.StatusOK {
		t.Fatalf("two hours later the right code: %d %s, want 200", r.StatusCode, r.body)
	}
}

// sendOutcome is what a client learns from asking for a code.
type sendOutcome struct {
	formStatus int
	form       string // page with the address and per-page tokens removed
	apiStatus  int
	api        string
}

var volatileRE = regexp.MustCompile(`name="_csrf" value="[^"]*"|nonce="[^"]*"|nonce-[A-Za-z0-9+/=]+`)

func askForCode(h *harness, email string) sendOutcome {
	b := h.browser()
	page := b.requestCode(email, "/next")
	api := b.api("/.gatehouse/api/otp/send", `{"email":"`+email+`"}`)
	return sendOutcome{
		formStatus: page.StatusCode,
		form:       volatileRE.ReplaceAllString(strings.ReplaceAll(page.body, email, "ADDRESS"), ""),
		apiStatus:  api.StatusCode,
		api:        strings.ReplaceAll(api.body, email, "ADDRESS"),
	}
}

// TestSendAnswerRevealsNothingAboutTheAddress: allowed, not allowed,
// disabled and throttled addresses get the same page and the same JSON.
func TestSendAnswerRevealsNothingAboutTheAddress(t *testing.T) {
	h := newHarness(t, func(o *Options) {
		o.Settings.Signup = access.Signup{Domains: []string{"corp.example"}}
	})
	if err := h.store.SetUserDisabled(context.Background(), "gone@corp.example", true); err != nil {
		if _, err := h.store.EnsureUser(context.Background(), "gone@corp.example", time.Now()); err != nil {
			t.Fatal(err)
		}
		if err := h.store.SetUserDisabled(context.Background(), "gone@corp.example", true); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 6; i++ { // use up the per-address limit
		h.browser().api("/.gatehouse/api/otp/send", `{"email":"busy@corp.example"}`)
	}
	want := askForCode(h, "new@corp.example")
	if want.formStatus != http.StatusOK || want.apiStatus != http.StatusOK {
		t.Fatalf("allowed address: form %d, api %d", want.formStatus, want.apiStatus)
	}
	for name, email := range map[string]string{
		"not allowed": "stranger@example.com",
		"disabled":    "gone@corp.example",
		"throttled":   "busy@corp.example",
	} {
		t.Run(name, func(t *testing.T) {
			got := askForCode(h, email)
			if got.formStatus != want.formStatus || got.form != want.form {
				t.Errorf("form answer differs: %d vs %d", got.formStatus, want.formStatus)
			}
			if got.apiStatus != want.apiStatus || got.api != want.api {
				t.Errorf("API answer differs: %d %s vs %d %s", got.apiStatus, got.api, want.apiStatus, want.api)
			}
		})
	}
	if n := len(h.mailsTo("stranger@example.com")) + len(h.mailsTo("gone@corp.example")); n != 0 {
		t.Fatalf("%d mails went to addresses that may not sign in", n)
	}
}

// TestVerifyAnswerRevealsNothingAboutTheAddress: trying codes for an
// address that may not sign in goes exactly as for one that may: wrong,
// then void after otp.max_attempts, then expired.
func TestVerifyAnswerRevealsNothingAboutTheAddress(t *testing.T) {
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	h := newHarness(t, func(o *Options) {
		o.Now = clock
		o.Settings.Signup = access.Signup{Emails: []string{"member@example.com"}}
	})
	try := func(email, code string) string {
		b := h.browser()
		login := b.get("/.gatehouse/login")
		form := b.post("/.gatehouse/verify", url.Values{"email": {email}, "code": {code}, "rd": {"/"}, "_csrf": {b.csrf(login.body)}})
		api := b.api("/.gatehouse/api/otp/verify", `{"email":"`+email+`","code":"`+code+`"}`)
		norm := volatileRE.ReplaceAllString(strings.ReplaceAll(form.body, email, "ADDRESS"), "")
		return fmt.Sprintf("%d %d %s %s", form.StatusCode, api.StatusCode, strings.ReplaceAll(api.body, email, "ADDRESS"), norm)
	}
	for _, email := range []string{"member@example.com", "outsider@example.com"} {
		h.browser().requestCode(email, "/")
	}
	code := h.mail.WaitFor(t, "member@example.com", 1).Code()
	wrong := wrongCode(code)
	var steps []string
	for i := 0; i < 4; i++ { // two tries per call: form and API
		a, b := try("member@example.com", wrong), try("outsider@example.com", wrong)
		if a != b {
			steps = append(steps, fmt.Sprintf("try %d differs:\nallowed:     %.300s\nnot allowed: %.300s", i, a, b))
		}
	}
	mu.Lock()
	now = now.Add(time.Hour)
	mu.Unlock()
	for _, email := range []string{"member@example.com", "outsider@example.com"} {
		h.browser().requestCode(email, "/")
	}
	h.mail.WaitFor(t, "member@example.com", 2)
	mu.Lock()
	now = now.Add(10 * time.Minute)
	mu.Unlock()
	if a, b := try("member@example.com", wrong), try("outsider@example.com", wrong); a != b {
		steps = append(steps, fmt.Sprintf("expired code differs:\nallowed:     %.300s\nnot allowed: %.300s", a, b))
	}
	if len(steps) > 0 {
		t.Fatal(strings.Join(steps, "\n"))
	}
}

// TestSendTimingRevealsNothingAboutTheAddress compares how long the answer
// takes for addresses that get a mail and addresses that do not. It is
// tolerant (medians, a wide band) because the machine is shared; without
// the delay, refused addresses answer several times faster than a mail
// can be sent.
func TestSendTimingRevealsNothingAboutTheAddress(t *testing.T) {
	h := newHarness(t, func(o *Options) {
		o.Settings.Signup = access.Signup{Domains: []string{"corp.example"}}
		o.Settings.OTP.PerIP = 10000
		o.Settings.OTP.PerAddress = 1
		// A mail server across a network takes tens of milliseconds; the
		// in-process one answers at once, which would hide the difference.
		o.Settings.Mailer = slowMailer{o.Settings.Mailer, 40 * time.Millisecond}
	})
	b := h.browser()
	send := func(email string) time.Duration {
		start := time.Now()
		r := b.api("/.gatehouse/api/otp/send", `{"email":"`+email+`"}`)
		if r.StatusCode != http.StatusOK {
			t.Fatalf("send: %d", r.StatusCode)
		}
		return time.Since(start)
	}
	for i := 0; i < 24; i++ { // let the server learn how long a send takes
		send(fmt.Sprintf("warm%d@corp.example", i))
	}
	send("busy@corp.example")
	var allowed, refused, throttled []time.Duration
	for i := 0; i < 15; i++ {
		allowed = append(allowed, send(fmt.Sprintf("a%d@corp.example", i)))
		refused = append(refused, send(fmt.Sprintf("r%d@example.com", i)))
		throttled = append(throttled, send("busy@corp.example"))
	}
	median := func(d []time.Duration) time.Duration {
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		return d[len(d)/2]
	}
	ma, mr, mt := median(allowed), median(refused), median(throttled)
	t.Logf("median answer: allowed %v, not allowed %v, throttled %v", ma, mr, mt)
	for name, m := range map[string]time.Duration{"not allowed": mr, "throttled": mt} {
		if m < ma*6/10 || m > ma*2+50*time.Millisecond {
			t.Errorf("%s answers in %v, a mail send in %v: the timing tells them apart", name, m, ma)
		}
	}
}

// slowMailer delays every send, like a mail server across a network.
type slowMailer struct {
	Mailer
	delay time.Duration
}

func (m slowMailer) Send(ctx context.Context, msg mailer.Message) error {
	time.Sleep(m.delay)
	return m.Mailer.Send(ctx, msg)
}

func TestAddressesAreParsedStrictlyAtTheEndpoints(t *testing.T) {
	h := newHarness(t)
	hostile := []string{
		"Bob <bob@example.com>",
		"bob@example.com <bob@example.com>",
		`"bob"@example.com`,
		"bob@example.com\r\nBcc: victim@example.org",
		"bob@example.com\nBcc: victim@example.org",
		"bob@example.com%0d%0aBcc:victim@example.org",
		"bob@example.com\x00@evil.example",
		"bob@evil.example@example.com",
		"bob@example.com,victim@example.org",
		"bob@example.com;victim@example.org",
		"bob@example.com victim@example.org",
		"bob(comment)@example.com",
		"bob@[127.0.0.1]",
		"bob@localhost",
		"bob@pаypal.com", // Cyrillic а
		"bob@аррӏе.com",  // all Cyrillic
		"bob@example.com.",
		"@example.com",
		"bob@",
		"",
		strings.Repeat("a", 65) + "@example.com",
		"bob\u202e@example.com",
		"bob@exa\u200bmple.com",
	}
	for _, email := range hostile {
		t.Run(fmt.Sprintf("%q", email), func(t *testing.T) {
			b := h.browser()
			login := b.get("/.gatehouse/login")
			form := b.post("/.gatehouse/login", url.Values{"email": {email}, "_csrf": {b.csrf(login.body)}})
			if form.StatusCode != http.StatusBadRequest {
				t.Errorf("form: %d, want 400", form.StatusCode)
			}
			body, _ := json.Marshal(map[string]string{"email": email})
			if api := b.api("/.gatehouse/api/otp/send", string(body)); api.StatusCode != http.StatusBadRequest {
				t.Errorf("API: %d, want 400", api.StatusCode)
			}
		})
	}
	time.Sleep(200 * time.Millisecond)
	if msgs := h.mail.Messages(); len(msgs) != 0 {
		t.Fatalf("%d mails went out for malformed addresses, first to %q", len(msgs), msgs[0].To)
	}

	// Accepted addresses reach exactly one mailbox, in canonical form, and
	// the mail's header block names nobody else.
	for _, tc := range []struct{ in, rcpt string }{
		{"  Sue@Example.COM ", "sue@example.com"},
		{"sue@bücher.de", "sue@xn--bcher-kva.de"},
	} {
		h.browser().api("/.gatehouse/api/otp/send", `{"email":"`+tc.in+`"}`)
		m := h.mail.WaitFor(t, tc.rcpt, 1)
		if len(m.To) != 1 || m.To[0] != tc.rcpt {
			t.Fatalf("%q: envelope recipients %q", tc.in, m.To)
		}
		head := string(m.Raw)
		if i := strings.Index(head, "\r\n\r\n"); i >= 0 {
			head = head[:i]
		}
		if strings.Contains(strings.ToLower(head), "bcc:") || strings.Count(strings.ToLower(head), "\nto:") != 1 {
			t.Fatalf("%q: header block %q", tc.in, head)
		}
	}
}
