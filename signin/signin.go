// Package signin is the email-code sign-in flow without HTTP: it sends
// codes, verifies them or their one-click links, throttles both, and
// starts the session when they are right.
package signin

import (
	"context"
	"crypto/hmac"
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"math/rand/v2"
	"net/url"
	"strings"
	"sync"
	"time"

	"gatehouse/access"
	"gatehouse/authstore"
	"gatehouse/clientip"
	"gatehouse/mailer"
	"gatehouse/pages"
	"gatehouse/session"
)

// Failure is a sign-in outcome that the pages and the API tell the user
// about.
type Failure int

// The failures. NotAllowed is deliberately the same answer as WrongCode.
const (
	WrongCode Failure = iota + 1
	CodeExpired
	TooMany
	SendFailed
	// ResendTooEarly comes with Sent.ResendIn set to the wait left.
	ResendTooEarly
	NotAllowed = WrongCode
)

// Key is the failure's catalog key; the JSON error codes derive from it.
func (f Failure) Key() string {
	switch f {
	case WrongCode:
		return "code.wrong"
	case CodeExpired:
		return "code.expired"
	case TooMany:
		return "code.too_many"
	case SendFailed:
		return "send_failed"
	case ResendTooEarly:
		return "code.resend_too_early"
	}
	return fmt.Sprintf("Failure(%d)", int(f))
}

func (f Failure) Error() string { return f.Key() }

// OTP configures sign-in codes and their limits.
type OTP struct {
	Length             int
	TTL                time.Duration
	MaxAttempts        int
	ResendCooldown     time.Duration
	MaxFailuresPerHour int
	RateWindow         time.Duration
	PerAddress         int
	PerIP              int
}

// MailRenderer renders the sign-in mail.
type MailRenderer interface {
	Mail(v pages.MailView) (pages.Mail, error)
}

// Mailer delivers a finished sign-in mail.
type Mailer interface {
	Send(ctx context.Context, m mailer.Message) error
}

// Settings are the parts of the flow that may change while the server
// runs; each call is made with the settings its request started with.
type Settings struct {
	OTP     OTP
	Signup  *access.SignupPolicy
	Mail    MailRenderer
	Mailer  Mailer
	AppName string
}

// Store is what the flow keeps: codes and links as keyed hashes,
// rate-limit counters, and who has signed in before.
type Store interface {
	CreateCode(ctx context.Context, c authstore.Code) error
	VerifyCode(ctx context.Context, email string, hash []byte, now time.Time, maxAttempts int) error
	ConsumeLink(ctx context.Context, linkHash []byte, now time.Time, maxAttempts int) (string, error)
	Hit(ctx context.Context, key string, window time.Duration, now time.Time) (int, error)
	Count(ctx context.Context, key string, window time.Duration, now time.Time) (int, error)
	EnsureUser(ctx context.Context, email string, now time.Time) (authstore.User, error)
	UserByEmail(ctx context.Context, email string) (authstore.User, error)
	RecordLogin(ctx context.Context, email string, now time.Time) error
}

// Sessions starts the session of a user who proved they own their mailbox.
type Sessions interface {
	Start(ctx context.Context, email, ip, userAgent string) (token string, sess authstore.Session, err error)
}

// Options are everything New needs. Fields marked optional have defaults.
type Options struct {
	Store    Store
	Sessions Sessions
	Secret   []byte // HMAC key for codes and links, >= 32 bytes
	LoginURL string // absolute URL of the sign-in page, for the mail
	LinkURL  string // absolute URL of the one-click link endpoint, for the mail

	// Record is optional: it records a security event; nil records nothing.
	Record   func(ip, ua, typ, email, outcome, detail string)
	OnCode   func(outcome string) // optional: told what became of each code request
	OnSignin func(outcome string) // optional: told of each sign-in, "ok" or "failed"
	Logger   *slog.Logger         // optional: nil discards
	Now      func() time.Time     // optional: nil = time.Now
	Rand     io.Reader            // optional: nil = crypto/rand
}

// Service runs the sign-in flow.
type Service struct {
	store    Store
	sessions Sessions
	secret   []byte
	loginURL string
	linkURL  string
	record   func(ip, ua, typ, email, outcome, detail string)
	onCode   func(string)
	onSignin func(string)
	log      *slog.Logger
	now      func() time.Time
	rand     io.Reader
	sendTime *durationEstimate
}

// New returns a ready Service.
func New(opts Options) (*Service, error) {
	var errs []error
	if opts.Store == nil {
		errs = append(errs, errors.New("store is required"))
	}
	if opts.Sessions == nil {
		errs = append(errs, errors.New("sessions are required"))
	}
	if len(opts.Secret) < 32 {
		errs = append(errs, errors.New("secret must be at least 32 bytes"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("signin: %w", err)
	}
	s := &Service{
		store:    opts.Store,
		sessions: opts.Sessions,
		secret:   opts.Secret,
		loginURL: opts.LoginURL,
		linkURL:  opts.LinkURL,
		record:   opts.Record,
		onCode:   opts.OnCode,
		onSignin: opts.OnSignin,
		log:      opts.Logger,
		now:      opts.Now,
		rand:     opts.Rand,
		sendTime: newDurationEstimate(150 * time.Millisecond),
	}
	if s.record == nil {
		s.record = func(ip, ua, typ, email, outcome, detail string) {}
	}
	if s.onCode == nil {
		s.onCode = func(string) {}
	}
	if s.onSignin == nil {
		s.onSignin = func(string) {}
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.rand == nil {
		s.rand = crand.Reader
	}
	return s, nil
}

// Client describes who is asking, for limits and the audit log.
type Client struct {
	IP        string
	UserAgent string
	Lang      string
}

// Sent is what the user is told after asking for a code: the same whether
// or not a mail went out.
type Sent struct {
	Email    string
	ResendIn int // seconds until another code may be asked for
}

// Send handles "send me a code". email must already be parsed. The answer
// and its timing do not reveal whether the address may sign in, exists, or
// was throttled; only a mail server failure is reported.
func (s *Service) Send(ctx context.Context, rs *Settings, email, rd string, resend bool, c Client) (Sent, error) {
	start := time.Now()
	now := s.now()
	out := Sent{Email: email, ResendIn: int(rs.OTP.ResendCooldown / time.Second)}

	send, reason, err := s.maySend(ctx, rs, email, resend, c, now, &out)
	if err != nil {
		return Sent{}, err
	}
	if reason == "cooldown" {
		// Only a resend waits for the cooldown, and it does for every
		// address alike: saying so reveals nothing about the address.
		return out, ResendTooEarly
	}
	if !send {
		if reason == "not_allowed" || reason == "disabled" {
			if err := s.issueDecoy(ctx, rs, email, now); err != nil {
				return Sent{}, err
			}
		}
		s.record(c.IP, c.UserAgent, "code.requested", email, "denied", reason)
		s.onCode(reason)
		s.sendTime.sleepLikeSend(start)
		return out, nil
	}
	s.record(c.IP, c.UserAgent, "code.requested", email, "ok", "")
	if err := s.issueCode(ctx, rs, email, rd, c, now); err != nil {
		s.record(c.IP, c.UserAgent, "code.send_failed", email, "failed", "mail delivery failed")
		s.onCode("send_failed")
		s.log.Error("send sign-in code", "err", err)
		return Sent{}, SendFailed
	}
	s.sendTime.observe(time.Since(start))
	s.record(c.IP, c.UserAgent, "code.sent", email, "ok", "")
	s.onCode("sent")
	return out, nil
}

// maySend applies the resend cooldown, the send limits, the sign-up policy
// and the disabled flag, in that order, recording each attempt the same way
// for every address.
//
// The cooldown paces the page's "send a new code" button (resend): every
// request starts it, only a resend waits for it. The hard bound on mail to
// one address is the per-address limit, which counts every request.
func (s *Service) maySend(ctx context.Context, rs *Settings, email string, resend bool, c Client, now time.Time, out *Sent) (bool, string, error) {
	if cd := rs.OTP.ResendCooldown; cd > 0 {
		n, err := s.store.Hit(ctx, "cooldown:"+email, cd, now)
		if err != nil {
			return false, "", fmt.Errorf("cooldown: %w", err)
		}
		if n > 1 && resend {
			out.ResendIn = windowRemaining(now, cd)
			return false, "cooldown", nil
		}
	}
	perIP, err := s.store.Hit(ctx, "send:ip:"+clientip.RateKey(c.IP), rs.OTP.RateWindow, now)
	if err != nil {
		return false, "", fmt.Errorf("rate limit: %w", err)
	}
	perAddr, err := s.store.Hit(ctx, "send:addr:"+email, rs.OTP.RateWindow, now)
	if err != nil {
		return false, "", fmt.Errorf("rate limit: %w", err)
	}
	if perIP > rs.OTP.PerIP || perAddr > rs.OTP.PerAddress {
		return false, "throttled", nil
	}
	if !rs.Signup.Allows(email) {
		return false, "not_allowed", nil
	}
	u, err := s.store.UserByEmail(ctx, email)
	switch {
	case err == nil && u.Disabled:
		return false, "disabled", nil
	case err != nil && !errors.Is(err, authstore.ErrNotFound):
		return false, "", fmt.Errorf("look up user: %w", err)
	}
	return true, "", nil
}

// ResendWait is how many seconds remain before another code may be asked
// for email (0 = now). It only reads the cooldown counter.
func (s *Service) ResendWait(ctx context.Context, rs *Settings, email string) (int, error) {
	cd := rs.OTP.ResendCooldown
	if cd <= 0 {
		return 0, nil
	}
	now := s.now()
	n, err := s.store.Count(ctx, "cooldown:"+email, cd, now)
	if err != nil {
		return 0, fmt.Errorf("read resend cooldown: %w", err)
	}
	if n == 0 {
		return 0, nil
	}
	return windowRemaining(now, cd), nil
}

// windowRemaining is the number of seconds left in the fixed window that
// contains now (the store's counters use windows aligned to the epoch).
func windowRemaining(now time.Time, window time.Duration) int {
	left := window - time.Duration(now.UnixNano()%int64(window))
	return int((left + time.Second - 1) / time.Second)
}

// storeCode creates a new code and one-click link token for email, stores
// their hashes (voiding older codes) and returns them.
func (s *Service) storeCode(ctx context.Context, rs *Settings, email string, now time.Time) (code, link string, err error) {
	code, err = randomDigits(s.rand, rs.OTP.Length)
	if err != nil {
		return "", "", err
	}
	var raw [32]byte
	if _, err := io.ReadFull(s.rand, raw[:]); err != nil {
		return "", "", fmt.Errorf("generate link token: %w", err)
	}
	link = base64.RawURLEncoding.EncodeToString(raw[:])
	err = s.store.CreateCode(ctx, authstore.Code{
		Email:     email,
		CodeHash:  s.codeHash(email, code),
		LinkHash:  s.linkHash(link),
		CreatedAt: now.UTC(),
		ExpiresAt: now.UTC().Add(rs.OTP.TTL),
	})
	if err != nil {
		return "", "", fmt.Errorf("store code: %w", err)
	}
	return code, link, nil
}

// issueCode creates, stores and mails a new code (and one-click link).
// rd, already validated, rides along in the one-click link so that it lands
// where the user was going.
func (s *Service) issueCode(ctx context.Context, rs *Settings, email, rd string, c Client, now time.Time) error {
	code, link, err := s.storeCode(ctx, rs, email, now)
	if err != nil {
		return err
	}
	m, err := rs.Mail.Mail(pages.MailView{
		Lang:       c.Lang,
		AppName:    rs.AppName,
		Email:      email,
		Code:       code,
		TTLMinutes: TTLMinutes(rs.OTP.TTL),
		LoginURL:   s.loginURL,
		LinkURL:    s.linkURL + "?t=" + link + rdParam(rd),
	})
	if err != nil {
		return fmt.Errorf("render mail: %w", err)
	}
	return rs.Mailer.Send(ctx, mailer.Message{To: email, Subject: m.Subject, Text: m.Text, HTML: m.HTML})
}

// issueDecoy stores a code that is never sent, for an address that may not
// sign in. Trying codes for it then goes exactly as for an address that got
// a mail (wrong, void after otp.max_attempts, expired), so the verify
// answers do not tell who may sign in. Guessing the decoy signs nobody in:
// signIn checks the address again.
func (s *Service) issueDecoy(ctx context.Context, rs *Settings, email string, now time.Time) error {
	if _, _, err := s.storeCode(ctx, rs, email, now); err != nil {
		return fmt.Errorf("decoy: %w", err)
	}
	return nil
}

// TTLMinutes is a code lifetime in whole minutes, rounded up, as the mail
// and the code page state it.
func TTLMinutes(d time.Duration) int {
	return max(1, int((d+time.Minute-1)/time.Minute))
}

// randomDigits draws a uniform n-digit code from r.
func randomDigits(r io.Reader, n int) (string, error) {
	limit := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(n)), nil)
	v, err := crand.Int(r, limit)
	if err != nil {
		return "", fmt.Errorf("generate code: %w", err)
	}
	return fmt.Sprintf("%0*s", n, v.String()), nil
}

// codeHash binds a code to the address it was sent to.
func (s *Service) codeHash(email, code string) []byte {
	m := hmac.New(sha256.New, s.secret)
	m.Write([]byte("gatehouse code\x00"))
	m.Write([]byte(email))
	m.Write([]byte{0})
	m.Write([]byte(code))
	return m.Sum(nil)
}

func (s *Service) linkHash(token string) []byte {
	m := hmac.New(sha256.New, s.secret)
	m.Write([]byte("gatehouse link\x00"))
	m.Write([]byte(token))
	return m.Sum(nil)
}

// Verify checks a code and, when it is right, starts a session.
func (s *Service) Verify(ctx context.Context, rs *Settings, email, code string, c Client) (string, authstore.Session, error) {
	now := s.now()
	failKey := "verifyfail:" + email
	n, err := s.recentFailures(ctx, failKey, now)
	if err != nil {
		return "", authstore.Session{}, fmt.Errorf("failure limit: %w", err)
	}
	if n >= rs.OTP.MaxFailuresPerHour {
		s.signinFailed(c, email, "failure limit")
		return "", authstore.Session{}, TooMany
	}
	// People paste codes as "123 456" or "123-456": only the digits count.
	code = strings.Map(func(r rune) rune {
		if r == ' ' || r == '-' || r == '\t' {
			return -1
		}
		return r
	}, code)
	if !isCode(code, rs.OTP.Length) {
		// Malformed input still costs an attempt, so the limit is on
		// tries, not on well-formed tries.
		code = strings.Repeat("x", rs.OTP.Length)
	}
	err = s.store.VerifyCode(ctx, email, s.codeHash(email, code), now.UTC(), rs.OTP.MaxAttempts)
	if err != nil {
		return "", authstore.Session{}, s.codeFailure(ctx, err, failKey, email, c, now)
	}
	return s.signIn(ctx, rs, email, c)
}

// recentFailures counts an account's failed tries in this clock hour and
// the one before. The counters are fixed hourly windows; summing two keeps
// the failures in any 60 minutes, not just in each clock hour, under
// otp.max_failures_per_hour.
func (s *Service) recentFailures(ctx context.Context, key string, now time.Time) (int, error) {
	cur, err := s.store.Count(ctx, key, time.Hour, now)
	if err != nil {
		return 0, err
	}
	prev, err := s.store.Count(ctx, key, time.Hour, now.Add(-time.Hour))
	if err != nil {
		return 0, err
	}
	return cur + prev, nil
}

// codeFailure maps a store outcome to what the user is told, counting
// failures per account.
func (s *Service) codeFailure(ctx context.Context, err error, failKey, email string, c Client, now time.Time) error {
	var userErr Failure
	switch {
	case errors.Is(err, authstore.ErrWrongCode):
		userErr = WrongCode
	case errors.Is(err, authstore.ErrTooManyAttempts):
		userErr = TooMany
	case errors.Is(err, authstore.ErrCodeExpired), errors.Is(err, authstore.ErrNoCode):
		userErr = CodeExpired
	default:
		return fmt.Errorf("verify code: %w", err)
	}
	if _, herr := s.store.Hit(ctx, failKey, time.Hour, now); herr != nil {
		s.log.Warn("count failed sign-in", "err", herr)
	}
	s.signinFailed(c, email, userErr.Key())
	return userErr
}

func (s *Service) signinFailed(c Client, email, reason string) {
	s.record(c.IP, c.UserAgent, "signin.failed", email, "failed", reason)
	s.onSignin("failed")
}

// signIn starts a session for an address that proved it owns its mailbox,
// checking again that it may sign in (the allowlist may have changed).
func (s *Service) signIn(ctx context.Context, rs *Settings, email string, c Client) (string, authstore.Session, error) {
	now := s.now()
	if !rs.Signup.Allows(email) {
		s.signinFailed(c, email, "not allowed")
		return "", authstore.Session{}, NotAllowed
	}
	u, err := s.store.EnsureUser(ctx, email, now.UTC())
	if err != nil {
		return "", authstore.Session{}, fmt.Errorf("ensure user: %w", err)
	}
	if u.Disabled {
		s.signinFailed(c, email, "user disabled")
		return "", authstore.Session{}, NotAllowed
	}
	token, sess, err := s.sessions.Start(ctx, email, c.IP, c.UserAgent)
	if err != nil {
		return "", authstore.Session{}, err
	}
	if err := s.store.RecordLogin(ctx, email, now.UTC()); err != nil {
		s.log.Warn("record login time", "err", err)
	}
	s.record(c.IP, c.UserAgent, "signin.ok", email, "ok", "")
	s.onSignin("ok")
	return token, sess, nil
}

// ConsumeLink signs in with the one-click link token from the mail.
func (s *Service) ConsumeLink(ctx context.Context, rs *Settings, token string, c Client) (string, authstore.Session, error) {
	if !session.ValidToken(token) {
		return "", authstore.Session{}, CodeExpired
	}
	email, err := s.store.ConsumeLink(ctx, s.linkHash(token), s.now().UTC(), rs.OTP.MaxAttempts)
	if err != nil {
		switch {
		case errors.Is(err, authstore.ErrTooManyAttempts):
			return "", authstore.Session{}, TooMany
		case errors.Is(err, authstore.ErrCodeExpired), errors.Is(err, authstore.ErrNoCode), errors.Is(err, authstore.ErrNotFound):
			return "", authstore.Session{}, CodeExpired
		}
		return "", authstore.Session{}, fmt.Errorf("consume link: %w", err)
	}
	return s.signIn(ctx, rs, email, c)
}

func isCode(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// durationEstimate tracks how long sending a code takes, so that requests
// that send nothing take about as long (no timing oracle for enumeration).
type durationEstimate struct {
	mu  sync.Mutex
	avg time.Duration
}

func newDurationEstimate(initial time.Duration) *durationEstimate {
	return &durationEstimate{avg: initial}
}

func (d *durationEstimate) observe(v time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.avg = (d.avg*7 + v) / 8
}

// sleepLikeSend waits until about one average send time has passed since
// start, with jitter.
func (d *durationEstimate) sleepLikeSend(start time.Time) {
	d.mu.Lock()
	avg := d.avg
	d.mu.Unlock()
	target := avg*9/10 + time.Duration(rand.Int64N(int64(avg/5)+1))
	if wait := target - time.Since(start); wait > 0 {
		time.Sleep(wait)
	}
}

// rdParam is the query suffix carrying a redirect target, or "" for "/".
func rdParam(rd string) string {
	if rd == "" || rd == "/" {
		return ""
	}
	return "&rd=" + url.QueryEscape(rd)
}
