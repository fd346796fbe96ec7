package cosmos

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"

	"github.com/Azure/azure-sdk-for-go/sdk/data/azcosmos"
)

// ListUserIDs returns one page of user ids and the token for the next page
// ("" after the last). It reads across partitions, so it is for operator
// jobs (rotate-key re-sealing every refresh token), never for a request. The
// embedded store lists in id order; Cosmos DB in its own order (a
// cross-partition ORDER BY is not served by the gateway). Users created or
// deleted while paging may or may not appear.
func (s *Store) ListUserIDs(ctx context.Context, p PageRequest) ([]string, string, error) {
	size := p.size()
	if size <= 0 || size > maxPageSize {
		return nil, "", fmt.Errorf("cosmos: list users: %w: page size %d not in 1..%d", ErrInvalid, size, maxPageSize)
	}
	ctx, cancel := context.WithTimeout(ctx, 2*opTimeout)
	defer cancel()
	var ids []string
	var next string
	var err error
	switch b := s.b.(type) {
	case *embedded:
		ids, next, err = b.listUserIDs(ctx, size, p.Token)
	case *cosmosDB:
		ids, next, err = b.listUserIDs(ctx, size, p.Token)
	default:
		err = fmt.Errorf("%w: backend cannot list users", ErrInvalid)
	}
	if err != nil {
		return nil, "", fmt.Errorf("cosmos: list users: %w", err)
	}
	return ids, next, nil
}

// A user document has an objectId; the email index documents beside the
// users in the container do not.
func (e *embedded) listUserIDs(ctx context.Context, size int, token string) ([]string, string, error) {
	after, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		return nil, "", fmt.Errorf("%w: continuation token", ErrInvalid)
	}
	rows, err := e.r.QueryContext(ctx, `SELECT id FROM items
		WHERE container = :c AND id > :after AND json_extract(doc, '$.objectId') IS NOT NULL AND `+live+`
		ORDER BY id LIMIT :limit`,
		sql.Named("c", usersSpec.name), sql.Named("after", string(after)), sql.Named("now", nowMS()), sql.Named("limit", size+1))
	if err != nil {
		return nil, "", sqliteError(ctx, err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, "", sqliteError(ctx, err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, "", sqliteError(ctx, err)
	}
	if len(ids) <= size {
		return ids, "", nil
	}
	ids = ids[:size]
	return ids, base64.RawURLEncoding.EncodeToString([]byte(ids[len(ids)-1])), nil
}

func (d *cosmosDB) listUserIDs(ctx context.Context, size int, token string) (ids []string, next string, err error) {
	opts := &azcosmos.QueryOptions{PageSizeHint: int32(size)}
	if token != "" {
		opts.ContinuationToken = &token
	}
	cl := d.client()
	cc, err := cl.NewContainer(d.database, usersSpec.name)
	if err == nil {
		// No parameters needed: the query text is constant.
		pager := cc.NewQueryItemsPager("SELECT c.id FROM c WHERE IS_DEFINED(c.objectId)", azcosmos.NewPartitionKey(), opts)
		for pager.More() && err == nil {
			var page azcosmos.QueryItemsResponse
			page, err = pager.NextPage(ctx)
			if err != nil {
				break
			}
			for _, doc := range page.Items {
				var v struct {
					ID string `json:"id"`
				}
				if json.Unmarshal(doc, &v) == nil && v.ID != "" {
					ids = append(ids, v.ID)
				}
			}
			next = ""
			if page.ContinuationToken != nil {
				next = *page.ContinuationToken
			}
			if len(page.Items) > 0 {
				break
			}
		}
		d.observe(cl, err)
	}
	return ids, next, cosmosError(ctx, err)
}
