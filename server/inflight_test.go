package server

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowstudio/mcp/server/telemetry"

	"github.com/flowstudio/mcp/cosmos"
	"github.com/flowstudio/mcp/tools"
	"go.uber.org/zap"
)

// TestUserSlots: a user runs at most limit requests at once; more wait for a slot
// (at most 4×limit of them), the rest are refused at once; other users are apart;
// nothing is left behind.
func TestUserSlots(t *testing.T) {
	u := newUserSlots(2, 200*time.Millisecond)
	ctx := context.Background()
	var held []func()
	for range 2 {
		release, ok := u.acquire(ctx, "alice")
		if !ok {
			t.Fatal("a free slot was refused")
		}
		held = append(held, release)
	}
	if _, ok := u.acquire(ctx, "bob"); !ok {
		t.Fatal("another user's requests are counted against alice")
	}
	// A waiter gets the slot an earlier request frees.
	got := make(chan func())
	go func() { release, _ := u.acquire(ctx, "alice"); got <- release }()
	time.Sleep(20 * time.Millisecond)
	held[0]()
	held[0] = <-got
	if held[0] == nil {
		t.Fatal("a waiting request did not get the freed slot")
	}
	// Waiters time out; past 4×limit waiters, refusal is immediate.
	var wg sync.WaitGroup
	results := make(chan bool, 9)
	for range 9 {
		wg.Go(func() {
			_, ok := u.acquire(ctx, "alice")
			results <- ok
		})
	}
	started := time.Now()
	wg.Wait()
	close(results)
	for ok := range results {
		if ok {
			t.Fatal("a request past the limit ran")
		}
	}
	if time.Since(started) > 2*time.Second {
		t.Fatal("waiters waited past maxWait")
	}
	held[0]()
	held[1]()
	u.mu.Lock()
	left := len(u.users)
	u.mu.Unlock()
	if left != 1 { // bob's slot is still held
		t.Fatalf("%d users tracked, want 1", left)
	}
}

// TestInFlightPerUserOverHTTP: with one slot per user, a second request of the same
// user waits, then gets 429 with Retry-After and a JSON-RPC error; once the first
// finishes, the next request runs.
func TestInFlightPerUserOverHTTP(t *testing.T) {
	store, keys := newTestStore(t), testKeys()
	user, err := store.CreateUser(context.Background(), &cosmos.User{TenantID: "t", ObjectID: "o", Tier: cosmos.TierPro,
		KeyGeneration: 1, KeyIssuedAt: time.Now().Unix(), Consent: cosmos.ConsentGranted})
	if err != nil {
		t.Fatal(err)
	}
	key, _ := keys.Issue(user.ID, 1, time.Unix(user.KeyIssuedAt, 0), tools.ScopeFull)
	block, started := make(chan struct{}), make(chan struct{}, 4)
	slow := tools.Define(tools.Tool{Name: "slow", Title: "Slow", Description: "Blocks until released.", Kind: tools.ReadOnly,
		Group: tools.Meta, Input: json.RawMessage(`{"type":"object","additionalProperties":false}`)},
		func(context.Context, *tools.Env, struct{}) (map[string]int, error) {
			started <- struct{}{}
			<-block
			return map[string]int{"ok": 1}, nil
		})
	catalog, err := tools.NewCatalog(&tools.Env{}, nil, 0, []*tools.Tool{slow})
	if err != nil {
		t.Fatal(err)
	}
	settings, _ := LoadSettings(func(string) string { return "" })
	settings.MaxInFlightPerUser = 1
	srv := New(Deps{Settings: settings, Logger: zap.NewNop(), Keys: keys, Users: store, Catalog: catalog})
	srv.slots.maxWait = 100 * time.Millisecond
	h := srv.Handler()
	call := func() *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, "/mcp",
			strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"slow","arguments":{}}}`))
		req.Host = "127.0.0.1:8080"
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Api-Key", key)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	first := make(chan *httptest.ResponseRecorder)
	go func() { first <- call() }()
	<-started
	refusedBefore := telemetry.RefusalCount(telemetry.InFlight, "pro")
	second := call()
	if d := telemetry.RefusalCount(telemetry.InFlight, "pro") - refusedBefore; d != 1 {
		t.Errorf("in-flight refusals of the pro plan +%d, want 1", d)
	}
	if second.Code != http.StatusTooManyRequests || second.Header().Get("Retry-After") != "1" ||
		!strings.Contains(second.Body.String(), "Too many requests in flight for this user (at most 1 at once)") ||
		!strings.Contains(second.Body.String(), `"code":-32012`) {
		t.Fatalf("second request: %d %v %s", second.Code, second.Header(), second.Body)
	}
	close(block)
	if r := <-first; r.Code != 200 || !strings.Contains(r.Body.String(), `"isError":false`) {
		t.Fatalf("first request: %d %s", r.Code, r.Body)
	}
	if r := call(); r.Code != 200 {
		t.Fatalf("after the slot was freed: %d %s", r.Code, r.Body)
	}
}
