package mailer

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
)

func TestLogSend(t *testing.T) {
	tests := []struct {
		name      string
		ctx       func() context.Context
		edit      func(*Message)
		wantErr   error
		wantLines []string // lines the output must contain; nil = no output
	}{
		{
			name: "prints banner, recipient, subject and text",
			wantLines: []string{
				Banner,
				"To:      " + testTo,
				"Subject: " + testSubject,
				"Your sign-in code is " + testCode + ".",
				"It expires in 5 minutes.",
			},
		},
		{
			name: "subject line break cannot forge a line",
			edit: func(m *Message) { m.Subject = "Hi\r\nTo: x@evil" },
			wantLines: []string{
				Banner,
				"Subject: Hi  To: x@evil",
			},
		},
		{
			name:    "cancelled context prints nothing",
			ctx:     func() context.Context { ctx, cancel := context.WithCancel(context.Background()); cancel(); return ctx },
			wantErr: context.Canceled,
		},
		{
			name: "invalid recipient prints nothing",
			edit: func(m *Message) { m.To = testTo + "\nBcc: x@evil" },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			ctx := context.Background()
			if tt.ctx != nil {
				ctx = tt.ctx()
			}
			m := testMessage()
			if tt.edit != nil {
				tt.edit(&m)
			}

			err := NewLog(&out).Send(ctx, m)

			if tt.wantLines == nil {
				if err == nil {
					t.Fatal("Send succeeded, want an error")
				}
				if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
					t.Errorf("error = %v, want %v", err, tt.wantErr)
				}
				if out.Len() != 0 {
					t.Errorf("printed %q, want nothing", out.String())
				}
				return
			}
			if err != nil {
				t.Fatalf("Send: %v", err)
			}
			lines := strings.Split(out.String(), "\n")
			for _, want := range tt.wantLines {
				found := false
				for _, l := range lines {
					if l == want {
						found = true
						break
					}
				}
				if !found {
					t.Errorf("output lacks line %q:\n%s", want, out.String())
				}
			}
			if strings.Contains(out.String(), "<strong>") {
				t.Errorf("output holds the HTML part:\n%s", out.String())
			}
		})
	}
}

func TestLogConcurrentSendsStayWhole(t *testing.T) {
	var out bytes.Buffer
	l := NewLog(&out)
	const n = 20
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			if err := l.Send(context.Background(), testMessage()); err != nil {
				t.Errorf("Send: %v", err)
			}
		})
	}
	wg.Wait()

	frame := out.String()[:out.Len()/n]
	if got := strings.Repeat(frame, n); got != out.String() {
		t.Fatalf("output of %d concurrent sends is not %d identical frames:\n%s", n, n, out.String())
	}
	if !strings.Contains(frame, Banner) || !strings.Contains(frame, testCode) {
		t.Errorf("frame lacks banner or code:\n%s", frame)
	}
}
