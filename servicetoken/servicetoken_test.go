package servicetoken

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"testing/iotest"
)

const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

// seeded is a deterministic source, so failures can be replayed.
func seeded(seed byte) *rand.ChaCha8 {
	var s [32]byte
	s[0] = seed
	return rand.NewChaCha8(s)
}

func mustNew(t testing.TB, seed byte) (string, []byte) {
	t.Helper()
	secret, hash, err := New(seeded(seed))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return secret, hash
}

func TestNew(t *testing.T) {
	secret, hash := mustNew(t, 1)
	if len(secret) != Len || Len != 52 || !strings.HasPrefix(secret, "gh_") {
		t.Fatalf("New() = %q (%d bytes), want gh_ and 49 more characters", secret, len(secret))
	}
	if strings.Trim(secret[3:], alphabet) != "" {
		t.Fatalf("New() = %q has characters outside base64url", secret)
	}
	want := sha256.Sum256([]byte(secret))
	if !bytes.Equal(hash, want[:]) || !bytes.Equal(Hash(secret), want[:]) {
		t.Fatal("hash is not the SHA-256 of the whole secret")
	}
	if !Valid(secret) {
		t.Fatal("a new token is not Valid")
	}
	other, _ := mustNew(t, 2)
	if other == secret {
		t.Fatal("two sources gave the same token")
	}
	// The default source is crypto/rand.
	a, _, errA := New(nil)
	b, _, errB := New(nil)
	if errA != nil || errB != nil || a == b || !Valid(a) {
		t.Fatalf("New(nil) = %q, %q (%v, %v)", a, b, errA, errB)
	}
}

func TestNewReadFailure(t *testing.T) {
	boom := errors.New("entropy ran out")
	if s, h, err := New(iotest.ErrReader(boom)); !errors.Is(err, boom) || s != "" || h != nil {
		t.Fatalf("New(failing reader) = %q, %x, %v; want the reader's error", s, h, err)
	}
	// A short read is an error, never a token of fewer random bytes.
	if _, _, err := New(bytes.NewReader(make([]byte, 31))); err == nil {
		t.Fatal("New accepted 31 random bytes")
	}
}

// TestTyposAreRejected: changing any one character of a token, dropping
// its last one or adding one more makes it invalid without any lookup.
func TestTyposAreRejected(t *testing.T) {
	secret, _ := mustNew(t, 3)
	for i := len(Prefix); i < len(secret); i++ {
		for _, c := range []byte{alphabet[(strings.IndexByte(alphabet, secret[i])+1)%64], alphabet[(strings.IndexByte(alphabet, secret[i])+33)%64]} {
			typo := secret[:i] + string(c) + secret[i+1:]
			if Valid(typo) {
				t.Errorf("typo at %d (%q) is Valid", i, typo)
			}
			if _, ok := Parse("Bearer " + typo); ok {
				t.Errorf("typo at %d parses", i)
			}
			if !Looks("Bearer " + typo) {
				t.Errorf("typo at %d does not Look like a token", i)
			}
		}
	}
	for _, bad := range []string{secret[:len(secret)-1], secret + "A", "GH_" + secret[3:], "gh-" + secret[3:]} {
		if Valid(bad) {
			t.Errorf("%q is Valid", bad)
		}
	}
}

func TestParseAndLooks(t *testing.T) {
	secret, _ := mustNew(t, 4)
	// A token whose body is not canonical base64url: the last of the 43
	// characters carries 2 unused bits, which must be zero.
	last := strings.IndexByte(alphabet, secret[len(Prefix)+bodyLen-1])
	noncanonical := secret[:len(Prefix)+bodyLen-1] + string(alphabet[last^1]) + secret[len(Prefix)+bodyLen:]
	tests := []struct {
		name   string
		header string
		parses bool
		looks  bool
	}{
		{"canonical", "Bearer " + secret, true, true},
		{"lower-case scheme", "bearer " + secret, true, true},
		{"upper-case scheme", "BEARER " + secret, true, true},
		{"several spaces", "Bearer    " + secret, true, true},
		{"empty", "", false, false},
		{"scheme only", "Bearer", false, false},
		{"scheme and space", "Bearer ", false, false},
		{"no space", "Bearer" + secret, false, false},
		{"the app's own bearer token", "Bearer eyJhbGciOiJIUzI1NiJ9.e30.x", false, false},
		{"the app's own opaque token", "Bearer 0123456789abcdef", false, false},
		{"basic credentials", "Basic Z2hfOnBhc3M=", false, false},
		{"token without scheme", secret, false, false},
		{"other scheme", "Token " + secret, false, false},
		{"tab after scheme", "Bearer\t" + secret, false, true},
		{"space and tab", "Bearer \t" + secret, false, true},
		{"leading space", " Bearer " + secret, false, true},
		{"trailing space", "Bearer " + secret + " ", false, true},
		{"trailing text", "Bearer " + secret + ", other", false, true},
		{"truncated", "Bearer " + secret[:40], false, true},
		{"bare prefix", "Bearer gh_", false, true},
		{"wrong checksum", "Bearer " + secret[:len(secret)-1] + "x", false, true},
		{"non-canonical base64", "Bearer " + noncanonical, false, true},
		{"padded", "Bearer " + secret + "=", false, true},
		{"NUL inside", "Bearer " + secret[:20] + "\x00" + secret[21:], false, true},
		{"upper-case prefix", "Bearer GH_" + secret[3:], false, false},
		{"unicode scheme look-alike", "Bеarer " + secret, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := Parse(tt.header)
			if ok != tt.parses {
				t.Fatalf("Parse(%q) ok = %v, want %v", tt.header, ok, tt.parses)
			}
			if ok && got != secret {
				t.Fatalf("Parse = %q, want %q", got, secret)
			}
			if !ok && got != "" {
				t.Fatalf("Parse refused but returned %q", got)
			}
			if l := Looks(tt.header); l != tt.looks {
				t.Fatalf("Looks(%q) = %v, want %v", tt.header, l, tt.looks)
			}
		})
	}
}

// FuzzParse: Parse never panics; whatever it accepts is a Valid token
// that the header carries verbatim after the scheme and spaces, that
// Looks like a token, and that parses the same in canonical form.
func FuzzParse(f *testing.F) {
	secret, _ := mustNew(f, 5)
	for _, s := range []string{
		"Bearer " + secret, "bearer  " + secret, "Bearer\t" + secret, "Bearer " + secret + " ",
		"Bearer gh_", "Bearer x", "Basic abc", "", "Bearer " + secret[:51] + "A",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		looks := Looks(header)
		got, ok := Parse(header)
		if !ok {
			if got != "" {
				t.Fatalf("Parse(%q) refused but returned %q", header, got)
			}
			return
		}
		if !looks {
			t.Fatalf("Parse(%q) accepted a header that does not Look like a token", header)
		}
		if !Valid(got) || len(got) != Len || !strings.HasSuffix(header, got) {
			t.Fatalf("Parse(%q) = %q: not a valid token taken from the end of the header", header, got)
		}
		if scheme := strings.TrimRight(strings.TrimSuffix(header, got), " "); !strings.EqualFold(scheme, "Bearer") {
			t.Fatalf("Parse(%q) accepted scheme %q", header, scheme)
		}
		if again, ok := Parse("Bearer " + got); !ok || again != got {
			t.Fatalf("canonical form of %q does not parse", got)
		}
	})
}
