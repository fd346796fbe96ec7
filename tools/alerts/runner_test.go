package alerts

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/flowstudio/mcp/cosmos"
	"github.com/flowstudio/mcp/tools/teamcache"
)

// TestWithoutSMTPAlertsStayOnTheDashboard: with no mailer (embedded mode without
// SMTP settings) an incident is still raised once and recorded, its email marked
// not configured; the webhook is not called when none is set.
func TestWithoutSMTPAlertsStayOnTheDashboard(t *testing.T) {
	ctx := context.Background()
	store, err := cosmos.OpenEmbedded(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	const user = "t.u"
	key := teamcache.Key("env", "f")
	put := func(kind string, v any) {
		b, _ := json.Marshal(v)
		if _, err := store.PutCacheItem(ctx, &cosmos.CacheItem{UserID: user, Kind: kind, Key: key, Body: b}); err != nil {
			t.Fatal(err)
		}
	}
	put(teamcache.KindFlow, teamcache.Flow{EnvironmentName: "env", Name: "f", DisplayName: "Nightly export", State: "Started"})
	put(teamcache.KindGovernance, teamcache.Governance{EnvironmentName: "env", FlowName: "f", Monitor: true,
		NotifyRules: []teamcache.NotifyRule{{When: teamcache.WhenAnyFailure, Email: "ops@x.test"}}})
	put(teamcache.KindFlowStats, teamcache.FlowStats{Window: "7d", Recent: []teamcache.RunBrief{{Name: "r1", Status: "Failed", Start: "2026-05-01T00:00:00Z", ErrorCode: "BadGateway"}}})
	posted := 0
	r, err := New(Options{Store: store, Webhook: countingPoster{&posted}, WebhookSecret: func(string) []byte { return []byte("k") },
		Now: func() time.Time { return time.Date(2026, 5, 1, 1, 0, 0, 0, time.UTC) }})
	if err != nil {
		t.Fatal(err)
	}
	// Two evaluations at once (the sync and the check): one alert.
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			if _, err := r.EvaluateUser(ctx, user, FromCache(store, user)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if _, err := r.EvaluateUser(ctx, user, FromCache(store, user)); err != nil {
		t.Fatal(err)
	}
	recent, err := Recent(ctx, store, user, 10)
	if err != nil || len(recent) != 1 {
		t.Fatalf("alerts %+v (%v), want exactly one", recent, err)
	}
	a := recent[0]
	if a.Email != DeliveryNotConfigured || a.Webhook != DeliveryNone || posted != 0 || a.FlowDisplayName != "Nightly export" ||
		a.ErrorCode != "BadGateway" || a.Link != "https://make.powerautomate.com/environments/env/flows/f/runs/r1" {
		t.Fatalf("alert %+v, webhook calls %d", a, posted)
	}
	mon, err := ListMonitored(ctx, store, user)
	if err != nil || len(mon) != 1 || len(mon[0].Open) != 1 || mon[0].DisplayName != "Nightly export" {
		t.Fatalf("monitored %+v (%v)", mon, err)
	}
}

type countingPoster struct{ n *int }

func (p countingPoster) Post(context.Context, string, []byte, []byte) error { *p.n++; return nil }
