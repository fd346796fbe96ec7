package server

import (
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"testing"
)

// copyCookies is a second browser holding copies of c's cookies (a stolen or copied
// session cookie).
func copyCookies(t *testing.T, h *webHarness, c *http.Client) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(h.ts.URL)
	jar.SetCookies(u, c.Jar.Cookies(u))
	return &http.Client{Jar: jar}
}

// wantDashboard checks whether c opens the dashboard; twice, since the harness's two
// replicas take requests in turn, so both must agree.
func wantDashboard(t *testing.T, h *webHarness, c *http.Client, want bool, when string) {
	t.Helper()
	for range 2 {
		p := webFetch(t, c, "GET", h.ts.URL+"/dashboard", nil, nil)
		if got := p.status == 200 && p.url.Path == "/dashboard"; got != want {
			t.Fatalf("%s: dashboard opened = %v (ended at %s, %d), want %v", when, got, p.url.Path, p.status, want)
		}
	}
}

// TestLogoutRevokeReissueEndEverySession: a session cookie copied before logout,
// revoke or re-issue no longer opens the dashboard nor posts its forms, on either
// replica, while the browser that re-issued or revoked keeps a new session.
func TestLogoutRevokeReissueEndEverySession(t *testing.T) {
	t.Parallel()
	fe := newFakeEntra(t)
	h := newWebHarness(t, webOptions{entra: fe.config()})

	t.Run("logout", func(t *testing.T) {
		c := h.browser(t)
		dash := h.signIn(t, c)
		copied := copyCookies(t, h, c)
		copiedCSRF := webMatch(t, csrfField, webFetch(t, copied, "GET", h.ts.URL+"/dashboard", nil, nil).body)
		wantDashboard(t, h, copied, true, "before logout")

		out := h.post(t, c, "/logout", webMatch(t, csrfField, dash.body))
		if out.url.Path != "/" {
			t.Fatalf("logout ended at %s", out.url)
		}
		wantDashboard(t, h, c, false, "the browser that logged out")
		wantDashboard(t, h, copied, false, "a session cookie copied before logout")
		for _, form := range []string{"/dashboard/reissue", "/dashboard/revoke", "/logout"} {
			if p := h.post(t, copied, form, copiedCSRF); p.status != http.StatusForbidden {
				t.Fatalf("POST %s with the copied session after logout: %d", form, p.status)
			}
		}
		// A new sign-in opens a session again.
		h.signIn(t, c)
		wantDashboard(t, h, c, true, "after signing in again")
		wantDashboard(t, h, copied, false, "the copied cookie after the owner signed in again")
	})

	for _, form := range []string{"/dashboard/reissue", "/dashboard/revoke"} {
		t.Run(form, func(t *testing.T) {
			c := h.browser(t)
			dash := h.signIn(t, c)
			copied := copyCookies(t, h, c)
			wantDashboard(t, h, copied, true, "before "+form)
			p := h.post(t, c, form, webMatch(t, csrfField, dash.body))
			if p.status != 200 || p.url.Path != "/dashboard" {
				t.Fatalf("%s: ended at %s with %d", form, p.url, p.status)
			}
			wantDashboard(t, h, c, true, "the browser that posted "+form)
			wantDashboard(t, h, copied, false, "a session cookie copied before "+form)
		})
	}
}
