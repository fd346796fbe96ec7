package metering

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/flowstudio/mcp/cosmos"
)

// Quota is a plan's allowance of counted tool calls.
type Quota struct {
	PerDay    int64 // per UTC day
	PerMinute int64 // per UTC minute
}

// Quotas holds each plan's quota.
type Quotas struct {
	Free, Pro, Team Quota
}

// DefaultQuotas are QUOTA_FREE, QUOTA_PRO and QUOTA_TEAM when unset.
var DefaultQuotas = Quotas{
	Free: Quota{PerDay: 200, PerMinute: 20},
	Pro:  Quota{PerDay: 5000, PerMinute: 120},
	Team: Quota{PerDay: 50000, PerMinute: 600},
}

// For returns the quota of a plan; an unknown plan gets Free's.
func (q Quotas) For(t cosmos.Tier) Quota {
	switch t {
	case cosmos.TierPro:
		return q.Pro
	case cosmos.TierTeam:
		return q.Team
	}
	return q.Free
}

// maxQuota keeps limits within what a counter and a message can hold sanely.
const maxQuota = 1_000_000_000

// ParseQuota reads "PER_DAY/PER_MINUTE", e.g. "200/20": two positive integers,
// the per-minute one no larger than the per-day one.
func ParseQuota(s string) (Quota, error) {
	day, minute, ok := strings.Cut(strings.TrimSpace(s), "/")
	if !ok {
		return Quota{}, fmt.Errorf("%q is not PER_DAY/PER_MINUTE (e.g. 200/20)", s)
	}
	d, err1 := strconv.ParseInt(strings.TrimSpace(day), 10, 64)
	m, err2 := strconv.ParseInt(strings.TrimSpace(minute), 10, 64)
	switch {
	case err1 != nil || err2 != nil:
		return Quota{}, fmt.Errorf("%q is not PER_DAY/PER_MINUTE with whole numbers (e.g. 200/20)", s)
	case d < 1 || m < 1 || d > maxQuota || m > maxQuota:
		return Quota{}, fmt.Errorf("%q: both limits must be between 1 and %d", s, maxQuota)
	case m > d:
		return Quota{}, fmt.Errorf("%q: the per-minute limit exceeds the per-day limit", s)
	}
	return Quota{PerDay: d, PerMinute: m}, nil
}

// String is the setting's form, "PER_DAY/PER_MINUTE".
func (q Quota) String() string { return fmt.Sprintf("%d/%d", q.PerDay, q.PerMinute) }

// Usage is what the dashboard shows: counted calls today and this minute, the
// limits, and when each window starts over (UTC).
type Usage struct {
	UsedDay, LimitDay       int64
	UsedMinute, LimitMinute int64
	DayResets, MinuteResets time.Time
}

// UsageToday reads the user's counters (two point reads) for the dashboard.
// Used counts never exceed the limits shown: refused calls are not counted,
// but a count may pass its limit for the instant of one refusal.
func UsageToday(ctx context.Context, store Store, quotas Quotas, userID string, tier cosmos.Tier, now time.Time) (Usage, error) {
	q := quotas.For(tier)
	day, err := store.Usage(ctx, userID, cosmos.PerDay, now)
	if err != nil {
		return Usage{}, err
	}
	minute, err := store.Usage(ctx, userID, cosmos.PerMinute, now)
	if err != nil {
		return Usage{}, err
	}
	return Usage{
		UsedDay: clamp(day, q.PerDay), LimitDay: q.PerDay,
		UsedMinute: clamp(minute, q.PerMinute), LimitMinute: q.PerMinute,
		DayResets: dayReset(now), MinuteResets: minuteReset(now),
	}, nil
}

func clamp(n, limit int64) int64 { return max(0, min(n, limit)) }

func dayReset(now time.Time) time.Time    { return now.UTC().Truncate(24 * time.Hour).Add(24 * time.Hour) }
func minuteReset(now time.Time) time.Time { return now.UTC().Truncate(time.Minute).Add(time.Minute) }
