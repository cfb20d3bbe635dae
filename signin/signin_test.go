package signin

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"gatehouse/access"
	"gatehouse/internal/storetest"
	"gatehouse/mailer"
	"gatehouse/pages"
	"gatehouse/session"
)

// outbox renders a sign-in mail as its view and keeps what was sent.
type outbox struct {
	mu    sync.Mutex
	views []pages.MailView
	fail  error
}

func (o *outbox) Mail(v pages.MailView) (pages.Mail, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.views = append(o.views, v)
	return pages.Mail{Subject: "code", Text: v.Code}, nil
}

func (o *outbox) Send(context.Context, mailer.Message) error { return o.fail }

func (o *outbox) last(t *testing.T) pages.MailView {
	t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.views) == 0 {
		t.Fatal("no mail was rendered")
	}
	return o.views[len(o.views)-1]
}

func (o *outbox) count() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.views)
}

type flow struct {
	svc    *Service
	st     *Settings
	mail   *outbox
	events []string
	mu     sync.Mutex
}

func (f *flow) recorded() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return strings.Join(f.events, " ")
}

func newFlow(t *testing.T, signup access.Signup) *flow {
	t.Helper()
	store := storetest.SQLite(t)
	sessions, err := session.New(session.Options{
		Store:    store,
		Settings: session.Settings{CookieName: "s", Lifetime: time.Hour, IdleTimeout: time.Hour},
	})
	if err != nil {
		t.Fatal(err)
	}
	policy, err := access.CompileSignup(signup)
	if err != nil {
		t.Fatal(err)
	}
	f := &flow{mail: &outbox{}}
	f.st = &Settings{
		OTP: OTP{Length: 6, TTL: 5 * time.Minute, MaxAttempts: 3, MaxFailuresPerHour: 100,
			RateWindow: 15 * time.Minute, PerAddress: 2, PerIP: 100},
		Signup: policy,
		Mail:   f.mail,
		Mailer: f.mail,
	}
	f.svc, err = New(Options{
		Store:    store,
		Sessions: sessions,
		Secret:   bytes.Repeat([]byte{7}, 32),
		LoginURL: "https://gate.example/.gatehouse/login",
		LinkURL:  "https://gate.example/.gatehouse/link",
		Record: func(ip, ua, typ, email, outcome, detail string) {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.events = append(f.events, typ+":"+outcome)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

var client = Client{IP: "192.0.2.1", UserAgent: "test"}

func TestSendThenVerify(t *testing.T) {
	f := newFlow(t, access.Signup{Open: true})
	ctx := context.Background()
	sent, err := f.svc.Send(ctx, f.st, "ann@example.com", "/next", false, client)
	if err != nil || sent.Email != "ann@example.com" {
		t.Fatalf("Send = %+v, %v", sent, err)
	}
	v := f.mail.last(t)
	if len(v.Code) != 6 || v.TTLMinutes != 5 || v.LoginURL != "https://gate.example/.gatehouse/login" ||
		!strings.HasPrefix(v.LinkURL, "https://gate.example/.gatehouse/link?t=") || !strings.HasSuffix(v.LinkURL, "&rd=%2Fnext") {
		t.Fatalf("mail view %+v", v)
	}
	wrong := "000000"
	if v.Code == wrong {
		wrong = "111111"
	}
	if _, _, err := f.svc.Verify(ctx, f.st, "ann@example.com", wrong, client); !errors.Is(err, WrongCode) {
		t.Fatalf("Verify with a wrong code: %v, want WrongCode", err)
	}
	spaced := v.Code[:3] + " " + v.Code[3:]
	token, sess, err := f.svc.Verify(ctx, f.st, "ann@example.com", spaced, client)
	if err != nil || !session.ValidToken(token) || sess.Email != "ann@example.com" {
		t.Fatalf("Verify with the code = %q, %+v, %v", token, sess, err)
	}
	if _, _, err := f.svc.Verify(ctx, f.st, "ann@example.com", v.Code, client); !errors.Is(err, CodeExpired) {
		t.Fatalf("Verify with a used code: %v, want CodeExpired", err)
	}
	if got := f.recorded(); !strings.Contains(got, "code.sent:ok") || !strings.Contains(got, "signin.failed:failed") || !strings.Contains(got, "signin.ok:ok") {
		t.Fatalf("events %q", got)
	}
}

func TestLinkSignsInOnce(t *testing.T) {
	f := newFlow(t, access.Signup{Open: true})
	ctx := context.Background()
	if _, err := f.svc.Send(ctx, f.st, "bo@example.com", "/", false, client); err != nil {
		t.Fatal(err)
	}
	v := f.mail.last(t)
	token := strings.TrimPrefix(v.LinkURL, "https://gate.example/.gatehouse/link?t=")
	if _, sess, err := f.svc.ConsumeLink(ctx, f.st, token, client); err != nil || sess.Email != "bo@example.com" {
		t.Fatalf("ConsumeLink = %+v, %v", sess, err)
	}
	for _, tok := range []string{token, "short", strings.Repeat("A", session.TokenLen)} {
		if _, _, err := f.svc.ConsumeLink(ctx, f.st, tok, client); !errors.Is(err, CodeExpired) {
			t.Fatalf("ConsumeLink(%q): %v, want CodeExpired", tok, err)
		}
	}
}

func TestVerifyFailures(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name   string
		signup access.Signup
		email  string
		tries  []string
		want   error
	}{
		{"no code asked for", access.Signup{Open: true}, "cy@example.com", []string{"123456"}, CodeExpired},
		{"malformed codes cost attempts", access.Signup{Open: true}, "di@example.com", []string{"abc", "12", "1234567", "x"}, TooMany},
		{"not allowed looks like a wrong code", access.Signup{Emails: []string{"ok@example.com"}}, "eve@example.com", []string{"123456"}, WrongCode},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFlow(t, tt.signup)
			if tt.want != CodeExpired {
				if _, err := f.svc.Send(ctx, f.st, tt.email, "/", false, client); err != nil {
					t.Fatal(err)
				}
			}
			var err error
			for _, code := range tt.tries {
				_, _, err = f.svc.Verify(ctx, f.st, tt.email, code, client)
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("last Verify: %v, want %v", err, tt.want)
			}
		})
	}
}

func TestSendRefusals(t *testing.T) {
	ctx := context.Background()
	t.Run("not allowed: same answer, no mail", func(t *testing.T) {
		f := newFlow(t, access.Signup{Domains: []string{"corp.example"}})
		sent, err := f.svc.Send(ctx, f.st, "stranger@example.com", "/", false, client)
		if err != nil || sent.Email != "stranger@example.com" || f.mail.count() != 0 {
			t.Fatalf("Send = %+v, %v; %d mails", sent, err, f.mail.count())
		}
	})
	t.Run("per-address limit: same answer, no mail", func(t *testing.T) {
		f := newFlow(t, access.Signup{Open: true})
		for range 3 {
			if _, err := f.svc.Send(ctx, f.st, "fay@example.com", "/", false, client); err != nil {
				t.Fatal(err)
			}
		}
		if n := f.mail.count(); n != 2 {
			t.Fatalf("%d mails for 3 requests with a limit of 2", n)
		}
	})
	t.Run("resend within the cooldown", func(t *testing.T) {
		f := newFlow(t, access.Signup{Open: true})
		f.st.OTP.ResendCooldown = time.Minute
		if _, err := f.svc.Send(ctx, f.st, "gil@example.com", "/", false, client); err != nil {
			t.Fatal(err)
		}
		sent, err := f.svc.Send(ctx, f.st, "gil@example.com", "/", true, client)
		if !errors.Is(err, ResendTooEarly) || sent.ResendIn < 1 || sent.ResendIn > 60 {
			t.Fatalf("resend = %+v, %v; want ResendTooEarly with a wait", sent, err)
		}
		if wait, err := f.svc.ResendWait(ctx, f.st, "gil@example.com"); err != nil || wait < 1 || wait > 60 {
			t.Fatalf("ResendWait = %d, %v", wait, err)
		}
	})
	t.Run("mail failure", func(t *testing.T) {
		f := newFlow(t, access.Signup{Open: true})
		f.mail.fail = errors.New("smtp down")
		if _, err := f.svc.Send(ctx, f.st, "hal@example.com", "/", false, client); !errors.Is(err, SendFailed) {
			t.Fatalf("Send with a failing mailer: %v, want SendFailed", err)
		}
	})
}

func TestFailureKeys(t *testing.T) {
	if NotAllowed != WrongCode {
		t.Fatal("NotAllowed must answer exactly as WrongCode")
	}
	for f, want := range map[Failure]string{
		WrongCode:      "code.wrong",
		CodeExpired:    "code.expired",
		TooMany:        "code.too_many",
		SendFailed:     "send_failed",
		ResendTooEarly: "code.resend_too_early",
	} {
		if f.Key() != want || f.Error() != want {
			t.Errorf("Failure %d: Key %q, Error %q, want %q", int(f), f.Key(), f.Error(), want)
		}
	}
}

func TestHelpers(t *testing.T) {
	for _, tt := range []struct {
		d    time.Duration
		want int
	}{{0, 1}, {30 * time.Second, 1}, {time.Minute, 1}, {61 * time.Second, 2}, {5 * time.Minute, 5}} {
		if got := TTLMinutes(tt.d); got != tt.want {
			t.Errorf("TTLMinutes(%s) = %d, want %d", tt.d, got, tt.want)
		}
	}
	for _, tt := range []struct {
		code string
		want bool
	}{{"123456", true}, {"000000", true}, {"12345", false}, {"1234567", false}, {"12345a", false}, {"", false}} {
		if got := isCode(tt.code, 6); got != tt.want {
			t.Errorf("isCode(%q) = %v, want %v", tt.code, got, tt.want)
		}
	}
	for _, tt := range []struct{ rd, want string }{{"", ""}, {"/", ""}, {"/a?b=c", "&rd=%2Fa%3Fb%3Dc"}} {
		if got := rdParam(tt.rd); got != tt.want {
			t.Errorf("rdParam(%q) = %q, want %q", tt.rd, got, tt.want)
		}
	}
	now := time.Unix(0, 0).Add(14*time.Minute + 30*time.Second)
	if got := windowRemaining(now, 15*time.Minute); got != 30 {
		t.Errorf("windowRemaining = %d, want 30", got)
	}
	for n := 6; n <= 8; n++ {
		code, err := randomDigits(bytes.NewReader(bytes.Repeat([]byte{0}, 64)), n)
		if err != nil || code != strings.Repeat("0", n) {
			t.Errorf("randomDigits of zeros, %d digits = %q, %v", n, code, err)
		}
	}
}
