package server

import (
	"context"
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	"github.com/flowstudio/mcp/cosmos"
	"github.com/flowstudio/mcp/tools/teamcache"
)

// TestDashboardAlertsSection: a Team user's dashboard lists the monitored flows and
// the recent alerts, says alerts stay on the dashboard when no SMTP is set, and
// saves a webhook URL only when it is a public https URL; other plans see no section
// and cannot set one.
func TestDashboardAlertsSection(t *testing.T) {
	t.Parallel()
	_, h, c := newEntraHarness(t)
	page := h.signIn(t, c)
	if strings.Contains(page.body, `id="alerts"`) {
		t.Fatal("the alerts section shows on the free plan")
	}
	csrf := webMatch(t, csrfField, page.body)
	setHook := func(u string) webPage {
		return webFetch(t, c, "POST", h.ts.URL+"/dashboard/alerts/webhook", url.Values{"csrf": {csrf}, "webhook_url": {u}},
			map[string]string{"Origin": h.ts.URL, "Sec-Fetch-Site": "same-origin"})
	}
	if p := setHook("https://hooks.example.com/x"); p.status != 403 {
		t.Fatalf("free plan set a webhook: %d", p.status)
	}

	ctx := context.Background()
	if _, err := h.store.UpdateUser(ctx, fakeUserID, func(u *cosmos.User) error { u.Tier = cosmos.TierTeam; return nil }); err != nil {
		t.Fatal(err)
	}
	put := func(kind, key string, v any, ttl int) {
		b, _ := json.Marshal(v)
		if _, err := h.store.PutCacheItem(ctx, &cosmos.CacheItem{UserID: fakeUserID, Kind: kind, Key: key, Body: b, TTL: ttl}); err != nil {
			t.Fatal(err)
		}
	}
	key := teamcache.Key("Default-env", "11111111-2222-3333-4444-555555555555")
	put(teamcache.KindFlow, key, teamcache.Flow{EnvironmentName: "Default-env", Name: "11111111-2222-3333-4444-555555555555", DisplayName: "Payroll export"}, 0)
	put(teamcache.KindGovernance, key, teamcache.Governance{EnvironmentName: "Default-env", FlowName: "11111111-2222-3333-4444-555555555555",
		Monitor: true, NotifyRules: []teamcache.NotifyRule{{When: teamcache.WhenAnyFailure, Email: "ops@contoso.test"}}}, 0)
	put(teamcache.KindAlertState, key, teamcache.AlertState{Open: map[string]*teamcache.Incident{"anyFailure": {Since: "2026-05-01T00:00:00Z"}}}, 0)
	put(teamcache.KindAlert, "20260501T000000Z."+key+".0", teamcache.Alert{EnvironmentName: "Default-env", FlowDisplayName: "Payroll export",
		What: "3 runs failed since 2026-05-01T00:00:00Z", RaisedAt: "2026-05-01T00:01:00Z", Email: "not configured", Webhook: "none",
		Link: "https://make.powerautomate.com/environments/Default-env/flows/x/details"}, teamcache.AlertTTL)

	page = webFetch(t, c, "GET", h.ts.URL+"/dashboard", nil, nil)
	for _, want := range []string{`id="alerts"`, "Payroll export", "anyFailure → ops@contoso.test", "Alerting", "3 runs failed since",
		`id="alerts-dashboard-only"`, `id="webhook-key"`} {
		if !strings.Contains(page.body, want) {
			t.Fatalf("dashboard lacks %q", want)
		}
	}
	for _, bad := range []string{"http://hooks.example.com/x", "https://10.1.2.3/x", "https://169.254.169.254/latest", "https://u:p@hooks.example.com/", "javascript:alert(1)"} {
		if p := setHook(bad); p.status != 400 || !strings.Contains(p.body, "Nothing was changed") {
			t.Fatalf("webhook %q: status %d", bad, p.status)
		}
	}
	if _, err := h.store.GetCacheItem(ctx, fakeUserID, teamcache.KindAlertSettings, teamcache.AlertSettingsKey); err == nil {
		t.Fatal("a refused URL was stored")
	}
	if p := setHook("https://contoso.webhook.office.com/webhookb2/abc"); p.status != 200 || !strings.Contains(p.body, "Alert webhook saved") ||
		!strings.Contains(p.body, `value="https://contoso.webhook.office.com/webhookb2/abc"`) {
		t.Fatalf("saving a webhook: %d", p.status)
	}
	if p := setHook(""); p.status != 200 || strings.Contains(p.body, "webhookb2") {
		t.Fatalf("clearing the webhook: %d", p.status)
	}
}
