package pages

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// minContrast is the WCAG AA contrast ratio for normal text.
const minContrast = 4.5

// Colors of static/style.css that derived colors are checked against; keep
// them in step with the stylesheet.
func lightBackground() rgb { return rgb8(0xf3, 0xf4, 0xf6) } // --bg, light: the darkest surface links sit on
func darkSurface() rgb     { return rgb8(0x1f, 0x29, 0x37) } // --surface, dark: the lightest surface links sit on
func darkText() rgb        { return rgb8(0x11, 0x18, 0x27) } // --text, light
func white() rgb           { return rgb8(0xff, 0xff, 0xff) }

// palette is the accent color of one color scheme: accent for links, focus
// rings and button backgrounds, onAccent for text on buttons.
type palette struct {
	accent, onAccent string
}

// theme holds the configured accent color and what is derived from it so
// that text stays readable (WCAG AA) in both color schemes.
type theme struct {
	brand       string
	light, dark palette
}

func newTheme(accent string) (theme, error) {
	c, err := parseHex(accent)
	if err != nil {
		return theme{}, err
	}
	light := c
	for contrast(light, lightBackground()) < minContrast {
		light = mix(light, rgb{}, 0.05)
	}
	dark := c
	for contrast(dark, darkSurface()) < minContrast {
		dark = mix(dark, rgb{1, 1, 1}, 0.05)
	}
	return theme{
		brand: strings.ToLower(accent),
		light: palette{accent: light.hex(), onAccent: onColor(light)},
		dark:  palette{accent: dark.hex(), onAccent: onColor(dark)},
	}, nil
}

// css returns the custom properties the embedded stylesheet reads.
func (t theme) css() string {
	return fmt.Sprintf(`/* Accent color, generated from the configuration. */
:root {
  --brand: %s;
  --accent: %s;
  --on-accent: %s;
}
@media (prefers-color-scheme: dark) {
  :root {
    --accent: %s;
    --on-accent: %s;
  }
}

`, t.brand, t.light.accent, t.light.onAccent, t.dark.accent, t.dark.onAccent)
}

// onColor picks white or near-black text, whichever reads better on c.
func onColor(c rgb) string {
	if contrast(c, white()) >= contrast(c, darkText()) {
		return white().hex()
	}
	return darkText().hex()
}

// rgb is an sRGB color with channels in [0, 1].
type rgb struct{ r, g, b float64 }

func parseHex(s string) (rgb, error) {
	h, ok := strings.CutPrefix(s, "#")
	if !ok || (len(h) != 3 && len(h) != 6) {
		return rgb{}, fmt.Errorf("%q is not a color of the form #rgb or #rrggbb", s)
	}
	if len(h) == 3 {
		h = string([]byte{h[0], h[0], h[1], h[1], h[2], h[2]})
	}
	v, err := strconv.ParseUint(h, 16, 32)
	if err != nil {
		return rgb{}, fmt.Errorf("%q is not a color of the form #rgb or #rrggbb", s)
	}
	return rgb8(uint8(v>>16), uint8(v>>8), uint8(v)), nil
}

func rgb8(r, g, b uint8) rgb {
	return rgb{float64(r) / 255, float64(g) / 255, float64(b) / 255}
}

func (c rgb) hex() string {
	ch := func(v float64) int { return int(math.Round(math.Max(0, math.Min(1, v)) * 255)) }
	return fmt.Sprintf("#%02x%02x%02x", ch(c.r), ch(c.g), ch(c.b))
}

// mix moves c the fraction f of the way towards o.
func mix(c, o rgb, f float64) rgb {
	return rgb{c.r + (o.r-c.r)*f, c.g + (o.g-c.g)*f, c.b + (o.b-c.b)*f}
}

// luminance is the WCAG 2 relative luminance.
func (c rgb) luminance() float64 {
	lin := func(v float64) float64 {
		if v <= 0.04045 {
			return v / 12.92
		}
		return math.Pow((v+0.055)/1.055, 2.4)
	}
	return 0.2126*lin(c.r) + 0.7152*lin(c.g) + 0.0722*lin(c.b)
}

// contrast is the WCAG 2 contrast ratio of a and b, from 1 to 21.
func contrast(a, b rgb) float64 {
	la, lb := a.luminance(), b.luminance()
	if la < lb {
		la, lb = lb, la
	}
	return (la + 0.05) / (lb + 0.05)
}
