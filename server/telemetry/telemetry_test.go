package telemetry

import (
	"slices"
	"testing"
	"time"
)

func TestToolCountsCallsOutcomesAndLatency(t *testing.T) {
	tool := ToolFor("telemetry_test_tool")
	if ToolFor("telemetry_test_tool") != tool {
		t.Fatal("ToolFor must return the same counters for the same name")
	}
	tool.Start()
	tool.Start()
	if tool.InFlight() != 2 {
		t.Fatalf("in flight %d, want 2", tool.InFlight())
	}
	tool.Done(OK, 5*time.Millisecond)        // on the first bound: first bucket
	tool.Done(ToolError, 7*time.Millisecond) // second bucket
	tool.Start()
	tool.Done(Outcome(200), 2*time.Minute) // beyond every bound, and an outcome out of range
	if tool.InFlight() != 0 {
		t.Fatalf("in flight %d after every call ended", tool.InFlight())
	}
	if tool.Calls(OK) != 1 || tool.Calls(ToolError) != 1 || tool.Calls(InternalError) != 1 || tool.Calls(Refused) != 0 {
		t.Fatalf("calls ok %d tool_error %d internal %d refused %d", tool.Calls(OK), tool.Calls(ToolError), tool.Calls(InternalError), tool.Calls(Refused))
	}
	buckets, count, sum := tool.Latency()
	if len(buckets) != len(LatencyBounds)+1 || count != 3 {
		t.Fatalf("%d buckets, count %d", len(buckets), count)
	}
	if buckets[0] != 1 || buckets[1] != 1 || buckets[len(buckets)-1] != 1 {
		t.Fatalf("buckets %v", buckets)
	}
	if want := (5*time.Millisecond + 7*time.Millisecond + 2*time.Minute).Seconds(); sum < want-1e-9 || sum > want+1e-9 {
		t.Fatalf("sum %v, want %v", sum, want)
	}
	if !slices.ContainsFunc(Tools(), func(x *Tool) bool { return x == tool }) {
		t.Fatal("Tools does not list the tool")
	}
}

// The bounds are increasing, so that a call's bucket is the first bound it does not pass.
func TestLatencyBoundsIncrease(t *testing.T) {
	if !slices.IsSorted(LatencyBounds) || len(LatencyBounds) != numBuckets-1 {
		t.Fatalf("bounds %v", LatencyBounds)
	}
}

func TestCountersKeepToTheirLists(t *testing.T) {
	count := UpstreamCount
	before, none := count(Entra, 429), count(Entra, NoResponse)
	UpstreamAnswer(Entra, 429)
	UpstreamAnswer(Entra, 42)   // not an HTTP status
	UpstreamAnswer(Entra, 1000) // nor this
	UpstreamAnswer(Family(99), 200)
	if count(Entra, 429) != before+1 || count(Entra, NoResponse) != none+2 {
		t.Fatalf("429: %d, none: %d", count(Entra, 429)-before, count(Entra, NoResponse)-none)
	}
	if StatusLabel(NoResponse) != "none" || StatusLabel(503) != "503" {
		t.Fatal(StatusLabel(NoResponse), StatusLabel(503))
	}

	// The walk the exporters use reports what the point reads see.
	UpstreamAnswers(func(f Family, status int, n uint64) {
		if f == Entra && status == 429 && n != count(Entra, 429) {
			t.Errorf("UpstreamAnswers: %d, UpstreamCount: %d", n, count(Entra, 429))
		}
	})

	refused := RefusalCount
	b1, b2 := refused(DailyQuota, "team"), refused(DailyQuota, "unknown")
	QuotaRefusal(DailyQuota, "team")
	QuotaRefusal(DailyQuota, "someone@contoso.com") // never a label value
	if refused(DailyQuota, "team") != b1+1 || refused(DailyQuota, "unknown") != b2+1 {
		t.Fatal("plan labels")
	}
	QuotaRefusals(func(_ Refusal, plan string, _ uint64) {
		if !slices.Contains(Plans, plan) {
			t.Errorf("plan label %q", plan)
		}
	})

	c := ContainerFor("telemetry_test_container")
	if ContainerFor("telemetry_test_container") != c {
		t.Fatal("ContainerFor must return the same counters for the same name")
	}
	c.Count(Read, StoreNotFound)
	c.Count(Read, StoreNotFound)
	c.Count(Upsert, StoreError)
	seen := map[string]uint64{}
	StoreOps(func(container string, op StoreOp, o StoreOutcome, n uint64) {
		if container == "telemetry_test_container" {
			seen[op.String()+"/"+o.String()] = n
		}
	})
	if len(seen) != 2 || seen["read/not_found"] != 2 || seen["upsert/error"] != 1 {
		t.Fatalf("store counters %v", seen)
	}

	var ok uint64
	TokenRedemptions(func(r Redemption, n uint64) {
		if r == Redeemed {
			ok = n
		}
	})
	TokenRedemption(Redeemed)
	TokenRedemption(Redemption(77))
	TokenRedemptions(func(r Redemption, n uint64) {
		if r == Redeemed && n != ok+1 {
			t.Errorf("redeemed %d, want %d", n, ok+1)
		}
	})
}

// Counting is what a tool call pays: it must not allocate.
func TestCountingDoesNotAllocate(t *testing.T) {
	tool := ToolFor("telemetry_alloc_tool")
	c := ContainerFor("telemetry_alloc_container")
	allocs := testing.AllocsPerRun(1000, func() {
		tool.Start()
		c.Count(Read, StoreOK)
		UpstreamAnswer(Flow, 200)
		tool.Done(OK, 12*time.Millisecond)
		QuotaRefusal(MinuteQuota, "pro")
		TokenRedemption(Redeemed)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per call", allocs)
	}
}

// BenchmarkToolCall is the counting one tools/call does: its tool's Start and
// Done, the user read's store count and one upstream answer.
func BenchmarkToolCall(b *testing.B) {
	tool := ToolFor("telemetry_bench_tool")
	c := ContainerFor("telemetry_bench_container")
	b.ReportAllocs()
	for b.Loop() {
		tool.Start()
		c.Count(Read, StoreOK)
		UpstreamAnswer(Flow, 200)
		tool.Done(OK, 12*time.Millisecond)
	}
}
