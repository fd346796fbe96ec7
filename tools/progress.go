package tools

import (
	"context"
	"strconv"
	"time"

	"github.com/flowstudio/mcp/rpc"
	"github.com/flowstudio/mcp/tools/powerautomate"
)

// Progress on long calls. A call that carried a progress token (and so is answered
// as a stream) hears about each upstream or store page after the first, and about
// each poll while a run is awaited; a call without one does none of this work:
// handlers ask rpc.Reporting once and skip the rest.

// pageProgress reports page n of at most max pages read, with rows found so far.
type pageProgress struct {
	ctx  context.Context
	on   bool
	what string // "flows", "runs", ...
}

func newPageProgress(ctx context.Context, what string) pageProgress {
	return pageProgress{ctx: ctx, on: rpc.Reporting(ctx), what: what}
}

// page reports that page n (1-based) of at most max was read and more follow.
func (p pageProgress) page(n, max, rows int) {
	if !p.on {
		return
	}
	rpc.Progress(p.ctx, float64(n), float64(max), "read "+strconv.Itoa(n)+" pages, "+strconv.Itoa(rows)+" "+p.what+" so far")
}

// Waiting for a run (waitSeconds of trigger_live_flow and resubmit_live_flow_run).
const (
	maxWaitSeconds = 100 // the call itself is cut at 2 minutes
	// waitMargin is kept free before the call's deadline, to answer in time.
	waitMargin = 5 * time.Second
)

// waitSecondsArg is the waitSeconds argument.
var waitSecondsArg = optionalArg("waitSeconds", `{"type":"integer","minimum":0,"maximum":`+strconv.Itoa(maxWaitSeconds)+`,"default":0,"description":"Wait up to this many seconds for the new run to finish and return its status (0: return at once). Clients that send a progress token hear how the wait goes."}`)

// pollIntervals are the pauses between reads of an awaited run: quick at first
// (most runs are short), then every 3 seconds.
var pollIntervals = []time.Duration{250 * time.Millisecond, 500 * time.Millisecond, time.Second, 2 * time.Second, 3 * time.Second}

// runWait is what waiting found.
type runWait struct {
	run      *powerautomate.Run // the last read; nil when none was made
	finished bool
	waited   time.Duration
}

// finishedStatus says whether a run status is final.
func finishedStatus(s string) bool {
	switch s {
	case "Running", "Waiting", "Suspended", "Paused", "Queued", "":
		return false
	}
	return true
}

// awaitRun reads the run until it finishes, seconds pass or the call's own deadline
// nears, reporting progress on each read. Cancelling ctx stops it with ctx's error.
func awaitRun(ctx context.Context, env *Env, ref powerautomate.FlowRef, name string, seconds int) (runWait, error) {
	started := time.Now()
	limit := started.Add(time.Duration(seconds) * time.Second)
	if dl, ok := ctx.Deadline(); ok && dl.Add(-waitMargin).Before(limit) {
		limit = dl.Add(-waitMargin)
	}
	report := rpc.Reporting(ctx)
	var w runWait
	for i := 0; ; i++ {
		pause := pollIntervals[min(i, len(pollIntervals)-1)]
		if time.Now().Add(pause).After(limit) {
			break
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return w, ctx.Err()
		case <-t.C:
		}
		run, err := env.PA.GetRun(ctx, ref, name, false)
		if err != nil {
			return w, err
		}
		w.run, w.waited = run, time.Since(started)
		if finishedStatus(run.Status) {
			w.finished = true
			break
		}
		if report {
			rpc.Progress(ctx, w.waited.Seconds(), float64(seconds),
				"run "+name+" is "+run.Status+" after "+strconv.Itoa(int(w.waited.Seconds()))+" s")
		}
	}
	w.waited = time.Since(started)
	return w, nil
}

// withWait fills the wait's outcome into a new run's answer.
func (out *newRunOut) withWait(w runWait, seconds int) {
	secs := int(w.waited.Round(time.Second) / time.Second)
	out.WaitedSeconds = &secs
	if w.run == nil {
		out.Next = "the run did not finish within " + strconv.Itoa(seconds) + " s; " + pollHint(out.RunName)
		return
	}
	row := toRunRow(*w.run)
	out.Status, out.End, out.DurationMs, out.ErrorCode = row.Status, row.End, row.DurationMs, row.ErrorCode
	finished := w.finished
	out.Finished = &finished
	switch {
	case !w.finished:
		out.Next = "still " + row.Status + " after " + strconv.Itoa(secs) + " s; " + pollHint(out.RunName)
	case failedStatus(row.Status):
		out.Next = "the run failed: get_live_flow_run_error with runName " + out.RunName + " says why"
	default:
		out.Next = "the run finished (" + row.Status + "); get_live_flow_run_action_outputs with runName " + out.RunName + " shows what its actions did"
	}
}
