// Package account is a person's data as a whole: what the store keeps about them
// (Export, the dashboard's "what is kept" view and its JSON download) and deleting
// all of it (Delete, the dashboard's "Delete my account" and `flowstudio user
// delete`).
package account

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/flowstudio/mcp/cosmos"
	"github.com/flowstudio/mcp/server/identity"
)

// Store is what this package needs from storage (*cosmos.Store).
type Store interface {
	GetUser(ctx context.Context, id string) (*cosmos.User, error)
	UpdateUser(ctx context.Context, id string, fn func(*cosmos.User) error) (*cosmos.User, error)
	DeleteUser(ctx context.Context, id string) error
	ListCacheItems(ctx context.Context, userID string, f cosmos.CacheFilter, p cosmos.PageRequest) ([]*cosmos.CacheItem, string, error)
	DeleteUserCache(ctx context.Context, userID string) error
	ListUsageCounters(ctx context.Context, userID string) ([]*cosmos.UsageCounter, error)
	DeleteUserUsage(ctx context.Context, userID string) error
	BugReportsBy(ctx context.Context, userHash string) ([]cosmos.StoredBugReport, error)
	DeleteBugReportsBy(ctx context.Context, userID, userHash string) (int, error)
	DeleteUserOAuthTokens(ctx context.Context, userID string) (int, error)
	EraseDeleted(ctx context.Context) error
}

var _ Store = (*cosmos.Store)(nil)

// Canceller ends a Stripe subscription (*billing.Client); nil when billing is off.
type Canceller interface {
	Enabled() bool
	Cancel(ctx context.Context, subscriptionID string) error
}

// Deps are what Delete acts on.
type Deps struct {
	Store  Store
	Stripe Canceller // may be nil (billing off)
	// Settle is how long to wait after the keys die before deleting the usage
	// counters: replicas write the calls they counted up to a flush interval later
	// (tools/metering), and such a write would create a counter again. Two flush
	// intervals; 0 in tests that run no meter.
	Settle time.Duration
}

// DefaultSettle is Deps.Settle for a server whose meters flush every second.
const DefaultSettle = 2 * time.Second

// Deleted counts what Delete removed.
type Deleted struct {
	EmailHash             string // for the one log line that may name the user
	SubscriptionCancelled bool
	CacheItems            int
	UsageCounters         int
	BugReports            int
	Grants                int // apps connected through /mcp/oauth (in the user record)
	OAuthTokens           int // their authorization codes and refresh tokens
}

// ErrSubscriptionNotCancellable: the user pays for a subscription and this
// server cannot cancel it (billing is off), so nothing was deleted: deleting
// the account would leave them paying for nothing.
var ErrSubscriptionNotCancellable = errors.New("account: the user has a live Stripe subscription and billing is off here, so it cannot be cancelled; cancel it in Stripe first")

// Live reports whether the subscription still bills (or may bill again).
func Live(s cosmos.Subscription) bool {
	switch s.Status {
	case "active", "trialing", "past_due", "unpaid", "incomplete", "paused":
		return s.SubscriptionID != ""
	}
	return false
}

// Delete removes everything the store holds about the user, in an order that
// is safe to stop and run again:
//
//  1. a live Stripe subscription is cancelled (or nothing happens: see
//     ErrSubscriptionNotCancellable);
//  2. permission is revoked (identity.RevokeUser): the sealed refresh token is
//     deleted, the key generation bumped and every OAuth grant ended, so every key
//     and OAuth token dies at once on every replica even if a later step fails;
//  3. after Settle (counts not yet written by a replica land meanwhile), the
//     OAuth codes and refresh tokens naming the user, the Team cache, usage
//     counters and bug reports are deleted;
//  4. the user record (and its email index entry) last, so that a retry after a
//     failure still finds the email hash that names the reports; then the store
//     erases what was deleted from its files (cosmos.Store.EraseDeleted).
func Delete(ctx context.Context, d Deps, userID string) (Deleted, error) {
	var out Deleted
	u, err := d.Store.GetUser(ctx, userID)
	if err != nil {
		return out, err
	}
	out.EmailHash, out.Grants = u.EmailHash, len(u.OAuthGrants)
	if Live(u.Subscription) {
		if d.Stripe == nil || !d.Stripe.Enabled() {
			return out, ErrSubscriptionNotCancellable
		}
		if err := d.Stripe.Cancel(ctx, u.Subscription.SubscriptionID); err != nil {
			return out, err
		}
		out.SubscriptionCancelled = true
	}
	if _, err := d.Store.UpdateUser(ctx, userID, func(u *cosmos.User) error {
		if err := identity.RevokeUser(u); err != nil {
			return err
		}
		if out.SubscriptionCancelled {
			u.Subscription.Status = "canceled"
		}
		return nil
	}); err != nil {
		return out, err
	}
	if d.Settle > 0 {
		t := time.NewTimer(d.Settle)
		select {
		case <-ctx.Done():
			t.Stop()
			return out, ctx.Err()
		case <-t.C:
		}
	}
	if out.OAuthTokens, err = d.Store.DeleteUserOAuthTokens(ctx, userID); err != nil {
		return out, fmt.Errorf("account: OAuth tokens: %w", err)
	}
	if out.CacheItems, err = countCache(ctx, d.Store, userID); err != nil {
		return out, err
	}
	if err := d.Store.DeleteUserCache(ctx, userID); err != nil {
		return out, err
	}
	counters, err := d.Store.ListUsageCounters(ctx, userID)
	if err != nil {
		return out, err
	}
	out.UsageCounters = len(counters)
	if err := d.Store.DeleteUserUsage(ctx, userID); err != nil {
		return out, err
	}
	if out.BugReports, err = d.Store.DeleteBugReportsBy(ctx, userID, u.EmailHash); err != nil {
		return out, err
	}
	if err := d.Store.DeleteUser(ctx, userID); err != nil && !errors.Is(err, cosmos.ErrNotFound) {
		return out, err
	}
	// The embedded store zeroes what was freed; this also empties its WAL, so no
	// byte of the data directory keeps the user (a no-op on Cosmos DB).
	if err := d.Store.EraseDeleted(ctx); err != nil {
		return out, fmt.Errorf("account: deleted, not yet erased from the store's files (run again): %w", err)
	}
	return out, nil
}

func countCache(ctx context.Context, s Store, userID string) (int, error) {
	n, token := 0, ""
	for {
		items, next, err := s.ListCacheItems(ctx, userID, cosmos.CacheFilter{}, cosmos.PageRequest{Size: 1000, Token: token})
		if err != nil {
			return n, err
		}
		n += len(items)
		if next == "" {
			return n, nil
		}
		token = next
	}
}

// Export is exactly what the store holds about a user: the record's fields (the
// sealed refresh token only by its size: it is ciphertext nobody can read without
// the vault's key, and showing it would put it in a browser's cache), the Team
// cache items by kind, key and size, the usage counters and the bug reports.
type Export struct {
	GeneratedAt string         `json:"generatedAt"`
	User        ExportUser     `json:"user"`
	Cache       []ExportItem   `json:"teamCache"`
	Usage       []ExportUsage  `json:"usageCounters"`
	Reports     []ExportReport `json:"bugReports"`
	// NotHere is what is kept elsewhere and cannot be shown or deleted at once.
	NotHere []string `json:"keptElsewhere"`
}

// ExportUser is the user record, field by field as stored.
type ExportUser struct {
	ID                 string              `json:"id"`
	TenantID           string              `json:"tenantId"`
	ObjectID           string              `json:"objectId"`
	EmailHash          string              `json:"emailHash"`
	DisplayName        string              `json:"displayName,omitempty"`
	Tier               string              `json:"tier"`
	Consent            string              `json:"consent"`
	ConsentedResources []string            `json:"consentedResources"`
	KeyGeneration      int64               `json:"keyGeneration"`
	KeyIssuedAt        string              `json:"keyIssuedAt"`
	SealedRefreshToken string              `json:"sealedRefreshToken"` // its size, never its bytes
	SealKeyVersion     string              `json:"sealKeyVersion,omitempty"`
	Subscription       cosmos.Subscription `json:"subscription"`
	OAuthGrants        []cosmos.OAuthGrant `json:"oauthGrants"` // apps connected through /mcp/oauth
	CreatedAt          string              `json:"createdAt"`
	UpdatedAt          string              `json:"updatedAt"`
}

// ExportItem is one Team cache item.
type ExportItem struct {
	Kind      string `json:"kind"`
	Key       string `json:"key"`
	Bytes     int    `json:"bytes"`
	UpdatedAt string `json:"updatedAt"`
	TTL       int    `json:"ttl"` // seconds; -1 or 0: kept while on Team
}

// ExportUsage is one usage counter.
type ExportUsage struct {
	Period string `json:"period"`
	Start  string `json:"start"`
	Count  int64  `json:"count"`
}

// ExportReport is one bug report, as filed.
type ExportReport struct {
	ID          string `json:"id"`
	CreatedAt   string `json:"createdAt"`
	Tool        string `json:"tool,omitempty"`
	Title       string `json:"title"`
	Description string `json:"description"`
	Evidence    string `json:"evidence,omitempty"`
	Bytes       int    `json:"bytes"`
}

// LogRetention is what the page and the export say about the log lines that name
// a user (by email hash only): Application Insights keeps them 90 days.
const LogRetention = "Log lines in Application Insights (one per tool call, and sign-in, re-issue, revoke and deletion lines) name you only by the keyed hash of your email; they are kept 90 days and then deleted, and cannot be deleted earlier one by one."

// StripeRetention is what Stripe keeps after a subscription ends.
const StripeRetention = "Stripe keeps its own records of your payments and invoices (as the law requires) under its own policy; FlowStudio never held your card."

// Collect reads everything the store keeps about the user.
func Collect(ctx context.Context, s Store, userID string, now time.Time) (*Export, error) {
	u, err := s.GetUser(ctx, userID)
	if err != nil {
		return nil, err
	}
	date := func(unix int64) string {
		if unix == 0 {
			return ""
		}
		return time.Unix(unix, 0).UTC().Format(time.RFC3339)
	}
	token := "none"
	if n := len(u.SealedRefreshToken); n > 0 {
		token = fmt.Sprintf("%d bytes, sealed (AES-256-GCM)", n)
	}
	e := &Export{GeneratedAt: now.UTC().Format(time.RFC3339), User: ExportUser{
		ID: u.ID, TenantID: u.TenantID, ObjectID: u.ObjectID, EmailHash: u.EmailHash, DisplayName: u.DisplayName,
		Tier: string(u.Tier), Consent: string(u.Consent), ConsentedResources: append([]string{}, u.ConsentedResources...),
		KeyGeneration: u.KeyGeneration, KeyIssuedAt: date(u.KeyIssuedAt), SealedRefreshToken: token, SealKeyVersion: u.SealKeyVersion,
		Subscription: u.Subscription, OAuthGrants: append([]cosmos.OAuthGrant{}, u.OAuthGrants...), CreatedAt: date(u.CreatedAt), UpdatedAt: date(u.UpdatedAt)},
		Cache: []ExportItem{}, Usage: []ExportUsage{}, Reports: []ExportReport{},
		NotHere: []string{LogRetention, StripeRetention}}
	token = ""
	for {
		items, next, err := s.ListCacheItems(ctx, userID, cosmos.CacheFilter{}, cosmos.PageRequest{Size: 1000, Token: token})
		if err != nil {
			return nil, err
		}
		for _, it := range items {
			e.Cache = append(e.Cache, ExportItem{Kind: it.Kind, Key: it.Key, Bytes: len(it.Body), UpdatedAt: date(it.UpdatedAt), TTL: it.TTL})
		}
		if next == "" {
			break
		}
		token = next
	}
	counters, err := s.ListUsageCounters(ctx, userID)
	if err != nil {
		return nil, err
	}
	for _, c := range counters {
		e.Usage = append(e.Usage, ExportUsage{Period: string(c.Period), Start: date(c.Start), Count: c.Count})
	}
	if u.EmailHash != "" {
		reports, err := s.BugReportsBy(ctx, u.EmailHash)
		if err != nil {
			return nil, err
		}
		for _, r := range reports {
			e.Reports = append(e.Reports, ExportReport{ID: r.Report.ID, CreatedAt: date(r.Report.CreatedAt), Tool: r.Report.Tool,
				Title: r.Report.Title, Description: r.Report.Description, Evidence: r.Report.Evidence, Bytes: r.Size})
		}
	}
	return e, nil
}
