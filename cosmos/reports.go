package cosmos

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

// BugReportTTL is how long a bug report is kept: as long as the logs (90 days).
// Reports may quote run outputs the user pasted, so they do not live forever.
const BugReportTTL = 90 * 24 * 3600

// BugReport is one report_bug submission. It names its reporter only by the
// email hash (the same value as the metering log's user field).
type BugReport struct {
	ID          string `json:"id"` // set by AddBugReport; ids sort newest first
	UserHash    string `json:"user"`
	Tier        string `json:"tier,omitempty"`
	Tool        string `json:"tool,omitempty"` // the tool the report is about, if any
	Title       string `json:"title"`
	Description string `json:"description"`
	Evidence    string `json:"evidence,omitempty"`
	RequestID   string `json:"requestId,omitempty"`
	CreatedAt   int64  `json:"createdAt"` // unix seconds, set by AddBugReport
}

// ReportLimitError is AddBugReport's refusal: the user has filed Limit reports
// in the UTC day that ends at ResetsAt.
type ReportLimitError struct {
	Limit    int64
	ResetsAt time.Time // the next UTC midnight
}

func (e *ReportLimitError) Error() string {
	return fmt.Sprintf("cosmos: add bug report: %d reports today, the daily limit; it resets at %s",
		e.Limit, e.ResetsAt.UTC().Format(time.RFC3339))
}

// AddBugReport stores a report from the user userID (who is not stored: the
// report names its reporter only by r.UserHash), unless that user has filed
// perDay reports this UTC day already; then it answers *ReportLimitError.
//
// The count is the user's ReportsPerDay usage counter, incremented before the
// report is written and checked after: the increment is atomic on the store,
// so every replica agrees and concurrent reports never pass the cap. A report
// refused, or one that fails to store, takes its increment back.
//
// The report is a KindBugReport cache item in its UTC day's partition
// (bugReportPartition), so no partition grows without bound: a day holds at
// most perDay reports of each user. It sets ID and CreatedAt and keeps the
// report BugReportTTL seconds.
func (s *Store) AddBugReport(ctx context.Context, userID string, perDay int64, r *BugReport) (*BugReport, error) {
	return s.addBugReport(ctx, time.Now(), userID, perDay, r)
}

// addBugReport is AddBugReport at a given time, which tests choose.
func (s *Store) addBugReport(ctx context.Context, now time.Time, userID string, perDay int64, r *BugReport) (*BugReport, error) {
	switch {
	case r.Title == "" || r.Description == "":
		return nil, fmt.Errorf("cosmos: add bug report: %w: title and description are required", ErrInvalid)
	case r.UserHash != "" && !isLowerHex(r.UserHash):
		return nil, fmt.Errorf("cosmos: add bug report: %w: user hash is not lower-case hex", ErrInvalid)
	case userID == "":
		return nil, fmt.Errorf("cosmos: add bug report: %w: no user to count the report against", ErrInvalid)
	case perDay < 1:
		return nil, fmt.Errorf("cosmos: add bug report: %w: daily limit %d is not positive", ErrInvalid, perDay)
	}
	nr := *r
	nr.ID = bugReportID(now)
	nr.CreatedAt = now.Unix()
	body, err := json.Marshal(&nr)
	if err != nil {
		return nil, fmt.Errorf("cosmos: add bug report: %w: %v", ErrInvalid, err)
	}
	n, err := s.IncrementUsage(ctx, userID, ReportsPerDay, now, 1)
	if err != nil {
		return nil, err
	}
	if n > perDay {
		s.uncountBugReport(ctx, userID, now)
		return nil, &ReportLimitError{Limit: perDay, ResetsAt: now.UTC().Truncate(24 * time.Hour).Add(24 * time.Hour)}
	}
	_, err = s.CreateCacheItem(ctx, &CacheItem{UserID: bugReportPartition(now), Kind: KindBugReport, Key: nr.ID,
		Body: body, TTL: BugReportTTL})
	if err != nil {
		// A write that timed out may still have landed; then the user gets
		// one report more today, which is the safe side for an error.
		s.uncountBugReport(ctx, userID, now)
		return nil, err
	}
	return &nr, nil
}

// uncountBugReport takes back the increment of a report that was not stored,
// in the same day window (now is the time it was counted at), even when the
// caller has gone. If that fails too, the user loses one report for the day.
func (s *Store) uncountBugReport(ctx context.Context, userID string, now time.Time) {
	_, _ = s.IncrementUsage(context.WithoutCancel(ctx), userID, ReportsPerDay, now, -1)
}

// ListBugReports returns one page of the stored reports, newest first, and
// the token of the next page ("" after the last). It walks the day partitions
// from today back over BugReportTTL, then the legacy SystemPartition. A page
// may hold fewer than p.Size reports (even none) before the last.
func (s *Store) ListBugReports(ctx context.Context, p PageRequest) ([]*BugReport, string, error) {
	return s.listBugReports(ctx, time.Now(), p)
}

// listBugReports is ListBugReports on the day of now, which tests choose.
//
// The token names the partition to go on with and that partition's own
// continuation token: "<partition>|<token>". Reports filed before the day
// partitions existed are in SystemPartition; they are older than every report
// in a day partition (bar the few that replicas still running the old code
// file during a rolling upgrade), so listing them last keeps the order newest
// first. They expire BugReportTTL after the upgrade, and with them the need to
// read SystemPartition here.
func (s *Store) listBugReports(ctx context.Context, now time.Time, p PageRequest) ([]*BugReport, string, error) {
	size := p.size()
	if size < 1 || size > maxPageSize {
		return nil, "", fmt.Errorf("cosmos: list bug reports: %w: page size %d is not 1..%d", ErrInvalid, size, maxPageSize)
	}
	part, inner := bugReportPartition(now), ""
	if p.Token != "" {
		var ok bool
		part, inner, ok = strings.Cut(p.Token, "|")
		if _, isDay := bugReportDay(part); !ok || (!isDay && part != SystemPartition) {
			return nil, "", fmt.Errorf("cosmos: list bug reports: %w: bad continuation token", ErrInvalid)
		}
	}
	out := make([]*BugReport, 0, min(size, defaultPageSize))
	for part != "" && len(out) < size {
		items, next, err := s.ListCacheItems(ctx, part, CacheFilter{Kind: KindBugReport}, PageRequest{Size: size - len(out), Token: inner})
		if err != nil {
			return nil, "", err
		}
		for _, it := range items {
			var r BugReport
			if err := json.Unmarshal(it.Body, &r); err != nil || r.ID != it.Key {
				if err == nil {
					err = errors.New("report id does not match its key")
				}
				return nil, "", &CorruptRecordError{Container: cacheSpec.name, ID: it.ID, Err: err}
			}
			out = append(out, &r)
		}
		if inner = next; next == "" {
			part = nextBugReportPartition(part, now)
		}
	}
	if part == "" {
		return out, "", nil
	}
	return out, part + "|" + inner, nil
}

// bugReportPartitionPrefix starts the cache partition of a UTC day's reports.
// Like SystemPartition it cannot clash with a user id, which always contains
// a dot.
const bugReportPartitionPrefix = "_bugreports-"

// bugReportPartition is the cache partition of the reports filed on the UTC
// day of at, e.g. "_bugreports-20261201".
func bugReportPartition(at time.Time) string {
	return bugReportPartitionPrefix + at.UTC().Format("20060102")
}

// bugReportDay returns the UTC day whose reports partition part is.
func bugReportDay(part string) (time.Time, bool) {
	day, ok := strings.CutPrefix(part, bugReportPartitionPrefix)
	if !ok {
		return time.Time{}, false
	}
	t, err := time.Parse("20060102", day)
	return t, err == nil && bugReportPartition(t) == part
}

// nextBugReportPartition is the partition listed after part: the day before,
// down to the oldest day a report filed on can still be kept (BugReportTTL
// before now), then SystemPartition, then none ("").
func nextBugReportPartition(part string, now time.Time) string {
	day, ok := bugReportDay(part)
	if !ok {
		return ""
	}
	oldest := now.UTC().Add(-BugReportTTL * time.Second).Truncate(24 * time.Hour)
	if prev := day.Add(-24 * time.Hour); !prev.Before(oldest) {
		return bugReportPartition(prev)
	}
	return SystemPartition
}

// bugReportID sorts newest first (the cache lists in id order): the
// nanoseconds left until the end of int64 time, zero-padded, then a random
// suffix so that two reports in the same nanosecond do not collide.
func bugReportID(at time.Time) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%019d-%s", math.MaxInt64-at.UnixNano(), hex.EncodeToString(b))
}
