package cosmos

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// The kill -9 and two-process tests run this test binary a second time as a
// child process that does one job on the store in childDirEnv.
const (
	childJobEnv = "FLOWSTUDIO_COSMOS_TEST_CHILD"
	childDirEnv = "FLOWSTUDIO_COSMOS_TEST_DIR"
)

func TestMain(m *testing.M) {
	if job := os.Getenv(childJobEnv); job != "" {
		os.Exit(runChild(job, os.Getenv(childDirEnv)))
	}
	os.Exit(m.Run())
}

// childIncrements is how often each of two processes increments one counter.
const childIncrements = 200

var childCounterTime = time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)

func runChild(job, dir string) int {
	s, err := OpenEmbedded(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // never outlive a lost parent
	defer cancel()
	switch job {
	case "increment":
		for range childIncrements {
			if _, err := s.IncrementUsage(ctx, "tenant.shared", PerDay, childCounterTime, 1); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
		}
	case "write":
		// Write until killed, reporting each item once its commit returned.
		for i := 0; ctx.Err() == nil; i++ {
			key := fmt.Sprintf("k%06d", i)
			body := json.RawMessage(fmt.Sprintf(`{"n":%d,"pad":%q}`, i, strings.Repeat("x", 500)))
			if _, err := s.PutCacheItem(ctx, &CacheItem{UserID: "tenant.child", Kind: "killTest", Key: key, Body: body}); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			fmt.Println("committed", key)
		}
	default:
		fmt.Fprintln(os.Stderr, "unknown child job", job)
		return 1
	}
	return 0
}

func childCommand(t *testing.T, job, dir string) *exec.Cmd {
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childJobEnv+"="+job, childDirEnv+"="+dir)
	cmd.Stderr = os.Stderr
	return cmd
}

func mustOpenEmbedded(tb testing.TB, dir string) *Store {
	tb.Helper()
	s, err := OpenEmbedded(dir)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

func TestEmbeddedContract(t *testing.T) {
	runContract(t, func(t *testing.T) *Store { return mustOpenEmbedded(t, t.TempDir()) })
}

func TestEmbeddedFileMode(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	s := mustOpenEmbedded(t, dir)
	mustPut(t, s, &CacheItem{UserID: "tenant.u1", Kind: "flow", Key: "f1"}) // makes SQLite create -wal and -shm
	files, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		fi, err := f.Info()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(f.Name(), EmbeddedFile) || fi.Mode().Perm() != 0o600 {
			t.Errorf("data directory holds %s with mode %v; want only %s* files, mode 0600", f.Name(), fi.Mode().Perm(), EmbeddedFile)
		}
	}
	if len(files) == 0 {
		t.Fatal("no database file")
	}
}

// eventually polls cond for up to 5 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
	}
}

func TestEmbeddedTTLExpiry(t *testing.T) {
	t.Parallel()
	e, err := openEmbedded(t.TempDir(), time.Hour, time.Second) // no purge during the test
	if err != nil {
		t.Fatal(err)
	}
	s := newStore(e)
	t.Cleanup(func() { s.Close() })
	ctx := t.Context()
	for _, c := range []*CacheItem{
		{UserID: "tenant.u1", Kind: "flow", Key: "short", TTL: 1},
		{UserID: "tenant.u1", Kind: "flow", Key: "again", TTL: 1},
		{UserID: "tenant.u1", Kind: "flow", Key: "forever", TTL: -1},
		{UserID: "tenant.u1", Kind: "flow", Key: "default"},
	} {
		mustPut(t, s, c)
	}
	rows := func(key string) int {
		var n int
		if err := e.r.QueryRow(`SELECT count(*) FROM items WHERE id = ?`, CacheItemID("flow", key)).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	// Both ttl-1 items were written at slightly different times (a second boundary can
	// fall between them on a loaded machine), so wait until both have expired.
	eventually(t, "the items with ttl 1 expire", func() bool {
		_, err1 := s.GetCacheItem(ctx, "tenant.u1", "flow", "short")
		_, err2 := s.GetCacheItem(ctx, "tenant.u1", "flow", "again")
		return isNotFound(err1) && isNotFound(err2)
	})
	if rows("short") != 1 {
		t.Fatal("the expired row is gone already; this test checks that reads hide it")
	}
	want := [][]string{{"default", "forever"}}
	if diff := cmp.Diff(want, listAll(t, s, "tenant.u1", CacheFilter{}, 10)); diff != "" {
		t.Fatalf("listing after expiry (-want +got):\n%s", diff)
	}
	wantErr(t, "delete expired", s.DeleteCacheItem(ctx, "tenant.u1", "flow", "short"), ErrNotFound)
	if _, err := s.CreateCacheItem(ctx, &CacheItem{UserID: "tenant.u1", Kind: "flow", Key: "again"}); err != nil {
		t.Fatalf("create over an expired item: %v", err)
	}

	if err := e.purge(ctx); err != nil {
		t.Fatal(err)
	}
	if rows("short") != 0 || rows("again") != 1 || rows("forever") != 1 {
		t.Fatalf("after purge: rows short %d, again %d, forever %d; want 0, 1, 1", rows("short"), rows("again"), rows("forever"))
	}
}

func TestEmbeddedPurgeRuns(t *testing.T) {
	t.Parallel()
	e, err := openEmbedded(t.TempDir(), 10*time.Millisecond, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.close() })
	if _, err := e.w.Exec(`INSERT INTO items VALUES ('cache', 'p', 'x', '{}', '"1"', 1)`); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the background purge removes an expired row", func() bool {
		var n int
		return e.r.QueryRow(`SELECT count(*) FROM items`).Scan(&n) == nil && n == 0
	})
}

func TestEmbeddedExpiredCounterStartsOver(t *testing.T) {
	t.Parallel()
	s := mustOpenEmbedded(t, t.TempDir())
	c := s.usage.c
	seed := func(ttl int) item {
		return item{pk: "tenant.u1", id: "n", doc: []byte(`{"id":"n","userId":"tenant.u1","count":1}`), ttl: ttl}
	}
	for _, want := range []int64{1, 2} {
		if n, err := c.increment(t.Context(), seed(1), "count", 1); n != want || err != nil {
			t.Fatalf("increment = %d, %v; want %d", n, err, want)
		}
	}
	time.Sleep(1100 * time.Millisecond)
	if n, err := c.increment(t.Context(), seed(1), "count", 1); n != 1 || err != nil {
		t.Fatalf("increment of an expired counter = %d, %v; want 1", n, err)
	}
}

func TestEmbeddedContainerDefaultTTL(t *testing.T) {
	t.Parallel()
	e, err := openEmbedded(t.TempDir(), time.Hour, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.close() })
	c := e.container(containerSpec{name: "short", pkField: "userId", defaultTTL: 1})
	for _, it := range []item{
		{pk: "p", id: "default", doc: []byte(`{"id":"default"}`)},
		{pk: "p", id: "never", doc: []byte(`{"id":"never","ttl":-1}`), ttl: -1},
	} {
		if _, err := c.create(t.Context(), it); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "the container default expires an item without ttl", func() bool {
		_, err := c.read(t.Context(), "p", "default")
		return isNotFound(err)
	})
	if _, err := c.read(t.Context(), "p", "never"); err != nil {
		t.Fatalf("item with ttl -1: %v", err)
	}
}

func TestEmbeddedBadContinuationToken(t *testing.T) {
	s := mustOpenEmbedded(t, t.TempDir())
	_, _, err := s.ListCacheItems(t.Context(), "tenant.u1", CacheFilter{}, PageRequest{Token: "not*base64"})
	wantErr(t, "bad token", err, ErrInvalid)
}

// TestEmbeddedTwoProcesses increments one counter from this process and a
// child process at the same time, each with the store open throughout: what
// `flowstudio dev-key` does beside a running server.
func TestEmbeddedTwoProcesses(t *testing.T) {
	dir := t.TempDir()
	s := mustOpenEmbedded(t, dir)
	child := childCommand(t, "increment", dir)
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for range childIncrements {
			if _, err := s.IncrementUsage(t.Context(), "tenant.shared", PerDay, childCounterTime, 1); err != nil {
				t.Error(err)
				return
			}
		}
	})
	wg.Wait()
	if err := child.Wait(); err != nil {
		t.Fatalf("child: %v", err)
	}
	n, err := s.Usage(t.Context(), "tenant.shared", PerDay, childCounterTime)
	if err != nil || n != 2*childIncrements {
		t.Fatalf("Usage = %d, %v; want %d", n, err, 2*childIncrements)
	}
}

// TestEmbeddedKill9 kills a writing child process with SIGKILL and checks
// that every write it reported as committed is there, in a sound file.
func TestEmbeddedKill9(t *testing.T) {
	dir := t.TempDir()
	child := childCommand(t, "write", dir)
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	var committed []string
	lines := bufio.NewScanner(out)
	for lines.Scan() {
		key, ok := strings.CutPrefix(lines.Text(), "committed ")
		if !ok {
			t.Fatalf("child said %q", lines.Text())
		}
		committed = append(committed, key)
		if len(committed) == 300 {
			if err := child.Process.Kill(); err != nil { // SIGKILL
				t.Fatal(err)
			}
		}
	}
	if err := child.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("child ended with %v, want killed", err)
	}
	if len(committed) < 300 {
		t.Fatalf("child committed only %d items before it stopped", len(committed))
	}

	s := mustOpenEmbedded(t, dir)
	var check string
	if err := s.b.(*embedded).r.QueryRow(`PRAGMA integrity_check`).Scan(&check); err != nil || check != "ok" {
		t.Fatalf("integrity_check = %q, %v", check, err)
	}
	for _, key := range committed {
		if _, err := s.GetCacheItem(t.Context(), "tenant.child", "killTest", key); err != nil {
			t.Fatalf("committed item %s after kill -9: %v", key, err)
		}
	}
	t.Logf("all %d committed items survived kill -9", len(committed))
}

// TestUserReadSeesEveryCommit: the embedded store answers GetUser from its last read
// only while SQLite's WAL index shows no commit; a revoke written through another
// handle on the same file (another process, in production: a CLI) is seen by the
// very next read, as is a re-issue and a deletion.
func TestUserReadSeesEveryCommit(t *testing.T) {
	for name, read := range map[string]func(*Store, context.Context, string) (*User, error){
		"GetUser": (*Store).GetUser, "ViewUser": (*Store).ViewUser} {
		t.Run(name, func(t *testing.T) { userReadSeesEveryCommit(t, read) })
	}
}

func userReadSeesEveryCommit(t *testing.T, read func(*Store, context.Context, string) (*User, error)) {
	dir := t.TempDir()
	server, cli := mustOpenEmbedded(t, dir), mustOpenEmbedded(t, dir)
	if server.b.(*embedded).wal == nil {
		t.Fatal("the WAL index is not watched: every read goes to the file (the fast path is off)")
	}
	ctx := t.Context()
	u, err := server.CreateUser(ctx, newUser("watch", "watch@example.com"))
	if err != nil {
		t.Fatal(err)
	}
	for range 3 { // reads with nothing committed in between
		if got, err := read(server, ctx, u.ID); err != nil || got.Consent != ConsentGranted {
			t.Fatalf("read: %v %+v", err, got)
		}
	}
	if _, err := cli.UpdateUser(ctx, u.ID, func(u *User) error { u.Consent = ConsentRevoked; u.KeyGeneration++; return nil }); err != nil {
		t.Fatal(err)
	}
	got, err := read(server, ctx, u.ID)
	if err != nil || got.Consent != ConsentRevoked || got.KeyGeneration != u.KeyGeneration+1 {
		t.Fatalf("after a revoke through another handle: %v %+v", err, got)
	}
	// A commit to another container changes the index too; the user is read again
	// and is the same.
	if _, err := cli.IncrementUsage(ctx, u.ID, PerDay, time.Now(), 1); err != nil {
		t.Fatal(err)
	}
	if again, err := read(server, ctx, u.ID); err != nil || again.ETag != got.ETag {
		t.Fatalf("after an unrelated commit: %v %+v", err, again)
	}
	if err := cli.users.delete(ctx, u.ID, u.ID, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := read(server, ctx, u.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after a delete through another handle: %v", err)
	}
}

// TestUserReadIsNotSharedAcrossCallers: what GetUser returns is the caller's own
// copy, even when it comes from the last read.
func TestUserReadIsNotSharedAcrossCallers(t *testing.T) {
	s := mustOpenEmbedded(t, t.TempDir())
	ctx := t.Context()
	u, err := s.CreateUser(ctx, newUser("copy", "copy@example.com"))
	if err != nil {
		t.Fatal(err)
	}
	a, _ := s.GetUser(ctx, u.ID)
	a.ConsentedResources = append(a.ConsentedResources, "mutated")
	a.Tier = "mutated"
	b, _ := s.GetUser(ctx, u.ID)
	if b.Tier == "mutated" || len(b.ConsentedResources) != len(u.ConsentedResources) {
		t.Fatalf("a caller's change leaked into the next read: %+v", b)
	}
	// A shared read (ViewUser) never sees what a GetUser caller changes either.
	b.Tier, b.ConsentedResources = "mutated", append(b.ConsentedResources, "mutated")
	if v, _ := s.ViewUser(ctx, u.ID); v.Tier == "mutated" || len(v.ConsentedResources) != len(u.ConsentedResources) {
		t.Fatalf("a caller's change leaked into a shared read: %+v", v)
	}
}

// Every connection's page cache is bounded and a reader left idle closes, so what
// SQLite's allocator took during a burst is given back (see pageCacheKiB). Not
// parallel: it shortens readerMaxIdle for the store it opens.
func TestEmbeddedBoundsConnectionMemory(t *testing.T) {
	defer func(d time.Duration) { readerMaxIdle = d }(readerMaxIdle)
	readerMaxIdle = 50 * time.Millisecond
	e, err := openEmbedded(t.TempDir(), time.Hour, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	s := newStore(e)
	t.Cleanup(func() { s.Close() })
	ctx := t.Context()
	mustPut(t, s, &CacheItem{UserID: "tenant.u1", Kind: "flow", Key: "f1"})

	cacheSize := func(c *sql.Conn) int {
		var kib int
		if err := c.QueryRowContext(ctx, `PRAGMA cache_size`).Scan(&kib); err != nil {
			t.Fatal(err)
		}
		return kib
	}
	// Three readers at once, so the pool opens more than one, and the writer.
	var conns []*sql.Conn
	for _, db := range []*sql.DB{e.r, e.r, e.r, e.w} {
		c, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	for i, c := range conns {
		if got := cacheSize(c); got != -pageCacheKiB {
			t.Errorf("connection %d: cache_size %d, want %d (KiB)", i, got, -pageCacheKiB)
		}
		c.Close()
	}
	if n := e.r.Stats().OpenConnections; n < 2 {
		t.Fatalf("%d reader connections open after three at once; want at least 2", n)
	}
	eventually(t, "the idle readers close", func() bool { return e.r.Stats().OpenConnections == 0 })
	if got := e.r.Stats().MaxIdleTimeClosed; got < 2 {
		t.Errorf("%d readers closed for idleness, want at least 2", got)
	}
	if _, err := s.GetCacheItem(ctx, "tenant.u1", "flow", "f1"); err != nil {
		t.Fatalf("a read after the readers closed: %v", err)
	}
}
