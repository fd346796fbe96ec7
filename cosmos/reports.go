package cosmos

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
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
	// State is where the operators are with the report ("" is received); StateNote
	// their word to the reporter. Set by SetBugReportState (flowstudio reports state).
	State     string `json:"state,omitempty"`
	StateNote string `json:"stateNote,omitempty"`
	// UpdatedAt is when the state last changed or evidence was appended (unix seconds).
	UpdatedAt int64 `json:"updatedAt,omitempty"`
	// Appended is the evidence the reporter added later (AppendBugReport), oldest first.
	Appended []BugReportAppendix `json:"appended,omitempty"`
}

// BugReportAppendix is evidence appended to a report.
type BugReportAppendix struct {
	At   int64  `json:"at"` // unix seconds
	Text string `json:"text"`
}

// Size is the report's text as its reporter wrote it: title, description,
// evidence and everything appended. The cap on a report applies to it.
func (r *BugReport) Size() int {
	n := len(r.Title) + len(r.Description) + len(r.Evidence)
	for _, a := range r.Appended {
		n += len(a.Text)
	}
	return n
}

// Bug report states: what the operators set, in the order a report goes.
const (
	BugReportReceived     = "received"
	BugReportAcknowledged = "acknowledged"
	BugReportFixed        = "fixed"
	BugReportWontFix      = "wontfix"
	BugReportClosed       = "closed"
)

// BugReportStates are the states SetBugReportState accepts.
var BugReportStates = []string{BugReportReceived, BugReportAcknowledged, BugReportFixed, BugReportWontFix, BugReportClosed}

// StateOrReceived is State, or "received" for a report no operator has touched.
func (r *BugReport) StateOrReceived() string {
	if r.State == "" {
		return BugReportReceived
	}
	return r.State
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
	nr.State, nr.StateNote, nr.UpdatedAt, nr.Appended = "", "", 0, nil
	body, err := json.Marshal(&nr)
	if err != nil {
		return nil, fmt.Errorf("cosmos: add bug report: %w: %v", ErrInvalid, err)
	}
	if err := s.countBugReport(ctx, userID, now, perDay); err != nil {
		return nil, err
	}
	// The reporter's index entry first: a report is theirs (status, append) only
	// through it, and an entry whose report failed to land is skipped when read.
	_, err = s.CreateCacheItem(ctx, &CacheItem{UserID: bugReporterPartition(userID), Kind: KindBugReportRef, Key: nr.ID,
		Body: json.RawMessage(`{}`), TTL: BugReportTTL})
	if err == nil {
		_, err = s.CreateCacheItem(ctx, &CacheItem{UserID: bugReportPartition(now), Kind: KindBugReport, Key: nr.ID,
			Body: body, TTL: BugReportTTL})
		if err != nil {
			_ = s.DeleteCacheItem(context.WithoutCancel(ctx), bugReporterPartition(userID), KindBugReportRef, nr.ID)
		}
	}
	if err != nil {
		// A write that timed out may still have landed; then the user gets
		// one report more today, which is the safe side for an error.
		s.uncountBugReport(ctx, userID, now)
		return nil, err
	}
	return &nr, nil
}

// KindBugReportRef is a reporter's index entry for one of their reports (key: the
// report id, empty body), in the partition bugReporterPartition(user id). Reports
// name their reporter by email hash only; these entries are what lets a user see
// and extend their own reports and no one else's.
const KindBugReportRef = "bugReportRef"

// bugReporterPartitionPrefix starts a reporter's index partition. It is not a
// day partition (bugReportDay refuses it) and cannot clash with a user id.
const bugReporterPartitionPrefix = "_bugreporter-"

func bugReporterPartition(userID string) string { return bugReporterPartitionPrefix + userID }

// bugReportIDRE is the shape bugReportID makes.
var bugReportIDRE = regexp.MustCompile(`^[0-9]{19}-[0-9a-f]{8}$`)

// ValidBugReportID reports whether id has the shape of a report id: ids come
// from callers, and one decides the partition read.
func ValidBugReportID(id string) bool { return bugReportIDRE.MatchString(id) }

// bugReportFiledAt is the time encoded in a report id.
func bugReportFiledAt(id string) (time.Time, bool) {
	if !ValidBugReportID(id) {
		return time.Time{}, false
	}
	n, err := strconv.ParseInt(id[:19], 10, 64)
	if err != nil || n < 0 {
		return time.Time{}, false
	}
	return time.Unix(0, math.MaxInt64-n).UTC(), true
}

// GetBugReport reads one report by id (ErrNotFound when there is none).
func (s *Store) GetBugReport(ctx context.Context, id string) (*BugReport, error) {
	r, _, err := s.getBugReport(ctx, id)
	return r, err
}

func (s *Store) getBugReport(ctx context.Context, id string) (*BugReport, *CacheItem, error) {
	at, ok := bugReportFiledAt(id)
	if !ok {
		return nil, nil, fmt.Errorf("cosmos: bug report: %w: malformed report id", ErrInvalid)
	}
	it, err := s.GetCacheItem(ctx, bugReportPartition(at), KindBugReport, id)
	if err != nil {
		return nil, nil, err
	}
	var r BugReport
	if err := json.Unmarshal(it.Body, &r); err != nil || r.ID != id {
		if err == nil {
			err = errors.New("report id does not match its key")
		}
		return nil, nil, &CorruptRecordError{Container: cacheSpec.name, ID: it.ID, Err: err}
	}
	return &r, it, nil
}

// MaxMyBugReports bounds how many reports ListMyBugReports returns.
const MaxMyBugReports = 50

// ListMyBugReports returns the user's own reports, newest first, at most limit
// (1..MaxMyBugReports): the user's index entries, then each report read by id.
// An entry whose report is gone (expired, or never landed) is skipped.
func (s *Store) ListMyBugReports(ctx context.Context, userID string, limit int) ([]*BugReport, error) {
	if userID == "" || limit < 1 || limit > MaxMyBugReports {
		return nil, fmt.Errorf("cosmos: list my bug reports: %w: user and a limit of 1..%d are required", ErrInvalid, MaxMyBugReports)
	}
	out := []*BugReport{}
	token := ""
	for len(out) < limit {
		refs, next, err := s.ListCacheItems(ctx, bugReporterPartition(userID), CacheFilter{Kind: KindBugReportRef},
			PageRequest{Size: limit - len(out), Token: token})
		if err != nil {
			return nil, err
		}
		for _, ref := range refs {
			r, err := s.GetBugReport(ctx, ref.Key)
			if errors.Is(err, ErrNotFound) || errors.Is(err, ErrInvalid) {
				continue
			}
			if err != nil {
				return nil, err
			}
			out = append(out, r)
		}
		if token = next; next == "" {
			break
		}
	}
	return out, nil
}

// ReportTooLargeError refuses evidence that would take a report past its cap.
type ReportTooLargeError struct {
	Size, Adding, Max int
}

func (e *ReportTooLargeError) Error() string {
	return fmt.Sprintf("cosmos: append to bug report: %d bytes plus %d would pass the %d-byte cap", e.Size, e.Adding, e.Max)
}

// maxAppendRetries bounds the ETag-checked rewrites of one append.
const maxAppendRetries = 8

// AppendBugReport adds evidence to one of the user's own reports: ErrNotFound when
// the user has no report with this id (another user's report is not theirs, and
// is not told apart from none). The append counts toward the user's reports of the
// day like a new report (*ReportLimitError past perDay), and the report's text
// with it stays within maxBytes (*ReportTooLargeError). The rewrite is
// ETag-checked, so concurrent appends all land; the report keeps its expiry.
func (s *Store) AppendBugReport(ctx context.Context, userID string, perDay int64, id, text string, maxBytes int) (*BugReport, error) {
	return s.appendBugReport(ctx, time.Now(), userID, perDay, id, text, maxBytes)
}

func (s *Store) appendBugReport(ctx context.Context, now time.Time, userID string, perDay int64, id, text string, maxBytes int) (*BugReport, error) {
	switch {
	case userID == "" || text == "" || perDay < 1 || maxBytes < 1:
		return nil, fmt.Errorf("cosmos: append to bug report: %w: user, text and positive caps are required", ErrInvalid)
	case !ValidBugReportID(id):
		return nil, fmt.Errorf("cosmos: append to bug report: %w: malformed report id", ErrInvalid)
	}
	if _, err := s.GetCacheItem(ctx, bugReporterPartition(userID), KindBugReportRef, id); err != nil {
		return nil, err
	}
	r, _, err := s.getBugReport(ctx, id)
	if err != nil {
		return nil, err
	}
	if r.Size()+len(text) > maxBytes {
		return nil, &ReportTooLargeError{Size: r.Size(), Adding: len(text), Max: maxBytes}
	}
	if err := s.countBugReport(ctx, userID, now, perDay); err != nil {
		return nil, err
	}
	for range maxAppendRetries {
		var it *CacheItem
		r, it, err = s.getBugReport(ctx, id)
		if err != nil {
			break
		}
		if r.Size()+len(text) > maxBytes {
			err = &ReportTooLargeError{Size: r.Size(), Adding: len(text), Max: maxBytes}
			break
		}
		r.Appended = append(r.Appended, BugReportAppendix{At: now.Unix(), Text: text})
		r.UpdatedAt = now.Unix()
		it.Body, err = json.Marshal(r)
		if err != nil {
			break
		}
		it.TTL = remainingReportTTL(r, now)
		if _, err = s.ReplaceCacheItem(ctx, it); !errors.Is(err, ErrPreconditionFailed) {
			break
		}
	}
	if err != nil {
		s.uncountBugReport(ctx, userID, now)
		return nil, err
	}
	return r, nil
}

// remainingReportTTL keeps a rewritten report's expiry where filing set it: a
// Cosmos DB ttl counts from the last write, and the day partitions are read back
// only BugReportTTL (see nextBugReportPartition).
func remainingReportTTL(r *BugReport, now time.Time) int {
	left := BugReportTTL - int(now.Unix()-r.CreatedAt)
	return max(left, 60)
}

// SetBugReportState records where the operators are with a report and an
// optional note to its reporter (the reporter sees both with report_bug status).
func (s *Store) SetBugReportState(ctx context.Context, id, state, note string) (*BugReport, error) {
	if !slices.Contains(BugReportStates, state) {
		return nil, fmt.Errorf("cosmos: set bug report state: %w: state must be one of %s", ErrInvalid, strings.Join(BugReportStates, ", "))
	}
	if len(note) > 1000 {
		return nil, fmt.Errorf("cosmos: set bug report state: %w: the note is over 1000 bytes", ErrInvalid)
	}
	now := time.Now()
	for range maxAppendRetries {
		r, it, err := s.getBugReport(ctx, id)
		if err != nil {
			return nil, err
		}
		r.State, r.StateNote, r.UpdatedAt = state, note, now.Unix()
		if it.Body, err = json.Marshal(r); err != nil {
			return nil, err
		}
		it.TTL = remainingReportTTL(r, now)
		if _, err = s.ReplaceCacheItem(ctx, it); !errors.Is(err, ErrPreconditionFailed) {
			return r, err
		}
	}
	return nil, fmt.Errorf("cosmos: set bug report state: %w", ErrPreconditionFailed)
}

// countBugReport counts a filing or an append against the user's daily cap: over
// it, the count is taken back and the error is a *ReportLimitError.
func (s *Store) countBugReport(ctx context.Context, userID string, now time.Time, perDay int64) error {
	n, err := s.IncrementUsage(ctx, userID, ReportsPerDay, now, 1)
	if err != nil {
		return err
	}
	if n > perDay {
		s.uncountBugReport(ctx, userID, now)
		return &ReportLimitError{Limit: perDay, ResetsAt: now.UTC().Truncate(24 * time.Hour).Add(24 * time.Hour)}
	}
	return nil
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
