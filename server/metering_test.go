package server

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowstudio/mcp/cosmos"
	"github.com/flowstudio/mcp/server/keyring"
	"github.com/flowstudio/mcp/tools"
	"github.com/flowstudio/mcp/tools/metering"
	"github.com/flowstudio/mcp/tools/powerautomate"
	"github.com/flowstudio/mcp/tools/powerautomate/sim"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// roundTrips counts store calls made for one tools/call: the API-key check's user
// read and the usage counters.
type roundTrips struct {
	*cosmos.Store
	userID            string
	reads, increments atomic.Int64
}

func (r *roundTrips) ViewUser(ctx context.Context, id string) (*cosmos.User, error) {
	r.reads.Add(1)
	return r.Store.ViewUser(ctx, id)
}

func (r *roundTrips) IncrementUsage(ctx context.Context, userID string, p cosmos.Period, at time.Time, by int64) (int64, error) {
	r.increments.Add(1)
	return r.Store.IncrementUsage(ctx, userID, p, at, by)
}

// callServer is the whole /mcp handler over an embedded store (counting its round
// trips) and an in-process simulator, with a key of one Pro user; with a quota, the
// catalog meters calls (flushed only when told, so that the round trips of a call
// are the call's alone).
type callServer struct {
	h     http.Handler
	key   string
	store *roundTrips
	meter *metering.Meter // nil without a quota
}

func newCallServer(tb testing.TB, quota *metering.Quota) *callServer {
	tb.Helper()
	raw, err := cosmos.OpenEmbedded(tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { raw.Close() })
	store := &roundTrips{Store: raw}
	keys, _ := keyring.New(strings.Repeat("k", 40))
	simulator := sim.New(sim.Options{})
	upstream := httptest.NewServer(simulator.Handler())
	tb.Cleanup(upstream.Close)
	pa, err := powerautomate.New(simulator.Config(upstream.URL), simulator.TokenSourceFor("rt@contoso.com"))
	if err != nil {
		tb.Fatal(err)
	}
	tid, oid := simulator.UserFor("rt@contoso.com")
	user, err := raw.CreateUser(context.Background(), &cosmos.User{TenantID: tid, ObjectID: oid, Tier: cosmos.TierPro,
		KeyGeneration: 1, KeyIssuedAt: time.Now().Unix(), Consent: cosmos.ConsentGranted})
	if err != nil {
		tb.Fatal(err)
	}
	store.userID = user.ID
	var meter *metering.Meter
	var asMeter tools.Meter // a nil *metering.Meter in the interface would not be "no meter"
	if quota != nil {
		quotas := metering.Quotas{Free: *quota, Pro: *quota, Team: *quota}
		meter = metering.New(metering.Options{Store: store, Quotas: quotas, Log: metering.NewLogger(zapcore.AddSync(discard{})),
			FlushInterval: -1})
		tb.Cleanup(func() { meter.Close(context.Background()) })
		asMeter = meter
	}
	catalog, err := tools.NewCatalog(&tools.Env{PA: pa, Reports: raw}, asMeter, 0, tools.All())
	if err != nil {
		tb.Fatal(err)
	}
	settings, _ := LoadSettings(func(string) string { return "" })
	srv := New(Deps{Settings: settings, Logger: zap.NewNop(), Keys: keys, Users: store, Catalog: catalog})
	key, _ := keys.Issue(user.ID, 1, time.Unix(user.KeyIssuedAt, 0), tools.ScopeFull)
	return &callServer{h: srv.Handler(), key: key, store: store, meter: meter}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

func (m *callServer) call(tb testing.TB, body string) string {
	req := httptest.NewRequest(http.MethodPost, "/mcp", strings.NewReader(body))
	req.Host = "127.0.0.1:8080"
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Api-Key", m.key)
	rec := httptest.NewRecorder()
	m.h.ServeHTTP(rec, req)
	if rec.Code != 200 {
		tb.Fatalf("%d %s", rec.Code, rec.Body)
	}
	return rec.Body.String()
}

const (
	callEnvironments = `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_live_environments","arguments":{}}}`
	callSkills       = `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_skills","arguments":{}}}`
)

// TestStoreRoundTripsPerToolsCall pins the store round trips of one tools/call:
// exactly one, the user read of the API-key check, whether the call is admitted,
// refused over quota or a meta tool. Counting happens in memory; the meter's
// flush writes the counters later, off the call's path.
func TestStoreRoundTripsPerToolsCall(t *testing.T) {
	m := newCallServer(t, &metering.Quota{PerDay: 1, PerMinute: 1})
	for _, tc := range []struct {
		name       string
		body       string
		reads, inc int64
		isError    bool
	}{
		{"admitted", callEnvironments, 1, 0, false},
		{"over quota", callEnvironments, 1, 0, true},
		{"meta tool", callSkills, 1, 0, false},
	} {
		r0, i0 := m.store.reads.Load(), m.store.increments.Load()
		out := m.call(t, tc.body)
		if strings.Contains(out, `"isError":true`) != tc.isError {
			t.Fatalf("%s: %s", tc.name, out)
		}
		if r, i := m.store.reads.Load()-r0, m.store.increments.Load()-i0; r != tc.reads || i != tc.inc {
			t.Errorf("%s: %d user reads and %d counter round trips, want %d and %d", tc.name, r, i, tc.reads, tc.inc)
		}
	}
	if err := m.meter.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n, _ := m.store.Usage(t.Context(), m.store.userID, cosmos.PerDay, time.Now()); n != 1 {
		t.Errorf("after the flush the day counter is %d, want the 1 admitted call", n)
	}
}

// BenchmarkMeteredToolsCall is BenchmarkToolsCallRoundTrip with the Meter on: the
// difference is the cost of quotas and the metering line on the embedded store.
func BenchmarkMeteredToolsCall(b *testing.B) {
	m := newCallServer(b, &metering.Quota{PerDay: 1 << 40, PerMinute: 1 << 40})
	for _, bc := range []struct{ name, body string }{
		{"list_live_environments", callEnvironments},
		{"list_skills", callSkills},
	} {
		b.Run(bc.name, func(b *testing.B) {
			r0, i0 := m.store.reads.Load(), m.store.increments.Load()
			for b.Loop() {
				m.call(b, bc.body)
			}
			b.ReportMetric(float64(m.store.reads.Load()-r0+m.store.increments.Load()-i0)/float64(b.N), "store-round-trips/op")
		})
	}
}
