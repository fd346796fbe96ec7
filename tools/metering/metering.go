// Package metering implements tools.Meter: per-plan quotas counted in the
// store's usage counters (shared by every replica), and exactly one metering
// log line per tool call.
//
// # The metering line
//
// One JSON object per tool call, with exactly these keys and nothing else:
//
//	ts               time of the line, UTC, RFC 3339 with milliseconds
//	tool             tool name
//	user             the caller's email hash (hex HMAC-SHA256 of the lower-cased email, keyed from TOKEN_SECRET)
//	tier             the caller's plan: free, pro or team
//	environment      the environment the call names; absent when it names none
//	upstream_status  HTTP status of the last upstream response; absent when no upstream call was made
//	latency_ms       whole milliseconds from the call's arrival to its result
//	bytes            size of the tool result sent to the client
//	request_id       the HTTP request id (also the X-Request-Id response header)
//
// No level, message, caller or logger name: the line comes from a dedicated
// logger (NewLogger) whose encoder has no other keys, and it is written for
// every call whatever LOG_LEVEL says. Arguments, results, definitions, run
// outputs, upstream text, tokens and keys never reach it.
//
// # Quotas
//
// Every call of a live or store tool is counted in two counters of the
// caller, one per UTC day and one per UTC minute, shared by every replica
// through the store (cosmos.IncrementUsage, an atomic increment). Counting
// stays off the call's path: each replica admits a call when the last totals
// it read back from the store, plus the calls it admitted since (not yet
// written), leave room under both limits; a background flush writes each
// counter's delta as one atomic increment at most every FlushInterval (1 s),
// at once when a user's minute window rolls over, and on Close (drain), and
// takes the new totals from the increments' answers. A refused call is
// counted nowhere. Its message names the limit, the UTC time it resets and
// the dashboard URL to upgrade.
//
// The bound: a replica can only admit past a limit while its view of the
// total lags, that is for calls it admits before its next flush returns, so
// replicas together admit at most the limit plus, per replica, the calls one
// replica admits for that user in one flush interval (each replica's own view
// never passes the limit, and the per-minute limit caps what one replica admits
// in any interval). TestOvershootBound checks it with several meters over one
// store. When flushes keep failing (the store cannot count), counted calls are
// refused with a retry hint until one succeeds (fail closed).
//
// Meta tools (tool_search, list_skills, report_bug) are not counted against
// the daily quota and work past it, but they count toward a per-minute rate
// per user (the plan's per-minute limit), kept in memory by each replica: they
// cost no store operation. Calls refused before they run (bad arguments, plan,
// key scope) are not counted either.
package metering

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flowstudio/mcp/cosmos"
	"github.com/flowstudio/mcp/rpc"
	"github.com/flowstudio/mcp/rpc/logsafe"
	"github.com/flowstudio/mcp/server/telemetry"
	"github.com/flowstudio/mcp/tools"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// The metering line's keys.
const (
	KeyTS             = "ts"
	KeyTool           = "tool"
	KeyUser           = "user"
	KeyTier           = "tier"
	KeyEnvironment    = "environment"
	KeyUpstreamStatus = "upstream_status"
	KeyLatencyMS      = "latency_ms"
	KeyBytes          = "bytes"
	KeyRequestID      = "request_id"
)

// Fields lists every key a metering line may carry.
var Fields = []string{KeyTS, KeyTool, KeyUser, KeyTier, KeyEnvironment, KeyUpstreamStatus, KeyLatencyMS, KeyBytes, KeyRequestID}

// Store is what metering needs from storage.
type Store interface {
	IncrementUsage(ctx context.Context, userID string, p cosmos.Period, at time.Time, by int64) (int64, error)
	IncrementToolUsage(ctx context.Context, userID, tool string, at time.Time, by int64) (int64, error)
	Usage(ctx context.Context, userID string, p cosmos.Period, at time.Time) (int64, error)
}

var _ Store = (*cosmos.Store)(nil)

// Options configure a Meter.
type Options struct {
	Store  Store
	Quotas Quotas
	// DashboardURL is where users upgrade.
	DashboardURL string
	// Log receives the metering lines: build it with NewLogger.
	Log *zap.Logger
	// Ops receives operational lines (a counter that failed), no payloads.
	Ops *zap.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// FlushInterval is how often counted calls are written to the store (1 s).
	// Negative: never by itself; only Flush and Close write (tests).
	FlushInterval time.Duration
}

// DefaultFlushInterval is how often a replica writes its counts.
const DefaultFlushInterval = time.Second

// failClosedAfter is how long flushes may keep failing before counted calls
// are refused.
const failClosedAfter = 5 * time.Second

// Meter is the tools.Meter of the server.
type Meter struct {
	o Options

	mu       sync.Mutex
	counters map[counterKey]*counter
	meta     map[metaKey]int64 // meta calls per user and minute, this replica only
	// failingSince is when flushes started failing; zero while they succeed.
	failingSince time.Time

	flushMu sync.Mutex // one flush at a time
	kick    chan struct{}
	stop    chan struct{}
	done    chan struct{}
	closed  sync.Once
}

// counterKey names one shared usage counter: a user's window of a period.
type counterKey struct {
	user   string
	period cosmos.Period
	start  int64  // unix seconds at the window's start
	tool   string // cosmos.ToolPerDay only
}

type metaKey struct {
	user   string
	minute int64
}

// counter is this replica's view of one shared counter.
type counter struct {
	known   int64     // the store's total at our last flush (our flushed calls included)
	pending int64     // admitted here since, not yet written
	sending int64     // being written by a flush right now
	end     time.Time // the window's end
}

func (c *counter) total() int64 { return c.known + c.pending + c.sending }

var _ tools.Meter = (*Meter)(nil)

// New returns a Meter and starts its flush loop; Close stops it.
func New(o Options) *Meter {
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	if o.Ops == nil {
		o.Ops = zap.NewNop()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.FlushInterval == 0 {
		o.FlushInterval = DefaultFlushInterval
	}
	m := &Meter{o: o, counters: map[counterKey]*counter{}, meta: map[metaKey]int64{},
		kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go m.loop()
	return m
}

// NewLogger returns the logger for metering lines: JSON with the key ts and
// the fields Record adds, nothing else (no level, message, caller or name).
// It writes at every LOG_LEVEL.
func NewLogger(w zapcore.WriteSyncer) *zap.Logger {
	enc := zapcore.EncoderConfig{
		TimeKey:        KeyTS,
		EncodeTime:     func(t time.Time, e zapcore.PrimitiveArrayEncoder) { e.AppendString(formatTS(t)) },
		EncodeDuration: zapcore.MillisDurationEncoder,
		LineEnding:     zapcore.DefaultLineEnding,
	}
	return zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(enc), w, zapcore.DebugLevel))
}

const tsLayout = "2006-01-02T15:04:05.000Z07:00"

// lastTS is the last formatted timestamp: calls within one millisecond share it.
var lastTS atomic.Pointer[formattedTS]

type formattedTS struct {
	ms   int64
	text string
}

func formatTS(t time.Time) string {
	ms := t.UnixMilli()
	if c := lastTS.Load(); c != nil && c.ms == ms {
		return c.text
	}
	text := t.UTC().Format(tsLayout)
	lastTS.Store(&formattedTS{ms, text})
	return text
}

// Record writes the call's metering line.
func (m *Meter) Record(ctx context.Context, rec tools.CallRecord) {
	// The core encodes the line before Info returns and keeps no field: the slice
	// (nine 64-byte fields) is reused rather than made for every call.
	pooled := fieldPool.Get().(*[]zap.Field)
	fields := append((*pooled)[:0], zap.String(KeyTool, rec.Tool))
	user, tier := "", ""
	if p := rec.Principal; p != nil {
		user, tier = p.EmailHash, string(p.Tier)
	}
	fields = append(fields, zap.String(KeyUser, user), zap.String(KeyTier, tier))
	if rec.Environment != "" {
		fields = append(fields, zap.String(KeyEnvironment, rec.Environment))
	}
	if rec.UpstreamStatus != 0 {
		fields = append(fields, zap.Int(KeyUpstreamStatus, rec.UpstreamStatus))
	}
	fields = append(fields,
		zap.Int64(KeyLatencyMS, rec.Latency.Milliseconds()),
		zap.Int(KeyBytes, rec.Bytes),
		zap.String(KeyRequestID, rpc.RequestID(ctx)))
	m.o.Log.Info("", fields...)
	clear(fields) // drop the strings it points to
	*pooled = fields[:0]
	fieldPool.Put(pooled)
}

var fieldPool = sync.Pool{New: func() any { f := make([]zap.Field, 0, 9); return &f }}

// Admit decides whether a call may run, from this replica's view of the
// caller's counters; see the package documentation. It does no I/O.
func (m *Meter) Admit(ctx context.Context, p *tools.Principal, t *tools.Tool) error {
	if p == nil {
		return nil
	}
	q := m.o.Quotas.For(p.Tier)
	now := m.o.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if t.Group == tools.Meta {
		k := metaKey{p.UserID, now.Unix() / 60}
		if m.meta[k] >= q.PerMinute {
			telemetry.QuotaRefusal(telemetry.MetaRate, string(p.Tier))
			return m.metaRefusal(p.Tier, q.PerMinute, minuteReset(now))
		}
		m.meta[k]++
		return nil
	}
	if !m.failingSince.IsZero() && now.Sub(m.failingSince) >= failClosedAfter {
		telemetry.QuotaRefusal(telemetry.Uncounted, string(p.Tier))
		return &tools.ToolError{Message: "your usage could not be counted just now, so the call was not run",
			Next: "retry in a few seconds"}
	}
	day, dayNew := m.counterFor(p.UserID, cosmos.PerDay, "", now)
	minute, minuteNew := m.counterFor(p.UserID, cosmos.PerMinute, "", now)
	switch {
	case day.total() >= q.PerDay:
		telemetry.QuotaRefusal(telemetry.DailyQuota, string(p.Tier))
		return m.refusal(p.Tier, fmt.Sprintf("%d tool calls per day", q.PerDay), dayReset(now))
	case minute.total() >= q.PerMinute:
		telemetry.QuotaRefusal(telemetry.MinuteQuota, string(p.Tier))
		return m.refusal(p.Tier, fmt.Sprintf("%d tool calls per minute", q.PerMinute), minuteReset(now))
	}
	day.pending++
	minute.pending++
	// Today's calls by tool, for the dashboard's chart: never checked against a
	// limit, written with the others.
	byTool, _ := m.counterFor(p.UserID, cosmos.ToolPerDay, t.Name, now)
	byTool.pending++
	if (dayNew || minuteNew) && m.o.FlushInterval > 0 { // a window rolled over (or a new user): write now
		select {
		case m.kick <- struct{}{}:
		default:
		}
	}
	return nil
}

// counterFor returns this replica's counter for the window of p holding now,
// and whether it was just created. The caller holds m.mu.
func (m *Meter) counterFor(user string, p cosmos.Period, tool string, now time.Time) (*counter, bool) {
	start, end := windowOf(p, now)
	k := counterKey{user, p, start.Unix(), tool}
	if c, ok := m.counters[k]; ok {
		return c, false
	}
	c := &counter{end: end}
	m.counters[k] = c
	return c, true
}

func windowOf(p cosmos.Period, now time.Time) (start, end time.Time) {
	if p == cosmos.PerDay || p == cosmos.ToolPerDay {
		start = now.UTC().Truncate(24 * time.Hour)
		return start, start.Add(24 * time.Hour)
	}
	start = now.UTC().Truncate(time.Minute)
	return start, start.Add(time.Minute)
}

func (m *Meter) loop() {
	defer close(m.done)
	var tick <-chan time.Time
	if m.o.FlushInterval > 0 {
		t := time.NewTicker(m.o.FlushInterval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-m.stop:
			return
		case <-tick:
		case <-m.kick:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_ = m.Flush(ctx)
		cancel()
	}
}

// Flush writes every counter's unwritten calls to the store, one atomic
// increment per counter, and takes the new totals from the answers. A counter
// whose increment failed keeps its calls for the next flush: an increment that
// timed out may still have been applied, so the count can end up too high,
// never too low.
func (m *Meter) Flush(ctx context.Context) error {
	m.flushMu.Lock()
	defer m.flushMu.Unlock()
	type job struct {
		k counterKey
		c *counter
		n int64
	}
	now := m.o.Now()
	var jobs []job
	m.mu.Lock()
	for k, c := range m.counters {
		switch {
		case c.pending > 0:
			c.sending, c.pending = c.pending, 0
			jobs = append(jobs, job{k, c, c.sending})
		case now.After(c.end.Add(time.Minute)):
			delete(m.counters, k) // a past window with nothing left to write
		}
	}
	for k := range m.meta {
		if k.minute < now.Unix()/60 {
			delete(m.meta, k)
		}
	}
	m.mu.Unlock()

	var errs []error
	for _, j := range jobs {
		var total int64
		var err error
		if j.k.period == cosmos.ToolPerDay {
			total, err = m.o.Store.IncrementToolUsage(ctx, j.k.user, j.k.tool, time.Unix(j.k.start, 0), j.n)
		} else {
			total, err = m.o.Store.IncrementUsage(ctx, j.k.user, j.k.period, time.Unix(j.k.start, 0), j.n)
		}
		m.mu.Lock()
		if err != nil {
			j.c.pending += j.c.sending
			errs = append(errs, err)
		} else {
			j.c.known = total // the store's total, with what we just sent
		}
		j.c.sending = 0
		m.mu.Unlock()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(errs) > 0 {
		if m.failingSince.IsZero() {
			m.failingSince = now
		}
		m.o.Ops.Error("usage counters not written; kept for the next flush", zap.Int("counters", len(errs)), logsafe.Error(errs[0]))
		return errors.Join(errs...)
	}
	m.failingSince = time.Time{}
	return nil
}

// Close stops the flush loop and writes what is left (on drain).
func (m *Meter) Close(ctx context.Context) error {
	m.closed.Do(func() { close(m.stop) })
	<-m.done
	return m.Flush(ctx)
}

// refusal names the limit, when it resets, and the next plan that would allow
// more (with its limits and the dashboard's upgrade URL). Built only on refusal.
func (m *Meter) refusal(tier cosmos.Tier, limit string, resets time.Time) *tools.ToolError {
	upgrade := tools.UpgradeURL(m.o.DashboardURL)
	next := fmt.Sprintf("wait until %s; for higher limits on the team plan, contact us (report_bug works past quota) or see %s",
		resets.Format(time.RFC3339), upgrade)
	if higher, ok := nextTier(tier); ok {
		q := m.o.Quotas.For(higher)
		next = fmt.Sprintf("wait until %s, or upgrade to the %s plan (%d tool calls per day, %d per minute) at %s",
			resets.Format(time.RFC3339), higher, q.PerDay, q.PerMinute, upgrade)
	}
	return &tools.ToolError{
		Message: fmt.Sprintf("quota reached: the %s plan allows %s; it resets at %s (UTC). Meta tools (tool_search, list_skills, report_bug) still work",
			tier, limit, resets.Format("2006-01-02 15:04:05")),
		Next: next,
	}
}

// nextTier is the plan above t, if any.
func nextTier(t cosmos.Tier) (cosmos.Tier, bool) {
	switch t {
	case cosmos.TierTeam:
		return "", false
	case cosmos.TierPro:
		return cosmos.TierTeam, true
	}
	return cosmos.TierPro, true
}

func (m *Meter) metaRefusal(tier cosmos.Tier, perMinute int64, resets time.Time) *tools.ToolError {
	return &tools.ToolError{
		Message: fmt.Sprintf("rate limit: the %s plan allows %d calls of tool_search, list_skills and report_bug per minute; it resets at %s (UTC)",
			tier, perMinute, resets.Format("2006-01-02 15:04:05")),
		Next: "wait until " + resets.Format(time.RFC3339) + "; these tools do not count toward the daily quota",
	}
}
