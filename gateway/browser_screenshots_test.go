package gateway

import (
	"bytes"
	"context"
	"image"
	"image/png"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"gatehouse/access"
)

// screenshotsDir is where GATEHOUSE_SCREENSHOTS=1 writes the pictures that
// the documentation shows; other runs write them to a temporary directory
// and only check them.
const screenshotsDir = "../docs/screenshots"

// shotVariant is one device and color scheme a page is pictured in.
type shotVariant struct {
	name string
	opts tabOptions
}

func shotVariants() []shotVariant {
	return []shotVariant{
		{"desktop-light", tabOptions{}},
		{"desktop-dark", tabOptions{dark: true}},
		{"phone-light", phone375},
		{"phone-dark", tabOptions{width: phone375.width, height: phone375.height, phone: true, dark: true}},
	}
}

// browserScreenshots pictures every page a visitor meets, on a desktop and
// a 375 px phone, in light and dark, and checks each picture: its size, and
// that the dark scheme really is dark and the light one light.
func browserScreenshots(t *testing.T, c *chrome) {
	dir := t.TempDir()
	if os.Getenv("GATEHOUSE_SCREENSHOTS") == "1" {
		dir = screenshotsDir
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadURL, _ := url.Parse("http://" + closed.Addr().String())
	_ = closed.Close()
	clk := newClock(time.Now())
	h := newHarness(t, func(o *Options) {
		o.Now = clk.Now
		o.Settings.OTP.ResendCooldown = time.Minute
		o.Settings.Rules = append(o.Settings.Rules,
			access.Rule{Paths: []string{"/admin/**"}, Policy: access.PolicyAuthenticated, Emails: []string{"boss@example.com"}})
		o.Routes = []Route{{PathPrefix: "/reports", Upstream: deadURL}}
	})

	b := h.newTab(c, tabOptions{})
	shoot := func(name string) {
		t.Helper()
		for _, v := range shotVariants() {
			b.emulate(v.opts)
			file := filepath.Join(dir, name+"-"+v.name+".png")
			if err := os.WriteFile(file, b.screenshot(), 0o644); err != nil {
				t.Fatal(err)
			}
			checkShot(t, file, v.opts)
			b.checkA11y(name + ", " + v.name)
		}
		b.emulate(tabOptions{})
	}

	b.open("/.gatehouse/login?rd=/dashboard")
	shoot("login")
	b.requestCode("ana@example.com")
	shoot("code")
	msg := h.mail.WaitFor(t, "ana@example.com", 1)
	wrong := "000000"
	if msg.Code() == wrong {
		wrong = "111111"
	}
	if st := b.enterCode(wrong); st != 401 {
		t.Fatalf("wrong code: status %d", st)
	}
	shoot("code-wrong")
	b.open(strings.TrimPrefix(msg.Link(), h.URL))
	shoot("confirm")
	if st := b.click("form[action$='/link'] button"); st != 200 {
		t.Fatalf("confirm: status %d", st)
	}

	// A second device, so that the account page lists two sessions; it
	// asks for its code after the resend cooldown.
	clk.Advance(2 * time.Minute)
	phone := h.newTab(c, tabOptions{
		width: phone375.width, height: phone375.height, phone: true,
		userAgent: "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
	})
	phone.open("/.gatehouse/login")
	phone.requestCode("ana@example.com")
	if st := phone.enterCode(h.mail.WaitFor(t, "ana@example.com", 2).Code()); st != 200 {
		t.Fatalf("second device: status %d", st)
	}

	b.open("/.gatehouse/account")
	shoot("account")
	b.open("/admin/users")
	shoot("forbidden")
	b.open("/reports/weekly")
	shoot("unreachable")

	ko := h.newTab(c, tabOptions{acceptLanguage: "ko-KR,ko"})
	ko.open("/.gatehouse/login?rd=/dashboard")
	ko.requestCode("minji@example.com")
	for _, v := range shotVariants()[2:] {
		ko.emulate(v.opts)
		file := filepath.Join(dir, "code-ko-"+v.name+".png")
		if err := os.WriteFile(file, ko.screenshot(), 0o644); err != nil {
			t.Fatal(err)
		}
		checkShot(t, file, v.opts)
	}
}

// emulate switches the tab to another device and color scheme without
// reloading the page.
func (b *tab) emulate(o tabOptions) {
	b.t.Helper()
	o = o.withDefaults()
	var vopts []chromedp.EmulateViewportOption
	if o.phone {
		vopts = append(vopts, chromedp.EmulatePortrait, chromedp.EmulateMobile, chromedp.EmulateScale(2))
	}
	b.do("emulate",
		chromedp.EmulateViewport(o.width, o.height, vopts...),
		callAction(emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{
				{Name: "prefers-color-scheme", Value: o.scheme()},
				// No colour transitions: a switch of scheme takes effect at
				// once, and screenshots never catch a colour half-way.
				{Name: "prefers-reduced-motion", Value: "reduce"},
			},
		}),
	)
}

// screenshot captures the whole page: the viewport, or more when the page
// is taller. The caret and the focus ring are hidden first, so that the
// pictures do not depend on timing.
func (b *tab) screenshot() []byte {
	b.t.Helper()
	eval[bool](b, `(() => { if (document.activeElement) document.activeElement.blur(); return true; })()`)
	width := eval[float64](b, "window.innerWidth")
	height := eval[float64](b, "Math.max(window.innerHeight, document.documentElement.scrollHeight)")
	data, err := chromedp.Run(b.ctx, func(ctx context.Context, tg *chromedp.Target) ([]byte, error) {
		r, err := cdp.Call(ctx, tg, page.CaptureScreenshot, page.CaptureScreenshotParams{
			Format:                page.CaptureScreenshotFormatPng,
			CaptureBeyondViewport: ptrTo(true),
			FromSurface:           ptrTo(true),
			Clip:                  &page.Viewport{X: 0, Y: 0, Width: width, Height: height, Scale: 1},
		})
		if err != nil {
			return nil, err
		}
		return r.Data, nil
	})
	if err != nil {
		b.t.Fatalf("screenshot: %v", err)
	}
	return data
}

func ptrTo[T any](v T) *T { return &v }

// checkShot decodes a picture and checks its width and that its top-left
// corner (page background) matches the color scheme.
func checkShot(t *testing.T, file string, o tabOptions) {
	t.Helper()
	o = o.withDefaults()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	wantWidth := int(o.width)
	if o.phone {
		wantWidth *= 2
	}
	if got := img.Bounds().Dx(); got != wantWidth {
		t.Errorf("%s: %d px wide, want %d", file, got, wantWidth)
	}
	if l := cornerLuminance(img); o.dark && l > 0.25 || !o.dark && l < 0.75 {
		t.Errorf("%s: background luminance %.2f does not fit the %s scheme", file, l, o.scheme())
	}
}

// cornerLuminance is the mean luminance (0 black to 1 white) of a small
// patch below the brand stripe at the top-left corner.
func cornerLuminance(img image.Image) float64 {
	b := img.Bounds()
	var sum float64
	n := 0
	for y := b.Min.Y + 12; y < b.Min.Y+20; y++ {
		for x := b.Min.X + 2; x < b.Min.X+10; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			sum += (0.2126*float64(r) + 0.7152*float64(g) + 0.0722*float64(bl)) / 0xffff
			n++
		}
	}
	return sum / float64(n)
}
