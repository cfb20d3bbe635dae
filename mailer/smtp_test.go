package mailer

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

const (
	testCode     = "428193"
	testTo       = "alice@example.com"
	testFrom     = "Gatehouse <no-reply@example.com>"
	testUser     = "mailer"
	testPassword = "correct-horse-battery"
	testSubject  = "Your Gatehouse sign-in code"
)

func testMessage() Message {
	return Message{
		To:      testTo,
		Subject: testSubject,
		Text:    "Your sign-in code is " + testCode + ".\nIt expires in 5 minutes.\n",
		HTML:    "<p>Your sign-in code is <strong>" + testCode + "</strong>.</p>\n<p>It expires in 5 minutes.</p>\n",
	}
}

// options returns driver options for srv, tuned by edit.
func options(srv testServer, edit func(*SMTPOptions)) SMTPOptions {
	o := SMTPOptions{
		Host:     "127.0.0.1",
		Port:     srv.port,
		TLS:      TLSNone,
		From:     testFrom,
		RootCAs:  srv.cas,
		Timeout:  30 * time.Second,
		HeloName: "gatehouse.test",
	}
	if edit != nil {
		edit(&o)
	}
	return o
}

func newSMTP(t *testing.T, o SMTPOptions) *SMTP {
	t.Helper()
	s, err := NewSMTP(o)
	if err != nil {
		t.Fatalf("NewSMTP: %v", err)
	}
	return s
}

// parsedMail is a received message taken apart with the standard library.
type parsedMail struct {
	header mail.Header
	parts  map[string]string // media type → decoded body
}

func parseMail(t *testing.T, data []byte) parsedMail {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("read message: %v", err)
	}
	p := parsedMail{header: msg.Header, parts: map[string]string{}}
	mediaType, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		t.Fatalf("parse Content-Type %q: %v", msg.Header.Get("Content-Type"), err)
	}
	if !strings.HasPrefix(mediaType, "multipart/") {
		body, err := io.ReadAll(msg.Body)
		if err != nil {
			t.Fatalf("read body: %v", err)
		}
		p.parts[mediaType] = string(body)
		return p
	}
	if mediaType != "multipart/alternative" {
		t.Fatalf("Content-Type = %q, want multipart/alternative", mediaType)
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("next part: %v", err)
		}
		partType, _, err := mime.ParseMediaType(part.Header.Get("Content-Type"))
		if err != nil {
			t.Fatalf("parse part Content-Type: %v", err)
		}
		body, err := io.ReadAll(part) // quoted-printable is decoded by the reader
		if err != nil {
			t.Fatalf("read part %s: %v", partType, err)
		}
		p.parts[partType] = string(body)
	}
	return p
}

func decodeHeader(t *testing.T, v string) string {
	t.Helper()
	s, err := new(mime.WordDecoder).DecodeHeader(v)
	if err != nil {
		t.Fatalf("decode header %q: %v", v, err)
	}
	return s
}

func TestSMTPDelivers(t *testing.T) {
	messageID := regexp.MustCompile(`^<[A-Z2-7]{20,}@example\.com>$`)
	tests := []struct {
		name      string
		mode      serverMode
		auth      bool
		edit      func(*SMTPOptions)
		noHTML    bool
		wantTLS   bool
		wantUser  string
		wantParts []string
	}{
		{
			name:      "plain connection without auth",
			mode:      plainServer,
			wantParts: []string{"text/html", "text/plain"},
		},
		{
			name:      "starttls with auth plain",
			mode:      startTLSServer,
			auth:      true,
			edit:      func(o *SMTPOptions) { o.TLS, o.Username, o.Password = TLSStartTLS, testUser, testPassword },
			wantTLS:   true,
			wantUser:  testUser,
			wantParts: []string{"text/html", "text/plain"},
		},
		{
			name:      "implicit tls with auth plain",
			mode:      implicitServer,
			auth:      true,
			edit:      func(o *SMTPOptions) { o.TLS, o.Username, o.Password = TLSImplicit, testUser, testPassword },
			wantTLS:   true,
			wantUser:  testUser,
			wantParts: []string{"text/html", "text/plain"},
		},
		{
			name:      "starttls is the default mode",
			mode:      startTLSServer,
			edit:      func(o *SMTPOptions) { o.TLS = "" },
			wantTLS:   true,
			wantParts: []string{"text/html", "text/plain"},
		},
		{
			name:      "starttls with verification off",
			mode:      startTLSServer,
			edit:      func(o *SMTPOptions) { o.TLS, o.RootCAs, o.InsecureSkipVerify = TLSStartTLS, nil, true },
			wantTLS:   true,
			wantParts: []string{"text/html", "text/plain"},
		},
		{
			name:      "text part only",
			mode:      plainServer,
			noHTML:    true,
			wantParts: []string{"text/plain"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			be := &backend{}
			if tt.auth {
				be.username, be.password = testUser, testPassword
			}
			srv := startServer(t, be, tt.mode, false)
			m := testMessage()
			if tt.noHTML {
				m.HTML = ""
			}

			if err := newSMTP(t, options(srv, tt.edit)).Send(context.Background(), m); err != nil {
				t.Fatalf("Send: %v", err)
			}

			mails := be.delivered()
			if len(mails) != 1 {
				t.Fatalf("server received %d messages, want 1", len(mails))
			}
			got := mails[0]
			if got.from != "no-reply@example.com" {
				t.Errorf("MAIL FROM = %q, want no-reply@example.com", got.from)
			}
			if !slices.Equal(got.rcpts, []string{testTo}) {
				t.Errorf("RCPT TO = %q, want [%s]", got.rcpts, testTo)
			}
			if got.tls != tt.wantTLS {
				t.Errorf("delivered over TLS = %v, want %v", got.tls, tt.wantTLS)
			}
			if got.user != tt.wantUser {
				t.Errorf("authenticated user = %q, want %q", got.user, tt.wantUser)
			}

			p := parseMail(t, got.data)
			from, err := mail.ParseAddress(p.header.Get("From"))
			if err != nil || from.Address != "no-reply@example.com" || from.Name != "Gatehouse" {
				t.Errorf("From = %q (%v), want %q", p.header.Get("From"), err, testFrom)
			}
			if to := p.header.Get("To"); to != "<"+testTo+">" && to != testTo {
				t.Errorf("To = %q, want %s", to, testTo)
			}
			if subj := decodeHeader(t, p.header.Get("Subject")); subj != testSubject {
				t.Errorf("Subject = %q, want %q", subj, testSubject)
			}
			if _, err := p.header.Date(); err != nil {
				t.Errorf("Date %q: %v", p.header.Get("Date"), err)
			}
			if id := p.header.Get("Message-ID"); !messageID.MatchString(id) {
				t.Errorf("Message-ID = %q, want a random id at example.com", id)
			}
			for _, h := range []string{"User-Agent", "X-Mailer", "Bcc", "Cc"} {
				if v := p.header.Get(h); v != "" {
					t.Errorf("unexpected header %s: %q", h, v)
				}
			}
			var parts []string
			for typ, body := range p.parts {
				parts = append(parts, typ)
				if !strings.Contains(body, testCode) {
					t.Errorf("%s part does not contain the code: %q", typ, body)
				}
			}
			slices.Sort(parts)
			if !slices.Equal(parts, tt.wantParts) {
				t.Errorf("parts = %q, want %q", parts, tt.wantParts)
			}
			if html := p.parts["text/html"]; html != "" && !strings.Contains(html, "<strong>"+testCode+"</strong>") {
				t.Errorf("HTML part lost its markup: %q", html)
			}
		})
	}
}

func TestSMTPFailures(t *testing.T) {
	const wrongPassword = "wrong-password-9281"
	echoBody := func(data []byte) error {
		for line := range strings.SplitSeq(string(data), "\r\n") {
			if strings.Contains(line, testCode) {
				return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "rejected: " + line}
			}
		}
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "rejected"}
	}
	tests := []struct {
		name         string
		mode         serverMode
		insecureAuth bool
		auth         bool
		rejectData   func([]byte) error
		serverDown   bool
		edit         func(*SMTPOptions)
		wantAuth     []string // AUTH attempts the server must have seen
		wantInError  string
	}{
		{
			name:     "starttls required but not offered",
			mode:     plainServer,
			edit:     func(o *SMTPOptions) { o.TLS, o.Username, o.Password = TLSStartTLS, testUser, testPassword },
			wantAuth: nil,
		},
		{
			name:        "wrong password",
			mode:        startTLSServer,
			auth:        true,
			edit:        func(o *SMTPOptions) { o.TLS, o.Username, o.Password = TLSStartTLS, testUser, wrongPassword },
			wantAuth:    []string{testUser},
			wantInError: "535",
		},
		{
			name: "certificate not trusted",
			mode: startTLSServer,
			edit: func(o *SMTPOptions) { o.TLS, o.RootCAs = TLSStartTLS, x509.NewCertPool() },
		},
		{
			name: "implicit tls against a plain server",
			mode: plainServer,
			edit: func(o *SMTPOptions) { o.TLS = TLSImplicit },
		},
		{
			name:         "password never sent over plaintext",
			mode:         plainServer,
			insecureAuth: true,
			auth:         true,
			edit:         func(o *SMTPOptions) { o.TLS, o.Username, o.Password = TLSNone, testUser, testPassword },
			wantAuth:     nil,
		},
		{
			name:       "server down",
			serverDown: true,
		},
		{
			name:        "server echoes the body when rejecting it",
			mode:        plainServer,
			rejectData:  echoBody,
			wantInError: "554",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			be := &backend{rejectData: tt.rejectData}
			if tt.auth {
				be.username, be.password = testUser, testPassword
			}
			srv := testServer{port: freePort(t)}
			if !tt.serverDown {
				srv = startServer(t, be, tt.mode, tt.insecureAuth)
			}
			m := testMessage()

			err := newSMTP(t, options(srv, tt.edit)).Send(context.Background(), m)

			if err == nil {
				t.Fatal("Send succeeded, want an error")
			}
			msg := err.Error()
			t.Logf("error: %s", msg)
			if !strings.HasPrefix(msg, "send mail: ") {
				t.Errorf("error %q does not start with the operation", msg)
			}
			for _, secret := range []string{testCode, testPassword, wrongPassword, "expires in 5 minutes"} {
				if strings.Contains(msg, secret) {
					t.Errorf("error %q contains %q", msg, secret)
				}
			}
			if tt.wantInError != "" && !strings.Contains(msg, tt.wantInError) {
				t.Errorf("error %q does not contain %q", msg, tt.wantInError)
			}
			if n := len(be.delivered()); n != 0 {
				t.Errorf("server stored %d messages, want 0", n)
			}
			if got := be.authAttempts(); !slices.Equal(got, tt.wantAuth) {
				t.Errorf("AUTH attempts = %q, want %q", got, tt.wantAuth)
			}
		})
	}
}

func TestSMTPContext(t *testing.T) {
	tests := []struct {
		name    string
		timeout time.Duration
		cancel  string // "before", "after accept" or "" (never)
		want    error
	}{
		{name: "cancelled before sending", timeout: time.Minute, cancel: "before", want: context.Canceled},
		{name: "cancelled while the server stalls", timeout: time.Minute, cancel: "after accept", want: context.Canceled},
		{name: "timeout while the server stalls", timeout: 300 * time.Millisecond, want: context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			port, accepted := stallingServer(t)
			s := newSMTP(t, options(testServer{port: port}, func(o *SMTPOptions) { o.Timeout = tt.timeout }))
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tt.cancel == "before" {
				cancel()
			}

			result := make(chan error, 1)
			go func() { result <- s.Send(ctx, testMessage()) }()
			if tt.cancel == "after accept" {
				select {
				case <-accepted:
				case err := <-result:
					t.Fatalf("Send returned before the server accepted: %v", err)
				}
				cancel()
			}

			// The driver's own timeout is a minute in the cancel cases, so
			// only cancellation can end Send within this wait.
			var err error
			select {
			case err = <-result:
			case <-time.After(20 * time.Second):
				t.Fatal("Send did not return after the context ended")
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("Send error = %v, want %v", err, tt.want)
			}
			if !strings.HasPrefix(err.Error(), "send mail: ") {
				t.Errorf("error %q does not start with the operation", err)
			}
		})
	}
}

func TestSMTPHeaderInjection(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(*Message)
		wantErr bool
	}{
		{name: "CRLF and Bcc in subject", edit: func(m *Message) { m.Subject = "Hi\r\nBcc: x@evil" }},
		{name: "LF and Bcc in subject", edit: func(m *Message) { m.Subject = "Hi\nBcc: x@evil" }},
		{name: "CRLF CRLF and body in subject", edit: func(m *Message) { m.Subject = "Hi\r\n\r\nforged body" }},
		{name: "CRLF and Bcc in recipient", edit: func(m *Message) { m.To = testTo + "\r\nBcc: x@evil" }, wantErr: true},
		{name: "two recipients", edit: func(m *Message) { m.To = testTo + ", x@evil" }, wantErr: true},
		{name: "display name in recipient", edit: func(m *Message) { m.To = "Alice <" + testTo + ">" }, wantErr: true},
		{name: "empty recipient", edit: func(m *Message) { m.To = "" }, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			be := &backend{}
			srv := startServer(t, be, plainServer, false)
			m := testMessage()
			tt.edit(&m)

			err := newSMTP(t, options(srv, nil)).Send(context.Background(), m)

			mails := be.delivered()
			if tt.wantErr {
				if err == nil {
					t.Fatal("Send succeeded, want an error")
				}
				if len(mails) != 0 {
					t.Fatalf("server received %d messages, want 0", len(mails))
				}
				return
			}
			if err != nil {
				t.Fatalf("Send: %v", err)
			}
			if len(mails) != 1 {
				t.Fatalf("server received %d messages, want 1", len(mails))
			}
			if !slices.Equal(mails[0].rcpts, []string{testTo}) {
				t.Errorf("RCPT TO = %q, want only %s", mails[0].rcpts, testTo)
			}
			head, _, _ := bytes.Cut(mails[0].data, []byte("\r\n\r\n"))
			for line := range strings.SplitSeq(string(head), "\r\n") {
				if strings.HasPrefix(strings.ToLower(line), "bcc:") {
					t.Errorf("raw header has a Bcc line: %q", line)
				}
			}
			p := parseMail(t, mails[0].data)
			if bcc := p.header.Get("Bcc"); bcc != "" {
				t.Errorf("Bcc header = %q, want none", bcc)
			}
			subj := decodeHeader(t, p.header.Get("Subject"))
			if strings.ContainsAny(subj, "\r\n") {
				t.Errorf("Subject %q still holds a line break", subj)
			}
			if !strings.HasPrefix(subj, "Hi") {
				t.Errorf("Subject = %q, want it to keep the caller's text", subj)
			}
			if text := p.parts["text/plain"]; !strings.Contains(text, testCode) || strings.Contains(text, "forged body") {
				t.Errorf("text part = %q, want the original body only", text)
			}
		})
	}
}

func TestSMTPRejectsMessageWithoutText(t *testing.T) {
	be := &backend{}
	srv := startServer(t, be, plainServer, false)
	m := testMessage()
	m.Text = ""

	err := newSMTP(t, options(srv, nil)).Send(context.Background(), m)

	if err == nil {
		t.Fatal("Send succeeded, want an error")
	}
	if n := len(be.delivered()); n != 0 {
		t.Errorf("server received %d messages, want 0", n)
	}
}

func TestNewSMTP(t *testing.T) {
	valid := func(edit func(*SMTPOptions)) SMTPOptions {
		o := SMTPOptions{Host: "smtp.example.com", From: testFrom}
		if edit != nil {
			edit(&o)
		}
		return o
	}
	tests := []struct {
		name     string
		opts     SMTPOptions
		wantErr  []string // substrings the error must name; nil = no error
		wantPort int
	}{
		{name: "defaults to starttls on 587", opts: valid(nil), wantPort: 587},
		{name: "implicit tls defaults to 465", opts: valid(func(o *SMTPOptions) { o.TLS = TLSImplicit }), wantPort: 465},
		{name: "none defaults to 25", opts: valid(func(o *SMTPOptions) { o.TLS = TLSNone }), wantPort: 25},
		{name: "explicit port kept", opts: valid(func(o *SMTPOptions) { o.Port = 2525 }), wantPort: 2525},
		{name: "IPv6 literal host", opts: valid(func(o *SMTPOptions) { o.Host = "::1" }), wantPort: 587},
		{name: "bare from address", opts: valid(func(o *SMTPOptions) { o.From = "no-reply@example.com" }), wantPort: 587},
		{name: "empty host", opts: valid(func(o *SMTPOptions) { o.Host = "" }), wantErr: []string{"host"}},
		{name: "host with port", opts: valid(func(o *SMTPOptions) { o.Host = "smtp.example.com:25" }), wantErr: []string{"host"}},
		{name: "unix socket host", opts: valid(func(o *SMTPOptions) { o.Host = "unix:///run/smtp.sock" }), wantErr: []string{"host"}},
		{name: "host with space", opts: valid(func(o *SMTPOptions) { o.Host = "smtp example" }), wantErr: []string{"host"}},
		{name: "unknown tls mode", opts: valid(func(o *SMTPOptions) { o.TLS = "ssl" }), wantErr: []string{"tls"}},
		{name: "port out of range", opts: valid(func(o *SMTPOptions) { o.Port = 70000 }), wantErr: []string{"port"}},
		{name: "negative port", opts: valid(func(o *SMTPOptions) { o.Port = -1 }), wantErr: []string{"port"}},
		{name: "from does not parse", opts: valid(func(o *SMTPOptions) { o.From = "not an address" }), wantErr: []string{"from"}},
		{name: "empty from", opts: valid(func(o *SMTPOptions) { o.From = "" }), wantErr: []string{"from"}},
		{name: "password without username", opts: valid(func(o *SMTPOptions) { o.Password = testPassword }), wantErr: []string{"password"}},
		{name: "negative timeout", opts: valid(func(o *SMTPOptions) { o.Timeout = -time.Second }), wantErr: []string{"timeout"}},
		{name: "helo with line break", opts: valid(func(o *SMTPOptions) { o.HeloName = "a\r\nRSET" }), wantErr: []string{"helo name"}},
		{
			name:    "every problem named",
			opts:    SMTPOptions{TLS: "ssl", From: "nope", Port: -5, Password: testPassword},
			wantErr: []string{"host", "tls", "from", "port", "password"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := NewSMTP(tt.opts)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("NewSMTP: %v", err)
				}
				if s.port != tt.wantPort {
					t.Errorf("port = %d, want %d", s.port, tt.wantPort)
				}
				return
			}
			if err == nil {
				t.Fatal("NewSMTP succeeded, want an error")
			}
			if s != nil {
				t.Errorf("NewSMTP returned a driver with its error")
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), want+":") {
					t.Errorf("error %q does not name %q", err, want)
				}
			}
			if strings.Contains(err.Error(), testPassword) {
				t.Errorf("error %q contains the password", err)
			}
		})
	}
}

func TestScrub(t *testing.T) {
	m := testMessage()
	tests := []struct {
		name, in, want string
	}{
		{name: "code removed", in: "554 rejected: Your sign-in code is " + testCode + ".", want: "554 rejected: Your sign-in code is [redacted]."},
		{name: "password removed", in: "535 bad credentials " + testPassword, want: "535 bad credentials [redacted]"},
		{name: "plain words kept", in: "550 5.1.1 mailbox unavailable", want: "550 5.1.1 mailbox unavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := scrub(tt.in, m, testPassword); got != tt.want {
				t.Errorf("scrub(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}
