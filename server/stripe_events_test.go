package server

import (
	"fmt"
	"testing"
	"time"

	"github.com/flowstudio/mcp/cosmos"
	"github.com/flowstudio/mcp/server/billing"
)

// checkoutObject is a completed Checkout Session as Stripe sends it in
// checkout.session.completed (the fields this server reads, and a few more).
func checkoutObject(user, tier, status, payment, subID string) map[string]any {
	return map[string]any{"id": "cs_test_1", "object": "checkout.session", "mode": "subscription", "status": status,
		"payment_status": payment, "client_reference_id": user, "customer": "cus_Buyer1", "subscription": subID,
		"metadata": map[string]any{billing.UserIDKey: user, billing.TierKey: tier}, "amount_total": 4900, "currency": "usd"}
}

func (h *stripeHarness) deliverObject(t *testing.T, id, typ string, created int64, obj map[string]any) (int, string) {
	t.Helper()
	p := eventJSON(id, typ, created, obj)
	return h.post(t, p, sign(p, testStripeSecret, time.Now()))
}

// TestStripeCheckoutLinksAndUpgrades: a paid checkout.session.completed links the
// customer and subscription to the client_reference_id user and gives the plan it
// bought; unpaid, unknown-plan and other-mode sessions change nothing.
func TestStripeCheckoutLinksAndUpgrades(t *testing.T) {
	h := newStripeHarness(t, testStripeSecret)
	const alice = "tenant.alice"
	now := time.Now().Unix()
	n := 0
	for name, tc := range map[string]struct {
		obj     map[string]any
		outcome string
	}{
		"unpaid":       {checkoutObject(alice, "team", "complete", "unpaid", "sub_A1"), outcomeIgnoredUnpaid},
		"still open":   {checkoutObject(alice, "team", "open", "paid", "sub_A1"), outcomeIgnoredUnpaid},
		"no plan":      {checkoutObject(alice, "", "complete", "paid", "sub_A1"), outcomeIgnoredNoTier},
		"free plan":    {checkoutObject(alice, "free", "complete", "paid", "sub_A1"), outcomeIgnoredNoTier},
		"no reference": {checkoutObject("", "team", "complete", "paid", "sub_A1"), outcomeIgnoredNoUser},
		"bad sub id":   {checkoutObject(alice, "team", "complete", "paid", "sub_../x"), outcomeIgnoredUnreadble},
		"unknown user": {checkoutObject("tenant.ghost", "team", "complete", "paid", "sub_A1"), outcomeIgnoredUnknown},
		"payment mode": {func() map[string]any {
			o := checkoutObject(alice, "team", "complete", "paid", "sub_A1")
			o["mode"] = "payment"
			return o
		}(), outcomeIgnoredUnreadble},
	} {
		t.Run(name, func(t *testing.T) {
			n++
			code, body := h.deliverObject(t, fmt.Sprintf("evt_co_%d", n), "checkout.session.completed", now, tc.obj)
			wantOutcome(t, code, body, 200, tc.outcome)
			if u := h.user(t, alice); u.Tier != cosmos.TierFree || u.Subscription.CustomerID != "" {
				t.Fatalf("changed: %+v", u)
			}
		})
	}
	code, body := h.deliverObject(t, "evt_co_ok", "checkout.session.completed", now, checkoutObject(alice, "team", "complete", "paid", "sub_A1"))
	wantOutcome(t, code, body, 200, outcomeApplied)
	u := h.user(t, alice)
	if u.Tier != cosmos.TierTeam || u.Subscription.CustomerID != "cus_Buyer1" || u.Subscription.SubscriptionID != "sub_A1" || u.Subscription.Status != "active" {
		t.Fatalf("after checkout: %+v", u)
	}
}

// TestStripePriceIDsAndCancellation: STRIPE_PRICE_* name the tier by price id; a
// subscription set to cancel at the period's end keeps its plan and records when
// it ends; a failed payment is recorded, the plan stays, and an active
// subscription clears the warning.
func TestStripePriceIDsAndCancellation(t *testing.T) {
	h := newStripeHarness(t, testStripeSecret)
	h.srv.deps.Settings.StripePricePro, h.srv.deps.Settings.StripePriceTeam = "price_proid", "price_teamid"
	const bob = "tenant.bob"
	t0 := time.Now().Add(-time.Hour).Unix()
	s := sub{id: "sub_B1", status: "active", user: bob, lookupKey: "teamid"} // price id price_teamid, lookup key without a tier
	s.lookupKey = "teamid"
	obj := s.object()
	code, body := h.deliverObject(t, "evt_p1", "customer.subscription.created", t0, obj)
	wantOutcome(t, code, body, 200, outcomeApplied)
	if u := h.user(t, bob); u.Tier != cosmos.TierTeam || u.Subscription.CancelAt != 0 {
		t.Fatalf("by price id: %+v", u)
	}

	// Cancelled at the period's end: still team, ends at the item's period end.
	end := t0 + 20*24*3600
	items := obj["items"].(map[string]any)["data"].([]any)
	items[0].(map[string]any)["current_period_end"] = end
	obj["cancel_at_period_end"] = true
	code, body = h.deliverObject(t, "evt_p2", "customer.subscription.updated", t0+1, obj)
	wantOutcome(t, code, body, 200, outcomeApplied)
	if u := h.user(t, bob); u.Tier != cosmos.TierTeam || u.Subscription.CancelAt != end {
		t.Fatalf("cancel at period end: %+v", u.Subscription)
	}

	// A failed payment: recorded, the plan stays.
	inv := map[string]any{"id": "in_1", "object": "invoice", "customer": "cus_CANARYCUSTOMER", "parent": map[string]any{
		"type": "subscription_details", "subscription_details": map[string]any{"subscription": "sub_B1",
			"metadata": map[string]any{billing.UserIDKey: bob}}}}
	code, body = h.deliverObject(t, "evt_p3", "invoice.payment_failed", t0+2, inv)
	wantOutcome(t, code, body, 200, outcomeApplied)
	if u := h.user(t, bob); u.Tier != cosmos.TierTeam || u.Subscription.PaymentFailedAt != t0+2 {
		t.Fatalf("payment failed: %+v", u.Subscription)
	}
	// Of another subscription: ignored.
	other := map[string]any{"id": "in_2", "object": "invoice", "parent": map[string]any{"type": "subscription_details",
		"subscription_details": map[string]any{"subscription": "sub_Other", "metadata": map[string]any{billing.UserIDKey: bob}}}}
	code, body = h.deliverObject(t, "evt_p4", "invoice.payment_failed", t0+3, other)
	wantOutcome(t, code, body, 200, outcomeIgnoredOther)

	// Past due keeps the warning and the plan; active again clears it.
	obj["status"] = "past_due"
	code, body = h.deliverObject(t, "evt_p5", "customer.subscription.updated", t0+4, obj)
	wantOutcome(t, code, body, 200, outcomeApplied)
	if u := h.user(t, bob); u.Tier != cosmos.TierTeam || u.Subscription.PaymentFailedAt == 0 {
		t.Fatalf("past due: %+v", u.Subscription)
	}
	obj["status"] = "active"
	code, body = h.deliverObject(t, "evt_p6", "customer.subscription.updated", t0+5, obj)
	wantOutcome(t, code, body, 200, outcomeApplied)
	if u := h.user(t, bob); u.Subscription.PaymentFailedAt != 0 {
		t.Fatalf("active again: %+v", u.Subscription)
	}
}
