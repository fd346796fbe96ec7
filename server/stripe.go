package server

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/flowstudio/mcp/cosmos"
	"github.com/flowstudio/mcp/rpc"
	"github.com/flowstudio/mcp/rpc/logsafe"
	"github.com/flowstudio/mcp/server/billing"
	"github.com/flowstudio/mcp/tools/pattern"
	"github.com/flowstudio/mcp/tools/teamcache"
	"github.com/stripe/stripe-go/v82"
	"github.com/stripe/stripe-go/v82/webhook"
	"go.uber.org/zap"
)

// Stripe webhook: POST /webhooks/stripe. (README *Stripe* lists every event handled:
// checkout.session.completed and invoice.payment_failed besides the subscription events.)
//
//   - Without STRIPE_WEBHOOK_SECRET the route answers 503 with a message that
//     says so (not 404: Stripe keeps retrying a 5xx for three days, so events
//     sent while the secret is missing are not lost once it is set).
//   - The body is capped at MaxStripeBodyBytes (413 beyond). The
//     Stripe-Signature header is verified with stripe-go's
//     webhook.ConstructEventWithOptions (HMAC-SHA256, five-minute tolerance,
//     which signedInFuture applies to the future too; the event's API version
//     is not checked, as only a few stable fields are
//     read). A bad signature is 400 and changes nothing.
//   - Idempotent by event id: the id is recorded (kept cosmos.StripeEventTTL)
//     before the event is applied; a replay is acknowledged with 200 and does
//     nothing. When applying fails the id is forgotten again and the answer is
//     500, so Stripe's retry applies it.
//   - customer.subscription.created / .updated set the user's tier from the
//     subscription's prices while its status is active, trialing or past_due;
//     customer.subscription.deleted, or any other status, sets free. The tier
//     of a price is its metadata "tier", else its lookup key ("pro", "team",
//     or one of them followed by _ or -, e.g. "team_yearly"); with several
//     items the highest wins.
//   - The user is the subscription's metadata flowstudio_user_id (the
//     FlowStudio user id, <tenant id>.<object id>): the Checkout Session must
//     set subscription_data.metadata.flowstudio_user_id. Events without it, or
//     for a user that no longer exists, are acknowledged and ignored.
//   - Out-of-order delivery: the user's subscription keeps the created time
//     of the last event applied (Subscription.UpdatedAt); an older event is
//     acknowledged and ignored. The end of a subscription other than the
//     user's current one is ignored too (a late cancellation of a replaced
//     subscription must not downgrade the new one).
//   - Leaving the team plan gives every cache item of the user a 30-day ttl
//     (items already expiring sooner keep theirs); coming back to team clears
//     that ttl to -1 (never).
//   - Unknown event types are acknowledged with 200. Payloads are never logged:
//     a line names only the event id, its type and the outcome.

// BillingStore is what the Stripe webhook needs from storage.
type BillingStore interface {
	MarkStripeEvent(ctx context.Context, eventID string) (first bool, err error)
	UnmarkStripeEvent(ctx context.Context, eventID string) error
	UpdateUser(ctx context.Context, id string, fn func(*cosmos.User) error) (*cosmos.User, error)
	SetUserCacheTTL(ctx context.Context, userID string, ttl int, when func(current int) bool) (int, error)
}

const (
	// MaxStripeBodyBytes caps a webhook body; subscription events are a few KiB.
	MaxStripeBodyBytes = 256 << 10
	// StripeUserIDKey is the subscription metadata key naming the user.
	StripeUserIDKey = billing.UserIDKey
)

var (
	stripeEventID   = pattern.MustClass(`^evt_[A-Za-z0-9_]{1,200}$`)
	stripeEventType = pattern.MustClass(`^[a-z_.]{1,100}$`)
)

// Outcomes of a webhook delivery, for the response and the log line.
const (
	outcomeApplied          = "applied"
	outcomeDuplicate        = "duplicate"
	outcomeIgnoredType      = "ignored: event type not handled"
	outcomeIgnoredStale     = "ignored: older than the last event applied"
	outcomeIgnoredNoUser    = "ignored: names no user (" + StripeUserIDKey + " or client_reference_id)"
	outcomeIgnoredUnknown   = "ignored: unknown user"
	outcomeIgnoredOther     = "ignored: ends a subscription the user no longer has"
	outcomeIgnoredNoTier    = "ignored: no price with a tier"
	outcomeIgnoredUnreadble = "ignored: event object not readable"
	outcomeIgnoredUnpaid    = "ignored: checkout not paid"
)

// errFutureSignature: the signature's timestamp is further ahead than the tolerance.
var errFutureSignature = errors.New("signature dated in the future")

// signedInFuture reports whether the Stripe-Signature header's timestamp lies more
// than webhook.DefaultTolerance ahead of now. stripe-go checks only the past, so a
// signature made with a clock (or on purpose) far ahead would stay replayable until
// that time plus the tolerance. A header without one readable timestamp fails the
// library's own check first.
func signedInFuture(header string, now time.Time) bool {
	for part := range strings.SplitSeq(header, ",") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(part), "t="); ok {
			t, err := strconv.ParseInt(v, 10, 64)
			return err != nil || time.Unix(t, 0).Sub(now) > webhook.DefaultTolerance
		}
	}
	return false
}

var (
	errStaleEvent        = errors.New("stale event")
	errOtherSubscription = errors.New("other subscription")
)

func (s *Server) stripeWebhook(w http.ResponseWriter, r *http.Request) {
	ref := zap.String(logsafe.KeyRequestID, rpc.RequestID(r.Context()))
	secret := s.deps.Settings.StripeWebhookSecret
	if secret == "" || s.deps.Billing == nil {
		s.log.Warn("stripe webhook refused", ref, zap.String("reason", "STRIPE_WEBHOOK_SECRET unset"))
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{
			"error": "Stripe webhooks are not configured on this server (STRIPE_WEBHOOK_SECRET is unset)"})
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxStripeBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeJSON(w, http.StatusRequestEntityTooLarge, map[string]string{"error": "body too large"})
			return
		}
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "could not read body"})
		return
	}
	header := r.Header.Get("Stripe-Signature")
	event, err := webhook.ConstructEventWithOptions(body, header, secret,
		webhook.ConstructEventOptions{IgnoreAPIVersionMismatch: true})
	if err == nil && signedInFuture(header, time.Now()) {
		err = errFutureSignature
	}
	if err != nil {
		s.log.Info("stripe webhook refused", ref, zap.String("reason", "invalid signature"))
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid signature"})
		return
	}
	if !stripeEventID.Match(event.ID) {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid event id"})
		return
	}
	typ := string(event.Type)
	if !stripeEventType.Match(typ) {
		typ = "‹invalid›"
	}
	logLine := func(outcome string) {
		s.log.Info("stripe event", ref, zap.String("event_id", event.ID), zap.String("event_type", typ), zap.String("outcome", outcome))
	}
	ctx := r.Context()
	first, err := s.deps.Billing.MarkStripeEvent(ctx, event.ID)
	if err != nil {
		s.log.Error("stripe event not recorded", ref, zap.String("event_id", event.ID), logsafe.Error(err))
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "store unavailable; retry"})
		return
	}
	if !first {
		logLine(outcomeDuplicate)
		writeJSON(w, http.StatusOK, map[string]any{"received": true, "outcome": outcomeDuplicate})
		return
	}
	outcome, err := s.applyStripeEvent(ctx, &event)
	if err != nil {
		// Forget the id so that Stripe's retry is applied; a failure here
		// only means the retry is acknowledged as a duplicate.
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if uerr := s.deps.Billing.UnmarkStripeEvent(uctx, event.ID); uerr != nil {
			s.log.Error("stripe event id not forgotten after a failure", ref, zap.String("event_id", event.ID), logsafe.Error(uerr))
		}
		s.log.Error("stripe event failed", ref, zap.String("event_id", event.ID), zap.String("event_type", typ), logsafe.Error(err))
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "not applied; retry"})
		return
	}
	logLine(outcome)
	writeJSON(w, http.StatusOK, map[string]any{"received": true, "outcome": outcome})
}

// applyStripeEvent applies one verified, first-seen event and returns its
// outcome; an error means it should be retried.
func (s *Server) applyStripeEvent(ctx context.Context, event *stripe.Event) (string, error) {
	if event.Data == nil {
		return outcomeIgnoredUnreadble, nil
	}
	switch event.Type {
	case "customer.subscription.created", "customer.subscription.updated", "customer.subscription.deleted":
		return s.applySubscription(ctx, event)
	case "checkout.session.completed":
		return s.applyCheckout(ctx, event)
	case "invoice.payment_failed":
		return s.applyPaymentFailed(ctx, event)
	}
	return outcomeIgnoredType, nil
}

// applySubscription: the tier from the subscription's prices while it is active,
// trialing or past_due; free once it ends.
func (s *Server) applySubscription(ctx context.Context, event *stripe.Event) (string, error) {
	var sub stripe.Subscription
	if json.Unmarshal(event.Data.Raw, &sub) != nil || !billing.ValidSubscriptionID(sub.ID) {
		return outcomeIgnoredUnreadble, nil
	}
	userID := sub.Metadata[StripeUserIDKey]
	if userID == "" {
		return outcomeIgnoredNoUser, nil
	}
	ended := event.Type == "customer.subscription.deleted"
	tier := cosmos.TierFree
	switch sub.Status {
	case stripe.SubscriptionStatusActive, stripe.SubscriptionStatusTrialing, stripe.SubscriptionStatusPastDue:
		if !ended {
			t, ok := s.subscriptionTier(&sub)
			if !ok {
				return outcomeIgnoredNoTier, nil
			}
			tier = t
		}
	case stripe.SubscriptionStatusCanceled, stripe.SubscriptionStatusUnpaid, stripe.SubscriptionStatusIncompleteExpired:
		ended = true
	}
	customerID := ""
	if sub.Customer != nil && billing.ValidCustomerID(sub.Customer.ID) {
		customerID = sub.Customer.ID
	}
	cancelAt := sub.CancelAt
	if cancelAt == 0 && sub.CancelAtPeriodEnd {
		cancelAt = periodEnd(&sub)
	}
	return s.applyTier(ctx, userID, event.Created, tier, ended, func(cur *cosmos.Subscription) {
		paymentFailed := cur.PaymentFailedAt
		if sub.Status == stripe.SubscriptionStatusActive || sub.Status == stripe.SubscriptionStatusTrialing || ended {
			paymentFailed = 0
		}
		if customerID == "" {
			customerID = cur.CustomerID
		}
		*cur = cosmos.Subscription{Status: string(sub.Status), CustomerID: customerID, SubscriptionID: sub.ID,
			UpdatedAt: event.Created, PaymentFailedAt: paymentFailed}
		if !ended {
			cur.CancelAt = cancelAt
		}
	}, sub.ID)
}

// applyCheckout links the buyer's customer and subscription to the user named by
// the session's client_reference_id, and gives the plan the session bought (its
// metadata, which only this server sets: the event is signed) once it is paid.
// The subscription events that follow keep the tier in step with the price.
func (s *Server) applyCheckout(ctx context.Context, event *stripe.Event) (string, error) {
	var cs stripe.CheckoutSession
	if json.Unmarshal(event.Data.Raw, &cs) != nil || cs.Mode != stripe.CheckoutSessionModeSubscription || cs.Subscription == nil ||
		!billing.ValidSubscriptionID(cs.Subscription.ID) || cs.Customer == nil || !billing.ValidCustomerID(cs.Customer.ID) {
		return outcomeIgnoredUnreadble, nil
	}
	userID := cs.ClientReferenceID
	if userID == "" {
		return outcomeIgnoredNoUser, nil
	}
	if cs.Status != stripe.CheckoutSessionStatusComplete || (cs.PaymentStatus != stripe.CheckoutSessionPaymentStatusPaid &&
		cs.PaymentStatus != stripe.CheckoutSessionPaymentStatusNoPaymentRequired) {
		return outcomeIgnoredUnpaid, nil
	}
	tier, ok := cosmos.ParseTier(cs.Metadata[billing.TierKey])
	if !ok || tier == cosmos.TierFree {
		return outcomeIgnoredNoTier, nil
	}
	return s.applyTier(ctx, userID, event.Created, tier, false, func(cur *cosmos.Subscription) {
		*cur = cosmos.Subscription{Status: string(stripe.SubscriptionStatusActive), CustomerID: cs.Customer.ID,
			SubscriptionID: cs.Subscription.ID, UpdatedAt: event.Created}
	}, cs.Subscription.ID)
}

// applyPaymentFailed records a failed payment for the dashboard's warning; the
// plan stays until Stripe ends the subscription (customer.subscription.updated
// or .deleted).
func (s *Server) applyPaymentFailed(ctx context.Context, event *stripe.Event) (string, error) {
	var inv stripe.Invoice
	if json.Unmarshal(event.Data.Raw, &inv) != nil || inv.Parent == nil || inv.Parent.SubscriptionDetails == nil ||
		inv.Parent.SubscriptionDetails.Subscription == nil {
		return outcomeIgnoredUnreadble, nil
	}
	details := inv.Parent.SubscriptionDetails
	userID := details.Metadata[StripeUserIDKey]
	if userID == "" {
		return outcomeIgnoredNoUser, nil
	}
	_, err := s.deps.Billing.UpdateUser(ctx, userID, func(u *cosmos.User) error {
		if u.Subscription.SubscriptionID != "" && u.Subscription.SubscriptionID != details.Subscription.ID {
			return errOtherSubscription
		}
		if event.Created < u.Subscription.UpdatedAt {
			return errStaleEvent
		}
		u.Subscription.PaymentFailedAt = event.Created
		return nil
	})
	return outcomeOf(err)
}

// applyTier sets the user's tier and subscription (edit) unless the event is
// older than the last one applied, or ends a subscription other than the user's,
// then moves the Team cache's ttl.
func (s *Server) applyTier(ctx context.Context, userID string, created int64, tier cosmos.Tier, ended bool,
	edit func(*cosmos.Subscription), subscriptionID string) (string, error) {
	_, err := s.deps.Billing.UpdateUser(ctx, userID, func(u *cosmos.User) error {
		cur := u.Subscription
		if created < cur.UpdatedAt {
			return errStaleEvent
		}
		if ended && cur.SubscriptionID != "" && cur.SubscriptionID != subscriptionID {
			return errOtherSubscription
		}
		u.Tier = cosmos.Tier(tier)
		edit(&u.Subscription)
		return nil
	})
	if outcome, err := outcomeOf(err); outcome != outcomeApplied || err != nil {
		return outcome, err
	}
	// The cache: every step is idempotent, so a retry after a failure here
	// finishes the job.
	if tier == cosmos.TierTeam {
		_, err = s.deps.Billing.SetUserCacheTTL(ctx, userID, -1, func(cur int) bool { return cur == teamcache.CanceledCacheTTL })
	} else {
		_, err = s.deps.Billing.SetUserCacheTTL(ctx, userID, teamcache.CanceledCacheTTL,
			func(cur int) bool { return cur <= 0 || cur > teamcache.CanceledCacheTTL })
	}
	if err != nil {
		return "", err
	}
	return outcomeApplied, nil
}

func outcomeOf(err error) (string, error) {
	switch {
	case err == nil:
		return outcomeApplied, nil
	case errors.Is(err, errStaleEvent):
		return outcomeIgnoredStale, nil
	case errors.Is(err, errOtherSubscription):
		return outcomeIgnoredOther, nil
	case errors.Is(err, cosmos.ErrNotFound):
		return outcomeIgnoredUnknown, nil
	}
	return "", err
}

// periodEnd is when the subscription's current period ends (the latest of its
// items': Stripe keeps the period per item).
func periodEnd(sub *stripe.Subscription) int64 {
	var end int64
	if sub.Items != nil {
		for _, it := range sub.Items.Data {
			if it != nil && it.CurrentPeriodEnd > end {
				end = it.CurrentPeriodEnd
			}
		}
	}
	return end
}

// subscriptionTier is the highest tier among the subscription's prices.
func (s *Server) subscriptionTier(sub *stripe.Subscription) (cosmos.Tier, bool) {
	var best cosmos.Tier
	found := false
	if sub.Items == nil {
		return "", false
	}
	for _, item := range sub.Items.Data {
		if item == nil || item.Price == nil {
			continue
		}
		t, ok := s.priceTier(item.Price)
		if ok && (!found || !best.AtLeast(t)) {
			best, found = t, true
		}
	}
	return best, found
}

// priceTier: STRIPE_PRICE_PRO and STRIPE_PRICE_TEAM by id, else the price's
// metadata "tier", else its lookup key.
func (s *Server) priceTier(p *stripe.Price) (cosmos.Tier, bool) {
	switch st := s.deps.Settings; {
	case p.ID != "" && p.ID == st.StripePriceTeam:
		return cosmos.TierTeam, true
	case p.ID != "" && p.ID == st.StripePricePro:
		return cosmos.TierPro, true
	}
	if t, ok := cosmos.ParseTier(strings.ToLower(strings.TrimSpace(p.Metadata["tier"]))); ok {
		return t, true
	}
	key := strings.ToLower(p.LookupKey)
	for _, t := range []cosmos.Tier{cosmos.TierFree, cosmos.TierPro, cosmos.TierTeam} {
		if key == string(t) || strings.HasPrefix(key, string(t)+"_") || strings.HasPrefix(key, string(t)+"-") {
			return t, true
		}
	}
	return "", false
}
