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
	toolCounterTTL    = 2 * 24 * 3600 // today's chart only
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

// IncrementToolUsage atomically adds by to the user's count of calls of tool in
// the UTC day holding at (a ToolPerDay counter) and returns the new count.
func (s *Store) IncrementToolUsage(ctx context.Context, userID, tool string, at time.Time, by int64) (int64, error) {
	if !validToolName(tool) {
		return 0, fmt.Errorf("cosmos: usage: %w: tool name %q", ErrInvalid, tool)
	}
	day := at.UTC().Truncate(24 * time.Hour)
	seed := &UsageCounter{ID: "tool-" + day.Format("20060102") + "-" + tool, UserID: userID, Period: ToolPerDay,
		Start: day.Unix(), Count: by, Tool: tool, TTL: toolCounterTTL}
	it, err := encode(seed, userID, seed.ID, seed.TTL)
	if err != nil {
		return 0, err
	}
	return s.usage.increment(ctx, it, "count", by)
}

// ToolUsage returns the user's calls per tool in the UTC day holding at.
func (s *Store) ToolUsage(ctx context.Context, userID string, at time.Time) (map[string]int64, error) {
	day := at.UTC().Truncate(24 * time.Hour).Unix()
	out := map[string]int64{}
	err := s.eachUsageCounter(ctx, userID, []filter{{field: "period", op: "=", value: string(ToolPerDay)}, {field: "start", op: "=", value: day}},
		func(c *UsageCounter) { out[c.Tool] += c.Count })
	if err != nil {
		return nil, err
	}
	return out, nil
}

// eachUsageCounter calls fn for every live usage counter of the user that filters
// select, page by page.
func (s *Store) eachUsageCounter(ctx context.Context, userID string, filters []filter, fn func(*UsageCounter)) error {
	token := ""
	for {
		items, next, err := s.usage.query(ctx, userID, query{pageSize: maxPageSize, token: token, filters: filters})
		if err != nil {
			return err
		}
		for _, it := range items {
			c, err := decode[UsageCounter](usageSpec.name, it)
			if err != nil {
				return err
			}
			fn(c)
		}
		if next == "" {
			return nil
		}
		token = next
	}
}

// validToolName: tool names are snake_case identifiers (the catalog checks its own).
func validToolName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_') {
			return false
		}
	}
	return true
}
