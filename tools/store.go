package tools

import (
	"context"
	"encoding/base64"
	"errors"
	"math"
	"math/rand/v2"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/flowstudio/mcp/cosmos"
	"github.com/flowstudio/mcp/tools/powerautomate"
	"github.com/flowstudio/mcp/tools/teamcache"
	json "github.com/segmentio/encoding/json"
)

// The store tools read the Team cache that `flowstudio sync` fills (package
// teamsync; the item shapes are package teamcache) from the caller's own partition:
// the user id of the principal is the partition key of every read and write, so a
// user never sees another's cache. Every answer carries "cache": when the cache was
// last synced, or why it is not.

// Schema fragments of the store tools' outputs.
const (
	// cacheOutSchema is the "cache" object every store answer carries.
	cacheOutSchema = `{"type":"object","description":"When the Team cache was last synced, or why it is not.","properties":{
"syncedAt":{"type":"string","description":"When the last successful sync finished (RFC 3339); absent before the first."},
"window":{"type":"string","description":"The run-statistics window of that sync, e.g. 7d."},
"note":{"type":"string","description":"Why the cache is empty or older than usual, and what to do."}}}`
	storeFlowIDOut = `{"type":"string","description":"<environment>.<flow>, lower-case."}`
	// closedCacheOutSchema is cacheOutSchema closed to other members, for outputs
	// whose every object is closed.
	closedCacheOutSchema = `{"type":"object","additionalProperties":false,"description":"When the Team cache was last synced, or why it is not.","properties":{
"syncedAt":{"type":"string"},"window":{"type":"string"},"note":{"type":"string"}}}`
)

// Scan bounds: one call reads at most storeScanPages pages of storeScanSize items
// of one kind, so a sparse filter costs a bounded time; nextCursor goes on from there.
const (
	storeScanSize     = 200
	storeScanPages    = 25
	defaultStorePage  = 50
	maxGovernanceRead = 20 // pages of 1000 governance items read to annotate flows
)

// cacheInfo is the "cache" object of every store answer.
type cacheInfo struct {
	SyncedAt string `json:"syncedAt,omitempty"`
	Window   string `json:"window,omitempty"`
	Note     string `json:"note,omitempty"`
}

// storeCall is what every store handler starts with: the caller's partition.
type storeCall struct {
	cache  teamcache.Store
	userID string
	env    *Env
}

func newStoreCall(ctx context.Context, env *Env) (*storeCall, error) {
	if env.Cache == nil {
		return nil, &ToolError{Message: "this server has no Team cache configured",
			Next: "use the list_live_* and get_live_* tools, which read Power Automate directly"}
	}
	p := PrincipalFrom(ctx)
	if p == nil || p.UserID == "" {
		return nil, &ToolError{Message: "the Team cache is per user and this call has no authenticated user"}
	}
	return &storeCall{cache: env.Cache, userID: p.UserID, env: env}, nil
}

// storeError maps store failures an agent can act on; others stay internal errors.
func storeError(err error) error {
	switch {
	case errors.Is(err, cosmos.ErrThrottled), errors.Is(err, cosmos.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		return &ToolError{Message: "the Team cache is busy or unreachable", Next: "retry in a few seconds"}
	}
	return err
}

// info reads the syncState item: when the cache was last synced, or why not.
func (c *storeCall) info(ctx context.Context) (cacheInfo, error) {
	it, err := c.cache.GetCacheItem(ctx, c.userID, teamcache.KindSyncState, teamcache.SyncStateKey)
	if errors.Is(err, cosmos.ErrNotFound) {
		return cacheInfo{Note: "the Team cache has not been synced yet: the sync job fills it within 30 minutes of the Team plan " +
			"starting. Meanwhile the list_live_* tools read Power Automate directly"}, nil
	}
	if err != nil {
		return cacheInfo{}, storeError(err)
	}
	var st teamcache.SyncState
	if err := json.Unmarshal(it.Body, &st); err != nil {
		return cacheInfo{}, err
	}
	ci := cacheInfo{SyncedAt: st.SyncedAt, Window: st.Window}
	switch {
	case st.Error == "reconnect" || st.Error == "token_endpoint" || st.Error == "upstream_401":
		ci.Note = "the last sync (" + st.AttemptedAt + ") could not sign in to Power Automate as you: reconnect at " +
			c.env.DashboardURL + "; until then the cache keeps what the last successful sync read"
	case st.Error != "" && st.SyncedAt == "":
		ci.Note = "the last sync (" + st.AttemptedAt + ") failed (" + st.Error + ") and nothing is cached yet; the sync job tries again every 30 minutes"
	case st.Error != "":
		ci.Note = "the last sync (" + st.AttemptedAt + ") failed (" + st.Error + "); the cache keeps what the last successful sync read"
	case st.SyncedAt == "":
		ci.Note = "the Team cache has not been synced yet"
	case len(st.PartialEnvironments) > 0 || st.FlowsWithoutStats > 0:
		ci.Note = "the last sync could not read everything (environments partly listed or flows whose runs were not read); those parts are from an earlier sync"
	}
	return ci, nil
}

// storeCursor is the opaque cursor of a store listing: the store's continuation
// token of the page being read, and how many of its items were already served.
type storeCursor struct {
	Kind  string `json:"k"`
	Token string `json:"t,omitempty"`
	Skip  int    `json:"s,omitempty"`
}

const storeCursorPrefix = "c1."

func (sc storeCursor) encode() string {
	b, _ := json.Marshal(sc)
	return storeCursorPrefix + base64.RawURLEncoding.EncodeToString(b)
}

var errBadStoreCursor = &ToolError{Message: "invalid argument cursor: not a cursor returned by this tool",
	Next: "call again without cursor to start from the first page"}

func decodeStoreCursor(s, kind string) (storeCursor, error) {
	var sc storeCursor
	raw, ok := strings.CutPrefix(s, storeCursorPrefix)
	if !ok {
		return sc, errBadStoreCursor
	}
	b, err := base64.RawURLEncoding.DecodeString(raw)
	if err != nil || json.Unmarshal(b, &sc) != nil || sc.Kind != kind || sc.Skip < 0 || sc.Skip >= storeScanSize {
		return storeCursor{}, errBadStoreCursor
	}
	return sc, nil
}

// scan returns up to pageSize rows made by keep from the caller's items of one kind
// (their bodies decoded as V), in id order, starting at cursor, and the cursor of the
// rest ("" at the end).
func scan[V, T any](ctx context.Context, c *storeCall, kind, cursor string, pageSize int, keep func(*cosmos.CacheItem, V) (T, bool)) ([]T, string, error) {
	if pageSize <= 0 {
		pageSize = defaultStorePage
	}
	pos := storeCursor{Kind: kind}
	if cursor != "" {
		var err error
		if pos, err = decodeStoreCursor(cursor, kind); err != nil {
			return nil, "", err
		}
	}
	rows := []T{}
	progress := newPageProgress(ctx, "matching rows")
	for page := 1; page <= storeScanPages; page++ {
		items, next, err := c.cache.ListCacheItems(ctx, c.userID, cosmos.CacheFilter{Kind: kind},
			cosmos.PageRequest{Size: storeScanSize, Token: pos.Token})
		if errors.Is(err, cosmos.ErrInvalid) && pos.Token != "" {
			return nil, "", errBadStoreCursor
		}
		if err != nil {
			return nil, "", storeError(err)
		}
		for i := pos.Skip; i < len(items); i++ {
			v, err := decodeBody[V](items[i])
			if err != nil {
				return nil, "", err
			}
			row, ok := keep(items[i], v)
			if !ok {
				continue
			}
			rows = append(rows, row)
			if len(rows) == pageSize {
				switch {
				case i+1 < len(items):
					return rows, storeCursor{Kind: kind, Token: pos.Token, Skip: i + 1}.encode(), nil
				case next != "":
					return rows, storeCursor{Kind: kind, Token: next}.encode(), nil
				}
				return rows, "", nil
			}
		}
		if next == "" {
			return rows, "", nil
		}
		pos = storeCursor{Kind: kind, Token: next}
		progress.page(page, storeScanPages, len(rows))
	}
	// Scanned as far as one call may: the caller goes on with nextCursor.
	return rows, pos.encode(), nil
}

func decodeBody[T any](it *cosmos.CacheItem) (T, error) {
	var v T
	err := json.Unmarshal(it.Body, &v)
	if err != nil {
		err = &cosmos.CorruptRecordError{Container: "cache", ID: it.ID, Err: err}
	}
	return v, err
}

// containsFold reports whether s contains sub, ignoring case.
func containsFold(s, sub string) bool {
	return strings.Contains(strings.ToLower(s), strings.ToLower(sub))
}

// ---- list_store_environments ----------------------------------------------------

type storeEnvRow struct {
	Name            string `json:"name"`
	DisplayName     string `json:"displayName"`
	SKU             string `json:"sku,omitempty"`
	Location        string `json:"location,omitempty"`
	IsDefault       bool   `json:"isDefault"`
	FlowCount       int    `json:"flowCount"`
	ConnectionCount int    `json:"connectionCount"`
	AppCount        int    `json:"appCount"`
	Partial         bool   `json:"partial,omitempty"`
}

type storePageIn struct {
	PageSize int    `json:"pageSize"`
	Cursor   string `json:"cursor"`
}

type storeEnvsOut struct {
	Environments []storeEnvRow `json:"environments"`
	NextCursor   string        `json:"nextCursor,omitempty"`
	Cache        cacheInfo     `json:"cache"`
}

func listStoreEnvironments() *Tool {
	return Define(Tool{
		Name:  "list_store_environments",
		Title: "List cached environments with counts",
		Description: "Team plan. Lists the environments in your Team cache with how many flows, connections and Power Apps apps each holds, " +
			"read from the cache that the sync job refreshes every 30 minutes (no call to Power Automate). partial marks an " +
			"environment the last sync could not list completely. Next: list_store_flows with environmentName.",
		Kind:  ReadOnly,
		Group: Store,
		Input: inputSchema(storePageSizeArg, storeCursorArg),
		Output: json.RawMessage(`{"type":"object","required":["environments","cache"],"properties":{"environments":{"type":"array","items":{"type":"object",
"required":["name","displayName","isDefault","flowCount","connectionCount"],"properties":{"name":{"type":"string"},"displayName":{"type":"string"},
"sku":{"type":"string"},"location":{"type":"string"},"isDefault":{"type":"boolean"},"flowCount":{"type":"integer"},"connectionCount":{"type":"integer"},
"appCount":{"type":"integer","description":"Cached Power Apps apps (list_store_power_apps)."},
"partial":{"type":"boolean","description":"The last sync could not list all its flows or connections; the rest are from an earlier sync."}}}},
"nextCursor":{"type":"string"},"cache":` + cacheOutSchema + `}}`),
	}, func(ctx context.Context, env *Env, in storePageIn) (storeEnvsOut, error) {
		c, err := newStoreCall(ctx, env)
		if err != nil {
			return storeEnvsOut{}, err
		}
		rows, next, err := scan(ctx, c, teamcache.KindEnvironment, in.Cursor, in.PageSize, func(it *cosmos.CacheItem, e teamcache.Environment) (storeEnvRow, bool) {
			return storeEnvRow{Name: e.Name, DisplayName: e.DisplayName, SKU: e.SKU, Location: e.Location, IsDefault: e.IsDefault,
				FlowCount: e.FlowCount, ConnectionCount: e.ConnectionCount, AppCount: e.AppCount, Partial: !e.FlowsComplete || !e.ConnectionsComplete}, true
		})
		if err != nil {
			return storeEnvsOut{}, err
		}
		info, err := c.info(ctx)
		return storeEnvsOut{Environments: rows, NextCursor: next, Cache: info}, err
	})
}

// ---- list_store_flows -------------------------------------------------------------

type storeFlowRow struct {
	ID              string   `json:"id"`
	EnvironmentName string   `json:"environmentName"`
	Name            string   `json:"name"`
	DisplayName     string   `json:"displayName"`
	State           string   `json:"state"`
	Trigger         string   `json:"trigger,omitempty"`
	ActionCount     int      `json:"actionCount"`
	CreatorID       string   `json:"creatorObjectId,omitempty"`
	Modified        string   `json:"modified,omitempty"`
	Monitored       bool     `json:"monitored,omitempty"`
	Critical        bool     `json:"critical,omitempty"`
	Tags            []string `json:"tags,omitempty"`
}

type storeFlowsIn struct {
	EnvironmentName string `json:"environmentName"`
	Search          string `json:"search"`
	State           string `json:"state"`
	Monitored       *bool  `json:"monitored"`
	Tag             string `json:"tag"`
	Critical        *bool  `json:"critical"`
	Connector       string `json:"connector"`
	storePageIn
}

type storeFlowsOut struct {
	Flows      []storeFlowRow `json:"flows"`
	NextCursor string         `json:"nextCursor,omitempty"`
	Cache      cacheInfo      `json:"cache"`
}

func listStoreFlows() *Tool {
	return Define(Tool{
		Name:  "list_store_flows",
		Title: "List cached flows with governance filters",
		Description: "Team plan. Lists the flows in your Team cache across every environment, compactly: id (<environment>.<flow>), " +
			"display name, state, trigger, action count, creator object id, and the governance flags set with update_store_flow " +
			"(monitored, critical, tags). Filters: environmentName, search (display name), state, monitored, critical, tag, " +
			"connector. Reads the cache the sync job refreshes every 30 minutes, not Power Automate. Pages with pageSize and " +
			"nextCursor. Next: get_store_flow, get_store_flow_summary.",
		Kind:  ReadOnly,
		Group: Store,
		Input: inputSchema(storeEnvArg,
			optionalArg("search", `{"type":"string","maxLength":200,"description":"Case-insensitive text to find in the display name."}`),
			optionalArg("state", `{"type":"string","enum":["Started","Stopped","Suspended"],"description":"Only flows in this state."}`),
			optionalArg("monitored", `{"type":"boolean","description":"true: only flows with monitor on (update_store_flow); false: only those without."}`),
			optionalArg("critical", `{"type":"boolean","description":"true: only flows marked critical; false: only those not."}`),
			optionalArg("tag", `{"type":"string","minLength":1,"maxLength":40,"description":"Only flows with this tag (case-insensitive)."}`),
			optionalArg("connector", `{"type":"string","minLength":1,"maxLength":128,"description":"Only flows using this connector, e.g. shared_office365."}`),
			storePageSizeArg, storeCursorArg),
		Output: json.RawMessage(`{"type":"object","required":["flows","cache"],"properties":{"flows":{"type":"array","items":{"type":"object",
"required":["id","environmentName","name","displayName","state","actionCount"],"properties":{"id":` + storeFlowIDOut + `,
"environmentName":{"type":"string"},"name":{"type":"string"},"displayName":{"type":"string"},"state":{"type":"string"},"trigger":{"type":"string"},
"actionCount":{"type":"integer"},"creatorObjectId":{"type":"string"},"modified":{"type":"string"},"monitored":{"type":"boolean"},
"critical":{"type":"boolean"},"tags":{"type":"array","items":{"type":"string"}}}}},
"nextCursor":{"type":"string"},"cache":` + cacheOutSchema + `}}`),
	}, func(ctx context.Context, env *Env, in storeFlowsIn) (storeFlowsOut, error) {
		c, err := newStoreCall(ctx, env)
		if err != nil {
			return storeFlowsOut{}, err
		}
		gov, err := c.governanceByKey(ctx)
		if err != nil {
			return storeFlowsOut{}, err
		}
		search := strings.TrimSpace(in.Search)
		rows, next, err := scan(ctx, c, teamcache.KindFlow, in.Cursor, in.PageSize, func(it *cosmos.CacheItem, f teamcache.Flow) (storeFlowRow, bool) {
			g := gov[it.Key]
			switch {
			case in.EnvironmentName != "" && !strings.EqualFold(f.EnvironmentName, in.EnvironmentName),
				search != "" && !containsFold(f.DisplayName, search),
				in.State != "" && !strings.EqualFold(f.State, in.State),
				in.Monitored != nil && *in.Monitored != (g != nil && g.Monitor),
				in.Critical != nil && *in.Critical != (g != nil && g.Critical),
				in.Tag != "" && (g == nil || !slices.ContainsFunc(g.Tags, func(t string) bool { return strings.EqualFold(t, in.Tag) })),
				in.Connector != "" && !slices.ContainsFunc(f.Connectors, func(c string) bool { return strings.EqualFold(c, in.Connector) }):
				return storeFlowRow{}, false
			}
			row := storeFlowRow{ID: it.Key, EnvironmentName: f.EnvironmentName, Name: f.Name, DisplayName: f.DisplayName, State: f.State,
				Trigger: f.Trigger, ActionCount: f.ActionCount, CreatorID: f.CreatorObjectID, Modified: f.Modified}
			if g != nil {
				row.Monitored, row.Critical, row.Tags = g.Monitor, g.Critical, g.Tags
			}
			return row, true
		})
		if err != nil {
			return storeFlowsOut{}, err
		}
		info, err := c.info(ctx)
		return storeFlowsOut{Flows: rows, NextCursor: next, Cache: info}, err
	})
}

// governanceByKey reads the caller's governance items, by flow key.
func (c *storeCall) governanceByKey(ctx context.Context) (map[string]*teamcache.Governance, error) {
	out := map[string]*teamcache.Governance{}
	token := ""
	for range maxGovernanceRead {
		items, next, err := c.cache.ListCacheItems(ctx, c.userID, cosmos.CacheFilter{Kind: teamcache.KindGovernance}, cosmos.PageRequest{Size: 1000, Token: token})
		if err != nil {
			return nil, storeError(err)
		}
		for _, it := range items {
			g, err := decodeBody[teamcache.Governance](it)
			if err != nil {
				return nil, err
			}
			out[it.Key] = &g
		}
		if next == "" {
			break
		}
		token = next
	}
	return out, nil
}

// ---- one flow: get_store_flow, get_store_flow_summary, get_store_flow_runs ----------

// storeFlowArgs name one flow: id, or environmentName and flowName.
type storeFlowArgs struct {
	ID              string `json:"id"`
	EnvironmentName string `json:"environmentName"`
	FlowName        string `json:"flowName"`
}

// key checks the arguments and returns the flow's cache key.
func (a storeFlowArgs) key() (string, error) {
	switch {
	case a.ID != "" && (a.EnvironmentName != "" || a.FlowName != ""):
		return "", &ToolError{Message: "invalid arguments: pass id, or environmentName and flowName, not both"}
	case a.ID != "":
		env, flow, ok := teamcache.SplitKey(a.ID)
		if !ok || powerautomate.ValidateEnvironmentName(env) != nil || powerautomate.ValidateFlowName(flow) != nil {
			return "", &ToolError{Message: "invalid argument id: want <environment>.<flow> as list_store_flows returns it"}
		}
		return teamcache.Key(env, flow), nil
	case a.EnvironmentName == "" || a.FlowName == "":
		return "", &ToolError{Message: "invalid arguments: pass id, or environmentName and flowName"}
	}
	return teamcache.Key(a.EnvironmentName, a.FlowName), nil
}

// flowItem reads one cached flow item of a kind; a missing one is a ToolError.
func (c *storeCall) flowItem(ctx context.Context, kind, key string) (*cosmos.CacheItem, error) {
	it, err := c.cache.GetCacheItem(ctx, c.userID, kind, key)
	if errors.Is(err, cosmos.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, storeError(err)
	}
	return it, nil
}

// cachedFlow reads a flow's cache item and decodes it; a flow not in the cache is a
// tool error that says when the cache was last synced.
func (c *storeCall) cachedFlow(ctx context.Context, key string) (*cosmos.CacheItem, teamcache.Flow, error) {
	it, err := c.flowItem(ctx, teamcache.KindFlow, key)
	if err != nil {
		return nil, teamcache.Flow{}, err
	}
	if it == nil {
		return nil, teamcache.Flow{}, c.flowNotFound(ctx)
	}
	f, err := decodeBody[teamcache.Flow](it)
	return it, f, err
}

func (c *storeCall) flowNotFound(ctx context.Context) error {
	info, err := c.info(ctx)
	if err != nil {
		return err
	}
	msg := "this flow is not in your Team cache"
	if info.SyncedAt != "" {
		msg += " (last synced " + info.SyncedAt + ")"
	}
	return &ToolError{Message: msg, Next: "find it with list_store_flows; a flow created or shared since the last sync appears " +
		"after the next one, and get_live_flow reads it now"}
}

type storeFlowOut struct {
	teamcache.Flow
	ID         string                `json:"id"`
	CachedAt   string                `json:"cachedAt"`
	Governance *teamcache.Governance `json:"governance,omitempty"`
	Cache      cacheInfo             `json:"cache"`
}

// governanceOutSchema describes teamcache.Governance.
const governanceOutSchema = `{"type":"object","required":["monitor","critical"],"properties":{
"environmentName":{"type":"string"},"flowName":{"type":"string"},"monitor":{"type":"boolean"},
"notifyRules":{"type":"array","items":{"type":"object","required":["when","email"],"properties":{"when":{"type":"string"},"threshold":{"type":"number"},"email":{"type":"string"}}}},
"description":{"type":"string"},"tags":{"type":"array","items":{"type":"string"}},"businessImpact":{"type":"string"},"ownerTeam":{"type":"string"},
"supportEmail":{"type":"string"},"critical":{"type":"boolean"},"tier":{"type":"string"},"updatedAt":{"type":"string"}}}`

func getStoreFlow() *Tool {
	return Define(Tool{
		Name:  "get_store_flow",
		Title: "Get a cached flow with its governance fields",
		Description: "Team plan. Returns one flow from your Team cache: metadata (state, created, modified, creator), the " +
			"definition summary (trigger, action count by type, connector operations, connectors and connection references; " +
			"never action inputs or outputs) and its governance fields from update_store_flow (monitor, notify rules, tags, " +
			"business impact, owner team, support email, critical, tier). Name it by id or by environmentName and flowName. " +
			"Next: get_store_flow_summary for its run statistics, get_live_flow for the live definition.",
		Kind:  ReadOnly,
		Group: Store,
		Input: inputSchema(storeFlowIDArg, storeEnvArg, storeFlowArg),
		Output: json.RawMessage(`{"type":"object","required":["id","environmentName","name","displayName","state","actionCount","cachedAt","cache"],"properties":{
"id":` + storeFlowIDOut + `,"environmentName":{"type":"string"},"name":{"type":"string"},"displayName":{"type":"string"},"state":{"type":"string"},
"created":{"type":"string"},"modified":{"type":"string"},"creatorObjectId":{"type":"string"},"userType":{"type":"string"},"sharingType":{"type":"string"},
"suspensionReason":{"type":"string"},"trigger":{"type":"string"},
"triggers":{"type":"array","items":{"type":"object","properties":{"type":{"type":"string"},"kind":{"type":"string"},"operationId":{"type":"string"}}}},
"actionCount":{"type":"integer"},"actionTypes":{"type":"object","additionalProperties":{"type":"integer"}},
"operations":{"type":"object","additionalProperties":{"type":"integer"},"description":"Connector operations by id, with counts."},
"connectors":{"type":"array","items":{"type":"string"}},
"connectionReferences":{"type":"array","items":{"type":"object","properties":{"connector":{"type":"string"},"connectionName":{"type":"string"},"source":{"type":"string"}}}},
"cachedAt":{"type":"string","description":"When this flow's entry was last written by sync."},
"governance":` + governanceOutSchema + `,"cache":` + cacheOutSchema + `}}`),
	}, func(ctx context.Context, env *Env, in storeFlowArgs) (storeFlowOut, error) {
		key, err := in.key()
		if err != nil {
			return storeFlowOut{}, err
		}
		c, err := newStoreCall(ctx, env)
		if err != nil {
			return storeFlowOut{}, err
		}
		it, f, err := c.cachedFlow(ctx, key)
		if err != nil {
			return storeFlowOut{}, err
		}
		out := storeFlowOut{Flow: f, ID: key, CachedAt: time.Unix(it.UpdatedAt, 0).UTC().Format(time.RFC3339)}
		if g, err := c.flowItem(ctx, teamcache.KindGovernance, key); err != nil {
			return storeFlowOut{}, err
		} else if g != nil {
			gov, err := decodeBody[teamcache.Governance](g)
			if err != nil {
				return storeFlowOut{}, err
			}
			out.Governance = &gov
		}
		out.Cache, err = c.info(ctx)
		return out, err
	})
}

type storeSummaryOut struct {
	ID            string              `json:"id"`
	DisplayName   string              `json:"displayName,omitempty"`
	Window        string              `json:"window"`
	From          string              `json:"from"`
	To            string              `json:"to"`
	Runs          int                 `json:"runs"`
	ByStatus      map[string]int      `json:"byStatus"`
	Failed        int                 `json:"failed"`
	FailureRate   float64             `json:"failureRate"`
	AvgDurationMS int64               `json:"avgDurationMs,omitempty"`
	LastRun       *teamcache.RunBrief `json:"lastRun,omitempty"`
	LastFailure   *teamcache.RunBrief `json:"lastFailure,omitempty"`
	Truncated     bool                `json:"truncated,omitempty"`
	Cache         cacheInfo           `json:"cache"`
}

const runBriefSchema = `{"type":"object","required":["name","status","start"],"properties":{"name":{"type":"string"},"status":{"type":"string"},
"start":{"type":"string"},"end":{"type":"string"},"durationMs":{"type":"integer"},"errorCode":{"type":"string"}}}`

// flowStats reads a flow's statistics; a flow cached without them, or not cached,
// is a ToolError.
func (c *storeCall) flowStats(ctx context.Context, key string) (*teamcache.FlowStats, string, error) {
	it, err := c.flowItem(ctx, teamcache.KindFlowStats, key)
	if err != nil {
		return nil, "", err
	}
	_, f, err := c.cachedFlow(ctx, key)
	if err != nil {
		return nil, "", err
	}
	if it == nil {
		return nil, "", &ToolError{Message: "no run statistics are cached for this flow yet (its runs could not be read by the last sync)",
			Next: "get_live_flow_runs reads its runs now"}
	}
	st, err := decodeBody[teamcache.FlowStats](it)
	return &st, f.DisplayName, err
}

func getStoreFlowSummary() *Tool {
	return Define(Tool{
		Name:  "get_store_flow_summary",
		Title: "Get a cached flow's run statistics",
		Description: "Team plan. Returns a flow's run statistics from your Team cache over the sync window (default the last " +
			"7 days): runs, counts by status, failures, failure rate (failed or timed-out runs / finished runs), average " +
			"duration, the last run, and the last failure with its error code and run name. truncated means the flow ran more " +
			"often than one sync reads; the statistics then cover its newest runs. Next: get_store_flow_runs for recent runs, " +
			"get_live_flow_run_error with the last failure's run name.",
		Kind:  ReadOnly,
		Group: Store,
		Input: inputSchema(storeFlowIDArg, storeEnvArg, storeFlowArg),
		Output: json.RawMessage(`{"type":"object","required":["id","window","from","to","runs","byStatus","failed","failureRate","cache"],"properties":{
"id":` + storeFlowIDOut + `,"displayName":{"type":"string"},"window":{"type":"string"},"from":{"type":"string"},"to":{"type":"string"},
"runs":{"type":"integer"},"byStatus":{"type":"object","additionalProperties":{"type":"integer"}},"failed":{"type":"integer"},
"failureRate":{"type":"number","minimum":0,"maximum":1},"avgDurationMs":{"type":"integer"},"lastRun":` + runBriefSchema + `,
"lastFailure":` + runBriefSchema + `,"truncated":{"type":"boolean"},"cache":` + cacheOutSchema + `}}`),
	}, func(ctx context.Context, env *Env, in storeFlowArgs) (storeSummaryOut, error) {
		key, err := in.key()
		if err != nil {
			return storeSummaryOut{}, err
		}
		c, err := newStoreCall(ctx, env)
		if err != nil {
			return storeSummaryOut{}, err
		}
		st, name, err := c.flowStats(ctx, key)
		if err != nil {
			return storeSummaryOut{}, err
		}
		out := storeSummaryOut{ID: key, DisplayName: name, Window: st.Window, From: st.From, To: st.To, Runs: st.Runs, ByStatus: st.ByStatus,
			Failed: st.Failed, FailureRate: st.FailureRate, AvgDurationMS: st.AvgDurationMS, LastRun: st.LastRun, LastFailure: st.LastFailure,
			Truncated: st.Truncated}
		if out.ByStatus == nil {
			out.ByStatus = map[string]int{}
		}
		out.Cache, err = c.info(ctx)
		return out, err
	})
}

type storeRunsIn struct {
	storeFlowArgs
	Status string `json:"status"`
	Top    int    `json:"top"`
}

type storeRunsOut struct {
	ID    string               `json:"id"`
	Runs  []teamcache.RunBrief `json:"runs"`
	Cache cacheInfo            `json:"cache"`
}

func getStoreFlowRuns() *Tool {
	return Define(Tool{
		Name:  "get_store_flow_runs",
		Title: "Get a cached flow's recent runs",
		Description: "Team plan. Returns the newest runs of a flow as the last sync saw them (at most 25, newest first): run " +
			"name, status, start, end, duration and error code; never inputs, outputs or error messages. status filters, top " +
			"limits. For runs since the last sync, or for why a run failed, use get_live_flow_runs and get_live_flow_run_error " +
			"with the run name.",
		Kind:  ReadOnly,
		Group: Store,
		Input: inputSchema(storeFlowIDArg, storeEnvArg, storeFlowArg, runStatusArg,
			optionalArg("top", `{"type":"integer","minimum":1,"maximum":25,"default":25,"description":"At most this many runs."}`)),
		Output: json.RawMessage(`{"type":"object","required":["id","runs","cache"],"properties":{"id":` + storeFlowIDOut + `,
"runs":{"type":"array","items":` + runBriefSchema + `},"cache":` + cacheOutSchema + `}}`),
	}, func(ctx context.Context, env *Env, in storeRunsIn) (storeRunsOut, error) {
		key, err := in.key()
		if err != nil {
			return storeRunsOut{}, err
		}
		c, err := newStoreCall(ctx, env)
		if err != nil {
			return storeRunsOut{}, err
		}
		st, _, err := c.flowStats(ctx, key)
		if err != nil {
			return storeRunsOut{}, err
		}
		if in.Top == 0 {
			in.Top = teamcache.RecentRuns
		}
		out := storeRunsOut{ID: key, Runs: []teamcache.RunBrief{}}
		for _, r := range st.Recent {
			if len(out.Runs) == in.Top {
				break
			}
			if in.Status == "" || strings.EqualFold(r.Status, in.Status) {
				out.Runs = append(out.Runs, r)
			}
		}
		out.Cache, err = c.info(ctx)
		return out, err
	})
}

// ---- update_store_flow ----------------------------------------------------------------

type notifyRuleIn struct {
	When      string   `json:"when"`
	Threshold *float64 `json:"threshold"`
	Email     string   `json:"email"`
}

type updateStoreFlowIn struct {
	storeFlowArgs
	Monitor        *bool           `json:"monitor"`
	NotifyRules    *[]notifyRuleIn `json:"notifyRules"`
	Description    *string         `json:"description"`
	Tags           *[]string       `json:"tags"`
	BusinessImpact *string         `json:"businessImpact"`
	OwnerTeam      *string         `json:"ownerTeam"`
	SupportEmail   *string         `json:"supportEmail"`
	Critical       *bool           `json:"critical"`
	Tier           *string         `json:"tier"`
}

type updateStoreFlowOut struct {
	ID         string               `json:"id"`
	Changed    bool                 `json:"changed"`
	Governance teamcache.Governance `json:"governance"`
	Cache      cacheInfo            `json:"cache"`
}

// emailCore is an email address as a JSON-escaped pattern, without anchors.
const emailCore = `[^@\\s]+@[^@\\s]+\\.[^@\\s]+`

var emailRE = regexp.MustCompile(`^[^@\s]+@[^@\s]+\.[^@\s]+$`)

// maxGovernanceRetries bounds update_store_flow's read-merge-write loop: each retry
// means another write of the same flow's fields got in first.
const maxGovernanceRetries = 25

func updateStoreFlow() *Tool {
	return Define(Tool{
		Name:  "update_store_flow",
		Title: "Set a cached flow's governance fields",
		Description: "Team plan. Merges governance fields into a flow's entry in your Team cache: monitor, notifyRules, " +
			"description, tags, businessImpact, ownerTeam, supportEmail, critical, tier. Only the fields you pass change; an " +
			"empty string or empty list clears one; tags and notifyRules replace the whole list. The fields survive every sync " +
			"and are kept 21 days after the flow disappears. Changes nothing in Power Automate. With monitor on, FlowStudio " +
			"acts on notifyRules: it checks the flow every few minutes and after each sync and, once per incident (not " +
			"again until the flow recovers), emails the rule's address and calls the webhook set on the dashboard, with " +
			"the flow's name, environment, what happened, when and a link (never run data). Next: list_store_flows with " +
			"monitored, critical or tag.",
		Kind:       Write,
		Group:      Store,
		Idempotent: true,
		Input: inputSchema(storeFlowIDArg, storeEnvArg, storeFlowArg,
			optionalArg("monitor", `{"type":"boolean","description":"Whether the flow's health is watched."}`),
			optionalArg("notifyRules", `{"type":"array","maxItems":10,"description":"Who to tell about what; replaces the list ([] clears it).","items":{"type":"object","additionalProperties":false,"required":["when","email"],"properties":{
"when":{"type":"string","enum":["anyFailure","failureRateAbove","noRunsFor"],"description":"anyFailure: a run fails; failureRateAbove: the sync window's failure rate exceeds threshold (0..1); noRunsFor: a flow that is on has not run for threshold hours."},
"threshold":{"type":"number","minimum":0,"maximum":720,"description":"failureRateAbove: a rate in (0, 1]; noRunsFor: whole hours 1..720; anyFailure: none."},
"email":{"type":"string","maxLength":254,"pattern":"^`+emailCore+`$","description":"Who to notify."}}}}`),
			optionalArg("description", `{"type":"string","maxLength":2000,"description":"What the flow is for."}`),
			optionalArg("tags", `{"type":"array","maxItems":20,"description":"Replaces the tags ([] clears them); compared case-insensitively.","items":{"type":"string","minLength":1,"maxLength":40,"pattern":"^\\S([^\\x00-\\x1f]*\\S)?$"}}`),
			optionalArg("businessImpact", `{"type":"string","enum":["","low","medium","high"],"description":"What a failure of the flow costs the business; \"\" clears it."}`),
			optionalArg("ownerTeam", `{"type":"string","maxLength":200,"description":"The team that owns the flow."}`),
			optionalArg("supportEmail", `{"type":"string","maxLength":254,"pattern":"^(`+emailCore+`)?$","description":"Where to ask for help; \"\" clears it."}`),
			optionalArg("critical", `{"type":"boolean","description":"Whether the flow is business-critical."}`),
			optionalArg("tier", `{"type":"string","maxLength":40,"pattern":"^[^\\x00-\\x1f]*$","description":"Your organisation's support tier for the flow, e.g. tier1 or gold; \"\" clears it."}`)),
		Output: json.RawMessage(`{"type":"object","required":["id","changed","governance","cache"],"properties":{"id":` + storeFlowIDOut + `,
"changed":{"type":"boolean","description":"false when the fields already had these values."},
"governance":` + governanceOutSchema + `,"cache":` + cacheOutSchema + `}}`),
	}, func(ctx context.Context, env *Env, in updateStoreFlowIn) (updateStoreFlowOut, error) {
		key, err := in.key()
		if err != nil {
			return updateStoreFlowOut{}, err
		}
		if err := in.validate(); err != nil {
			return updateStoreFlowOut{}, err
		}
		c, err := newStoreCall(ctx, env)
		if err != nil {
			return updateStoreFlowOut{}, err
		}
		_, f, err := c.cachedFlow(ctx, key)
		if err != nil {
			return updateStoreFlowOut{}, err
		}
		out := updateStoreFlowOut{ID: key}
		for attempt := 0; ; attempt++ {
			if attempt == maxGovernanceRetries {
				return updateStoreFlowOut{}, &ToolError{Message: "the flow's governance fields were changed by another call at the same time",
					Next: "read them with get_store_flow and retry"}
			}
			gi, err := c.flowItem(ctx, teamcache.KindGovernance, key)
			if err != nil {
				return updateStoreFlowOut{}, err
			}
			var g teamcache.Governance
			if gi != nil {
				if g, err = decodeBody[teamcache.Governance](gi); err != nil {
					return updateStoreFlowOut{}, err
				}
			}
			before, _ := json.Marshal(g)
			g.EnvironmentName, g.FlowName = f.EnvironmentName, f.Name
			in.apply(&g)
			after, _ := json.Marshal(g)
			if gi != nil && string(before) == string(after) {
				out.Governance = g
				break
			}
			g.UpdatedAt = time.Now().UTC().Format(time.RFC3339)
			body, err := json.Marshal(g)
			if err != nil {
				return updateStoreFlowOut{}, err
			}
			if gi == nil {
				_, err = c.cache.CreateCacheItem(ctx, &cosmos.CacheItem{UserID: c.userID, Kind: teamcache.KindGovernance, Key: key, Body: body})
			} else {
				gi.Body = body
				if gi.TTL == teamcache.OrphanGovernanceTTL {
					gi.TTL = -1 // the flow is back in the cache
				}
				_, err = c.cache.ReplaceCacheItem(ctx, gi)
			}
			if errors.Is(err, cosmos.ErrConflict) || errors.Is(err, cosmos.ErrPreconditionFailed) || errors.Is(err, cosmos.ErrNotFound) {
				// Written meanwhile: merge into the newer one, after a short random
				// pause so that contenders spread out.
				select {
				case <-ctx.Done():
					return updateStoreFlowOut{}, storeError(ctx.Err())
				case <-time.After(rand.N(time.Duration(attempt+1) * 2 * time.Millisecond)):
				}
				continue
			}
			if err != nil {
				return updateStoreFlowOut{}, storeError(err)
			}
			out.Changed, out.Governance = true, g
			break
		}
		out.Cache, err = c.info(ctx)
		return out, err
	})
}

// validate applies what the schema cannot say.
func (in *updateStoreFlowIn) validate() error {
	if in.Monitor == nil && in.NotifyRules == nil && in.Description == nil && in.Tags == nil && in.BusinessImpact == nil &&
		in.OwnerTeam == nil && in.SupportEmail == nil && in.Critical == nil && in.Tier == nil {
		return &ToolError{Message: "invalid arguments: pass at least one governance field to set",
			Next: "e.g. {\"monitor\":true} or {\"tags\":[\"finance\"]}"}
	}
	if in.NotifyRules != nil {
		for i, r := range *in.NotifyRules {
			field := "invalid argument notifyRules[" + itoa(i) + "].threshold: "
			switch r.When {
			case teamcache.WhenAnyFailure:
				if r.Threshold != nil {
					return &ToolError{Message: field + "anyFailure takes no threshold"}
				}
			case teamcache.WhenFailureRateAbove:
				if r.Threshold == nil || *r.Threshold <= 0 || *r.Threshold > 1 {
					return &ToolError{Message: field + "failureRateAbove needs a rate in (0, 1], e.g. 0.2"}
				}
			case teamcache.WhenNoRunsFor:
				if r.Threshold == nil || *r.Threshold < 1 || *r.Threshold > 720 || *r.Threshold != math.Trunc(*r.Threshold) {
					return &ToolError{Message: field + "noRunsFor needs whole hours 1..720, e.g. 24"}
				}
			}
			if !emailRE.MatchString(r.Email) {
				return &ToolError{Message: "invalid argument notifyRules[" + itoa(i) + "].email: not an email address"}
			}
		}
	}
	if in.Tags != nil {
		for i, t := range *in.Tags {
			if strings.TrimSpace(t) != t {
				return &ToolError{Message: "invalid argument tags[" + itoa(i) + "]: leading or trailing space"}
			}
		}
	}
	return nil
}

// apply merges the given fields into g.
func (in *updateStoreFlowIn) apply(g *teamcache.Governance) {
	if in.Monitor != nil {
		g.Monitor = *in.Monitor
	}
	if in.NotifyRules != nil {
		g.NotifyRules = nil
		for _, r := range *in.NotifyRules {
			rule := teamcache.NotifyRule{When: r.When, Email: r.Email}
			if r.Threshold != nil {
				rule.Threshold = *r.Threshold
			}
			g.NotifyRules = append(g.NotifyRules, rule)
		}
	}
	if in.Description != nil {
		g.Description = *in.Description
	}
	if in.Tags != nil {
		g.Tags = nil
		for _, t := range *in.Tags {
			if !slices.ContainsFunc(g.Tags, func(s string) bool { return strings.EqualFold(s, t) }) {
				g.Tags = append(g.Tags, t)
			}
		}
	}
	if in.BusinessImpact != nil {
		g.BusinessImpact = *in.BusinessImpact
	}
	if in.OwnerTeam != nil {
		g.OwnerTeam = strings.TrimSpace(*in.OwnerTeam)
	}
	if in.SupportEmail != nil {
		g.SupportEmail = *in.SupportEmail
	}
	if in.Critical != nil {
		g.Critical = *in.Critical
	}
	if in.Tier != nil {
		g.Tier = strings.TrimSpace(*in.Tier)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// ---- list_store_connections -----------------------------------------------------------

type storeConnRow struct {
	ID              string   `json:"id"`
	EnvironmentName string   `json:"environmentName"`
	Name            string   `json:"name"`
	Connector       string   `json:"connector"`
	Status          string   `json:"status"`
	ErrorCode       string   `json:"errorCode,omitempty"`
	OwnerObjectID   string   `json:"ownerObjectId,omitempty"`
	Expires         string   `json:"expires,omitempty"`
	FlowCount       int      `json:"flowCount"`
	Flows           []string `json:"flows,omitempty"`
}

// maxRowFlows caps the flow ids one connection row lists (flowCount is exact).
const maxRowFlows = 25

type storeConnsIn struct {
	EnvironmentName string `json:"environmentName"`
	Connector       string `json:"connector"`
	Status          string `json:"status"`
	Unused          *bool  `json:"unused"`
	storePageIn
}

type storeConnsOut struct {
	Connections []storeConnRow `json:"connections"`
	NextCursor  string         `json:"nextCursor,omitempty"`
	Cache       cacheInfo      `json:"cache"`
}

func listStoreConnections() *Tool {
	return Define(Tool{
		Name:  "list_store_connections",
		Title: "List cached connections and the flows that use them",
		Description: "Team plan. Lists the connections in your Team cache: connector, status and error code, owner's Entra " +
			"object id (the cache keeps no names or emails: list_live_connections shows them), expiry, and the cached flows whose connection references use each (flowCount, and up to 25 flow ids). " +
			"Filters: environmentName, connector, status (Connected, Error, ...), unused (true: used by no cached flow). Pages " +
			"with pageSize and nextCursor. Next: test_live_connection to check one now.",
		Kind:  ReadOnly,
		Group: Store,
		Input: inputSchema(storeEnvArg,
			optionalArg("connector", `{"type":"string","minLength":1,"maxLength":128,"description":"Only this connector's connections, e.g. shared_office365."}`),
			optionalArg("status", `{"type":"string","minLength":1,"maxLength":40,"description":"Only connections with this status, e.g. Connected or Error."}`),
			optionalArg("unused", `{"type":"boolean","description":"true: only connections no cached flow uses; false: only used ones."}`),
			storePageSizeArg, storeCursorArg),
		Output: json.RawMessage(`{"type":"object","required":["connections","cache"],"properties":{"connections":{"type":"array","items":{"type":"object",
"required":["id","environmentName","name","connector","status","flowCount"],"properties":{"id":{"type":"string"},"environmentName":{"type":"string"},
"name":{"type":"string"},"connector":{"type":"string"},"status":{"type":"string"},"errorCode":{"type":"string"},
"ownerObjectId":{"type":"string"},"expires":{"type":"string"},"flowCount":{"type":"integer"},
"flows":{"type":"array","items":{"type":"string"},"description":"Ids of flows using it (at most 25)."}}}},
"nextCursor":{"type":"string"},"cache":` + cacheOutSchema + `}}`),
	}, func(ctx context.Context, env *Env, in storeConnsIn) (storeConnsOut, error) {
		c, err := newStoreCall(ctx, env)
		if err != nil {
			return storeConnsOut{}, err
		}
		rows, next, err := scan(ctx, c, teamcache.KindConnection, in.Cursor, in.PageSize, func(it *cosmos.CacheItem, cn teamcache.Connection) (storeConnRow, bool) {
			switch {
			case in.EnvironmentName != "" && !strings.EqualFold(cn.EnvironmentName, in.EnvironmentName),
				in.Connector != "" && !strings.EqualFold(cn.Connector, in.Connector),
				in.Status != "" && !strings.EqualFold(cn.Status, in.Status),
				in.Unused != nil && *in.Unused != (cn.FlowCount == 0):
				return storeConnRow{}, false
			}
			return storeConnRow{ID: it.Key, EnvironmentName: cn.EnvironmentName, Name: cn.Name, Connector: cn.Connector,
				Status: cn.Status, ErrorCode: cn.ErrorCode, OwnerObjectID: cn.OwnerObjectID, Expires: cn.Expires,
				FlowCount: cn.FlowCount, Flows: cn.Flows[:min(len(cn.Flows), maxRowFlows)]}, true
		})
		if err != nil {
			return storeConnsOut{}, err
		}
		info, err := c.info(ctx)
		return storeConnsOut{Connections: rows, NextCursor: next, Cache: info}, err
	})
}

// ---- list_store_makers, get_store_maker ---------------------------------------------------

type storeMakerRow struct {
	ObjectID        string `json:"objectId"`
	FlowCount       int    `json:"flowCount"`
	StartedFlows    int    `json:"startedFlows"`
	StoppedFlows    int    `json:"stoppedFlows"`
	ConnectionCount int    `json:"connectionCount"`
	AppCount        int    `json:"appCount"`
	Environments    int    `json:"environments"`
	LastModified    string `json:"lastModified,omitempty"`
}

type storeMakersIn struct {
	EnvironmentName string `json:"environmentName"`
	storePageIn
}

type storeMakersOut struct {
	Makers     []storeMakerRow `json:"makers"`
	NextCursor string          `json:"nextCursor,omitempty"`
	Cache      cacheInfo       `json:"cache"`
}

func listStoreMakers() *Tool {
	return Define(Tool{
		Name:  "list_store_makers",
		Title: "List the makers who own cached flows",
		Description: "Team plan. Lists the people who created the flows in your Team cache, by Entra object id (the cache keeps " +
			"no names or emails): flow counts (all, started, stopped), connections and apps they own, how many " +
			"environments, and when they last changed a flow. environmentName keeps makers with flows there. Pages with " +
			"pageSize and nextCursor. Next: get_store_maker for one maker's flows.",
		Kind:  ReadOnly,
		Group: Store,
		Input: inputSchema(storeEnvArg, storePageSizeArg, storeCursorArg),
		Output: json.RawMessage(`{"type":"object","required":["makers","cache"],"properties":{"makers":{"type":"array","items":{"type":"object",
"required":["objectId","flowCount","startedFlows","stoppedFlows","connectionCount","environments"],"properties":{"objectId":{"type":"string"},
"flowCount":{"type":"integer"},"startedFlows":{"type":"integer"},"stoppedFlows":{"type":"integer"},
"connectionCount":{"type":"integer"},"appCount":{"type":"integer"},"environments":{"type":"integer"},"lastModified":{"type":"string"}}}},
"nextCursor":{"type":"string"},"cache":` + cacheOutSchema + `}}`),
	}, func(ctx context.Context, env *Env, in storeMakersIn) (storeMakersOut, error) {
		c, err := newStoreCall(ctx, env)
		if err != nil {
			return storeMakersOut{}, err
		}
		rows, next, err := scan(ctx, c, teamcache.KindMaker, in.Cursor, in.PageSize, func(it *cosmos.CacheItem, m teamcache.Maker) (storeMakerRow, bool) {
			if in.EnvironmentName != "" && !slices.ContainsFunc(m.Environments, func(e string) bool { return strings.EqualFold(e, in.EnvironmentName) }) {
				return storeMakerRow{}, false
			}
			return storeMakerRow{ObjectID: m.ObjectID, FlowCount: m.FlowCount, StartedFlows: m.StartedFlows,
				StoppedFlows: m.StoppedFlows, ConnectionCount: m.ConnectionCount, AppCount: m.AppCount, Environments: len(m.Environments), LastModified: m.LastModified}, true
		})
		if err != nil {
			return storeMakersOut{}, err
		}
		info, err := c.info(ctx)
		return storeMakersOut{Makers: rows, NextCursor: next, Cache: info}, err
	})
}

type getStoreMakerIn struct {
	ObjectID string `json:"objectId"`
}

type storeMakerOut struct {
	teamcache.Maker
	Cache cacheInfo `json:"cache"`
}

func getStoreMaker() *Tool {
	return Define(Tool{
		Name:  "get_store_maker",
		Title: "Get one maker's cached flows",
		Description: "Team plan. Returns one maker from your Team cache by Entra object id (from list_store_makers or a flow's " +
			"creatorObjectId): flow counts by state, connections owned, environments, last change, and their flows (id, display " +
			"name, state; at most 200). Next: get_store_flow for one of them.",
		Kind:  ReadOnly,
		Group: Store,
		Input: inputSchema(requiredArg("objectId", `{"type":"string","minLength":36,"maxLength":36,`+guidPattern+`,"description":"The maker's Entra object id."}`)),
		Output: json.RawMessage(`{"type":"object","required":["objectId","flowCount","startedFlows","stoppedFlows","connectionCount","environments","cache"],"properties":{
"objectId":{"type":"string"},"flowCount":{"type":"integer"},"startedFlows":{"type":"integer"},"stoppedFlows":{"type":"integer"},
"suspendedFlows":{"type":"integer"},"connectionCount":{"type":"integer"},"appCount":{"type":"integer"},"environments":{"type":"array","items":{"type":"string"}},
"lastModified":{"type":"string"},"flows":{"type":"array","items":{"type":"object","required":["id","displayName","state"],"properties":{
"id":` + storeFlowIDOut + `,"displayName":{"type":"string"},"state":{"type":"string"}}}},"cache":` + cacheOutSchema + `}}`),
	}, func(ctx context.Context, env *Env, in getStoreMakerIn) (storeMakerOut, error) {
		c, err := newStoreCall(ctx, env)
		if err != nil {
			return storeMakerOut{}, err
		}
		it, err := c.cache.GetCacheItem(ctx, c.userID, teamcache.KindMaker, teamcache.MakerKey(in.ObjectID))
		if errors.Is(err, cosmos.ErrNotFound) {
			return storeMakerOut{}, &ToolError{Message: "no maker with this object id in your Team cache",
				Next: "list_store_makers lists them; makers are the creators of cached flows"}
		}
		if err != nil {
			return storeMakerOut{}, storeError(err)
		}
		m, err := decodeBody[teamcache.Maker](it)
		if err != nil {
			return storeMakerOut{}, err
		}
		out := storeMakerOut{Maker: m}
		out.Cache, err = c.info(ctx)
		return out, err
	})
}
