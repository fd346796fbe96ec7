package cosmos

import (
	"errors"
	"fmt"
	"testing"
)

// testOAuthItemsAndGrants: OAuth items are single-use through their ETag (of two
// writers holding the same read, one wins), and a user's grants live in the user
// record, where DeleteUserOAuthGrants ends them all.
func testOAuthItemsAndGrants(t *testing.T, s *Store) {
	ctx := t.Context()
	type rec struct {
		Used bool `json:"used"`
	}
	key := fmt.Sprintf("%064x", 42)
	if err := s.CreateOAuthItem(ctx, KindOAuthCode, key, &rec{}, 600); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateOAuthItem(ctx, KindOAuthCode, key, &rec{}, 600); !errors.Is(err, ErrConflict) {
		t.Fatalf("second create: %v, want ErrConflict", err)
	}
	var a, b rec
	etagA, err := s.GetOAuthItem(ctx, KindOAuthCode, key, &a)
	if err != nil {
		t.Fatal(err)
	}
	etagB, _ := s.GetOAuthItem(ctx, KindOAuthCode, key, &b)
	a.Used, b.Used = true, true
	if err := s.ReplaceOAuthItem(ctx, KindOAuthCode, key, &a, 600, etagA); err != nil {
		t.Fatal(err)
	}
	if err := s.ReplaceOAuthItem(ctx, KindOAuthCode, key, &b, 600, etagB); !errors.Is(err, ErrPreconditionFailed) {
		t.Fatalf("the second use of one read: %v, want ErrPreconditionFailed", err)
	}
	if _, err := s.GetOAuthItem(ctx, KindOAuthRefresh, key, &a); !errors.Is(err, ErrNotFound) {
		t.Fatalf("another kind under the same key: %v, want ErrNotFound", err)
	}

	u := mustCreateUser(t, s, newUser("oauth-user", "oauth@example.com"))
	u, err = s.UpdateUser(ctx, u.ID, func(u *User) error {
		u.OAuthGrants = []OAuthGrant{{ID: "g1", ClientID: "c1", Scope: "mcp:full"}, {ID: "g2", ClientID: "c2", Scope: "mcp:read"}}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.GetUser(ctx, u.ID)
	if err != nil || len(got.OAuthGrants) != 2 || got.OAuthGrants[1].Scope != "mcp:read" {
		t.Fatalf("grants after write: %+v %v", got.OAuthGrants, err)
	}
	got.OAuthGrants[0].ID = "changed" // a copy: the store's view must not change
	if again, _ := s.GetUser(ctx, u.ID); again.OAuthGrants[0].ID != "g1" {
		t.Fatal("a caller's change to a read user leaked into the store's remembered copy")
	}
	if _, err := s.UpdateUser(ctx, u.ID, func(u *User) error {
		if !RemoveOAuthGrant(u, "g1") || RemoveOAuthGrant(u, "nope") {
			t.Error("RemoveOAuthGrant reported wrongly")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteUserOAuthGrants(ctx, u.ID); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.GetUser(ctx, u.ID); len(got.OAuthGrants) != 0 {
		t.Fatalf("grants after DeleteUserOAuthGrants: %+v", got.OAuthGrants)
	}
	if err := s.DeleteUserOAuthGrants(ctx, "tenant.nobody"); err != nil {
		t.Fatalf("a missing user: %v", err)
	}
	if _, err := s.UpdateUser(ctx, u.ID, func(u *User) error {
		u.OAuthGrants = make([]OAuthGrant, MaxOAuthGrants+1)
		for i := range u.OAuthGrants {
			u.OAuthGrants[i] = OAuthGrant{ID: fmt.Sprint(i), ClientID: "c"}
		}
		return nil
	}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("more than MaxOAuthGrants: %v, want ErrInvalid", err)
	}
}
