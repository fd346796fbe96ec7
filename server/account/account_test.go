package account_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/data/azcosmos"
	"github.com/flowstudio/mcp/cosmos"
	"github.com/flowstudio/mcp/server/account"
)

// A person's data, seeded the way the product writes it: the user record with a
// sealed token and a subscription, Team cache items, usage counters (day, minute,
// reports) and bug reports in today's partition.
type person struct {
	tenant, object, hash, customer, subscription string
	sealed                                       []byte
}

func (p person) id() string { return cosmos.UserID(p.tenant, p.object) }

// marks are strings that identify the person anywhere in a stored document.
func (p person) marks() []string {
	return []string{p.id(), p.object, p.hash, p.customer, p.subscription, base64.StdEncoding.EncodeToString(p.sealed)}
}

func newPerson(name string) person {
	sealed := make([]byte, 48)
	_, _ = rand.Read(sealed)
	hash := strings.Repeat(map[string]string{"ada": "a1", "bob": "b2"}[name], 32)
	return person{tenant: "11111111-2222-3333-4444-555555555555", object: "obj-" + name + "-0123456789", hash: hash,
		customer: "cus_" + name + "Customer1", subscription: "sub_" + name + "Subscription1", sealed: sealed}
}

func seed(t *testing.T, s *cosmos.Store, p person) {
	t.Helper()
	ctx := t.Context()
	if _, err := s.CreateUser(ctx, &cosmos.User{TenantID: p.tenant, ObjectID: p.object, EmailHash: p.hash, Tier: cosmos.TierTeam,
		Consent: cosmos.ConsentGranted, KeyGeneration: 3, KeyIssuedAt: time.Now().Unix(), SealedRefreshToken: p.sealed, SealKeyVersion: "v1",
		ConsentedResources: []string{"connectors"},
		Subscription:       cosmos.Subscription{Status: "active", CustomerID: p.customer, SubscriptionID: p.subscription, UpdatedAt: 1},
		OAuthGrants:        []cosmos.OAuthGrant{{ID: "grant" + p.object, ClientID: "client-1", Scope: "mcp", Generation: 3}}}); err != nil {
		t.Fatal(err)
	}
	// An app's authorization code and refresh token, stored by hash, naming the user.
	for _, kind := range []string{cosmos.KindOAuthCode, cosmos.KindOAuthRefresh} {
		if err := s.CreateOAuthItem(ctx, kind, kind+"hash"+p.object, map[string]any{"userId": p.id(), "grantId": "grant" + p.object,
			"clientId": "client-1"}, 3600); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range []string{"flow1", "flow2", "conn1"} {
		if _, err := s.PutCacheItem(ctx, &cosmos.CacheItem{UserID: p.id(), Kind: "flow", Key: k, Body: []byte(`{"displayName":"x"}`), TTL: -1}); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	for _, period := range []cosmos.Period{cosmos.PerDay, cosmos.PerMinute} {
		if _, err := s.IncrementUsage(ctx, p.id(), period, now, 7); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.IncrementUsage(ctx, p.id(), cosmos.PerDay, now.Add(-48*time.Hour), 4); err != nil {
		t.Fatal(err)
	}
	if _, err := s.IncrementToolUsage(ctx, p.id(), "list_live_flows", now, 5); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if _, err := s.AddBugReport(ctx, p.id(), 20, &cosmos.BugReport{UserHash: p.hash, Title: "report " + p.object,
			Description: "it failed", Evidence: strings.Repeat("e", 10*(i+1))}); err != nil {
			t.Fatal(err)
		}
	}
}

// scan returns the stored documents that carry any of the marks.
func scan(t *testing.T, s *cosmos.Store, marks []string) []string {
	t.Helper()
	var found []string
	items := 0
	err := s.Scan(t.Context(), func(container, id string, doc []byte) error {
		items++
		for _, m := range marks {
			if strings.Contains(id, m) || bytes.Contains(doc, []byte(m)) {
				found = append(found, container+"/"+id)
				break
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if items == 0 {
		t.Fatal("the scan read nothing: it would prove nothing")
	}
	return found
}

type fakeStripe struct{ cancelled []string }

func (f *fakeStripe) Enabled() bool { return true }
func (f *fakeStripe) Cancel(_ context.Context, id string) error {
	f.cancelled = append(f.cancelled, id)
	return nil
}

func runDelete(t *testing.T, s *cosmos.Store) person {
	ada, bob := newPerson("ada"), newPerson("bob")
	seed(t, s, ada)
	seed(t, s, bob)
	if found := scan(t, s, ada.marks()); len(found) < 8 {
		t.Fatalf("before deletion the scan finds only %v: the marks do not identify the seeded data", found)
	}

	// Billing off and a live subscription: nothing is deleted.
	if _, err := account.Delete(t.Context(), account.Deps{Store: s}, ada.id()); !errors.Is(err, account.ErrSubscriptionNotCancellable) {
		t.Fatalf("billing off: %v", err)
	}
	if u, err := s.GetUser(t.Context(), ada.id()); err != nil || len(u.SealedRefreshToken) == 0 {
		t.Fatal("a refused deletion changed the user")
	}

	stripe := &fakeStripe{}
	done, err := account.Delete(t.Context(), account.Deps{Store: s, Stripe: stripe}, ada.id())
	if err != nil {
		t.Fatal(err)
	}
	if !done.SubscriptionCancelled || len(stripe.cancelled) != 1 || stripe.cancelled[0] != ada.subscription {
		t.Errorf("subscription: %+v, cancelled %v", done, stripe.cancelled)
	}
	if done.CacheItems != 3 || done.UsageCounters < 5 || done.BugReports != 2 || done.Grants != 1 || done.OAuthTokens != 2 || done.EmailHash != ada.hash {
		t.Errorf("deleted %+v", done)
	}
	if found := scan(t, s, ada.marks()); len(found) > 0 {
		t.Errorf("after deletion the store still holds: %v", found)
	}
	if _, err := s.GetUser(t.Context(), ada.id()); !errors.Is(err, cosmos.ErrNotFound) {
		t.Errorf("user read after deletion: %v", err)
	}
	// The other person is untouched.
	e, err := account.Collect(t.Context(), s, bob.id(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(e.Cache) != 3 || len(e.Reports) != 2 || len(e.Usage) < 3 || e.User.EmailHash != bob.hash {
		t.Errorf("bob after ada's deletion: %d cache, %d reports, %d counters", len(e.Cache), len(e.Reports), len(e.Usage))
	}
	if byTool, err := s.ToolUsage(t.Context(), bob.id(), time.Now()); err != nil || byTool["list_live_flows"] != 5 || len(byTool) != 1 {
		t.Errorf("bob's calls by tool: %v %v", byTool, err)
	}
	for _, kind := range []string{cosmos.KindOAuthCode, cosmos.KindOAuthRefresh} {
		var v map[string]any
		if _, err := s.GetOAuthItem(t.Context(), kind, kind+"hash"+bob.object, &v); err != nil {
			t.Errorf("bob's %s: %v", kind, err)
		}
	}
	// Deleting again: the user is gone.
	if _, err := account.Delete(t.Context(), account.Deps{Store: s, Stripe: stripe}, ada.id()); !errors.Is(err, cosmos.ErrNotFound) {
		t.Errorf("second deletion: %v", err)
	}
	return ada
}

// TestDeleteLeavesNothingEmbedded / TestDeleteLeavesNothingCosmos: after Delete a
// scan of every container finds no document carrying the user's id, object id,
// email hash, Stripe ids or sealed token, and another user's data is intact.
func TestDeleteLeavesNothingEmbedded(t *testing.T) {
	dir := t.TempDir()
	s, err := cosmos.OpenEmbedded(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ada := runDelete(t, s)
	// Not only unreadable through the store: no byte of the data directory (the
	// database, its WAL and shared memory) holds any of it.
	files, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	read := 0
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(dir, f.Name()))
		if err != nil {
			t.Fatal(err)
		}
		read += len(b)
		for _, m := range append(ada.marks(), string(ada.sealed)) {
			if bytes.Contains(b, []byte(m)) {
				t.Errorf("%s still holds %.16q", f.Name(), m)
			}
		}
	}
	if read == 0 {
		t.Fatal("the data directory is empty: the scan proves nothing")
	}
}

func TestDeleteLeavesNothingCosmos(t *testing.T) {
	endpoint := os.Getenv("COSMOS_TEST_ENDPOINT")
	if endpoint == "" {
		t.Skip(`COSMOS_TEST_ENDPOINT is not set; to run against @vercel/cosmosdb-server: eval "$(.ci/cosmos-server.sh)"`)
	}
	ctx := t.Context()
	database := "test-account-" + rand.Text()[:8]
	s, err := cosmos.OpenCosmos(ctx, cosmos.CosmosConfig{Endpoint: endpoint, Database: database, Key: emulatorKey,
		ClientOptions: &azcosmos.ClientOptions{ClientOptions: azcore.ClientOptions{PerCallPolicies: []policy.Policy{crossPartitionHeader{}}}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	runDelete(t, s)
}

// The Cosmos DB emulator's well-known key (public; emulators only).
const emulatorKey = "C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw=="

// crossPartitionHeader: @vercel/cosmosdb-server answers 500 instead of 404 for a
// missing item unless a request carries it (tests only).
type crossPartitionHeader struct{}

func (crossPartitionHeader) Do(r *policy.Request) (*http.Response, error) {
	r.Raw().Header.Set("x-ms-documentdb-query-enablecrosspartition", "True")
	return r.Next()
}

// TestCollectIsWhatIsStored: the export lists the record's fields (the sealed
// token by size only), every cache item with its size, the counters and reports.
func TestCollectIsWhatIsStored(t *testing.T) {
	s, err := cosmos.OpenEmbedded(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ada := newPerson("ada")
	seed(t, s, ada)
	e, err := account.Collect(t.Context(), s, ada.id(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	u := e.User
	if u.ID != ada.id() || u.EmailHash != ada.hash || u.KeyGeneration != 3 || u.Subscription.CustomerID != ada.customer ||
		u.SealedRefreshToken != "48 bytes, sealed (AES-256-GCM)" || len(u.ConsentedResources) != 1 || len(u.OAuthGrants) != 1 {
		t.Errorf("user: %+v", u)
	}
	if len(e.Cache) != 3 || e.Cache[0].Bytes != len(`{"displayName":"x"}`) {
		t.Errorf("cache: %+v", e.Cache)
	}
	if len(e.Reports) != 2 || e.Reports[0].Bytes == 0 || e.Reports[0].Title != "report "+ada.object {
		t.Errorf("reports: %+v", e.Reports)
	}
	counters := map[string]int64{}
	for _, c := range e.Usage {
		counters[c.Period] += c.Count
	}
	if counters["day"] != 11 || counters["minute"] != 7 || counters["reports"] != 2 || counters["tool"] != 5 {
		t.Errorf("counters: %v", counters)
	}
	if len(e.NotHere) == 0 || !strings.Contains(e.NotHere[0], "90 days") {
		t.Errorf("kept elsewhere: %v", e.NotHere)
	}
}
