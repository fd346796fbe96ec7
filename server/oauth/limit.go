package oauth

import (
	"sync"
	"time"
)

// RegistrationLimit bounds Dynamic Client Registration on one replica: registration
// is open to anyone and each one is a stored item, so a flood must not fill the store.
// A fixed window per minute is enough: real clients register once per installation.
type RegistrationLimit struct {
	PerMinute int
	now       func() time.Time

	mu     sync.Mutex
	window int64 // unix minute
	count  int
}

// DefaultRegistrationsPerMinute is the per-replica cap unless set otherwise.
const DefaultRegistrationsPerMinute = 60

// Allow reports whether one more registration fits in this minute.
func (l *RegistrationLimit) Allow() bool {
	now := time.Now
	if l.now != nil {
		now = l.now
	}
	minute := now().Unix() / 60
	l.mu.Lock()
	defer l.mu.Unlock()
	if minute != l.window {
		l.window, l.count = minute, 0
	}
	if l.count >= l.PerMinute {
		return false
	}
	l.count++
	return true
}
