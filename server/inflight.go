package server

import (
	"context"
	"sync"
	"time"
)

// userSlots bounds the MCP requests one user has in flight on this replica: up to
// limit run at once, up to 4×limit more wait (at most maxWait) for a slot, and past
// that a request is refused at once. Waiting requests have not read their bodies
// yet, so they hold little memory.
type userSlots struct {
	limit   int
	maxWait time.Duration

	mu    sync.Mutex
	users map[string]*slots
}

type slots struct {
	sem     chan struct{}
	waiting int
	refs    int // running + waiting; the entry is dropped at zero
}

func newUserSlots(limit int, maxWait time.Duration) *userSlots {
	return &userSlots{limit: limit, maxWait: maxWait, users: map[string]*slots{}}
}

// acquire takes a slot for user, waiting if need be; ok is false when the user
// has too many requests waiting already, or none freed in time. release must be
// called once after a successful acquire.
func (u *userSlots) acquire(ctx context.Context, user string) (release func(), ok bool) {
	u.mu.Lock()
	s := u.users[user]
	if s == nil {
		s = &slots{sem: make(chan struct{}, u.limit)}
		u.users[user] = s
	}
	select {
	case s.sem <- struct{}{}: // a free slot: no wait
		s.refs++
		u.mu.Unlock()
		return func() { u.release(user, s) }, true
	default:
	}
	if s.waiting >= 4*u.limit {
		u.mu.Unlock()
		return nil, false
	}
	s.waiting++
	s.refs++
	u.mu.Unlock()

	t := time.NewTimer(u.maxWait)
	defer t.Stop()
	select {
	case s.sem <- struct{}{}:
		u.mu.Lock()
		s.waiting--
		u.mu.Unlock()
		return func() { u.release(user, s) }, true
	case <-t.C:
	case <-ctx.Done():
	}
	u.mu.Lock()
	s.waiting--
	u.drop(user, s)
	u.mu.Unlock()
	return nil, false
}

func (u *userSlots) release(user string, s *slots) {
	<-s.sem
	u.mu.Lock()
	u.drop(user, s)
	u.mu.Unlock()
}

// drop forgets a user with nothing running or waiting. The caller holds u.mu.
func (u *userSlots) drop(user string, s *slots) {
	s.refs--
	if s.refs == 0 && u.users[user] == s {
		delete(u.users, user)
	}
}
