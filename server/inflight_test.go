package server

import (
	"context"
	"sync"
	"testing"
	"time"
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
