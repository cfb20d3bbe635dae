package gateway

import (
	"bufio"
	"bytes"
	"net/http"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// fuzzToken stands in for a session token; it is made of characters a
// fuzzer rarely assembles by chance.
const fuzzToken = "Zq7vTokenXw9"

// FuzzSessionCookie: whatever surrounds the session cookie in the Cookie
// header, the request the app receives carries no cookie of that name for
// fasthttp's parser (the one the gateway and Gatehouse's own endpoints both
// read it with: fiber's Ctx.Cookies is RequestHeader.Cookie) nor for
// net/http's (what most apps read it with), and a token the gateway read as
// the session never travels on at all.
func FuzzSessionCookie(f *testing.F) {
	for _, seed := range [][2]string{
		{"", ""},
		{"a=1;\t", ""},
		{"a=1;", "; b=2"},
		{"a=1 ;  ", " ; b=2"},
		{"gatehouse_session; ", ""},
		{"gatehouse_session=other; ", "; gatehouse_session=again"},
		{"\"a\"=1; ", ";;"},
		{"a=\"", "\""},
	} {
		f.Add(seed[0], seed[1])
	}
	const name = "gatehouse_session"
	f.Fuzz(func(t *testing.T, before, after string) {
		if strings.ContainsAny(before+after, "\r\n\x00") {
			return // another header line, not this one
		}
		raw := "GET / HTTP/1.1\r\nHost: app.test\r\nCookie: " + before + name + "=" + fuzzToken + after + "\r\n\r\n"
		var req fasthttp.Request
		if err := req.Read(bufio.NewReader(strings.NewReader(raw))); err != nil {
			return // refused before anything reads a cookie
		}
		honoured := string(req.Header.Cookie(name)) == fuzzToken
		dropSessionCookie(&req.Header, name)
		if v := req.Header.Cookie(name); len(v) != 0 {
			t.Fatalf("fasthttp still reads %s=%q after the drop (Cookie: %q)", name, v, before+"…"+after)
		}
		var out bytes.Buffer
		if _, err := req.WriteTo(&out); err != nil {
			t.Fatalf("write request: %v", err)
		}
		sent, err := http.ReadRequest(bufio.NewReader(&out))
		if err != nil {
			t.Fatalf("the forwarded head does not parse: %v\n%s", err, out.String())
		}
		for _, c := range sent.Cookies() {
			if c.Name == name {
				t.Fatalf("net/http reads %s=%q upstream (Cookie: %q)", name, c.Value, sent.Header.Values("Cookie"))
			}
		}
		// A token the gateway honoured never travels on, not even inside
		// another cookie's value. (Text that the parsers read as part of
		// another cookie, such as a="gatehouse_session=…", was never a
		// session, and is the client's to send.)
		if honoured && !strings.Contains(before+after, fuzzToken[:4]) && strings.Contains(strings.Join(sent.Header.Values("Cookie"), ";"), fuzzToken) {
			t.Fatalf("the token reached the app: %q", sent.Header.Values("Cookie"))
		}
	})
}
