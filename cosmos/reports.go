package cosmos

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
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

// AddBugReport stores a report as a KindBugReport cache item in
// SystemPartition, so that an operator lists every report with one
// single-partition query (`flowstudio reports list`). It sets ID and
// CreatedAt and keeps the report BugReportTTL seconds.
func (s *Store) AddBugReport(ctx context.Context, r *BugReport) (*BugReport, error) {
	if r.Title == "" || r.Description == "" {
		return nil, fmt.Errorf("cosmos: add bug report: %w: title and description are required", ErrInvalid)
	}
	if r.UserHash != "" && !isLowerHex(r.UserHash) {
		return nil, fmt.Errorf("cosmos: add bug report: %w: user hash is not lower-case hex", ErrInvalid)
	}
	nr := *r
	now := time.Now()
	nr.ID = bugReportID(now)
	nr.CreatedAt = now.Unix()
	body, err := json.Marshal(&nr)
	if err != nil {
		return nil, fmt.Errorf("cosmos: add bug report: %w: %v", ErrInvalid, err)
	}
	_, err = s.CreateCacheItem(ctx, &CacheItem{UserID: SystemPartition, Kind: KindBugReport, Key: nr.ID,
		Body: body, TTL: BugReportTTL})
	if err != nil {
		return nil, err
	}
	return &nr, nil
}

// ListBugReports returns one page of the stored reports, newest first, and
// the token of the next page ("" after the last).
func (s *Store) ListBugReports(ctx context.Context, p PageRequest) ([]*BugReport, string, error) {
	items, next, err := s.ListCacheItems(ctx, SystemPartition, CacheFilter{Kind: KindBugReport}, p)
	if err != nil {
		return nil, "", err
	}
	out := make([]*BugReport, 0, len(items))
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
	return out, next, nil
}

// bugReportID sorts newest first (the cache lists in id order): the
// nanoseconds left until the end of int64 time, zero-padded, then a random
// suffix so that two reports in the same nanosecond do not collide.
func bugReportID(at time.Time) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%019d-%s", math.MaxInt64-at.UnixNano(), hex.EncodeToString(b))
}
