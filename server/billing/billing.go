// Package billing calls Stripe's API for the dashboard and account deletion:
// a Checkout Session to buy a plan, a Customer Portal session to change or
// cancel it, and cancelling a subscription when an account is deleted. Card
// data never touches FlowStudio: Stripe's own pages take it. The webhook that
// applies what Stripe reports lives in server (stripe.go).
package billing

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/flowstudio/mcp/cosmos"
	"github.com/flowstudio/mcp/tools/pattern"
	"github.com/stripe/stripe-go/v82"
)

// Metadata keys FlowStudio sets on what it creates at Stripe.
const (
	// UserIDKey names the FlowStudio user (<tenant id>.<object id>) on the
	// Checkout Session and on the subscription it creates.
	UserIDKey = "flowstudio_user_id"
	// TierKey names the plan a Checkout Session buys.
	TierKey = "flowstudio_tier"
)

// Config is the Stripe account FlowStudio uses.
type Config struct {
	SecretKey string // STRIPE_SECRET_KEY; empty: billing is off (New returns nil)
	APIBase   string // STRIPE_API_BASE; empty: https://api.stripe.com
	PricePro  string // STRIPE_PRICE_PRO
	PriceTeam string // STRIPE_PRICE_TEAM
}

// Client calls Stripe. A nil *Client means billing is off.
//
// It calls the three endpoints it needs through stripe-go's Backend, as stripe-go's
// own services do (one Backend.Call each), rather than through stripe.Client: that
// one builds all of Stripe's two hundred services, whose code made up an eighth of
// the server binary (and of its idle memory) for three calls.
type Client struct {
	api    stripe.Backend
	key    string
	prices map[cosmos.Tier]string
}

// New returns a client, or nil when cfg has no secret key.
func New(cfg Config) *Client {
	if cfg.SecretKey == "" {
		return nil
	}
	bc := &stripe.BackendConfig{
		HTTPClient:        &http.Client{Timeout: 20 * time.Second},
		MaxNetworkRetries: stripe.Int64(2),
		// stripe-go's own log lines may quote request details; ours say enough.
		LeveledLogger: &stripe.LeveledLogger{Level: stripe.LevelNull},
	}
	if cfg.APIBase != "" {
		bc.URL = stripe.String(cfg.APIBase)
	}
	return &Client{
		api:    stripe.GetBackendWithConfig(stripe.APIBackend, bc),
		key:    cfg.SecretKey,
		prices: map[cosmos.Tier]string{cosmos.TierPro: cfg.PricePro, cosmos.TierTeam: cfg.PriceTeam},
	}
}

// Enabled reports whether billing is on.
func (c *Client) Enabled() bool { return c != nil }

// Ids that go into Stripe URLs or parameters are checked first.
var (
	customerID     = pattern.MustClass(`^cus_[A-Za-z0-9]{1,200}$`)
	subscriptionID = pattern.MustClass(`^sub_[A-Za-z0-9]{1,200}$`)
)

// ValidCustomerID and ValidSubscriptionID check ids before they are stored or sent.
func ValidCustomerID(id string) bool     { return customerID.Match(id) }
func ValidSubscriptionID(id string) bool { return subscriptionID.Match(id) }

// ErrOff is returned by every call when billing is off.
var ErrOff = errors.New("billing: STRIPE_SECRET_KEY is not set")

// CheckoutRequest is one purchase of a plan.
type CheckoutRequest struct {
	UserID     string
	CustomerID string // the user's Stripe customer, when known (a returning buyer)
	Tier       cosmos.Tier
	SuccessURL string
	CancelURL  string
}

// Checkout creates a Checkout Session in subscription mode for the plan's price,
// with client_reference_id and metadata naming the user, and returns its URL.
func (c *Client) Checkout(ctx context.Context, r CheckoutRequest) (string, error) {
	if c == nil {
		return "", ErrOff
	}
	price := c.prices[r.Tier]
	if price == "" {
		return "", fmt.Errorf("billing: no price for the %s plan", r.Tier)
	}
	p := &stripe.CheckoutSessionCreateParams{
		Mode:              stripe.String(string(stripe.CheckoutSessionModeSubscription)),
		LineItems:         []*stripe.CheckoutSessionCreateLineItemParams{{Price: stripe.String(price), Quantity: stripe.Int64(1)}},
		ClientReferenceID: stripe.String(r.UserID),
		SuccessURL:        stripe.String(r.SuccessURL),
		CancelURL:         stripe.String(r.CancelURL),
		Metadata:          map[string]string{UserIDKey: r.UserID, TierKey: string(r.Tier)},
		SubscriptionData:  &stripe.CheckoutSessionCreateSubscriptionDataParams{Metadata: map[string]string{UserIDKey: r.UserID}},
	}
	if r.CustomerID != "" {
		if !ValidCustomerID(r.CustomerID) {
			return "", errors.New("billing: stored customer id is malformed")
		}
		p.Customer = stripe.String(r.CustomerID)
	}
	var s stripe.CheckoutSession
	return c.hostedSession(ctx, "/v1/checkout/sessions", "checkout", p, &s, &s.URL)
}

// Portal creates a Customer Portal session for the customer and returns its URL.
func (c *Client) Portal(ctx context.Context, customer, returnURL string) (string, error) {
	if c == nil {
		return "", ErrOff
	}
	if !ValidCustomerID(customer) {
		return "", errors.New("billing: no valid customer id")
	}
	p := &stripe.BillingPortalSessionCreateParams{Customer: stripe.String(customer), ReturnURL: stripe.String(returnURL)}
	var s stripe.BillingPortalSession
	return c.hostedSession(ctx, "/v1/billing_portal/sessions", "portal", p, &s, &s.URL)
}

// hostedSession creates a session on one of Stripe's hosted pages (Checkout, the
// Customer Portal) into out, and returns the page's URL, which Stripe sets in url.
func (c *Client) hostedSession(ctx context.Context, path, what string, p stripe.ParamsContainer, out stripe.LastResponseSetter, url *string) (string, error) {
	p.GetParams().Context = ctx
	if err := c.api.Call(http.MethodPost, path, c.key, p, out); err != nil {
		return "", fmt.Errorf("billing: create %s session: %w", what, safeError(err))
	}
	return checkURL(*url)
}

// Cancel ends a subscription now (account deletion). A subscription Stripe does
// not know (deleted before) counts as cancelled.
func (c *Client) Cancel(ctx context.Context, subscription string) error {
	if c == nil {
		return ErrOff
	}
	if !ValidSubscriptionID(subscription) {
		return errors.New("billing: subscription id is malformed")
	}
	p := &stripe.SubscriptionCancelParams{}
	p.Context = ctx
	err := c.api.Call(http.MethodDelete, stripe.FormatURLPath("/v1/subscriptions/%s", subscription), c.key, p, &stripe.Subscription{})
	var se *stripe.Error
	if errors.As(err, &se) && se.Code == stripe.ErrorCodeResourceMissing {
		return nil
	}
	if err != nil {
		return fmt.Errorf("billing: cancel subscription: %w", safeError(err))
	}
	return nil
}

// checkURL accepts only an absolute https URL to send a browser to.
func checkURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return "", errors.New("billing: Stripe answered without an https URL")
	}
	return raw, nil
}

// safeError keeps Stripe's error type, code and status, never its message (which
// may quote what was sent).
func safeError(err error) error {
	var se *stripe.Error
	if errors.As(err, &se) {
		return fmt.Errorf("stripe %s (%s, HTTP %d)", se.Type, se.Code, se.HTTPStatusCode)
	}
	return errors.New("stripe request failed")
}
