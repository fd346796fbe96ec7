// Package alerts acts on the notify rules that update_store_flow stores on monitored
// flows: after each sync, and from the frequent check of monitored flows, it
// evaluates each rule against the flow's newest runs, opens an incident (one alert:
// an email to the rule's addresses and a signed webhook call) when a rule starts to
// hold, and closes it when the flow recovers. An open incident raises nothing more,
// however many runs fail meanwhile.
//
// What an alert says is the flow's display name, its environment, what happened
// (how many runs failed and the first error code, a failure rate, or how long the
// flow has not run), when, and a link to the flow. Never run content: the cache
// holds none, and the live check reads run status, times and codes only.
package alerts

import (
	"strconv"
	"strings"
	"time"

	"github.com/flowstudio/mcp/tools/teamcache"
)

// Observation is what is known of a flow's runs at an evaluation.
type Observation struct {
	// Runs are the newest runs, newest first (status, start, error code).
	Runs []teamcache.RunBrief
	// Rate is the failure rate over the sync window; HasRate is false when the
	// observation did not compute one (the live check), and failureRateAbove rules
	// are then left as they are.
	Rate    float64
	Window  string
	HasRate bool
}

// opened is an incident opened by one evaluation: the alert to raise.
type opened struct {
	key       string
	rules     []teamcache.NotifyRule
	what      string
	at        string
	errorCode string
	runName   string
	recovered bool // closed again within the same evaluation
	failures  int  // anyFailure: failed runs counted by this evaluation
	alertKey  string
}

// evaluate applies the monitored flow's rules to what was observed. It returns the
// next state, the incidents opened (each raises one alert) and the alert keys of the
// incidents that closed.
func evaluate(g teamcache.Governance, f teamcache.Flow, obs Observation, st teamcache.AlertState, now time.Time) (teamcache.AlertState, []*opened, []string) {
	next := st
	next.EnvironmentName, next.FlowName = g.EnvironmentName, g.FlowName
	next.Open = map[string]*teamcache.Incident{}
	for k, v := range st.Open {
		c := *v
		next.Open[k] = &c
	}
	next.CheckedAt = teamcache.Time(now)

	byKey := map[string][]teamcache.NotifyRule{}
	var keys []string
	for _, r := range g.NotifyRules {
		k := teamcache.IncidentKey(r)
		if byKey[k] == nil {
			keys = append(keys, k)
		}
		byKey[k] = append(byKey[k], r)
	}
	// An incident whose rule was removed is closed without a word.
	var closed []string
	for k, inc := range next.Open {
		if byKey[k] == nil {
			closed = append(closed, inc.AlertKey)
			delete(next.Open, k)
		}
	}

	fresh := newFinished(obs.Runs, st.SeenStart, st.SeenRun)
	var out []*opened
	for _, k := range keys {
		rule := byKey[k][0]
		switch rule.When {
		case teamcache.WhenAnyFailure:
			op, cl := failures(next.Open, k, fresh)
			closed = append(closed, cl...)
			if op != nil {
				op.rules = byKey[k]
				out = append(out, op)
			}
		case teamcache.WhenFailureRateAbove:
			if !obs.HasRate {
				continue
			}
			if obs.Rate > rule.Threshold {
				if next.Open[k] == nil {
					next.Open[k] = &teamcache.Incident{Since: teamcache.Time(now)}
					out = append(out, &opened{key: k, rules: byKey[k], at: teamcache.Time(now),
						what: "failure rate " + percent(obs.Rate) + " over the last " + obs.Window + " (alert above " + percent(rule.Threshold) + ")"})
				}
			} else if inc := next.Open[k]; inc != nil {
				closed = append(closed, inc.AlertKey)
				delete(next.Open, k)
			}
		case teamcache.WhenNoRunsFor:
			last := f.Created
			if len(obs.Runs) > 0 {
				last = obs.Runs[0].Start
			}
			lastT, err := time.Parse(time.RFC3339, last)
			if err != nil || f.State != "Started" {
				continue // a flow that is off is not expected to run
			}
			limit := time.Duration(rule.Threshold) * time.Hour
			if now.Sub(lastT) > limit {
				if next.Open[k] == nil {
					next.Open[k] = &teamcache.Incident{Since: teamcache.Time(now)}
					what := "no run for " + span(now.Sub(lastT)) + " (alert after " + span(limit) + ")"
					if len(obs.Runs) > 0 {
						what += "; last run started " + last
					}
					out = append(out, &opened{key: k, rules: byKey[k], at: last, what: what})
				}
			} else if inc := next.Open[k]; inc != nil {
				closed = append(closed, inc.AlertKey)
				delete(next.Open, k)
			}
		}
	}
	if n := len(fresh); n > 0 {
		next.SeenStart, next.SeenRun = fresh[n-1].Start, fresh[n-1].Name
	}
	if len(next.Open) == 0 {
		next.Open = nil
	}
	return next, out, closed
}

// newFinished are the finished runs after the one seen last, oldest first. Before
// the first evaluation only the newest finished run counts: a flow failing now is
// an incident, its old failures are not.
func newFinished(runs []teamcache.RunBrief, seenStart, seenRun string) []teamcache.RunBrief {
	var out []teamcache.RunBrief
	for _, r := range runs { // newest first
		if !finished(r.Status) {
			continue
		}
		// Times have whole seconds, so runs of one second are told apart by their
		// place in the newest-first list: everything before the run seen last is new.
		if seenStart != "" && (r.Name == seenRun || r.Start < seenStart) {
			break
		}
		out = append(out, r)
		if seenStart == "" {
			break
		}
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}

// failures walks the new finished runs in order: a failure opens the anyFailure
// incident (or counts in the open one), a success closes it.
func failures(open map[string]*teamcache.Incident, key string, runs []teamcache.RunBrief) (*opened, []string) {
	var op *opened
	var closed []string
	for _, r := range runs {
		inc := open[key]
		switch {
		case failed(r.Status) && inc == nil:
			open[key] = &teamcache.Incident{Since: r.Start, Failures: 1, FirstRun: r.Name, ErrorCode: r.ErrorCode}
			op = &opened{key: key, at: r.Start, errorCode: r.ErrorCode, runName: r.Name, failures: 1}
		case failed(r.Status):
			inc.Failures++
			if op != nil {
				op.failures++
			}
		case r.Status == "Succeeded" && inc != nil:
			if op != nil && op.key == key && inc.AlertKey == "" {
				op.recovered = true // failed and recovered between two evaluations
			} else {
				closed = append(closed, inc.AlertKey)
			}
			delete(open, key)
		}
	}
	if op != nil {
		op.what = plural(op.failures, "run") + " failed since " + op.at
		if op.errorCode != "" {
			op.what += "; first error code " + op.errorCode
		}
		if op.recovered {
			op.what += "; a later run succeeded"
		}
	}
	return op, closed
}

func finished(status string) bool {
	switch status {
	case "Running", "Waiting", "Suspended", "Paused", "Queued", "":
		return false
	}
	return true
}

func failed(status string) bool { return status == "Failed" || status == "TimedOut" }

func percent(r float64) string { return strconv.FormatFloat(r*100, 'f', 0, 64) + "%" }

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return strconv.Itoa(n) + " " + what + "s"
}

// span renders a duration in whole days when at least two, else whole hours.
func span(d time.Duration) string {
	if d >= 48*time.Hour {
		return plural(int(d/(24*time.Hour)), "day")
	}
	return plural(max(int(d/time.Hour), 1), "hour")
}

// flowLink is the flow's page in the Power Automate portal.
func flowLink(portal, env, flow, run string) string {
	u := strings.TrimRight(portal, "/") + "/environments/" + env + "/flows/" + flow
	if run != "" {
		return u + "/runs/" + run
	}
	return u + "/details"
}
