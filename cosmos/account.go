package cosmos

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/azcosmos"
)

// What an account holds besides its user record, for the dashboard's "what is
// kept" view and for deleting an account (server/account).

// ListUsageCounters returns every live usage counter of the user, in id order.
func (s *Store) ListUsageCounters(ctx context.Context, userID string) ([]*UsageCounter, error) {
	var out []*UsageCounter
	err := s.eachUsageCounter(ctx, userID, nil, func(c *UsageCounter) { out = append(out, c) })
	if err != nil {
		return nil, err
	}
	return out, nil
}

// DeleteUserUsage deletes every usage counter of the user.
func (s *Store) DeleteUserUsage(ctx context.Context, userID string) error {
	if userID == "" || userID == SystemPartition {
		return fmt.Errorf("cosmos: delete usage: %w: not a user partition", ErrInvalid)
	}
	return s.usage.deletePartition(ctx, userID)
}

// StoredBugReport is a bug report with where it is stored.
type StoredBugReport struct {
	Partition string
	Report    *BugReport
	Size      int // bytes of the stored body
}

// BugReportsBy returns the stored reports filed by the user whose email hash is
// userHash (reports name their reporter only so), newest first. It walks every
// day partition a report can still live in, then the legacy SystemPartition: one
// query per partition, so it is for the dashboard's data view and account
// deletion, never a tool call.
func (s *Store) BugReportsBy(ctx context.Context, userHash string) ([]StoredBugReport, error) {
	return s.bugReportsBy(ctx, time.Now(), userHash)
}

func (s *Store) bugReportsBy(ctx context.Context, now time.Time, userHash string) ([]StoredBugReport, error) {
	if userHash == "" || !isLowerHex(userHash) {
		return nil, fmt.Errorf("cosmos: bug reports by user: %w: user hash is not lower-case hex", ErrInvalid)
	}
	var out []StoredBugReport
	for part := bugReportPartition(now); part != ""; part = nextBugReportPartition(part, now) {
		err := s.eachCacheItem(ctx, part, CacheFilter{Kind: KindBugReport}, func(it *CacheItem) error {
			var r BugReport
			if err := json.Unmarshal(it.Body, &r); err != nil {
				return &CorruptRecordError{Container: cacheSpec.name, ID: it.ID, Err: err}
			}
			if r.UserHash == userHash {
				out = append(out, StoredBugReport{Partition: part, Report: &r, Size: len(it.Body)})
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// DeleteBugReportsBy deletes every stored report filed by the user userID, whose
// email hash is userHash, and the user's index of their reports, and returns how
// many reports it deleted. Reports are found by the hash (they name their
// reporter only so), which also finds those filed before the index existed.
func (s *Store) DeleteBugReportsBy(ctx context.Context, userID, userHash string) (int, error) {
	if userID == "" {
		return 0, fmt.Errorf("cosmos: delete bug reports: %w: no user", ErrInvalid)
	}
	var reports []StoredBugReport
	if userHash != "" {
		var err error
		if reports, err = s.BugReportsBy(ctx, userHash); err != nil {
			return 0, err
		}
	}
	n := 0
	for _, r := range reports {
		if err := s.DeleteCacheItem(ctx, r.Partition, KindBugReport, r.Report.ID); err != nil && !isNotFound(err) {
			return n, err
		}
		n++
	}
	return n, s.cache.deletePartition(ctx, bugReporterPartition(userID))
}

// Scan calls fn with every live item of every container, across partitions. It
// reads everything, so it is for audits and tests (a scan after an account is
// deleted must find nothing of it), never a request. fn's error stops the scan.
func (s *Store) Scan(ctx context.Context, fn func(container, id string, doc []byte) error) error {
	switch b := s.b.(type) {
	case *embedded:
		return b.scan(ctx, fn)
	case *cosmosDB:
		for _, spec := range allSpecs {
			if err := b.scan(ctx, spec.name, fn); err != nil {
				return fmt.Errorf("cosmos: scan %s: %w", spec.name, err)
			}
		}
		return nil
	}
	return fmt.Errorf("cosmos: scan: %w: backend cannot scan", ErrInvalid)
}

func (e *embedded) scan(ctx context.Context, fn func(container, id string, doc []byte) error) error {
	rows, err := e.r.QueryContext(ctx, `SELECT container, id, doc FROM items WHERE `+live+` ORDER BY container, pk, id`,
		sql.Named("now", nowMS()))
	if err != nil {
		return sqliteError(ctx, err)
	}
	defer rows.Close()
	for rows.Next() {
		var container, id, doc string
		if err := rows.Scan(&container, &id, &doc); err != nil {
			return sqliteError(ctx, err)
		}
		if err := fn(container, id, []byte(doc)); err != nil {
			return err
		}
	}
	return sqliteError(ctx, rows.Err())
}

func (d *cosmosDB) scan(ctx context.Context, container string, fn func(container, id string, doc []byte) error) error {
	cl := d.client()
	cc, err := cl.NewContainer(d.database, container)
	if err != nil {
		return err
	}
	// Constant query text, no parameters; across partitions (an empty key).
	pager := cc.NewQueryItemsPager("SELECT * FROM c", azcosmos.NewPartitionKey(), &azcosmos.QueryOptions{PageSizeHint: maxPageSize})
	for pager.More() {
		page, err := pager.NextPage(ctx)
		d.observe(cl, err)
		if err != nil {
			return cosmosError(ctx, err)
		}
		for _, doc := range page.Items {
			var v struct {
				ID string `json:"id"`
			}
			if json.Unmarshal(doc, &v) != nil {
				return errors.New("an item is not a JSON object")
			}
			if err := fn(container, v.ID, doc); err != nil {
				return err
			}
		}
	}
	return nil
}
