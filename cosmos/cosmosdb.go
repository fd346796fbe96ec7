package cosmos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/data/azcosmos"
)

// CosmosConfig says how to reach Cosmos DB.
type CosmosConfig struct {
	Endpoint   string                 // e.g. https://<account>.documents.azure.com:443/
	Database   string                 // e.g. flowstudio
	Key        string                 // account key: emulators and tests only
	Credential azcore.TokenCredential // Entra ID everywhere else: see AzureCredential
	// ClientOptions is for tests: a transport, extra policies. The adapter
	// always sets Retry itself.
	ClientOptions *azcosmos.ClientOptions
}

// AzureCredential returns the credential for Cosmos DB in Azure: the
// user-assigned managed identity clientID (the app's AZURE_CLIENT_ID) when
// given, else DefaultAzureCredential (environment, workload or managed
// identity, then a developer's Azure CLI login). Neither touches the network
// before the first token is needed.
func AzureCredential(clientID string) (azcore.TokenCredential, error) {
	if clientID != "" {
		return azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{
			ID: azidentity.ClientID(clientID),
		})
	}
	return azidentity.NewDefaultAzureCredential(nil)
}

// retryOptions bound the SDK's generic retries to throttling: a 429 is
// retried after the server's x-ms-retry-after-ms, at most three times.
// Timeouts, 5xx and lost connections are left to the Cosmos retry policy,
// which knows which writes are safe to repeat and stops at our deadline.
// TryTimeout also bounds each try of the account lookup on a client's first
// call, the one step that does not stop at the caller's deadline.
var retryOptions = policy.RetryOptions{
	MaxRetries:    3,
	TryTimeout:    3 * time.Second,
	RetryDelay:    100 * time.Millisecond,
	MaxRetryDelay: 2 * time.Second,
	StatusCodes:   []int{http.StatusTooManyRequests},
}

// OpenCosmos returns a Store on Cosmos DB. It does no I/O: the first call
// reaches the account, so a cold start is not slowed down (ctx is unused).
// The database and containers must exist: see Provision.
func OpenCosmos(_ context.Context, cfg CosmosConfig) (*Store, error) {
	if cfg.Endpoint == "" || cfg.Database == "" {
		return nil, errors.New("cosmos: endpoint and database are required")
	}
	if (cfg.Key == "") == (cfg.Credential == nil) {
		return nil, errors.New("cosmos: set exactly one of Key (emulators) and Credential")
	}
	var opts azcosmos.ClientOptions
	if cfg.ClientOptions != nil {
		opts = *cfg.ClientOptions
	}
	opts.Retry = retryOptions
	d := &cosmosDB{database: cfg.Database}
	d.newClient = func() (*azcosmos.Client, error) {
		if cfg.Key == "" {
			return azcosmos.NewClient(cfg.Endpoint, cfg.Credential, &opts)
		}
		key, err := azcosmos.NewKeyCredential(cfg.Key)
		if err != nil {
			return nil, err
		}
		return azcosmos.NewClientWithKey(cfg.Endpoint, key, &opts)
	}
	c, err := d.newClient()
	if err != nil {
		return nil, fmt.Errorf("cosmos: %w", err)
	}
	d.cur = &sdkClient{Client: c}
	return newStore(d), nil
}

// cosmosDB is the Cosmos DB backend.
type cosmosDB struct {
	database  string
	newClient func() (*azcosmos.Client, error)
	mu        sync.Mutex
	cur       *sdkClient
}

type sdkClient struct {
	*azcosmos.Client
	answered atomic.Bool // a call got an answer from the account
}

func (d *cosmosDB) client() *sdkClient {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cur
}

// observe notes how a call on c went. azcosmos looks the account up on a
// client's first call and, when that fails, fails every call for the next
// five minutes without trying again. So a client that never had an answer is
// replaced after a failure: a replica that started while Cosmos DB was out of
// reach recovers as soon as it is back.
func (d *cosmosDB) observe(c *sdkClient, err error) {
	if err == nil || slices.Contains([]int{404, 409, 412}, statusOf(err)) {
		c.answered.Store(true) // only the data plane answers these
		return
	}
	if c.answered.Load() {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cur != c {
		return // replaced already
	}
	if fresh, err := d.newClient(); err == nil {
		d.cur = &sdkClient{Client: fresh}
		c.Close()
	}
}

func (d *cosmosDB) container(spec containerSpec) container {
	return &cosmosContainer{d: d, spec: spec}
}

func (d *cosmosDB) provision(ctx context.Context) error {
	c := d.client()
	if _, err := c.CreateDatabase(ctx, azcosmos.DatabaseProperties{ID: d.database}, nil); statusOf(err) != http.StatusConflict {
		if err := cosmosError(ctx, err); err != nil {
			return err
		}
	}
	db, err := c.NewDatabase(d.database)
	if err != nil {
		return err
	}
	for _, spec := range allSpecs {
		ttl := spec.defaultTTL
		want := azcosmos.ContainerProperties{
			ID:                     spec.name,
			PartitionKeyDefinition: azcosmos.PartitionKeyDefinition{Paths: []string{"/" + spec.pkField}},
			DefaultTimeToLive:      &ttl, // -1: expiry on, so per-item ttl works
		}
		_, err := db.CreateContainer(ctx, want, nil)
		if statusOf(err) == http.StatusConflict {
			err = checkContainer(ctx, db, want)
		}
		if err := cosmosError(ctx, err); err != nil {
			return fmt.Errorf("container %s: %w", spec.name, err)
		}
	}
	return nil
}

// checkContainer reports an existing container whose partition key or TTL
// setting would break the store.
func checkContainer(ctx context.Context, db *azcosmos.DatabaseClient, want azcosmos.ContainerProperties) error {
	c, err := db.NewContainer(want.ID)
	if err != nil {
		return err
	}
	r, err := c.Read(ctx, nil)
	if err != nil {
		return err
	}
	got := r.ContainerProperties
	if !slices.Equal(got.PartitionKeyDefinition.Paths, want.PartitionKeyDefinition.Paths) || got.DefaultTimeToLive == nil {
		return fmt.Errorf("%w: exists with partition key %v and default ttl %v; want %v with ttl enabled",
			ErrInvalid, got.PartitionKeyDefinition.Paths, got.DefaultTimeToLive, want.PartitionKeyDefinition.Paths)
	}
	return nil
}

func (d *cosmosDB) ping(ctx context.Context) error {
	c := d.client()
	db, err := c.NewDatabase(d.database)
	if err != nil {
		return err
	}
	_, err = db.Read(ctx, nil)
	d.observe(c, err)
	return cosmosError(ctx, err)
}

func (d *cosmosDB) close() error {
	d.client().Close()
	return nil
}

type cosmosContainer struct {
	d    *cosmosDB
	spec containerSpec
}

// do runs call on the current client's container and maps its error.
func (c *cosmosContainer) do(ctx context.Context, call func(*azcosmos.ContainerClient) error) error {
	cl := c.d.client()
	cc, err := cl.NewContainer(c.d.database, c.spec.name)
	if err == nil {
		err = call(cc)
		c.d.observe(cl, err)
	}
	return cosmosError(ctx, err)
}

func (c *cosmosContainer) read(ctx context.Context, pk, id string) (item, error) {
	it := item{pk: pk, id: id}
	err := c.do(ctx, func(cc *azcosmos.ContainerClient) error {
		r, err := cc.ReadItem(ctx, azcosmos.NewPartitionKeyString(pk), id, nil)
		it.doc, it.etag = r.Value, string(r.ETag)
		return err
	})
	return it, err
}

func (c *cosmosContainer) create(ctx context.Context, it item) (string, error) {
	return c.write(ctx, func(cc *azcosmos.ContainerClient) (azcosmos.ItemResponse, error) {
		return cc.CreateItem(ctx, azcosmos.NewPartitionKeyString(it.pk), it.doc, nil)
	})
}

func (c *cosmosContainer) replace(ctx context.Context, it item, ifMatch string) (string, error) {
	match := azcore.ETag(ifMatch)
	return c.write(ctx, func(cc *azcosmos.ContainerClient) (azcosmos.ItemResponse, error) {
		return cc.ReplaceItem(ctx, azcosmos.NewPartitionKeyString(it.pk), it.id, it.doc, &azcosmos.ItemOptions{IfMatchEtag: &match})
	})
}

func (c *cosmosContainer) upsert(ctx context.Context, it item) (string, error) {
	return c.write(ctx, func(cc *azcosmos.ContainerClient) (azcosmos.ItemResponse, error) {
		return cc.UpsertItem(ctx, azcosmos.NewPartitionKeyString(it.pk), it.doc, nil)
	})
}

// write runs one item write and returns the written item's ETag.
func (c *cosmosContainer) write(ctx context.Context, op func(*azcosmos.ContainerClient) (azcosmos.ItemResponse, error)) (etag string, err error) {
	err = c.do(ctx, func(cc *azcosmos.ContainerClient) error {
		r, err := op(cc)
		etag = string(r.ETag)
		return err
	})
	return etag, err
}

func (c *cosmosContainer) delete(ctx context.Context, pk, id, ifMatch string) error {
	var opts *azcosmos.ItemOptions
	if ifMatch != "" {
		match := azcore.ETag(ifMatch)
		opts = &azcosmos.ItemOptions{IfMatchEtag: &match}
	}
	return c.do(ctx, func(cc *azcosmos.ContainerClient) error {
		_, err := cc.DeleteItem(ctx, azcosmos.NewPartitionKeyString(pk), id, opts)
		return err
	})
}

// query filters on the partition key in SQL as well as in the request, so
// the filter holds even where a server ignores the request's partition key.
// Only field names from the code go into the text; values are parameters.
func (c *cosmosContainer) query(ctx context.Context, pk string, q query) (items []item, next string, err error) {
	var sql strings.Builder
	sql.WriteString("SELECT * FROM c WHERE c." + c.spec.pkField + " = @pk")
	params := []azcosmos.QueryParameter{{Name: "@pk", Value: pk}}
	if q.idPrefix != "" {
		sql.WriteString(" AND STARTSWITH(c.id, @idPrefix)")
		params = append(params, azcosmos.QueryParameter{Name: "@idPrefix", Value: q.idPrefix})
	}
	for i, f := range q.filters {
		name := "@v" + strconv.Itoa(i)
		fmt.Fprintf(&sql, " AND c.%s %s %s", f.field, f.op, name)
		params = append(params, azcosmos.QueryParameter{Name: name, Value: f.value})
	}
	sql.WriteString(" ORDER BY c.id")
	opts := &azcosmos.QueryOptions{PageSizeHint: int32(q.pageSize), QueryParameters: params}
	if q.token != "" {
		opts.ContinuationToken = &q.token
	}
	err = c.do(ctx, func(cc *azcosmos.ContainerClient) error {
		pager := cc.NewQueryItemsPager(sql.String(), azcosmos.NewPartitionKeyString(pk), opts)
		// Cosmos DB may answer a page with no items and a continuation; a
		// caller wants items, so such pages are skipped.
		for pager.More() {
			page, err := pager.NextPage(ctx)
			if err != nil {
				return err
			}
			for _, doc := range page.Items {
				var meta struct {
					ID   string `json:"id"`
					ETag string `json:"_etag"`
				}
				if err := json.Unmarshal(doc, &meta); err != nil {
					return &CorruptRecordError{Container: c.spec.name, ID: "?", Err: err}
				}
				items = append(items, item{pk: pk, id: meta.ID, doc: doc, etag: meta.ETag})
			}
			next = ""
			if page.ContinuationToken != nil {
				next = *page.ContinuationToken
			}
			if len(page.Items) > 0 {
				break
			}
		}
		return nil
	})
	return items, next, err
}

// increment uses Cosmos DB's atomic patch "incr" (the emulators in our tests
// support it too), creating the item first when it is missing. Two callers
// may both try to create it: the one that gets 409 patches instead.
func (c *cosmosContainer) increment(ctx context.Context, seed item, field string, by int64) (n int64, err error) {
	var ops azcosmos.PatchOperations
	ops.AppendIncrement("/"+field, by)
	pk := azcosmos.NewPartitionKeyString(seed.pk)
	err = c.do(ctx, func(cc *azcosmos.ContainerClient) error {
		for {
			r, err := cc.PatchItem(ctx, pk, seed.id, ops, &azcosmos.ItemOptions{EnableContentResponseOnWrite: true})
			if statusOf(err) != http.StatusNotFound {
				if err == nil {
					if n, err = intField(r.Value, field); err != nil {
						err = &CorruptRecordError{Container: c.spec.name, ID: seed.id, Err: err}
					}
				}
				return err
			}
			_, err = cc.CreateItem(ctx, pk, seed.doc, nil)
			if statusOf(err) != http.StatusConflict {
				n = by
				return err
			}
		}
	})
	return n, err
}

func intField(doc []byte, field string) (int64, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(doc, &m); err != nil {
		return 0, err
	}
	return strconv.ParseInt(string(m[field]), 10, 64)
}

// deletePartition deletes the partition's items a page at a time, each
// round starting a fresh query, so deletions never upset a continuation.
// It stops when a round finds nothing left to delete.
func (c *cosmosContainer) deletePartition(ctx context.Context, pk string) error {
	for {
		items, _, err := c.query(ctx, pk, query{pageSize: defaultPageSize})
		if err != nil {
			return err
		}
		deleted := 0
		for _, it := range items {
			err := c.delete(ctx, pk, it.id, "")
			if err != nil && !isNotFound(err) {
				return err
			}
			if err == nil {
				deleted++
			}
		}
		if deleted == 0 {
			return nil
		}
	}
}

func statusOf(err error) int {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode
	}
	return 0
}

// cosmosError maps an SDK error to the package's errors. The message keeps
// the status and Cosmos DB's error code but never the response body.
func cosmosError(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		kind := ErrUnavailable // 5xx, 408, and 401/403: a store we cannot use
		switch re.StatusCode {
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
			kind = ErrInvalid
		case http.StatusNotFound:
			kind = ErrNotFound
		case http.StatusConflict:
			kind = ErrConflict
		case http.StatusPreconditionFailed:
			kind = ErrPreconditionFailed
		case http.StatusTooManyRequests:
			kind = ErrThrottled
		}
		return fmt.Errorf("%w (HTTP %d, %s)", kind, re.StatusCode, re.ErrorCode)
	}
	var corrupt *CorruptRecordError
	if errors.As(err, &corrupt) {
		return err
	}
	if errors.Is(ctx.Err(), context.Canceled) {
		return ctx.Err()
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}
