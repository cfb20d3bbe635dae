package config

import (
	"errors"
	"fmt"
)

// keyError is one problem, tied to the dotted key (or environment variable)
// it concerns. Messages never repeat the value of a key, so a secret given
// in the wrong place does not end up in a log.
type keyError struct {
	key string
	err error
}

func (e *keyError) Error() string { return e.key + ": " + e.err.Error() }

func (e *keyError) Unwrap() error { return e.err }

// problems collects at most one problem per key, in the order found, so a
// value that failed to parse is not reported again by a range check.
type problems struct {
	list   []error
	failed map[string]bool
}

func newProblems() *problems {
	return &problems{failed: make(map[string]bool)}
}

func (p *problems) add(key string, err error) {
	if p.failed[key] || p.ancestorFailed(key) {
		return
	}
	p.failed[key] = true
	p.list = append(p.list, &keyError{key: key, err: err})
}

func (p *problems) addf(key, format string, args ...any) {
	p.add(key, fmt.Errorf(format, args...))
}

// ancestorFailed reports whether a section or list holding key already has
// a problem: when "server" is not a mapping, its keys are not reported again.
func (p *problems) ancestorFailed(key string) bool {
	for i := len(key) - 1; i > 0; i-- {
		if (key[i] == '.' || key[i] == '[') && p.failed[key[:i]] {
			return true
		}
	}
	return false
}

// ok reports whether none of keys has a problem yet; cross-key checks use it
// to stay quiet about values that are already known to be wrong.
func (p *problems) ok(keys ...string) bool {
	for _, k := range keys {
		if p.failed[k] {
			return false
		}
	}
	return true
}

// err joins every problem, one per line, or returns nil.
func (p *problems) err() error {
	return errors.Join(p.list...)
}
