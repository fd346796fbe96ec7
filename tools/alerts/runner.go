package alerts

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/flowstudio/mcp/cosmos"
	"github.com/flowstudio/mcp/tools/teamcache"
)

// Mailer sends one plain-text email (package notify's SMTP mailer).
type Mailer interface {
	Send(ctx context.Context, to []string, subject, body string) error
}

// Poster POSTs a signed JSON body to a user's webhook (package notify).
type Poster interface {
	Post(ctx context.Context, url string, secret, body []byte) error
}

// Observer says what is known of a monitored flow's runs; ok false skips the flow
// this time (nothing known yet).
type Observer func(ctx context.Context, g teamcache.Governance) (obs Observation, ok bool, err error)

// Options configure a Runner; Mail and Webhook nil mean not configured.
type Options struct {
	Store   teamcache.Store
	Mail    Mailer
	Webhook Poster
	// WebhookSecret is the key a user's webhook calls are signed with.
	WebhookSecret func(userID string) []byte
	// PortalURL is where links point (the Power Automate portal).
	PortalURL string
	Logger    *zap.Logger
	Now       func() time.Time
}

// Runner evaluates monitored flows and raises alerts.
type Runner struct{ o Options }

// DefaultPortalURL is the Power Automate portal of the public cloud.
const DefaultPortalURL = "https://make.powerautomate.com"

// New returns a Runner.
func New(o Options) (*Runner, error) {
	if o.Store == nil {
		return nil, errors.New("alerts: a store is required")
	}
	if o.PortalURL == "" {
		o.PortalURL = DefaultPortalURL
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Runner{o: o}, nil
}

// Delivery outcomes recorded on an alert.
const (
	DeliverySent          = "sent"
	DeliveryFailed        = "failed"
	DeliveryNotConfigured = "not configured"
	DeliveryNone          = "none"
)

// Report counts what one user's evaluation did.
type Report struct {
	Monitored, Raised, Recovered, Skipped int
}

// maxMonitored bounds the governance items one evaluation reads per user.
const maxMonitored = 5000

// FromCache observes a flow through the flowStats item the last sync wrote.
func FromCache(store teamcache.Store, userID string) Observer {
	return func(ctx context.Context, g teamcache.Governance) (Observation, bool, error) {
		it, err := store.GetCacheItem(ctx, userID, teamcache.KindFlowStats, teamcache.Key(g.EnvironmentName, g.FlowName))
		if errors.Is(err, cosmos.ErrNotFound) {
			return Observation{}, false, nil
		}
		if err != nil {
			return Observation{}, false, err
		}
		var st teamcache.FlowStats
		if err := json.Unmarshal(it.Body, &st); err != nil {
			return Observation{}, false, err
		}
		return Observation{Runs: st.Recent, Rate: st.FailureRate, Window: st.Window, HasRate: true}, true, nil
	}
}

// EvaluateUser evaluates every monitored flow of a user with observe, raising and
// closing incidents. One flow's failure is logged and the others go on.
func (r *Runner) EvaluateUser(ctx context.Context, userID string, observe Observer) (Report, error) {
	var rep Report
	monitored, err := r.monitored(ctx, userID)
	if err != nil {
		return rep, err
	}
	if len(monitored) == 0 {
		return rep, nil
	}
	var settings *teamcache.AlertSettings
	envNames := map[string]string{}
	for _, g := range monitored {
		rep.Monitored++
		if ctx.Err() != nil {
			return rep, ctx.Err()
		}
		raised, recovered, err := r.evaluateFlow(ctx, userID, g, observe, envNames, &settings)
		if err != nil {
			rep.Skipped++
			r.o.Logger.Warn("alert evaluation failed", zap.String("flow", flowRef(g)), zap.String("error_kind", errorKind(err)))
			continue
		}
		rep.Raised += raised
		rep.Recovered += recovered
	}
	return rep, nil
}

// monitored reads the user's governance items with monitor on and a rule.
func (r *Runner) monitored(ctx context.Context, userID string) ([]teamcache.Governance, error) {
	var out []teamcache.Governance
	token := ""
	for read := 0; read < maxMonitored; {
		items, next, err := r.o.Store.ListCacheItems(ctx, userID, cosmos.CacheFilter{Kind: teamcache.KindGovernance}, cosmos.PageRequest{Size: 500, Token: token})
		if err != nil {
			return nil, err
		}
		read += len(items)
		for _, it := range items {
			var g teamcache.Governance
			if json.Unmarshal(it.Body, &g) != nil || !g.Monitor || len(g.NotifyRules) == 0 || it.TTL > 0 {
				continue // a flow gone from the cache (orphan ttl) is not watched
			}
			out = append(out, g)
		}
		if next == "" {
			break
		}
		token = next
	}
	return out, nil
}

func (r *Runner) evaluateFlow(ctx context.Context, userID string, g teamcache.Governance, observe Observer,
	envNames map[string]string, settings **teamcache.AlertSettings) (raised, recovered int, err error) {
	key := teamcache.Key(g.EnvironmentName, g.FlowName)
	fi, err := r.o.Store.GetCacheItem(ctx, userID, teamcache.KindFlow, key)
	if errors.Is(err, cosmos.ErrNotFound) {
		return 0, 0, nil // not in the cache (yet): nothing to name it by
	}
	if err != nil {
		return 0, 0, err
	}
	var f teamcache.Flow
	if err := json.Unmarshal(fi.Body, &f); err != nil {
		return 0, 0, err
	}
	obs, ok, err := observe(ctx, g)
	if err != nil || !ok {
		return 0, 0, err
	}
	si, err := r.o.Store.GetCacheItem(ctx, userID, teamcache.KindAlertState, key)
	if err != nil && !errors.Is(err, cosmos.ErrNotFound) {
		return 0, 0, err
	}
	var st teamcache.AlertState
	if si != nil {
		if err := json.Unmarshal(si.Body, &st); err != nil {
			return 0, 0, err
		}
	}
	now := r.o.Now().UTC()
	next, opened, closed := evaluate(g, f, obs, st, now)
	stamp := now.Format("20060102T150405.000000000Z")
	for i, op := range opened {
		op.alertKey = stamp + "." + key + "." + itoa(i)
		if inc := next.Open[op.key]; inc != nil && !op.recovered {
			inc.AlertKey = op.alertKey
		}
	}
	if !changed(st, next) && si != nil {
		return 0, 0, nil
	}
	// The state is written first, under its ETag: of two evaluations racing on a
	// flow only one commits, and only the one that committed raises the alert.
	body, err := json.Marshal(next)
	if err != nil {
		return 0, 0, err
	}
	if si == nil {
		_, err = r.o.Store.CreateCacheItem(ctx, &cosmos.CacheItem{UserID: userID, Kind: teamcache.KindAlertState, Key: key, Body: body})
	} else {
		si.Body = body
		_, err = r.o.Store.ReplaceCacheItem(ctx, si)
	}
	if errors.Is(err, cosmos.ErrConflict) || errors.Is(err, cosmos.ErrPreconditionFailed) {
		return 0, 0, nil // another evaluation got there first; it raises what there is
	}
	if err != nil {
		return 0, 0, err
	}

	for _, alertKey := range closed {
		if alertKey != "" && r.markRecovered(ctx, userID, alertKey, now) {
			recovered++
		}
	}
	if len(opened) == 0 {
		return 0, recovered, nil
	}
	if *settings == nil {
		*settings = r.settings(ctx, userID)
	}
	envDisplay, ok := envNames[strings.ToLower(f.EnvironmentName)]
	if !ok {
		envDisplay = r.envDisplayName(ctx, userID, f.EnvironmentName)
		envNames[strings.ToLower(f.EnvironmentName)] = envDisplay
	}
	for _, op := range opened {
		a := &teamcache.Alert{EnvironmentName: f.EnvironmentName, EnvironmentDisplayName: envDisplay, FlowName: f.Name,
			FlowDisplayName: f.DisplayName, Rule: op.key, What: op.what, At: op.at, RaisedAt: teamcache.Time(now),
			ErrorCode: op.errorCode, RunName: op.runName, Link: flowLink(r.o.PortalURL, f.EnvironmentName, f.Name, op.runName)}
		if op.recovered {
			a.RecoveredAt = teamcache.Time(now)
		}
		for _, rule := range op.rules {
			if !containsFold(a.Emails, rule.Email) {
				a.Emails = append(a.Emails, rule.Email)
			}
		}
		r.deliver(ctx, userID, a, *settings)
		body, err := json.Marshal(a)
		if err != nil {
			return raised, recovered, err
		}
		if _, err := r.o.Store.CreateCacheItem(ctx, &cosmos.CacheItem{UserID: userID, Kind: teamcache.KindAlert, Key: op.alertKey,
			Body: body, TTL: teamcache.AlertTTL}); err != nil {
			return raised, recovered, err
		}
		raised++
		r.o.Logger.Info("alert raised", zap.String("flow", flowRef(g)), zap.String("rule", op.key),
			zap.String("email", a.Email), zap.String("webhook", a.Webhook))
	}
	return raised, recovered, nil
}

// deliver sends the alert by email and to the webhook, recording each outcome.
// Nothing is retried: the alert stays on the dashboard either way.
func (r *Runner) deliver(ctx context.Context, userID string, a *teamcache.Alert, s *teamcache.AlertSettings) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	a.Email, a.Webhook = DeliveryNotConfigured, DeliveryNone
	if r.o.Mail != nil && len(a.Emails) > 0 {
		a.Email = DeliverySent
		if err := r.o.Mail.Send(ctx, a.Emails, subject(a), emailBody(a)); err != nil {
			a.Email = DeliveryFailed
			r.o.Logger.Warn("alert email not sent", zap.String("error_kind", errorKind(err)))
		}
	}
	if s.WebhookURL != "" {
		a.Webhook = DeliveryNotConfigured
		if r.o.Webhook != nil && r.o.WebhookSecret != nil {
			a.Webhook = DeliverySent
			if err := r.o.Webhook.Post(ctx, s.WebhookURL, r.o.WebhookSecret(userID), webhookBody(a)); err != nil {
				a.Webhook = DeliveryFailed
				r.o.Logger.Warn("alert webhook not delivered", zap.String("error_kind", errorKind(err)))
			}
		}
	}
}

func (r *Runner) settings(ctx context.Context, userID string) *teamcache.AlertSettings {
	s := &teamcache.AlertSettings{}
	if it, err := r.o.Store.GetCacheItem(ctx, userID, teamcache.KindAlertSettings, teamcache.AlertSettingsKey); err == nil {
		_ = json.Unmarshal(it.Body, s)
	}
	return s
}

func (r *Runner) envDisplayName(ctx context.Context, userID, env string) string {
	it, err := r.o.Store.GetCacheItem(ctx, userID, teamcache.KindEnvironment, strings.ToLower(env))
	if err != nil {
		return ""
	}
	var e teamcache.Environment
	if json.Unmarshal(it.Body, &e) != nil {
		return ""
	}
	return e.DisplayName
}

// markRecovered notes on an alert that its incident closed; best effort.
func (r *Runner) markRecovered(ctx context.Context, userID, alertKey string, now time.Time) bool {
	it, err := r.o.Store.GetCacheItem(ctx, userID, teamcache.KindAlert, alertKey)
	if err != nil {
		return false
	}
	var a teamcache.Alert
	if json.Unmarshal(it.Body, &a) != nil {
		return false
	}
	a.RecoveredAt = teamcache.Time(now)
	if it.Body, err = json.Marshal(a); err != nil {
		return false
	}
	_, err = r.o.Store.ReplaceCacheItem(ctx, it)
	return err == nil
}

// changed says whether an evaluation changed more than when it ran.
func changed(before, after teamcache.AlertState) bool {
	before.CheckedAt, after.CheckedAt = "", ""
	a, _ := json.Marshal(before)
	b, _ := json.Marshal(after)
	return !bytes.Equal(a, b)
}

// Recent returns the user's alerts, newest first, at most n.
func Recent(ctx context.Context, store teamcache.Store, userID string, n int) ([]teamcache.Alert, error) {
	var all []teamcache.Alert
	token := ""
	for page := 0; page < 20; page++ {
		items, next, err := store.ListCacheItems(ctx, userID, cosmos.CacheFilter{Kind: teamcache.KindAlert}, cosmos.PageRequest{Size: 500, Token: token})
		if err != nil {
			return nil, err
		}
		for _, it := range items {
			var a teamcache.Alert
			if json.Unmarshal(it.Body, &a) == nil {
				all = append(all, a)
			}
		}
		if next == "" {
			break
		}
		token = next
	}
	// Keys begin with the time raised: id order is time order.
	for i, j := 0, len(all)-1; i < j; i, j = i+1, j-1 {
		all[i], all[j] = all[j], all[i]
	}
	return all[:min(n, len(all))], nil
}

// Monitored returns the user's monitored flows with their open incidents.
type MonitoredFlow struct {
	ID, DisplayName, EnvironmentName string
	Rules                            []teamcache.NotifyRule
	Open                             []string // incident keys open now
}

// ListMonitored reads the user's monitored flows (for the dashboard).
func ListMonitored(ctx context.Context, store teamcache.Store, userID string) ([]MonitoredFlow, error) {
	r := &Runner{o: Options{Store: store}}
	gs, err := r.monitored(ctx, userID)
	if err != nil {
		return nil, err
	}
	out := make([]MonitoredFlow, 0, len(gs))
	for _, g := range gs {
		key := teamcache.Key(g.EnvironmentName, g.FlowName)
		m := MonitoredFlow{ID: key, EnvironmentName: g.EnvironmentName, DisplayName: g.FlowName, Rules: g.NotifyRules}
		if it, err := store.GetCacheItem(ctx, userID, teamcache.KindFlow, key); err == nil {
			var f teamcache.Flow
			if json.Unmarshal(it.Body, &f) == nil {
				m.DisplayName = f.DisplayName
			}
		}
		if it, err := store.GetCacheItem(ctx, userID, teamcache.KindAlertState, key); err == nil {
			var st teamcache.AlertState
			if json.Unmarshal(it.Body, &st) == nil {
				for k := range st.Open {
					m.Open = append(m.Open, k)
				}
			}
		}
		out = append(out, m)
	}
	return out, nil
}

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}

func flowRef(g teamcache.Governance) string { return teamcache.Key(g.EnvironmentName, g.FlowName) }

// errorKind names an error's class for the log, never its text (which may carry
// addresses or hosts).
func errorKind(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, cosmos.ErrThrottled), errors.Is(err, cosmos.ErrUnavailable):
		return "store_unavailable"
	}
	var k interface{ Kind() string }
	if errors.As(err, &k) {
		return k.Kind()
	}
	return "error"
}
