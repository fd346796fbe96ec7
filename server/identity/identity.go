// Package identity holds what a user's delegated identity needs beyond the
// HTTP pages: redeeming the sealed refresh token for per-resource access
// tokens (TokenSource), revoking consent and re-issuing keys (Revoke,
// ReissueKey, shared by the dashboard and `flowstudio user revoke`), and
// re-sealing every stored refresh token after a key rotation (Reseal).
package identity

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/flowstudio/mcp/cosmos"
)

// ConsentScopes are the scopes a user consents to at sign-in (and that
// `dev-key` grants a simulated user): identity, a refresh token, and the
// Power Automate and Power Apps delegated permissions.
var ConsentScopes = []string{
	"openid", "profile", "email", "offline_access",
	"https://service.flow.microsoft.com/Flows.Read.All",
	"https://service.flow.microsoft.com/Flows.Manage.All",
	"https://service.flow.microsoft.com/Activity.Read.All",
	"https://service.powerapps.com/User",
}

// Users is what this package needs from storage (*cosmos.Store).
type Users interface {
	GetUser(ctx context.Context, id string) (*cosmos.User, error)
	UpdateUser(ctx context.Context, id string, fn func(*cosmos.User) error) (*cosmos.User, error)
}

// Sealer seals and opens refresh tokens (*sealing.Sealer).
type Sealer interface {
	Seal(ctx context.Context, userID string, plaintext []byte) (sealed []byte, version string, err error)
	Open(ctx context.Context, userID string, sealed []byte, version string) ([]byte, error)
}

// RevokeUser is what revoking permission does to a user record, as an
// UpdateUser callback: the sealed refresh token is deleted, the key
// generation bumped (every key of the user dies at once on every replica),
// consent marked revoked, every grant beyond the default sign-in cleared
// (a later sign-in starts from the default again), every OAuth grant ended
// (the apps connected at /mcp/oauth) and every dashboard session ended (the
// session epoch moves on).
func RevokeUser(u *cosmos.User) error {
	u.SealedRefreshToken, u.SealKeyVersion = nil, ""
	u.KeyGeneration++
	u.SessionEpoch++ // every dashboard session ends too
	u.Consent = cosmos.ConsentRevoked
	u.ConsentedResources = nil
	u.OAuthGrants = nil
	return nil
}

// RevokeStore is what Revoke needs: the users, and erasing what a write removed
// (*cosmos.Store).
type RevokeStore interface {
	Users
	EraseDeleted(ctx context.Context) error
}

// ErrNotErased: the revoke is done (keys dead, token deleted), but the store could not
// yet erase the old sealed token from its files (cosmos.Store.EraseDeleted); the next
// erase does. Callers log it and report the revoke as done.
var ErrNotErased = errors.New("identity: revoked, but the old sealed token is not erased from the store's files yet")

// Revoke revokes a user's permission (RevokeUser), then erases the deleted sealed
// token from the store's files, and returns the updated user. The dashboard's
// "Revoke permission" and `flowstudio user revoke` both call it.
func Revoke(ctx context.Context, users RevokeStore, userID string) (*cosmos.User, error) {
	u, err := users.UpdateUser(ctx, userID, RevokeUser)
	if err != nil {
		return nil, err
	}
	if err := users.EraseDeleted(ctx); err != nil {
		return u, fmt.Errorf("%w: %w", ErrNotErased, err)
	}
	return u, nil
}

// ErrNotConsented: there is no key to re-issue, since permission was revoked
// or needs renewing; the user must sign in again.
var ErrNotConsented = errors.New("identity: the user's permission was revoked or needs renewing")

// ReissueKey makes a new API key generation issued at now: every earlier key
// of the user stops working at once, and so do every OAuth grant (its tokens are
// bound to the generation) and every dashboard session. The consent stays as it is.
func ReissueKey(ctx context.Context, users Users, userID string, now time.Time) (*cosmos.User, error) {
	return users.UpdateUser(ctx, userID, func(u *cosmos.User) error {
		if u.Consent != cosmos.ConsentGranted {
			return ErrNotConsented
		}
		u.KeyGeneration++
		u.KeyIssuedAt = now.Unix()
		u.OAuthGrants = nil
		u.SessionEpoch++ // a session that could read the old key must not read the new one
		return nil
	})
}

// ResealStore is what Reseal needs: the users and a way to list them all.
type ResealStore interface {
	Users
	ListUserIDs(ctx context.Context, p cosmos.PageRequest) ([]string, string, error)
}

// ResealResult counts what Reseal did.
type ResealResult struct {
	Resealed int      // sealed again with the newest key version
	Current  int      // already sealed with it
	Empty    int      // no refresh token stored
	Failed   []string // user ids whose token could not be re-sealed
}

// errUnchanged aborts an UpdateUser without writing.
var errUnchanged = errors.New("unchanged")

// Reseal seals every stored refresh token again with the sealer's newest key
// version (after `flowstudio rotate-key`), one ETag-checked update per user,
// so a concurrent sign-in or token rotation is never overwritten. Tokens
// under older versions keep opening until they are re-sealed. A user that
// fails is counted and skipped; the error then names how many failed.
func Reseal(ctx context.Context, store ResealStore, sealer interface {
	Sealer
	Latest(ctx context.Context) (string, error)
}) (ResealResult, error) {
	var res ResealResult
	latest, err := sealer.Latest(ctx)
	if err != nil {
		return res, err
	}
	token := ""
	for {
		ids, next, err := store.ListUserIDs(ctx, cosmos.PageRequest{Size: 100, Token: token})
		if err != nil {
			return res, err
		}
		for _, id := range ids {
			var outcome *int
			_, err := store.UpdateUser(ctx, id, func(u *cosmos.User) error {
				switch {
				case len(u.SealedRefreshToken) == 0:
					outcome = &res.Empty
					return errUnchanged
				case u.SealKeyVersion == latest:
					outcome = &res.Current
					return errUnchanged
				}
				plain, err := sealer.Open(ctx, u.ID, u.SealedRefreshToken, u.SealKeyVersion)
				if err != nil {
					return err
				}
				sealed, version, err := sealer.Seal(ctx, u.ID, plain)
				if err != nil {
					return err
				}
				u.SealedRefreshToken, u.SealKeyVersion = sealed, version
				outcome = &res.Resealed
				return nil
			})
			switch {
			case errors.Is(err, cosmos.ErrNotFound): // deleted meanwhile
			case err != nil && !errors.Is(err, errUnchanged):
				res.Failed = append(res.Failed, id)
			case outcome != nil:
				*outcome++
			}
		}
		if next == "" {
			break
		}
		token = next
	}
	if len(res.Failed) > 0 {
		return res, fmt.Errorf("identity: %d refresh tokens could not be re-sealed", len(res.Failed))
	}
	return res, nil
}
