package cosmos

import (
	"encoding/json"
	"testing"
	"time"
)

// BenchmarkEmbedded measures the embedded store's hot paths; every write is
// a durable commit (WAL, synchronous=FULL).
func BenchmarkEmbedded(b *testing.B) {
	s := mustOpenEmbedded(b, b.TempDir())
	ctx := b.Context()
	u, err := s.CreateUser(ctx, newUser("bench", "bench@example.com"))
	if err != nil {
		b.Fatal(err)
	}

	b.Run("GetUser/unchanged", func(b *testing.B) { // no commit since the last read: answered from memory
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.GetUser(ctx, u.ID); err != nil {
				b.Fatal(err)
			}
		}
	})

	b.Run("GetUser/after-a-commit", func(b *testing.B) { // every read follows a commit: a real point read
		b.ReportAllocs()
		for b.Loop() {
			b.StopTimer()
			if _, err := s.IncrementUsage(ctx, u.ID, PerMinute, time.Now(), 1); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			if _, err := s.GetUser(ctx, u.ID); err != nil {
				b.Fatal(err)
			}
		}
	})

	b.Run("GetUser/point-read", func(b *testing.B) { // the read itself, as Cosmos DB always does it
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.users.read(ctx, u.ID, u.ID); err != nil {
				b.Fatal(err)
			}
		}
	})

	b.Run("ReplaceCacheItem", func(b *testing.B) {
		c, err := s.PutCacheItem(ctx, &CacheItem{UserID: u.ID, Kind: "flow", Key: "f1", Body: json.RawMessage(`{"name":"Approvals","state":"Started"}`)})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if c, err = s.ReplaceCacheItem(ctx, c); err != nil {
				b.Fatal(err)
			}
		}
	})

	b.Run("IncrementUsage", func(b *testing.B) {
		at := time.Now()
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.IncrementUsage(ctx, u.ID, PerDay, at, 1); err != nil {
				b.Fatal(err)
			}
		}
	})
}
