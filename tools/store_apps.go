package tools

import (
	"context"
	"encoding/json"
	"slices"
	"strings"

	"github.com/flowstudio/mcp/cosmos"
	"github.com/flowstudio/mcp/tools/teamcache"
)

// ---- list_store_power_apps ----------------------------------------------------------

// storeAppRow is one cached app: metadata only. Sync never reads an app's
// document (its screens, formulas and data sources), so there is none to return.
// The row is the cached item as stored, behind its id (the fields flatten).
type storeAppRow struct {
	ID string `json:"id"`
	teamcache.App
}

type storeAppsIn struct {
	EnvironmentName string `json:"environmentName"`
	Search          string `json:"search"`
	OwnerObjectID   string `json:"ownerObjectId"`
	Connector       string `json:"connector"`
	storePageIn
}

type storeAppsOut struct {
	Apps       []storeAppRow `json:"apps"`
	NextCursor string        `json:"nextCursor,omitempty"`
	Cache      cacheInfo     `json:"cache"`
}

func listStorePowerApps() *Tool {
	return Define(Tool{
		Name:  "list_store_power_apps",
		Title: "List cached Power Apps apps",
		Description: "Team plan. Lists the Power Apps apps in your Team cache (the apps you own or that are shared with you, " +
			"as the sync job read them from the Power Apps API every 30 minutes), id <environment>.<app>: display name, app " +
			"type, owner's Entra object id (no names or emails are cached), created, modified, last published, how many users and groups it is shared " +
			"with, and the connectors its connections use. Metadata only: never the app's screens, formulas or data. " +
			"Filters: environmentName, search (text in the display name), ownerObjectId, connector. Pages with pageSize and " +
			"nextCursor. Next: get_store_maker for an owner, list_store_connections for a connector's connections.",
		Kind:  ReadOnly,
		Group: Store,
		Input: inputSchema(storeEnvArg,
			optionalArg("search", `{"type":"string","minLength":1,"maxLength":200,"description":"Case-insensitive text to find in the app's display name."}`),
			optionalArg("ownerObjectId", `{"type":"string","minLength":36,"maxLength":36,`+guidPattern+`,"description":"Only apps owned by this Entra object id."}`),
			optionalArg("connector", `{"type":"string","minLength":8,"maxLength":128,"pattern":"^shared_[A-Za-z0-9][A-Za-z0-9_-]*$","description":"Only apps using this connector, e.g. shared_sharepointonline."}`),
			storePageSizeArg, storeCursorArg),
		Output: json.RawMessage(`{"type":"object","additionalProperties":false,"required":["apps","cache"],"properties":{
"apps":{"type":"array","items":{"type":"object","additionalProperties":false,
"required":["id","environmentName","name","displayName","sharedUsersCount","sharedGroupsCount"],"properties":{
"id":{"type":"string","description":"<environment>.<app>, lower-case."},"environmentName":{"type":"string"},
"name":{"type":"string","description":"The app id."},"displayName":{"type":"string"},"appType":{"type":"string"},
"ownerObjectId":{"type":"string"},"created":{"type":"string"},"modified":{"type":"string"},
"lastPublished":{"type":"string"},"sharedUsersCount":{"type":"integer"},"sharedGroupsCount":{"type":"integer"},
"connectors":{"type":"array","items":{"type":"string"}}}}},
"nextCursor":{"type":"string"},"cache":` + closedCacheOutSchema + `}}`),
	}, func(ctx context.Context, env *Env, in storeAppsIn) (storeAppsOut, error) {
		c, err := newStoreCall(ctx, env)
		if err != nil {
			return storeAppsOut{}, err
		}
		rows, next, err := scan(ctx, c, teamcache.KindApp, in.Cursor, in.PageSize, func(it *cosmos.CacheItem, a teamcache.App) (storeAppRow, bool) {
			switch {
			case in.EnvironmentName != "" && !strings.EqualFold(a.EnvironmentName, in.EnvironmentName),
				in.Search != "" && !containsFold(a.DisplayName, in.Search),
				in.OwnerObjectID != "" && !strings.EqualFold(a.OwnerObjectID, in.OwnerObjectID),
				in.Connector != "" && !slices.ContainsFunc(a.Connectors, func(c string) bool { return strings.EqualFold(c, in.Connector) }):
				return storeAppRow{}, false
			}
			return storeAppRow{ID: it.Key, App: a}, true
		})
		if err != nil {
			return storeAppsOut{}, err
		}
		info, err := c.info(ctx)
		return storeAppsOut{Apps: rows, NextCursor: next, Cache: info}, err
	})
}
