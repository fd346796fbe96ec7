package powerautomate

import (
	"context"
	"sync"
)

// CallStats counts the upstream calls made under one context, for metering:
// the tool layer logs the last upstream status and the call count.
// It is safe for concurrent use.
type CallStats struct {
	mu     sync.Mutex
	status int
	calls  int
	bytes  int64
}

type callStatsKey struct{}

// WithCallStats returns a context under which every upstream response the
// client receives is recorded into the returned *CallStats.
func WithCallStats(ctx context.Context) (context.Context, *CallStats) {
	s := &CallStats{}
	return context.WithValue(ctx, callStatsKey{}, s), s
}

// Status is the HTTP status of the last upstream response, 0 before any.
func (s *CallStats) Status() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status
}

// Calls is the number of upstream responses received (retries included).
func (s *CallStats) Calls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

// Bytes is the number of response body bytes read from upstream.
func (s *CallStats) Bytes() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bytes
}

func recordCall(ctx context.Context, status int, n int64) {
	s, _ := ctx.Value(callStatsKey{}).(*CallStats)
	if s == nil {
		return
	}
	s.mu.Lock()
	s.status = status
	s.calls++
	s.bytes += n
	s.mu.Unlock()
}
