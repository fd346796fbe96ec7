package sim

import (
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// The run engine turns a flow definition into a run: it walks the actions
// in runAfter order, nests Scope/If/Foreach/Until, records loop
// repetitions, and applies the failure rules below. The whole timeline is
// computed when the run starts; what a client sees is that timeline cut at
// the current time (view), so runs are Running until their last action ends.
// Expressions are not evaluated: If takes its true branch, Foreach runs 2-5
// iterations and Until 2.
//
// Failure rules (active for new runs; seeded history applies them only to
// the runs it marks as failed, as if the data had changed):
//  1. inputs containing a division by a literal zero, e.g. "@div(variables('Total'), 0)",
//     fail with InvalidTemplate ("Attempted to divide by zero.");
//  2. inputs with a "simulateFailure" member fail with its status, code and message,
//     e.g. {"simulateFailure": {"status": 502, "code": "BadGateway", "message": "..."}}.
// Fixing a definition (removing the expression or the marker) makes new
// runs succeed.

var divByZeroRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`div\([^()]*(\([^()]*\)[^()]*)*,\s*0\s*\)`) }) // compiled on first use: serve with a remote simulator never needs it

type run struct {
	name           string
	flow           *flow
	start          time.Time
	trigger        string
	triggerInputs  []byte // nil: no link
	triggerOutputs []byte
	result         *runResult
	cancelledAt    time.Time // zero unless cancelled
	keywords       []string
	trackingID     string
}

type runResult struct {
	end     time.Time
	failed  bool
	actions []*actionRecord // in start order, nested actions included
}

type actionRecord struct {
	name, typ       string
	status, code    string
	start, end      time.Time
	err             *errorBody
	inputs, outputs []byte
	reps            []*repRecord
}

type repRecord struct {
	indexes         []repIndex
	status, code    string
	start, end      time.Time
	err             *errorBody
	inputs, outputs []byte
}

type repIndex struct {
	ScopeName string `json:"scopeName"`
	ItemIndex int    `json:"itemIndex"`
}

// wfAction is the part of a workflow action the engine reads.
type wfAction struct {
	Type     string               `json:"type"`
	RunAfter map[string][]string  `json:"runAfter"`
	Inputs   json.RawMessage      `json:"inputs"`
	Actions  map[string]*wfAction `json:"actions"`
	Else     *struct {
		Actions map[string]*wfAction `json:"actions"`
	} `json:"else"`
	RuntimeConfiguration json.RawMessage `json:"runtimeConfiguration"`
}

type wfDefinition struct {
	Triggers map[string]struct {
		Type string `json:"type"`
		Kind string `json:"kind"`
	} `json:"triggers"`
	Actions map[string]*wfAction `json:"actions"`
}

type engine struct {
	clock    time.Time
	pace     time.Duration // typical duration of a plain action
	failures bool
	rng      *mrand.Rand
	records  map[string]*actionRecord
	order    []*actionRecord
	loops    []repIndex
}

// simulate runs a definition from start. pace scales action durations
// (milliseconds for live runs, longer for seeded history).
func simulate(def json.RawMessage, start time.Time, pace time.Duration, failures bool, seed uint64) *runResult {
	var d wfDefinition
	json.Unmarshal(def, &d) // validated on save; a bad one just has no actions
	e := &engine{clock: start, pace: pace, failures: failures, rng: mrand.New(mrand.NewPCG(seed, 7)), records: map[string]*actionRecord{}}
	failed, _ := e.runScope(d.Actions)
	return &runResult{end: e.clock.Add(pace / 4), failed: failed, actions: e.order}
}

var actionFailedErr = &errorBody{Code: "ActionFailed", Message: "An action failed. No dependent actions succeeded."}

func (e *engine) runScope(actions map[string]*wfAction) (failed bool, statuses map[string]string) {
	statuses = map[string]string{}
	for _, name := range topoOrder(actions) {
		a := actions[name]
		if pred, want, got, ok := unmetRunAfter(a, statuses); !ok {
			e.skip(name, a, fmt.Sprintf("The execution of template action '%s' is skipped: the 'runAfter' condition for action '%s' is not satisfied. Expected status values '%s' and actual value '%s'.",
				name, pred, strings.Join(want, ", "), got))
			statuses[name] = "Skipped"
			continue
		}
		statuses[name] = e.execute(name, a)
	}
	return unhandledFailure(actions, statuses), statuses
}

func (e *engine) execute(name string, a *wfAction) string {
	start := e.clock
	e.clock = e.clock.Add(e.pace / 10)
	rec := e.recordFor(name, a.Type, start)
	var failed bool
	var inputs, outputs []byte
	switch strings.ToLower(a.Type) {
	case "scope":
		failed, _ = e.runScope(a.Actions)
	case "if":
		failed, _ = e.runScope(a.Actions)
		if a.Else != nil {
			e.skipAll(a.Else.Actions, "The execution of template action '"+name+"' took the true branch.")
		}
		inputs = []byte(`{"expressionResult":true}`)
	case "foreach", "until":
		n := 2 + e.rng.IntN(4)
		if strings.EqualFold(a.Type, "until") {
			n = 2
		}
		for i := range n {
			e.loops = append(e.loops, repIndex{name, i})
			f, _ := e.runScope(a.Actions)
			failed = failed || f
			e.loops = e.loops[:len(e.loops)-1]
		}
	default:
		e.clock = e.clock.Add(e.duration(a))
		if ferr, fout := e.failure(name, a); ferr != nil {
			e.emit(rec, start, "Failed", ferr.Code, ferr, inputsFor(a, ferr), fout)
			return "Failed"
		}
		inputs, outputs = inputsFor(a, nil), outputsFor(a)
	}
	if failed {
		e.emit(rec, start, "Failed", actionFailedErr.Code, actionFailedErr, inputs, outputs)
		return "Failed"
	}
	e.emit(rec, start, "Succeeded", "OK", nil, inputs, outputs)
	return "Succeeded"
}

// duration of a plain action: Wait takes its interval, webhooks (approvals)
// wait for a person, the rest a moment.
func (e *engine) duration(a *wfAction) time.Duration {
	switch strings.ToLower(a.Type) {
	case "wait":
		var in struct {
			Interval struct {
				Count int    `json:"count"`
				Unit  string `json:"unit"`
			} `json:"interval"`
		}
		json.Unmarshal(a.Inputs, &in)
		unit := map[string]time.Duration{"second": time.Second, "minute": time.Minute, "hour": time.Hour, "day": 24 * time.Hour}[strings.ToLower(in.Interval.Unit)]
		return time.Duration(in.Interval.Count) * unit
	case "openapiconnectionwebhook":
		return 2 * time.Hour
	}
	return e.pace/2 + time.Duration(e.rng.Int64N(int64(e.pace)+1))
}

// failure applies the failure rules to a plain action.
func (e *engine) failure(name string, a *wfAction) (*errorBody, []byte) {
	if !e.failures || a.Inputs == nil {
		return nil, nil
	}
	if divByZeroRE().Match(a.Inputs) {
		return &errorBody{Code: "InvalidTemplate", Message: "Unable to process template language expressions in action '" + name +
			"' inputs at line '0' and column '0': 'Attempted to divide by zero.'."}, nil
	}
	var in struct {
		SimulateFailure json.RawMessage `json:"simulateFailure"`
	}
	if json.Unmarshal(a.Inputs, &in) != nil || in.SimulateFailure == nil || string(in.SimulateFailure) == "false" {
		return nil, nil
	}
	f := struct {
		Status  int    `json:"status"`
		Code    string `json:"code"`
		Message string `json:"message"`
	}{500, "InternalServerError", "The simulated action failed."}
	json.Unmarshal(in.SimulateFailure, &f)
	out, _ := json.Marshal(map[string]any{"statusCode": f.Status, "headers": map[string]string{"Content-Type": "application/json"},
		"body": map[string]any{"error": map[string]string{"code": f.Code, "message": f.Message}}})
	return &errorBody{Code: f.Code, Message: f.Message}, out
}

// inputsFor: an action whose expressions failed to evaluate has no inputs.
func inputsFor(a *wfAction, failed *errorBody) []byte {
	if len(a.Inputs) == 0 || (failed != nil && failed.Code == "InvalidTemplate") {
		return nil
	}
	return a.Inputs
}

func outputsFor(a *wfAction) []byte {
	switch strings.ToLower(a.Type) {
	case "compose":
		return a.Inputs
	case "http":
		return []byte(`{"statusCode":200,"headers":{"Content-Type":"application/json"},"body":{"status":"ok","items":3}}`)
	case "parsejson":
		return []byte(`{"body":{"status":"ok","items":3}}`)
	case "openapiconnection", "openapiconnectionwebhook":
		var in struct {
			Host struct {
				OperationID string `json:"operationId"`
			} `json:"host"`
		}
		json.Unmarshal(a.Inputs, &in)
		return connectorOutput(in.Host.OperationID)
	}
	return nil
}

func (e *engine) recordFor(name, typ string, start time.Time) *actionRecord {
	rec := e.records[name]
	if rec == nil {
		rec = &actionRecord{name: name, typ: typ, start: start}
		e.records[name] = rec
		e.order = append(e.order, rec)
	}
	return rec
}

// emit finishes one execution of an action: inside loops it adds a
// repetition, and the action itself shows the latest one.
func (e *engine) emit(rec *actionRecord, start time.Time, status, code string, err *errorBody, inputs, outputs []byte) {
	if len(e.loops) > 0 {
		rec.reps = append(rec.reps, &repRecord{indexes: slices.Clone(e.loops), status: status, code: code,
			start: start, end: e.clock, err: err, inputs: inputs, outputs: outputs})
	} else {
		rec.start = start
	}
	rec.status, rec.code, rec.end, rec.err, rec.inputs, rec.outputs = status, code, e.clock, err, inputs, outputs
}

func (e *engine) skip(name string, a *wfAction, why string) {
	rec := e.recordFor(name, a.Type, e.clock)
	e.emit(rec, e.clock, "Skipped", "ActionSkipped", &errorBody{Code: "ActionConditionFailed", Message: why}, nil, nil)
	e.skipAll(a.Actions, "The execution of template action '"+name+"' was skipped.")
	if a.Else != nil {
		e.skipAll(a.Else.Actions, "The execution of template action '"+name+"' was skipped.")
	}
}

func (e *engine) skipAll(actions map[string]*wfAction, why string) {
	for _, name := range topoOrder(actions) {
		e.skip(name, actions[name], why)
	}
}

// unmetRunAfter checks an action's runAfter against its predecessors'
// statuses; an empty status list means Succeeded.
func unmetRunAfter(a *wfAction, statuses map[string]string) (pred string, want []string, got string, ok bool) {
	preds := make([]string, 0, len(a.RunAfter))
	for p := range a.RunAfter {
		preds = append(preds, p)
	}
	sort.Strings(preds)
	for _, p := range preds {
		got, known := statuses[p]
		if !known {
			continue // a dangling reference; checkFlowErrors reports it
		}
		want := a.RunAfter[p]
		if len(want) == 0 {
			want = []string{"Succeeded"}
		}
		if !slices.ContainsFunc(want, func(w string) bool { return strings.EqualFold(w, got) }) {
			return p, want, got, false
		}
	}
	return "", nil, "", true
}

// unhandledFailure: a scope (or run) fails when an action failed and no
// action that ran was set to run after that failure.
func unhandledFailure(actions map[string]*wfAction, statuses map[string]string) bool {
	for name, st := range statuses {
		if st != "Failed" {
			continue
		}
		handled := false
		for other, a := range actions {
			if statuses[other] != "Skipped" && slices.ContainsFunc(a.RunAfter[name], func(w string) bool { return strings.EqualFold(w, "Failed") }) {
				handled = true
			}
		}
		if !handled {
			return true
		}
	}
	return false
}

// topoOrder sorts actions so that each comes after its runAfter
// predecessors, ties by name; cycles and dangling references are tolerated.
func topoOrder(actions map[string]*wfAction) []string {
	names := make([]string, 0, len(actions))
	for n := range actions {
		names = append(names, n)
	}
	sort.Strings(names)
	done := map[string]bool{}
	var order []string
	for len(order) < len(names) {
		progressed := false
		for _, n := range names {
			if done[n] {
				continue
			}
			ready := true
			for p := range actions[n].RunAfter {
				if _, exists := actions[p]; exists && !done[p] {
					ready = false
				}
			}
			if ready {
				done[n], progressed = true, true
				order = append(order, n)
			}
		}
		if !progressed { // a cycle: take the rest in name order
			for _, n := range names {
				if !done[n] {
					done[n] = true
					order = append(order, n)
				}
			}
		}
	}
	return order
}

// runView is a run as seen at one moment.
type runView struct {
	status, code string
	err          *errorBody
	end          time.Time // zero while running
	actions      []*actionRecord
}

// view cuts the run's timeline at now (or at its cancellation).
func (r *run) view(now time.Time) runView {
	res := r.result
	cut, cancelled := now, !r.cancelledAt.IsZero()
	if cancelled {
		cut = r.cancelledAt
	}
	if !cancelled && !now.Before(res.end) {
		v := runView{status: "Succeeded", end: res.end, actions: res.actions}
		if res.failed {
			v.status, v.code, v.err = "Failed", actionFailedErr.Code, actionFailedErr
		}
		return v
	}
	inFlight := "Running"
	v := runView{status: "Running"}
	if cancelled {
		v.status, v.code, v.end, inFlight = "Cancelled", "Cancelled", cut, "Cancelled"
	}
	for _, a := range res.actions {
		if a.start.After(cut) {
			continue
		}
		if !a.end.After(cut) {
			v.actions = append(v.actions, a)
			continue
		}
		part := &actionRecord{name: a.name, typ: a.typ, status: inFlight, code: inFlight, start: a.start, inputs: a.inputs}
		if cancelled {
			part.end = cut
		}
		for _, rep := range a.reps {
			if !rep.end.After(cut) {
				part.reps = append(part.reps, rep)
			}
		}
		v.actions = append(v.actions, part)
	}
	return v
}
