package cosmos

import (
	"context"
	"errors"
	"fmt"
)

// StripeEventTTL is how long a processed Stripe event id is remembered.
// Stripe retries a delivery for up to three days; a month is ample.
const StripeEventTTL = 30 * 24 * 3600

// MarkStripeEvent records that the event with this id is being processed.
// It reports false when the id was recorded before (a replayed delivery).
// Recording is one create, so of two concurrent deliveries only one wins.
func (s *Store) MarkStripeEvent(ctx context.Context, eventID string) (first bool, err error) {
	_, err = s.CreateCacheItem(ctx, &CacheItem{UserID: SystemPartition, Kind: KindStripeEvent, Key: eventID, TTL: StripeEventTTL})
	switch {
	case errors.Is(err, ErrConflict):
		return false, nil
	case err != nil:
		return false, err
	}
	return true, nil
}

// UnmarkStripeEvent forgets an event id, so that Stripe's next delivery of
// the event is processed again (used when applying it failed).
func (s *Store) UnmarkStripeEvent(ctx context.Context, eventID string) error {
	err := s.DeleteCacheItem(ctx, SystemPartition, KindStripeEvent, eventID)
	if isNotFound(err) {
		return nil
	}
	return err
}

// SetUserCacheTTL gives ttl to every cache item of the user whose current
// ttl satisfies when, and returns how many items it changed. Each item is
// replaced under its ETag, so a concurrent writer (say, sync) never loses a
// write: a stale item is read again and tested again. The ids are collected
// first and the items changed afterwards, so no continuation token is held
// across writes.
func (s *Store) SetUserCacheTTL(ctx context.Context, userID string, ttl int, when func(current int) bool) (int, error) {
	if userID == SystemPartition {
		return 0, fmt.Errorf("cosmos: set cache ttl: %w: not a user partition", ErrInvalid)
	}
	type ref struct{ kind, key string }
	var refs []ref
	err := s.eachCacheItem(ctx, userID, CacheFilter{}, func(it *CacheItem) error {
		if when(it.TTL) {
			refs = append(refs, ref{it.Kind, it.Key})
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	changed := 0
	for _, r := range refs {
		err := retryStale(ctx, func() error {
			it, err := s.GetCacheItem(ctx, userID, r.kind, r.key)
			if err != nil {
				return err
			}
			if !when(it.TTL) {
				return nil
			}
			it.TTL = ttl
			if _, err := s.ReplaceCacheItem(ctx, it); err != nil {
				return err
			}
			changed++
			return nil
		})
		if err != nil && !isNotFound(err) { // deleted meanwhile: nothing to expire
			return changed, err
		}
	}
	return changed, nil
}
