package server

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/flowstudio/mcp/cosmos"
	"github.com/flowstudio/mcp/rpc"
	"github.com/flowstudio/mcp/rpc/logsafe"
	"github.com/flowstudio/mcp/tools/teamcache"
	"github.com/stripe/stripe-go/v82"
	"github.com/stripe/stripe-go/v82/webhook"
	"go.uber.org/zap"
)

// Stripe webhook: POST /webhooks/stripe.
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
	StripeUserIDKey = "flowstudio_user_id"
)

var (
	stripeEventID   = regexp.MustCompile(`^evt_[A-Za-z0-9_]{1,200}$`)
	stripeEventType = regexp.MustCompile(`^[a-z_.]{1,100}$`)
)

// Outcomes of a webhook delivery, for the response and the log line.
const (
	outcomeApplied          = "applied"
	outcomeDuplicate        = "duplicate"
	outcomeIgnoredType      = "ignored: event type not handled"
	outcomeIgnoredStale     = "ignored: older than the last event applied"
	outcomeIgnoredNoUser    = "ignored: no " + StripeUserIDKey + " in subscription metadata"
	outcomeIgnoredUnknown   = "ignored: unknown user"
	outcomeIgnoredOther     = "ignored: ends a subscription the user no longer has"
	outcomeIgnoredNoTier    = "ignored: no price with a tier"
	outcomeIgnoredUnreadble = "ignored: subscription not readable"
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
	if !stripeEventID.MatchString(event.ID) {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid event id"})
		return
	}
	typ := string(event.Type)
	if !stripeEventType.MatchString(typ) {
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
	switch event.Type {
	case "customer.subscription.created", "customer.subscription.updated", "customer.subscription.deleted":
	default:
		return outcomeIgnoredType, nil
	}
	var sub stripe.Subscription
	if event.Data == nil || json.Unmarshal(event.Data.Raw, &sub) != nil || sub.ID == "" {
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
			t, ok := subscriptionTier(&sub)
			if !ok {
				return outcomeIgnoredNoTier, nil
			}
			tier = t
		}
	case stripe.SubscriptionStatusCanceled, stripe.SubscriptionStatusUnpaid, stripe.SubscriptionStatusIncompleteExpired:
		ended = true
	}
	customerID := ""
	if sub.Customer != nil {
		customerID = sub.Customer.ID
	}

	_, err := s.deps.Billing.UpdateUser(ctx, userID, func(u *cosmos.User) error {
		cur := u.Subscription
		if event.Created < cur.UpdatedAt {
			return errStaleEvent
		}
		if ended && cur.SubscriptionID != "" && cur.SubscriptionID != sub.ID {
			return errOtherSubscription
		}
		u.Tier = tier
		u.Subscription = cosmos.Subscription{Status: string(sub.Status), CustomerID: customerID,
			SubscriptionID: sub.ID, UpdatedAt: event.Created}
		return nil
	})
	switch {
	case errors.Is(err, errStaleEvent):
		return outcomeIgnoredStale, nil
	case errors.Is(err, errOtherSubscription):
		return outcomeIgnoredOther, nil
	case errors.Is(err, cosmos.ErrNotFound):
		return outcomeIgnoredUnknown, nil
	case err != nil:
		return "", err
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

// subscriptionTier is the highest tier among the subscription's prices.
func subscriptionTier(sub *stripe.Subscription) (cosmos.Tier, bool) {
	var best cosmos.Tier
	found := false
	if sub.Items == nil {
		return "", false
	}
	for _, item := range sub.Items.Data {
		if item == nil || item.Price == nil {
			continue
		}
		t, ok := priceTier(item.Price)
		if ok && (!found || !best.AtLeast(t)) {
			best, found = t, true
		}
	}
	return best, found
}

func priceTier(p *stripe.Price) (cosmos.Tier, bool) {
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
