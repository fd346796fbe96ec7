package server

import (
	"net/http"
	"time"

	"github.com/flowstudio/mcp/cosmos"
	"github.com/flowstudio/mcp/rpc"
	"github.com/flowstudio/mcp/rpc/logsafe"
	"github.com/flowstudio/mcp/server/billing"
	"go.uber.org/zap"
)

// The dashboard's plans: what each includes, Upgrade (a Stripe Checkout Session)
// and Manage billing (the Stripe Customer Portal, where a plan is changed or
// cancelled). Stripe's pages take the card; what Stripe reports comes back through
// the webhook (stripe.go), which alone changes the tier.

// planView is one plan as the dashboard shows it.
type planView struct {
	Tier, Name          string
	PerDay, PerMinute   int64
	StoreTools          bool
	Current, CanUpgrade bool
}

// billingView is the dashboard's billing state.
type billingView struct {
	On            bool   // STRIPE_SECRET_KEY is set
	Subscribed    bool   // a live subscription: changes go through the portal
	HasCustomer   bool   // Manage billing is offered
	CancelAt      string // the date a subscription set to cancel ends
	PaymentFailed bool
}

func (s *Server) plansView(u *cosmos.User) ([]planView, billingView) {
	q := s.quotas()
	cur, _ := cosmos.ParseTier(string(u.Tier))
	if cur == "" {
		cur = cosmos.TierFree
	}
	b := billingView{On: s.deps.Stripe.Enabled(), HasCustomer: billing.ValidCustomerID(u.Subscription.CustomerID),
		PaymentFailed: u.Subscription.PaymentFailedAt != 0 || u.Subscription.Status == "past_due"}
	switch u.Subscription.Status {
	case "active", "trialing", "past_due":
		b.Subscribed = u.Subscription.SubscriptionID != "" && cur != cosmos.TierFree
	}
	if u.Subscription.CancelAt != 0 && b.Subscribed {
		b.CancelAt = time.Unix(u.Subscription.CancelAt, 0).UTC().Format("2 January 2006")
	}
	var plans []planView
	for _, t := range []cosmos.Tier{cosmos.TierFree, cosmos.TierPro, cosmos.TierTeam} {
		quota := q.For(t)
		plans = append(plans, planView{Tier: string(t), Name: tierTitle(cosmos.Tier(t)), PerDay: quota.PerDay, PerMinute: quota.PerMinute,
			StoreTools: t.AtLeast(cosmos.TierTeam), Current: t == cur, CanUpgrade: b.On && !cur.AtLeast(t)})
	}
	return plans, b
}

// billingPost is postGuard for the billing forms, which a server without Stripe
// refuses.
func (s *Server) billingPost(w http.ResponseWriter, r *http.Request) (*webSession, bool) {
	sess, ok := s.postGuard(w, r)
	if ok && !s.deps.Stripe.Enabled() {
		s.renderError(w, r, http.StatusNotFound, "Billing is off", "This server has no Stripe account configured, so plans cannot be bought or managed here.")
		return nil, false
	}
	return sess, ok
}

// checkout starts a Stripe Checkout Session for the plan in the form. A user who
// already pays goes to the Customer Portal instead, which changes the plan of the
// subscription they have (a second subscription would bill twice).
func (s *Server) checkout(w http.ResponseWriter, r *http.Request) {
	sess, ok := s.billingPost(w, r)
	if !ok {
		return
	}
	tier, ok := cosmos.ParseTier(r.PostForm.Get("plan"))
	if !ok || tier == cosmos.TierFree {
		s.renderError(w, r, http.StatusBadRequest, "Unknown plan", "Choose Pro or Team on the dashboard.")
		return
	}
	u, ok := s.sessionUser(w, r, sess)
	if !ok {
		return
	}
	if _, b := s.plansView(u); b.Subscribed {
		s.portal(w, r, u)
		return
	}
	site := s.siteURL(r)
	target, err := s.deps.Stripe.Checkout(r.Context(), billing.CheckoutRequest{UserID: u.ID, CustomerID: u.Subscription.CustomerID,
		Tier: tier, SuccessURL: site + "/dashboard?done=checkout", CancelURL: site + "/dashboard?done=checkout-cancelled#plans"})
	if err != nil {
		s.billingError(w, r, err)
		return
	}
	s.log.Info("checkout started", zap.String(logsafe.KeyRequestID, rpc.RequestID(r.Context())), zap.String("email_hash", u.EmailHash),
		zap.String("plan", string(tier)))
	s.toStripe(w, r, target, "Taking you to Stripe's checkout", "Stripe's secure checkout for the "+tierTitle(tier)+" plan opens now.")
}

// manageBilling opens the Stripe Customer Portal for the signed-in user.
func (s *Server) manageBilling(w http.ResponseWriter, r *http.Request) {
	sess, ok := s.billingPost(w, r)
	if !ok {
		return
	}
	u, err := s.deps.Accounts.GetUser(r.Context(), sess.UserID)
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	s.portal(w, r, u)
}

func (s *Server) portal(w http.ResponseWriter, r *http.Request, u *cosmos.User) {
	if !billing.ValidCustomerID(u.Subscription.CustomerID) {
		s.renderError(w, r, http.StatusConflict, "No billing account yet", "You have not bought a plan yet. Choose one under Plans on the dashboard.")
		return
	}
	target, err := s.deps.Stripe.Portal(r.Context(), u.Subscription.CustomerID, s.siteURL(r)+"/dashboard#plans")
	if err != nil {
		s.billingError(w, r, err)
		return
	}
	s.toStripe(w, r, target, "Taking you to Stripe's billing portal", "There you change or cancel your plan, update your card and download invoices.")
}

// toStripe sends the browser on to a Stripe page. Not with a redirect: the pages'
// CSP has form-action 'self', which browsers apply to where a form's answer
// redirects, so a 303 to Stripe after a POST would be blocked. A page that
// refreshes to Stripe (and links there, should refresh be off) keeps the CSP as it is.
func (s *Server) toStripe(w http.ResponseWriter, r *http.Request, target, title, msg string) {
	s.render(w, r, http.StatusOK, "redirect", pageData{Title: title, Message: msg, Target: target, Refresh: "0;url=" + target})
}

func (s *Server) billingError(w http.ResponseWriter, r *http.Request, err error) {
	id := rpc.RequestID(r.Context())
	s.log.Error("stripe call failed", zap.String(logsafe.KeyRequestID, id), logsafe.Error(err))
	s.renderError(w, r, http.StatusBadGateway, "Stripe did not answer",
		"Stripe could not start this right now (reference "+id+"). Nothing was charged; please try again in a minute.")
}
