package cosmos

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowstudio/mcp/cosmos/cosmostest"
)

// sealedCanary is a random "sealed token" and the forms it can take in the files:
// the raw bytes and the base64 the JSON document stores.
func sealedCanary(t *testing.T) ([]byte, [][]byte) {
	raw := make([]byte, 120)
	if _, err := rand.Read(raw); err != nil {
		t.Fatal(err)
	}
	return raw, [][]byte{raw, []byte(base64.StdEncoding.EncodeToString(raw))}
}

// TestEraseDeletedLeavesNoByte: after a user's sealed refresh token is removed
// (revoke) or the user deleted (account deletion), EraseDeleted leaves no byte of it
// in any file of the data directory: not in a free page or cell, not in the WAL.
func TestEraseDeletedLeavesNoByte(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenEmbedded(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()

	first, firstForms := sealedCanary(t)
	rotated, rotatedForms := sealedCanary(t)
	gone, goneForms := sealedCanary(t)
	u := &User{TenantID: "tenant", ObjectID: "revoked", Tier: TierTeam, Consent: ConsentGranted, KeyGeneration: 1,
		EmailHash: "ab12", SealedRefreshToken: first, SealKeyVersion: "v1"}
	if _, err := s.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateUser(ctx, UserID("tenant", "revoked"), func(u *User) error { u.SealedRefreshToken = rotated; return nil }); err != nil {
		t.Fatal(err)
	}
	other := &User{TenantID: "tenant", ObjectID: "deleted", Tier: TierFree, Consent: ConsentGranted, KeyGeneration: 1,
		EmailHash: "cd34", SealedRefreshToken: gone, SealKeyVersion: "v1"}
	if _, err := s.CreateUser(ctx, other); err != nil {
		t.Fatal(err)
	}
	// Neighbours that stay, so the pages are shared with live data.
	for _, id := range []string{"a", "b", "c"} {
		if _, err := s.CreateUser(ctx, &User{TenantID: "tenant", ObjectID: id, Tier: TierFree, Consent: ConsentGranted}); err != nil {
			t.Fatal(err)
		}
	}
	all := append(append(firstForms, rotatedForms...), goneForms...)
	if hits := cosmostest.FilesHolding(t, dir, rotatedForms...); len(hits) == 0 {
		t.Fatal("the scan does not find a live sealed token: it could not find a deleted one either")
	}

	if _, err := s.UpdateUser(ctx, UserID("tenant", "revoked"), func(u *User) error {
		u.SealedRefreshToken, u.SealKeyVersion, u.Consent = nil, "", ConsentRevoked
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteUser(ctx, UserID("tenant", "deleted")); err != nil {
		t.Fatal(err)
	}
	if err := s.EraseDeleted(ctx); err != nil {
		t.Fatal(err)
	}
	if hits := cosmostest.FilesHolding(t, dir, all...); len(hits) > 0 {
		t.Fatalf("a removed sealed token is still readable in %v", hits)
	}
	// The store still works and still holds the rest.
	if got, err := s.GetUser(ctx, UserID("tenant", "a")); err != nil || got.ObjectID != "a" {
		t.Fatalf("after erase: %v %v", got, err)
	}
	if got, err := s.GetUser(ctx, UserID("tenant", "revoked")); err != nil || got.Consent != ConsentRevoked {
		t.Fatalf("after erase: %v %v", got, err)
	}
}

// TestLostStoreFileIsNoticed: a store file deleted or replaced under a running
// process makes every operation fail with an error that says so (reads included, a
// user read answered from memory too), Ping fails (so /readyz is not ready), and the
// OnLost handler runs once.
func TestLostStoreFileIsNoticed(t *testing.T) {
	for name, lose := range map[string]func(path string) error{
		"deleted": os.Remove,
		"replaced": func(path string) error {
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			if err := os.WriteFile(path+".new", b, 0o600); err != nil {
				return err
			}
			return os.Rename(path+".new", path)
		},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			e, err := openEmbedded(dir, time.Hour, 5*time.Millisecond)
			if err != nil {
				t.Fatal(err)
			}
			s := newStore(e)
			defer s.Close()
			var calls atomic.Int32
			s.OnLost(func(error) { calls.Add(1) })
			ctx := context.Background()
			u, err := s.CreateUser(ctx, &User{TenantID: "tenant", ObjectID: "x", Tier: TierFree, Consent: ConsentGranted})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.GetUser(ctx, u.ID); err != nil { // now answered from memory while nothing commits
				t.Fatal(err)
			}
			if err := lose(filepath.Join(dir, EmbeddedFile)); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(20 * time.Second)
			for s.Ping(ctx) == nil {
				if time.Now().After(deadline) {
					t.Fatal("Ping still answers after the store file was " + name)
				}
				time.Sleep(5 * time.Millisecond)
			}
			for op, err := range map[string]error{
				"ping":   s.Ping(ctx),
				"read":   func() error { _, err := s.GetUser(ctx, u.ID); return err }(),
				"update": func() error { _, err := s.UpdateUser(ctx, u.ID, func(*User) error { return nil }); return err }(),
				"create": func() error {
					_, err := s.CreateUser(ctx, &User{TenantID: "tenant", ObjectID: "y", Tier: TierFree, Consent: ConsentGranted})
					return err
				}(),
				"count": func() error { _, err := s.IncrementUsage(ctx, u.ID, PerDay, time.Now(), 1); return err }(),
				"erase": s.EraseDeleted(ctx),
			} {
				if !errors.Is(err, ErrUnavailable) || !strings.Contains(fmtErr(err), "deleted or replaced") {
					t.Errorf("%s: err = %v, want ErrUnavailable saying the file was deleted or replaced", op, err)
				}
			}
			time.Sleep(20 * time.Millisecond) // more checks would have run by now
			if n := calls.Load(); n != 1 {
				t.Fatalf("OnLost ran %d times, want once", n)
			}
		})
	}
}

func fmtErr(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
