package teamsync

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/flowstudio/mcp/cosmos"
	"github.com/flowstudio/mcp/tools/powerautomate"
	"github.com/flowstudio/mcp/tools/teamcache"
)

// maxExisting bounds how many of a user's cached items one sync reads back. A user
// with more is synced without deletions (nothing is deleted on a partial view).
const maxExisting = 100_000

// writeConcurrency is how many cache writes of one user run at once.
const writeConcurrency = 8

// existingItems are a user's cached items by id (kind:key).
type existingItems struct {
	byID     map[string]*cosmos.CacheItem
	complete bool
}

func (s *Syncer) loadExisting(ctx context.Context, userID string) (*existingItems, error) {
	ex := &existingItems{byID: map[string]*cosmos.CacheItem{}, complete: true}
	token := ""
	for {
		items, next, err := s.o.Store.ListCacheItems(ctx, userID, cosmos.CacheFilter{}, cosmos.PageRequest{Size: 1000, Token: token})
		if err != nil {
			return nil, err
		}
		for _, it := range items {
			ex.byID[it.ID] = it
		}
		if next == "" {
			return ex, nil
		}
		if len(ex.byID) >= maxExisting {
			ex.complete = false
			return ex, nil
		}
		token = next
	}
}

func (ex *existingItems) get(kind, key string) *cosmos.CacheItem {
	return ex.byID[cosmos.CacheItemID(kind, key)]
}

// ofKind returns the existing items of a kind whose key is in environment env
// ("" for every environment).
func (ex *existingItems) ofKind(kind, env string) []*cosmos.CacheItem {
	var out []*cosmos.CacheItem
	for _, it := range ex.byID {
		if it.Kind != kind {
			continue
		}
		if env != "" {
			if e, _, ok := teamcache.SplitKey(it.Key); !ok || e != strings.ToLower(env) {
				continue
			}
		}
		out = append(out, it)
	}
	return out
}

// plan is the cache a user should have after this sync.
type plan struct {
	put  map[string]*cosmos.CacheItem // to write (unless unchanged), by id
	keep map[string]bool              // existing items kept as they are (not refreshed), by id
}

func (p *plan) add(userID, kind, key string, body any) error {
	raw, err := marshal(body)
	if err != nil {
		return err
	}
	p.put[cosmos.CacheItemID(kind, key)] = &cosmos.CacheItem{UserID: userID, Kind: kind, Key: key, Body: raw}
	return nil
}

// write turns the snapshot into cache items: puts what changed, deletes what is
// gone, orphans or restores governance, and records the syncState.
func (s *Syncer) write(ctx context.Context, userID string, snap *snapshot, started time.Time) (*teamcache.SyncState, error) {
	ex, err := s.loadExisting(ctx, userID)
	if err != nil {
		return nil, err
	}
	p := &plan{put: map[string]*cosmos.CacheItem{}, keep: map[string]bool{}}
	state := &teamcache.SyncState{Window: teamcache.FormatWindow(s.o.Window), From: teamcache.Time(snap.from), To: teamcache.Time(snap.to)}

	var allFlows []teamcache.Flow       // every flow in the cache after this sync
	var allConns []teamcache.Connection // every connection likewise
	var allApps []teamcache.App         // every app likewise
	present := map[string]bool{}        // flow keys in the cache after this sync
	for _, es := range snap.envs {
		envName := es.env.Name
		flows := make([]teamcache.Flow, 0, len(es.flows))
		fresh := map[string]bool{}
		for _, f := range es.flows {
			key := teamcache.Key(envName, f.Name)
			if fresh[key] {
				continue
			}
			fresh[key] = true
			flows = append(flows, flowBody(envName, f))
			if st := es.stats[key]; st != nil {
				if err := p.add(userID, teamcache.KindFlowStats, key, st); err != nil {
					return nil, err
				}
			} else if old := ex.get(teamcache.KindFlowStats, key); old != nil {
				p.keep[old.ID] = true
				state.FlowsWithoutStats++
			} else {
				state.FlowsWithoutStats++
			}
		}
		if !es.flowsComplete {
			// Keep the flows this sync did not get to, with their statistics.
			for _, old := range ex.ofKind(teamcache.KindFlow, envName) {
				if fresh[old.Key] {
					continue
				}
				var f teamcache.Flow
				if unmarshal(old.Body, &f) != nil {
					continue
				}
				p.keep[old.ID] = true
				if st := ex.get(teamcache.KindFlowStats, old.Key); st != nil {
					p.keep[st.ID] = true
				}
				flows = append(flows, f)
			}
		}

		// A connection kept here has its flows list refreshed below, so it is rewritten.
		conns := merge(p, ex, teamcache.KindConnection, envName, es.connections, es.connectionsComplete,
			func(c powerautomate.Connection) string { return c.Name }, connectionBody)
		linkFlows(envName, flows, conns)

		apps := merge(p, ex, teamcache.KindApp, envName, es.apps, es.appsComplete,
			func(a powerautomate.App) string { return a.Name }, appBody)
		for _, a := range apps {
			if err := p.add(userID, teamcache.KindApp, teamcache.Key(envName, a.Name), a); err != nil {
				return nil, err
			}
		}

		for _, f := range flows {
			key := teamcache.Key(envName, f.Name)
			present[key] = true
			if err := p.add(userID, teamcache.KindFlow, key, f); err != nil {
				return nil, err
			}
		}
		for _, c := range conns {
			if err := p.add(userID, teamcache.KindConnection, teamcache.Key(envName, c.Name), c); err != nil {
				return nil, err
			}
		}
		envItem := teamcache.Environment{Name: envName, DisplayName: es.env.DisplayName, SKU: es.env.SKU, Location: es.env.Location,
			IsDefault: es.env.IsDefault, Created: teamcache.Time(es.env.CreatedTime), FlowCount: len(flows), ConnectionCount: len(conns),
			AppCount: len(apps), FlowsComplete: es.flowsComplete, ConnectionsComplete: es.connectionsComplete, AppsComplete: es.appsComplete}
		if err := p.add(userID, teamcache.KindEnvironment, strings.ToLower(envName), envItem); err != nil {
			return nil, err
		}
		if !es.flowsComplete || !es.connectionsComplete || !es.appsComplete {
			state.PartialEnvironments = append(state.PartialEnvironments, envName)
		}
		allFlows = append(allFlows, flows...)
		allConns = append(allConns, conns...)
		allApps = append(allApps, apps...)
	}
	ms := makers(allFlows, allConns, allApps)
	for _, m := range ms {
		if err := p.add(userID, teamcache.KindMaker, teamcache.MakerKey(m.ObjectID), m); err != nil {
			return nil, err
		}
	}

	if err := s.apply(ctx, ex, p); err != nil {
		return nil, err
	}
	if err := s.governance(ctx, ex, present); err != nil {
		return nil, err
	}
	state.SyncedAt = teamcache.Time(s.o.Now())
	state.AttemptedAt = teamcache.Time(started)
	state.Environments, state.Flows, state.Connections, state.Apps = len(snap.envs), len(allFlows), len(allConns), len(allApps)
	state.Makers = len(ms)
	state.DurationMS = s.o.Now().Sub(started).Milliseconds()
	body, err := marshal(state)
	if err != nil {
		return nil, err
	}
	if _, err := s.o.Store.PutCacheItem(ctx, &cosmos.CacheItem{UserID: userID, Kind: teamcache.KindSyncState,
		Key: teamcache.SyncStateKey, Body: body}); err != nil {
		return nil, err
	}
	return state, nil
}

// apply writes the planned items that changed and deletes the synced kinds' items
// that are neither planned nor kept (only when every existing item was read).
func (s *Syncer) apply(ctx context.Context, ex *existingItems, p *plan) error {
	var ops []func(context.Context) error
	for id, it := range p.put {
		if old := ex.byID[id]; old != nil && old.TTL <= 0 && bytes.Equal(old.Body, it.Body) {
			continue // unchanged
		}
		ops = append(ops, func(ctx context.Context) error {
			_, err := s.o.Store.PutCacheItem(ctx, it)
			return err
		})
	}
	if ex.complete {
		for id, old := range ex.byID {
			if p.put[id] != nil || p.keep[id] || !slices.Contains(teamcache.SyncedKinds, old.Kind) {
				continue
			}
			ops = append(ops, func(ctx context.Context) error {
				err := s.o.Store.DeleteCacheItem(ctx, old.UserID, old.Kind, old.Key)
				if errors.Is(err, cosmos.ErrNotFound) {
					return nil
				}
				return err
			})
		}
	}
	return runAll(ctx, ops)
}

// governance gives the governance items of vanished flows the orphan ttl, and
// clears it from those whose flow is back. Each change is made under the item's
// ETag: if update_store_flow wrote it meanwhile, the next sync looks again.
func (s *Syncer) governance(ctx context.Context, ex *existingItems, present map[string]bool) error {
	if !ex.complete {
		return nil
	}
	var ops []func(context.Context) error
	for _, g := range ex.ofKind(teamcache.KindGovernance, "") {
		var ttl int
		switch {
		case !present[g.Key] && g.TTL <= 0:
			ttl = teamcache.OrphanGovernanceTTL
		case present[g.Key] && g.TTL == teamcache.OrphanGovernanceTTL:
			ttl = -1
		default:
			continue
		}
		ops = append(ops, func(ctx context.Context) error {
			it := *g
			it.TTL = ttl
			_, err := s.o.Store.ReplaceCacheItem(ctx, &it)
			if errors.Is(err, cosmos.ErrPreconditionFailed) || errors.Is(err, cosmos.ErrNotFound) {
				return nil
			}
			return err
		})
	}
	return runAll(ctx, ops)
}

// runAll runs ops, writeConcurrency at a time; the first error stops the rest.
func runAll(ctx context.Context, ops []func(context.Context) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var once sync.Once
	var first error
	sem := make(chan struct{}, writeConcurrency)
	var wg sync.WaitGroup
	for _, op := range ops {
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := op(ctx); err != nil {
				once.Do(func() { first = err; cancel() })
			}
		})
	}
	wg.Wait()
	if first == nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return first
}

// flowBody is a listed flow's metadata and definition summary.
func flowBody(env string, f powerautomate.Flow) teamcache.Flow {
	out := teamcache.Flow{EnvironmentName: env, Name: strings.ToLower(f.Name), DisplayName: f.DisplayName, State: f.State,
		Created: teamcache.Time(f.CreatedTime), Modified: teamcache.Time(f.LastModifiedTime), CreatorObjectID: strings.ToLower(f.Creator.ObjectID),
		UserType: f.UserType, SharingType: f.SharingType, ActionCount: len(f.Actions)}
	if f.SuspensionReason != "" && f.SuspensionReason != "None" {
		out.SuspensionReason = f.SuspensionReason
	}
	for i, t := range f.Triggers {
		out.Triggers = append(out.Triggers, teamcache.Operation{Type: t.Type, Kind: t.Kind, OperationID: t.OperationID})
		if i == 0 {
			out.Trigger = t.Type
			if t.Kind != "" {
				out.Trigger += "/" + t.Kind
			}
		}
	}
	for _, a := range f.Actions {
		if a.Type != "" {
			if out.ActionTypes == nil {
				out.ActionTypes = map[string]int{}
			}
			out.ActionTypes[a.Type]++
		}
		if a.OperationID != "" && (out.Operations[a.OperationID] > 0 || len(out.Operations) < maxOperations) {
			if out.Operations == nil {
				out.Operations = map[string]int{}
			}
			out.Operations[a.OperationID]++
		}
	}
	keys := make([]string, 0, len(f.ConnectionReferences))
	for k := range f.ConnectionReferences {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		r := f.ConnectionReferences[k]
		connector := powerautomate.ConnectorNameFromAPIID(r.APIID)
		if connector == "" {
			connector = k
		}
		out.ConnectionReferences = append(out.ConnectionReferences, teamcache.ConnRef{Connector: connector, ConnectionName: r.ConnectionName, Source: r.Source})
		if !slices.Contains(out.Connectors, connector) {
			out.Connectors = append(out.Connectors, connector)
		}
	}
	sort.Strings(out.Connectors)
	return out
}

// maxOperations caps the distinct operation ids a flow item counts.
const maxOperations = 50

func connectionBody(env string, c powerautomate.Connection) teamcache.Connection {
	// No display name (usually the account's email) and no owner name or email: the
	// cache keeps people by object id only.
	out := teamcache.Connection{EnvironmentName: env, Name: c.Name, Connector: c.Connector,
		OwnerObjectID: strings.ToLower(c.CreatedBy.ID),
		Created:       teamcache.Time(c.CreatedTime), Expires: teamcache.Time(c.ExpirationTime)}
	switch {
	case c.Connected():
		out.Status = "Connected"
	case len(c.Statuses) == 0:
		out.Status = "Unknown"
	default:
		out.Status = c.Statuses[0].Status
		if out.Status == "" {
			out.Status = "Unknown"
		}
		if e := c.Statuses[0].Error; e != nil {
			out.ErrorCode = e.Code
		}
	}
	return out
}

// appBody is a listed app's metadata.
func appBody(env string, a powerautomate.App) teamcache.App {
	return teamcache.App{EnvironmentName: env, Name: strings.ToLower(a.Name), DisplayName: a.DisplayName, AppType: a.AppType,
		OwnerObjectID: strings.ToLower(a.OwnerObjectID), Created: teamcache.Time(a.CreatedTime),
		Modified: teamcache.Time(a.LastModifiedTime), LastPublished: teamcache.Time(a.LastPublishTime),
		SharedUsersCount: a.SharedUsersCount, SharedGroupsCount: a.SharedGroupsCount, Connectors: a.Connectors}
}

// linkFlows fills each connection's flows from the flows' connection references.
func linkFlows(env string, flows []teamcache.Flow, conns []teamcache.Connection) {
	byName := map[string]int{}
	for i := range conns {
		conns[i].Flows, conns[i].FlowCount = nil, 0
		byName[strings.ToLower(conns[i].Name)] = i
	}
	for _, f := range flows {
		id := teamcache.Key(env, f.Name)
		seen := map[int]bool{}
		for _, r := range f.ConnectionReferences {
			i, ok := byName[strings.ToLower(r.ConnectionName)]
			if !ok || r.ConnectionName == "" || seen[i] {
				continue
			}
			seen[i] = true
			conns[i].FlowCount++
			if len(conns[i].Flows) < teamcache.MaxListed {
				conns[i].Flows = append(conns[i].Flows, id)
			}
		}
	}
	for i := range conns {
		sort.Strings(conns[i].Flows)
	}
}

// makers aggregates flows by creator, with the connections each created.
func makers(flows []teamcache.Flow, conns []teamcache.Connection, apps []teamcache.App) []*teamcache.Maker {
	by := map[string]*teamcache.Maker{}
	for _, f := range flows {
		if f.CreatorObjectID == "" {
			continue
		}
		m := by[f.CreatorObjectID]
		if m == nil {
			m = &teamcache.Maker{ObjectID: f.CreatorObjectID, Environments: []string{}}
			by[f.CreatorObjectID] = m
		}
		m.FlowCount++
		switch f.State {
		case "Started":
			m.StartedFlows++
		case "Stopped":
			m.StoppedFlows++
		case "Suspended":
			m.SuspendedFlows++
		}
		if !slices.Contains(m.Environments, f.EnvironmentName) {
			m.Environments = append(m.Environments, f.EnvironmentName)
		}
		if f.Modified > m.LastModified {
			m.LastModified = f.Modified
		}
		if len(m.Flows) < teamcache.MaxListed {
			m.Flows = append(m.Flows, teamcache.MakerFlow{ID: teamcache.Key(f.EnvironmentName, f.Name), DisplayName: f.DisplayName, State: f.State})
		}
	}
	for _, c := range conns {
		if m := by[c.OwnerObjectID]; m != nil {
			m.ConnectionCount++
		}
	}
	for _, a := range apps {
		if m := by[a.OwnerObjectID]; m != nil {
			m.AppCount++
		}
	}
	out := make([]*teamcache.Maker, 0, len(by))
	for _, m := range by {
		sort.Strings(m.Environments)
		sort.Slice(m.Flows, func(i, j int) bool { return m.Flows[i].ID < m.Flows[j].ID })
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ObjectID < out[j].ObjectID })
	return out
}

func marshal(v any) (json.RawMessage, error) { return json.Marshal(v) }

// merge makes the cache bodies of one environment's fresh items (the first of
// each name) and, when the fresh list was not complete, adds the cached items it
// did not name, marking them kept.
func merge[S, T any](p *plan, ex *existingItems, kind, envName string, fresh []S, complete bool,
	name func(S) string, body func(string, S) T) []T {
	out := make([]T, 0, len(fresh))
	seen := map[string]bool{}
	for _, s := range fresh {
		key := teamcache.Key(envName, name(s))
		if !seen[key] {
			seen[key] = true
			out = append(out, body(envName, s))
		}
	}
	if !complete {
		for _, old := range ex.ofKind(kind, envName) {
			var t T
			if seen[old.Key] || unmarshal(old.Body, &t) != nil {
				continue
			}
			p.keep[old.ID] = true
			out = append(out, t)
		}
	}
	return out
}

func unmarshal(raw json.RawMessage, v any) error { return json.Unmarshal(raw, v) }
