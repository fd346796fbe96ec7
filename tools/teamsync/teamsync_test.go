package teamsync

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/data/azcosmos"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/flowstudio/mcp/cosmos"
	"github.com/flowstudio/mcp/tools/powerautomate"
	"github.com/flowstudio/mcp/tools/powerautomate/sim"
	"github.com/flowstudio/mcp/tools/teamcache"
)

// harness is a simulator on 127.0.0.1, an embedded store, and a client whose
// token source mints a simulator token for the principal in ctx: sync must act as
// each user, or it reads the wrong tenant (or nothing).
type harness struct {
	sim    *sim.Sim
	store  *cosmos.Store
	dir    string
	pa     *powerautomate.Client
	tokens *principalTokens
	logs   *observer.ObservedLogs
	log    *zap.Logger
}

type principalTokens struct {
	sim *sim.Sim
	mu  sync.Mutex
	// fail makes the token source refuse a user with this error.
	fail map[string]error
	// seen are the principals tokens were asked for.
	seen []powerautomate.Caller
	// hook runs on every call (before the token is minted).
	hook func(p *powerautomate.Caller)
}

func (pt *principalTokens) Token(ctx context.Context, audience string) (string, error) {
	p := powerautomate.CallerFrom(ctx)
	if p == nil {
		return "", powerautomate.ErrReconnect
	}
	pt.mu.Lock()
	pt.seen = append(pt.seen, *p)
	err, hook := pt.fail[p.UserID], pt.hook
	pt.mu.Unlock()
	if hook != nil {
		hook(p)
	}
	if err != nil {
		return "", err
	}
	return pt.sim.MintAccessToken(p.TenantID, p.ObjectID, audience, []string{"Flows.Read.All", "Flows.Manage.All", "User"}, time.Hour), nil
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	dir := t.TempDir()
	store, err := cosmos.OpenEmbedded(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return newHarnessOn(t, store, dir)
}

// newCosmosHarness is a harness on a Cosmos DB stand-in (COSMOS_TEST_ENDPOINT, as
// .ci/cosmos-server.sh starts one), in a database of its own.
func newCosmosHarness(t *testing.T) *harness {
	t.Helper()
	endpoint := os.Getenv("COSMOS_TEST_ENDPOINT")
	if endpoint == "" {
		t.Skip(`COSMOS_TEST_ENDPOINT is not set; to run against @vercel/cosmosdb-server: eval "$(.ci/cosmos-server.sh)"`)
	}
	store, err := cosmos.OpenCosmos(t.Context(), cosmos.CosmosConfig{Endpoint: endpoint, Database: "teamsync-" + rand.Text()[:10], Key: emulatorKey,
		ClientOptions: &azcosmos.ClientOptions{ClientOptions: azcore.ClientOptions{PerCallPolicies: []policy.Policy{crossPartitionHeader{}}}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	if err := store.Provision(t.Context()); err != nil {
		t.Fatal(err)
	}
	return newHarnessOn(t, store, "")
}

// crossPartitionHeader works around @vercel/cosmosdb-server's 500 for a missing
// item (see package cosmos's tests).
type crossPartitionHeader struct{}

func (crossPartitionHeader) Do(r *policy.Request) (*http.Response, error) {
	r.Raw().Header.Set("x-ms-documentdb-query-enablecrosspartition", "True")
	return r.Next()
}

// emulatorKey is the Cosmos DB emulator's well-known key.
const emulatorKey = "C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw=="

func newHarnessOn(t *testing.T, store *cosmos.Store, dir string) *harness {
	t.Helper()
	s := sim.New(sim.Options{KeySeed: []byte("teamsync tests")})
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	pt := &principalTokens{sim: s, fail: map[string]error{}}
	cfg := s.Config(srv.URL)
	cfg.HTTPClient = &http.Client{Transport: srv.Client().Transport}
	cfg.MaxRetries, cfg.RetryBackoff = 1, time.Millisecond
	pa, err := powerautomate.New(cfg, pt)
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.DebugLevel)
	return &harness{sim: s, store: store, dir: dir, pa: pa, tokens: pt, logs: logs, log: zap.New(core)}
}

func (h *harness) syncer(t *testing.T, o Options) *Syncer {
	t.Helper()
	o.Store, o.Upstream, o.Logger = h.store, h.pa, h.log
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// user creates a consented simulated user with a tier and consent state.
func (h *harness) user(t *testing.T, email string, tier cosmos.Tier, consent cosmos.Consent) *cosmos.User {
	t.Helper()
	tid, oid := h.sim.UserFor(email)
	sum := sha256.Sum256([]byte(email))
	u, err := h.store.CreateUser(t.Context(), &cosmos.User{TenantID: tid, ObjectID: oid, EmailHash: hex.EncodeToString(sum[:]),
		Tier: tier, Consent: consent, KeyGeneration: 1, KeyIssuedAt: time.Now().Unix()})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// items returns a user's cache items by id.
func (h *harness) items(t *testing.T, userID string) map[string]*cosmos.CacheItem {
	t.Helper()
	out := map[string]*cosmos.CacheItem{}
	token := ""
	for {
		page, next, err := h.store.ListCacheItems(t.Context(), userID, cosmos.CacheFilter{}, cosmos.PageRequest{Size: 1000, Token: token})
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range page {
			out[it.ID] = it
		}
		if next == "" {
			return out
		}
		token = next
	}
}

func body[T any](t *testing.T, items map[string]*cosmos.CacheItem, kind, key string) (T, *cosmos.CacheItem) {
	t.Helper()
	var v T
	it := items[cosmos.CacheItemID(kind, key)]
	if it == nil {
		t.Fatalf("no %s item %s", kind, key)
	}
	if err := json.Unmarshal(it.Body, &v); err != nil {
		t.Fatal(err)
	}
	return v, it
}

func countKind(items map[string]*cosmos.CacheItem, kind string) int {
	n := 0
	for _, it := range items {
		if it.Kind == kind {
			n++
		}
	}
	return n
}

var (
	invoiceKey = teamcache.Key(sim.ContosoDefaultEnv, sim.FlowInvoiceApproval)
	tasksKey   = teamcache.Key(sim.ContosoDefaultEnv, sim.FlowCreateProjectTask)
)

func TestSyncFillsTeamUsersAndSkipsOthers(t *testing.T) {
	t.Parallel()
	testSyncFills(t, newHarness(t))
}

// TestSyncOnCosmos runs the main scenarios on a Cosmos DB stand-in.
func TestSyncOnCosmos(t *testing.T) {
	t.Run("fills", func(t *testing.T) { testSyncFills(t, newCosmosHarness(t)) })
	t.Run("second sync", func(t *testing.T) { testSecondSync(t, newCosmosHarness(t)) })
}

func testSyncFills(t *testing.T, h *harness) {
	alice := h.user(t, "alice@contoso.com", cosmos.TierTeam, cosmos.ConsentGranted)
	carol := h.user(t, "carol@fabrikam.com", cosmos.TierTeam, cosmos.ConsentGranted)
	bob := h.user(t, "bob@contoso.com", cosmos.TierFree, cosmos.ConsentGranted)
	pro := h.user(t, "pat@contoso.com", cosmos.TierPro, cosmos.ConsentGranted)
	dave := h.user(t, "dave@contoso.com", cosmos.TierTeam, cosmos.ConsentNeeded)
	rev := h.user(t, "rita@contoso.com", cosmos.TierTeam, cosmos.ConsentRevoked)

	rep, err := h.syncer(t, Options{}).Run(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	if rep != (Report{Synced: 2, Skipped: 4}) {
		t.Fatalf("report = %+v", rep)
	}
	for _, u := range []*cosmos.User{bob, pro, dave, rev} {
		if items := h.items(t, u.ID); len(items) != 0 {
			t.Errorf("%s (%s, %s) got %d cache items", u.ID, u.Tier, u.Consent, len(items))
		}
	}
	// Tokens were asked only for team users with consent, as themselves.
	for _, p := range h.tokens.seen {
		if p.UserID != alice.ID && p.UserID != carol.ID || p.TenantID+"."+p.ObjectID != p.UserID || p.KeyGeneration != 1 {
			t.Fatalf("token asked for %+v", p)
		}
	}

	items := h.items(t, alice.ID)
	if n := countKind(items, teamcache.KindEnvironment); n != 3 {
		t.Errorf("%d environments, want Contoso's 3", n)
	}
	env, _ := body[teamcache.Environment](t, items, teamcache.KindEnvironment, strings.ToLower(sim.ContosoDefaultEnv))
	if !env.IsDefault || env.FlowCount < 8 || env.ConnectionCount != 8 || !env.FlowsComplete || !env.ConnectionsComplete {
		t.Errorf("default environment = %+v", env)
	}
	flow, _ := body[teamcache.Flow](t, items, teamcache.KindFlow, invoiceKey)
	if flow.DisplayName != "Invoice approval" || flow.State != "Started" || flow.Trigger != "Request/Button" || flow.ActionCount < 3 ||
		flow.ActionTypes["InitializeVariable"] == 0 || flow.CreatorObjectID == "" || flow.EnvironmentName != sim.ContosoDefaultEnv {
		t.Errorf("invoice flow = %+v", flow)
	}
	if _, ok := items[cosmos.CacheItemID(teamcache.KindFlow, teamcache.Key(sim.ContosoDefaultEnv, sim.FlowBobPrivate))]; ok {
		t.Error("bob's private flow is in alice's cache")
	}
	st, _ := body[teamcache.FlowStats](t, items, teamcache.KindFlowStats, invoiceKey)
	if st.Window != "7d" || st.Runs == 0 || st.Failed == 0 || st.FailureRate <= 0 || st.FailureRate > 1 || st.ByStatus["Failed"] != st.Failed ||
		st.LastFailure == nil || st.LastFailure.ErrorCode == "" || st.LastRun == nil || len(st.Recent) == 0 || st.AvgDurationMS <= 0 {
		t.Errorf("invoice stats = %+v", st)
	}
	// Seven days of an hourly flow (120 runs seeded, ~5 days) fit in the pages read.
	inv, _ := body[teamcache.FlowStats](t, items, teamcache.KindFlowStats, teamcache.Key(sim.ContosoDefaultEnv, sim.FlowHourlyInventorySync))
	if inv.Runs < 100 || inv.Truncated || len(inv.Recent) != teamcache.RecentRuns {
		t.Errorf("inventory stats: %d runs, truncated %v, %d recent", inv.Runs, inv.Truncated, len(inv.Recent))
	}
	conn, _ := body[teamcache.Connection](t, items, teamcache.KindConnection, teamcache.Key(sim.ContosoDefaultEnv, sim.ContosoTasksConnection))
	if conn.Connector != "shared_contosotasks" || conn.Status != "Connected" || conn.FlowCount == 0 || !slices.Contains(conn.Flows, tasksKey) {
		t.Errorf("tasks connection = %+v", conn)
	}
	twitter := 0
	for _, it := range items {
		if it.Kind == teamcache.KindConnection {
			var c teamcache.Connection
			json.Unmarshal(it.Body, &c)
			if c.Connector == "shared_twitter" {
				twitter++
				if c.Status != "Error" || c.ErrorCode != "Unauthorized" || c.Expires == "" {
					t.Errorf("expired twitter connection = %+v", c)
				}
			}
		}
	}
	if twitter != 3 {
		t.Errorf("%d twitter connections, want one per environment", twitter)
	}
	maker, _ := body[teamcache.Maker](t, items, teamcache.KindMaker, teamcache.MakerKey(alice.ObjectID))
	if maker.FlowCount < 8 || len(maker.Environments) != 3 || maker.ConnectionCount != 24 || len(maker.Flows) != maker.FlowCount {
		t.Errorf("maker alice = %+v", maker)
	}
	state, _ := body[teamcache.SyncState](t, items, teamcache.KindSyncState, teamcache.SyncStateKey)
	if state.SyncedAt == "" || state.Error != "" || state.Environments != 3 || state.Flows != countKind(items, teamcache.KindFlow) ||
		state.Connections != 24 || state.Makers != countKind(items, teamcache.KindMaker) || len(state.PartialEnvironments) != 0 || state.FlowsWithoutStats != 0 {
		t.Errorf("sync state = %+v", state)
	}

	// Carol sees Fabrikam only: every item of hers is of her tenant's environments.
	for _, it := range h.items(t, carol.ID) {
		if strings.Contains(strings.ToLower(string(it.Body)), strings.ToLower(sim.ContosoTenantID)) {
			t.Errorf("carol's item %s names Contoso", it.ID)
		}
	}
	if _, ok := h.items(t, carol.ID)[cosmos.CacheItemID(teamcache.KindFlow, teamcache.Key(sim.FabrikamDefaultEnv, sim.FabrikamInvoiceApproval))]; !ok {
		t.Error("carol lacks Fabrikam's invoice flow")
	}

	// One line per user, naming the email hash and outcome; a summary line.
	synced := h.logs.FilterMessage("user synced").All()
	if len(synced) != 2 {
		t.Fatalf("%d 'user synced' lines", len(synced))
	}
	if got := synced[0].ContextMap()[logUser]; got != alice.EmailHash && got != carol.EmailHash {
		t.Errorf("user field = %v", got)
	}
	if h.logs.FilterMessage("sync finished").Len() != 1 {
		t.Error("no summary line")
	}
}

func TestSyncOnlyOneUser(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	alice := h.user(t, "alice@contoso.com", cosmos.TierTeam, cosmos.ConsentGranted)
	carol := h.user(t, "carol@fabrikam.com", cosmos.TierTeam, cosmos.ConsentGranted)
	bob := h.user(t, "bob@contoso.com", cosmos.TierFree, cosmos.ConsentGranted)
	s := h.syncer(t, Options{Window: 48 * time.Hour})
	if rep, err := s.Run(t.Context(), carol.ID); err != nil || rep != (Report{Synced: 1}) {
		t.Fatalf("carol: %+v %v", rep, err)
	}
	if len(h.items(t, alice.ID)) != 0 || len(h.items(t, carol.ID)) == 0 {
		t.Fatal("only carol should be synced")
	}
	st, _ := body[teamcache.FlowStats](t, h.items(t, carol.ID), teamcache.KindFlowStats, teamcache.Key(sim.FabrikamDefaultEnv, sim.FabrikamInvoiceApproval))
	if st.Window != "2d" {
		t.Errorf("window = %s", st.Window)
	}
	// A skipped user is not a failure.
	if rep, err := s.Run(t.Context(), bob.ID); err != nil || rep != (Report{Skipped: 1}) {
		t.Fatalf("bob: %+v %v", rep, err)
	}
	// An unknown user is an error.
	if _, err := s.Run(t.Context(), "nobody.nothing"); !errors.Is(err, cosmos.ErrNotFound) {
		t.Fatalf("unknown user: %v", err)
	}
}

func TestSecondSyncKeepsGovernanceAndRemovesADeletedFlow(t *testing.T) {
	t.Parallel()
	testSecondSync(t, newHarness(t))
}

func testSecondSync(t *testing.T, h *harness) {
	alice := h.user(t, "alice@contoso.com", cosmos.TierTeam, cosmos.ConsentGranted)
	ctx := t.Context()
	s := h.syncer(t, Options{})
	if _, err := s.Run(ctx, ""); err != nil {
		t.Fatal(err)
	}
	gone := teamcache.Key(sim.ContosoDefaultEnv, sim.FlowOrderIntake)
	putGov := func(key string, g teamcache.Governance, ttl int) {
		raw, _ := json.Marshal(g)
		if _, err := h.store.PutCacheItem(ctx, &cosmos.CacheItem{UserID: alice.ID, Kind: teamcache.KindGovernance, Key: key, Body: raw, TTL: ttl}); err != nil {
			t.Fatal(err)
		}
	}
	invGov := teamcache.Governance{EnvironmentName: sim.ContosoDefaultEnv, FlowName: sim.FlowInvoiceApproval, Monitor: true, Critical: true,
		Tags: []string{"finance"}, OwnerTeam: "AP", NotifyRules: []teamcache.NotifyRule{{When: teamcache.WhenAnyFailure, Email: "ap@contoso.com"}}}
	putGov(invoiceKey, invGov, 0)
	putGov(gone, teamcache.Governance{EnvironmentName: sim.ContosoDefaultEnv, FlowName: sim.FlowOrderIntake, Tags: []string{"orders"}}, 0)
	// A flow whose governance was orphaned by an earlier sync is back.
	tasks := teamcache.Governance{EnvironmentName: sim.ContosoDefaultEnv, FlowName: sim.FlowCreateProjectTask, Description: "tasks"}
	putGov(tasksKey, tasks, teamcache.OrphanGovernanceTTL)
	before := h.items(t, alice.ID)

	if !h.sim.DeleteFlow(sim.ContosoDefaultEnv, sim.FlowOrderIntake) {
		t.Fatal("the simulator has no order intake flow")
	}
	if _, err := s.Run(ctx, ""); err != nil {
		t.Fatal(err)
	}
	after := h.items(t, alice.ID)
	for _, kind := range []string{teamcache.KindFlow, teamcache.KindFlowStats} {
		if _, ok := after[cosmos.CacheItemID(kind, gone)]; !ok {
			continue
		}
		t.Errorf("the deleted flow's %s item is still cached", kind)
	}
	got, it := body[teamcache.Governance](t, after, teamcache.KindGovernance, invoiceKey)
	if !bytes.Equal(it.Body, before[it.ID].Body) || it.TTL > 0 || !got.Monitor || got.OwnerTeam != "AP" {
		t.Errorf("invoice governance changed by sync: %s ttl %d", it.Body, it.TTL)
	}
	_, orphan := body[teamcache.Governance](t, after, teamcache.KindGovernance, gone)
	if orphan.TTL != teamcache.OrphanGovernanceTTL {
		t.Errorf("the deleted flow's governance: ttl %d, want the orphan ttl", orphan.TTL)
	}
	back, restored := body[teamcache.Governance](t, after, teamcache.KindGovernance, tasksKey)
	if restored.TTL != -1 || back.Description != "tasks" {
		t.Errorf("governance of a flow that is back: ttl %d %+v", restored.TTL, back)
	}
	env, _ := body[teamcache.Environment](t, after, teamcache.KindEnvironment, strings.ToLower(sim.ContosoDefaultEnv))
	envBefore, _ := body[teamcache.Environment](t, before, teamcache.KindEnvironment, strings.ToLower(sim.ContosoDefaultEnv))
	if env.FlowCount != envBefore.FlowCount-1 {
		t.Errorf("flow count %d, was %d", env.FlowCount, envBefore.FlowCount)
	}
	// Unchanged items are not rewritten.
	for id, it := range after {
		if it.Kind == teamcache.KindEnvironment && strings.Contains(id, strings.ToLower(sim.ContosoSandboxEnv)) && it.ETag != before[id].ETag {
			t.Errorf("unchanged %s rewritten", id)
		}
	}

	// A third sync leaves the orphan's ttl as it was (it counts from the first).
	if _, err := s.Run(ctx, ""); err != nil {
		t.Fatal(err)
	}
	if it := h.items(t, alice.ID)[orphan.ID]; it == nil || it.ETag != orphan.ETag {
		t.Error("the orphaned governance item was rewritten")
	}
}

// TestSyncStoresNoPayloads plants canaries in a flow's action inputs and in a run's
// trigger body, syncs, and looks for them in every stored byte.
func TestSyncStoresNoPayloads(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	alice := h.user(t, "alice@contoso.com", cosmos.TierTeam, cosmos.ConsentGranted)
	const defCanary, runCanary = "CANARY-definition-8f3a9c", "CANARY-payload-51e7d2"
	ctx := powerautomate.WithCaller(t.Context(), &powerautomate.Caller{UserID: alice.ID, TenantID: alice.TenantID, ObjectID: alice.ObjectID})
	def := json.RawMessage(`{"$schema":"https://schema.management.azure.com/providers/Microsoft.Logic/schemas/2016-06-01/workflowdefinition.json#",
"contentVersion":"1.0.0.0","parameters":{},"triggers":{"manual":{"type":"Request","kind":"Http","inputs":{"schema":{"type":"object"}}}},
"actions":{"Compose_secret":{"type":"Compose","runAfter":{},"inputs":{"note":"` + defCanary + `","echo":"@triggerBody()"}}},"outputs":{}}`)
	f, err := h.pa.CreateFlow(ctx, sim.ContosoDefaultEnv, powerautomate.FlowUpdate{DisplayName: "Canary flow", Definition: def})
	if err != nil {
		t.Fatal(err)
	}
	ref := powerautomate.FlowRef{Environment: sim.ContosoDefaultEnv, Flow: f.Name}
	if _, err := h.pa.RunManualTrigger(ctx, ref, "manual", json.RawMessage(`{"secret":"`+runCanary+`"}`)); err != nil {
		t.Fatal(err)
	}
	h.sim.ResetRequests()
	if _, err := h.syncer(t, Options{}).Run(t.Context(), ""); err != nil {
		t.Fatal(err)
	}
	items := h.items(t, alice.ID)
	key := teamcache.Key(sim.ContosoDefaultEnv, f.Name)
	st, _ := body[teamcache.FlowStats](t, items, teamcache.KindFlowStats, key)
	flow, _ := body[teamcache.Flow](t, items, teamcache.KindFlow, key)
	if st.Runs != 1 || flow.ActionTypes["Compose"] != 1 {
		t.Fatalf("canary flow not synced: %+v %+v", st, flow)
	}
	for id, it := range items {
		for _, c := range []string{defCanary, runCanary} {
			if bytes.Contains(it.Body, []byte(c)) {
				t.Errorf("item %s holds %s", id, c)
			}
		}
	}
	// Nor anywhere in the store's files (the WAL included).
	files, _ := filepath.Glob(filepath.Join(h.dir, cosmos.EmbeddedFile+"*"))
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []string{defCanary, runCanary} {
			if bytes.Contains(b, []byte(c)) {
				t.Errorf("%s holds %s", filepath.Base(name), c)
			}
		}
	}
	// Sync never asked for a definition, a run's actions or any content.
	for _, r := range h.sim.Requests() {
		p := strings.ToLower(r.Path)
		if r.Host == "content" || strings.Contains(p, "/actions") || strings.Contains(r.Query, "expand") ||
			(r.Host == "flow" && strings.Contains(p, "/flows/") && !strings.HasSuffix(p, "/runs")) {
			t.Errorf("sync requested %s %s %s?%s", r.Method, r.Host, r.Path, r.Query)
		}
	}
}

func TestOneFailingUserDoesNotStopTheOthers(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	alice := h.user(t, "alice@contoso.com", cosmos.TierTeam, cosmos.ConsentGranted)
	erin := h.user(t, "erin@contoso.com", cosmos.TierTeam, cosmos.ConsentGranted)
	h.tokens.fail[erin.ID] = powerautomate.ErrReconnect
	rep, err := h.syncer(t, Options{}).Run(t.Context(), "")
	if err != nil || rep != (Report{Synced: 1, Failed: 1}) {
		t.Fatalf("%+v %v", rep, err)
	}
	if len(h.items(t, alice.ID)) < 20 {
		t.Fatal("alice was not synced")
	}
	erinItems := h.items(t, erin.ID)
	state, _ := body[teamcache.SyncState](t, erinItems, teamcache.KindSyncState, teamcache.SyncStateKey)
	if len(erinItems) != 1 || state.Error != "reconnect" || state.SyncedAt != "" || state.AttemptedAt == "" {
		t.Fatalf("erin: %d items, state %+v", len(erinItems), state)
	}
	failed := h.logs.FilterMessage("user failed").All()
	if len(failed) != 1 {
		t.Fatalf("%d 'user failed' lines", len(failed))
	}
	fields := failed[0].ContextMap()
	if fields[logUser] != erin.EmailHash || fields[logErrorKind] != "reconnect" || fields[logOutcome] != OutcomeFailed {
		t.Fatalf("failure line = %v", fields)
	}
	for k := range fields {
		if !slices.Contains([]string{logUser, logOutcome, logErrorKind, logDurationMS}, k) {
			t.Errorf("failure line has field %s", k)
		}
	}

	// When every user fails, Run says so (flowstudio sync then exits non-zero).
	h.tokens.fail[alice.ID] = errors.New("token endpoint down")
	rep, err = h.syncer(t, Options{}).Run(t.Context(), "")
	if !errors.Is(err, ErrAllFailed) || rep.Failed != 2 {
		t.Fatalf("%+v %v", rep, err)
	}
	// A later success records syncedAt again and clears the error.
	delete(h.tokens.fail, alice.ID)
	if _, err := h.syncer(t, Options{}).Run(t.Context(), alice.ID); err != nil {
		t.Fatal(err)
	}
	state, _ = body[teamcache.SyncState](t, h.items(t, alice.ID), teamcache.KindSyncState, teamcache.SyncStateKey)
	if state.Error != "" || state.SyncedAt == "" {
		t.Fatalf("alice's state after recovery: %+v", state)
	}
}

// TestPartialReadsKeepTheCache: an environment whose flows cannot be listed keeps its
// cached flows; a flow whose runs cannot be read keeps its statistics; a user whose
// budget runs out still saves what was read.
func TestPartialReadsKeepTheCache(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	alice := h.user(t, "alice@contoso.com", cosmos.TierTeam, cosmos.ConsentGranted)
	s := h.syncer(t, Options{})
	if _, err := s.Run(t.Context(), ""); err != nil {
		t.Fatal(err)
	}
	before := h.items(t, alice.ID)

	h.sim.InjectFault(sim.FaultMatch{PathContains: "/environments/" + sim.ContosoProductionEnv + "/flows"}, sim.Fault{Status: http.StatusInternalServerError})
	h.sim.InjectFault(sim.FaultMatch{PathContains: "/flows/" + sim.FlowInvoiceApproval + "/runs"}, sim.Fault{Status: http.StatusForbidden})
	h.sim.DeleteFlow(sim.ContosoProductionEnv, sim.FlowTwitterPost) // unseen: the list fails
	if _, err := s.Run(t.Context(), ""); err != nil {
		t.Fatal(err)
	}
	h.sim.ClearFaults()
	after := h.items(t, alice.ID)
	if _, ok := after[cosmos.CacheItemID(teamcache.KindFlow, teamcache.Key(sim.ContosoProductionEnv, sim.FlowTwitterPost))]; !ok {
		t.Error("a flow of the environment that could not be listed was deleted")
	}
	id := cosmos.CacheItemID(teamcache.KindFlowStats, invoiceKey)
	if after[id] == nil || !bytes.Equal(after[id].Body, before[id].Body) {
		t.Error("the statistics of a flow whose runs could not be read were not kept")
	}
	state, _ := body[teamcache.SyncState](t, after, teamcache.KindSyncState, teamcache.SyncStateKey)
	if !slices.Equal(state.PartialEnvironments, []string{sim.ContosoProductionEnv}) || state.FlowsWithoutStats != 1 {
		t.Errorf("state = %+v", state)
	}
	env, _ := body[teamcache.Environment](t, after, teamcache.KindEnvironment, sim.ContosoProductionEnv)
	if env.FlowsComplete || env.FlowCount == 0 {
		t.Errorf("production environment = %+v", env)
	}

	// A budget spent on slow runs: the user is still synced, the rest kept.
	// Runs hang until the budget ends the user's sync; everything before them has the
	// whole budget, so a loaded machine still lists environments and flows in time.
	h.sim.InjectFault(sim.FaultMatch{PathContains: "/runs"}, sim.Fault{Delay: time.Minute})
	slow := h.syncer(t, Options{UserBudget: 4 * time.Second})
	if rep, err := slow.Run(t.Context(), ""); err != nil || rep.Synced != 1 {
		t.Fatalf("%+v %v", rep, err)
	}
	items := h.items(t, alice.ID)
	state, _ = body[teamcache.SyncState](t, items, teamcache.KindSyncState, teamcache.SyncStateKey)
	if state.FlowsWithoutStats == 0 || countKind(items, teamcache.KindFlowStats) != countKind(items, teamcache.KindFlow) {
		t.Errorf("after a spent budget: %+v", state)
	}
}

// TestUserLeavingTheTeamPlanDuringSync: the Stripe webhook gives the cache a 30-day
// ttl; sync, which had read the user as team, must not leave items without one.
func TestUserLeavingTheTeamPlanDuringSync(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	alice := h.user(t, "alice@contoso.com", cosmos.TierTeam, cosmos.ConsentGranted)
	var once sync.Once
	h.tokens.hook = func(*powerautomate.Caller) {
		once.Do(func() {
			if _, err := h.store.UpdateUser(context.Background(), alice.ID, func(u *cosmos.User) error { u.Tier = cosmos.TierPro; return nil }); err != nil {
				t.Error(err)
			}
		})
	}
	if _, err := h.syncer(t, Options{}).Run(t.Context(), ""); err != nil {
		t.Fatal(err)
	}
	items := h.items(t, alice.ID)
	if len(items) == 0 {
		t.Fatal("nothing written")
	}
	for id, it := range items {
		if it.TTL != teamcache.CanceledCacheTTL {
			t.Errorf("%s: ttl %d", id, it.TTL)
		}
	}
}

func TestComputeStats(t *testing.T) {
	t.Parallel()
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	run := func(name, status string, startMin, durSec int, code string) powerautomate.Run {
		r := powerautomate.Run{Name: name, Status: status, StartTime: base.Add(time.Duration(startMin) * time.Minute), Code: code}
		if durSec > 0 {
			r.EndTime = r.StartTime.Add(time.Duration(durSec) * time.Second)
		}
		if code != "" {
			r.Error = &powerautomate.ErrorInfo{Code: code, Message: "secret text that must not be kept"}
		}
		return r
	}
	runs := []powerautomate.Run{
		run("r1", "Succeeded", 0, 10, ""),
		run("r5", "Running", 40, 0, ""),
		run("r2", "Failed", 10, 20, "ActionFailed"),
		run("r3", "TimedOut", 20, 30, "Timeout"),
		run("r4", "Cancelled", 30, 0, ""),
	}
	st := computeStats(runs, base.Add(-time.Hour), base.Add(time.Hour), false)
	if st.Runs != 5 || st.Failed != 2 || st.FailureRate != 0.5 || st.AvgDurationMS != 20000 {
		t.Errorf("stats = %+v", st)
	}
	if st.LastRun.Name != "r5" || st.LastFailure.Name != "r3" || st.LastFailure.ErrorCode != "Timeout" || st.Recent[0].Name != "r5" {
		t.Errorf("last run %+v, last failure %+v", st.LastRun, st.LastFailure)
	}
	raw, _ := json.Marshal(st)
	if bytes.Contains(raw, []byte("secret text")) {
		t.Error("an error message was kept")
	}
	if st := computeStats(runs, base.Add(-time.Hour), base.Add(time.Hour), true); st.From != teamcache.Time(base) || !st.Truncated {
		t.Errorf("truncated: from %s", st.From)
	}
	if st := computeStats(nil, base, base, false); st.Runs != 0 || st.FailureRate != 0 || st.LastRun != nil || st.ByStatus == nil {
		t.Errorf("no runs: %+v", st)
	}
}

func TestErrorKindNamesNoMessage(t *testing.T) {
	t.Parallel()
	for err, want := range map[error]string{
		powerautomate.ErrReconnect: "reconnect",
		&powerautomate.APIError{Status: 403, Code: "EnvironmentAccessDenied", Message: "secret"}: "upstream_403",
		context.DeadlineExceeded: "timeout",
		cosmos.ErrThrottled:      "store_throttled",
		errors.New("boom"):       "internal",
	} {
		if got := ErrorKind(err); got != want {
			t.Errorf("ErrorKind(%v) = %s, want %s", err, got, want)
		}
	}
}
