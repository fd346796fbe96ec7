package server

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestSecurityTxtFollowsRFC9116 checks the served file field by field against RFC
// 9116: served over the site at /.well-known/security.txt as text/plain with
// charset utf-8 (3), every line a comment or "Field: value" (4), Contact and
// Expires present (2.5.3, 2.5.5), Expires exactly once, an RFC 3339 time in the
// future and less than a year ahead, Preferred-Languages, Policy and Canonical
// once each (2.5.8, 2.5.7, 2.5.2), Canonical naming the URI it was fetched from,
// and every URI field https (or mailto: for Contact).
func TestSecurityTxtFollowsRFC9116(t *testing.T) {
	t.Parallel()
	fe := newFakeEntra(t)
	h := newWebHarness(t, webOptions{entra: fe.config(), settings: func(s *Settings) { s.SecurityContact = "mailto:security@contoso.com" }})
	p := webFetch(t, h.browser(t), "GET", h.ts.URL+"/.well-known/security.txt", nil, nil)
	if p.status != 200 {
		t.Fatalf("status %d: %s", p.status, p.body)
	}
	if ct := p.header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
		t.Errorf("Content-Type %q, want text/plain; charset=utf-8", ct)
	}
	fields := map[string][]string{}
	line := regexp.MustCompile(`^([A-Za-z0-9-]+): (\S.*)$`)
	for _, l := range strings.Split(strings.TrimRight(p.body, "\n"), "\n") {
		if strings.HasPrefix(l, "#") {
			continue
		}
		m := line.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("line %q is neither a comment nor a field", l)
		}
		fields[strings.ToLower(m[1])] = append(fields[strings.ToLower(m[1])], m[2])
	}
	once := func(name string) string {
		if len(fields[name]) != 1 {
			t.Fatalf("%s appears %d times, want once: %q", name, len(fields[name]), p.body)
		}
		return fields[name][0]
	}
	if c := fields["contact"]; len(c) == 0 || c[0] != "mailto:security@contoso.com" {
		t.Errorf("Contact = %q", c)
	}
	exp, err := time.Parse(time.RFC3339, once("expires"))
	if err != nil {
		t.Fatalf("Expires is not RFC 3339: %v", err)
	}
	if now := time.Now(); !exp.After(now) || exp.After(now.AddDate(1, 0, 0)) {
		t.Errorf("Expires %s is not in the future and within a year", exp)
	}
	if once("preferred-languages") != "en" {
		t.Errorf("Preferred-Languages = %q", fields["preferred-languages"])
	}
	if got := once("canonical"); got != h.ts.URL+"/.well-known/security.txt" {
		t.Errorf("Canonical = %q, want the URI it was fetched from", got)
	}
	policy := once("policy")
	if policy != h.ts.URL+"/security" {
		t.Errorf("Policy = %q", policy)
	}
	// The policy it links to is a page with the contact and the promise.
	pol := webFetch(t, h.browser(t), "GET", policy, nil, nil)
	for _, want := range []string{"[SECURITY]", "24 hours", "72 hours", "Supported versions", `href="mailto:security@contoso.com?subject=%5BSECURITY%5D%20"`} {
		if !strings.Contains(pol.body, want) {
			t.Errorf("the policy page lacks %q", want)
		}
	}
}

// TestSecurityLinkOnEveryPage: the footer of every page links to the policy.
func TestSecurityLinkOnEveryPage(t *testing.T) {
	t.Parallel()
	_, h, c := newEntraHarness(t)
	pages := []webPage{webFetch(t, c, "GET", h.ts.URL+"/", nil, nil), h.signIn(t, c),
		webFetch(t, c, "GET", h.ts.URL+"/logout", nil, nil), webFetch(t, c, "GET", h.ts.URL+"/security", nil, nil),
		webFetch(t, c, "GET", h.ts.URL+"/callback?error=access_denied", nil, nil)}
	for _, p := range pages {
		if !strings.Contains(p.body, `<a href="/security" id="security-link">`) {
			t.Errorf("%s (%d) has no security link in its footer", p.url.Path, p.status)
		}
	}
	// Without SECURITY_CONTACT there is no valid security.txt: 404, and the page says so.
	if p := webFetch(t, c, "GET", h.ts.URL+"/.well-known/security.txt", nil, nil); p.status != http.StatusNotFound {
		t.Errorf("security.txt without a contact: %d", p.status)
	}
	if p := webFetch(t, c, "GET", h.ts.URL+"/security", nil, nil); !strings.Contains(p.body, "No security contact is configured") {
		t.Error("the policy page does not say that no contact is configured")
	}
}

func TestSecurityContactSetting(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"security@contoso.com":        "mailto:security@contoso.com",
		"mailto:security@contoso.com": "mailto:security@contoso.com",
		"https://contoso.com/report":  "https://contoso.com/report",
		"":                            "",
	} {
		got, err := normalizeSecurityContact(in)
		if err != nil || got != want {
			t.Errorf("%q: %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"http://contoso.com/report", "security", "mailto:nobody", "a@b@c", "javascript:alert(1)", "mailto:x@y.com\nContact: evil"} {
		s, err := LoadSettings(func(k string) string {
			if k == "SECURITY_CONTACT" {
				return bad
			}
			return ""
		})
		if err == nil || !strings.Contains(err.Error(), "SECURITY_CONTACT") {
			t.Errorf("%q accepted as %q (%v)", bad, s.SecurityContact, err)
		}
	}
}
