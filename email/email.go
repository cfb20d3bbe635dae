// Package email parses email addresses strictly into the one canonical form
// Gatehouse stores, compares and sends codes to.
package email

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/idna"

	"gatehouse/safeurl"
)

// ErrBadAddress is returned for anything that is not exactly one plain
// email address Gatehouse can send a code to.
var ErrBadAddress = errors.New("invalid email address")

// Parse strictly parses a bare email address and returns its
// canonical form: the whole address lower-cased, the domain in lower-case
// ASCII (an IDN domain is mapped with the IDNA lookup profile and returned
// as punycode "xn--…" labels).
//
// Surrounding ASCII spaces are trimmed; anything else that is not a plain
// "local@domain" is refused: empty input, more than 254 bytes, a local part
// over 64 bytes or outside the dot-atom syntax (quoted strings, comments,
// display names, angle brackets, lists with "," or ";", and the old relay
// characters "%" and "!" are all refused), any whitespace or control
// character (CR, LF, NUL, …), zero or several "@", a non-ASCII local part
// (SMTPUTF8 is not supported), IP-literal domains and domains whose last
// label is numeric, a domain without a dot or with a trailing dot, labels
// that break the hyphen or length rules, IDN labels holding symbols or
// punctuation (emoji, "⁄", the middle dot), and IDN labels that mix scripts
// (Latin "p" with Cyrillic "а") or spell a Latin-looking word entirely in
// Cyrillic or Greek lookalikes under a non-Cyrillic, non-Greek TLD.
// Japanese, Chinese and Korean labels may mix Han and kana, bopomofo or
// hangul with Latin, as Unicode's "highly restrictive" profile allows.
func Parse(s string) (string, error) {
	s = strings.Trim(s, " ")
	if s == "" {
		return "", badAddress("empty")
	}
	if len(s) > 254 {
		return "", badAddress("longer than 254 bytes")
	}
	for _, r := range s {
		switch {
		case r == utf8.RuneError:
			return "", badAddress("invalid UTF-8")
		case unicode.IsControl(r) || unicode.Is(unicode.Cf, r):
			return "", badAddress("control or format character")
		case unicode.IsSpace(r):
			return "", badAddress("whitespace")
		case strings.ContainsRune(`<>()[]\,;:"`, r):
			return "", badAddress("display name, comment, quoting or list")
		}
	}
	at := strings.IndexByte(s, '@')
	if at < 0 || strings.IndexByte(s[at+1:], '@') >= 0 {
		return "", badAddress("want exactly one @")
	}
	local, domain := s[:at], s[at+1:]
	if err := checkLocalPart(local); err != nil {
		return "", err
	}
	ascii, err := CanonicalDomain(domain)
	if err != nil {
		return "", err
	}
	out := strings.ToLower(local) + "@" + ascii
	if len(out) > 254 {
		return "", badAddress("longer than 254 bytes")
	}
	return out, nil
}

// badAddress wraps ErrBadAddress with the reason, which never quotes the
// address.
func badAddress(reason string) error {
	return fmt.Errorf("%w: %s", ErrBadAddress, reason)
}

// checkLocalPart accepts an unquoted dot-atom of at most 64 ASCII bytes.
func checkLocalPart(local string) error {
	if local == "" {
		return badAddress("empty local part")
	}
	if len(local) > 64 {
		return badAddress("local part longer than 64 bytes")
	}
	if local[0] == '.' || local[len(local)-1] == '.' || strings.Contains(local, "..") {
		return badAddress("misplaced dot in local part")
	}
	for i := 0; i < len(local); i++ {
		c := local[i]
		if c >= utf8.RuneSelf {
			return badAddress("non-ASCII local part")
		}
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			strings.IndexByte(".#$&'*+-/=?^_`{|}~", c) >= 0 {
			continue
		}
		return badAddress("character not allowed in local part")
	}
	return nil
}

// domainProfile is the IDNA processing used for address domains: the
// lookup mapping (case and width folding), bidi and joiner rules, hyphen
// rules and DNS lengths.
func domainProfile() *idna.Profile {
	return idna.New(
		idna.MapForLookup(),
		idna.BidiRule(),
		idna.Transitional(false),
		idna.VerifyDNSLength(true),
	)
}

// CanonicalDomain returns the lower-case ASCII form of a mail domain, the
// form Parse gives an address's domain, or ErrBadAddress.
func CanonicalDomain(domain string) (string, error) {
	if domain == "" {
		return "", badAddress("empty domain")
	}
	if strings.HasSuffix(domain, ".") {
		return "", badAddress("trailing dot in domain")
	}
	profile := domainProfile()
	ascii, err := profile.ToASCII(domain)
	if err != nil {
		return "", badAddress("invalid domain")
	}
	ascii = strings.ToLower(ascii)
	labels := strings.Split(ascii, ".")
	if len(labels) < 2 {
		return "", badAddress("domain without a dot")
	}
	if isDigits(labels[len(labels)-1]) {
		return "", badAddress("numeric top-level label")
	}
	unicodeLabels := make([]string, len(labels))
	for i, label := range labels {
		if !safeurl.IsHostLabel(label) {
			return "", badAddress("invalid domain label")
		}
		unicodeLabels[i] = label
		if len(label) >= 4 && label[2] == '-' && label[3] == '-' {
			if !strings.HasPrefix(label, "xn--") {
				return "", badAddress("invalid domain label")
			}
			u, err := profile.ToUnicode(label)
			if err != nil {
				return "", badAddress("invalid international domain label")
			}
			unicodeLabels[i] = u
		}
	}
	last := len(unicodeLabels) - 1
	tld := labelScripts(unicodeLabels[last])
	for i, u := range unicodeLabels {
		if isASCII(u) {
			continue
		}
		for _, r := range u {
			if r >= utf8.RuneSelf && !unicode.In(r, unicode.L, unicode.M, unicode.N) {
				return "", badAddress("symbol or punctuation in domain label")
			}
		}
		scripts := labelScripts(u)
		if i == last {
			tld = 0 // a TLD cannot excuse itself
		}
		if !allowedScriptMix(scripts) {
			return "", badAddress("domain label mixes scripts")
		}
		if wholeScriptConfusable(u, scripts, tld) {
			return "", badAddress("domain label imitates a Latin name")
		}
	}
	return ascii, nil
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// scriptSet is a set of the scripts a label's letters belong to.
type scriptSet uint16

const (
	scriptLatin scriptSet = 1 << iota
	scriptCyrillic
	scriptGreek
	scriptHan
	scriptHiragana
	scriptKatakana
	scriptHangul
	scriptBopomofo
	scriptOther // any other script; two different ones are caught below
	scriptMany  // more than one script outside the named ones
)

// labelScripts returns the scripts of the letters in label. Common and
// inherited characters (digits, hyphen, combining marks, the prolonged
// sound mark) belong to no script and so mix with any.
func labelScripts(label string) scriptSet {
	named := []struct {
		table *unicode.RangeTable
		bit   scriptSet
	}{
		{unicode.Latin, scriptLatin},
		{unicode.Cyrillic, scriptCyrillic},
		{unicode.Greek, scriptGreek},
		{unicode.Han, scriptHan},
		{unicode.Hiragana, scriptHiragana},
		{unicode.Katakana, scriptKatakana},
		{unicode.Hangul, scriptHangul},
		{unicode.Bopomofo, scriptBopomofo},
	}
	var set scriptSet
	var other *unicode.RangeTable
	for _, r := range label {
		if unicode.In(r, unicode.Common, unicode.Inherited) {
			continue
		}
		found := false
		for _, n := range named {
			if unicode.Is(n.table, r) {
				set |= n.bit
				found = true
				break
			}
		}
		if found {
			continue
		}
		t := scriptOf(r)
		if set&scriptOther != 0 && t != other {
			set |= scriptMany
		}
		other = t
		set |= scriptOther
	}
	return set
}

// scriptOf returns the script table r belongs to, or nil.
func scriptOf(r rune) *unicode.RangeTable {
	for name, t := range unicode.Scripts {
		if name != "Common" && name != "Inherited" && unicode.Is(t, r) {
			return t
		}
	}
	return nil
}

// allowedScriptMix reports whether the scripts in set may share one label:
// a single script, or one of the combinations of Unicode's highly
// restrictive profile (Latin with Han and Japanese kana, with Han and
// bopomofo, or with Han and hangul).
func allowedScriptMix(set scriptSet) bool {
	if set&scriptMany != 0 {
		return false
	}
	if set&(set-1) == 0 {
		return true
	}
	for _, ok := range []scriptSet{
		scriptLatin | scriptHan | scriptHiragana | scriptKatakana,
		scriptLatin | scriptHan | scriptBopomofo,
		scriptLatin | scriptHan | scriptHangul,
	} {
		if set&^ok == 0 {
			return true
		}
	}
	return false
}

// Letters that look like Latin ones, in the lower case IDNA mapping leaves.
const (
	cyrillicLatinLookalikes = "асԁеһіјӏорԛѕԝхуъьҽпгѵѡкмнтвз"
	greekLatinLookalikes    = "αικνορτυχϲϳ"
)

// wholeScriptConfusable reports whether a Cyrillic-only or Greek-only label
// is spelt entirely with letters that look Latin ("аррӏе"), under a TLD
// not itself in that script, the way browsers decide to show punycode.
func wholeScriptConfusable(label string, scripts, tld scriptSet) bool {
	var lookalikes string
	switch {
	case scripts == scriptCyrillic && tld != scriptCyrillic:
		lookalikes = cyrillicLatinLookalikes
	case scripts == scriptGreek && tld != scriptGreek:
		lookalikes = greekLatinLookalikes
	default:
		return false
	}
	for _, r := range label {
		if unicode.IsLetter(r) && !strings.ContainsRune(lookalikes, r) {
			return false
		}
	}
	return true
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}
