package cosmos

import (
	"context"
	"fmt"
	"time"
)

// How long counters live after their last increment.
const (
	dayCounterTTL     = 35 * 24 * 3600 // a month of history for the dashboard
	minuteCounterTTL  = 120
	reportsCounterTTL = 2 * 24 * 3600 // outlives its day, then goes
)

// IncrementUsage atomically adds by to the user's counter for the period
// window holding at, creating it when needed, and returns the new count.
func (s *Store) IncrementUsage(ctx context.Context, userID string, p Period, at time.Time, by int64) (int64, error) {
	seed, err := newCounter(userID, p, at)
	if err != nil {
		return 0, err
	}
	seed.Count = by
	it, err := encode(seed, userID, seed.ID, seed.TTL)
	if err != nil {
		return 0, err
	}
	return s.usage.increment(ctx, it, "count", by)
}

// Usage returns the user's count for the period window holding at (0 when
// nothing was counted).
func (s *Store) Usage(ctx context.Context, userID string, p Period, at time.Time) (int64, error) {
	c, err := newCounter(userID, p, at)
	if err != nil {
		return 0, err
	}
	it, err := s.usage.read(ctx, userID, c.ID)
	if isNotFound(err) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if c, err = decode[UsageCounter](usageSpec.name, it); err != nil {
		return 0, err
	}
	return c.Count, nil
}

// newCounter returns an empty counter for the window of p that holds at.
func newCounter(userID string, p Period, at time.Time) (*UsageCounter, error) {
	at = at.UTC()
	c := &UsageCounter{UserID: userID, Period: p}
	switch p {
	case PerDay:
		at = at.Truncate(24 * time.Hour)
		c.ID, c.TTL = "day-"+at.Format("20060102"), dayCounterTTL
	case PerMinute:
		at = at.Truncate(time.Minute)
		c.ID, c.TTL = "minute-"+at.Format("200601021504"), minuteCounterTTL
	case ReportsPerDay:
		at = at.Truncate(24 * time.Hour)
		c.ID, c.TTL = "reports-"+at.Format("20060102"), reportsCounterTTL
	default:
		return nil, fmt.Errorf("cosmos: usage: %w: unknown period %q", ErrInvalid, p)
	}
	c.Start = at.Unix()
	return c, nil
}
