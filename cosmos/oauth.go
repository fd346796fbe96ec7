package cosmos

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
)

// OAuth 2.1 authorization server state (/mcp/oauth). Two places, for two reasons:
//
//   - The grants of a user (the apps they connected) live in the user record, so the
//     one user read that every MCP request makes already sees a revoked grant: no
//     second round trip on the call path.
//   - Registered clients, authorization codes and refresh tokens are cache items in
//     OAuthPartition, keyed by a hash: the store never holds a code or a token, only
//     its SHA-256 (codes and tokens are 256-bit random values, so a plain hash is
//     enough, as in Cloudflare's workers-oauth-provider). Each has a ttl, so what is
//     abandoned goes away by itself.

// MaxOAuthGrants bounds the apps one user can connect; the oldest is dropped first.
const MaxOAuthGrants = 20

// OAuthGrant is one app a user allowed at /mcp/oauth.
type OAuthGrant struct {
	ID           string `json:"id"` // random; access and refresh tokens name it
	ClientID     string `json:"clientId"`
	ClientName   string `json:"clientName,omitempty"`
	RedirectHost string `json:"redirectHost,omitempty"`
	Scope        string `json:"scope"`
	Generation   int64  `json:"gen"`        // the key generation it was granted under
	CreatedAt    int64  `json:"createdAt"`  // unix seconds: the first use
	LastUsedAt   int64  `json:"lastUsedAt"` // unix seconds: the last token issued
}

// OAuthPartition is the cache partition of clients, codes and refresh tokens. It
// cannot clash with a user id (those start with a tenant id).
const OAuthPartition = "_oauth"

// Kinds of OAuth items in OAuthPartition.
const (
	KindOAuthClient  = "oauthClient"  // a dynamically registered client, by client id
	KindOAuthCode    = "oauthCode"    // an authorization code, by the code's hash
	KindOAuthRefresh = "oauthRefresh" // a refresh token, by the token's hash
)

// CreateOAuthItem stores v (JSON) as a new item of kind under key, kept ttl seconds.
// ErrConflict means the key exists.
func (s *Store) CreateOAuthItem(ctx context.Context, kind, key string, v any, ttl int) error {
	body, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("cosmos: oauth item: %w: %v", ErrInvalid, err)
	}
	_, err = s.CreateCacheItem(ctx, &CacheItem{UserID: OAuthPartition, Kind: kind, Key: key, Body: body, TTL: ttl})
	return err
}

// GetOAuthItem reads the item of kind under key into v and returns its ETag.
func (s *Store) GetOAuthItem(ctx context.Context, kind, key string, v any) (string, error) {
	it, err := s.GetCacheItem(ctx, OAuthPartition, kind, key)
	if err != nil {
		return "", err
	}
	if err := json.Unmarshal(it.Body, v); err != nil {
		return "", &CorruptRecordError{Container: cacheSpec.name, ID: it.ID, Err: err}
	}
	return it.ETag, nil
}

// ReplaceOAuthItem overwrites the item read with etag: ErrPreconditionFailed when
// someone wrote it since (a code or refresh token used twice at once).
func (s *Store) ReplaceOAuthItem(ctx context.Context, kind, key string, v any, ttl int, etag string) error {
	body, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("cosmos: oauth item: %w: %v", ErrInvalid, err)
	}
	_, err = s.ReplaceCacheItem(ctx, &CacheItem{UserID: OAuthPartition, Kind: kind, Key: key, Body: body, TTL: ttl, ETag: etag})
	return err
}

// DeleteUserOAuthGrants ends every OAuth grant of the user: their access tokens fail
// at the next request and their refresh tokens at the next refresh (each checks the
// grant in the user record). Account deletion and revocation use it; a missing user
// is not an error.
func (s *Store) DeleteUserOAuthGrants(ctx context.Context, userID string) error {
	_, err := s.UpdateUser(ctx, userID, func(u *User) error {
		u.OAuthGrants = nil
		return nil
	})
	if isNotFound(err) {
		return nil
	}
	return err
}

// RemoveOAuthGrant is an UpdateUser callback body: it drops the grant with this id
// and reports whether there was one.
func RemoveOAuthGrant(u *User, grantID string) bool {
	n := len(u.OAuthGrants)
	u.OAuthGrants = slices.DeleteFunc(u.OAuthGrants, func(g OAuthGrant) bool { return g.ID == grantID })
	return len(u.OAuthGrants) != n
}

// DeleteUserOAuthTokens deletes the authorization codes and refresh tokens that
// name the user (account deletion: they are keyed by hash, so the partition is
// read to find them) and returns how many it deleted. The grants themselves live
// in the user record.
func (s *Store) DeleteUserOAuthTokens(ctx context.Context, userID string) (int, error) {
	if userID == "" {
		return 0, fmt.Errorf("cosmos: delete oauth tokens: %w: no user", ErrInvalid)
	}
	type ref struct{ kind, key string }
	var refs []ref
	for _, kind := range []string{KindOAuthCode, KindOAuthRefresh} {
		err := s.eachCacheItem(ctx, OAuthPartition, CacheFilter{Kind: kind}, func(it *CacheItem) error {
			var v struct {
				UserID string `json:"userId"`
			}
			if json.Unmarshal(it.Body, &v) == nil && v.UserID == userID {
				refs = append(refs, ref{it.Kind, it.Key})
			}
			return nil
		})
		if err != nil {
			return 0, err
		}
	}
	n := 0
	for _, r := range refs {
		if err := s.DeleteCacheItem(ctx, OAuthPartition, r.kind, r.key); err != nil && !isNotFound(err) {
			return n, err
		}
		n++
	}
	return n, nil
}
