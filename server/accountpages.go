package server

import (
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/flowstudio/mcp/cosmos"
	"github.com/flowstudio/mcp/rpc"
	"github.com/flowstudio/mcp/rpc/logsafe"
	"github.com/flowstudio/mcp/server/account"
	"go.uber.org/zap"
)

// "What is kept" (GET /dashboard/data and its JSON download) and "Delete my
// account" (GET /dashboard/delete asks, POST /dashboard/delete does it), over
// package account.

// accountDeps are what account.Delete acts on here.
func (s *Server) accountDeps() account.Deps {
	d := account.Deps{Store: s.deps.AccountData, Settle: account.DefaultSettle}
	if s.deps.Stripe.Enabled() {
		d.Stripe = s.deps.Stripe
	}
	return d
}

// signedInUser is the session's user, or false once it has answered (a redirect
// home when signed out or deleted, an error page).
func (s *Server) signedInUser(w http.ResponseWriter, r *http.Request) (*webSession, *cosmos.User, bool) {
	sess := s.session(r)
	if sess == nil {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return nil, nil, false
	}
	u, ok := s.sessionUser(w, r, sess)
	return sess, u, ok
}

// sessionUser is the user of a session, or false once it has answered: the session
// of a user who no longer exists ends (endSession), a store failure is an error page.
func (s *Server) sessionUser(w http.ResponseWriter, r *http.Request, sess *webSession) (*cosmos.User, bool) {
	u, err := s.deps.Accounts.GetUser(r.Context(), sess.UserID)
	if errors.Is(err, cosmos.ErrNotFound) {
		s.endSession(w, r)
		return nil, false
	}
	if err != nil {
		s.internalError(w, r, err)
		return nil, false
	}
	return u, true
}

// endSession clears this browser's session cookie and sends it to the home page.
func (s *Server) endSession(w http.ResponseWriter, r *http.Request) {
	s.clearCookie(w, r, sessionCookie)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// collectSignedIn gathers what is kept about the signed-in user; false when the
// request has been answered (not signed in, or the store failed).
func (s *Server) collectSignedIn(w http.ResponseWriter, r *http.Request) (*webSession, *account.Export, bool) {
	sess, _, ok := s.signedInUser(w, r)
	if !ok {
		return nil, nil, false
	}
	e, err := account.Collect(r.Context(), s.deps.AccountData, sess.UserID, time.Now())
	if err != nil {
		s.internalError(w, r, err)
		return nil, nil, false
	}
	return sess, e, true
}

func (s *Server) dataPage(w http.ResponseWriter, r *http.Request) {
	sess, e, ok := s.collectSignedIn(w, r)
	if !ok {
		return
	}
	s.render(w, r, http.StatusOK, "data", pageData{Title: "What we keep about you", Session: sess, Data: e})
}

func (s *Server) dataJSON(w http.ResponseWriter, r *http.Request) {
	_, e, ok := s.collectSignedIn(w, r)
	if !ok {
		return
	}
	b, err := json.MarshalIndent(e, "", "  ")
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	noStore(w)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="flowstudio-my-data.json"`)
	_, _ = w.Write(append(b, '\n'))
}

// deleteView is what the confirmation and done pages show.
type deleteView struct {
	Subscription  bool // a live subscription will be cancelled first
	BillingOff    bool // ... and cannot be: billing is off here
	LogRetention  string
	StripeRecords string
	Done          *account.Deleted
}

func (s *Server) deletePage(w http.ResponseWriter, r *http.Request) {
	sess, u, ok := s.signedInUser(w, r)
	if !ok {
		return
	}
	v := &deleteView{Subscription: account.Live(u.Subscription), LogRetention: account.LogRetention, StripeRecords: account.StripeRetention}
	v.BillingOff = v.Subscription && !s.deps.Stripe.Enabled()
	s.render(w, r, http.StatusOK, "delete", pageData{Title: "Delete my account", Session: sess, Delete: v})
}

// deleteAccountConfirm is the value the confirmation form's button sends: a post
// without it (a replayed or hand-made form) deletes nothing.
const deleteAccountConfirm = "delete-everything"

func (s *Server) deleteAccount(w http.ResponseWriter, r *http.Request) {
	sess, ok := s.postGuard(w, r)
	if !ok {
		return
	}
	if r.PostForm.Get("confirm") != deleteAccountConfirm {
		s.renderError(w, r, http.StatusBadRequest, "Not confirmed", "Nothing was deleted. Open Delete my account on the dashboard and confirm there.")
		return
	}
	ref := zap.String(logsafe.KeyRequestID, rpc.RequestID(r.Context()))
	done, err := account.Delete(r.Context(), s.accountDeps(), sess.UserID)
	switch {
	case errors.Is(err, cosmos.ErrNotFound):
		s.endSession(w, r)
		return
	case errors.Is(err, account.ErrSubscriptionNotCancellable):
		s.renderError(w, r, http.StatusConflict, "Cancel your subscription first",
			"Billing is off on this server, so it cannot cancel your Stripe subscription for you. Nothing was deleted.")
		return
	case err != nil:
		s.log.Error("account deletion incomplete", ref, zap.String("email_hash", done.EmailHash), logsafe.Error(err))
		s.renderError(w, r, http.StatusInternalServerError, "Deletion not finished",
			"Something failed part-way (reference "+rpc.RequestID(r.Context())+"). Your keys and Microsoft token are already gone if that step was reached; try again to finish, it is safe to repeat.")
		return
	}
	s.log.Info("account deleted", ref, zap.String("email_hash", done.EmailHash), zap.Bool("subscription_cancelled", done.SubscriptionCancelled),
		zap.Int("cache_items", done.CacheItems), zap.Int("usage_counters", done.UsageCounters), zap.Int("bug_reports", done.BugReports),
		zap.Int("oauth_grants", done.Grants), zap.Int("oauth_tokens", done.OAuthTokens))
	s.clearCookie(w, r, sessionCookie)
	s.render(w, r, http.StatusOK, "deleted", pageData{Title: "Account deleted", Session: nil, NoSession: true,
		Delete: &deleteView{Done: &done, LogRetention: account.LogRetention, StripeRecords: account.StripeRetention}})
}
