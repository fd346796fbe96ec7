package sim

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"
)

// app is a seeded Power Apps canvas app: metadata, and a document link that
// stands for the app's definition (which FlowStudio must never store).
type app struct {
	name, displayName string
	env               *environment
	owner             string // object id
	private           bool   // shared with no one: only its owner lists it
	created, modified time.Time
	published         time.Time
	sharedUsers       int
	sharedGroups      int
	connectors        []string
}

// AppDocumentMarker is in every seeded app's document link (appUris.documentUri),
// the signed link to the .msapp package: tests check it never reaches the cache.
const AppDocumentMarker = "msapp-document-canary"

func (a *app) visibleTo(c *caller) bool {
	return a.env.tenant.id == c.tenantID && (!a.private || a.owner == c.objectID)
}

// seedApps gives an environment a few canvas apps; the private owner's is shared
// with no one.
func (s *Sim) seedApps(env *environment, maker, owner string, now time.Time) {
	for i, a := range []struct {
		display    string
		users      int
		groups     int
		private    bool
		connectors []string
	}{
		{"Expense Tracker", 12, 1, false, []string{"shared_office365", "shared_sharepointonline"}},
		{"Field Inspections", 40, 3, false, []string{"shared_commondataserviceforapps", "shared_office365users", "shared_office365"}},
		{"Leave Planner", 5, 0, false, []string{"shared_approvals", "shared_teams"}},
		{"My Scratchpad", 0, 0, true, nil},
	} {
		id := uuid.NewSHA1(simNamespace, []byte(fmt.Sprintf("%s/app/%d", env.name, i))).String()
		ap := &app{name: id, displayName: a.display, env: env, owner: maker, private: a.private,
			created: now.AddDate(0, -8, -i), sharedUsers: a.users, sharedGroups: a.groups, connectors: a.connectors}
		if a.private {
			ap.owner = owner
		}
		ap.modified = ap.created.AddDate(0, 2, 0)
		ap.published = ap.modified.Add(-time.Hour)
		env.apps = append(env.apps, ap)
	}
}

// listApps serves GET /providers/Microsoft.PowerApps/apps?$filter=environment eq '{env}':
// the apps the caller owns or that are shared with them, paged with nextLink.
func (s *Sim) listApps(w http.ResponseWriter, r *http.Request) {
	env := s.filteredEnv(w, r)
	if env == nil {
		return
	}
	c := callerOf(r)
	var apps []*app
	for _, a := range env.apps {
		if a.visibleTo(c) {
			apps = append(apps, a)
		}
	}
	sort.Slice(apps, func(i, j int) bool { return apps[i].name < apps[j].name })
	writePage(w, r, apps, func(a *app) string { return a.name }, 100, "nextLink", func(a *app) any { return s.appJSON(a, infoOf(r).base) })
}

// appJSON is an app as the Power Apps API lists it (Microsoft.PowerApps/apps,
// api-version 2016-11-01), with the document link a real answer carries.
func (s *Sim) appJSON(a *app, base string) map[string]any {
	email := s.users[a.owner]
	user := map[string]string{"id": a.owner, "displayName": strings.Split(email, "@")[0], "email": email, "type": "User",
		"tenantId": a.env.tenant.id, "userPrincipalName": email}
	refs := map[string]any{}
	for i, c := range a.connectors {
		refs[uuid.NewSHA1(simNamespace, []byte(a.name+"/ref/"+c)).String()] = map[string]any{
			"id": "/providers/microsoft.powerapps/apis/" + c, "displayName": c, "dataSources": []string{fmt.Sprintf("Source%d", i)},
			"dependencies": []any{}, "dependents": []any{}, "isOnPremiseConnection": false, "bypassConsent": false,
			"apiTier": "Standard", "isCustomApiConnection": false}
	}
	doc := base + "/content/apps/" + a.name + "/document.msapp?sv=2018-03-28&sr=c&sig=" + AppDocumentMarker + "&sp=rl"
	return map[string]any{
		"name": a.name, "id": "/providers/Microsoft.PowerApps/apps/" + a.name, "type": "Microsoft.PowerApps/apps",
		"tags":    map[string]string{"primaryDeviceWidth": "1366", "primaryDeviceHeight": "768"},
		"appType": "ClassicCanvasApp",
		"properties": map[string]any{
			"appVersion": a.modified.Format(time.RFC3339), "lifeCycleId": "Published", "status": "Ready",
			"createdByClientVersion": map[string]int{"major": 3, "minor": 24}, "owner": user, "createdBy": user, "lastModifiedBy": user,
			"displayName": a.displayName, "description": "",
			"appUris":     map[string]any{"documentUri": map[string]string{"value": doc, "readonlyValue": doc}, "imageUris": []any{}},
			"createdTime": a.created.Format(time.RFC3339Nano), "lastModifiedTime": a.modified.Format(time.RFC3339Nano),
			"lastPublishTime": a.published.Format(time.RFC3339), "sharedGroupsCount": a.sharedGroups, "sharedUsersCount": a.sharedUsers,
			"appOpenProtocolUri":   "ms-apps:///providers/Microsoft.PowerApps/apps/" + a.name,
			"appOpenUri":           "https://apps.powerapps.com/play/" + a.name + "?tenantId=" + a.env.tenant.id,
			"connectionReferences": refs, "bypassConsent": false, "usesPremiumApi": false, "usesCustomApi": false,
			"environment": map[string]string{"id": "/providers/Microsoft.PowerApps/environments/" + a.env.name, "name": a.env.name},
		},
	}
}
