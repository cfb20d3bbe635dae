package gateway

import (
	"net/http"
	"net/netip"
	"testing"

	"gatehouse/access"
)

// groupRules admit /ops to the ops group, /staff to everyone at
// staff.example.com (through a group), /all to any signed-in person.
func groupRules(o *Options) {
	o.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	o.Settings.Groups = map[string][]string{
		"ops":   {"ana@example.com"},
		"staff": {"@staff.example.com", "ana@example.com"},
		"ci":    nil, // a group for service tokens only
	}
	o.Settings.Rules = []access.Rule{
		{Paths: []string{"/ops/**"}, Policy: access.PolicyAuthenticated, Groups: []string{"ops"}},
		{Paths: []string{"/staff/**"}, Policy: access.PolicyAuthenticated, Groups: []string{"staff"}},
	}
}

func TestGroupRulesAdmitMembersAndRefuseOthers(t *testing.T) {
	h := newHarness(t, groupRules)
	ana, bo, cy := h.browser(), h.browser(), h.browser()
	ana.signIn("ana@example.com", "/")
	bo.signIn("bo@staff.example.com", "/")
	cy.signIn("cy@example.org", "/")

	for _, tc := range []struct {
		who    string
		b      *browser
		path   string
		status int
		groups string
	}{
		{"ana", ana, "/ops/x", 200, "ops,staff"},
		{"ana", ana, "/staff/x", 200, "ops,staff"},
		{"bo", bo, "/ops/x", 403, ""},
		{"bo", bo, "/staff/x", 200, "staff"},
		{"bo", bo, "/all", 200, "staff"},
		{"cy", cy, "/ops/x", 403, ""},
		{"cy", cy, "/staff/x", 403, ""},
		{"cy", cy, "/all", 200, ""},
	} {
		resp := tc.b.get(tc.path)
		if resp.StatusCode != tc.status {
			t.Errorf("%s %s: status %d, want %d", tc.who, tc.path, resp.StatusCode, tc.status)
			continue
		}
		if tc.status != http.StatusOK {
			continue
		}
		got := h.up.Last(t)
		for _, k := range groupHeaders {
			if v := got.Header.Values(k); tc.groups == "" && len(v) != 0 || tc.groups != "" && (len(v) != 1 || v[0] != tc.groups) {
				t.Errorf("%s %s: upstream %s = %q, want %q", tc.who, tc.path, k, v, tc.groups)
			}
		}
	}
}

func TestGroupChangesApplyToLiveSessionsOnReload(t *testing.T) {
	h := newHarness(t, groupRules)
	bo := h.browser()
	bo.signIn("bo@staff.example.com", "/")
	if resp := bo.get("/ops/x"); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("before the reload: %d, want 403", resp.StatusCode)
	}
	st := h.opts.Settings
	st.Groups = map[string][]string{"ops": {"bo@staff.example.com"}, "staff": nil, "ci": nil}
	if err := h.srv.Reload(st); err != nil {
		t.Fatal(err)
	}
	if resp := bo.get("/ops/x"); resp.StatusCode != http.StatusOK {
		t.Fatalf("after adding bo to ops: %d, want 200", resp.StatusCode)
	}
	if v := h.up.Last(t).Header.Get("Remote-Groups"); v != "ops" {
		t.Errorf("Remote-Groups = %q after the reload, want ops", v)
	}
	if resp := bo.get("/staff/x"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("after emptying staff: %d, want 403", resp.StatusCode)
	}

	// A reload naming a group no rule can find is refused whole.
	bad := st
	bad.Groups = map[string][]string{"ops": {"bo@staff.example.com"}}
	if err := h.srv.Reload(bad); err == nil {
		t.Error("Reload accepted rules naming the undefined group staff")
	}
	if resp := bo.get("/ops/x"); resp.StatusCode != http.StatusOK {
		t.Errorf("a refused reload changed the running config: %d", resp.StatusCode)
	}
}

func TestForwardAuthReturnsGroups(t *testing.T) {
	h := newHarness(t, groupRules)
	ana := h.browser()
	ana.signIn("ana@example.com", "/")
	resp := h.auth(t, authCall{header: nginxHeaders("GET", "http://app.example.com/ops/x"), cookie: ana.sessionCookie()})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	for _, k := range groupHeaders {
		if got := resp.Header.Get(k); got != "ops,staff" {
			t.Errorf("%s = %q, want ops,staff", k, got)
		}
	}
	cy := h.browser()
	cy.signIn("cy@example.org", "/")
	if resp := h.auth(t, authCall{header: nginxHeaders("GET", "http://app.example.com/ops/x"), cookie: cy.sessionCookie()}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("non-member: %d, want 403", resp.StatusCode)
	}
}
