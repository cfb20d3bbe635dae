package access

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"gatehouse/email"
)

// GroupSet is the compiled top-level groups: who belongs to which group.
// It is compiled once per configuration and read on every request; the
// zero value and nil have no groups.
type GroupSet struct {
	names   map[string]bool
	byEmail map[string][]string // canonical address → its groups, sorted
	domains []domainMember
}

// domainMember is an "@domain" member: everyone at domain (exactly, or
// below it when it starts with ".") belongs to group.
type domainMember struct {
	domain string
	group  string
}

// CompileGroups compiles groups, which maps a group name (IsName, lower
// case) to its members: addresses, or "@example.com" for everyone at a
// domain ("@*.example.com" for every subdomain). Problems are
// *FieldErrors named "groups.NAME" and "groups.NAME[i]".
func CompileGroups(groups map[string][]string) (*GroupSet, error) {
	var errs fieldErrors
	gs := &GroupSet{names: make(map[string]bool, len(groups)), byEmail: make(map[string][]string)}
	names := make([]string, 0, len(groups))
	for name := range groups {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		key := "groups." + name
		if !IsName(name) || name != strings.ToLower(name) {
			errs.addf(key, "%q is not a group name (lower-case letters, digits, '-', '_' and '.', at most 64)", name)
			continue
		}
		gs.names[name] = true
		for i, m := range groups[name] {
			if rest, ok := strings.CutPrefix(m, "@"); ok {
				d, err := canonicalDomainPattern(rest)
				if err != nil {
					errs.addf(indexKey(key, i), "%q must be an address or @domain, such as @example.com or @*.example.com", m)
					continue
				}
				gs.domains = append(gs.domains, domainMember{domain: d, group: name})
				continue
			}
			a, err := email.Parse(m)
			if err != nil {
				errs.add(indexKey(key, i), fmt.Errorf("%q must be an address or @domain: %w", m, err))
				continue
			}
			if !slices.Contains(gs.byEmail[a], name) {
				gs.byEmail[a] = append(gs.byEmail[a], name)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	for a := range gs.byEmail {
		slices.Sort(gs.byEmail[a])
	}
	return gs, nil
}

// Has reports whether name is a defined group.
func (gs *GroupSet) Has(name string) bool {
	return gs != nil && gs.names[name]
}

// Names returns the defined groups, sorted.
func (gs *GroupSet) Names() []string {
	if gs == nil {
		return nil
	}
	out := make([]string, 0, len(gs.names))
	for n := range gs.names {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// Of returns the groups of the canonical address addr, sorted, without
// duplicates; nil when it has none. The result must not be modified.
func (gs *GroupSet) Of(addr string) []string {
	if gs == nil || addr == "" {
		return nil
	}
	direct := gs.byEmail[addr]
	if len(gs.domains) == 0 {
		return direct
	}
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return direct
	}
	domain := addr[at+1:]
	var out []string
	for _, m := range gs.domains {
		match := domain == m.domain ||
			(m.domain[0] == '.' && len(domain) > len(m.domain) && strings.HasSuffix(domain, m.domain))
		if match && !slices.Contains(direct, m.group) && !slices.Contains(out, m.group) {
			out = append(out, m.group)
		}
	}
	if len(out) == 0 {
		return direct
	}
	out = append(out, direct...)
	slices.Sort(out)
	return out
}
