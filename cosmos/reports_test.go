package cosmos

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// runReportsContract checks report_bug's storage on a backend: the daily cap
// and the day partitions. open returns two handles on one new, empty store,
// as two replicas have.
func runReportsContract(t *testing.T, open func(t *testing.T) (a, b *Store)) {
	tests := []struct {
		name string
		run  func(t *testing.T, a, b *Store)
	}{
		{"DailyCapConcurrent", testReportsDailyCapConcurrent},
		{"DayPartitionsNewestFirst", testReportsDayPartitionsNewestFirst},
		{"FailedWriteUncounted", testReportsFailedWriteUncounted},
		{"MineStatusAndAppend", testReportsMineStatusAndAppend},
		{"ConcurrentAppends", testReportsConcurrentAppends},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a, b := open(t)
			tt.run(t, a, b)
		})
	}
}

func TestEmbeddedReportsContract(t *testing.T) {
	runReportsContract(t, func(t *testing.T) (*Store, *Store) {
		dir := t.TempDir()
		return mustOpenEmbedded(t, dir), mustOpenEmbedded(t, dir)
	})
}

func TestCosmosReportsContract(t *testing.T) {
	endpoint := os.Getenv("COSMOS_TEST_ENDPOINT")
	if endpoint == "" {
		t.Skip("COSMOS_TEST_ENDPOINT is not set")
	}
	runReportsContract(t, func(t *testing.T) (*Store, *Store) {
		a := mustOpenCosmos(t, endpoint) // deletes the database at the end
		b, err := OpenCosmos(t.Context(), CosmosConfig{Endpoint: endpoint, Database: a.b.(*cosmosDB).database,
			Key: emulatorKey, ClientOptions: testClientOptions()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		return a, b
	})
}

func report(title string) *BugReport {
	return &BugReport{UserHash: hashOf("ada@example.com"), Tier: "free", Title: title, Description: "what happened"}
}

// listAllReports pages through every report listed on the day of now.
func listAllReports(t *testing.T, s *Store, now time.Time, size int) []string {
	t.Helper()
	var titles []string
	token := ""
	for range 1000 {
		page, next, err := s.listBugReports(t.Context(), now, PageRequest{Size: size, Token: token})
		if err != nil {
			t.Fatal(err)
		}
		if len(page) > size {
			t.Fatalf("page of %d reports, asked for %d", len(page), size)
		}
		for _, r := range page {
			titles = append(titles, r.Title)
		}
		if next == "" {
			return titles
		}
		token = next
	}
	t.Fatal("listing never ends")
	return nil
}

// 40 reports of one user race through two handles against a cap of 20:
// exactly 20 are stored and 20 refused, and the counter ends at 20.
func testReportsDailyCapConcurrent(t *testing.T, a, b *Store) {
	ctx := t.Context()
	const perDay, tries = 20, 40
	now := time.Now() // one day window for every try, even across midnight
	var mu sync.Mutex
	stored, refused := 0, 0
	var wg sync.WaitGroup
	for i := range tries {
		s := a
		if i%2 == 1 {
			s = b
		}
		wg.Go(func() {
			_, err := s.addBugReport(ctx, now, "tenant.ada", perDay, report(fmt.Sprintf("report %d", i)))
			mu.Lock()
			defer mu.Unlock()
			var lim *ReportLimitError
			switch {
			case err == nil:
				stored++
			case errors.As(err, &lim):
				refused++
				if wantReset := now.UTC().Truncate(24 * time.Hour).Add(24 * time.Hour); lim.Limit != perDay || !lim.ResetsAt.Equal(wantReset) {
					t.Errorf("refusal %+v, want limit %d resetting at %s", lim, perDay, wantReset)
				}
			default:
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if stored != perDay || refused != tries-perDay {
		t.Fatalf("%d stored, %d refused; want %d and %d", stored, refused, perDay, tries-perDay)
	}
	if n, err := b.Usage(ctx, "tenant.ada", ReportsPerDay, now); err != nil || n != perDay {
		t.Fatalf("counter %d, %v; want %d (refusals taken back)", n, err, perDay)
	}
	items, _, err := a.ListCacheItems(ctx, bugReportPartition(now), CacheFilter{Kind: KindBugReport}, PageRequest{Size: 1000})
	if err != nil || len(items) != perDay {
		t.Fatalf("day partition holds %d reports, %v; want %d", len(items), err, perDay)
	}
	if len(listAllReports(t, a, now, 7)) != perDay {
		t.Fatalf("listing does not show the %d reports", perDay)
	}

	// Still refused one at a time; another user and the next day are not.
	if _, err := a.addBugReport(ctx, now, "tenant.ada", perDay, report("one more")); !errors.As(err, new(*ReportLimitError)) {
		t.Fatalf("a report past the cap: %v", err)
	}
	if _, err := b.addBugReport(ctx, now, "tenant.grace", perDay, report("another user")); err != nil {
		t.Fatalf("another user was refused: %v", err)
	}
	tomorrow := now.Add(24 * time.Hour)
	if _, err := a.addBugReport(ctx, tomorrow, "tenant.ada", perDay, report("tomorrow")); err != nil {
		t.Fatalf("the next day was refused: %v", err)
	}
	if n, _ := a.Usage(ctx, "tenant.ada", ReportsPerDay, tomorrow); n != 1 {
		t.Fatalf("tomorrow's counter %d, want 1", n)
	}
	c, err := newCounter("tenant.ada", ReportsPerDay, now)
	if err != nil || c.ID != "reports-"+now.UTC().Format("20060102") || c.TTL != 2*24*3600 {
		t.Fatalf("counter %+v, %v", c, err)
	}
}

// Reports land in their UTC day's partition and list newest first across
// days, then the reports of the legacy SystemPartition.
func testReportsDayPartitionsNewestFirst(t *testing.T, a, b *Store) {
	ctx := t.Context()
	now := time.Now()
	add := func(s *Store, at time.Time, title string) *BugReport {
		t.Helper()
		r, err := s.addBugReport(ctx, at, "tenant.ada", 20, report(title))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	add(a, now.Add(-89*24*time.Hour), "89 days ago")
	add(b, now.Add(-24*time.Hour), "yesterday")
	first := add(a, now.Add(-time.Second), "today 1")
	add(b, now, "today 2")

	// A report from before the day partitions, and a Stripe event beside it.
	legacyAt := now.Add(-30 * 24 * time.Hour)
	legacy := report("legacy")
	legacy.ID, legacy.CreatedAt = bugReportID(legacyAt), legacyAt.Unix()
	body := fmt.Appendf(nil, `{"id":%q,"user":%q,"title":"legacy","description":"what happened","createdAt":%d}`,
		legacy.ID, legacy.UserHash, legacy.CreatedAt)
	if _, err := a.CreateCacheItem(ctx, &CacheItem{UserID: SystemPartition, Kind: KindBugReport, Key: legacy.ID,
		Body: body, TTL: BugReportTTL}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.MarkStripeEvent(ctx, "evt_beside_reports"); err != nil {
		t.Fatal(err)
	}

	item, err := a.GetCacheItem(ctx, bugReportPartition(now), KindBugReport, first.ID)
	if err != nil {
		t.Fatalf("today's report is not in %s: %v", bugReportPartition(now), err)
	}
	if item.TTL != BugReportTTL {
		t.Errorf("report ttl %d, want %d", item.TTL, BugReportTTL)
	}
	if _, err := a.GetCacheItem(ctx, SystemPartition, KindBugReport, first.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("a new report is in SystemPartition: %v", err)
	}

	want := "today 2,today 1,yesterday,89 days ago,legacy"
	for _, size := range []int{1, 2, 3, 100} {
		if got := strings.Join(listAllReports(t, b, now, size), ","); got != want {
			t.Errorf("pages of %d listed %q, want %q", size, got, want)
		}
	}
	// The public method on today's clock: the same, newest first.
	page, _, err := a.ListBugReports(ctx, PageRequest{Size: 1})
	if err != nil || len(page) != 1 || (page[0].Title != "today 2" && page[0].Title != "today 1") {
		t.Fatalf("ListBugReports: %+v, %v", page, err)
	}
	for _, bad := range []string{"nonsense", "_bugreports-2026130|", "user.partition|x"} {
		if _, _, err := a.ListBugReports(ctx, PageRequest{Token: bad}); !errors.Is(err, ErrInvalid) {
			t.Errorf("token %q: %v, want ErrInvalid", bad, err)
		}
	}
	if _, err := a.AddBugReport(ctx, "", 20, report("no user")); !errors.Is(err, ErrInvalid) {
		t.Errorf("a report of no user: %v", err)
	}
	if _, err := a.AddBugReport(ctx, "tenant.ada", 0, report("no cap")); !errors.Is(err, ErrInvalid) {
		t.Errorf("a cap of 0: %v", err)
	}
}

// failingCache makes every cache create fail, on top of a working backend.
type failingCache struct{ backend }

func (f failingCache) container(spec containerSpec) container {
	c := f.backend.container(spec)
	if spec.name == cacheSpec.name {
		return failingCreate{c}
	}
	return c
}

type failingCreate struct{ container }

func (failingCreate) create(context.Context, item) (string, error) {
	return "", fmt.Errorf("%w: the test says so", ErrUnavailable)
}

// A report that fails to store after being counted is taken back.
func testReportsFailedWriteUncounted(t *testing.T, a, b *Store) {
	ctx := t.Context()
	now := time.Now()
	broken := newStore(failingCache{b.b})
	for range 3 {
		if _, err := broken.addBugReport(ctx, now, "tenant.ada", 20, report("lost")); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("write failure: %v", err)
		}
	}
	if n, err := a.Usage(ctx, "tenant.ada", ReportsPerDay, now); err != nil || n != 0 {
		t.Fatalf("counter %d, %v after failed writes; want 0", n, err)
	}
}

// The listing walks today back over the retention, then SystemPartition.
func TestBugReportPartitionWalk(t *testing.T) {
	now := time.Date(2026, 12, 1, 13, 14, 15, 0, time.FixedZone("CET", 3600))
	if got := bugReportPartition(now); got != "_bugreports-20261201" {
		t.Fatalf("partition %q", got)
	}
	if got := bugReportPartition(time.Date(2026, 12, 2, 0, 30, 0, 0, time.FixedZone("CET", 3600))); got != "_bugreports-20261201" {
		t.Fatalf("00:30 CET is 23:30 UTC the day before, got %q", got)
	}
	var walked []string
	for p := bugReportPartition(now); p != ""; p = nextBugReportPartition(p, now) {
		walked = append(walked, p)
	}
	days := BugReportTTL/(24*3600) + 1 // today and the 90 days before
	if len(walked) != days+1 || walked[1] != "_bugreports-20261130" || walked[days-1] != "_bugreports-20260902" ||
		walked[days] != SystemPartition {
		t.Fatalf("walked %d partitions: %v ... %v", len(walked), walked[:2], walked[len(walked)-2:])
	}
	for _, bad := range []string{"_bugreports-2026121", "_bugreports-20261301", "_bugreports-", SystemPartition, "tenant.user"} {
		if _, ok := bugReportDay(bad); ok {
			t.Errorf("%q taken for a day partition", bad)
		}
	}
}

// A user lists only their own reports, newest first, with the operators' state;
// appends reach only their own reports, count toward the day's cap, keep the
// report within its byte cap and keep its expiry.
func testReportsMineStatusAndAppend(t *testing.T, a, b *Store) {
	ctx := t.Context()
	now := time.Now()
	add := func(s *Store, user, title string, at time.Time) *BugReport {
		t.Helper()
		r, err := s.addBugReport(ctx, at, user, 20, report(title))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	old := add(a, "tenant.ada", "ada yesterday", now.Add(-24*time.Hour))
	mine := add(b, "tenant.ada", "ada today", now)
	grace := add(a, "tenant.grace", "grace today", now)

	got, err := b.ListMyBugReports(ctx, "tenant.ada", 10)
	if err != nil || len(got) != 2 || got[0].ID != mine.ID || got[1].ID != old.ID || got[0].StateOrReceived() != BugReportReceived {
		t.Fatalf("ada's reports = %+v, %v", got, err)
	}
	if got, _ := a.ListMyBugReports(ctx, "tenant.ada", 1); len(got) != 1 || got[0].ID != mine.ID {
		t.Fatalf("limit 1 = %+v", got)
	}
	if got, _ := a.ListMyBugReports(ctx, "tenant.nobody", 10); len(got) != 0 {
		t.Fatalf("a user without reports sees %+v", got)
	}

	// The operators set a state; the reporter sees it.
	if _, err := a.SetBugReportState(ctx, mine.ID, BugReportAcknowledged, "looking into it"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.SetBugReportState(ctx, mine.ID, "bogus", ""); !errors.Is(err, ErrInvalid) {
		t.Errorf("an unknown state: %v", err)
	}
	if got, _ := b.ListMyBugReports(ctx, "tenant.ada", 10); got[0].State != BugReportAcknowledged || got[0].StateNote != "looking into it" || got[0].UpdatedAt == 0 {
		t.Errorf("after the state change: %+v", got[0])
	}

	// Appends: another user's report is not found (not told apart from none).
	if _, err := a.appendBugReport(ctx, now, "tenant.ada", 20, grace.ID, "more", MaxTestReportBytes); !errors.Is(err, ErrNotFound) {
		t.Fatalf("appending to grace's report as ada: %v", err)
	}
	if _, err := a.appendBugReport(ctx, now, "tenant.ada", 20, "not-an-id", "more", MaxTestReportBytes); !errors.Is(err, ErrInvalid) {
		t.Fatalf("a malformed id: %v", err)
	}
	later := now.Add(time.Hour)
	r, err := b.appendBugReport(ctx, later, "tenant.ada", 20, mine.ID, "stack trace", MaxTestReportBytes)
	if err != nil || len(r.Appended) != 1 || r.Appended[0].Text != "stack trace" || r.State != BugReportAcknowledged {
		t.Fatalf("append = %+v, %v", r, err)
	}
	item, err := a.GetCacheItem(ctx, bugReportPartition(now), KindBugReport, mine.ID)
	if err != nil || item.TTL > BugReportTTL-3500 || item.TTL < BugReportTTL-3700 {
		t.Errorf("ttl after an append an hour later: %d, %v; want about %d", item.TTL, err, BugReportTTL-3600)
	}
	if n, _ := a.Usage(ctx, "tenant.ada", ReportsPerDay, later); n != 2 { // the report today and the append
		t.Errorf("ada's counter %d after an append, want 2", n)
	}
	// The byte cap counts everything appended; a refusal is not counted.
	size := mine.Size() + len("stack trace")
	if _, err := a.appendBugReport(ctx, later, "tenant.ada", 20, mine.ID, strings.Repeat("x", MaxTestReportBytes-size+1), MaxTestReportBytes); !errors.As(err, new(*ReportTooLargeError)) {
		t.Fatalf("an append past the cap: %v", err)
	}
	if n, _ := a.Usage(ctx, "tenant.ada", ReportsPerDay, later); n != 2 {
		t.Errorf("a refused append was counted: %d", n)
	}
	if _, err := a.appendBugReport(ctx, later, "tenant.ada", 20, mine.ID, strings.Repeat("x", MaxTestReportBytes-size), MaxTestReportBytes); err != nil {
		t.Fatalf("an append up to the cap: %v", err)
	}
	// The daily cap: appends past it are refused.
	if _, err := a.appendBugReport(ctx, later, "tenant.ada", 3, old.ID, "one more", MaxTestReportBytes); !errors.As(err, new(*ReportLimitError)) {
		t.Fatalf("an append past the daily cap: %v", err)
	}
}

// MaxTestReportBytes is the byte cap the tests pass (report_bug's is 8 KiB).
const MaxTestReportBytes = 2000

// Appends racing through two handles all land.
func testReportsConcurrentAppends(t *testing.T, a, b *Store) {
	ctx := t.Context()
	now := time.Now()
	r, err := a.addBugReport(ctx, now, "tenant.ada", 100, report("racy"))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 6 {
		s := a
		if i%2 == 1 {
			s = b
		}
		wg.Go(func() {
			if _, err := s.appendBugReport(ctx, now, "tenant.ada", 100, r.ID, fmt.Sprintf("part %d", i), MaxTestReportBytes); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	got, err := a.GetBugReport(ctx, r.ID)
	if err != nil || len(got.Appended) != 6 {
		t.Fatalf("after 6 concurrent appends: %+v, %v", got, err)
	}
}
