// Package access compiles the access rules once and decides which policy
// a request's host, method and path fall under.
package access

import (
	"errors"
	"fmt"
	"strings"

	"github.com/bmatcuk/doublestar/v4"

	"gatehouse/email"
	"gatehouse/safeurl"
)

// Policy says what a request needs to pass.
type Policy int

// The policies a rule or the default can have. The zero value is the safe
// one: a session is required.
const (
	PolicyAuthenticated Policy = iota
	PolicyPublic
	PolicyDeny
)

// ParsePolicy parses the config spelling of a policy: "public",
// "authenticated" or "deny", exactly.
func ParsePolicy(s string) (Policy, error) {
	switch s {
	case "authenticated":
		return PolicyAuthenticated, nil
	case "public":
		return PolicyPublic, nil
	case "deny":
		return PolicyDeny, nil
	}
	return 0, fmt.Errorf("parse policy %q: want public, authenticated or deny", s)
}

// String returns the config spelling of p.
func (p Policy) String() string {
	switch p {
	case PolicyAuthenticated:
		return "authenticated"
	case PolicyPublic:
		return "public"
	case PolicyDeny:
		return "deny"
	}
	return fmt.Sprintf("Policy(%d)", int(p))
}

// Rule is one access rule. A request matches it when its path matches one
// of Paths, its method one of Methods and its host one of Hosts.
type Rule struct {
	// Paths are doublestar globs matched, case-sensitively, against the
	// safeurl.CleanPath result. Empty means every path, allowed only when
	// Hosts is set (a rule for a whole host); otherwise at least one is
	// required ("/**" for every path).
	// "**" spans segments, "*" does not. "/public/**" matches "/public",
	// "/public/" and everything below, but not "/publicity" nor "/PUBLIC".
	// A trailing slash on the request path is ignored when matching, so a
	// rule for "/admin" also covers "/admin/". Matrix parameters are not
	// stripped: "/admin;x" does not match a rule for "/admin". But servers
	// such as Tomcat and Jetty drop them before routing, so a path whose
	// decision would change without its ";params" is denied (see Decide).
	Paths []string
	// Methods are HTTP methods, compared case-insensitively; empty means
	// any. A rule listing GET also matches HEAD.
	Methods []string
	// Hosts are host names without port: "app.example.com" exactly, or
	// "*.example.com" for any subdomain (not the apex). Empty means any.
	Hosts []string
	// Policy is the decision when the rule matches.
	Policy Policy
	// Emails and Domains restrict a PolicyAuthenticated rule to these
	// addresses, or to addresses whose domain is one of Domains exactly
	// ("example.com") or, with a leading "*.", any subdomain of it
	// ("*.example.com" matches "a.example.com" but not "example.com" nor
	// "evil-example.com"). Both empty: any signed-in user.
	Emails  []string
	Domains []string
	// Groups admits members of these groups: people listed in the group
	// (see CompileGroups) and service tokens created with the group. Each
	// must be a defined group, so that a typo cannot lock anyone out.
	Groups []string
	// Tokens admits these service tokens by name. Service tokens pass only
	// rules that name them or one of their groups, never a bare
	// authenticated rule. Tokens does not restrict people: a rule with
	// only Tokens admits every signed-in person too.
	Tokens []string
}

// FieldError is one problem in the access configuration, named by its
// config key ("access.rules[0].paths[1]"), so that check-config and serve,
// which both compile through this package, say the same thing.
type FieldError struct {
	Key string
	Err error
}

func (e *FieldError) Error() string { return e.Key + ": " + e.Err.Error() }

func (e *FieldError) Unwrap() error { return e.Err }

// fieldErrors collects FieldErrors.
type fieldErrors []error

func (fe *fieldErrors) add(key string, err error) {
	*fe = append(*fe, &FieldError{Key: key, Err: err})
}

func (fe *fieldErrors) addf(key, format string, args ...any) {
	fe.add(key, fmt.Errorf(format, args...))
}

func indexKey(key string, i int) string { return fmt.Sprintf("%s[%d]", key, i) }

// Decider holds the compiled access rules.
type Decider struct {
	rules []compiledRule
	def   Policy
}

type compiledRule struct {
	paths   []pathMatcher
	methods []string
	anyGet  bool // HEAD matches because GET is listed
	hosts   []hostMatcher
	policy  Policy
	allow   allowList
}

// allowList restricts who may pass: canonical addresses and domains, where
// a domain starting with "." stands for its subdomains; and groups and
// service token names.
type allowList struct {
	emails  []string
	domains []string
	groups  []string
	tokens  []string
}

// pathMatcher is a doublestar glob, or a literal path compared directly.
type pathMatcher struct {
	pattern string
	literal bool
}

func (m pathMatcher) match(p string) bool {
	if m.literal {
		return m.pattern == p
	}
	ok, err := doublestar.Match(m.pattern, p)
	return err == nil && ok
}

// hostMatcher is a lower-case host name, or a suffix ".example.com" when
// the rule said "*.example.com".
type hostMatcher struct {
	name     string
	wildcard bool
}

func (m hostMatcher) match(host string) bool {
	if !m.wildcard {
		return strings.EqualFold(host, m.name)
	}
	return len(host) > len(m.name) && strings.EqualFold(host[len(host)-len(m.name):], m.name)
}

// restrictsPeople reports whether only some people may pass.
func (l allowList) restrictsPeople() bool {
	return len(l.emails) > 0 || len(l.domains) > 0 || len(l.groups) > 0
}

// admits reports whether p is on the list; see Decision.Admits.
func (l allowList) admits(p Principal) bool {
	inGroup := false
	for _, g := range p.Groups {
		for _, want := range l.groups {
			if g == want {
				inGroup = true
			}
		}
	}
	if p.Token != "" {
		for _, t := range l.tokens {
			if t == p.Token {
				return true
			}
		}
		return inGroup
	}
	if p.Email == "" {
		return false
	}
	return !l.restrictsPeople() || inGroup || l.permits(p.Email)
}

// permits reports whether the canonical address email is on the lists of
// addresses and domains.
func (l allowList) permits(email string) bool {
	at := strings.LastIndexByte(email, '@')
	if at <= 0 || at == len(email)-1 {
		return false
	}
	for _, e := range l.emails {
		if strings.EqualFold(e, email) {
			return true
		}
	}
	domain := email[at+1:]
	for _, d := range l.domains {
		if d[0] == '.' {
			if len(domain) > len(d) && strings.EqualFold(domain[len(domain)-len(d):], d) {
				return true
			}
		} else if strings.EqualFold(domain, d) {
			return true
		}
	}
	return false
}

// Compile compiles rules, checked in order (first match wins), with def
// as the policy when none matches. Every problem is reported, each a
// *FieldError named by its config key (errors.Join of them all).
func Compile(rules []Rule, def Policy, groups *GroupSet) (*Decider, error) {
	var errs fieldErrors
	if !validPolicy(def) {
		errs.addf("access.default", "unknown policy %d", int(def))
	}
	a := &Decider{def: def, rules: make([]compiledRule, 0, len(rules))}
	for i, r := range rules {
		a.rules = append(a.rules, compileRule(&errs, indexKey("access.rules", i), r, groups))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return a, nil
}

func validPolicy(p Policy) bool {
	return p == PolicyAuthenticated || p == PolicyPublic || p == PolicyDeny
}

func compileRule(errs *fieldErrors, key string, r Rule, groups *GroupSet) compiledRule {
	c := compiledRule{policy: r.Policy}
	if !validPolicy(r.Policy) {
		errs.addf(key+".policy", "unknown policy %d", int(r.Policy))
	}
	if len(r.Paths) == 0 && len(r.Hosts) == 0 {
		errs.addf(key+".paths", `required unless hosts is set ("/**" for every path)`)
	}
	for i, p := range r.Paths {
		m, err := compilePathGlob(p)
		if err != nil {
			errs.add(indexKey(key+".paths", i), err)
			continue
		}
		c.paths = append(c.paths, m)
	}
	for i, m := range r.Methods {
		if !IsMethod(m) {
			errs.addf(indexKey(key+".methods", i), "%q is not an HTTP method such as GET or POST", m)
			continue
		}
		m = strings.ToUpper(m)
		c.methods = append(c.methods, m)
		if m == "GET" {
			c.anyGet = true
		}
	}
	for i, h := range r.Hosts {
		m, err := compileHost(h)
		if err != nil {
			errs.add(indexKey(key+".hosts", i), err)
			continue
		}
		c.hosts = append(c.hosts, m)
	}
	c.allow = compileAllowList(errs, key+".emails", key+".domains", r.Emails, r.Domains)
	if r.Policy != PolicyAuthenticated && validPolicy(r.Policy) {
		if len(r.Emails) > 0 {
			errs.addf(key+".emails", "only allowed with policy authenticated, not %s", r.Policy)
		}
		if len(r.Domains) > 0 {
			errs.addf(key+".domains", "only allowed with policy authenticated, not %s", r.Policy)
		}
		if len(r.Groups) > 0 {
			errs.addf(key+".groups", "only allowed with policy authenticated, not %s", r.Policy)
		}
		if len(r.Tokens) > 0 {
			errs.addf(key+".tokens", "only allowed with policy authenticated, not %s", r.Policy)
		}
	}
	for i, g := range r.Groups {
		if !groups.Has(g) {
			errs.addf(indexKey(key+".groups", i), "%q is not a defined group: add it under groups (an empty list is fine for a group of service tokens only)", g)
			continue
		}
		c.allow.groups = append(c.allow.groups, g)
	}
	for i, t := range r.Tokens {
		if !IsName(t) {
			errs.addf(indexKey(key+".tokens", i), "%q is not a token name (letters, digits, '-', '_' and '.', at most 64)", t)
			continue
		}
		c.allow.tokens = append(c.allow.tokens, t)
	}
	return c
}

// IsName reports whether s is a valid group or service token name: 1 to 64
// of a-z, A-Z, 0-9, '-', '_' and '.', starting with a letter or digit.
func IsName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
		if !alnum && (i == 0 || !strings.ContainsRune("-_.", rune(c))) {
			return false
		}
	}
	return true
}

// compilePathGlob accepts a doublestar pattern on a normalized path. Dot
// segments are refused: a normalized path never has them, so such a rule
// would silently never match.
func compilePathGlob(p string) (pathMatcher, error) {
	if !strings.HasPrefix(p, "/") {
		return pathMatcher{}, fmt.Errorf(`%q must start with "/"`, p)
	}
	if !doublestar.ValidatePattern(p) {
		return pathMatcher{}, fmt.Errorf("%q is not a valid glob", p)
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "." || seg == ".." {
			return pathMatcher{}, fmt.Errorf("%q must not contain . or .. segments (paths are matched after normalization)", p)
		}
	}
	if !strings.ContainsAny(p, `*?[]{}\`) {
		return pathMatcher{pattern: p, literal: true}, nil
	}
	return pathMatcher{pattern: p}, nil
}

func compileHost(h string) (hostMatcher, error) {
	name := strings.ToLower(h)
	wildcard := strings.HasPrefix(name, "*.")
	if wildcard {
		name = name[1:] // keep the dot: ".example.com"
	}
	check := strings.TrimPrefix(name, ".")
	if !safeurl.IsHostName(check) {
		return hostMatcher{}, fmt.Errorf("%q is not a host name or *.domain (a * only as the whole first label)", h)
	}
	return hostMatcher{name: name, wildcard: wildcard}, nil
}

// compileAllowList canonicalises addresses with email.Parse and domains
// with IDNA, so that they compare equal to signed-in addresses. An entry
// that cannot match anyone is an error, not skipped: with an allowlist,
// a skipped entry locks its people out without a word.
func compileAllowList(errs *fieldErrors, emailsKey, domainsKey string, emails, domains []string) allowList {
	var l allowList
	for i, e := range emails {
		a, err := email.Parse(e)
		if err != nil {
			errs.add(indexKey(emailsKey, i), fmt.Errorf("%q: %w", e, err))
			continue
		}
		l.emails = append(l.emails, a)
	}
	for i, d := range domains {
		c, err := canonicalDomainPattern(d)
		if err != nil {
			errs.add(indexKey(domainsKey, i), fmt.Errorf(`%q must be a domain name such as example.com or *.example.com, without "@"`, d))
			continue
		}
		l.domains = append(l.domains, c)
	}
	return l
}

// canonicalDomainPattern turns "Example.COM" into "example.com" and
// "*.bücher.de" into ".xn--bcher-kva.de".
func canonicalDomainPattern(d string) (string, error) {
	sub := strings.HasPrefix(d, "*.")
	if sub {
		d = d[2:]
	}
	ascii, err := email.CanonicalDomain(d)
	if err != nil {
		return "", err
	}
	if sub {
		return "." + ascii, nil
	}
	return ascii, nil
}

// Decide returns the first matching rule's decision, or the default. host
// is the request host (may include a port; it is stripped), method the
// request method from the request line, path a safeurl.CleanPath result.
// Nothing else about the request takes part.
//
// A path with ";params" in a segment is also decided without them, as
// Tomcat, Jetty and others route it ("/internal;x/y" is "/internal/y"
// there); when the two decisions come from different rules the request is
// denied rather than guessed.
func (a *Decider) Decide(host, method, path string) Decision {
	host = hostOnly(host)
	d := a.decide(host, method, path)
	if strings.IndexByte(path, ';') >= 0 {
		if alt := a.decide(host, method, stripPathParams(path)); alt.Rule != d.Rule {
			return Decision{Policy: PolicyDeny, Rule: -1}
		}
	}
	return d
}

// stripPathParams drops the ";params" of every segment.
func stripPathParams(path string) string {
	var b strings.Builder
	for i := 0; i < len(path); i++ {
		if path[i] == ';' {
			for i+1 < len(path) && path[i+1] != '/' {
				i++
			}
			continue
		}
		b.WriteByte(path[i])
	}
	return b.String()
}

func (a *Decider) decide(host, method, path string) Decision {
	trimmed := path
	if len(path) > 1 && path[len(path)-1] == '/' {
		trimmed = path[:len(path)-1]
	}
	for i := range a.rules {
		r := &a.rules[i]
		if r.matches(host, method, path, trimmed) {
			return Decision{Policy: r.policy, Rule: i, allow: r.allow}
		}
	}
	return Decision{Policy: a.def, Rule: -1}
}

func (r *compiledRule) matches(host, method, path, trimmed string) bool {
	if len(r.methods) > 0 && !r.matchMethod(method) {
		return false
	}
	if len(r.hosts) > 0 {
		ok := false
		for _, h := range r.hosts {
			if h.match(host) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	if len(r.paths) == 0 {
		// A rule with hosts and no paths covers every path on them.
		return true
	}
	for _, p := range r.paths {
		if p.match(path) || (len(trimmed) != len(path) && p.match(trimmed)) {
			return true
		}
	}
	return false
}

func (r *compiledRule) matchMethod(method string) bool {
	if r.anyGet && strings.EqualFold(method, "HEAD") {
		return true
	}
	for _, m := range r.methods {
		if strings.EqualFold(m, method) {
			return true
		}
	}
	return false
}

// hostOnly strips the port and a trailing dot from a Host header value,
// so "App.example.com.:8080" compares as "App.example.com". It does not
// allocate.
func hostOnly(host string) string {
	if strings.HasPrefix(host, "[") {
		if i := strings.IndexByte(host, ']'); i > 0 {
			return host[:i+1]
		}
		return host
	}
	if i := strings.IndexByte(host, ':'); i >= 0 && strings.LastIndexByte(host, ':') == i {
		host = host[:i]
	}
	return strings.TrimSuffix(host, ".")
}

// Decision is the outcome of Decider.Decide.
type Decision struct {
	Policy Policy
	// Rule is the index of the matching rule, -1 for the default.
	Rule  int
	allow allowList
}

// Principal is who a request comes from: a signed-in person (Email) or a
// service token (Token), with the groups they belong to.
type Principal struct {
	// Email is the canonical address (email.Parse); empty for a token.
	Email string
	// Token is the service token's name; empty for a person.
	Token string
	// Groups are the principal's groups, for people from GroupSet.Of.
	Groups []string
}

// Admits reports whether p may pass. A person passes a rule without
// emails, domains or groups, or one that lists their address, domain or
// one of their groups. A service token passes only a rule that names it
// in tokens or lists one of its groups. Nobody passes PolicyDeny.
func (d Decision) Admits(p Principal) bool {
	if d.Policy == PolicyDeny {
		return false
	}
	return d.allow.admits(p)
}

// Permits is Admits for a person with no groups.
func (d Decision) Permits(email string) bool {
	return d.Admits(Principal{Email: email})
}

// Signup is who may sign in at all, as configured: with Open, anyone with
// a valid address; otherwise only the listed Emails, or addresses in
// Domains (exact domain, or subdomains for a "*.example.com" entry).
// Compile it once (CompileSignup) and ask the result.
type Signup struct {
	Open    bool
	Emails  []string
	Domains []string
}

// SignupPolicy is a compiled Signup; the zero value lets nobody in.
type SignupPolicy struct {
	open  bool
	allow allowList
}

// CompileSignup canonicalises the allowlist once. An entry that is not a
// valid address or domain is an error (access.allowed_emails[i],
// access.allowed_domains[i]), also with Open, so that switching to an
// allowlist later cannot lock anyone out by surprise.
func CompileSignup(s Signup) (*SignupPolicy, error) {
	var errs fieldErrors
	allow := compileAllowList(&errs, "access.allowed_emails", "access.allowed_domains", s.Emails, s.Domains)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &SignupPolicy{open: s.Open, allow: allow}, nil
}

// Allows reports whether addr (an email.Parse result) may sign in.
func (p *SignupPolicy) Allows(addr string) bool {
	if p == nil || addr == "" {
		return false
	}
	return p.open || p.allow.permits(addr)
}

// IsMethod reports whether s has a method's syntax, an RFC 9110 token.
func IsMethod(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' {
			continue
		}
		if !strings.ContainsRune("!#$%&'*+-.^_`|~", rune(c)) {
			return false
		}
	}
	return true
}
