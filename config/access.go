package config

import (
	"errors"
	"fmt"

	"gatehouse/access"
)

// AccessRules converts the access section to the access package's input,
// the one form that both check-config and serve compile (with
// access.Compile and access.CompileSignup). Errors name their key.
func (a Access) AccessRules() (rules []access.Rule, def access.Policy, signup access.Signup, err error) {
	var errs []error
	def, perr := access.ParsePolicy(a.Default)
	if perr != nil {
		errs = append(errs, &access.FieldError{Key: "access.default", Err: errors.New("must be one of authenticated, public, deny")})
	}
	rules = make([]access.Rule, 0, len(a.Rules))
	for i, r := range a.Rules {
		p, perr := access.ParsePolicy(r.Policy)
		if perr != nil {
			msg := "must be one of public, authenticated, deny"
			if r.Policy == "" {
				msg = "required: one of public, authenticated, deny"
			}
			errs = append(errs, &access.FieldError{Key: fmt.Sprintf("access.rules[%d].policy", i), Err: errors.New(msg)})
			// Compile the rest as authenticated, so every other problem of
			// the rule is still reported.
			p = access.PolicyAuthenticated
		}
		rules = append(rules, access.Rule{
			Paths: r.Paths, Methods: r.Methods, Hosts: r.Hosts, Policy: p,
			Emails: r.Emails, Domains: r.Domains, Groups: r.Groups, Tokens: r.Tokens,
		})
	}
	signup = access.Signup{Open: a.Signup == "open", Emails: a.AllowedEmails, Domains: a.AllowedDomains}
	return rules, def, signup, errors.Join(errs...)
}

// validateAccessRules compiles the access section with the code serve
// uses and reports its problems under their keys.
func validateAccessRules(p *problems, a Access, groups map[string][]string) {
	rules, def, signup, err := a.AccessRules()
	addFieldErrors(p, err)
	gs, err := access.CompileGroups(groups)
	if err != nil {
		addFieldErrors(p, err)
	}
	if _, err := access.Compile(rules, def, gs); err != nil {
		addFieldErrors(p, err)
	}
	if _, err := access.CompileSignup(signup); err != nil {
		addFieldErrors(p, err)
	}
}

// addFieldErrors files access's problems under their own keys.
func addFieldErrors(p *problems, err error) {
	if err == nil {
		return
	}
	var list []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		list = j.Unwrap()
	} else {
		list = []error{err}
	}
	for _, e := range list {
		var fe *access.FieldError
		if errors.As(e, &fe) {
			p.add(fe.Key, fe.Err)
		} else {
			p.add("access", e)
		}
	}
}
