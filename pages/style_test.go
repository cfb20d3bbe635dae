package pages

import (
	"strings"
	"testing"
)

func TestThemeContrast(t *testing.T) {
	cases := []struct {
		name, accent string
		light        string // expected light accent when it needs no change
	}{
		{"default blue", "#2563eb", "#2563eb"},
		{"dark teal", "#0f766e", "#0f766e"},
		{"short form", "#00f", "#0000ff"},
		{"upper case", "#2563EB", "#2563eb"},
		{"yellow", "#ffff00", ""},
		{"white", "#ffffff", ""},
		{"black", "#000000", "#000000"},
		{"navy", "#000080", "#000080"},
		{"mid grey", "#777777", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			th, err := newTheme(c.accent)
			if err != nil {
				t.Fatal(err)
			}
			if c.light != "" && th.light.accent != c.light {
				t.Errorf("light accent = %s, want %s unchanged", th.light.accent, c.light)
			}
			checks := []struct {
				what string
				a, b string
			}{
				{"light accent on page background", th.light.accent, lightBackground().hex()},
				{"light accent on white card", th.light.accent, "#ffffff"},
				{"light button text", th.light.onAccent, th.light.accent},
				{"dark accent on card", th.dark.accent, darkSurface().hex()},
				{"dark accent on page background", th.dark.accent, "#111827"},
				{"dark button text", th.dark.onAccent, th.dark.accent},
			}
			for _, k := range checks {
				a, err := parseHex(k.a)
				if err != nil {
					t.Fatal(err)
				}
				b, err := parseHex(k.b)
				if err != nil {
					t.Fatal(err)
				}
				if got := contrast(a, b); got < minContrast {
					t.Errorf("%s: %s on %s has contrast %.2f, want >= %.1f", k.what, k.a, k.b, got, minContrast)
				}
			}
			css := th.css()
			if !strings.Contains(css, "--brand: "+strings.ToLower(c.accent)+";") {
				t.Errorf("css lacks the configured accent %s:\n%s", c.accent, css)
			}
		})
	}
}

func TestStylesheetBackgroundsMatchTheme(t *testing.T) {
	b, err := embedded.ReadFile("static/style.css")
	if err != nil {
		t.Fatal(err)
	}
	css := string(b)
	for _, want := range []string{"--bg: " + lightBackground().hex() + ";", "--surface: " + darkSurface().hex() + ";", "--text: " + darkText().hex() + ";"} {
		if !strings.Contains(css, want) {
			t.Errorf("style.css lacks %q, which style.go checks the accent against", want)
		}
	}
}

func TestContrastKnownValues(t *testing.T) {
	cases := []struct {
		name, a, b string
		want       float64
	}{
		{"black on white", "#000000", "#ffffff", 21},
		{"same color", "#777777", "#777777", 1},
		{"grey on white", "#767676", "#ffffff", 4.54},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a, _ := parseHex(c.a)
			b, _ := parseHex(c.b)
			if got := contrast(a, b); got < c.want-0.01 || got > c.want+0.01 {
				t.Errorf("contrast(%s, %s) = %.3f, want %.2f", c.a, c.b, got, c.want)
			}
		})
	}
}
