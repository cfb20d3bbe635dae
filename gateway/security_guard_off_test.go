package gateway

import (
	"io"
	"net/http"
	"testing"
)

// TestFramingGuardCannotBeSwitchedOff: requests that flag an upgrade but
// are not switched (OPTIONS *, an upgrade with Expect: 100-continue, one
// the app answers with a plain response) end their connection, so a
// smuggling attempt sent after them on the same connection is never
// forwarded; a Content-Length next to an obs-folded Transfer-Encoding is
// ambiguous like any other.
func TestFramingGuardCannotBeSwitchedOff(t *testing.T) {
	h := newHarness(t)
	ambiguous := "POST /public/a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled
	for _, tc := range []struct{ name, first string }{
		{"OPTIONS * with Upgrade", "OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"},
		{"upgrade with Expect", "POST /public/up HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi"},
		{"upgrade the app does not switch", "GET /public/up HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := h.up.Count()
			var resps []rawResponse
			for _, r := range rawExchange(t, h.addr(), tc.first+ambiguous) {
				if r.status >= 200 { // 100 Continue is not an answer
					resps = append(resps, r)
				}
			}
			if len(resps) == 0 {
				t.Fatal("no answer")
			}
			for _, r := range resps[1:] {
				if r.status != http.StatusBadRequest {
					t.Errorf("a request after the first was answered %d: %+v", r.status, resps)
				}
			}
			for _, r := range h.up.Requests()[before:] {
				if r.URL.Path == "/admin" || r.URL.Path == "/public/a" {
					t.Fatalf("the upstream got %s after the first request", r.URL.Path)
				}
			}
			if len(resps) == 0 || !resps[0].close {
				t.Errorf("the connection stays open after an upgrade that was not switched: %+v", resps)
			}
		})
	}
	t.Run("obs-folded Transfer-Encoding", func(t *testing.T) {
		before := h.up.Count()
		raw := "POST /public/a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n" + smuggled
		resps := rawExchange(t, h.addr(), raw)
		if len(resps) != 1 || resps[0].status != http.StatusBadRequest {
			t.Fatalf("responses %+v, want one 400", resps)
		}
		if h.up.Count() != before {
			t.Fatal("the upstream was reached")
		}
	})
}

// TestUnknownTransferCodingsAreRefused: a transfer coding other than
// chunked alone is refused with 400 and nothing on the connection after
// it is read as a request (fasthttp would read "identity" as no body and
// the body as the next request).
func TestUnknownTransferCodingsAreRefused(t *testing.T) {
	h := newHarness(t)
	for _, te := range []string{"identity", "gzip", "gzip, chunked", "chunked, gzip", "chunked, chunked"} {
		t.Run(te, func(t *testing.T) {
			before := h.up.Count()
			resps := rawExchange(t, h.addr(), "POST /public/x HTTP/1.1\r\nHost: "+h.addr()+"\r\nTransfer-Encoding: "+te+"\r\n\r\n0\r\n\r\n"+smuggled)
			if len(resps) != 1 || resps[0].status != http.StatusBadRequest || !resps[0].close {
				t.Fatalf("responses %+v, want one 400 that closes", resps)
			}
			if h.up.Count() != before {
				t.Fatal("the upstream was reached")
			}
		})
	}
}

// TestEarlyHintsDoNotSwitchTheGuardOff: an app that answers an
// upgrade-flagged request with 103 Early Hints and then a plain response
// has not switched protocols: the connection ends after the answer, and a
// smuggling attempt behind it is never read.
func TestEarlyHintsDoNotSwitchTheGuardOff(t *testing.T) {
	h := newHarness(t)
	h.up.Handle = func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</a.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Del("Link")
		_, _ = io.WriteString(w, "final")
	}
	ambiguous := "POST /public/a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled
	resps := rawExchange(t, h.addr(), "GET /public/up HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"+ambiguous)
	var final []rawResponse
	for _, r := range resps {
		if r.status >= 200 {
			final = append(final, r)
		}
	}
	if len(final) != 1 || final[0].body != "final" || !final[0].close {
		t.Fatalf("responses %+v, want the app's one answer, closing the connection", resps)
	}
	for _, r := range h.up.Requests() {
		if r.URL.Path != "/public/up" {
			t.Fatalf("the upstream got %s", r.URL.Path)
		}
	}
}
