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
// caller, one per UTC day and one per UTC minute (cosmos.IncrementUsage, an
// atomic increment in the store). The two increments run in parallel; a call
// is admitted when both new values are within the plan's limits. Otherwise it
// is refused with an isError result naming the limit, the UTC time it resets
// and the dashboard URL to upgrade, and both increments are taken back.
//
// Increment-then-check means replicas never over-admit: every increment
// returns a distinct value, so at most PerDay calls of a day (and PerMinute of
// a minute) see a value within the limit, however many replicas count at once.
// The bound on excess admissions is therefore zero; it rests only on the
// atomicity of the store's increment. The price is the opposite error near the
// limit: a refused call holds its increment until it is taken back (one round
// trip), so a concurrent call of the same user can be refused while the count
// is, for that instant, one too high. When the store cannot count, calls are
// refused (fail closed) with a retry hint.
//
// Meta tools (tool_search, list_skills, report_bug) are not counted and work
// past quota. Calls refused before they run (bad arguments, plan, key scope)
// are not counted either.
package metering

import (
	"context"
	"fmt"
	"time"

	"github.com/flowstudio/mcp/cosmos"
	"github.com/flowstudio/mcp/rpc"
	"github.com/flowstudio/mcp/rpc/logsafe"
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
}

// Meter is the tools.Meter of the server.
type Meter struct {
	o Options
}

var _ tools.Meter = (*Meter)(nil)

// New returns a Meter.
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
	return &Meter{o: o}
}

// NewLogger returns the logger for metering lines: JSON with the key ts and
// the fields Record adds, nothing else (no level, message, caller or name).
// It writes at every LOG_LEVEL.
func NewLogger(w zapcore.WriteSyncer) *zap.Logger {
	enc := zapcore.EncoderConfig{
		TimeKey:        KeyTS,
		EncodeTime:     func(t time.Time, e zapcore.PrimitiveArrayEncoder) { e.AppendString(t.UTC().Format(tsLayout)) },
		EncodeDuration: zapcore.MillisDurationEncoder,
		LineEnding:     zapcore.DefaultLineEnding,
	}
	return zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(enc), w, zapcore.DebugLevel))
}

const tsLayout = "2006-01-02T15:04:05.000Z07:00"

// Record writes the call's metering line.
func (m *Meter) Record(ctx context.Context, rec tools.CallRecord) {
	fields := make([]zap.Field, 0, 8)
	fields = append(fields, zap.String(KeyTool, rec.Tool))
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
}

// Admit counts a live or store call against the caller's quota; see the
// package documentation.
func (m *Meter) Admit(ctx context.Context, p *tools.Principal, t *tools.Tool) error {
	if t.Group == tools.Meta || p == nil {
		return nil
	}
	q := m.o.Quotas.For(p.Tier)
	now := m.o.Now()

	type result struct {
		n   int64
		err error
	}
	minute := make(chan result, 1)
	go func() {
		n, err := m.o.Store.IncrementUsage(ctx, p.UserID, cosmos.PerMinute, now, 1)
		minute <- result{n, err}
	}()
	day, dayErr := m.o.Store.IncrementUsage(ctx, p.UserID, cosmos.PerDay, now, 1)
	perMinute := <-minute

	if dayErr != nil || perMinute.err != nil {
		err := dayErr
		if err == nil {
			err = perMinute.err
		}
		m.o.Ops.Error("usage counter failed", zap.String(logsafe.KeyRequestID, rpc.RequestID(ctx)), logsafe.Error(err))
		m.takeBack(ctx, p.UserID, now, dayErr == nil, perMinute.err == nil)
		return &tools.ToolError{Message: "your usage could not be counted just now, so the call was not run",
			Next: "retry in a few seconds"}
	}
	switch {
	case day > q.PerDay:
		m.takeBack(ctx, p.UserID, now, true, true)
		return m.refusal(p.Tier, fmt.Sprintf("%d tool calls per day", q.PerDay), dayReset(now))
	case perMinute.n > q.PerMinute:
		m.takeBack(ctx, p.UserID, now, true, true)
		return m.refusal(p.Tier, fmt.Sprintf("%d tool calls per minute", q.PerMinute), minuteReset(now))
	}
	return nil
}

// takeBack undoes this call's increments, so that refused calls use up
// nothing. It is never retried: a decrement that timed out may have been
// applied, and a second one would let a call past the limit. A failure leaves
// the count one too high: conservative, and logged.
func (m *Meter) takeBack(ctx context.Context, userID string, at time.Time, day, minute bool) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	for _, c := range []struct {
		do bool
		p  cosmos.Period
	}{{day, cosmos.PerDay}, {minute, cosmos.PerMinute}} {
		if !c.do {
			continue
		}
		if _, err := m.o.Store.IncrementUsage(ctx, userID, c.p, at, -1); err != nil {
			m.o.Ops.Warn("usage counter not taken back", zap.String(logsafe.KeyRequestID, rpc.RequestID(ctx)), logsafe.Error(err))
		}
	}
}

func (m *Meter) refusal(tier tools.Tier, limit string, resets time.Time) *tools.ToolError {
	next := fmt.Sprintf("wait until %s, or upgrade your plan for higher limits at %s", resets.Format(time.RFC3339), m.o.DashboardURL)
	if tier == tools.TierTeam {
		next = fmt.Sprintf("wait until %s; for higher limits on the team plan, contact us (report_bug works past quota) or see %s",
			resets.Format(time.RFC3339), m.o.DashboardURL)
	}
	return &tools.ToolError{
		Message: fmt.Sprintf("quota reached: the %s plan allows %s; it resets at %s (UTC). Meta tools (tool_search, list_skills, report_bug) still work",
			tier, limit, resets.Format("2006-01-02 15:04:05")),
		Next: next,
	}
}
