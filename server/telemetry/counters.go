package telemetry

import (
	"strconv"
	"sync"
	"sync/atomic"
)

// Family is a kind of upstream host: the label of upstream answers. Hosts are
// grouped, never named one by one (environment hosts and connector runtimes are
// many, and their names carry tenant and environment ids).
type Family uint8

const (
	// Flow is the Power Automate API.
	Flow Family = iota
	// PowerApps is the Power Apps API (connections, connectors).
	PowerApps
	// BAP is the Business Application Platform API (environments).
	BAP
	// PowerPlatform is the per-environment Power Platform API.
	PowerPlatform
	// ConnectorRuntime is the connector runtime (apihub and its subdomains).
	ConnectorRuntime
	// Content is an anonymous SAS link to run inputs and outputs.
	Content
	// Entra is Entra ID's token endpoint.
	Entra
	numFamilies
)

var familyNames = [numFamilies]string{"flow", "powerapps", "bap", "powerplatform", "connector_runtime", "content", "entra"}

func (f Family) String() string { return familyNames[f] }

// Families lists every family, in order.
func Families() []Family { return values(numFamilies) }

// values lists the n values of an enumeration 0..n-1, in order.
func values[E ~uint8](n E) []E {
	out := make([]E, n)
	for i := range out {
		out[i] = E(i)
	}
	return out
}

// NoResponse is the status counted for a request that got no HTTP answer
// (connection refused, reset, timeout).
const NoResponse = 0

// upstream counts answers per family and status; index 0 is NoResponse and a
// status outside 100..599 counts there too.
var upstream [numFamilies][600]atomic.Uint64

// UpstreamAnswer counts one upstream HTTP answer (every attempt, retries
// included), or NoResponse for a request that got none.
func UpstreamAnswer(f Family, status int) {
	if f >= numFamilies {
		return
	}
	if status < 100 || status > 599 {
		status = NoResponse
	}
	upstream[f][status].Add(1)
}

// UpstreamCount is how many answers of status (NoResponse: none) hosts of family f
// gave so far.
func UpstreamCount(f Family, status int) uint64 {
	if f >= numFamilies || status < 0 || status > 599 {
		return 0
	}
	return upstream[f][status].Load()
}

// UpstreamAnswers calls fn for every family and status counted at least once.
func UpstreamAnswers(fn func(f Family, status int, n uint64)) {
	for f := range upstream {
		for status := range upstream[f] {
			if n := upstream[f][status].Load(); n > 0 {
				fn(Family(f), status, n)
			}
		}
	}
}

// StatusLabel is the label value of an upstream status: the code, or "none".
func StatusLabel(status int) string {
	if status == NoResponse {
		return "none"
	}
	return strconv.Itoa(status)
}

// StoreOp is a store operation.
type StoreOp uint8

const (
	Read StoreOp = iota
	Create
	Replace
	Upsert
	Delete
	Query
	Increment
	DeletePartition
	numStoreOps
)

var storeOpNames = [numStoreOps]string{"read", "create", "replace", "upsert", "delete", "query", "increment", "delete_partition"}

func (o StoreOp) String() string { return storeOpNames[o] }

// StoreOutcome is how a store operation ended.
type StoreOutcome uint8

const (
	StoreOK StoreOutcome = iota
	// StoreNotFound: the item was not there (often expected: a first sign-in).
	StoreNotFound
	// StoreConflict: an ETag or id clash that the caller retries or reports.
	StoreConflict
	// StoreError: anything else (timeout, unreachable, throttled, corrupt).
	StoreError
	numStoreOutcomes
)

var storeOutcomeNames = [numStoreOutcomes]string{"ok", "not_found", "conflict", "error"}

func (o StoreOutcome) String() string { return storeOutcomeNames[o] }

// Container holds one store container's operation counters.
type Container struct {
	name string
	ops  [numStoreOps][numStoreOutcomes]atomic.Uint64
}

// Count counts one operation.
func (c *Container) Count(op StoreOp, o StoreOutcome) {
	if op < numStoreOps && o < numStoreOutcomes {
		c.ops[op][o].Add(1)
	}
}

var (
	containersMu sync.Mutex
	containers   []*Container
)

// ContainerFor returns the counters of a store container (users, cache, usage),
// creating them on first use; the store calls it when it opens.
func ContainerFor(name string) *Container {
	containersMu.Lock()
	defer containersMu.Unlock()
	for _, c := range containers {
		if c.name == name {
			return c
		}
	}
	c := &Container{name: name}
	containers = append(containers, c)
	return c
}

// StoreOps calls fn for every container, operation and outcome counted at least once.
func StoreOps(fn func(container string, op StoreOp, o StoreOutcome, n uint64)) {
	containersMu.Lock()
	list := append([]*Container(nil), containers...)
	containersMu.Unlock()
	for _, c := range list {
		for op := range c.ops {
			for o := range c.ops[op] {
				if n := c.ops[op][o].Load(); n > 0 {
					fn(c.name, StoreOp(op), StoreOutcome(o), n)
				}
			}
		}
	}
}

// Redemption is how a refresh-token redemption ended.
type Redemption uint8

const (
	// Redeemed: Entra ID issued an access token.
	Redeemed Redemption = iota
	// Reconnect: the user must sign in again (no token, invalid_grant, revoked).
	Reconnect
	// ConsentRequired: the audience needs a grant the user has not given.
	ConsentRequired
	// RedeemFailed: the token endpoint failed or could not be reached.
	RedeemFailed
	numRedemptions
)

var redemptionNames = [numRedemptions]string{"ok", "reconnect", "consent_required", "error"}

func (r Redemption) String() string { return redemptionNames[r] }

var redemptions [numRedemptions]atomic.Uint64

// TokenRedemption counts one redemption of a refresh token (an access token that
// was not in memory).
func TokenRedemption(r Redemption) {
	if r < numRedemptions {
		redemptions[r].Add(1)
	}
}

// TokenRedemptions calls fn for every outcome, counted or not.
func TokenRedemptions(fn func(r Redemption, n uint64)) {
	for r := range redemptions {
		fn(Redemption(r), redemptions[r].Load())
	}
}

// Refusal is why a call was refused for a limit.
type Refusal uint8

const (
	// DailyQuota: the plan's calls per UTC day.
	DailyQuota Refusal = iota
	// MinuteQuota: the plan's calls per UTC minute.
	MinuteQuota
	// MetaRate: the per-minute rate of meta tools.
	MetaRate
	// Uncounted: the store could not count usage for a while (fail closed).
	Uncounted
	// InFlight: too many requests of one user at once on this replica (HTTP 429).
	InFlight
	// BugReports: report_bug's daily cap.
	BugReports
	numRefusals
)

var refusalNames = [numRefusals]string{"daily_quota", "minute_quota", "meta_rate", "uncounted", "in_flight", "bug_reports"}

func (r Refusal) String() string { return refusalNames[r] }

// Plans are the label values of a caller's plan; anything else counts as "unknown".
var Plans = []string{"free", "pro", "team", "unknown"}

var refusals [numRefusals][4]atomic.Uint64

// QuotaRefusal counts one call refused for reason r, by the caller's plan.
func QuotaRefusal(r Refusal, plan string) {
	if r >= numRefusals {
		return
	}
	refusals[r][planIndex(plan)].Add(1)
}

// RefusalCount is how many calls were refused for reason r on plan so far.
func RefusalCount(r Refusal, plan string) uint64 {
	if r >= numRefusals {
		return 0
	}
	return refusals[r][planIndex(plan)].Load()
}

// planIndex is plan's place in Plans; anything else is "unknown".
func planIndex(plan string) int {
	switch plan {
	case "free":
		return 0
	case "pro":
		return 1
	case "team":
		return 2
	}
	return 3
}

// QuotaRefusals calls fn for every reason and plan counted at least once.
func QuotaRefusals(fn func(r Refusal, plan string, n uint64)) {
	for r := range refusals {
		for p := range refusals[r] {
			if n := refusals[r][p].Load(); n > 0 {
				fn(Refusal(r), Plans[p], n)
			}
		}
	}
}
