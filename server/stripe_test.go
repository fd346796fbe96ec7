package server

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowstudio/mcp/cosmos"
	"github.com/flowstudio/mcp/tools/teamcache"
	"github.com/stripe/stripe-go/v82/webhook"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

const testStripeSecret = "whsec_test_0123456789abcdef"

type stripeHarness struct {
	srv   *Server
	h     http.Handler
	store *cosmos.Store
	logs  *observer.ObservedLogs
	fail  *flakyBilling
}

// flakyBilling fails SetUserCacheTTL while failCache is positive.
type flakyBilling struct {
	BillingStore
	failCache atomic.Int32
}

func (f *flakyBilling) SetUserCacheTTL(ctx context.Context, userID string, ttl int, when func(int) bool) (int, error) {
	if f.failCache.Add(-1) >= 0 {
		return 0, fmt.Errorf("cosmos: replace cache/x: %w", cosmos.ErrUnavailable)
	}
	return f.BillingStore.SetUserCacheTTL(ctx, userID, ttl, when)
}

func newStripeHarness(t *testing.T, secret string) *stripeHarness {
	t.Helper()
	store, keys := newTestStore(t), testKeys()
	settings, err := LoadSettings(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	settings.StripeWebhookSecret = secret
	core, logs := observer.New(zap.DebugLevel)
	fail := &flakyBilling{BillingStore: store}
	srv := New(Deps{Settings: settings, Logger: zap.New(core), Keys: keys, Users: store, Billing: fail})
	for _, id := range []string{"alice", "bob"} {
		if _, err := store.CreateUser(t.Context(), &cosmos.User{TenantID: "tenant", ObjectID: id, Tier: cosmos.TierFree,
			Consent: cosmos.ConsentGranted, KeyGeneration: 1}); err != nil {
			t.Fatal(err)
		}
	}
	return &stripeHarness{srv: srv, h: srv.Handler(), store: store, logs: logs, fail: fail}
}

// sub is a subscription fixture.
type sub struct {
	id, status, user, lookupKey, priceTier string
	extraItems                             []string // more lookup keys
}

func (s sub) object() map[string]any {
	meta := map[string]any{"canary_note": "CANARY-STRIPE-METADATA"}
	if s.user != "" {
		meta[StripeUserIDKey] = s.user
	}
	price := func(key, tier string) map[string]any {
		pm := map[string]any{}
		if tier != "" {
			pm["tier"] = tier
		}
		return map[string]any{"object": "subscription_item", "id": "si_" + key,
			"price": map[string]any{"object": "price", "id": "price_" + key, "lookup_key": key, "metadata": pm}}
	}
	items := []any{price(s.lookupKey, s.priceTier)}
	for _, k := range s.extraItems {
		items = append(items, price(k, ""))
	}
	return map[string]any{"id": s.id, "object": "subscription", "status": s.status, "customer": "cus_CANARYCUSTOMER",
		"metadata": meta, "items": map[string]any{"object": "list", "data": items}}
}

func eventJSON(id, typ string, created int64, object map[string]any) []byte {
	b, _ := json.Marshal(map[string]any{"id": id, "object": "event", "type": typ, "created": created,
		"api_version": "2019-01-01", "livemode": false, "data": map[string]any{"object": object}})
	return b
}

func sign(payload []byte, secret string, at time.Time) string {
	return fmt.Sprintf("t=%d,v1=%s", at.Unix(), hex.EncodeToString(webhook.ComputeSignature(at, payload, secret)))
}

func (h *stripeHarness) post(t *testing.T, payload []byte, signature string) (int, string) {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/webhooks/stripe", strings.NewReader(string(payload)))
	req.Header.Set("Content-Type", "application/json")
	if signature != "" {
		req.Header.Set("Stripe-Signature", signature)
	}
	rec := httptest.NewRecorder()
	h.h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

func (h *stripeHarness) deliver(t *testing.T, id, typ string, created int64, s sub) (int, string) {
	t.Helper()
	p := eventJSON(id, typ, created, s.object())
	return h.post(t, p, sign(p, testStripeSecret, time.Now()))
}

func (h *stripeHarness) user(t *testing.T, id string) *cosmos.User {
	t.Helper()
	u, err := h.store.GetUser(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func (h *stripeHarness) cacheTTL(t *testing.T, user, key string) int {
	t.Helper()
	it, err := h.store.GetCacheItem(t.Context(), user, "flow", key)
	if err != nil {
		t.Fatal(err)
	}
	return it.TTL
}

func wantOutcome(t *testing.T, code int, body string, wantCode int, outcome string) {
	t.Helper()
	if code != wantCode || !strings.Contains(body, outcome) {
		t.Fatalf("got %d %s, want %d with %q", code, body, wantCode, outcome)
	}
}

// accepts delivers an event as deliver does, and wants it answered 200 with outcome.
func (h *stripeHarness) accepts(t *testing.T, id, typ string, created int64, s sub, outcome string) {
	t.Helper()
	code, body := h.deliver(t, id, typ, created, s)
	wantOutcome(t, code, body, 200, outcome)
}

func TestStripeSubscriptionLifecycle(t *testing.T) {
	h := newStripeHarness(t, testStripeSecret)
	const alice = "tenant.alice"
	for _, k := range []string{"f1", "f2"} {
		if _, err := h.store.PutCacheItem(t.Context(), &cosmos.CacheItem{UserID: alice, Kind: "flow", Key: k}); err != nil {
			t.Fatal(err)
		}
	}
	t0 := time.Now().Add(-time.Hour).Unix()
	team := sub{id: "sub_1", status: "active", user: alice, lookupKey: "team_monthly"}

	h.accepts(t, "evt_created", "customer.subscription.created", t0, team, outcomeApplied)
	u := h.user(t, alice)
	if u.Tier != cosmos.TierTeam || u.Subscription.SubscriptionID != "sub_1" || u.Subscription.Status != "active" ||
		u.Subscription.CustomerID != "cus_CANARYCUSTOMER" || u.Subscription.UpdatedAt != t0 {
		t.Fatalf("after created: %+v", u)
	}

	// Replayed: acknowledged, nothing applied again.
	h.accepts(t, "evt_created", "customer.subscription.created", t0, team, outcomeDuplicate)

	// Out of order: an update created before the last applied event is ignored.
	pro := sub{id: "sub_1", status: "active", user: alice, lookupKey: "pro"}
	h.accepts(t, "evt_old_update", "customer.subscription.updated", t0-60, pro, outcomeIgnoredStale)
	if h.user(t, alice).Tier != cosmos.TierTeam {
		t.Fatal("a stale event was applied")
	}

	// Deleted: free, and the cache expires in 30 days.
	h.accepts(t, "evt_deleted", "customer.subscription.deleted", t0+10, sub{id: "sub_1", status: "canceled", user: alice, lookupKey: "team_monthly"}, outcomeApplied)
	if u := h.user(t, alice); u.Tier != cosmos.TierFree || u.Subscription.Status != "canceled" {
		t.Fatalf("after deleted: %+v", u)
	}
	if ttl := h.cacheTTL(t, alice, "f1"); ttl != teamcache.CanceledCacheTTL {
		t.Fatalf("cache ttl %d after cancellation, want %d", ttl, teamcache.CanceledCacheTTL)
	}
	// The earlier creation, replayed now, stays a duplicate: no resurrection.
	h.accepts(t, "evt_created", "customer.subscription.created", t0, team, outcomeDuplicate)
	if h.user(t, alice).Tier != cosmos.TierFree {
		t.Fatal("a replay changed the tier")
	}

	// Re-subscribing clears the ttl back to -1.
	h.accepts(t, "evt_resub", "customer.subscription.created", t0+20, sub{id: "sub_2", status: "active", user: alice, lookupKey: "team"}, outcomeApplied)
	if u := h.user(t, alice); u.Tier != cosmos.TierTeam || u.Subscription.SubscriptionID != "sub_2" {
		t.Fatalf("after re-subscribing: %+v", u)
	}
	if ttl := h.cacheTTL(t, alice, "f2"); ttl != -1 {
		t.Fatalf("cache ttl %d after re-subscribing, want -1", ttl)
	}

	// A late end of the replaced subscription must not downgrade the new one.
	h.accepts(t, "evt_late_end", "customer.subscription.deleted", t0+30, sub{id: "sub_1", status: "canceled", user: alice, lookupKey: "team"}, outcomeIgnoredOther)
	if h.user(t, alice).Tier != cosmos.TierTeam {
		t.Fatal("the old subscription's end downgraded the new one")
	}

	// Status canceled on an update also means free.
	h.accepts(t, "evt_cancel_update", "customer.subscription.updated", t0+40, sub{id: "sub_2", status: "canceled", user: alice, lookupKey: "team"}, outcomeApplied)
	if u := h.user(t, alice); u.Tier != cosmos.TierFree || h.cacheTTL(t, alice, "f2") != teamcache.CanceledCacheTTL {
		t.Fatalf("after status canceled: %+v", u)
	}

	for _, e := range h.logs.All() {
		line := fmt.Sprint(e.Message, e.ContextMap())
		for _, secret := range []string{"CANARY", "cus_", "tenant.alice", testStripeSecret} {
			if strings.Contains(line, secret) {
				t.Errorf("log line carries %q: %s", secret, line)
			}
		}
	}
}

func TestStripeTiers(t *testing.T) {
	h := newStripeHarness(t, testStripeSecret)
	now := time.Now().Unix()
	tests := []struct {
		name    string
		s       sub
		tier    cosmos.Tier
		outcome string
	}{
		{"lookup key pro", sub{status: "active", lookupKey: "pro"}, cosmos.TierPro, outcomeApplied},
		{"lookup key with suffix", sub{status: "trialing", lookupKey: "team-yearly"}, cosmos.TierTeam, outcomeApplied},
		{"metadata tier wins", sub{status: "active", lookupKey: "whatever", priceTier: "Team"}, cosmos.TierTeam, outcomeApplied},
		{"highest item wins", sub{status: "past_due", lookupKey: "pro_monthly", extraItems: []string{"seats", "team_addon"}}, cosmos.TierTeam, outcomeApplied},
		{"incomplete is free", sub{status: "incomplete", lookupKey: "team"}, cosmos.TierFree, outcomeApplied},
		{"no tier on the price", sub{status: "active", lookupKey: "professional"}, "", outcomeIgnoredNoTier},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.s.id, tc.s.user = "sub_t", "tenant.bob"
			h.accepts(t, fmt.Sprintf("evt_tier_%d", i), "customer.subscription.updated", now+int64(i), tc.s, tc.outcome)
			if tc.tier != "" {
				if got := h.user(t, "tenant.bob").Tier; got != tc.tier {
					t.Fatalf("tier %s, want %s", got, tc.tier)
				}
			}
		})
	}
}

func TestStripeRefusals(t *testing.T) {
	h := newStripeHarness(t, testStripeSecret)
	now := time.Now()
	payload := eventJSON("evt_sig", "customer.subscription.created", now.Unix(), sub{id: "sub_x", status: "active", user: "tenant.alice", lookupKey: "team"}.object())

	for name, sig := range map[string]string{
		"no signature":         "",
		"wrong secret":         sign(payload, "whsec_wrong", now),
		"garbage":              "t=1,v1=zz",
		"outside tolerance":    sign(payload, testStripeSecret, now.Add(-10*time.Minute)),
		"dated in the future":  sign(payload, testStripeSecret, now.Add(10*time.Minute)),
		"dated a year ahead":   sign(payload, testStripeSecret, now.AddDate(1, 0, 0)),
		"tampered body":        sign(append([]byte(" "), payload...), testStripeSecret, now),
		"v0 scheme only":       strings.Replace(sign(payload, testStripeSecret, now), "v1=", "v0=", 1),
		"signature of another": sign([]byte(`{}`), testStripeSecret, now),
	} {
		t.Run(name, func(t *testing.T) {
			code, body := h.post(t, payload, sig)
			if code != 400 || !strings.Contains(body, "invalid signature") {
				t.Fatalf("got %d %s, want 400", code, body)
			}
		})
	}
	if h.user(t, "tenant.alice").Tier != cosmos.TierFree {
		t.Fatal("a badly signed event changed the tier")
	}
	// Nothing was recorded either: the genuine delivery of that event applies, from a
	// sender whose clock is a minute ahead (within the tolerance).
	code, body := h.post(t, payload, sign(payload, testStripeSecret, now.Add(time.Minute)))
	wantOutcome(t, code, body, 200, outcomeApplied)

	t.Run("unknown event type", func(t *testing.T) {
		p := eventJSON("evt_invoice", "invoice.paid", now.Unix(), map[string]any{"id": "in_1", "object": "invoice"})
		code, body := h.post(t, p, sign(p, testStripeSecret, now))
		wantOutcome(t, code, body, 200, outcomeIgnoredType)
	})
	t.Run("no user in metadata", func(t *testing.T) {
		h.accepts(t, "evt_nouser", "customer.subscription.created", now.Unix(), sub{id: "sub_n", status: "active", lookupKey: "team"}, outcomeIgnoredNoUser)
	})
	t.Run("unknown user", func(t *testing.T) {
		h.accepts(t, "evt_ghost", "customer.subscription.created", now.Unix(), sub{id: "sub_g", status: "active", user: "tenant.ghost", lookupKey: "team"}, outcomeIgnoredUnknown)
	})
	t.Run("body too large", func(t *testing.T) {
		big := []byte(`{"id":"evt_big","pad":"` + strings.Repeat("x", MaxStripeBodyBytes) + `"}`)
		if code, _ := h.post(t, big, sign(big, testStripeSecret, now)); code != http.StatusRequestEntityTooLarge {
			t.Fatalf("got %d, want 413", code)
		}
	})
	t.Run("no secret configured", func(t *testing.T) {
		unset := newStripeHarness(t, "")
		code, body := unset.post(t, payload, sign(payload, testStripeSecret, now))
		if code != http.StatusServiceUnavailable || !strings.Contains(body, "STRIPE_WEBHOOK_SECRET is unset") {
			t.Fatalf("got %d %s", code, body)
		}
	})
	t.Run("GET is not routed", func(t *testing.T) {
		req := httptest.NewRequest(http.MethodGet, "/webhooks/stripe", nil)
		rec := httptest.NewRecorder()
		h.h.ServeHTTP(rec, req)
		if rec.Code != http.StatusMethodNotAllowed {
			t.Fatalf("GET: %d", rec.Code)
		}
	})
}

// TestStripeFailureIsRetried: when applying fails, the answer is 500 and the
// event id is forgotten, so Stripe's retry applies the event.
func TestStripeFailureIsRetried(t *testing.T) {
	h := newStripeHarness(t, testStripeSecret)
	h.fail.failCache.Store(1)
	now := time.Now().Unix()
	s := sub{id: "sub_r", status: "active", user: "tenant.alice", lookupKey: "team"}
	code, body := h.deliver(t, "evt_retry", "customer.subscription.created", now, s)
	if code != 500 || strings.Contains(body, "cosmos") {
		t.Fatalf("first delivery: %d %s", code, body)
	}
	h.accepts(t, "evt_retry", "customer.subscription.created", now, s, outcomeApplied)
	if h.user(t, "tenant.alice").Tier != cosmos.TierTeam {
		t.Fatal("retry not applied")
	}
}
