package server

import (
	"bytes"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowstudio/mcp/cosmos"
	"github.com/flowstudio/mcp/server/billing"
)

// stripeMockURL is the stripe-mock that .ci/run starts (eval "$(bash .ci/stripe-mock.sh)").
func stripeMockURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("STRIPE_MOCK_URL")
	if u == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("STRIPE_MOCK_URL is not set in CI: .ci/run starts stripe-mock")
		}
		t.Skip(`STRIPE_MOCK_URL is not set; to run against stripe-mock: eval "$(bash .ci/stripe-mock.sh)"`)
	}
	return u
}

// stripeRecorder sits between the server and stripe-mock and keeps what was asked:
// stripe-mock answers with fixtures, so the request is where our parameters show.
//
// Stripe's hosted pages (Checkout, the Customer Portal) are not on this machine, so
// the recorder also points the URLs stripe-mock answers with at pages, an https
// stand-in on 127.0.0.1, keeping the originals in hosted.
type stripeRecorder struct {
	srv    *httptest.Server
	pages  *httptest.Server
	mu     sync.Mutex
	got    []stripeCall
	hosted []string
}

var hostedURL = regexp.MustCompile(`"url": ?"(https://[^/"]+)([^"]*)"`)

type stripeCall struct {
	method, path string
	form         url.Values
	auth         string
}

func newStripeRecorder(t testing.TB) *stripeRecorder {
	target, _ := url.Parse(stripeMockURL(t))
	rec := &stripeRecorder{}
	rec.pages = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(w, `<!doctype html><title>Stripe stand-in</title><h1 id="stripe-stand-in">Stripe's page would be here</h1>`)
	}))
	t.Cleanup(rec.pages.Close)
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.ModifyResponse = func(resp *http.Response) error {
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		body = hostedURL.ReplaceAllFunc(body, func(m []byte) []byte {
			sub := hostedURL.FindSubmatch(m)
			rec.mu.Lock()
			rec.hosted = append(rec.hosted, string(sub[1])+string(sub[2]))
			rec.mu.Unlock()
			return []byte(`"url": "` + rec.pages.URL + string(sub[2]) + `"`)
		})
		resp.Body = io.NopCloser(bytes.NewReader(body))
		resp.ContentLength = int64(len(body))
		resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
		return nil
	}
	rec.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		form, _ := url.ParseQuery(string(body))
		rec.mu.Lock()
		rec.got = append(rec.got, stripeCall{r.Method, r.URL.Path, form, r.Header.Get("Authorization")})
		rec.mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(body))
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(rec.srv.Close)
	return rec
}

// lastHosted is the last hosted-page URL stripe-mock answered with, as it was.
func (r *stripeRecorder) lastHosted() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.hosted) == 0 {
		return ""
	}
	return r.hosted[len(r.hosted)-1]
}

func (r *stripeRecorder) calls(path string) []stripeCall {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []stripeCall
	for _, c := range r.got {
		if c.path == path {
			out = append(out, c)
		}
	}
	return out
}

const (
	testPricePro  = "price_testPro"
	testPriceTeam = "price_testTeam"
	testStripeKey = "sk_test_flowstudio0123456789"
)

func stripeSettings(apiBase string) func(*Settings) {
	return func(s *Settings) {
		s.StripeSecretKey, s.StripeAPIBase = testStripeKey, apiBase
		s.StripePricePro, s.StripePriceTeam = testPricePro, testPriceTeam
		s.StripeWebhookSecret = testStripeSecret
	}
}

// postWebhook delivers a signed event to the harness, as Stripe would.
func (h *webHarness) postWebhook(t testing.TB, id, typ string, created int64, obj map[string]any) string {
	t.Helper()
	p := eventJSON(id, typ, created, obj)
	req, _ := http.NewRequest("POST", h.ts.URL+"/webhooks/stripe", bytes.NewReader(p))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Stripe-Signature", sign(p, testStripeSecret, time.Now()))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(b), outcomeApplied) {
		t.Fatalf("webhook %s: %d %s", typ, resp.StatusCode, b)
	}
	return string(b)
}

// TestDashboardBillingOff: without STRIPE_SECRET_KEY the page says billing is off
// and shows no billing button; the routes refuse.
func TestDashboardBillingOff(t *testing.T) {
	t.Parallel()
	_, h, c := newEntraHarness(t)
	p := h.signIn(t, c)
	if !strings.Contains(p.body, `id="billing-off"`) || !strings.Contains(p.body, "Billing is off") {
		t.Error("the dashboard does not say billing is off")
	}
	for _, b := range []string{`id="upgrade-`, `id="manage-billing"`, `id="change-`} {
		if strings.Contains(p.body, b) {
			t.Errorf("billing off, yet the page has %s", b)
		}
	}
	// The plans are still described, from the configured quotas.
	for _, want := range []string{`id="plan-free"`, `id="plan-team"`, "200 tool calls a day", "50000 tool calls a day", "Store tools"} {
		if !strings.Contains(p.body, want) {
			t.Errorf("the plans lack %q", want)
		}
	}
	csrf := webMatch(t, csrfField, p.body)
	if r := webFetch(t, c, "POST", h.ts.URL+"/dashboard/checkout", url.Values{"csrf": {csrf}, "plan": {"team"}},
		map[string]string{"Origin": h.ts.URL}); r.status != http.StatusNotFound || !strings.Contains(r.body, "Billing is off") {
		t.Errorf("checkout with billing off: %d", r.status)
	}
}

// TestDashboardCheckoutAndPortal drives the billing routes against stripe-mock
// (through a recorder that keeps what was asked): the Checkout Session is in
// subscription mode for the configured price, names the user, and comes back to
// the dashboard; after the signed checkout.session.completed the user has the
// plan on the next call, Manage billing opens the portal for the linked customer,
// and a paying user's Upgrade goes to the portal instead of a second subscription.
func TestDashboardCheckoutAndPortal(t *testing.T) {
	t.Parallel()
	rec := newStripeRecorder(t)
	fe := newFakeEntra(t)
	h := newWebHarness(t, webOptions{entra: fe.config(), settings: stripeSettings(rec.srv.URL)})
	c := h.browser(t)
	p := h.signIn(t, c)
	for _, want := range []string{`id="upgrade-pro"`, `id="upgrade-team"`} {
		if !strings.Contains(p.body, want) {
			t.Errorf("the dashboard lacks %s", want)
		}
	}
	if strings.Contains(p.body, `id="upgrade-free"`) || strings.Contains(p.body, `id="manage-billing"`) {
		t.Error("an upgrade to free, or Manage billing before any purchase")
	}
	csrf := webMatch(t, csrfField, p.body)
	form := func(path string, v url.Values) webPage {
		return webFetch(t, noFollow(c), "POST", h.ts.URL+path, v, map[string]string{"Origin": h.ts.URL, "Sec-Fetch-Site": "same-origin"})
	}

	// Refusals first: they reach no Stripe API.
	if r := form("/dashboard/checkout", url.Values{"plan": {"team"}}); r.status != http.StatusForbidden {
		t.Errorf("checkout without CSRF: %d", r.status)
	}
	for _, plan := range []string{"free", "enterprise", "", "team\r\n"} {
		if r := form("/dashboard/checkout", url.Values{"csrf": {csrf}, "plan": {plan}}); r.status != http.StatusBadRequest {
			t.Errorf("checkout of plan %q: %d", plan, r.status)
		}
	}
	if r := form("/dashboard/billing", url.Values{"csrf": {csrf}}); r.status != http.StatusConflict {
		t.Errorf("Manage billing before a purchase: %d", r.status)
	}
	if n := len(rec.calls("/v1/checkout/sessions")); n != 0 {
		t.Fatalf("refused requests reached Stripe %d times", n)
	}

	r := form("/dashboard/checkout", url.Values{"csrf": {csrf}, "plan": {"team"}})
	if r.status != http.StatusOK || toStripeTarget(t, r) != rec.pages.URL+strings.TrimPrefix(rec.lastHosted(), "https://checkout.stripe.com") ||
		!strings.HasPrefix(rec.lastHosted(), "https://checkout.stripe.com/") {
		t.Fatalf("checkout: %d to %q (stripe-mock: %q)", r.status, toStripeTarget(t, r), rec.lastHosted())
	}
	calls := rec.calls("/v1/checkout/sessions")
	if len(calls) != 1 {
		t.Fatalf("%d checkout session requests", len(calls))
	}
	got := calls[0].form
	for k, want := range map[string]string{"mode": "subscription", "line_items[0][price]": testPriceTeam, "line_items[0][quantity]": "1",
		"client_reference_id": fakeUserID, "subscription_data[metadata][flowstudio_user_id]": fakeUserID,
		"metadata[flowstudio_tier]": "team", "success_url": h.ts.URL + "/dashboard?done=checkout",
		"cancel_url": h.ts.URL + "/dashboard?done=checkout-cancelled#plans"} {
		if got.Get(k) != want {
			t.Errorf("checkout %s = %q, want %q", k, got.Get(k), want)
		}
	}
	if calls[0].auth != "Bearer "+testStripeKey {
		t.Error("the checkout request did not carry STRIPE_SECRET_KEY")
	}
	if h.user(t, fakeUserID).Tier != cosmos.TierFree {
		t.Fatal("starting a checkout changed the plan: only Stripe's event may")
	}

	// Stripe's event arrives: the plan changes on the next call.
	h.postWebhook(t, "evt_checkout_1", "checkout.session.completed", time.Now().Unix(),
		checkoutObject(fakeUserID, "team", "complete", "paid", "sub_Journey1"))
	u := h.user(t, fakeUserID)
	if u.Tier != cosmos.TierTeam || u.Subscription.CustomerID != "cus_Buyer1" {
		t.Fatalf("after checkout: %+v", u)
	}
	p = webFetch(t, c, "GET", h.ts.URL+"/dashboard?done=checkout", nil, nil)
	if !strings.Contains(p.body, `<dd id="tier">Team</dd>`) || !strings.Contains(p.body, `id="manage-billing"`) || !strings.Contains(p.body, "Thank you") {
		t.Errorf("the dashboard after the purchase:\n%s", p.body)
	}
	r = form("/dashboard/billing", url.Values{"csrf": {csrf}})
	if r.status != http.StatusOK || !strings.HasPrefix(toStripeTarget(t, r), rec.pages.URL+"/") {
		t.Fatalf("Manage billing: %d to %q", r.status, toStripeTarget(t, r))
	}
	portal := rec.calls("/v1/billing_portal/sessions")
	if len(portal) != 1 || portal[0].form.Get("customer") != "cus_Buyer1" || portal[0].form.Get("return_url") != h.ts.URL+"/dashboard#plans" {
		t.Fatalf("portal requests: %+v", portal)
	}
	// A paying user asking to upgrade is sent to the portal: no second subscription.
	if r := form("/dashboard/checkout", url.Values{"csrf": {csrf}, "plan": {"team"}}); r.status != http.StatusOK ||
		len(rec.calls("/v1/checkout/sessions")) != 1 || len(rec.calls("/v1/billing_portal/sessions")) != 2 {
		t.Errorf("upgrade while subscribed: %d, %d checkouts", r.status, len(rec.calls("/v1/checkout/sessions")))
	}
}

// toStripeTarget is where the page that sends the browser to Stripe points: its
// refresh and its link must agree, and the page keeps the usual CSP.
func toStripeTarget(t *testing.T, p webPage) string {
	t.Helper()
	link := regexp.MustCompile(`id="continue-to-stripe" href="([^"]+)"`).FindStringSubmatch(p.body)
	refresh := regexp.MustCompile(`<meta http-equiv="refresh" content="0;url=([^"]+)">`).FindStringSubmatch(p.body)
	norm := func(s string) string {
		u, err := url.PathUnescape(html.UnescapeString(s))
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	if link == nil || refresh == nil || norm(link[1]) != norm(refresh[1]) {
		t.Fatalf("no consistent link and refresh to Stripe in:\n%s", p.body)
	}
	if p.header.Get("Content-Security-Policy") != pageCSP {
		t.Errorf("the page to Stripe has CSP %q", p.header.Get("Content-Security-Policy"))
	}
	return norm(link[1])
}

// TestBillingClientIDsAreChecked: ids that go into Stripe URLs are validated first.
func TestBillingClientIDsAreChecked(t *testing.T) {
	rec := newStripeRecorder(t)
	c := billing.New(billing.Config{SecretKey: testStripeKey, APIBase: rec.srv.URL, PricePro: testPricePro, PriceTeam: testPriceTeam})
	for _, bad := range []string{"", "sub_../../v1/customers", "cus_1", "sub_a/b", "sub_1?x=1"} {
		if err := c.Cancel(t.Context(), bad); err == nil {
			t.Errorf("cancel %q accepted", bad)
		}
	}
	if _, err := c.Portal(t.Context(), "cus_../x", "https://x"); err == nil {
		t.Error("portal for a malformed customer accepted")
	}
	if len(rec.got) != 0 {
		t.Fatalf("malformed ids reached Stripe: %+v", rec.got)
	}
	if err := c.Cancel(t.Context(), "sub_Real1"); err != nil {
		t.Fatalf("cancel against stripe-mock: %v", err)
	}
	if got := rec.calls("/v1/subscriptions/sub_Real1"); len(got) != 1 || got[0].method != "DELETE" {
		t.Fatalf("cancel requests: %+v", rec.got)
	}
	var off *billing.Client
	if off.Enabled() || off.Cancel(t.Context(), "sub_1") != billing.ErrOff {
		t.Error("a nil client is not billing off")
	}
}
