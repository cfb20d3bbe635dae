package mailer

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	netmail "net/mail"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	gomail "github.com/wneessen/go-mail"
)

// TLS modes accepted in SMTPOptions.TLS.
const (
	TLSStartTLS = "starttls" // plain connection upgraded with STARTTLS; refused if the server does not offer it
	TLSImplicit = "tls"      // TLS from the first byte (usually port 465)
	TLSNone     = "none"     // no encryption at all
)

// DefaultTimeout bounds one delivery (dial, TLS, auth and data) when
// SMTPOptions.Timeout is zero.
const DefaultTimeout = 15 * time.Second

// SMTPOptions configures the SMTP driver. Zero values have the documented
// defaults.
type SMTPOptions struct {
	Host string
	// Port defaults by TLS mode: 587 for starttls, 465 for tls, 25 for none.
	Port int
	// Username turns on SMTP AUTH; the mechanism is picked by the mail
	// library's auto-discovery. PLAIN and LOGIN are only used once the
	// connection is encrypted, so with TLS "none" only challenge-response
	// mechanisms (SCRAM, CRAM-MD5) can succeed and a password is never sent
	// in clear text.
	Username string
	Password string
	// TLS is "starttls" (the default when empty), "tls" or "none".
	TLS string
	// From is the sender, with or without a display name:
	// "Gatehouse <no-reply@example.com>".
	From string
	// InsecureSkipVerify turns off certificate verification. Tests only.
	InsecureSkipVerify bool
	// RootCAs verifies the server certificate; nil means the system roots.
	RootCAs *x509.CertPool
	// Timeout bounds one whole delivery; 0 means DefaultTimeout.
	Timeout time.Duration
	// HeloName is sent in EHLO/HELO; "" leaves the library default (the
	// local host name).
	HeloName string
}

// SMTP delivers messages through an SMTP server, one connection per
// message. It is safe for concurrent use.
type SMTP struct {
	host     string
	port     int
	username string
	password string
	mode     string
	from     *netmail.Address
	domain   string // of From, for Message-IDs
	tls      *tls.Config
	timeout  time.Duration
	helo     string
}

// NewSMTP validates opts and returns a ready driver. It does not dial: a
// server that is down shows up at the first Send.
func NewSMTP(opts SMTPOptions) (*SMTP, error) {
	var errs []error
	mode := opts.TLS
	if mode == "" {
		mode = TLSStartTLS
	}
	port := opts.Port
	switch mode {
	case TLSStartTLS:
		if port == 0 {
			port = 587
		}
	case TLSImplicit:
		if port == 0 {
			port = 465
		}
	case TLSNone:
		if port == 0 {
			port = 25
		}
	default:
		errs = append(errs, fmt.Errorf("tls: %q is not one of %q, %q, %q", opts.TLS, TLSStartTLS, TLSImplicit, TLSNone))
	}
	if port < 1 || port > 65535 {
		errs = append(errs, fmt.Errorf("port: %d is out of range 1-65535", opts.Port))
	}
	if err := checkHost(opts.Host); err != nil {
		errs = append(errs, fmt.Errorf("host: %w", err))
	}
	from, err := netmail.ParseAddress(opts.From)
	if err != nil {
		errs = append(errs, fmt.Errorf("from: %w", err))
	}
	if opts.Password != "" && opts.Username == "" {
		errs = append(errs, errors.New("password: set without a username"))
	}
	if opts.Timeout < 0 {
		errs = append(errs, fmt.Errorf("timeout: %s is negative", opts.Timeout))
	}
	if opts.HeloName != "" && !isToken(opts.HeloName) {
		errs = append(errs, errors.New("helo name: contains a space or a control character"))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("smtp mailer: %w", errors.Join(errs...))
	}

	timeout := opts.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	return &SMTP{
		host:     opts.Host,
		port:     port,
		username: opts.Username,
		password: opts.Password,
		mode:     mode,
		from:     from,
		domain:   from.Address[strings.LastIndexByte(from.Address, '@')+1:],
		tls: &tls.Config{
			ServerName:         opts.Host,
			RootCAs:            opts.RootCAs,
			InsecureSkipVerify: opts.InsecureSkipVerify, //nolint:gosec // documented as tests only
			MinVersion:         tls.VersionTLS12,
		},
		timeout: timeout,
		helo:    opts.HeloName,
	}, nil
}

// checkHost accepts a host name or an IP address, nothing with a port, a
// path or a scheme (the mail library would read "unix://…" as a socket).
func checkHost(host string) error {
	switch {
	case host == "":
		return errors.New("empty")
	case !isToken(host):
		return errors.New("contains a space or a control character")
	case net.ParseIP(host) != nil:
		return nil
	case strings.ContainsAny(host, ":/@[]"):
		return errors.New("must be a host name or an IP address, without port or scheme")
	}
	return nil
}

// isToken reports whether s is non-empty and has no space or control
// character, so it fits into one protocol line.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// Send delivers m in one SMTP session. It returns once the server has
// accepted the message, or with an error that never contains the body.
// Cancelling ctx aborts the session at any stage.
func (s *SMTP) Send(ctx context.Context, m Message) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("send mail: %w", err)
	}
	msg, err := s.build(m)
	if err != nil {
		return fmt.Errorf("send mail: %w", err)
	}

	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	conns := &connSet{}
	stop := context.AfterFunc(ctx, conns.closeAll)
	defer stop()
	defer conns.closeAll() // the library leaves the socket open when a step before DATA fails

	client, err := gomail.NewClient(s.host, s.clientOptions(ctx, conns)...)
	if err != nil {
		return fmt.Errorf("send mail: set up client: %w", err)
	}
	err = client.DialAndSendWithContext(ctx, msg)
	if err == nil || msg.IsDelivered() {
		// Once the server has accepted the data, a failing QUIT does not
		// undo the delivery.
		return nil
	}
	return s.sendError(ctx, err, m)
}

// build turns m into a multipart/alternative message with its headers set
// (and encoded) by the mail library.
func (s *SMTP) build(m Message) (*gomail.Msg, error) {
	to, err := m.recipient()
	if err != nil {
		return nil, err
	}
	if m.Text == "" {
		return nil, errors.New("message: empty text part")
	}
	msg := gomail.NewMsg(gomail.WithNoDefaultUserAgent())
	msg.FromMailAddress(s.from)
	msg.ToMailAddress(to)
	msg.Subject(oneLine(m.Subject))
	msg.SetDate()
	msg.SetMessageIDWithValue(rand.Text() + "@" + s.domain)
	msg.SetBodyString(gomail.TypeTextPlain, m.Text)
	if m.HTML != "" {
		msg.AddAlternativeString(gomail.TypeTextHTML, m.HTML)
	}
	return msg, nil
}

// clientOptions configures the library client for one session. The dial
// function is ours so that ctx can close the socket mid-session (the
// library only watches ctx while dialling) and so that implicit TLS uses
// the same verified configuration as STARTTLS.
func (s *SMTP) clientOptions(ctx context.Context, conns *connSet) []gomail.Option {
	opts := []gomail.Option{
		gomail.WithPort(s.port),
		gomail.WithTimeout(s.timeout),
		gomail.WithTLSConfig(s.tls),
		gomail.WithDialContextFunc(s.dialer(ctx, conns)),
	}
	switch s.mode {
	case TLSStartTLS:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	case TLSImplicit:
		// The socket is already TLS when the library gets it; the
		// opportunistic policy makes the library read the finished
		// handshake and count the session as encrypted for auth
		// discovery. RFC 3207 servers do not offer STARTTLS over TLS.
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSOpportunistic))
	default:
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	}
	if s.helo != "" {
		opts = append(opts, gomail.WithHELO(s.helo))
	}
	if s.username != "" {
		opts = append(opts,
			gomail.WithSMTPAuth(gomail.SMTPAuthAutoDiscover),
			gomail.WithUsername(s.username),
			gomail.WithPassword(s.password),
		)
	}
	return opts
}

// dialer returns the library's dial function: TCP to the configured
// address (IPv6 literals included), wrapped in TLS for implicit TLS. Every
// socket is recorded in conns so cancellation can close it.
func (s *SMTP) dialer(sessionCtx context.Context, conns *connSet) gomail.DialContextFunc {
	addr := net.JoinHostPort(s.host, strconv.Itoa(s.port))
	return func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		raw, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		if !conns.add(raw) {
			_ = raw.Close()
			return nil, errSessionEnded
		}
		if s.mode != TLSImplicit {
			return raw, nil
		}
		conn := tls.Client(raw, s.tls.Clone())
		if err := conn.HandshakeContext(ctx); err != nil {
			_ = raw.Close()
			return nil, err
		}
		return conn, nil
	}
}

// sendError turns a library error into ours. The library's delivery errors
// keep a pointer to the message (body and code) and list the recipient, so
// only their text is kept, scrubbed of anything a server might have echoed
// from the body, and of the password.
func (s *SMTP) sendError(ctx context.Context, err error, m Message) error {
	e := &sendError{text: scrub(err.Error(), m, s.password)}
	var delivery *gomail.SendError
	switch {
	case ctx.Err() != nil:
		e.cause, e.ctxEnded = ctx.Err(), true
	case pastDeadline(ctx):
		// The library's socket deadlines are never earlier than ours, so
		// its i/o timeout can beat the context's timer by a hair.
		e.cause, e.ctxEnded = context.DeadlineExceeded, true
	case !errors.As(err, &delivery):
		// Errors from before DATA (dial, TLS, EHLO, AUTH) hold no message.
		e.cause = err
	}
	return e
}

func pastDeadline(ctx context.Context) bool {
	deadline, ok := ctx.Deadline()
	return ok && !time.Now().Before(deadline)
}

// errSessionEnded is returned by the dial function when the session was
// already torn down (its context ended) while dialling.
var errSessionEnded = errors.New("session ended while dialling")

// sendError is a delivery failure. Its text never holds the message body;
// it unwraps to the context error when ctx ended, or to the connection
// error when the session failed before any data was sent.
type sendError struct {
	text     string
	cause    error
	ctxEnded bool
}

func (e *sendError) Error() string {
	if e.ctxEnded {
		return "send mail: " + e.cause.Error() + " (" + e.text + ")"
	}
	return "send mail: " + e.text
}

func (e *sendError) Unwrap() error { return e.cause }

// scrub removes from text every word of the message body that looks like
// a code or token (six or more letters and digits, with at least one
// digit), and the password.
func scrub(text string, m Message, password string) string {
	const redacted = "[redacted]"
	if len(password) >= 4 {
		text = strings.ReplaceAll(text, password, redacted)
	}
	isWordRune := func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) }
	for _, body := range []string{m.Text, m.HTML} {
		for _, word := range strings.FieldsFunc(body, isWordRune) {
			if len(word) >= 6 && strings.ContainsFunc(word, unicode.IsDigit) {
				text = strings.ReplaceAll(text, word, redacted)
			}
		}
	}
	return text
}

// connSet holds the sockets of one session so they can be closed from
// another goroutine when the context ends.
type connSet struct {
	mu     sync.Mutex
	conns  []net.Conn
	closed bool
}

// add records c; it reports false when the set is already closed.
func (s *connSet) add(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns = append(s.conns, c)
	return true
}

func (s *connSet) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for _, c := range s.conns {
		_ = c.Close()
	}
	s.conns = nil
}
