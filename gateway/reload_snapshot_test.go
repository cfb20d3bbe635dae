package gateway

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"gatehouse/mailer"
	"gatehouse/pages"
)

// reloadingMailer reloads the server's settings while it "sends" the
// first code: a reload landing in the middle of a request.
type reloadingMailer struct {
	once   sync.Once
	reload func()
}

func (m *reloadingMailer) Send(context.Context, mailer.Message) error {
	m.once.Do(m.reload)
	return nil
}

// TestRequestKeepsItsSettingsAcrossAReload: one request runs with one
// configuration. A POST /login whose code mail is being sent when a reload
// swaps the pages (here: the app's name) still answers with the pages it
// started with; the next request gets the new ones.
func TestRequestKeepsItsSettingsAcrossAReload(t *testing.T) {
	m := &reloadingMailer{}
	h := newHarness(t, func(o *Options) { o.Settings.Mailer = m })
	renamed, err := pages.New(pages.Options{AppName: "Renamed Gate", AccentColor: "#2563eb", DefaultLanguage: "en", Prefix: Prefix})
	if err != nil {
		t.Fatal(err)
	}
	next := h.opts.Settings
	next.Mailer = m
	next.Pages = renamed
	next.AppName = "Renamed Gate"
	m.reload = func() {
		if err := h.srv.Reload(next); err != nil {
			t.Errorf("reload: %v", err)
		}
	}
	b := h.browser()
	page := b.get("/.gatehouse/login")
	if !strings.Contains(page.body, "Gatehouse") || strings.Contains(page.body, "Renamed Gate") {
		t.Fatal("the login page does not show the configured name")
	}
	resp := b.post("/.gatehouse/login", url.Values{"email": {"rae@example.com"}, "_csrf": {b.csrf(page.body)}})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /login: %d", resp.StatusCode)
	}
	if strings.Contains(resp.body, "Renamed Gate") {
		t.Fatal("the answer to the request that was running during the reload used the new settings")
	}
	if !strings.Contains(resp.body, "Gatehouse") {
		t.Fatalf("the answer lost the settings it started with:\n%.400s", resp.body)
	}
	if after := b.get("/.gatehouse/login"); !strings.Contains(after.body, "Renamed Gate") {
		t.Fatal("the next request does not see the reloaded settings")
	}
}
