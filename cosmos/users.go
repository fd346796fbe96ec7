package cosmos

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"
)

// CreateUser stores a new user and returns it with its ETag. It sets ID,
// CreatedAt and UpdatedAt; ErrConflict means the user exists.
func (s *Store) CreateUser(ctx context.Context, u *User) (*User, error) {
	nu := *u
	nu.ID = UserID(u.TenantID, u.ObjectID)
	nu.CreatedAt = time.Now().Unix()
	nu.UpdatedAt = nu.CreatedAt
	it, err := encode(&nu, nu.ID, nu.ID, 0)
	if err != nil {
		return nil, err
	}
	// Index first: if we stop in between, the index names a user that does
	// not exist, which lookups skip, rather than missing one that does.
	if err := s.indexEmail(ctx, nu.EmailHash, nu.ID); err != nil {
		return nil, err
	}
	if nu.ETag, err = s.users.create(ctx, it); err != nil {
		return nil, err
	}
	return &nu, nil
}

// GetUser reads one user. Revocation and re-issue must act at once on every
// replica, so every call reads the store, with one exception that keeps that
// promise: the embedded store answers from the last read while SQLite's WAL index
// shows that no process has committed anything since (any write, from the server
// or a CLI, changes it), and for at most a second. A document whose ETag was seen
// before is not decoded again.
func (s *Store) GetUser(ctx context.Context, id string) (*User, error) {
	return s.readUser(ctx, id, false)
}

// ViewUser is GetUser for a caller that only reads the user, as the API-key check on
// every call does: the user it returns may be shared with other callers, so it is
// never changed, and the copy GetUser makes for callers that change it is saved.
func (s *Store) ViewUser(ctx context.Context, id string) (*User, error) {
	return s.readUser(ctx, id, true)
}

func (s *Store) readUser(ctx context.Context, id string, shared bool) (*User, error) {
	var version walHeader
	var versionOK bool
	if w, ok := s.b.(committedWatcher); ok {
		// Sampled before the read: a commit after this point changes it, so what
		// the read returns is never kept past that commit.
		version, versionOK = w.committed()
		if u, ok := s.decoded.getUnchanged(id, version, versionOK); ok {
			return u.copyUnless(shared), nil
		}
	}
	it, err := s.users.read(ctx, id, id)
	if err != nil {
		return nil, err
	}
	if u, ok := s.decoded.get(id, it.etag); ok {
		s.decoded.seen(id, version, versionOK)
		return u.copyUnless(shared), nil
	}
	u, err := decode[User](usersSpec.name, it)
	if err != nil {
		return nil, err
	}
	u.ETag = it.etag
	s.decoded.put(u, version, versionOK) // keeps a copy of its own: u is the caller's
	return u, nil
}

// committedWatcher is a backend that can tell, without a round trip, that nothing
// was committed since it last said so (the embedded store).
type committedWatcher interface {
	committed() (walHeader, bool)
}

// copyUnless is u itself for a shared read, else a copy of it.
func (u *User) copyUnless(shared bool) *User {
	if shared {
		return u
	}
	return u.clone()
}

// clone copies a user deeply enough that changing the copy (UpdateUser's fn
// appends to slices) never changes the original.
func (u *User) clone() *User {
	c := *u
	c.SealedRefreshToken = slices.Clone(u.SealedRefreshToken)
	c.ConsentedResources = slices.Clone(u.ConsentedResources)
	c.OAuthGrants = slices.Clone(u.OAuthGrants)
	return &c
}

// decodedUsers remembers the last decoded version of recently read users, keyed
// by id and checked by ETag (every write gives a new ETag), and the WAL index
// header under which it was read. Bounded: when full it starts over.
type decodedUsers struct {
	mu sync.Mutex
	m  map[string]*decodedUser
}

type decodedUser struct {
	user      *User
	version   walHeader
	versionOK bool
	readAt    time.Time
}

const (
	maxDecodedUsers = 4096
	// maxUnchangedAge bounds how long a read is reused even when the WAL index
	// shows no commit: a safety net, not the mechanism.
	maxUnchangedAge = time.Second
)

func (d *decodedUsers) getUnchanged(id string, version walHeader, ok bool) (*User, bool) {
	if !ok {
		return nil, false
	}
	// seen changes an entry's version and readAt under the lock, so they are read
	// under it too; the entry's user is never changed once stored.
	d.mu.Lock()
	e, found := d.m[id]
	fresh := found && e.versionOK && e.version == version && time.Since(e.readAt) <= maxUnchangedAge
	d.mu.Unlock()
	if !fresh {
		return nil, false
	}
	return e.user, true
}

func (d *decodedUsers) get(id, etag string) (*User, bool) {
	d.mu.Lock()
	e, ok := d.m[id]
	d.mu.Unlock()
	if !ok || etag == "" || e.user.ETag != etag {
		return nil, false
	}
	return e.user, true
}

// seen records that a read under version returned the remembered document.
func (d *decodedUsers) seen(id string, version walHeader, ok bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if e, found := d.m[id]; found {
		e.version, e.versionOK, e.readAt = version, ok, time.Now()
	}
}

func (d *decodedUsers) put(u *User, version walHeader, ok bool) {
	if u.ETag == "" {
		return
	}
	e := &decodedUser{user: u.clone(), version: version, versionOK: ok, readAt: time.Now()}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.m == nil || len(d.m) >= maxDecodedUsers {
		d.m = make(map[string]*decodedUser)
	}
	d.m[u.ID] = e
}

// UpdateUser reads the user, lets fn change it and writes it back under the
// ETag it read. When another writer got in first it reads again and calls fn
// again, so concurrent updates never lose a write: fn must only change the
// user it is given. An error from fn is returned as is and nothing is written.
// This is the one way to change a user; it keeps the email index in step.
func (s *Store) UpdateUser(ctx context.Context, id string, fn func(*User) error) (*User, error) {
	var updated *User
	err := retryStale(ctx, func() error {
		u, err := s.GetUser(ctx, id)
		if err != nil {
			return err
		}
		etag, oldHash, createdAt := u.ETag, u.EmailHash, u.CreatedAt
		if err := fn(u); err != nil {
			return err
		}
		if u.ID != id {
			return fmt.Errorf("cosmos: update users/%s: %w: id changed", id, ErrInvalid)
		}
		u.CreatedAt, u.UpdatedAt = createdAt, time.Now().Unix()
		it, err := encode(u, id, id, 0)
		if err != nil {
			return err
		}
		if u.EmailHash != oldHash {
			if err := s.indexEmail(ctx, u.EmailHash, id); err != nil {
				return err
			}
		}
		if u.ETag, err = s.users.replace(ctx, it, etag); err != nil {
			return err
		}
		if u.EmailHash != oldHash {
			// The user is saved. Should this fail, the old index keeps an
			// entry that lookups recognise as stale, so it is not an error
			// for the caller, who would otherwise apply fn twice.
			_ = s.unindexEmail(ctx, oldHash, id)
		}
		updated = u
		return nil
	})
	return updated, err
}

// DeleteUser deletes the user record. The user's cache and usage counters
// are separate (DeleteUserCache).
func (s *Store) DeleteUser(ctx context.Context, id string) error {
	var hash string
	err := retryStale(ctx, func() error {
		u, err := s.GetUser(ctx, id)
		if err != nil {
			return err
		}
		hash = u.EmailHash
		return s.users.delete(ctx, id, id, u.ETag)
	})
	if err != nil {
		return err
	}
	return s.unindexEmail(ctx, hash, id)
}

// FindUsersByEmailHash returns the users whose EmailHash is hash, by id order
// of the index; none is not an error. It costs one point read per user.
func (s *Store) FindUsersByEmailHash(ctx context.Context, hash string) ([]*User, error) {
	if hash == "" || !isLowerHex(hash) {
		return nil, fmt.Errorf("cosmos: find users: %w: email hash is not lower-case hex", ErrInvalid)
	}
	x, _, err := s.readEmailIndex(ctx, hash)
	if err != nil {
		return nil, err
	}
	var users []*User
	for _, id := range x.UserIDs {
		u, err := s.GetUser(ctx, id)
		if isNotFound(err) {
			continue // deleted after the index was written
		}
		if err != nil {
			return nil, err
		}
		if u.EmailHash == hash {
			users = append(users, u)
		}
	}
	return users, nil
}

// readEmailIndex returns the index of hash and its ETag; a missing index is
// an empty one with no ETag.
func (s *Store) readEmailIndex(ctx context.Context, hash string) (*emailIndex, string, error) {
	id := emailIndexID(hash)
	it, err := s.users.read(ctx, id, id)
	if isNotFound(err) {
		return &emailIndex{ID: id}, "", nil
	}
	if err != nil {
		return nil, "", err
	}
	x, err := decode[emailIndex](usersSpec.name, it)
	return x, it.etag, err
}

func (s *Store) indexEmail(ctx context.Context, hash, userID string) error {
	return s.editEmailIndex(ctx, hash, func(ids []string) []string {
		if slices.Contains(ids, userID) {
			return ids
		}
		return append(ids, userID)
	})
}

func (s *Store) unindexEmail(ctx context.Context, hash, userID string) error {
	return s.editEmailIndex(ctx, hash, func(ids []string) []string {
		return slices.DeleteFunc(ids, func(id string) bool { return id == userID })
	})
}

// editEmailIndex applies edit to the index of hash under its ETag, creating
// the index when missing and deleting it when left empty.
func (s *Store) editEmailIndex(ctx context.Context, hash string, edit func([]string) []string) error {
	if hash == "" {
		return nil
	}
	return retryStale(ctx, func() error {
		x, etag, err := s.readEmailIndex(ctx, hash)
		if err != nil {
			return err
		}
		ids := edit(slices.Clone(x.UserIDs))
		switch {
		case slices.Equal(ids, x.UserIDs):
			return nil
		case len(ids) == 0:
			err := s.users.delete(ctx, x.ID, x.ID, etag)
			if isNotFound(err) {
				return nil
			}
			return err
		}
		x.UserIDs = ids
		it, err := encode(x, x.ID, x.ID, 0)
		if err != nil {
			return err
		}
		if etag == "" {
			_, err = s.users.create(ctx, it) // ErrConflict: created meanwhile, so retried
		} else if _, err = s.users.replace(ctx, it, etag); isNotFound(err) {
			err = fmt.Errorf("%w: index deleted meanwhile", ErrPreconditionFailed) // retried
		}
		return err
	})
}
