package cosmos

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Tier is a user's plan.
type Tier string

const (
	TierFree Tier = "free"
	TierPro  Tier = "pro"
	TierTeam Tier = "team"
)

// ParseTier accepts free, pro or team.
func ParseTier(s string) (Tier, bool) {
	switch t := Tier(s); t {
	case TierFree, TierPro, TierTeam:
		return t, true
	}
	return "", false
}

func (t Tier) rank() int {
	switch t {
	case TierPro:
		return 1
	case TierTeam:
		return 2
	}
	return 0
}

// AtLeast reports whether t includes min.
func (t Tier) AtLeast(min Tier) bool { return t.rank() >= min.rank() }

// Consent is the state of a user's delegated permission.
type Consent string

const (
	ConsentGranted Consent = "granted"
	ConsentRevoked Consent = "revoked"
	ConsentNeeded  Consent = "needs_consent" // the refresh token stopped working (invalid_grant)
)

// User is one signed-in person (container "users", partition key /id).
type User struct {
	ID            string `json:"id"` // UserID(TenantID, ObjectID)
	TenantID      string `json:"tenantId"`
	ObjectID      string `json:"objectId"`
	EmailHash     string `json:"emailHash,omitempty"` // hex HMAC computed by the caller; never a plain email
	DisplayName   string `json:"displayName,omitempty"`
	Tier          Tier   `json:"tier"`
	KeyGeneration int64  `json:"keyGeneration"`
	KeyIssuedAt   int64  `json:"keyIssuedAt"` // unix seconds
	// SessionEpoch is the generation of the user's dashboard sessions: a session
	// cookie carries the epoch it was opened under and is refused once this moved on
	// (logout, revoke, re-issue), on every replica at once.
	SessionEpoch       int64        `json:"sessionEpoch,omitempty"`
	SealedRefreshToken []byte       `json:"sealedRefreshToken,omitempty"`
	SealKeyVersion     string       `json:"sealKeyVersion,omitempty"`
	Consent            Consent      `json:"consent"`
	ConsentedResources []string     `json:"consentedResources,omitempty"` // named grants beyond the default sign-in, e.g. "connectors"; none (or an older record without it): the default only
	Subscription       Subscription `json:"subscription,omitzero"`
	OAuthGrants        []OAuthGrant `json:"oauthGrants,omitempty"` // apps connected through /mcp/oauth (oauth.go)
	CreatedAt          int64        `json:"createdAt"`             // unix seconds, set by the Store
	UpdatedAt          int64        `json:"updatedAt"`             // unix seconds, set by the Store on every write
	ETag               string       `json:"-"`                     // filled on read; ReplaceUser sends it back
}

// Subscription mirrors the user's Stripe subscription.
type Subscription struct {
	Status         string `json:"status,omitempty"`
	CustomerID     string `json:"customerId,omitempty"`
	SubscriptionID string `json:"subscriptionId,omitempty"`
	UpdatedAt      int64  `json:"updatedAt,omitempty"` // unix seconds
	// CancelAt is when a subscription set to cancel (at the period's end, or at a
	// date) ends, unix seconds; 0 while it renews.
	CancelAt int64 `json:"cancelAt,omitempty"`
	// PaymentFailedAt is when Stripe last reported a failed payment (unix
	// seconds); cleared when the subscription is active again.
	PaymentFailedAt int64 `json:"paymentFailedAt,omitempty"`
}

// UserID is the id of the user with this Entra tenant and object id.
func UserID(tenantID, objectID string) string { return tenantID + "." + objectID }

func (u *User) docID() string         { return u.ID }
func (x *emailIndex) docID() string   { return x.ID }
func (c *CacheItem) docID() string    { return c.ID }
func (c *UsageCounter) docID() string { return c.ID }

func (u *User) validate() error {
	switch {
	case u.TenantID == "" || u.ObjectID == "":
		return errors.New("tenantId and objectId are required")
	case u.ID != UserID(u.TenantID, u.ObjectID):
		return fmt.Errorf("id %q is not tenantId.objectId", u.ID)
	case u.Tier != TierFree && u.Tier != TierPro && u.Tier != TierTeam:
		return fmt.Errorf("unknown tier %q", u.Tier)
	case u.Consent != ConsentGranted && u.Consent != ConsentRevoked && u.Consent != ConsentNeeded:
		return fmt.Errorf("unknown consent %q", u.Consent)
	case !isLowerHex(u.EmailHash):
		return errors.New("emailHash is not lower-case hex")
	}
	if len(u.OAuthGrants) > MaxOAuthGrants {
		return fmt.Errorf("%d OAuth grants, more than %d", len(u.OAuthGrants), MaxOAuthGrants)
	}
	for _, g := range u.OAuthGrants {
		if g.ID == "" || g.ClientID == "" {
			return errors.New("an OAuth grant without id or client id")
		}
	}
	for _, g := range u.ConsentedResources {
		if !isIdentifier(g) {
			return fmt.Errorf("consented resource %q is not an identifier", g)
		}
	}
	return validID(u.ID)
}

// emailIndex lists the users whose email hashes to the same value, so that
// operators find them with one point read (container "users", id "email-<hash>").
// It may name a user that no longer has that hash (a write was interrupted
// between the index and the user); lookups check every user they read.
type emailIndex struct {
	ID      string   `json:"id"`
	UserIDs []string `json:"userIds"`
}

func emailIndexID(hash string) string { return "email-" + hash }

func (x *emailIndex) validate() error {
	hash, ok := strings.CutPrefix(x.ID, "email-")
	if !ok || hash == "" || !isLowerHex(hash) {
		return fmt.Errorf("id %q is not an email index id", x.ID)
	}
	return nil
}

// CacheItem is one small JSON record in container "cache" (partition key
// /userId). The Team cache keeps flows, run statistics and the like here, one
// Kind per sort of thing. Records that belong to no user live in the
// SystemPartition; adding a new sort of record is only a new Kind.
type CacheItem struct {
	ID        string          `json:"id"` // CacheItemID(Kind, Key), set by the Store
	UserID    string          `json:"userId"`
	Kind      string          `json:"kind"`
	Key       string          `json:"key"`
	Body      json.RawMessage `json:"body,omitempty"`
	UpdatedAt int64           `json:"updatedAt"`     // unix seconds, set by the Store on every write
	TTL       int             `json:"ttl,omitempty"` // seconds from the last write; -1 never; 0 the container default
	ETag      string          `json:"-"`             // filled on read; ReplaceCacheItem sends it back
}

// Kinds of cache items that are not Team cache data.
const (
	KindBugReport   = "bugReport"   // one report_bug submission, in its UTC day's partition (AddBugReport)
	KindStripeEvent = "stripeEvent" // a processed Stripe event id, in SystemPartition (MarkStripeEvent)
)

// SystemPartition is the cache partition for records that belong to no user.
// It cannot clash with a user id, which always contains a dot.
const SystemPartition = "_system"

// CacheItemID is the id of the cache item of this kind and key.
func CacheItemID(kind, key string) string { return kind + ":" + key }

func (c *CacheItem) validate() error {
	switch {
	case c.UserID == "" || c.Key == "":
		return errors.New("userId and key are required")
	case !isIdentifier(c.Kind):
		return fmt.Errorf("kind %q is not an identifier", c.Kind)
	case c.ID != CacheItemID(c.Kind, c.Key):
		return fmt.Errorf("id %q is not kind:key", c.ID)
	case c.TTL < -1:
		return fmt.Errorf("ttl %d is neither -1 nor a number of seconds", c.TTL)
	}
	return validID(c.ID)
}

// Period is the window a usage counter counts over.
type Period string

const (
	PerDay    Period = "day"    // daily quotas, kept a month for the dashboard
	PerMinute Period = "minute" // rate limits, kept two minutes
	// ReportsPerDay counts a user's bug reports in a UTC day (AddBugReport's
	// daily cap), kept two days.
	ReportsPerDay Period = "reports"
	// ToolPerDay counts a user's calls of one tool in a UTC day (the dashboard's
	// today-by-tool chart), kept two days.
	ToolPerDay Period = "tool"
)

// UsageCounter counts a user's tool calls in one window (container "usage",
// partition key /userId). IncrementUsage creates and updates them.
type UsageCounter struct {
	ID     string `json:"id"` // "<period>-<window start in UTC>", e.g. "day-20260102"
	UserID string `json:"userId"`
	Period Period `json:"period"`
	Start  int64  `json:"start"` // unix seconds at the start of the window
	Count  int64  `json:"count"`
	Tool   string `json:"tool,omitempty"` // ToolPerDay only
	TTL    int    `json:"ttl"`
}

func (c *UsageCounter) validate() error {
	if c.UserID == "" || (c.Period != PerDay && c.Period != PerMinute && c.Period != ReportsPerDay && c.Period != ToolPerDay) {
		return fmt.Errorf("counter %q has no user or an unknown period %q", c.ID, c.Period)
	}
	return nil
}

// validID applies Cosmos DB's rules for ids, so that both backends accept
// the same ids.
func validID(id string) error {
	if id == "" || len(id) > 255 || strings.ContainsAny(id, `/\?#`) {
		return fmt.Errorf("id %q is empty, longer than 255 bytes or contains / \\ ? #", id)
	}
	return nil
}

func isLowerHex(s string) bool {
	return strings.Trim(s, "0123456789abcdef") == ""
}

// isIdentifier reports whether s is a name safe to place in a query as a
// field name: a letter followed by letters and digits.
func isIdentifier(s string) bool {
	for i, r := range s {
		letter := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z'
		if !letter && (i == 0 || r < '0' || r > '9') {
			return false
		}
	}
	return s != ""
}
