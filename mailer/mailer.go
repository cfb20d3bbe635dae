// Package mailer delivers a finished sign-in mail, either by printing it to
// the console (development) or through an SMTP server.
//
// It knows nothing of codes or templates: callers hand it a complete
// Message. Errors it returns never contain the message body, since that
// body carries a sign-in code.
package mailer

import (
	"fmt"
	"net/mail"
	"strings"
)

// Message is one finished mail to a single recipient.
type Message struct {
	To      string // a single bare address (already validated by the caller)
	Subject string
	Text    string
	HTML    string
}

// recipient checks that m.To is one bare address and returns it parsed.
// The address itself stays out of the error: errors end up in logs.
func (m Message) recipient() (*mail.Address, error) {
	if m.To == "" {
		return nil, fmt.Errorf("recipient: empty")
	}
	if strings.ContainsAny(m.To, "\r\n\x00") {
		return nil, fmt.Errorf("recipient: contains a control character")
	}
	addr, err := mail.ParseAddress(m.To)
	if err != nil || addr.Name != "" || addr.Address != m.To {
		return nil, fmt.Errorf("recipient: not a single bare address")
	}
	return addr, nil
}

// oneLine replaces the characters that would end or fold a header line, so
// a subject stays one line whatever the caller passed.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case '\r', '\n', '\x00', '\v', '\f', '\u0085', '\u2028', '\u2029':
			return ' '
		}
		return r
	}, s)
}
