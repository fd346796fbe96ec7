package teamsync

import (
	"context"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/flowstudio/mcp/tools/powerautomate"
	"github.com/flowstudio/mcp/tools/teamcache"
)

// snapshot is what one user's reads produced.
type snapshot struct {
	from, to time.Time
	envs     []*envSnapshot
}

// envSnapshot is one environment as read: its flows and connections, whether each
// list is complete, and the statistics of the flows whose runs were read.
type envSnapshot struct {
	env                 powerautomate.Environment
	flows               []powerautomate.Flow
	flowsComplete       bool
	connections         []powerautomate.Connection
	connectionsComplete bool
	apps                []powerautomate.App
	appsComplete        bool
	stats               map[string]*teamcache.FlowStats // by flow key; missing: runs not read
}

// read lists everything as the principal in ctx. Only the environment list is
// required; any other failure leaves a part incomplete, to be kept from before.
func (s *Syncer) read(ctx context.Context, now time.Time) (*snapshot, error) {
	envs, err := s.o.Upstream.ListEnvironments(ctx)
	if err != nil {
		return nil, err
	}
	snap := &snapshot{from: now.Add(-s.o.Window), to: now}
	seen := map[string]bool{}
	for _, e := range envs {
		if powerautomate.ValidateEnvironmentName(e.Name) != nil || e.Name == "~default" || seen[strings.ToLower(e.Name)] {
			continue
		}
		seen[strings.ToLower(e.Name)] = true
		snap.envs = append(snap.envs, &envSnapshot{env: e, stats: map[string]*teamcache.FlowStats{}})
	}
	// The environments' lists, a few at a time.
	sem := make(chan struct{}, s.o.Flows)
	var wg sync.WaitGroup
	for _, es := range snap.envs {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			es.flows, es.flowsComplete = s.listFlows(ctx, es.env.Name)
			es.connections, es.connectionsComplete = s.listConnections(ctx, es.env.Name)
			es.apps, es.appsComplete = s.listApps(ctx, es.env.Name)
		})
	}
	wg.Wait()
	s.readStats(ctx, snap)
	return snap, nil
}

func (s *Syncer) listFlows(ctx context.Context, env string) ([]powerautomate.Flow, bool) {
	var out []powerautomate.Flow
	next := ""
	for range s.o.FlowPages {
		if ctx.Err() != nil {
			return out, false
		}
		page, err := s.o.Upstream.ListFlows(ctx, env, powerautomate.ListFlowsOptions{Top: s.o.PageSize, NextLink: next})
		if err != nil {
			return out, false
		}
		for _, f := range page.Flows {
			if powerautomate.ValidateFlowName(f.Name) == nil {
				out = append(out, f)
			}
		}
		if next = page.NextLink; next == "" {
			return out, true
		}
	}
	return out, false
}

func (s *Syncer) listConnections(ctx context.Context, env string) ([]powerautomate.Connection, bool) {
	var out []powerautomate.Connection
	next := ""
	for range s.o.ConnectionPages {
		if ctx.Err() != nil {
			return out, false
		}
		page, err := s.o.Upstream.ListConnections(ctx, env, powerautomate.ListConnectionsOptions{Top: s.o.PageSize, NextLink: next})
		if err != nil {
			return out, false
		}
		for _, c := range page.Connections {
			if powerautomate.ValidateConnectionName(c.Name) == nil {
				out = append(out, c)
			}
		}
		if next = page.NextLink; next == "" {
			return out, true
		}
	}
	return out, false
}

// listApps lists an environment's Power Apps apps (metadata only: the client
// never decodes an app's document link).
func (s *Syncer) listApps(ctx context.Context, env string) ([]powerautomate.App, bool) {
	var out []powerautomate.App
	next := ""
	for range s.o.AppPages {
		if ctx.Err() != nil {
			return out, false
		}
		page, err := s.o.Upstream.ListApps(ctx, env, powerautomate.ListAppsOptions{Top: s.o.PageSize, NextLink: next})
		if err != nil {
			return out, false
		}
		for _, a := range page.Apps {
			if powerautomate.ValidateFlowName(a.Name) == nil { // app ids are GUIDs too
				out = append(out, a)
			}
		}
		if next = page.NextLink; next == "" {
			return out, true
		}
	}
	return out, false
}

// readStats reads the runs of every listed flow, a few flows at a time.
func (s *Syncer) readStats(ctx context.Context, snap *snapshot) {
	type job struct {
		es *envSnapshot
		f  powerautomate.Flow
	}
	jobs := make(chan job)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range s.o.Flows {
		wg.Go(func() {
			for j := range jobs {
				if ctx.Err() != nil {
					continue
				}
				st, ok := s.flowStats(ctx, j.es.env.Name, j.f.Name, snap.from, snap.to)
				if ok {
					mu.Lock()
					j.es.stats[teamcache.Key(j.es.env.Name, j.f.Name)] = st
					mu.Unlock()
				}
			}
		})
	}
	for _, es := range snap.envs {
		for _, f := range es.flows {
			jobs <- job{es, f}
		}
	}
	close(jobs)
	wg.Wait()
}

// flowStats lists a flow's runs in the window, newest first, at most RunPages pages.
func (s *Syncer) flowStats(ctx context.Context, env, flow string, from, to time.Time) (*teamcache.FlowStats, bool) {
	ref := powerautomate.FlowRef{Environment: env, Flow: flow}
	var runs []powerautomate.Run
	next := ""
	truncated := false
	for page := 0; ; page++ {
		if page == s.o.RunPages {
			truncated = true
			break
		}
		p, err := s.o.Upstream.ListRuns(ctx, ref, powerautomate.ListRunsOptions{StartFrom: from, Top: s.o.PageSize, NextLink: next})
		if err != nil {
			return nil, false
		}
		runs = append(runs, p.Runs...)
		if next = p.NextLink; next == "" {
			break
		}
	}
	st := computeStats(runs, from, to, truncated)
	st.EnvironmentName, st.FlowName = env, flow
	st.Window = teamcache.FormatWindow(to.Sub(from))
	return st, true
}

// Run statuses that count as failures, and those of runs not finished yet.
var (
	failedStatuses     = []string{"Failed", "TimedOut"}
	unfinishedStatuses = []string{"Running", "Waiting", "Suspended", "Paused"}
)

// computeStats summarises runs (any order) over [from, to).
func computeStats(runs []powerautomate.Run, from, to time.Time, truncated bool) *teamcache.FlowStats {
	runs = slices.Clone(runs)
	sort.SliceStable(runs, func(i, j int) bool { return runs[i].StartTime.After(runs[j].StartTime) })
	st := &teamcache.FlowStats{From: teamcache.Time(from), To: teamcache.Time(to), ByStatus: map[string]int{}, Truncated: truncated}
	var finished int
	var total time.Duration
	var timed int
	for _, r := range runs {
		status := r.Status
		if status == "" {
			status = "Unknown"
		}
		st.Runs++
		st.ByStatus[status]++
		brief := runBrief(r)
		if len(st.Recent) < teamcache.RecentRuns {
			st.Recent = append(st.Recent, brief)
		}
		if st.LastRun == nil {
			b := brief
			st.LastRun = &b
		}
		if slices.Contains(unfinishedStatuses, status) {
			continue
		}
		finished++
		if slices.Contains(failedStatuses, status) {
			st.Failed++
			if st.LastFailure == nil {
				b := brief
				st.LastFailure = &b
			}
		}
		if !r.EndTime.IsZero() && !r.EndTime.Before(r.StartTime) {
			total += r.EndTime.Sub(r.StartTime)
			timed++
		}
	}
	if finished > 0 {
		st.FailureRate = math.Round(float64(st.Failed)/float64(finished)*10000) / 10000
	}
	if timed > 0 {
		st.AvgDurationMS = (total / time.Duration(timed)).Milliseconds()
	}
	if truncated && len(runs) > 0 {
		st.From = teamcache.Time(runs[len(runs)-1].StartTime)
	}
	return st
}

// runBrief keeps a run's name, status, times and error code: never its inputs,
// outputs or error message.
func runBrief(r powerautomate.Run) teamcache.RunBrief {
	b := teamcache.RunBrief{Name: r.Name, Status: r.Status, Start: teamcache.Time(r.StartTime), End: teamcache.Time(r.EndTime)}
	if !r.EndTime.IsZero() && !r.EndTime.Before(r.StartTime) {
		b.DurationMS = r.EndTime.Sub(r.StartTime).Milliseconds()
	}
	if slices.Contains(failedStatuses, r.Status) {
		if r.Error != nil && r.Error.Code != "" {
			b.ErrorCode = r.Error.Code
		} else {
			b.ErrorCode = r.Code
		}
	}
	return b
}
