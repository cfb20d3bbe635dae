package mailer

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
)

// Banner heads every message the Log driver prints.
const Banner = "DEVELOPMENT ONLY — mail driver 'log': this code is printed, not sent"

const (
	heavyRule = "================================================================================"
	lightRule = "--------------------------------------------------------------------------------"
)

// Log is the development driver: it writes the whole text part of each
// message to W, framed with a loud banner, instead of sending it.
//
// It is not a log line: W is the console, not a slog handler, and the
// printed text contains the sign-in code. A nil W means os.Stderr.
// Messages from concurrent calls are never interleaved.
type Log struct {
	W io.Writer

	mu sync.Mutex
}

// NewLog returns a Log driver that prints to w (nil means os.Stderr).
func NewLog(w io.Writer) *Log {
	return &Log{W: w}
}

// Send prints m's recipient, subject and text part to the console writer.
func (l *Log) Send(ctx context.Context, m Message) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("print mail: %w", err)
	}
	if _, err := m.recipient(); err != nil {
		return fmt.Errorf("print mail: %w", err)
	}

	var b bytes.Buffer
	fmt.Fprintf(&b, "\n%s\n%s\n%s\n", heavyRule, Banner, heavyRule)
	fmt.Fprintf(&b, "To:      %s\n", m.To)
	fmt.Fprintf(&b, "Subject: %s\n", oneLine(m.Subject))
	fmt.Fprintf(&b, "%s\n", lightRule)
	b.WriteString(strings.TrimRight(m.Text, "\r\n"))
	fmt.Fprintf(&b, "\n%s\n\n", heavyRule)

	l.mu.Lock()
	defer l.mu.Unlock()
	w := l.W
	if w == nil {
		w = os.Stderr
	}
	if _, err := w.Write(b.Bytes()); err != nil {
		return fmt.Errorf("print mail: %w", err)
	}
	return nil
}
