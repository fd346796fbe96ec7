package teamsync

import (
	"net/http"
	"strings"
	"testing"

	"github.com/flowstudio/mcp/cosmos"
	"github.com/flowstudio/mcp/tools/powerautomate"
	"github.com/flowstudio/mcp/tools/powerautomate/sim"
	"github.com/flowstudio/mcp/tools/teamcache"
)

// listAppsAs lists an environment's apps through the client as a user.
func listAppsAs(t *testing.T, h *harness, u *cosmos.User, env string) []powerautomate.App {
	t.Helper()
	ctx := powerautomate.WithCaller(t.Context(), &powerautomate.Caller{UserID: u.ID, TenantID: u.TenantID, ObjectID: u.ObjectID})
	p, err := h.pa.ListApps(ctx, env, powerautomate.ListAppsOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return p.Apps
}

// TestSyncCachesAppsMetadataOnly: every app the user can see is cached with its
// metadata; an app shared with no one stays its owner's; the app's document link
// (its definition) is never stored; the makers count apps; a deleted app goes and
// a list that fails keeps the apps of the earlier sync.
func TestSyncCachesAppsMetadataOnly(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	alice := h.user(t, "alice@contoso.com", cosmos.TierTeam, cosmos.ConsentGranted)
	bob := h.user(t, "bob@contoso.com", cosmos.TierTeam, cosmos.ConsentGranted)
	s := h.syncer(t, Options{PageSize: 2}) // pages of two: the nextLinks are followed
	if _, err := s.Run(t.Context(), ""); err != nil {
		t.Fatal(err)
	}

	items := h.items(t, alice.ID)
	upstream := listAppsAs(t, h, alice, sim.ContosoDefaultEnv)
	if len(upstream) != 3 {
		t.Fatalf("alice sees %d apps upstream, want 3", len(upstream))
	}
	for _, a := range upstream {
		app, _ := body[teamcache.App](t, items, teamcache.KindApp, teamcache.Key(sim.ContosoDefaultEnv, a.Name))
		if app.DisplayName != a.DisplayName || app.OwnerObjectID != alice.ObjectID ||
			app.AppType != "ClassicCanvasApp" || app.Created == "" || app.Modified == "" || app.LastPublished == "" ||
			app.EnvironmentName != sim.ContosoDefaultEnv || app.SharedUsersCount != a.SharedUsersCount || len(app.Connectors) == 0 {
			t.Errorf("app %s = %+v", a.Name, app)
		}
	}
	if n := countKind(items, teamcache.KindApp); n != 9 {
		t.Errorf("alice has %d cached apps, want 3 per environment", n)
	}
	if n := countKind(h.items(t, bob.ID), teamcache.KindApp); n != 12 {
		t.Errorf("bob has %d cached apps, want 3 shared + his own 1 per environment", n)
	}
	for _, u := range []*cosmos.User{alice, bob} {
		for _, it := range h.items(t, u.ID) {
			if strings.Contains(string(it.Body), sim.AppDocumentMarker) || strings.Contains(string(it.Body), "msapp") {
				t.Fatalf("item %s holds the app's document link: %s", it.ID, it.Body)
			}
		}
	}
	env, _ := body[teamcache.Environment](t, items, teamcache.KindEnvironment, strings.ToLower(sim.ContosoDefaultEnv))
	if env.AppCount != 3 || !env.AppsComplete {
		t.Errorf("default environment = %+v", env)
	}
	maker, _ := body[teamcache.Maker](t, items, teamcache.KindMaker, teamcache.MakerKey(alice.ObjectID))
	if maker.AppCount != 9 {
		t.Errorf("alice owns %d apps, want 9", maker.AppCount)
	}
	state, _ := body[teamcache.SyncState](t, items, teamcache.KindSyncState, teamcache.SyncStateKey)
	if state.Apps != 9 {
		t.Errorf("sync state apps = %d", state.Apps)
	}

	// A deleted app goes with the next sync.
	gone := upstream[0].Name
	if !h.sim.DeleteApp(sim.ContosoDefaultEnv, gone) {
		t.Fatal("app not deleted")
	}
	if _, err := s.Run(t.Context(), ""); err != nil {
		t.Fatal(err)
	}
	if _, ok := h.items(t, alice.ID)[cosmos.CacheItemID(teamcache.KindApp, teamcache.Key(sim.ContosoDefaultEnv, gone))]; ok {
		t.Error("a deleted app stayed in the cache")
	}

	// A list that fails keeps what the last sync read, and says the environment is partial.
	h.sim.InjectFault(sim.FaultMatch{PathContains: "/apps"}, sim.Fault{Status: http.StatusInternalServerError})
	if _, err := s.Run(t.Context(), ""); err != nil {
		t.Fatal(err)
	}
	h.sim.ClearFaults()
	after := h.items(t, alice.ID)
	if n := countKind(after, teamcache.KindApp); n != 8 {
		t.Errorf("%d apps after a failed list, want the 8 of the last sync", n)
	}
	env, _ = body[teamcache.Environment](t, after, teamcache.KindEnvironment, strings.ToLower(sim.ContosoDefaultEnv))
	state, _ = body[teamcache.SyncState](t, after, teamcache.KindSyncState, teamcache.SyncStateKey)
	if env.AppsComplete || env.AppCount != 2 || len(state.PartialEnvironments) != 3 {
		t.Errorf("after a failed app list: env %+v, state %+v", env, state)
	}
}
