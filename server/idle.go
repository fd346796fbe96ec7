package server

import (
	"context"
	"runtime/debug"
	"time"
)

// ReleaseMemoryWhenIdle returns the heap a burst of load left behind to the
// operating system once no request has arrived for quiet, and once more after
// 4×quiet (when idle upstream connections have closed, 15 s): Go's collector would
// otherwise keep it until its next cycle, which an idle server may not run for
// minutes. One collection per stage and busy-to-idle transition, until ctx ends.
// A scale-to-zero replica sits mostly idle, so this is most of its life.
func (s *Server) ReleaseMemoryWhenIdle(ctx context.Context, quiet time.Duration) {
	t := time.NewTicker(quiet / 2)
	defer t.Stop()
	stages := []time.Duration{quiet, 4 * quiet}
	last, idleSince, done := s.requests.Load(), time.Now(), len(stages)
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			n := s.requests.Load()
			if n != last {
				last, idleSince, done = n, now, 0
				continue
			}
			if done < len(stages) && now.Sub(idleSince) >= stages[done] {
				debug.FreeOSMemory()
				done++
			}
		}
	}
}
