package access

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"gatehouse/safeurl"
)

// testRules covers one rule of each kind: a prefix, an exact path, a glob
// in the middle, a method-limited rule and a deny rule, with sessions
// required everywhere else.
func testDecider(t *testing.T) *Decider {
	t.Helper()
	a, err := Compile([]Rule{
		{Paths: []string{"/public/**"}, Policy: PolicyPublic},
		{Paths: []string{"/healthz"}, Policy: PolicyPublic},
		{Paths: []string{"/api/*/public"}, Policy: PolicyPublic},
		{Paths: []string{"/docs/**"}, Methods: []string{"GET"}, Policy: PolicyPublic},
		{Paths: []string{"/admin/**", "/internal"}, Policy: PolicyDeny},
	}, PolicyAuthenticated, nil)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return a
}

// outcome runs a raw request target through CleanPath and Decide, the way
// the server does, and names the result: "400" or the policy.
func outcome(a *Decider, method, raw string) string {
	p, err := safeurl.CleanPath(raw)
	if err != nil {
		return "400"
	}
	return a.Decide("app.example.com", method, p).Policy.String()
}

func TestNoSpellingOfAProtectedPathIsPublic(t *testing.T) {
	a := testDecider(t)
	tests := []struct {
		name, raw, want string
	}{
		// The public prefix itself.
		{"prefix apex", "/public", "public"},
		{"prefix apex slash", "/public/", "public"},
		{"prefix child", "/public/a/b.css", "public"},
		{"prefix double slash", "//public/x", "public"},
		{"prefix inner double slash", "/public//x", "public"},
		{"prefix encoded letter", "/%70ublic/x", "public"},
		// Escaping the public prefix.
		{"prefix dot dot", "/public/../admin", "400"},
		{"prefix dot dot private", "/public/../private", "400"},
		{"prefix encoded dot dot", "/public/%2e%2e/private", "400"},
		{"prefix upper encoded dot dot", "/public/%2E%2E/private", "400"},
		{"prefix half encoded", "/public/.%2e/private", "400"},
		{"prefix encoded slash", "/public%2F..%2Fprivate", "400"},
		{"prefix encoded slash lower", "/public%2f..%2fprivate", "400"},
		{"prefix backslash", "/public\\..\\private", "400"},
		{"prefix encoded backslash", "/public%5C..%5Cprivate", "400"},
		{"prefix tomcat", "/public/..;/private", "400"},
		{"prefix tomcat param", "/public/..;x=y/private", "400"},
		{"prefix dot semicolon", "/public/.;/private", "400"},
		{"prefix overlong", "/public/%C0%AE%C0%AE/private", "400"},
		{"prefix overlong slash", "/public/..%C0%AFprivate", "400"},
		{"prefix double encoded", "/public/%252e%252e/private", "400"},
		{"prefix double encoded slash", "/public%252F..%252Fprivate", "400"},
		{"prefix NUL", "/public/%00/../private", "400"},
		{"prefix fullwidth dots", "/public/%EF%BC%8E%EF%BC%8E/private", "400"},
		{"prefix three dots", "/public/.../private", "400"},
		{"prefix dot dot space", "/public/..%20/private", "400"},
		{"prefix case", "/PUBLIC/x", "authenticated"},
		{"prefix mixed case", "/Public/x", "authenticated"},
		{"prefix lookalike", "/publicity", "authenticated"},
		{"prefix suffix", "/public.json", "authenticated"},
		{"prefix semicolon", "/public;x/../private", "400"},
		{"prefix fullwidth letter", "/%EF%BD%90ublic/x", "400"},
		{"not under prefix", "/private/public/x", "authenticated"},
		// The exact path.
		{"exact", "/healthz", "public"},
		{"exact trailing slash", "/healthz/", "public"},
		{"exact child", "/healthz/x", "authenticated"},
		{"exact dot dot", "/healthz/../private", "400"},
		{"exact encoded dot dot", "/healthz/%2e%2e/private", "400"},
		{"exact tomcat", "/healthz/..;/private", "400"},
		{"exact case", "/HEALTHZ", "authenticated"},
		{"exact prefix", "/healthzz", "authenticated"},
		{"exact with semicolon", "/healthz;/../private", "400"},
		// The glob in the middle.
		{"glob", "/api/v1/public", "public"},
		{"glob trailing slash", "/api/v1/public/", "public"},
		{"glob two segments", "/api/v1/x/public", "authenticated"},
		{"glob encoded slash", "/api/v1%2Fx/public", "400"},
		{"glob dot dot", "/api/../admin/public", "400"},
		{"glob child", "/api/v1/public/secret", "authenticated"},
		{"glob dot dot out", "/api/v1/public/../../private", "400"},
		{"glob empty segment", "/api//public", "authenticated"},
		// Deny rules.
		{"deny", "/admin", "deny"},
		{"deny child", "/admin/users", "deny"},
		{"deny trailing slash", "/admin/", "deny"},
		{"deny double slash", "//admin//users", "deny"},
		{"deny literal", "/internal", "deny"},
		{"deny literal trailing slash", "/internal/", "deny"},
		{"deny via public dot dot", "/public/../admin/users", "400"},
		{"deny via dot", "/./admin", "400"},
		{"deny encoded letter", "/%61dmin/users", "deny"},
		{"deny fullwidth letter", "/%EF%BD%81dmin/users", "400"},
		{"deny fullwidth slash", "/admin%EF%BC%8Fusers", "400"},
		// Everything else needs a session.
		{"root", "/", "authenticated"},
		{"private", "/private", "authenticated"},
		{"dashboard", "/dashboard", "authenticated"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := outcome(a, "GET", tt.raw); got != tt.want {
				t.Fatalf("%q: got %s, want %s", tt.raw, got, tt.want)
			}
		})
	}
}

func TestDecideMethods(t *testing.T) {
	a := testDecider(t)
	tests := []struct {
		name, method, path string
		want               Policy
	}{
		{"GET listed", "GET", "/docs/intro", PolicyPublic},
		{"HEAD follows GET", "HEAD", "/docs/intro", PolicyPublic},
		{"lower-case get", "get", "/docs/intro", PolicyPublic},
		{"POST not listed", "POST", "/docs/intro", PolicyAuthenticated},
		{"DELETE not listed", "DELETE", "/docs/intro", PolicyAuthenticated},
		{"OPTIONS not listed", "OPTIONS", "/docs/intro", PolicyAuthenticated},
		{"longer name", "GETX", "/docs/intro", PolicyAuthenticated},
		{"prefix of name", "GE", "/docs/intro", PolicyAuthenticated},
		{"empty method", "", "/docs/intro", PolicyAuthenticated},
		{"any method on unlimited rule", "POST", "/public/form", PolicyPublic},
		{"deny for every method", "PROPFIND", "/admin/x", PolicyDeny},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := a.Decide("app.example.com", tt.method, tt.path).Policy; got != tt.want {
				t.Fatalf("Decide(%q, %q) = %s, want %s", tt.method, tt.path, got, tt.want)
			}
		})
	}
}

func TestDecideMethodCaseDoesNotEscapeDeny(t *testing.T) {
	a, err := Compile([]Rule{
		{Paths: []string{"/items/**"}, Methods: []string{"delete"}, Policy: PolicyDeny},
	}, PolicyPublic, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"DELETE", "delete", "Delete"} {
		if got := a.Decide("h", m, "/items/1").Policy; got != PolicyDeny {
			t.Errorf("method %q: got %s, want deny", m, got)
		}
	}
	if got := a.Decide("h", "GET", "/items/1").Policy; got != PolicyPublic {
		t.Errorf("GET: got %s, want public", got)
	}
}

func TestDecideHosts(t *testing.T) {
	a, err := Compile([]Rule{
		{Paths: []string{"/**"}, Hosts: []string{"admin.example.com"}, Policy: PolicyDeny},
		{Paths: []string{"/**"}, Hosts: []string{"*.Status.Example.com"}, Policy: PolicyPublic},
		{Paths: []string{"/**"}, Hosts: []string{"[::1]"}, Policy: PolicyDeny},
	}, PolicyAuthenticated, nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, host string
		want       Policy
		rule       int
	}{
		{"exact", "admin.example.com", PolicyDeny, 0},
		{"exact with port", "admin.example.com:8443", PolicyDeny, 0},
		{"exact upper case", "ADMIN.Example.COM", PolicyDeny, 0},
		{"exact trailing dot", "admin.example.com.", PolicyDeny, 0},
		{"exact trailing dot and port", "admin.example.com.:443", PolicyDeny, 0},
		{"other host", "app.example.com", PolicyAuthenticated, -1},
		{"suffix trick", "evil-admin.example.com", PolicyAuthenticated, -1},
		{"subdomain of exact", "x.admin.example.com", PolicyAuthenticated, -1},
		{"wildcard subdomain", "eu.status.example.com", PolicyPublic, 1},
		{"wildcard deep subdomain", "a.b.status.example.com:8080", PolicyPublic, 1},
		{"wildcard upper case", "EU.STATUS.EXAMPLE.COM", PolicyPublic, 1},
		{"wildcard apex", "status.example.com", PolicyAuthenticated, -1},
		{"wildcard lookalike", "evilstatus.example.com", PolicyAuthenticated, -1},
		{"wildcard bare dot", ".status.example.com", PolicyAuthenticated, -1},
		{"ipv6 literal", "[::1]:8080", PolicyDeny, 2},
		{"ipv6 literal no port", "[::1]", PolicyDeny, 2},
		{"empty host", "", PolicyAuthenticated, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := a.Decide(tt.host, "GET", "/x")
			if d.Policy != tt.want || d.Rule != tt.rule {
				t.Fatalf("Decide(%q) = %s rule %d, want %s rule %d", tt.host, d.Policy, d.Rule, tt.want, tt.rule)
			}
		})
	}
}

func TestDecideFirstMatchWinsAndDefault(t *testing.T) {
	a, err := Compile([]Rule{
		{Paths: []string{"/a/secret"}, Policy: PolicyDeny},
		{Paths: []string{"/a/**"}, Policy: PolicyPublic},
		{Paths: []string{"/a/secret"}, Policy: PolicyPublic},
	}, PolicyDeny, nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path string
		want       Policy
		rule       int
	}{
		{"first rule", "/a/secret", PolicyDeny, 0},
		{"first rule trailing slash", "/a/secret/", PolicyDeny, 0},
		{"second rule", "/a/other", PolicyPublic, 1},
		{"default", "/b", PolicyDeny, -1},
		{"default root", "/", PolicyDeny, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := a.Decide("h", "GET", tt.path)
			if d.Policy != tt.want || d.Rule != tt.rule {
				t.Fatalf("Decide(%q) = %s rule %d, want %s rule %d", tt.path, d.Policy, d.Rule, tt.want, tt.rule)
			}
		})
	}
}

func TestDecidePublicPrefixSemantics(t *testing.T) {
	a, err := Compile([]Rule{{Paths: []string{"/public/**"}, Policy: PolicyPublic}}, PolicyAuthenticated, nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path string
		want Policy
	}{
		{"/public", PolicyPublic},
		{"/public/", PolicyPublic},
		{"/public/a", PolicyPublic},
		{"/public/a/b/c", PolicyPublic},
		{"/public/a/", PolicyPublic},
		{"/publicx", PolicyAuthenticated},
		{"/publi", PolicyAuthenticated},
		{"/x/public", PolicyAuthenticated},
		{"/", PolicyAuthenticated},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			if got := a.Decide("h", "GET", tt.path).Policy; got != tt.want {
				t.Fatalf("Decide(%q) = %s, want %s", tt.path, got, tt.want)
			}
		})
	}
}

func TestCompileRejectsBadRules(t *testing.T) {
	tests := []struct {
		name  string
		rules []Rule
		def   Policy
		want  []string // substrings the error must contain
	}{
		{"invalid glob", []Rule{{Paths: []string{"/ok"}}, {Paths: []string{"/public/["}}}, PolicyAuthenticated, []string{"access.rules[1].paths[0]: ", "not a valid glob"}},
		{"unclosed brace", []Rule{{Paths: []string{"/a/{b,c"}}}, PolicyAuthenticated, []string{"access.rules[0].paths[0]: ", "not a valid glob"}},
		{"relative glob", []Rule{{Paths: []string{"public/**"}}}, PolicyAuthenticated, []string{"access.rules[0].paths[0]: ", `must start with "/"`}},
		{"dot segment", []Rule{{Paths: []string{"/a/../b"}}}, PolicyAuthenticated, []string{"access.rules[0].paths[0]: ", ". or .. segments"}},
		{"no paths and no hosts", []Rule{{Policy: PolicyPublic}}, PolicyAuthenticated, []string{"access.rules[0].paths: ", "required unless hosts is set"}},
		{"bad method", []Rule{{Paths: []string{"/"}, Methods: []string{"GET", "GE T"}}}, PolicyAuthenticated, []string{"access.rules[0].methods[1]: "}},
		{"empty method", []Rule{{Paths: []string{"/"}, Methods: []string{""}}}, PolicyAuthenticated, []string{"access.rules[0].methods[0]: "}},
		{"bare star host", []Rule{{Paths: []string{"/"}, Hosts: []string{"*"}}}, PolicyAuthenticated, []string{"access.rules[0].hosts[0]: "}},
		{"inner star host", []Rule{{Paths: []string{"/"}, Hosts: []string{"a*.example.com"}}}, PolicyAuthenticated, []string{"access.rules[0].hosts[0]: "}},
		{"host with port", []Rule{{Paths: []string{"/"}, Hosts: []string{"a.example.com:80"}}}, PolicyAuthenticated, []string{"access.rules[0].hosts[0]: "}},
		{"unicode host", []Rule{{Paths: []string{"/"}, Hosts: []string{"bücher.de"}}}, PolicyAuthenticated, []string{"access.rules[0].hosts[0]: "}},
		{"emails on public rule", []Rule{{Paths: []string{"/"}, Policy: PolicyPublic, Emails: []string{"a@example.com"}}}, PolicyAuthenticated, []string{"access.rules[0].emails: ", "only allowed with policy authenticated"}},
		{"domains on deny rule", []Rule{{Paths: []string{"/"}, Policy: PolicyDeny, Domains: []string{"example.com"}}}, PolicyAuthenticated, []string{"access.rules[0].domains: ", "only allowed"}},
		{"invalid email", []Rule{{Paths: []string{"/"}, Emails: []string{"ok@example.com", "Bob <b@example.com>"}}}, PolicyAuthenticated, []string{"access.rules[0].emails[1]: "}},
		{"email with percent", []Rule{{Paths: []string{"/"}, Emails: []string{"a%b@example.com"}}}, PolicyAuthenticated, []string{"access.rules[0].emails[0]: "}},
		{"invalid domain", []Rule{{Paths: []string{"/"}, Domains: []string{"exa mple.com"}}}, PolicyAuthenticated, []string{"access.rules[0].domains[0]: "}},
		{"domain with underscore", []Rule{{Paths: []string{"/"}, Domains: []string{"my_corp.example.com"}}}, PolicyAuthenticated, []string{"access.rules[0].domains[0]: "}},
		{"undefined group", []Rule{{Paths: []string{"/"}, Groups: []string{"admins"}}}, PolicyAuthenticated, []string{"access.rules[0].groups[0]: ", "not a defined group"}},
		{"bad token name", []Rule{{Paths: []string{"/"}, Tokens: []string{"ci job"}}}, PolicyAuthenticated, []string{"access.rules[0].tokens[0]: ", "not a token name"}},
		{"tokens on a public rule", []Rule{{Paths: []string{"/"}, Tokens: []string{"ci"}, Policy: PolicyPublic}}, PolicyAuthenticated, []string{"access.rules[0].tokens: ", "only allowed with policy authenticated"}},
		{"unknown policy", []Rule{{Paths: []string{"/"}, Policy: Policy(7)}}, PolicyAuthenticated, []string{"access.rules[0].policy: "}},
		{"unknown default", nil, Policy(-1), []string{"access.default: "}},
		{"every problem named", []Rule{{Paths: []string{"x"}}, {Paths: []string{"/"}}, {Paths: []string{"/["}, Methods: []string{"A B"}}}, PolicyAuthenticated, []string{"access.rules[0].paths[0]: ", "access.rules[2].paths[0]: ", "access.rules[2].methods[0]: "}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := Compile(tt.rules, tt.def, nil)
			if err == nil {
				t.Fatalf("Compile accepted, got %+v", a)
			}
			if a != nil {
				t.Fatalf("Compile returned a value with its error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
				var fe *FieldError
				if !errors.As(e, &fe) || !strings.HasPrefix(fe.Key, "access.") {
					t.Errorf("problem %q is not a FieldError named by its key", e)
				}
			}
		})
	}
}

// TestHostOnlyRuleCoversEveryPath: a rule with hosts and no paths is what
// users write to close or open a whole host.
func TestHostOnlyRuleCoversEveryPath(t *testing.T) {
	a, err := Compile([]Rule{{Hosts: []string{"admin.example.com"}, Policy: PolicyDeny}}, PolicyPublic, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		host, path string
		want       Policy
	}{
		{"admin.example.com", "/", PolicyDeny},
		{"admin.example.com:8443", "/any/thing", PolicyDeny},
		{"Admin.Example.com.", "/x", PolicyDeny},
		{"app.example.com", "/", PolicyPublic},
	} {
		if got := a.Decide(tc.host, "GET", tc.path).Policy; got != tc.want {
			t.Errorf("Decide(%s%s) = %s, want %s", tc.host, tc.path, got, tc.want)
		}
	}
}

func TestDecisionPermits(t *testing.T) {
	a, err := Compile([]Rule{
		{Paths: []string{"/team/**"}, Emails: []string{"Boss@Example.com"}, Domains: []string{"team.example.com", "*.corp.example.com", "bücher.de"}},
		{Paths: []string{"/open/**"}},
		{Paths: []string{"/closed/**"}, Policy: PolicyDeny},
	}, PolicyAuthenticated, nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path, email string
		want              bool
	}{
		{"listed address", "/team/x", "boss@example.com", true},
		{"listed address upper case", "/team/x", "BOSS@example.com", true},
		{"other address same domain", "/team/x", "intern@example.com", false},
		{"listed domain", "/team/x", "a@team.example.com", true},
		{"subdomain of exact domain", "/team/x", "a@x.team.example.com", false},
		{"suffix trick", "/team/x", "a@evil-team.example.com", false},
		{"wildcard subdomain", "/team/x", "a@eu.corp.example.com", true},
		{"wildcard deep subdomain", "/team/x", "a@x.eu.corp.example.com", true},
		{"wildcard apex", "/team/x", "a@corp.example.com", false},
		{"wildcard lookalike", "/team/x", "a@evilcorp.example.com", false},
		{"domain as local part", "/team/x", "team.example.com@evil.com", false},
		{"idn domain in punycode", "/team/x", "a@xn--bcher-kva.de", true},
		{"empty email", "/team/x", "", false},
		{"no at", "/team/x", "team.example.com", false},
		{"no domain", "/team/x", "a@", false},
		{"unrestricted rule", "/open/x", "anyone@anywhere.org", true},
		{"unrestricted empty email", "/open/x", "", false},
		{"default unrestricted", "/other", "anyone@anywhere.org", true},
		{"deny never permits", "/closed/x", "boss@example.com", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := a.Decide("h", "GET", tt.path)
			if got := d.Permits(tt.email); got != tt.want {
				t.Fatalf("Decide(%q).Permits(%q) = %v, want %v", tt.path, tt.email, got, tt.want)
			}
		})
	}
}

func TestSignupAllows(t *testing.T) {
	closed := Signup{
		Emails:  []string{"Alice@Example.com", "carol@bücher.de"},
		Domains: []string{"Team.Example.org", "*.corp.example.net"},
	}
	tests := []struct {
		name   string
		signup Signup
		email  string
		want   bool
	}{
		{"open allows anyone", Signup{Open: true}, "x@y.com", true},
		{"open needs an address", Signup{Open: true}, "", false},
		{"closed nothing listed", Signup{}, "x@y.com", false},
		{"listed address", closed, "alice@example.com", true},
		{"listed idn address", closed, "carol@xn--bcher-kva.de", true},
		{"other address", closed, "bob@example.com", false},
		{"listed domain", closed, "bob@team.example.org", true},
		{"subdomain of exact domain", closed, "bob@x.team.example.org", false},
		{"wildcard subdomain", closed, "bob@eu.corp.example.net", true},
		{"wildcard apex", closed, "bob@corp.example.net", false},
		{"suffix trick", closed, "bob@evil-team.example.org", false},
		{"not an address", closed, "not an address", false},
		{"empty", closed, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := CompileSignup(tt.signup)
			if err != nil {
				t.Fatal(err)
			}
			if got := p.Allows(tt.email); got != tt.want {
				t.Fatalf("Allows(%q) = %v, want %v", tt.email, got, tt.want)
			}
		})
	}
	var none *SignupPolicy
	if none.Allows("x@y.com") {
		t.Error("a nil policy lets someone in")
	}
}

// TestSignupRefusesEntriesThatMatchNobody: an allowlist entry that can
// never match is an error named by its key, not silently skipped (which
// would lock its people out).
func TestSignupRefusesEntriesThatMatchNobody(t *testing.T) {
	_, err := CompileSignup(Signup{
		Emails:  []string{"ok@example.com", "a%b@example.com", "not an address"},
		Domains: []string{"example.org", "my_corp.example.com"},
	})
	if err == nil {
		t.Fatal("accepted")
	}
	for _, w := range []string{"access.allowed_emails[1]: ", "access.allowed_emails[2]: ", "access.allowed_domains[1]: "} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not name %q", err, w)
		}
	}
	if strings.Contains(err.Error(), "allowed_emails[0]") || strings.Contains(err.Error(), "allowed_domains[0]") {
		t.Errorf("valid entries reported: %q", err)
	}
}

func TestParsePolicy(t *testing.T) {
	tests := []struct {
		in      string
		want    Policy
		wantErr bool
	}{
		{"public", PolicyPublic, false},
		{"authenticated", PolicyAuthenticated, false},
		{"deny", PolicyDeny, false},
		{"", 0, true},
		{"Public", 0, true},
		{"allow", 0, true},
		{" deny", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParsePolicy(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParsePolicy(%q) error = %v, wantErr %v", tt.in, err, tt.wantErr)
			}
			if err == nil && got != tt.want {
				t.Fatalf("ParsePolicy(%q) = %s, want %s", tt.in, got, tt.want)
			}
			if err == nil && got.String() != tt.in {
				t.Fatalf("String() = %q, want %q", got.String(), tt.in)
			}
		})
	}
	if got := Policy(9).String(); got != "Policy(9)" {
		t.Fatalf("unknown policy String() = %q", got)
	}
}

func TestDecideDoesNotAllocate(t *testing.T) {
	a := testDecider(t)
	allocs := testing.AllocsPerRun(200, func() {
		_ = a.Decide("App.Example.com:8443", "HEAD", "/docs/guide/")
		_ = a.Decide("app.example.com", "POST", "/api/v2/public")
		_ = a.Decide("app.example.com", "GET", "/somewhere/else")
	})
	if allocs != 0 {
		t.Fatalf("Decide allocated %.1f times per run", allocs)
	}
}

func BenchmarkDecide(b *testing.B) {
	a, err := Compile([]Rule{
		{Paths: []string{"/public/**"}, Policy: PolicyPublic},
		{Paths: []string{"/healthz"}, Policy: PolicyPublic},
		{Paths: []string{"/api/*/public"}, Policy: PolicyPublic},
		{Paths: []string{"/admin/**"}, Policy: PolicyDeny},
	}, PolicyAuthenticated, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		a.Decide("app.example.com:8080", "GET", "/dashboard/reports/2024/")
	}
}

func TestAdmitsGroupsAndTokens(t *testing.T) {
	gs, err := CompileGroups(map[string][]string{
		"ops":   {"Ana@Example.com"},
		"staff": {"@staff.example.com", "@*.corp.example.com"},
		"ci":    nil,
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := gs.Of("ana@example.com"); !slices.Equal(got, []string{"ops"}) {
		t.Errorf("Of(ana) = %v", got)
	}
	if got := gs.Of("x@eu.corp.example.com"); !slices.Equal(got, []string{"staff"}) {
		t.Errorf("Of(x@eu.corp) = %v", got)
	}
	if got := gs.Of("x@corp.example.com"); len(got) != 0 {
		t.Errorf("@*.corp.example.com must not cover the apex: %v", got)
	}
	a, err := Compile([]Rule{
		{Paths: []string{"/ops"}, Groups: []string{"ops", "ci"}},
		{Paths: []string{"/deploy"}, Tokens: []string{"deployer"}},
		{Paths: []string{"/mixed"}, Emails: []string{"bo@example.com"}, Tokens: []string{"deployer"}},
		{Paths: []string{"/gone"}, Policy: PolicyDeny},
	}, PolicyAuthenticated, gs)
	if err != nil {
		t.Fatal(err)
	}
	ana := Principal{Email: "ana@example.com", Groups: gs.Of("ana@example.com")}
	bo := Principal{Email: "bo@example.com"}
	deployer := Principal{Token: "deployer"}
	ciBot := Principal{Token: "nightly", Groups: []string{"ci"}}
	for _, tc := range []struct {
		path string
		who  Principal
		want bool
	}{
		{"/ops", ana, true},
		{"/ops", bo, false},
		{"/ops", ciBot, true},
		{"/ops", deployer, false},
		{"/deploy", deployer, true},
		{"/deploy", ciBot, false},
		{"/deploy", bo, true}, // tokens do not restrict people
		{"/mixed", bo, true},
		{"/mixed", ana, false},
		{"/mixed", deployer, true},
		{"/elsewhere", ana, true},
		{"/elsewhere", deployer, false}, // never by a bare authenticated rule
		{"/elsewhere", ciBot, false},
		{"/gone", ana, false},
		{"/gone", deployer, false},
		{"/elsewhere", Principal{}, false},
	} {
		if got := a.Decide("app.example.com", "GET", tc.path).Admits(tc.who); got != tc.want {
			t.Errorf("%s admits %+v = %v, want %v", tc.path, tc.who, got, tc.want)
		}
	}
}

func TestCompileGroupsRefusesBadEntries(t *testing.T) {
	_, err := CompileGroups(map[string][]string{
		"Ops":  {"a@example.com"},
		"good": {"not-an-address", "@", "@bad domain"},
	})
	for _, want := range []string{"groups.Ops: ", "groups.good[0]: ", "groups.good[1]: ", "groups.good[2]: "} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
}
