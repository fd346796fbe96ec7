package server

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/flowstudio/mcp/cosmos"
	"github.com/flowstudio/mcp/rpc"
	"github.com/flowstudio/mcp/rpc/logsafe"
	"github.com/flowstudio/mcp/tools/alerts"
	"github.com/flowstudio/mcp/tools/alerts/notify"
	"github.com/flowstudio/mcp/tools/teamcache"
)

// The dashboard's alerts section (Team plan): the monitored flows with their state,
// the recent alerts and how each was delivered, and the user's webhook URL with the
// key its calls are signed with. Alerts themselves are raised by `flowstudio sync`
// (package alerts), never by the server.

// AlertStore is the Team cache as the alerts section uses it (*cosmos.Store).
type AlertStore interface {
	teamcache.Store
	PutCacheItem(ctx context.Context, c *cosmos.CacheItem) (*cosmos.CacheItem, error)
}

// alertsView is what the section shows.
type alertsView struct {
	EmailConfigured bool
	Monitored       []monitoredRow
	Recent          []alertRow
	WebhookURL      string
	WebhookKey      string // hex; the receiver checks X-FlowStudio-Signature with it
	Error           string // the section could not be read
}

type monitoredRow struct {
	DisplayName, Environment, Rules string
	Alerting                        bool
}

type alertRow struct {
	RaisedAt, Flow, Environment, What, Email, Webhook, RecoveredAt, Link string
}

// recentAlerts is how many alerts the dashboard lists.
const recentAlerts = 20

// alertsSection reads the section for a Team user; nil for other plans or when no
// store is wired.
func (s *Server) alertsSection(ctx context.Context, u *cosmos.User) *alertsView {
	if s.deps.Alerts == nil || u.Tier != cosmos.TierTeam {
		return nil
	}
	v := &alertsView{EmailConfigured: s.deps.Settings.SMTP.Enabled(), WebhookKey: hex.EncodeToString(s.deps.Keys.WebhookKey(u.ID))}
	fail := func(err error) *alertsView {
		s.log.Warn("alerts section not read", zap.String(logsafe.KeyRequestID, rpc.RequestID(ctx)), logsafe.Error(err))
		v.Error = "Alerts could not be read just now; reload the page in a moment."
		return v
	}
	mon, err := alerts.ListMonitored(ctx, s.deps.Alerts, u.ID)
	if err != nil {
		return fail(err)
	}
	for _, m := range mon {
		var rules []string
		for _, r := range m.Rules {
			rules = append(rules, teamcache.IncidentKey(r)+" → "+r.Email)
		}
		v.Monitored = append(v.Monitored, monitoredRow{DisplayName: m.DisplayName, Environment: m.EnvironmentName,
			Rules: strings.Join(rules, "; "), Alerting: len(m.Open) > 0})
	}
	recent, err := alerts.Recent(ctx, s.deps.Alerts, u.ID, recentAlerts)
	if err != nil {
		return fail(err)
	}
	for _, a := range recent {
		env := a.EnvironmentDisplayName
		if env == "" {
			env = a.EnvironmentName
		}
		v.Recent = append(v.Recent, alertRow{RaisedAt: a.RaisedAt, Flow: a.FlowDisplayName, Environment: env, What: a.What,
			Email: a.Email, Webhook: a.Webhook, RecoveredAt: a.RecoveredAt, Link: a.Link})
	}
	if it, err := s.deps.Alerts.GetCacheItem(ctx, u.ID, teamcache.KindAlertSettings, teamcache.AlertSettingsKey); err == nil {
		var st teamcache.AlertSettings
		if json.Unmarshal(it.Body, &st) == nil {
			v.WebhookURL = st.WebhookURL
		}
	} else if !errors.Is(err, cosmos.ErrNotFound) {
		return fail(err)
	}
	return v
}

// allowLoopbackWebhooks: only embedded mode (development and tests) may point a
// webhook at this machine.
func (s *Server) allowLoopbackWebhooks() bool {
	return s.deps.Settings.Embedded() && !s.deps.Settings.Production()
}

// setWebhook saves (or, empty, clears) the user's alert webhook URL.
func (s *Server) setWebhook(w http.ResponseWriter, r *http.Request) {
	sess, ok := s.postGuard(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	u, err := s.deps.Accounts.GetUser(ctx, sess.UserID)
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	if s.deps.Alerts == nil || u.Tier != cosmos.TierTeam {
		s.renderError(w, r, http.StatusForbidden, "Team plan needed", "Alerts for monitored flows are part of the Team plan.")
		return
	}
	raw := strings.TrimSpace(r.PostForm.Get("webhook_url"))
	if raw != "" {
		if _, err := notify.CheckURL(raw, s.allowLoopbackWebhooks()); err != nil {
			s.renderError(w, r, http.StatusBadRequest, "Webhook URL refused",
				"FlowStudio calls only public https URLs without credentials (such as a Teams or Slack incoming webhook): "+
					strings.TrimPrefix(err.Error(), notify.ErrURLRefused.Error()+"\n")+". Nothing was changed.")
			return
		}
	}
	body, _ := json.Marshal(teamcache.AlertSettings{WebhookURL: raw, UpdatedAt: time.Now().UTC().Format(time.RFC3339)})
	if _, err := s.deps.Alerts.PutCacheItem(ctx, &cosmos.CacheItem{UserID: u.ID, Kind: teamcache.KindAlertSettings,
		Key: teamcache.AlertSettingsKey, Body: body}); err != nil {
		s.internalError(w, r, err)
		return
	}
	s.log.Info("alert webhook set", zap.String(logsafe.KeyRequestID, rpc.RequestID(ctx)), zap.String("email_hash", u.EmailHash),
		zap.Bool("cleared", raw == ""))
	http.Redirect(w, r, "/dashboard?done=webhook", http.StatusSeeOther)
}
