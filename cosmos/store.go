package cosmos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/flowstudio/mcp/server/telemetry"
	segjson "github.com/segmentio/encoding/json"
)

// Store is the typed persistence layer. OpenCosmos and OpenEmbedded return
// one; both backends keep the same contract, which contract_test.go checks.
// A Store is safe for concurrent use.
type Store struct {
	b                   backend
	users, cache, usage table
	decoded             decodedUsers
}

// opTimeout bounds every single backend call unless the caller's context
// ends sooner, so a store that hangs costs a request at most this long.
const opTimeout = 5 * time.Second

// A backend is one storage engine: Cosmos DB or the embedded database.
type backend interface {
	container(spec containerSpec) container
	provision(ctx context.Context) error
	ping(ctx context.Context) error
	close() error
}

// A container holds JSON documents keyed by partition key and id. Errors are
// the package's sentinels (ErrNotFound, ...), wrapped with detail.
type container interface {
	read(ctx context.Context, pk, id string) (item, error)
	create(ctx context.Context, it item) (etag string, err error)
	replace(ctx context.Context, it item, ifMatch string) (etag string, err error)
	upsert(ctx context.Context, it item) (etag string, err error)
	// delete removes an item; a non-empty ifMatch must equal its ETag.
	delete(ctx context.Context, pk, id, ifMatch string) error
	// query returns one page of the partition's items matching every filter,
	// ordered by id, and a token for the next page ("" after the last).
	query(ctx context.Context, pk string, q query) (items []item, next string, err error)
	// increment adds by to the integer field and returns the new value. A
	// missing or expired item is created as seed, whose field already holds by.
	increment(ctx context.Context, seed item, field string, by int64) (int64, error)
	deletePartition(ctx context.Context, pk string) error
}

// item is one raw document.
type item struct {
	pk, id string
	doc    []byte // the JSON document, including its "ttl" when it has one
	ttl    int    // the document's ttl: seconds, -1 never, 0 the container's default
	etag   string // set on reads
}

type query struct {
	filters []filter
	// idPrefix, when set, keeps only the items whose id starts with it: a cache
	// kind's "kind:" (ids are CacheItemID(kind, key)), which SQLite finds on the
	// primary key instead of parsing every document of the partition for its kind.
	idPrefix string
	pageSize int
	token    string // continuation token from the previous page
}

// filter compares a top-level document field with a value (string or int64).
type filter struct {
	field string // an identifier: placed in the query text, so never user input
	op    string // one of filterOps
	value any
}

var filterOps = map[string]bool{"=": true, "!=": true, "<": true, "<=": true, ">": true, ">=": true}

// containerSpec describes a container the same way to both backends.
type containerSpec struct {
	name       string
	pkField    string // the document field holding the partition key; the Cosmos path is "/"+pkField
	defaultTTL int32  // seconds; -1 turns expiry on without a default, so only items with a ttl expire
}

var (
	usersSpec = containerSpec{name: "users", pkField: "id", defaultTTL: -1}
	cacheSpec = containerSpec{name: "cache", pkField: "userId", defaultTTL: -1}
	usageSpec = containerSpec{name: "usage", pkField: "userId", defaultTTL: -1}
	allSpecs  = []containerSpec{usersSpec, cacheSpec, usageSpec}
)

func newStore(b backend) *Store {
	t := func(spec containerSpec) table {
		return table{name: spec.name, c: b.container(spec), stats: telemetry.ContainerFor(spec.name)}
	}
	return &Store{b: b, users: t(usersSpec), cache: t(cacheSpec), usage: t(usageSpec)}
}

// Provision creates the database and containers when they are missing; an
// existing container is checked, never changed. Only `flowstudio store init`
// calls it: the server never creates storage. The embedded store creates its
// schema when it opens, so for it Provision does nothing.
func (s *Store) Provision(ctx context.Context) error {
	if err := s.b.provision(ctx); err != nil {
		return fmt.Errorf("cosmos: provision: %w", err)
	}
	return nil
}

// Ping checks that the store answers, for /readyz.
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	if err := s.b.ping(ctx); err != nil {
		return fmt.Errorf("cosmos: ping: %w", err)
	}
	return nil
}

// EraseDeleted makes what deletes and overwrites removed so far unrecoverable from
// the store's own files, for revoke and account deletion: call it after the write
// that removed a secret. The embedded store zeroes freed space as it goes
// (secure_delete) and here checkpoints the WAL and truncates it, so no byte of its
// files holds the old data (it waits up to 10 s for readers of older snapshots; an
// error means the data is deleted but older page images may remain until the next
// successful call). Cosmos DB has no such operation: a deleted or replaced item is
// gone from every read and query at once and its storage is reclaimed by the
// service (see the README's Storage section); there it does nothing.
func (s *Store) EraseDeleted(ctx context.Context) error {
	e, ok := s.b.(interface{ eraseDeleted(context.Context) error })
	if !ok {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 2*opTimeout)
	defer cancel()
	if err := e.eraseDeleted(ctx); err != nil {
		return fmt.Errorf("cosmos: erase deleted: %w", err)
	}
	return nil
}

// OnLost registers fn, called once if the embedded store's file is deleted or
// replaced while open (every operation fails from then on, with the same error).
// Cosmos DB has no file: fn is never called.
func (s *Store) OnLost(fn func(error)) {
	if e, ok := s.b.(interface{ setOnLost(func(error)) }); ok {
		e.setOnLost(fn)
	}
}

// Close releases the store. It must not be used afterwards.
func (s *Store) Close() error { return s.b.close() }

// table is a container with a name: it bounds each call with opTimeout and
// names the operation and item in every error.
type table struct {
	name  string
	c     container
	stats *telemetry.Container // operations by outcome, for the metrics
}

func (t table) wrap(op, id string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("cosmos: %s %s/%s: %w", op, t.name, id, err)
}

// count counts one backend operation by how it ended.
func (t table) count(op telemetry.StoreOp, err error) {
	o := telemetry.StoreOK
	switch {
	case err == nil:
	case errors.Is(err, ErrNotFound):
		o = telemetry.StoreNotFound
	case errors.Is(err, ErrConflict), errors.Is(err, ErrPreconditionFailed):
		o = telemetry.StoreConflict
	default:
		o = telemetry.StoreError
	}
	t.stats.Count(op, o)
}

func (t table) read(ctx context.Context, pk, id string) (item, error) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	it, err := t.c.read(ctx, pk, id)
	t.count(telemetry.Read, err)
	return it, t.wrap("read", id, err)
}

func (t table) create(ctx context.Context, it item) (string, error) {
	return t.write(ctx, telemetry.Create, it, func(ctx context.Context) (string, error) { return t.c.create(ctx, it) })
}

func (t table) replace(ctx context.Context, it item, ifMatch string) (string, error) {
	if ifMatch == "" {
		return "", t.wrap("replace", it.id, fmt.Errorf("%w: no etag", ErrInvalid))
	}
	return t.write(ctx, telemetry.Replace, it, func(ctx context.Context) (string, error) { return t.c.replace(ctx, it, ifMatch) })
}

func (t table) upsert(ctx context.Context, it item) (string, error) {
	return t.write(ctx, telemetry.Upsert, it, func(ctx context.Context) (string, error) { return t.c.upsert(ctx, it) })
}

// write runs one write of it within opTimeout, counts it and names it in its error.
func (t table) write(ctx context.Context, op telemetry.StoreOp, it item, fn func(context.Context) (string, error)) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	etag, err := fn(ctx)
	t.count(op, err)
	return etag, t.wrap(op.String(), it.id, err)
}

func (t table) delete(ctx context.Context, pk, id, ifMatch string) error {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	err := t.c.delete(ctx, pk, id, ifMatch)
	t.count(telemetry.Delete, err)
	return t.wrap("delete", id, err)
}

func (t table) query(ctx context.Context, pk string, q query) ([]item, string, error) {
	for _, f := range q.filters {
		if !isIdentifier(f.field) || !filterOps[f.op] {
			return nil, "", t.wrap("query", "*", fmt.Errorf("%w: filter %s %s", ErrInvalid, f.field, f.op))
		}
	}
	if kind, ok := strings.CutSuffix(q.idPrefix, ":"); q.idPrefix != "" && (!ok || !isIdentifier(kind)) {
		return nil, "", t.wrap("query", "*", fmt.Errorf("%w: id prefix %q", ErrInvalid, q.idPrefix))
	}
	if q.pageSize <= 0 || q.pageSize > maxPageSize {
		return nil, "", t.wrap("query", "*", fmt.Errorf("%w: page size %d not in 1..%d", ErrInvalid, q.pageSize, maxPageSize))
	}
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	items, next, err := t.c.query(ctx, pk, q)
	t.count(telemetry.Query, err)
	return items, next, t.wrap("query", "*", err)
}

func (t table) increment(ctx context.Context, seed item, field string, by int64) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	n, err := t.c.increment(ctx, seed, field, by)
	t.count(telemetry.Increment, err)
	return n, t.wrap("increment", seed.id, err)
}

// deletePartition may take several calls on Cosmos DB, so it gets a longer bound.
func (t table) deletePartition(ctx context.Context, pk string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*opTimeout)
	defer cancel()
	err := t.c.deletePartition(ctx, pk)
	t.count(telemetry.DeletePartition, err)
	return t.wrap("delete partition", pk, err)
}

// PageRequest asks for one page of a listing.
type PageRequest struct {
	Size  int    // items per page, 1..1000; 0 means 100
	Token string // "" for the first page, else the previous page's next token
}

const (
	defaultPageSize = 100
	maxPageSize     = 1000
)

func (p PageRequest) size() int {
	if p.Size == 0 {
		return defaultPageSize
	}
	return p.Size
}

// record is a type the Store reads and writes.
type record interface {
	validate() error
	docID() string
}

// encode checks a record before it is written, so that the store never
// holds a record it would later report as corrupt.
func encode(r record, pk, id string, ttl int) (item, error) {
	if err := r.validate(); err != nil {
		return item{}, fmt.Errorf("cosmos: %w: %v", ErrInvalid, err)
	}
	doc, err := json.Marshal(r)
	if err != nil {
		return item{}, fmt.Errorf("cosmos: %w: %v", ErrInvalid, err)
	}
	return item{pk: pk, id: id, doc: doc, ttl: ttl}, nil
}

// decode turns a stored document into a record, reporting one that does not
// decode or validate, or whose id is not the one asked for, as corrupt.
func decode[T any, P interface {
	*T
	record
}](container string, it item) (*T, error) {
	var r T
	// segmentio reads what encoding/json does, several times faster: every listing
	// decodes each document it returns.
	err := segjson.Unmarshal(it.doc, &r)
	if err == nil {
		err = P(&r).validate()
	}
	if err == nil && P(&r).docID() != it.id {
		err = fmt.Errorf("document id %q stored under id %q", P(&r).docID(), it.id)
	}
	if err != nil {
		return nil, &CorruptRecordError{Container: container, ID: it.id, Err: err}
	}
	return &r, nil
}

func isNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// maxStaleRetries bounds the read-modify-replace loops: each retry means
// another writer succeeded, so the loop only runs out under heavy contention.
const maxStaleRetries = 50

// retryStale runs attempt until it stops failing with ErrPreconditionFailed
// or ErrConflict (another writer got in between our read and our write),
// sleeping a short random while between tries so contenders spread out.
func retryStale(ctx context.Context, attempt func() error) error {
	for n := 1; ; n++ {
		err := attempt()
		if n == maxStaleRetries || !(errors.Is(err, ErrPreconditionFailed) || errors.Is(err, ErrConflict)) {
			return err
		}
		t := time.NewTimer(rand.N(time.Duration(min(n, 10)) * time.Millisecond))
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}
