package cosmos

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func testBugReports(t *testing.T, s *Store) {
	ctx := t.Context()
	if _, err := s.AddBugReport(ctx, "tenant.ada", 20, &BugReport{Title: "no description"}); err == nil {
		t.Fatal("a report without a description was stored")
	}
	if _, err := s.AddBugReport(ctx, "tenant.ada", 20, &BugReport{Title: "t", Description: "d", UserHash: "NOT HEX"}); err == nil {
		t.Fatal("a report with a non-hex user hash was stored")
	}
	var stored []*BugReport
	for i := range 3 {
		r, err := s.AddBugReport(ctx, "tenant.ada", 20, &BugReport{UserHash: hashOf("ada@example.com"), Tier: "pro", Tool: "list_live_flows",
			Title: fmt.Sprintf("report %d", i), Description: "what happened", Evidence: strings.Repeat("e", 100)})
		if err != nil {
			t.Fatal(err)
		}
		if r.ID == "" || r.CreatedAt == 0 {
			t.Fatalf("stored report lacks id or time: %+v", r)
		}
		stored = append(stored, r)
	}
	// In the partition of its UTC day (reports_test.go checks the rest).
	item, err := s.GetCacheItem(ctx, bugReportPartition(time.Unix(stored[0].CreatedAt, 0)), KindBugReport, stored[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if item.TTL != BugReportTTL {
		t.Errorf("report ttl %d, want %d", item.TTL, BugReportTTL)
	}
	var got []string
	token := ""
	for {
		page, next, err := s.ListBugReports(ctx, PageRequest{Size: 2, Token: token})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range page {
			got = append(got, r.Title)
			if r.UserHash != hashOf("ada@example.com") || r.Description != "what happened" || len(r.Evidence) != 100 {
				t.Fatalf("report read back wrong: %+v", r)
			}
		}
		if next == "" {
			break
		}
		token = next
	}
	if want := "report 2,report 1,report 0"; strings.Join(got, ",") != want {
		t.Fatalf("reports listed %q, want newest first %q", strings.Join(got, ","), want)
	}
}

func testStripeEventOnce(t *testing.T, s *Store) {
	ctx := t.Context()
	var firsts atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			first, err := s.MarkStripeEvent(ctx, "evt_concurrent")
			if err != nil {
				t.Error(err)
			}
			if first {
				firsts.Add(1)
			}
		})
	}
	wg.Wait()
	if firsts.Load() != 1 {
		t.Fatalf("%d deliveries were first, want exactly 1", firsts.Load())
	}
	item, err := s.GetCacheItem(ctx, SystemPartition, KindStripeEvent, "evt_concurrent")
	if err != nil || item.TTL != StripeEventTTL {
		t.Fatalf("event marker: %+v, %v; want ttl %d", item, err, StripeEventTTL)
	}
	if err := s.UnmarkStripeEvent(ctx, "evt_concurrent"); err != nil {
		t.Fatal(err)
	}
	if first, err := s.MarkStripeEvent(ctx, "evt_concurrent"); !first || err != nil {
		t.Fatalf("after unmark: first %v, err %v", first, err)
	}
	if err := s.UnmarkStripeEvent(ctx, "evt_never_seen"); err != nil {
		t.Fatalf("unmarking an unknown event: %v", err)
	}
}

func testSetUserCacheTTL(t *testing.T, s *Store) {
	ctx := t.Context()
	const month = 30 * 24 * 3600
	for i := range 5 {
		mustPut(t, s, &CacheItem{UserID: "tenant.team", Kind: "flow", Key: fmt.Sprintf("f%d", i)})
	}
	mustPut(t, s, &CacheItem{UserID: "tenant.team", Kind: "runStats", Key: "short", TTL: 3600})
	mustPut(t, s, &CacheItem{UserID: "tenant.other", Kind: "flow", Key: "f0"})

	expire := func(cur int) bool { return cur <= 0 || cur > month }
	n, err := s.SetUserCacheTTL(ctx, "tenant.team", month, expire)
	if err != nil || n != 5 {
		t.Fatalf("expire: changed %d, %v; want 5", n, err)
	}
	ttlOf := func(user, kind, key string) int {
		t.Helper()
		it, err := s.GetCacheItem(ctx, user, kind, key)
		if err != nil {
			t.Fatal(err)
		}
		return it.TTL
	}
	if got := ttlOf("tenant.team", "flow", "f3"); got != month {
		t.Errorf("flow ttl %d, want %d", got, month)
	}
	if got := ttlOf("tenant.team", "runStats", "short"); got != 3600 {
		t.Errorf("a shorter ttl was lengthened to %d", got)
	}
	if got := ttlOf("tenant.other", "flow", "f0"); got != 0 {
		t.Errorf("another user's item got ttl %d", got)
	}
	if n, _ := s.SetUserCacheTTL(ctx, "tenant.team", month, expire); n != 0 {
		t.Errorf("expiring again changed %d items, want 0", n)
	}
	n, err = s.SetUserCacheTTL(ctx, "tenant.team", -1, func(cur int) bool { return cur == month })
	if err != nil || n != 5 {
		t.Fatalf("clear: changed %d, %v; want 5", n, err)
	}
	if got := ttlOf("tenant.team", "flow", "f3"); got != -1 {
		t.Errorf("cleared ttl %d, want -1", got)
	}
	if _, err := s.SetUserCacheTTL(ctx, SystemPartition, month, expire); err == nil {
		t.Error("the system partition was accepted as a user")
	}
}
