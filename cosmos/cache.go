package cosmos

import (
	"context"
	"time"
)

// CreateCacheItem stores a new item; ErrConflict means one with this user,
// kind and key exists (for KindStripeEvent: the event was processed).
func (s *Store) CreateCacheItem(ctx context.Context, c *CacheItem) (*CacheItem, error) {
	return s.writeCacheItem(c, func(it item) (string, error) { return s.cache.create(ctx, it) })
}

// PutCacheItem creates or overwrites an item.
func (s *Store) PutCacheItem(ctx context.Context, c *CacheItem) (*CacheItem, error) {
	return s.writeCacheItem(c, func(it item) (string, error) { return s.cache.upsert(ctx, it) })
}

// ReplaceCacheItem overwrites an item read earlier, only if nobody wrote it
// since: c.ETag is required and a stale one gives ErrPreconditionFailed.
func (s *Store) ReplaceCacheItem(ctx context.Context, c *CacheItem) (*CacheItem, error) {
	return s.writeCacheItem(c, func(it item) (string, error) { return s.cache.replace(ctx, it, c.ETag) })
}

// writeCacheItem sets the item's id and time and writes a copy with write.
func (s *Store) writeCacheItem(c *CacheItem, write func(item) (string, error)) (*CacheItem, error) {
	nc := *c
	nc.ID = CacheItemID(c.Kind, c.Key)
	nc.UpdatedAt = time.Now().Unix()
	it, err := encode(&nc, nc.UserID, nc.ID, nc.TTL)
	if err != nil {
		return nil, err
	}
	if nc.ETag, err = write(it); err != nil {
		return nil, err
	}
	return &nc, nil
}

// GetCacheItem reads one item.
func (s *Store) GetCacheItem(ctx context.Context, userID, kind, key string) (*CacheItem, error) {
	it, err := s.cache.read(ctx, userID, CacheItemID(kind, key))
	if err != nil {
		return nil, err
	}
	return decodeCacheItem(it)
}

// DeleteCacheItem deletes one item.
func (s *Store) DeleteCacheItem(ctx context.Context, userID, kind, key string) error {
	return s.cache.delete(ctx, userID, CacheItemID(kind, key), "")
}

// CacheFilter selects cache items in ListCacheItems.
type CacheFilter struct {
	Kind         string // "" for every kind
	UpdatedSince int64  // unix seconds; items written at or after it; 0 for all
}

// ListCacheItems returns one page of the user's items that match f, in id
// order, and the token for the next page ("" after the last page). A token
// is opaque and only valid for the same user and filter.
func (s *Store) ListCacheItems(ctx context.Context, userID string, f CacheFilter, p PageRequest) ([]*CacheItem, string, error) {
	q := query{pageSize: p.size(), token: p.Token}
	if f.Kind != "" {
		// Every id is CacheItemID(kind, key) (CacheItem.validate), and kinds hold no
		// ':', so the id's prefix is the kind: no document is read to compare it.
		q.idPrefix = CacheItemID(f.Kind, "")
	}
	if f.UpdatedSince != 0 {
		q.filters = append(q.filters, filter{field: "updatedAt", op: ">=", value: f.UpdatedSince})
	}
	items, next, err := s.cache.query(ctx, userID, q)
	if err != nil {
		return nil, "", err
	}
	out := make([]*CacheItem, len(items))
	for i, it := range items {
		if out[i], err = decodeCacheItem(it); err != nil {
			return nil, "", err
		}
	}
	return out, next, nil
}

// eachCacheItem calls fn for every cache item of the partition that f selects, page
// by page; an error of fn ends the walk and is returned.
func (s *Store) eachCacheItem(ctx context.Context, partition string, f CacheFilter, fn func(*CacheItem) error) error {
	token := ""
	for {
		items, next, err := s.ListCacheItems(ctx, partition, f, PageRequest{Size: maxPageSize, Token: token})
		if err != nil {
			return err
		}
		for _, it := range items {
			if err := fn(it); err != nil {
				return err
			}
		}
		if next == "" {
			return nil
		}
		token = next
	}
}

// DeleteUserCache deletes every cache item of the user, and nothing else.
func (s *Store) DeleteUserCache(ctx context.Context, userID string) error {
	return s.cache.deletePartition(ctx, userID)
}

func decodeCacheItem(it item) (*CacheItem, error) {
	c, err := decode[CacheItem](cacheSpec.name, it)
	if err != nil {
		return nil, err
	}
	c.ETag = it.etag
	return c, nil
}
