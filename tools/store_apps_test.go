package tools

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/flowstudio/mcp/cosmos"
	"github.com/flowstudio/mcp/tools/teamcache"
)

// seedApps writes n apps into a user's cache: in stEnv1 when i is even, else
// stEnv2; owned by stMaker1 every third, else stMaker2; using SharePoint every
// fourth.
func (h *storeHarness) seedApps(t *testing.T, userID string, n int) []teamcache.App {
	t.Helper()
	var apps []teamcache.App
	for i := range n {
		a := teamcache.App{EnvironmentName: stEnv2, Name: uuid.NewSHA1(uuid.NameSpaceOID, []byte(fmt.Sprintf("%s/app/%d", userID, i))).String(),
			DisplayName: fmt.Sprintf("App %02d", i), AppType: "ClassicCanvasApp", OwnerObjectID: stMaker2,
			Created: "2026-01-01T00:00:00Z", Modified: "2026-02-01T00:00:00Z", LastPublished: "2026-02-01T00:00:00Z",
			SharedUsersCount: i, SharedGroupsCount: i % 3, Connectors: []string{"shared_office365"}}
		if i%2 == 0 {
			a.EnvironmentName = stEnv1
		}
		if i%3 == 0 {
			a.OwnerObjectID = stMaker1
		}
		if i%4 == 0 {
			a.Connectors = append(a.Connectors, "shared_sharepointonline")
		}
		if i == 7 {
			a.DisplayName = "Expense Tracker"
		}
		h.put(t, userID, teamcache.KindApp, teamcache.Key(a.EnvironmentName, a.Name), a)
		apps = append(apps, a)
	}
	return apps
}

func TestListStorePowerApps(t *testing.T) {
	t.Parallel()
	h := newStoreHarness(t)
	h.seed(t, stUserA, 0)
	apps := h.seedApps(t, stUserA, 23)
	a := h.as(t, stUserA, cosmos.TierTeam)

	var out storeAppsOut
	r := a.mustCall(t, "list_store_power_apps", map[string]any{}, &out)
	wantCache(t, r.Structured, stSynced)
	if len(out.Apps) != 23 || out.NextCursor != "" {
		t.Fatalf("%d apps, cursor %q", len(out.Apps), out.NextCursor)
	}
	want := apps[7]
	got := out.Apps[slices.IndexFunc(out.Apps, func(r storeAppRow) bool { return r.Name == want.Name })]
	if got.ID != teamcache.Key(want.EnvironmentName, want.Name) || got.DisplayName != "Expense Tracker" || got.OwnerObjectID != stMaker2 ||
		got.SharedUsersCount != 7 || got.SharedGroupsCount != 1 || got.AppType != "ClassicCanvasApp" ||
		got.LastPublished == "" || !slices.Equal(got.Connectors, []string{"shared_office365"}) {
		t.Errorf("app row = %+v", got)
	}

	count := func(args map[string]any) int {
		t.Helper()
		var o storeAppsOut
		a.mustCall(t, "list_store_power_apps", args, &o)
		return len(o.Apps)
	}
	for name, c := range map[string]struct {
		args map[string]any
		want int
	}{
		"environment":       {map[string]any{"environmentName": strings.ToUpper(stEnv1)}, 12},
		"search":            {map[string]any{"search": "expense"}, 1},
		"owner":             {map[string]any{"ownerObjectId": strings.ToUpper(stMaker1)}, 8},
		"connector":         {map[string]any{"connector": "shared_sharepointonline"}, 6},
		"owner and env":     {map[string]any{"ownerObjectId": stMaker1, "environmentName": stEnv1}, 4},
		"nothing matches":   {map[string]any{"search": "no such app"}, 0},
		"unknown connector": {map[string]any{"connector": "shared_nothere"}, 0},
	} {
		if n := count(c.args); n != c.want {
			t.Errorf("%s: %d apps, want %d", name, n, c.want)
		}
	}

	// Paging: every app once, in pages of 5.
	seen := map[string]bool{}
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("paging does not end")
		}
		args := map[string]any{"pageSize": 5}
		if cursor != "" {
			args["cursor"] = cursor
		}
		var o storeAppsOut
		a.mustCall(t, "list_store_power_apps", args, &o)
		for _, r := range o.Apps {
			if seen[r.ID] {
				t.Fatalf("app %s served twice", r.ID)
			}
			seen[r.ID] = true
		}
		if cursor = o.NextCursor; cursor == "" {
			break
		}
	}
	if len(seen) != 23 {
		t.Errorf("paged through %d apps, want 23", len(seen))
	}

	// Bad arguments are refused with the field named; another user's cursor or
	// partition shows nothing of A's.
	for _, args := range []map[string]any{
		{"ownerObjectId": "../../x"}, {"connector": "office365"}, {"environmentName": "env/../x"}, {"pageSize": 0},
		{"cursor": "c1.not-a-cursor"}, {"bogus": true},
	} {
		if r := a.call(t, "list_store_power_apps", args); !r.IsError {
			t.Errorf("%v accepted: %s", args, r.Text)
		}
	}
	var first storeAppsOut
	a.mustCall(t, "list_store_power_apps", map[string]any{"pageSize": 5}, &first)
	b := h.as(t, stUserB, cosmos.TierTeam)
	var bOut storeAppsOut
	r = b.mustCall(t, "list_store_power_apps", map[string]any{}, &bOut)
	if len(bOut.Apps) != 0 || !strings.Contains(r.Text, "not been synced") {
		t.Errorf("B sees %d apps: %s", len(bOut.Apps), r.Text)
	}
	if r := b.call(t, "list_store_power_apps", map[string]any{"cursor": first.NextCursor}); !r.IsError {
		var o storeAppsOut
		if err := json.Unmarshal(r.Structured, &o); err != nil {
			t.Fatal(err)
		}
		if len(o.Apps) != 0 {
			t.Fatalf("A's cursor showed B %d apps", len(o.Apps))
		}
	}
}
