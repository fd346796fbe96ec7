package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/flowstudio/mcp/cosmos"
	"github.com/flowstudio/mcp/tools/powerautomate/sim"
)

// TestDrainWritesUsage: counted calls live in the replica's memory until a flush;
// SIGTERM must write them before the process exits, so a stopped replica loses no
// count. The calls and the signal fall inside one flush interval (1 s).
func TestDrainWritesUsage(t *testing.T) {
	p := startServer(t)
	const email = "usage@contoso.com"
	key := p.devKey(t, email)
	const calls = 7
	for i := range calls {
		status, body, err := p.call(key, `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_live_environments","arguments":{}}}`)
		if err != nil || status != 200 || !strings.Contains(body, `"isError":false`) {
			t.Fatalf("call %d: %d %v %.200s", i, status, err, body)
		}
	}
	// A meta call is not counted toward the quota.
	if status, body, err := p.call(key, `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_skills","arguments":{}}}`); err != nil || status != 200 {
		t.Fatalf("list_skills: %d %v %.200s", status, err, body)
	}
	p.stop(t)
	store, err := cosmos.OpenEmbedded(p.dataDir)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	tid, oid := sim.New(sim.Options{}).UserFor(email)
	for _, period := range []cosmos.Period{cosmos.PerDay, cosmos.PerMinute} {
		n, err := store.Usage(context.Background(), cosmos.UserID(tid, oid), period, time.Now())
		if period == cosmos.PerMinute && n == 0 && err == nil && time.Now().Second() < 3 {
			continue // the minute turned over while the process stopped
		}
		if err != nil || n != calls {
			t.Errorf("%s counter after drain: %d, %v; want the %d counted calls", period, n, err, calls)
		}
	}
}
