// Package teamcache is the shape of the Team cache: the kinds, keys and JSON bodies
// of the cache items that `flowstudio sync` (package teamsync) writes into each Team
// user's partition and the store tools (tools/store.go) read.
//
// What is cached is inventory and statistics, never content: flow metadata and a
// definition summary (trigger kind, action count and types, connection references),
// run statistics per flow and the newest runs' status, times and error codes,
// connections, makers. Never a definition, action inputs or outputs, trigger bodies,
// run payloads, error messages or tokens. Governance fields are written only by
// update_store_flow, as items of their own kind, which sync never overwrites.
//
// Every item lives in the partition of the user it was synced for (cosmos.CacheItem
// UserID = the user's id): a user reads only their own partition.
package teamcache

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/flowstudio/mcp/cosmos"
)

// Store is the Team cache's items as the store tools and alerting read and write them
// (*cosmos.Store), each call within one user's partition.
type Store interface {
	GetCacheItem(ctx context.Context, userID, kind, key string) (*cosmos.CacheItem, error)
	ListCacheItems(ctx context.Context, userID string, f cosmos.CacheFilter, p cosmos.PageRequest) ([]*cosmos.CacheItem, string, error)
	CreateCacheItem(ctx context.Context, c *cosmos.CacheItem) (*cosmos.CacheItem, error)
	ReplaceCacheItem(ctx context.Context, c *cosmos.CacheItem) (*cosmos.CacheItem, error)
}

// Kinds of cache items. Kinds are identifiers (letters and digits: the store places
// them in queries), hence flowStats, not flow_stats.
const (
	KindEnvironment = "environment" // key: <env>
	KindFlow        = "flow"        // key: <env>.<flow>
	KindFlowStats   = "flowStats"   // key: <env>.<flow>
	KindConnection  = "connection"  // key: <env>.<connection>
	KindMaker       = "maker"       // key: <object id>
	KindApp         = "app"         // key: <env>.<app>
	KindGovernance  = "governance"  // key: <env>.<flow>; written by update_store_flow only
	KindSyncState   = "syncState"   // key: SyncStateKey
	// Alerts (package alerts): a monitored flow's incident state, the alerts raised
	// (kept AlertTTL), and the user's alert settings. Sync never deletes them.
	KindAlertState    = "alertState"    // key: <env>.<flow>
	KindAlert         = "alert"         // key: <raised at, UTC, sortable>.<env>.<flow>
	KindAlertSettings = "alertSettings" // key: AlertSettingsKey
)

// AlertSettingsKey is the key of the one alertSettings item of a user.
const AlertSettingsKey = "settings"

// AlertTTL is how long an alert record is kept, in seconds.
const AlertTTL = 30 * 24 * 3600

// SyncStateKey is the key of the one syncState item of a user.
const SyncStateKey = "state"

// SyncedKinds are the kinds sync writes and deletes; it never deletes other kinds.
var SyncedKinds = []string{KindEnvironment, KindFlow, KindFlowStats, KindConnection, KindMaker, KindApp}

// DefaultWindow is the run-statistics window when none is given.
const DefaultWindow = 7 * 24 * time.Hour

// RecentRuns is how many of a flow's newest runs a flowStats item keeps.
const RecentRuns = 25

// OrphanGovernanceTTL is the ttl sync gives the governance item of a flow that
// vanished: Power Automate can restore a deleted flow for 21 days, and a flow that
// comes back (restored, or shared again) gets its governance back with the ttl
// cleared. Distinct from the 30-day ttl of a cancelled plan, which it never touches.
const OrphanGovernanceTTL = 21 * 24 * 3600

// CanceledCacheTTL is the ttl, in seconds, every cache item of a user gets when the
// user leaves the Team plan (the Stripe webhook sets it; sync applies it too when a
// user left the plan while being synced). Defined here only.
const CanceledCacheTTL = 30 * 24 * 3600

// Key joins an environment and a flow or connection name into an item key. Keys are
// lower-case, so that a lookup by a name in another case finds the item.
func Key(env, name string) string { return strings.ToLower(env) + "." + strings.ToLower(name) }

// SplitKey is the inverse of Key: environment names and flow/connection names
// contain no dots.
func SplitKey(key string) (env, name string, ok bool) {
	i := strings.LastIndexByte(key, '.')
	if i <= 0 || i == len(key)-1 {
		return "", "", false
	}
	return key[:i], key[i+1:], true
}

// MakerKey is the key of a maker item.
func MakerKey(objectID string) string { return strings.ToLower(objectID) }

// Environment is a cached environment (kind environment).
type Environment struct {
	Name        string `json:"name"`
	DisplayName string `json:"displayName"`
	SKU         string `json:"sku,omitempty"`
	Location    string `json:"location,omitempty"`
	IsDefault   bool   `json:"isDefault"`
	Created     string `json:"created,omitempty"`
	FlowCount   int    `json:"flowCount"`
	// ConnectionCount is the cached connections of the environment.
	ConnectionCount int `json:"connectionCount"`
	// AppCount is the cached Power Apps apps of the environment.
	AppCount int `json:"appCount"`
	// FlowsComplete, ConnectionsComplete and AppsComplete say whether the last sync
	// listed all of them; when not, the counts include items kept from an earlier sync.
	FlowsComplete       bool `json:"flowsComplete"`
	ConnectionsComplete bool `json:"connectionsComplete"`
	AppsComplete        bool `json:"appsComplete"`
}

// Flow is a cached flow (kind flow): metadata and a definition summary.
type Flow struct {
	EnvironmentName  string `json:"environmentName"`
	Name             string `json:"name"`
	DisplayName      string `json:"displayName"`
	State            string `json:"state"`
	Created          string `json:"created,omitempty"`
	Modified         string `json:"modified,omitempty"`
	CreatorObjectID  string `json:"creatorObjectId,omitempty"`
	UserType         string `json:"userType,omitempty"`
	SharingType      string `json:"sharingType,omitempty"`
	SuspensionReason string `json:"suspensionReason,omitempty"`
	// Trigger is the first trigger's type/kind, e.g. Request/Button.
	Trigger  string      `json:"trigger,omitempty"`
	Triggers []Operation `json:"triggers,omitempty"`
	// ActionCount counts every action at any depth; ActionTypes by type
	// (OpenApiConnection: 3); Operations by connector operation id (SendEmailV2: 1).
	ActionCount          int            `json:"actionCount"`
	ActionTypes          map[string]int `json:"actionTypes,omitempty"`
	Operations           map[string]int `json:"operations,omitempty"`
	Connectors           []string       `json:"connectors,omitempty"`
	ConnectionReferences []ConnRef      `json:"connectionReferences,omitempty"`
}

// Operation is one trigger of a definition summary.
type Operation struct {
	Type        string `json:"type"`
	Kind        string `json:"kind,omitempty"`
	OperationID string `json:"operationId,omitempty"`
}

// ConnRef is one connection reference of a flow: which connection it uses for a
// connector (names only).
type ConnRef struct {
	Connector      string `json:"connector"`
	ConnectionName string `json:"connectionName,omitempty"`
	Source         string `json:"source,omitempty"`
}

// FlowStats are a flow's run statistics over the sync window (kind flowStats).
type FlowStats struct {
	EnvironmentName string `json:"environmentName"`
	FlowName        string `json:"flowName"`
	// Window is the window's length ("7d") and From/To its bounds (RFC 3339).
	Window string `json:"window"`
	From   string `json:"from"`
	To     string `json:"to"`
	Runs   int    `json:"runs"`
	// ByStatus counts runs by status (Succeeded, Failed, Cancelled, Running, ...).
	ByStatus map[string]int `json:"byStatus"`
	Failed   int            `json:"failed"`
	// FailureRate is failed / finished runs (not Running, Waiting or Suspended), 0..1.
	FailureRate   float64 `json:"failureRate"`
	AvgDurationMS int64   `json:"avgDurationMs,omitempty"`
	// LastRun is the newest run; LastFailure the newest failed one.
	LastRun     *RunBrief `json:"lastRun,omitempty"`
	LastFailure *RunBrief `json:"lastFailure,omitempty"`
	// Truncated: the flow had more runs in the window than one sync reads; the
	// statistics cover the newest ones (From is then the oldest run read).
	Truncated bool `json:"truncated,omitempty"`
	// Recent are the newest runs, newest first, at most RecentRuns.
	Recent []RunBrief `json:"recent,omitempty"`
}

// RunBrief is a run without content: name, status, times and error code.
type RunBrief struct {
	Name       string `json:"name"`
	Status     string `json:"status"`
	Start      string `json:"start"`
	End        string `json:"end,omitempty"`
	DurationMS int64  `json:"durationMs,omitempty"`
	ErrorCode  string `json:"errorCode,omitempty"`
}

// Connection is a cached connection (kind connection). Its display name (for most
// connectors the account's email address) and its owner's name are not kept: the cache
// keeps no person's email or name, only Entra object ids (list_live_connections shows
// the names, live).
type Connection struct {
	EnvironmentName string `json:"environmentName"`
	Name            string `json:"name"`
	Connector       string `json:"connector"`
	Status          string `json:"status"`
	ErrorCode       string `json:"errorCode,omitempty"`
	OwnerObjectID   string `json:"ownerObjectId,omitempty"`
	Created         string `json:"created,omitempty"`
	Expires         string `json:"expires,omitempty"`
	// Flows are the ids (<env>.<flow>) of the cached flows whose connection
	// references name this connection, at most MaxListed.
	Flows     []string `json:"flows,omitempty"`
	FlowCount int      `json:"flowCount"`
}

// App is a cached Power Apps app (kind app): metadata from the Power Apps API's app
// list, never the app itself (its document, screens, formulas or data).
type App struct {
	EnvironmentName   string `json:"environmentName"`
	Name              string `json:"name"` // the app id, lower-case
	DisplayName       string `json:"displayName"`
	AppType           string `json:"appType,omitempty"`
	OwnerObjectID     string `json:"ownerObjectId,omitempty"` // no owner name: the cache keeps no person's name
	Created           string `json:"created,omitempty"`
	Modified          string `json:"modified,omitempty"`
	LastPublished     string `json:"lastPublished,omitempty"`
	SharedUsersCount  int    `json:"sharedUsersCount"`
	SharedGroupsCount int    `json:"sharedGroupsCount"`
	// Connectors are the connectors the app's connections use (shared_office365, ...).
	Connectors []string `json:"connectors,omitempty"`
}

// MaxListed caps the lists inside one item (a connection's flows, a maker's flows),
// so that an item stays small; the counts beside them are exact.
const MaxListed = 200

// Maker is a person who created flows (kind maker), by Entra object id.
type Maker struct {
	ObjectID        string      `json:"objectId"` // no name: the cache keeps no person's name
	FlowCount       int         `json:"flowCount"`
	StartedFlows    int         `json:"startedFlows"`
	StoppedFlows    int         `json:"stoppedFlows"`
	SuspendedFlows  int         `json:"suspendedFlows,omitempty"`
	ConnectionCount int         `json:"connectionCount"`
	AppCount        int         `json:"appCount"`
	Environments    []string    `json:"environments"`
	LastModified    string      `json:"lastModified,omitempty"`
	Flows           []MakerFlow `json:"flows,omitempty"`
}

// MakerFlow is one of a maker's flows.
type MakerFlow struct {
	ID          string `json:"id"`
	DisplayName string `json:"displayName"`
	State       string `json:"state"`
}

// Governance are the fields update_store_flow sets on a flow (kind governance).
type Governance struct {
	EnvironmentName string       `json:"environmentName"`
	FlowName        string       `json:"flowName"`
	Monitor         bool         `json:"monitor"`
	NotifyRules     []NotifyRule `json:"notifyRules,omitempty"`
	Description     string       `json:"description,omitempty"`
	Tags            []string     `json:"tags,omitempty"`
	BusinessImpact  string       `json:"businessImpact,omitempty"`
	OwnerTeam       string       `json:"ownerTeam,omitempty"`
	SupportEmail    string       `json:"supportEmail,omitempty"`
	Critical        bool         `json:"critical"`
	Tier            string       `json:"tier,omitempty"`
	UpdatedAt       string       `json:"updatedAt,omitempty"`
}

// NotifyRule says who should hear about what, for a flow with monitor on: package
// alerts evaluates the rules after each sync and on the frequent check of monitored
// flows, and emails the address once per incident.
type NotifyRule struct {
	When      string  `json:"when"` // anyFailure, failureRateAbove, noRunsFor
	Threshold float64 `json:"threshold,omitempty"`
	Email     string  `json:"email"`
}

// Notify rule conditions.
const (
	WhenAnyFailure       = "anyFailure"
	WhenFailureRateAbove = "failureRateAbove" // threshold: a rate in (0, 1]
	WhenNoRunsFor        = "noRunsFor"        // threshold: hours, 1..720
)

// SyncState is what the last sync of a user did (kind syncState).
type SyncState struct {
	// SyncedAt is when the last successful sync finished ("" before the first).
	SyncedAt string `json:"syncedAt,omitempty"`
	// AttemptedAt is when the last sync, successful or not, ran; Error is its
	// error kind when it failed (reconnect, timeout, upstream_403, ...).
	AttemptedAt string `json:"attemptedAt"`
	Error       string `json:"error,omitempty"`
	Window      string `json:"window,omitempty"`
	From        string `json:"from,omitempty"`
	To          string `json:"to,omitempty"`
	// Counts of the last successful sync.
	Environments int `json:"environments"`
	Flows        int `json:"flows"`
	Connections  int `json:"connections"`
	Apps         int `json:"apps"`
	Makers       int `json:"makers"`
	// Partial lists what the last successful sync could not refresh (kept from an
	// earlier sync): environments whose flows, connections or apps were not listed
	// completely, and the number of flows whose runs were not read.
	PartialEnvironments []string `json:"partialEnvironments,omitempty"`
	FlowsWithoutStats   int      `json:"flowsWithoutStats,omitempty"`
	DurationMS          int64    `json:"durationMs,omitempty"`
}

// FormatWindow renders a window as days ("7d") when whole, else as a Go duration.
func FormatWindow(d time.Duration) string {
	if d > 0 && d%(24*time.Hour) == 0 {
		return strconv.Itoa(int(d/(24*time.Hour))) + "d"
	}
	return d.String()
}

// Window bounds: statistics over less than an hour say little; more than 30 days
// reads too many runs per sync.
const (
	MinWindow = time.Hour
	MaxWindow = 30 * 24 * time.Hour
)

// ParseWindow reads "7d", "36h" or any Go duration within MinWindow..MaxWindow.
func ParseWindow(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	var d time.Duration
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil {
			return 0, fmt.Errorf("window %q: want a number of days (7d) or a duration (36h)", s)
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, fmt.Errorf("window %q: want a number of days (7d) or a duration (36h)", s)
		}
	}
	if d < MinWindow || d > MaxWindow {
		return 0, fmt.Errorf("window %q: want between 1h and 30d", s)
	}
	return d, nil
}

// Time renders a time for a cache body (UTC, RFC 3339); zero is "".
func Time(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// AlertState is what alerting knows of a monitored flow between evaluations (kind
// alertState): the newest finished run it has seen and the incidents still open.
type AlertState struct {
	EnvironmentName string `json:"environmentName"`
	FlowName        string `json:"flowName"`
	// SeenStart and SeenRun are the newest finished run evaluated so far.
	SeenStart string `json:"seenStart,omitempty"`
	SeenRun   string `json:"seenRun,omitempty"`
	// Open incidents by rule (IncidentKey), none when the flow is healthy.
	Open      map[string]*Incident `json:"open,omitempty"`
	CheckedAt string               `json:"checkedAt,omitempty"`
}

// Incident is one open incident of a rule: it raised one alert and raises no
// other until the flow recovers.
type Incident struct {
	Since     string `json:"since"`
	AlertKey  string `json:"alertKey"`
	Failures  int    `json:"failures,omitempty"`
	FirstRun  string `json:"firstRun,omitempty"`
	ErrorCode string `json:"errorCode,omitempty"`
}

// IncidentKey names a rule's incident: its condition and threshold.
func IncidentKey(r NotifyRule) string {
	if r.Threshold == 0 {
		return r.When
	}
	return r.When + ":" + strconv.FormatFloat(r.Threshold, 'g', -1, 64)
}

// Alert is one alert raised (kind alert): what the email and webhook said, never
// run content.
type Alert struct {
	EnvironmentName        string `json:"environmentName"`
	EnvironmentDisplayName string `json:"environmentDisplayName,omitempty"`
	FlowName               string `json:"flowName"`
	FlowDisplayName        string `json:"flowDisplayName"`
	Rule                   string `json:"rule"` // the incident key
	// What happened, in words; At when it happened (the first failed run's start,
	// or the last run's); RaisedAt when the alert was raised.
	What      string   `json:"what"`
	At        string   `json:"at"`
	RaisedAt  string   `json:"raisedAt"`
	ErrorCode string   `json:"errorCode,omitempty"`
	RunName   string   `json:"runName,omitempty"`
	Link      string   `json:"link"`
	Emails    []string `json:"emails,omitempty"`
	// Delivery outcomes: sent, failed, not configured.
	Email   string `json:"email"`
	Webhook string `json:"webhook"`
	// RecoveredAt is set when the incident closed.
	RecoveredAt string `json:"recoveredAt,omitempty"`
}

// AlertSettings are a user's alert delivery settings (kind alertSettings).
type AlertSettings struct {
	// WebhookURL receives every alert as a signed JSON POST ("" for none).
	WebhookURL string `json:"webhookUrl,omitempty"`
	UpdatedAt  string `json:"updatedAt,omitempty"`
}
