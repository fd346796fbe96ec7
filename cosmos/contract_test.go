package cosmos

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// runContract checks the contract that every backend keeps. open returns a
// new, empty, provisioned Store that the test may use alone.
func runContract(t *testing.T, open func(t *testing.T) *Store) {
	tests := []struct {
		name string
		run  func(t *testing.T, s *Store)
	}{
		{"UserCRUD", testUserCRUD},
		{"StaleETag", testStaleETag},
		{"CreateTwice", testCreateTwice},
		{"Missing", testMissing},
		{"Paging", testPaging},
		{"Filters", testFilters},
		{"ConcurrentIncrements", testConcurrentIncrements},
		{"DeleteUserCache", testDeleteUserCache},
		{"TTLWritten", testTTLWritten},
		{"ConcurrentUpdateUser", testConcurrentUpdateUser},
		{"CorruptRecord", testCorruptRecord},
		{"EmailIndex", testEmailIndex},
		{"OAuthItemsAndGrants", testOAuthItemsAndGrants},
		{"BugReports", testBugReports},
		{"StripeEventOnce", testStripeEventOnce},
		{"SetUserCacheTTL", testSetUserCacheTTL},
		{"Ping", func(t *testing.T, s *Store) {
			if err := s.Ping(t.Context()); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.run(t, open(t))
		})
	}
}

func hashOf(email string) string {
	sum := sha256.Sum256([]byte(email))
	return hex.EncodeToString(sum[:])
}

func newUser(objectID, email string) *User {
	return &User{TenantID: "tenant", ObjectID: objectID, EmailHash: hashOf(email), Tier: TierFree, Consent: ConsentGranted}
}

func mustCreateUser(t *testing.T, s *Store, u *User) *User {
	t.Helper()
	created, err := s.CreateUser(t.Context(), u)
	if err != nil {
		t.Fatalf("CreateUser(%s): %v", u.ObjectID, err)
	}
	return created
}

func mustPut(t *testing.T, s *Store, c *CacheItem) *CacheItem {
	t.Helper()
	put, err := s.PutCacheItem(t.Context(), c)
	if err != nil {
		t.Fatalf("PutCacheItem(%s): %v", c.Key, err)
	}
	return put
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: got error %v, want %v", what, err, want)
	}
}

func testUserCRUD(t *testing.T, s *Store) {
	ctx := t.Context()
	in := newUser("obj", "ada@example.com")
	in.DisplayName = "Ada"
	in.SealedRefreshToken = []byte{0, 1, 2, 250}
	in.SealKeyVersion = "v1"
	in.ConsentedResources = []string{"connectors"}
	in.Subscription = Subscription{Status: "active", CustomerID: "cus_1", SubscriptionID: "sub_1", UpdatedAt: 7}
	created := mustCreateUser(t, s, in)
	if created.ID != "tenant.obj" || created.ETag == "" || created.CreatedAt == 0 {
		t.Fatalf("created user: id %q, etag %q, createdAt %d", created.ID, created.ETag, created.CreatedAt)
	}

	got, err := s.GetUser(ctx, created.ID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(created, got); diff != "" {
		t.Fatalf("read back (-created +read):\n%s", diff)
	}

	updated, err := s.UpdateUser(ctx, created.ID, func(u *User) error {
		u.Tier, u.KeyGeneration = TierPro, 2
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if updated.ETag == created.ETag {
		t.Error("ETag did not change on update")
	}
	got, err = s.GetUser(ctx, created.ID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(updated, got); diff != "" || got.Tier != TierPro || got.CreatedAt != created.CreatedAt {
		t.Fatalf("after update (-returned +read):\n%s", diff)
	}

	if err := s.DeleteUser(ctx, created.ID); err != nil {
		t.Fatal(err)
	}
	_, err = s.GetUser(ctx, created.ID)
	wantErr(t, "GetUser after delete", err, ErrNotFound)
}

func testStaleETag(t *testing.T, s *Store) {
	ctx := t.Context()
	first := mustPut(t, s, &CacheItem{UserID: "tenant.u1", Kind: "flow", Key: "f1", Body: json.RawMessage(`{"v":1}`)})
	stale := *first

	first.Body = json.RawMessage(`{"v":2}`)
	second, err := s.ReplaceCacheItem(ctx, first)
	if err != nil {
		t.Fatal(err)
	}
	stale.Body = json.RawMessage(`{"v":3}`)
	_, err = s.ReplaceCacheItem(ctx, &stale)
	wantErr(t, "replace with a stale ETag", err, ErrPreconditionFailed)

	got, err := s.GetCacheItem(ctx, "tenant.u1", "flow", "f1")
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Body) != `{"v":2}` || got.ETag != second.ETag {
		t.Fatalf("got body %s etag %q, want the second write's (etag %q)", got.Body, got.ETag, second.ETag)
	}
}

func testCreateTwice(t *testing.T, s *Store) {
	ctx := t.Context()
	mustCreateUser(t, s, newUser("twice", "twice@example.com"))
	_, err := s.CreateUser(ctx, newUser("twice", "twice@example.com"))
	wantErr(t, "second CreateUser", err, ErrConflict)

	event := &CacheItem{UserID: SystemPartition, Kind: KindStripeEvent, Key: "evt_1", TTL: 3600}
	if _, err := s.CreateCacheItem(ctx, event); err != nil {
		t.Fatal(err)
	}
	_, err = s.CreateCacheItem(ctx, event)
	wantErr(t, "second CreateCacheItem", err, ErrConflict)
}

func testMissing(t *testing.T, s *Store) {
	ctx := t.Context()
	_, err := s.GetUser(ctx, "tenant.nobody")
	wantErr(t, "GetUser", err, ErrNotFound)
	wantErr(t, "DeleteUser", s.DeleteUser(ctx, "tenant.nobody"), ErrNotFound)
	_, err = s.UpdateUser(ctx, "tenant.nobody", func(*User) error {
		t.Error("UpdateUser called fn for a missing user")
		return nil
	})
	wantErr(t, "UpdateUser", err, ErrNotFound)

	_, err = s.GetCacheItem(ctx, "tenant.nobody", "flow", "f1")
	wantErr(t, "GetCacheItem", err, ErrNotFound)
	wantErr(t, "DeleteCacheItem", s.DeleteCacheItem(ctx, "tenant.nobody", "flow", "f1"), ErrNotFound)
	_, err = s.ReplaceCacheItem(ctx, &CacheItem{UserID: "tenant.nobody", Kind: "flow", Key: "f1", ETag: `"1"`})
	wantErr(t, "ReplaceCacheItem", err, ErrNotFound)

	if n, err := s.Usage(ctx, "tenant.nobody", PerDay, time.Now()); n != 0 || err != nil {
		t.Fatalf("Usage = %d, %v; want 0, nil", n, err)
	}
	if users, err := s.FindUsersByEmailHash(ctx, hashOf("nobody@example.com")); len(users) != 0 || err != nil {
		t.Fatalf("FindUsersByEmailHash = %v, %v; want none", users, err)
	}
}

// listAll pages through a listing and returns the keys of each page.
func listAll(t *testing.T, s *Store, userID string, f CacheFilter, size int) [][]string {
	t.Helper()
	var pages [][]string
	token := ""
	for {
		items, next, err := s.ListCacheItems(t.Context(), userID, f, PageRequest{Size: size, Token: token})
		if err != nil {
			t.Fatalf("ListCacheItems(%s, %+v, page %d): %v", userID, f, len(pages)+1, err)
		}
		var keys []string
		for _, it := range items {
			keys = append(keys, it.Key)
		}
		pages = append(pages, keys)
		if next == "" {
			return pages
		}
		if len(pages) > 20 {
			t.Fatal("paging does not end")
		}
		token = next
	}
}

func testPaging(t *testing.T, s *Store) {
	for i := range 7 {
		mustPut(t, s, &CacheItem{UserID: "tenant.u1", Kind: "flow", Key: fmt.Sprintf("f%d", i)})
		mustPut(t, s, &CacheItem{UserID: "tenant.u2", Kind: "flow", Key: fmt.Sprintf("f%d", i)})
	}
	mustPut(t, s, &CacheItem{UserID: "tenant.u1", Kind: "app", Key: "a1"})

	got := listAll(t, s, "tenant.u1", CacheFilter{Kind: "flow"}, 3)
	want := [][]string{{"f0", "f1", "f2"}, {"f3", "f4", "f5"}, {"f6"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("pages (-want +got):\n%s", diff)
	}
}

func testFilters(t *testing.T, s *Store) {
	before := time.Now().Unix()
	// flowRun shares its first letters with flow: a kind is its id's prefix up to ':'.
	for _, kind := range []string{"flow", "app", "flow", "connection", "flowRun"} {
		mustPut(t, s, &CacheItem{UserID: "tenant.u1", Kind: kind, Key: fmt.Sprintf("%s%d", kind, time.Now().UnixNano())})
	}
	mustPut(t, s, &CacheItem{UserID: "tenant.u2", Kind: "app", Key: "other"})

	count := func(f CacheFilter) int {
		n := 0
		for _, page := range listAll(t, s, "tenant.u1", f, 100) {
			n += len(page)
		}
		return n
	}
	for _, tc := range []struct {
		filter CacheFilter
		want   int
	}{
		{CacheFilter{}, 5},
		{CacheFilter{Kind: "flow"}, 2},
		{CacheFilter{Kind: "flowRun"}, 1},
		{CacheFilter{Kind: "app"}, 1},
		{CacheFilter{Kind: "maker"}, 0},
		{CacheFilter{UpdatedSince: before}, 5},
		{CacheFilter{Kind: "flow", UpdatedSince: before}, 2},
		{CacheFilter{UpdatedSince: before + 3600}, 0},
	} {
		if got := count(tc.filter); got != tc.want {
			t.Errorf("%+v matched %d items, want %d", tc.filter, got, tc.want)
		}
	}
}

func testConcurrentIncrements(t *testing.T, s *Store) {
	const goroutines, each = 50, 3
	at := time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)
	results := make(chan int64, goroutines*each)
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			for range each {
				n, err := s.IncrementUsage(t.Context(), "tenant.u1", PerDay, at, 1)
				if err != nil {
					t.Error(err)
					return
				}
				results <- n
			}
		})
	}
	wg.Wait()
	close(results)

	// Atomic increments hand out every count from 1 to the total exactly once.
	var seen []int64
	for n := range results {
		seen = append(seen, n)
	}
	slices.Sort(seen)
	for i, n := range seen {
		if n != int64(i+1) {
			t.Fatalf("increments returned %v, want 1..%d each once", seen, goroutines*each)
		}
	}
	total, err := s.Usage(t.Context(), "tenant.u1", PerDay, at)
	if err != nil || total != goroutines*each {
		t.Fatalf("Usage = %d, %v; want %d", total, err, goroutines*each)
	}
	// The minute counter in the same window is a different counter.
	if n, err := s.IncrementUsage(t.Context(), "tenant.u1", PerMinute, at, 5); n != 5 || err != nil {
		t.Fatalf("first minute increment = %d, %v; want 5", n, err)
	}
}

func testDeleteUserCache(t *testing.T, s *Store) {
	for i := range 5 {
		mustPut(t, s, &CacheItem{UserID: "tenant.gone", Kind: "flow", Key: fmt.Sprintf("f%d", i)})
	}
	mustPut(t, s, &CacheItem{UserID: "tenant.kept", Kind: "flow", Key: "f0"})
	mustPut(t, s, &CacheItem{UserID: "tenant.kept", Kind: "app", Key: "a0"})

	if err := s.DeleteUserCache(t.Context(), "tenant.gone"); err != nil {
		t.Fatal(err)
	}
	if got := listAll(t, s, "tenant.gone", CacheFilter{}, 10); len(got) != 1 || len(got[0]) != 0 {
		t.Fatalf("deleted partition still lists %v", got)
	}
	want := [][]string{{"a0", "f0"}}
	if diff := cmp.Diff(want, listAll(t, s, "tenant.kept", CacheFilter{}, 10)); diff != "" {
		t.Fatalf("other partition (-want +got):\n%s", diff)
	}
}

// testTTLWritten checks the ttl each document carries, which is all that
// expires it on Cosmos DB (and all our test server keeps: it never expires).
func testTTLWritten(t *testing.T, s *Store) {
	ctx := t.Context()
	ttlOf := func(tb table, pk, id string) any {
		it, err := tb.read(ctx, pk, id)
		if err != nil {
			t.Fatal(err)
		}
		var doc map[string]any
		if err := json.Unmarshal(it.doc, &doc); err != nil {
			t.Fatal(err)
		}
		return doc["ttl"]
	}
	for _, tc := range []struct {
		ttl  int
		want any // as JSON decodes it; nil: no ttl, the container default applies
	}{{30, 30.0}, {-1, -1.0}, {0, nil}} {
		key := fmt.Sprintf("ttl%d", tc.ttl)
		mustPut(t, s, &CacheItem{UserID: "tenant.u1", Kind: "flow", Key: key, TTL: tc.ttl})
		if got := ttlOf(s.cache, "tenant.u1", CacheItemID("flow", key)); got != tc.want {
			t.Errorf("TTL %d stored as ttl %v, want %v", tc.ttl, got, tc.want)
		}
		if got, err := s.GetCacheItem(ctx, "tenant.u1", "flow", key); err != nil || got.TTL != tc.ttl {
			t.Errorf("TTL %d read back as %v, %v", tc.ttl, got, err)
		}
	}
	_, err := s.PutCacheItem(ctx, &CacheItem{UserID: "tenant.u1", Kind: "flow", Key: "bad", TTL: -5})
	wantErr(t, "TTL -5", err, ErrInvalid)

	at := time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)
	if _, err := s.IncrementUsage(ctx, "tenant.u1", PerMinute, at, 1); err != nil {
		t.Fatal(err)
	}
	if got := ttlOf(s.usage, "tenant.u1", "minute-202601021504"); got != float64(minuteCounterTTL) {
		t.Errorf("minute counter ttl = %v, want %d", got, minuteCounterTTL)
	}
}

func testConcurrentUpdateUser(t *testing.T, s *Store) {
	u := mustCreateUser(t, s, newUser("busy", "busy@example.com"))
	const writers = 20
	var wg sync.WaitGroup
	for i := range writers {
		wg.Go(func() {
			_, err := s.UpdateUser(t.Context(), u.ID, func(u *User) error {
				u.KeyGeneration++
				u.DisplayName = fmt.Sprintf("writer %d", i)
				return nil
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	got, err := s.GetUser(t.Context(), u.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.KeyGeneration != writers {
		t.Fatalf("KeyGeneration = %d after %d concurrent updates: a write was lost", got.KeyGeneration, writers)
	}
}

func testCorruptRecord(t *testing.T, s *Store) {
	ctx := t.Context()
	raw := func(tb table, pk, id, doc string) {
		t.Helper()
		if _, err := tb.upsert(ctx, item{pk: pk, id: id, doc: []byte(doc)}); err != nil {
			t.Fatal(err)
		}
	}
	raw(s.users, "tenant.bad", "tenant.bad", `{"id":"tenant.bad","tenantId":"tenant","objectId":"bad","tier":"platinum","consent":"granted"}`)
	raw(s.users, "tenant.odd", "tenant.odd", `{"id":"tenant.odd","tenantId":42}`)
	raw(s.cache, "tenant.u1", "flow:x", `{"id":"flow:x","userId":"tenant.u1","kind":"flow","key":"y"}`)

	_, badErr := s.GetUser(ctx, "tenant.bad")
	_, oddErr := s.GetUser(ctx, "tenant.odd")
	_, _, listErr := s.ListCacheItems(ctx, "tenant.u1", CacheFilter{}, PageRequest{})
	for id, err := range map[string]error{"tenant.bad": badErr, "tenant.odd": oddErr, "flow:x": listErr} {
		var corrupt *CorruptRecordError
		if !errors.As(err, &corrupt) || corrupt.ID != id {
			t.Errorf("reading %s: got %v, want a CorruptRecordError naming it", id, err)
		}
	}
}

func testEmailIndex(t *testing.T, s *Store) {
	ctx := t.Context()
	shared, other := hashOf("shared@example.com"), hashOf("other@example.com")
	a := mustCreateUser(t, s, newUser("a", "shared@example.com"))
	b := mustCreateUser(t, s, newUser("b", "shared@example.com"))
	c := mustCreateUser(t, s, newUser("c", "other@example.com"))

	find := func(hash string) []string {
		t.Helper()
		users, err := s.FindUsersByEmailHash(ctx, hash)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, u := range users {
			ids = append(ids, u.ID)
		}
		return ids
	}
	check := func(when, hash string, want ...string) {
		t.Helper()
		if diff := cmp.Diff(want, find(hash)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", when, diff)
		}
	}
	check("after create", shared, a.ID, b.ID)
	check("after create", other, c.ID)

	if _, err := s.UpdateUser(ctx, b.ID, func(u *User) error { u.EmailHash = other; return nil }); err != nil {
		t.Fatal(err)
	}
	check("after b changed email", shared, a.ID)
	check("after b changed email", other, c.ID, b.ID)

	if err := s.DeleteUser(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	check("after delete", shared)
	_, err := s.users.read(ctx, emailIndexID(shared), emailIndexID(shared))
	wantErr(t, "the emptied index", err, ErrNotFound)

	// An index entry left by an interrupted write is checked, not believed.
	stale, _ := encode(&emailIndex{ID: emailIndexID(other), UserIDs: []string{"tenant.gone", c.ID, a.ID, b.ID}}, emailIndexID(other), emailIndexID(other), 0)
	if _, err := s.users.upsert(ctx, stale); err != nil {
		t.Fatal(err)
	}
	check("with stale entries", other, c.ID, b.ID)

	_, err = s.FindUsersByEmailHash(ctx, "Shared@Example.com")
	wantErr(t, "find by a plain email", err, ErrInvalid)
	_, err = s.CreateUser(ctx, &User{TenantID: "tenant", ObjectID: "plain", EmailHash: "ada@example.com", Tier: TierFree, Consent: ConsentGranted})
	wantErr(t, "create with a plain email", err, ErrInvalid)
}
