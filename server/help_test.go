package server

import (
	"bytes"
	"encoding/binary"
	"image/png"
	"net/http"
	"strings"
	"testing"
)

// TestFaviconIsAnIcon: /favicon.ico answers 200 on every server (pages or not) with a
// well-formed ICO whose one image is a decodable 32×32 PNG, and every page names it.
func TestFaviconIsAnIcon(t *testing.T) {
	t.Parallel()
	h := newWebHarness(t, webOptions{entra: newFakeEntra(t).config()})
	p := webFetch(t, h.browser(t), "GET", h.ts.URL+"/favicon.ico", nil, nil)
	if p.status != http.StatusOK || p.header.Get("Content-Type") != "image/x-icon" || p.header.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("/favicon.ico: %d %q", p.status, p.header.Get("Content-Type"))
	}
	b := []byte(p.body)
	// ICONDIR (reserved 0, type 1, count 1), then one ICONDIRENTRY pointing at the image.
	if len(b) < 22 || binary.LittleEndian.Uint16(b[0:]) != 0 || binary.LittleEndian.Uint16(b[2:]) != 1 || binary.LittleEndian.Uint16(b[4:]) != 1 {
		t.Fatalf("not an ICO header: % x", b[:min(len(b), 22)])
	}
	size, off := binary.LittleEndian.Uint32(b[14:]), binary.LittleEndian.Uint32(b[18:])
	if int(off)+int(size) != len(b) {
		t.Fatalf("the ICO entry (%d bytes at %d) does not match the file (%d bytes)", size, off, len(b))
	}
	img, err := png.Decode(bytes.NewReader(b[off:]))
	if err != nil || img.Bounds().Dx() != int(b[6]) || img.Bounds().Dy() != int(b[7]) || b[6] != 32 {
		t.Fatalf("the icon's image: %v, %v", img, err)
	}

	// Without the people-facing pages (an MCP-only server) it is there too.
	if rec := newHarness(t, nil).do(t, "GET", "/favicon.ico", nil, ""); rec.Code != http.StatusOK || !bytes.Equal(rec.Body.Bytes(), b) {
		t.Errorf("an MCP-only server's /favicon.ico: %d", rec.Code)
	}
}

// TestHelpAndSupportLinks: every page a person sees links to the help page, support
// and the security policy; the status page link appears exactly when
// FLOWSTUDIO_STATUS_URL is set; the help page explains report_bug and names the
// security contact.
func TestHelpAndSupportLinks(t *testing.T) {
	t.Parallel()
	const status = "https://status.contoso.example/flowstudio"
	for _, withStatus := range []bool{false, true} {
		fe := newFakeEntra(t)
		h := newWebHarness(t, webOptions{entra: fe.config(), settings: func(s *Settings) {
			s.SecurityContact = "mailto:security@contoso.com"
			if withStatus {
				s.StatusURL = status
			}
		}})
		c := h.browser(t)
		pages := []webPage{webFetch(t, c, "GET", h.ts.URL+"/", nil, nil), webFetch(t, c, "GET", h.ts.URL+"/help", nil, nil), h.signIn(t, c),
			webFetch(t, c, "GET", h.ts.URL+"/logout", nil, nil), webFetch(t, c, "GET", h.ts.URL+"/security", nil, nil),
			webFetch(t, c, "GET", h.ts.URL+"/callback?error=access_denied", nil, nil)}
		for _, p := range pages {
			for _, link := range []string{`<a href="/help" id="docs-link">`, `<a href="/help#support" id="support-link">`,
				`<a href="/security" id="security-link">`, `<link rel="icon" href="/favicon.ico"`} {
				if !strings.Contains(p.body, link) {
					t.Errorf("%s (%d) lacks %s", p.url.Path, p.status, link)
				}
			}
			if got := strings.Contains(p.body, `<a href="`+status+`" id="status-link"`); got != withStatus {
				t.Errorf("%s: status link shown %v with FLOWSTUDIO_STATUS_URL set %v", p.url.Path, got, withStatus)
			}
		}
		help := pages[1]
		if help.status != http.StatusOK || help.header.Get("Content-Security-Policy") != pageCSP {
			t.Fatalf("/help: %d, CSP %q", help.status, help.header.Get("Content-Security-Policy"))
		}
		for _, want := range []string{"report_bug", `action: "status"`, `"append"`, `id="support"`,
			`href="mailto:security@contoso.com?subject=%5BSECURITY%5D%20"`} {
			if !strings.Contains(help.body, want) {
				t.Errorf("the help page lacks %q", want)
			}
		}
		if got := strings.Contains(help.body, `id="help-status"`); got != withStatus {
			t.Errorf("help page status section shown %v with the setting %v", got, withStatus)
		}
	}
}

func TestStatusURLSetting(t *testing.T) {
	t.Parallel()
	load := func(v string) (Settings, error) {
		return LoadSettings(func(k string) string {
			if k == "FLOWSTUDIO_STATUS_URL" {
				return v
			}
			return ""
		})
	}
	if s, err := load("https://status.contoso.example/"); err != nil || s.StatusURL != "https://status.contoso.example/" {
		t.Errorf("a good status URL: %q, %v", s.StatusURL, err)
	}
	if s, err := load(""); err != nil || s.StatusURL != "" {
		t.Errorf("unset: %q, %v", s.StatusURL, err)
	}
	for _, bad := range []string{"http://status.contoso.example", "status.contoso.example", "javascript:alert(1)", "https://",
		`https://status.contoso.example/"onmouseover="x`, "https://status.contoso.example/\nx"} {
		if s, err := load(bad); err == nil || !strings.Contains(err.Error(), "FLOWSTUDIO_STATUS_URL") {
			t.Errorf("%q accepted as %q (%v)", bad, s.StatusURL, err)
		}
	}
}
