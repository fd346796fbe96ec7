package cosmos

import (
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// EmbeddedFile is the embedded store's file name inside the data directory.
const EmbeddedFile = "flowstudio.db"

// OpenEmbedded opens the embedded stand-in for Cosmos DB: one SQLite file,
// dir/flowstudio.db (mode 0600), created with its schema when missing.
//
// Why SQLite (modernc.org/sqlite, pure Go, no cgo) and not bbolt: the CLI
// (`flowstudio dev-key`, `flowstudio user ...`) must work on the data
// directory of a running server. bbolt holds an exclusive file lock for as
// long as a database is open, so the second process would wait until the
// first exits. SQLite in WAL mode lets any number of processes read while one
// writes, and a writer waits (busy_timeout) for the lock held during another
// process's commit. Commits are atomic and durable (synchronous=FULL), so a
// kill -9 at any moment loses nothing that was committed.
//
// Deleted data is erased, not only unlinked: secure_delete is on, so SQLite zeroes
// what a delete or an overwrite frees, and Store.EraseDeleted checkpoints the WAL and
// truncates it, so no older page image stays behind either.
//
// The file is watched: when it is deleted or replaced while open (every write would
// go to an unlinked file and be lost at restart), every operation fails from the next
// check on (at most a second later) with an error that says so, Ping included, and
// the handler given to Store.OnLost is called once.
func OpenEmbedded(dir string) (*Store, error) {
	e, err := openEmbedded(dir, time.Minute, time.Second)
	if err != nil {
		return nil, err
	}
	return newStore(e), nil
}

// embedded is the SQLite backend. Every container lives in one table; each
// operation is a single SQL statement, so each is atomic by itself.
type embedded struct {
	w     *sql.DB   // one connection: this process's writers queue here, not on the file lock
	r     *sql.DB   // readers; WAL lets them run beside the writer
	stmts sync.Map  // stmtKey → *sql.Stmt: each statement is parsed once, not per call
	wal   *walIndex // nil when the WAL index cannot be watched: every read goes to the file
	stop  context.CancelFunc
	done  sync.WaitGroup

	path   string      // the store file
	opened os.FileInfo // the file this process opened, to tell it from a replacement
	lost   atomic.Bool // the file at path is no longer the one opened
	lostMu sync.Mutex
	onLost func(error) // called once when lost is first set
	lostOK bool        // onLost was called
}

type stmtKey struct {
	db    *sql.DB
	query string
}

// stmt returns the prepared statement for query on db, preparing it on first use.
// SQL text is built from constants and code-chosen identifiers only, so the set of
// statements is small and fixed.
func (e *embedded) stmt(ctx context.Context, db *sql.DB, query string) (*sql.Stmt, error) {
	key := stmtKey{db, query}
	if s, ok := e.stmts.Load(key); ok {
		return s.(*sql.Stmt), nil
	}
	s, err := db.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if prev, loaded := e.stmts.LoadOrStore(key, s); loaded {
		s.Close()
		return prev.(*sql.Stmt), nil
	}
	return s, nil
}

func (e *embedded) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if e.lost.Load() {
		return nil, e.errLost()
	}
	s, err := e.stmt(ctx, e.w, query)
	if err != nil {
		return nil, err
	}
	return s.ExecContext(ctx, args...)
}

func (e *embedded) queryRow(ctx context.Context, db *sql.DB, query string, args ...any) *sql.Row {
	s, err := e.stmt(ctx, db, query)
	if err != nil {
		// sql.Row carries no constructor for an error: run it unprepared, which
		// reports the same error.
		return db.QueryRowContext(ctx, query, args...)
	}
	return s.QueryRowContext(ctx, args...)
}

// busyTimeoutMS is how long a statement waits for another process's lock.
const busyTimeoutMS = 5000

// pageCacheKiB bounds each connection's page cache (SQLite's default is 2,000 KiB).
// The operating system caches the file anyway, while a page cache lives in SQLite's
// own allocator, which keeps what it took: with the default, the server's anonymous
// memory after the mixed 64-client load test and 25 s idle was 23 MiB against 15 MiB
// with 256 KiB (11 MiB before the load), and the Team cache listing was no slower.
const pageCacheKiB = 256

// readerMaxIdle closes a reader connection unused this long, and with it what its
// caches and prepared statements hold; the next read opens one again. A variable so
// that a test can shorten it.
var readerMaxIdle = 10 * time.Second

const schema = `
CREATE TABLE IF NOT EXISTS items (
	container TEXT NOT NULL,
	pk        TEXT NOT NULL,
	id        TEXT NOT NULL,
	doc       TEXT NOT NULL, -- the JSON document
	etag      TEXT NOT NULL,
	expires   INTEGER,       -- unix milliseconds; NULL: never
	PRIMARY KEY (container, pk, id)
) STRICT, WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS items_expires ON items (expires) WHERE expires IS NOT NULL;`

func openEmbedded(dir string, purgeEvery, checkEvery time.Duration) (*embedded, error) {
	if strings.Contains(dir, "?") {
		return nil, fmt.Errorf("cosmos: embedded: data directory %q contains '?'", dir)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("cosmos: embedded: %w", err)
	}
	path := filepath.Join(dir, EmbeddedFile)
	// Create the file ourselves so that it gets mode 0600; SQLite gives its
	// -wal and -shm files the same mode.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("cosmos: embedded: %w", err)
	}
	f.Close()

	opened, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("cosmos: embedded: %w", err)
	}

	dsn := path + "?_busy_timeout=" + strconv.Itoa(busyTimeoutMS) + "&_pragma=cache_size(-" + strconv.Itoa(pageCacheKiB) + ")"
	// secure_delete: what a delete or an overwrite frees is zeroed, so a revoked
	// refresh token does not stay readable in a free page or cell (see EraseDeleted).
	w, err := sql.Open("sqlite", dsn+"&_journal_mode=WAL&_synchronous=FULL&_pragma=secure_delete(1)")
	if err != nil {
		return nil, fmt.Errorf("cosmos: embedded: %w", err)
	}
	w.SetMaxOpenConns(1)
	if _, err := w.Exec(schema); err != nil {
		w.Close()
		return nil, fmt.Errorf("cosmos: embedded: open %s: %w", path, err)
	}
	r, err := sql.Open("sqlite", dsn+"&_query_only=1")
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("cosmos: embedded: %w", err)
	}
	// Readers run beside each other and the writer, but more of them than cores
	// only adds connections, each with its own page cache that its allocator never
	// gives back: a 64-client burst left ~10 MB behind with an unbounded pool.
	r.SetMaxOpenConns(max(4, runtime.GOMAXPROCS(0)*2))
	r.SetMaxIdleConns(2)
	r.SetConnMaxIdleTime(readerMaxIdle)

	ctx, stop := context.WithCancel(context.Background())
	// The writer connection stays open for the store's lifetime, so SQLite keeps the
	// -shm file (and our mapping of it) in place.
	e := &embedded{w: w, r: r, stop: stop, wal: openWALIndex(path + "-shm"), path: path, opened: opened}
	e.done.Go(func() { e.purgeLoop(ctx, purgeEvery) })
	e.done.Go(func() { e.watchFile(ctx, checkEvery) })
	return e, nil
}

// errLost is what every operation answers once the store file was deleted or
// replaced under this process.
func (e *embedded) errLost() error {
	return fmt.Errorf("%w: the embedded store file %s was deleted or replaced while this process had it open, "+
		"so nothing more is read from or written to it (writes would be lost at restart): restore the file or "+
		"restart the process", ErrUnavailable, e.path)
}

// watchFile checks every so often (not per call: a stat is a syscall) that the file
// at e.path is still the one this process opened.
func (e *embedded) watchFile(ctx context.Context, every time.Duration) {
	ticks(ctx, every, func() bool {
		if st, err := os.Stat(e.path); err != nil || !os.SameFile(st, e.opened) {
			e.markLost()
			return false // a lost file stays lost for this process
		}
		return true
	})
}

// ticks calls fn every so often until ctx ends or fn returns false.
func ticks(ctx context.Context, every time.Duration, fn func() bool) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if !fn() {
				return
			}
		}
	}
}

func (e *embedded) markLost() {
	e.lost.Store(true)
	e.lostMu.Lock()
	defer e.lostMu.Unlock()
	if e.onLost != nil && !e.lostOK {
		e.lostOK = true
		e.onLost(e.errLost())
	}
}

// setOnLost registers fn, called once (at once if the file is already lost).
func (e *embedded) setOnLost(fn func(error)) {
	e.lostMu.Lock()
	e.onLost = fn
	e.lostMu.Unlock()
	if e.lost.Load() {
		e.markLost()
	}
}

// eraseDeleted checkpoints the WAL into the file and truncates it to nothing: with
// secure_delete on, the file's pages then hold only live data and zeros, and no
// older page image is left in the WAL. A checkpoint waits (busy_timeout) for readers
// of older snapshots, in any process; it is tried again until ctx ends.
func (e *embedded) eraseDeleted(ctx context.Context) error {
	for {
		if e.lost.Load() {
			return e.errLost()
		}
		var busy, logFrames, checkpointed int
		err := e.w.QueryRowContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &logFrames, &checkpointed)
		if err != nil {
			return sqliteError(ctx, err)
		}
		if busy == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: the WAL could not be truncated: another connection kept reading", ErrUnavailable)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// purgeLoop deletes expired items now and then. Reads already skip them;
// this only gives the space back.
func (e *embedded) purgeLoop(ctx context.Context, every time.Duration) {
	ticks(ctx, every, func() bool {
		_ = e.purge(ctx) // a failure (say, a long lock) is retried next tick
		return true
	})
}

func (e *embedded) purge(ctx context.Context) error {
	if e.lost.Load() {
		return e.errLost()
	}
	_, err := e.w.ExecContext(ctx, `DELETE FROM items WHERE expires <= ?`, nowMS())
	return err
}

// committed reports the WAL index header: it changes whenever any process commits
// a transaction to the file (see walIndex).
func (e *embedded) committed() (walHeader, bool) {
	if e.lost.Load() { // what was read before may not be what the file now says
		return walHeader{}, false
	}
	return e.wal.version()
}

func (e *embedded) container(spec containerSpec) container {
	return &sqliteContainer{e: e, spec: spec}
}

// provision has nothing to do: the schema is created on open.
func (e *embedded) provision(context.Context) error { return nil }

func (e *embedded) ping(ctx context.Context) error {
	if e.lost.Load() {
		return e.errLost()
	}
	var n int
	err := e.r.QueryRowContext(ctx, `SELECT count(*) FROM (SELECT 1 FROM items LIMIT 1)`).Scan(&n)
	return sqliteError(ctx, err)
}

func (e *embedded) close() error {
	e.stop()
	e.done.Wait()
	e.stmts.Range(func(_, s any) bool { s.(*sql.Stmt).Close(); return true })
	return errors.Join(e.r.Close(), e.w.Close()) // the WAL index mapping stays: see walIndex
}

type sqliteContainer struct {
	e    *embedded
	spec containerSpec
}

// live is the condition that an item has not expired; every statement that
// looks at an item applies it, so an expired item is gone at once.
const live = `(expires IS NULL OR expires > :now)`

func (c *sqliteContainer) read(ctx context.Context, pk, id string) (item, error) {
	if c.e.lost.Load() {
		return item{}, c.e.errLost()
	}
	it := item{pk: pk, id: id}
	var doc string
	err := c.e.queryRow(ctx, c.e.r,
		`SELECT doc, etag FROM items WHERE container = :c AND pk = :pk AND id = :id AND `+live,
		c.key(pk, id, nowMS())...).Scan(&doc, &it.etag)
	if errors.Is(err, sql.ErrNoRows) {
		return item{}, ErrNotFound
	}
	if err != nil {
		return item{}, sqliteError(ctx, err)
	}
	it.doc = []byte(doc)
	return it, nil
}

// create may take the place of an expired item, which is gone to readers.
func (c *sqliteContainer) create(ctx context.Context, it item) (string, error) {
	return c.write(ctx, it, ErrConflict, `INSERT INTO items (container, pk, id, doc, etag, expires)
		VALUES (:c, :pk, :id, :doc, :etag, :expires)
		ON CONFLICT (container, pk, id) DO UPDATE
		SET doc = excluded.doc, etag = excluded.etag, expires = excluded.expires
		WHERE items.expires <= :now`)
}

func (c *sqliteContainer) replace(ctx context.Context, it item, ifMatch string) (string, error) {
	etag, err := c.write(ctx, it, ErrPreconditionFailed, `UPDATE items
		SET doc = :doc, etag = :etag, expires = :expires
		WHERE container = :c AND pk = :pk AND id = :id AND etag = :ifMatch AND `+live,
		sql.Named("ifMatch", ifMatch))
	return etag, c.missingOr(ctx, it.pk, it.id, err)
}

func (c *sqliteContainer) upsert(ctx context.Context, it item) (string, error) {
	return c.write(ctx, it, nil, `INSERT INTO items (container, pk, id, doc, etag, expires)
		VALUES (:c, :pk, :id, :doc, :etag, :expires)
		ON CONFLICT (container, pk, id) DO UPDATE
		SET doc = excluded.doc, etag = excluded.etag, expires = excluded.expires`)
}

// write runs one statement writing it under a new ETag. When the statement
// changes nothing the result is errUnchanged.
func (c *sqliteContainer) write(ctx context.Context, it item, errUnchanged error, stmt string, more ...any) (string, error) {
	now := nowMS()
	etag := newETag()
	args := append(c.key(it.pk, it.id, now),
		sql.Named("doc", string(it.doc)), sql.Named("etag", etag), sql.Named("expires", c.expires(it.ttl, now)))
	res, err := c.e.exec(ctx, stmt, append(args, more...)...)
	if err != nil {
		return "", sqliteError(ctx, err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return "", errUnchanged
	}
	return etag, nil
}

func (c *sqliteContainer) delete(ctx context.Context, pk, id, ifMatch string) error {
	res, err := c.e.exec(ctx, `DELETE FROM items
		WHERE container = :c AND pk = :pk AND id = :id AND `+live+` AND (:ifMatch = '' OR etag = :ifMatch)`,
		append(c.key(pk, id, nowMS()), sql.Named("ifMatch", ifMatch))...)
	if err != nil {
		return sqliteError(ctx, err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return c.missingOr(ctx, pk, id, ErrPreconditionFailed)
	}
	return nil
}

// missingOr tells a missing item (ErrNotFound) from a stale ETag (err) after
// a conditional write changed nothing.
func (c *sqliteContainer) missingOr(ctx context.Context, pk, id string, err error) error {
	if !errors.Is(err, ErrPreconditionFailed) {
		return err
	}
	if _, rerr := c.read(ctx, pk, id); rerr != nil {
		return rerr
	}
	return err
}

func (c *sqliteContainer) query(ctx context.Context, pk string, q query) ([]item, string, error) {
	if c.e.lost.Load() {
		return nil, "", c.e.errLost()
	}
	after, err := base64.RawURLEncoding.DecodeString(q.token)
	if err != nil {
		return nil, "", fmt.Errorf("%w: continuation token", ErrInvalid)
	}
	var sb strings.Builder
	sb.WriteString(`SELECT id, doc, etag FROM items WHERE container = :c AND pk = :pk AND id > :after AND ` + live)
	args := append(c.key(pk, "", nowMS()), sql.Named("after", string(after)), sql.Named("limit", q.pageSize+1))
	if q.idPrefix != "" { // "kind:" (checked by table.query): ids from "kind:" up to "kind;"
		sb.WriteString(` AND id >= :lo AND id < :hi`)
		args = append(args, sql.Named("lo", q.idPrefix), sql.Named("hi", q.idPrefix[:len(q.idPrefix)-1]+";"))
	}
	for i, f := range q.filters {
		fmt.Fprintf(&sb, ` AND json_extract(doc, :f%d) %s :v%d`, i, f.op, i)
		args = append(args, sql.Named("f"+strconv.Itoa(i), "$."+f.field), sql.Named("v"+strconv.Itoa(i), f.value))
	}
	sb.WriteString(` ORDER BY id LIMIT :limit`)

	st, err := c.e.stmt(ctx, c.e.r, sb.String())
	if err != nil {
		return nil, "", sqliteError(ctx, err)
	}
	rows, err := st.QueryContext(ctx, args...)
	if err != nil {
		return nil, "", sqliteError(ctx, err)
	}
	defer rows.Close()
	var items []item
	for rows.Next() {
		it := item{pk: pk}
		var doc string
		if err := rows.Scan(&it.id, &doc, &it.etag); err != nil {
			return nil, "", sqliteError(ctx, err)
		}
		it.doc = []byte(doc)
		items = append(items, it)
	}
	if err := rows.Err(); err != nil {
		return nil, "", sqliteError(ctx, err)
	}
	// One row more than a page was asked for tells whether a next page exists.
	if len(items) <= q.pageSize {
		return items, "", nil
	}
	items = items[:q.pageSize]
	return items, base64.RawURLEncoding.EncodeToString([]byte(items[len(items)-1].id)), nil
}

// increment is one upsert: the write lock SQLite takes for it makes
// concurrent increments, from any process, add up exactly.
func (c *sqliteContainer) increment(ctx context.Context, seed item, field string, by int64) (int64, error) {
	if c.e.lost.Load() {
		return 0, c.e.errLost()
	}
	now := nowMS()
	var n int64
	err := c.e.queryRow(ctx, c.e.w, `INSERT INTO items (container, pk, id, doc, etag, expires)
		VALUES (:c, :pk, :id, :doc, :etag, :expires)
		ON CONFLICT (container, pk, id) DO UPDATE SET
			doc = CASE WHEN items.expires <= :now THEN excluded.doc
				ELSE json_set(items.doc, :path, coalesce(json_extract(items.doc, :path), 0) + :by) END,
			etag = excluded.etag, expires = excluded.expires
		RETURNING json_extract(doc, :path)`,
		append(c.key(seed.pk, seed.id, now),
			sql.Named("doc", string(seed.doc)), sql.Named("etag", newETag()), sql.Named("expires", c.expires(seed.ttl, now)),
			sql.Named("path", "$."+field), sql.Named("by", by))...).Scan(&n)
	if err != nil {
		return 0, sqliteError(ctx, err)
	}
	return n, nil
}

func (c *sqliteContainer) deletePartition(ctx context.Context, pk string) error {
	_, err := c.e.exec(ctx, `DELETE FROM items WHERE container = :c AND pk = :pk`,
		sql.Named("c", c.spec.name), sql.Named("pk", pk))
	return sqliteError(ctx, err)
}

func (c *sqliteContainer) key(pk, id string, now int64) []any {
	return []any{sql.Named("c", c.spec.name), sql.Named("pk", pk), sql.Named("id", id), sql.Named("now", now)}
}

// expires returns when an item written now with this ttl expires, as Cosmos
// DB counts it: ttl seconds after the last write; no ttl takes the container
// default; -1 (or a default of -1) never.
func (c *sqliteContainer) expires(ttl int, now int64) any {
	if ttl == 0 {
		ttl = int(c.spec.defaultTTL)
	}
	if ttl <= 0 {
		return nil
	}
	return now + int64(ttl)*1000
}

func nowMS() int64 { return time.Now().UnixMilli() }

// newETag returns a random quoted ETag: random rather than a counter, so an
// item deleted and created again never gets back an ETag someone still holds.
func newETag() string { return `"` + strconv.FormatUint(rand.Uint64(), 16) + `"` }

// sqliteError maps a database error: a caller that gave up gets its context
// error back; anything else (a lock held past busy_timeout, a full disk, a
// deadline) means the store is unavailable.
func sqliteError(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(ctx.Err(), context.Canceled) {
		return ctx.Err()
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}
