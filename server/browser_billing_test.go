package server

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/flowstudio/mcp/cosmos"
	"github.com/flowstudio/mcp/server/billing"
	"github.com/flowstudio/mcp/tools/teamcache"
)

// toolNames lists the tools tools/list shows to key.
func toolNames(t *testing.T, h *webHarness, key string) []string {
	t.Helper()
	status, raw := h.postMCP(t, key, "2025-06-18", `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`)
	var out struct {
		Result struct {
			Tools []struct {
				Name string `json:"name"`
			} `json:"tools"`
		} `json:"result"`
	}
	if err := json.Unmarshal(raw, &out); err != nil || status != 200 {
		t.Fatalf("tools/list: %d %s", status, raw)
	}
	var names []string
	for _, tl := range out.Result.Tools {
		names = append(names, tl.Name)
	}
	return names
}

// TestBrowserPurchaseJourney drives headless Chromium through buying and leaving
// the Team plan against stripe-mock and the simulated sign-in: sign in → Upgrade to
// Team (the server creates a Checkout Session at stripe-mock and sends the browser
// to its URL: Stripe's pages are not on this machine, so that URL is pointed at an
// https stand-in on 127.0.0.1) → the signed checkout.session.completed Stripe would
// send → the store tools appear in tools/list → Manage billing (a Customer Portal
// session) → the signed customer.subscription.deleted → the store tools are gone
// and the cache has its 30-day ttl. The page reports no script or CSP error.
func TestBrowserPurchaseJourney(t *testing.T) {
	rec := newStripeRecorder(t)
	h, _, _ := newSimWebHarness(t, func(o *webOptions) { o.settings = stripeSettings(rec.srv.URL) })
	// The Stripe stand-in pages serve https on 127.0.0.1 with a test certificate.
	b := newWebBrowser(t, "purchase-failure.png", chromedp.Flag("ignore-certificate-errors", true))
	ctx, artifacts, run, text, value, location, navigate := b.ctx, b.artifacts, b.run, b.text, b.value, b.location, b.navigate

	// 1. Sign in on the simulated Microsoft pages.
	run("landing", chromedp.Navigate(h.ts.URL+"/"), chromedp.WaitVisible(chromedp.CSS("a.btn.ms")))
	run("sign in", chromedp.Click(chromedp.CSS("a.btn.ms")), chromedp.WaitVisible(chromedp.CSS(`button[value="alice@contoso.com"]`)))
	run("pick alice", chromedp.Click(chromedp.CSS(`button[value="alice@contoso.com"]`)), chromedp.WaitVisible(chromedp.ID("accept")))
	navigate("consent", chromedp.Click(chromedp.ID("accept")), "#upgrade-team")
	if tier := text("#tier"); tier != "Free" {
		t.Fatalf("plan before buying: %q", tier)
	}
	key := value("#key-full")
	if names := toolNames(t, h, key); slices.Contains(names, "list_store_flows") || !slices.Contains(names, "list_live_flows") {
		t.Fatalf("tools before buying: %v", names)
	}
	ids, _, err := h.store.ListUserIDs(t.Context(), cosmos.PageRequest{})
	if err != nil || len(ids) != 1 {
		t.Fatalf("users: %v %v", ids, err)
	}
	alice := ids[0]
	webShot(t, ctx, filepath.Join(artifacts, "plans-free.png"))

	// 2. Upgrade to Team: a Checkout Session at stripe-mock, and the browser sent to it.
	navigate("upgrade to team", chromedp.Click(chromedp.ID("upgrade-team")), "#stripe-stand-in")
	checkoutURL := location()
	if !strings.HasPrefix(rec.lastHosted(), "https://checkout.stripe.com/") || !strings.HasPrefix(checkoutURL, rec.pages.URL+"/") {
		t.Fatalf("Upgrade went to %q (stripe-mock answered %q)", checkoutURL, rec.lastHosted())
	}
	calls := rec.calls("/v1/checkout/sessions")
	if len(calls) != 1 || calls[0].form.Get("client_reference_id") != alice || calls[0].form.Get("line_items[0][price]") != testPriceTeam ||
		calls[0].form.Get("mode") != "subscription" {
		t.Fatalf("checkout session request: %+v", calls)
	}

	// 3. Stripe's event, signed as Stripe signs it; the store tools appear at once.
	h.postWebhook(t, "evt_journey_checkout", "checkout.session.completed", time.Now().Unix(),
		checkoutObject(alice, "team", "complete", "paid", "sub_Journey1"))
	if names := toolNames(t, h, key); !slices.Contains(names, "list_store_flows") || !slices.Contains(names, "get_store_flow") {
		t.Fatalf("tools after buying Team: %v", names)
	}
	if _, err := h.store.PutCacheItem(t.Context(), &cosmos.CacheItem{UserID: alice, Kind: "flow", Key: "env.flow1", TTL: -1}); err != nil {
		t.Fatal(err)
	}
	navigate("back to the dashboard", chromedp.Navigate(h.ts.URL+"/dashboard?done=checkout"), "#manage-billing")
	if tier := text("#tier"); tier != "Team" {
		t.Errorf("plan after buying: %q", tier)
	}
	webShot(t, ctx, filepath.Join(artifacts, "plans-team.png"))

	// 4. Manage billing: a Customer Portal session for the linked customer.
	navigate("manage billing", chromedp.Click(chromedp.ID("manage-billing")), "#stripe-stand-in")
	portal := rec.calls("/v1/billing_portal/sessions")
	if loc := location(); len(portal) != 1 || portal[0].form.Get("customer") != "cus_Buyer1" || !strings.HasPrefix(loc, rec.pages.URL+"/") || loc == checkoutURL {
		t.Fatalf("portal: %+v, browser sent to %q", portal, loc)
	}

	// 5. Cancelled in the portal: Stripe's customer.subscription.deleted.
	h.postWebhook(t, "evt_journey_deleted", "customer.subscription.deleted", time.Now().Unix()+1, map[string]any{
		"id": "sub_Journey1", "object": "subscription", "status": "canceled", "customer": "cus_Buyer1",
		"metadata": map[string]any{billing.UserIDKey: alice},
		"items":    map[string]any{"object": "list", "data": []any{map[string]any{"object": "subscription_item", "id": "si_1", "price": map[string]any{"object": "price", "id": testPriceTeam}}}}})
	if names := toolNames(t, h, key); slices.Contains(names, "list_store_flows") {
		t.Fatalf("store tools after cancelling: %v", names)
	}
	if it, err := h.store.GetCacheItem(t.Context(), alice, "flow", "env.flow1"); err != nil || it.TTL != teamcache.CanceledCacheTTL {
		t.Fatalf("cache ttl after cancelling: %v %v", it, err)
	}
	navigate("dashboard after cancelling", chromedp.Navigate(h.ts.URL+"/dashboard"), "#upgrade-team")
	if tier := text("#tier"); tier != "Free" {
		t.Errorf("plan after cancelling: %q", tier)
	}
	// The stand-in's pages (and their missing favicon) are not ours to check.
	for _, p := range b.reported() {
		if !strings.Contains(p, "stripe") && !strings.Contains(p, "favicon") {
			t.Errorf("the browser reported: %s", p)
		}
	}
}
