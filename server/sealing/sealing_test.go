package sealing

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func newFileSealer(t *testing.T) (*Sealer, *FileKeys) {
	t.Helper()
	keys := NewFileKeys(filepath.Join(t.TempDir(), KeyFile))
	return New(keys, Options{}), keys
}

func TestSealRoundTripAndRefusals(t *testing.T) {
	t.Parallel()
	s, _ := newFileSealer(t)
	ctx := t.Context()
	secret := []byte("0.AS.refresh-token")
	sealed, version, err := s.Seal(ctx, "tenant.alice", secret)
	if err != nil {
		t.Fatal(err)
	}
	if version != "1" || bytes.Contains(sealed, secret) {
		t.Fatalf("version %q, sealed %x", version, sealed)
	}
	again, _, _ := s.Seal(ctx, "tenant.alice", secret)
	if bytes.Equal(again, sealed) {
		t.Fatal("two seals of the same token are equal: the nonce is not random")
	}
	got, err := s.Open(ctx, "tenant.alice", sealed, version)
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("Open = %q, %v", got, err)
	}

	tampered := bytes.Clone(sealed)
	tampered[len(tampered)-1] ^= 1
	for _, tc := range []struct {
		name    string
		user    string
		sealed  []byte
		version string
		want    error
	}{
		{"another user (additional data)", "tenant.bob", sealed, version, ErrOpen},
		{"tampered", "tenant.alice", tampered, version, ErrOpen},
		{"truncated", "tenant.alice", sealed[:10], version, ErrOpen},
		{"unknown version", "tenant.alice", sealed, "7", ErrUnknownVersion},
		{"malformed version", "tenant.alice", sealed, "../x", ErrUnknownVersion},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := s.Open(ctx, tc.user, tc.sealed, tc.version); !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
		})
	}
}

func TestRotateSealsWithNewestAndOldVersionsStillOpen(t *testing.T) {
	t.Parallel()
	s, keys := newFileSealer(t)
	ctx := t.Context()
	old, v1, err := s.Seal(ctx, "u.1", []byte("one"))
	if err != nil {
		t.Fatal(err)
	}
	v2, err := s.Rotate(ctx)
	if err != nil || v2 != "2" {
		t.Fatalf("Rotate = %q, %v", v2, err)
	}
	sealed, v, err := s.Seal(ctx, "u.1", []byte("two"))
	if err != nil || v != v2 {
		t.Fatalf("after rotate sealed with %q (%v)", v, err)
	}
	if got, err := s.Open(ctx, "u.1", sealed, v); err != nil || string(got) != "two" {
		t.Fatal(got, err)
	}
	// A fresh Sealer (another process) opens both versions from the file.
	fresh := New(keys, Options{})
	if got, err := fresh.Open(ctx, "u.1", old, v1); err != nil || string(got) != "one" {
		t.Fatal(got, err)
	}
	if latest, _ := fresh.Latest(ctx); latest != v2 {
		t.Fatalf("latest %q", latest)
	}
}

func TestLatestIsAskedAgainAfterTTL(t *testing.T) {
	t.Parallel()
	keys := NewFileKeys(filepath.Join(t.TempDir(), KeyFile))
	var now atomic.Int64
	now.Store(time.Now().UnixNano())
	s := New(keys, Options{LatestTTL: time.Minute, Now: func() time.Time { return time.Unix(0, now.Load()) }})
	if v, _ := s.Latest(t.Context()); v != "1" {
		t.Fatal(v)
	}
	other := New(keys, Options{}) // rotate-key in another process
	if _, err := other.Rotate(t.Context()); err != nil {
		t.Fatal(err)
	}
	if v, _ := s.Latest(t.Context()); v != "1" {
		t.Fatalf("within the TTL: %s", v)
	}
	now.Add(int64(2 * time.Minute))
	if v, _ := s.Latest(t.Context()); v != "2" {
		t.Fatalf("after the TTL: %s", v)
	}
}

func TestKeyFileCreatedOnceWithMode0600(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), KeyFile)
	var wg sync.WaitGroup
	keys := make([][]byte, 8)
	for i := range keys {
		wg.Go(func() {
			_, k, err := NewFileKeys(path).Latest(context.Background())
			if err != nil {
				t.Error(err)
			}
			keys[i] = k
		})
	}
	wg.Wait()
	for _, k := range keys[1:] {
		if !bytes.Equal(k, keys[0]) {
			t.Fatal("processes starting together got different first keys")
		}
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", fi.Mode())
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".keys-*")); len(left) > 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}

// failingKeys fails every call after the first Latest.
type failingKeys struct {
	Keys
	fail atomic.Bool
}

func (f *failingKeys) Latest(ctx context.Context) (string, []byte, error) {
	if f.fail.Load() {
		return "", nil, errors.New("vault unreachable")
	}
	return f.Keys.Latest(ctx)
}

func TestSourceOutageKeepsTheCachedKey(t *testing.T) {
	t.Parallel()
	keys := &failingKeys{Keys: NewFileKeys(filepath.Join(t.TempDir(), KeyFile))}
	var now atomic.Int64
	now.Store(time.Now().UnixNano())
	s := New(keys, Options{LatestTTL: time.Second, Now: func() time.Time { return time.Unix(0, now.Load()) }})
	if _, _, err := s.Seal(t.Context(), "u.1", []byte("x")); err != nil {
		t.Fatal(err)
	}
	keys.fail.Store(true)
	now.Add(int64(time.Hour))
	if _, v, err := s.Seal(t.Context(), "u.1", []byte("x")); err != nil || v != "1" {
		t.Fatalf("during an outage: %q %v", v, err)
	}
	cold := New(keys, Options{})
	if _, _, err := cold.Seal(t.Context(), "u.1", []byte("x")); err == nil {
		t.Fatal("a cold sealer with no reachable source must fail")
	}
}

func TestOpeningAnUnseenVersionRefreshesLatest(t *testing.T) {
	t.Parallel()
	keys := NewFileKeys(filepath.Join(t.TempDir(), KeyFile))
	server := New(keys, Options{LatestTTL: time.Hour})
	if v, _ := server.Latest(t.Context()); v != "1" {
		t.Fatal(v)
	}
	cli := New(keys, Options{}) // rotate-key, re-sealing a user
	cli.Rotate(t.Context())
	sealed, v2, _ := cli.Seal(t.Context(), "u.1", []byte("rt"))
	if _, err := server.Open(t.Context(), "u.1", sealed, v2); err != nil {
		t.Fatal(err)
	}
	if _, v, _ := server.Seal(t.Context(), "u.1", []byte("rotated")); v != v2 {
		t.Fatalf("the server still seals with %s after seeing %s", v, v2)
	}
}
