package tools

import (
	"cmp"
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/flowstudio/mcp/tools/powerautomate"
)

// runArgs are the identifier arguments of the single-run tools.
type runArgs struct {
	flowArgs
	RunName string `json:"runName"`
}

type runRow struct {
	Name        string `json:"name"`
	Status      string `json:"status"`
	Start       string `json:"start"`
	End         string `json:"end,omitempty"`
	DurationMs  int64  `json:"durationMs,omitempty"`
	Trigger     string `json:"trigger,omitempty"`
	ErrorCode   string `json:"errorCode,omitempty"`
	Resubmitted bool   `json:"resubmitted,omitempty"`
}

func toRunRow(r powerautomate.Run) runRow {
	row := runRow{Name: r.Name, Status: r.Status, Start: day(r.StartTime), End: day(r.EndTime), Trigger: r.Trigger.Name,
		Resubmitted: slices.Contains(r.ClientKeywords, "resubmitFlow")}
	if !r.EndTime.IsZero() && !r.StartTime.IsZero() {
		row.DurationMs = r.EndTime.Sub(r.StartTime).Milliseconds()
	}
	if r.Error != nil && r.Error.Code != "" {
		row.ErrorCode = r.Error.Code
	} else if r.Status == "Failed" || r.Status == "TimedOut" {
		row.ErrorCode = r.Code
	}
	return row
}

type runsIn struct {
	flowArgs
	Status   string `json:"status"`
	Since    string `json:"since"`
	Until    string `json:"until"`
	PageSize int    `json:"pageSize"`
	Cursor   string `json:"cursor"`
}

type runsOut struct {
	Runs       []runRow `json:"runs"`
	NextCursor string   `json:"nextCursor,omitempty"`
}

func getLiveFlowRuns() *Tool {
	return Define(Tool{
		Name:  "get_live_flow_runs",
		Title: "List a cloud flow's runs",
		Description: "Lists a cloud flow's run history, newest first, compactly: run name (the runName for other tools), " +
			"status, start, end, duration, trigger name, error code, whether it was a resubmission. Filter by status " +
			"(e.g. Failed) and a start-time window (since/until, RFC 3339); page with pageSize and nextCursor. Next: " +
			"get_live_flow_run_error for why a run failed, get_live_flow_run_action_outputs for what an action saw.",
		Kind:  ReadOnly,
		Group: Live,
		Input: inputSchema(environmentNameArg, flowNameArg, runStatusArg,
			optionalArg("since", `{"type":"string","maxLength":40,"description":"Only runs started at or after this time (RFC 3339, e.g. 2026-05-01T00:00:00Z)."}`),
			optionalArg("until", `{"type":"string","maxLength":40,"description":"Only runs started before this time (RFC 3339)."}`),
			pageSizeArg, cursorArg),
		Output: json.RawMessage(`{"type":"object","required":["runs"],"properties":{"runs":{"type":"array","items":{"type":"object",
"required":["name","status","start"],"properties":{"name":{"type":"string"},"status":{"type":"string"},"start":{"type":"string"},
"end":{"type":"string"},"durationMs":{"type":"integer"},"trigger":{"type":"string"},"errorCode":{"type":"string"},
"resubmitted":{"type":"boolean"}}}},"nextCursor":{"type":"string"}}}`),
	}, func(ctx context.Context, env *Env, in runsIn) (runsOut, error) {
		since, err := parseTimeArg("since", in.Since)
		if err != nil {
			return runsOut{}, err
		}
		until, err := parseTimeArg("until", in.Until)
		if err != nil {
			return runsOut{}, err
		}
		if !since.IsZero() && !until.IsZero() && !since.Before(until) {
			return runsOut{}, &ToolError{Message: "invalid arguments: since must be before until"}
		}
		next, err := linkFromCursor(in.Cursor)
		if err != nil {
			return runsOut{}, err
		}
		in.PageSize = cmp.Or(in.PageSize, defaultPageSize)
		filtered := in.Status != "" || !since.IsZero() || !until.IsZero()
		out := runsOut{Runs: []runRow{}}
		progress := newPageProgress(ctx, "runs")
		for n := 1; n <= searchPages; n++ {
			page, err := env.PA.ListRuns(ctx, in.ref(), powerautomate.ListRunsOptions{
				Status: in.Status, StartFrom: since, StartTo: until, Top: in.PageSize, NextLink: next,
			})
			if err != nil {
				return runsOut{}, err
			}
			for _, r := range page.Runs {
				out.Runs = append(out.Runs, toRunRow(r))
			}
			next = page.NextLink
			// The client filters again after the service; when the service ignored a
			// filter a page can come back thin, so keep reading until it is full.
			if !filtered || next == "" || len(out.Runs) >= in.PageSize {
				break
			}
			progress.page(n, searchPages, len(out.Runs))
		}
		out.NextCursor = linkCursor(next)
		return out, nil
	})
}

func parseTimeArg(field, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, &ToolError{Message: "invalid argument " + field + ": want an RFC 3339 time such as 2026-05-01T00:00:00Z"}
	}
	return t, nil
}

// failedStatus says whether a run or action status is a failure.
func failedStatus(s string) bool { return s == "Failed" || s == "TimedOut" }

type failedAction struct {
	Name              string `json:"name"`
	Status            string `json:"status"`
	Code              string `json:"code,omitempty"`
	Message           string `json:"message,omitempty"`
	Parent            string `json:"parent,omitempty"`
	Repetition        *int   `json:"repetition,omitempty"`
	FailedRepetitions int    `json:"failedRepetitions,omitempty"`
	DefinitionPath    string `json:"definitionPath,omitempty"`
}

type runErrorOut struct {
	RunName       string         `json:"runName,omitempty"`
	Status        string         `json:"status,omitempty"`
	Failed        bool           `json:"failed"`
	Start         string         `json:"start,omitempty"`
	Error         *errorInfo     `json:"error,omitempty"`
	FailedActions []failedAction `json:"failedActions"`
	RootCause     string         `json:"rootCause,omitempty"`
	Message       string         `json:"message,omitempty"`
	Next          string         `json:"next,omitempty"`
}

type errorInfo struct {
	Code    string `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
}

// Loops: how many looped actions get their repetitions read, and how many pages each.
const (
	maxRepetitionLookups = 8
	maxRepetitionPages   = 4
)

type runErrorIn struct {
	flowArgs
	RunName string `json:"runName"`
}

func getLiveFlowRunError() *Tool {
	return Define(Tool{
		Name:  "get_live_flow_run_error",
		Title: "Explain why a flow run failed",
		Description: "Finds why a run failed: the failed actions from the outermost scope inward, the root cause last " +
			"(rootCause names it), each with its error code and message (the flow's own error text, capped), the " +
			"loop iteration (repetition) where a loop failed, and where the root cause sits in the definition. Leave out " +
			"runName to take the newest failed run. Says so when the run did not fail. Next: " +
			"get_live_flow_run_action_outputs for the failing action's inputs, get_live_flow with actionName for its " +
			"definition, update_live_flow to fix it, resubmit_live_flow_run to retry.",
		Kind:  ReadOnly,
		Group: Live,
		Input: inputSchema(environmentNameArg, flowNameArg, runNameArg.optional().noted("Leave out for the newest failed run. ")),
		Output: json.RawMessage(`{"type":"object","required":["failed","failedActions"],"properties":{
"runName":{"type":"string"},"status":{"type":"string"},"failed":{"type":"boolean"},"start":{"type":"string"},
"error":{"type":"object","properties":{"code":{"type":"string"},"message":{"type":"string"}}},
"failedActions":{"type":"array","items":{"type":"object","required":["name","status"],"properties":{"name":{"type":"string"},
"status":{"type":"string"},"code":{"type":"string"},"message":{"type":"string"},"parent":{"type":"string"},
"repetition":{"type":"integer","description":"0-based index of the first failed loop iteration."},"failedRepetitions":{"type":"integer"},
"definitionPath":{"type":"string","description":"Where the action sits in the definition, for get_live_flow path."}}}},
"rootCause":{"type":"string"},"message":{"type":"string"},"next":{"type":"string"}}}`),
	}, func(ctx context.Context, env *Env, in runErrorIn) (runErrorOut, error) {
		ref := in.ref()
		runName := in.RunName
		if runName == "" {
			page, err := env.PA.ListRuns(ctx, ref, powerautomate.ListRunsOptions{Status: "Failed", Top: 1})
			if err != nil {
				return runErrorOut{}, err
			}
			if len(page.Runs) == 0 {
				return runErrorOut{FailedActions: []failedAction{}, Message: "this flow has no failed runs in its run history",
					Next: "get_live_flow_runs to see its runs"}, nil
			}
			runName = page.Runs[0].Name
		}
		run, err := env.PA.GetRun(ctx, ref, runName, false)
		if err != nil {
			return runErrorOut{}, err
		}
		out := runErrorOut{RunName: run.Name, Status: run.Status, Start: day(run.StartTime), FailedActions: []failedAction{}}
		if !failedStatus(run.Status) {
			out.Message = "the run did not fail: its status is " + run.Status
			return out, nil
		}
		out.Failed = true
		if run.Error != nil {
			out.Error = &errorInfo{Code: run.Error.Code, Message: errorMessage(run.Error.Code, run.Error.Message)}
		}
		actions, err := env.PA.ListRunActions(ctx, ref, run.Name)
		if err != nil {
			return runErrorOut{}, err
		}
		flow, err := env.PA.GetFlow(ctx, ref)
		if err != nil {
			return runErrorOut{}, err
		}
		failed, err := failedActions(ctx, env, ref, run.Name, actions, flow.Definition)
		if err != nil {
			return runErrorOut{}, err
		}
		out.FailedActions = failed
		if n := len(failed); n > 0 {
			root := failed[n-1]
			out.RootCause = root.Name
			out.Next = "get_live_flow_run_action_outputs with actionName " + root.Name
			if root.Repetition != nil {
				out.Next += " and repetition " + strconv.Itoa(*root.Repetition)
			}
			out.Next += " shows what it received; get_live_flow with actionName " + root.Name +
				" shows its definition; after update_live_flow fixes it, resubmit_live_flow_run retries this run"
		} else {
			out.Message = "the run failed but no failed action was found (it may have timed out or been stopped by a limit)"
		}
		return out, nil
	})
}

// failedActions orders a run's failed actions from the outside in with the root cause
// last, using the definition for nesting. Looped actions get their repetitions read,
// since an action inside a loop shows only its last iteration.
func failedActions(ctx context.Context, env *Env, ref powerautomate.FlowRef, run string, actions []powerautomate.RunAction, def json.RawMessage) ([]failedAction, error) {
	byName := map[string]powerautomate.RunAction{}
	for _, a := range actions {
		byName[strings.ToLower(a.Name)] = a
	}
	nodes := definitionActions(def)
	parent := map[string]string{}
	for _, n := range nodes {
		parent[strings.ToLower(n.Name)] = strings.ToLower(n.Parent)
	}
	underFailure := func(name string) bool {
		for p := parent[name]; p != ""; p = parent[p] {
			if failedStatus(byName[p].Status) {
				return true
			}
		}
		return false
	}
	// Candidates in definition order (parents first), then actions the definition
	// no longer has, in run order.
	var order []string
	seen := map[string]bool{}
	for _, n := range nodes {
		key := strings.ToLower(n.Name)
		if _, ran := byName[key]; ran {
			order, seen[key] = append(order, key), true
		}
	}
	for _, a := range actions {
		if key := strings.ToLower(a.Name); !seen[key] {
			order, seen[key] = append(order, key), true
		}
	}
	paths := map[string]string{}
	for _, n := range nodes {
		paths[strings.ToLower(n.Name)] = dottedPath(n.Path)
	}
	var out []failedAction
	lookups := 0
	for _, key := range order {
		a := byName[key]
		looped := a.RepetitionCount > 0 && (failedStatus(a.Status) || underFailure(key))
		if !failedStatus(a.Status) && !looped {
			continue
		}
		fa := failedAction{Name: a.Name, Status: a.Status, Code: a.Code, Parent: byName[parent[key]].Name}
		if a.Error != nil {
			fa.Code, fa.Message = a.Error.Code, errorMessage(a.Error.Code, a.Error.Message)
		}
		if looped && lookups < maxRepetitionLookups {
			lookups++
			reps, err := failedRepetitions(ctx, env, ref, run, a.Name)
			if err != nil {
				return nil, err
			}
			if len(reps) > 0 {
				first := reps[0]
				idx := innermostIndex(first)
				fa.Status, fa.Code, fa.Repetition, fa.FailedRepetitions = first.Status, first.Code, &idx, len(reps)
				if first.Error != nil {
					fa.Code, fa.Message = first.Error.Code, errorMessage(first.Error.Code, first.Error.Message)
				}
			}
		}
		if failedStatus(fa.Status) {
			out = append(out, fa)
		}
	}
	return rootCauseLast(out, parent, paths), nil
}

// errorMessage is an action's error text, capped; the generic text of ActionFailed
// (a scope whose inner action failed) is left out, the code says it all.
func errorMessage(code, msg string) string {
	if code == "ActionFailed" {
		return ""
	}
	return capText(msg, maxMessageChars)
}

func failedRepetitions(ctx context.Context, env *Env, ref powerautomate.FlowRef, run, action string) ([]powerautomate.Repetition, error) {
	var failed []powerautomate.Repetition
	next := ""
	for range maxRepetitionPages {
		page, err := env.PA.ListActionRepetitions(ctx, ref, run, action, next)
		if err != nil {
			return nil, err
		}
		for _, r := range page.Repetitions {
			if failedStatus(r.Status) {
				failed = append(failed, r)
			}
		}
		if next = page.NextLink; next == "" {
			break
		}
	}
	return failed, nil
}

func innermostIndex(r powerautomate.Repetition) int {
	if len(r.Indexes) == 0 {
		n, _ := strconv.Atoi(r.Name)
		return n
	}
	return r.Indexes[len(r.Indexes)-1].ItemIndex
}

// rootCauseLast picks the root cause (the first failed action with no failed action
// inside it, preferring a real error over the generic ActionFailed of a scope) and
// moves its chain of enclosing actions to the end, outer to inner.
func rootCauseLast(failed []failedAction, parent map[string]string, paths map[string]string) []failedAction {
	if len(failed) == 0 {
		return failed
	}
	isFailed := map[string]bool{}
	for _, f := range failed {
		isFailed[strings.ToLower(f.Name)] = true
	}
	hasFailedChild := map[string]bool{}
	for _, f := range failed {
		for p := parent[strings.ToLower(f.Name)]; p != ""; p = parent[p] {
			hasFailedChild[p] = true
		}
	}
	root := -1
	for i, f := range failed {
		if hasFailedChild[strings.ToLower(f.Name)] {
			continue
		}
		if root < 0 || (failed[root].Code == "ActionFailed" && f.Code != "ActionFailed") {
			root = i
		}
	}
	if root < 0 {
		root = len(failed) - 1
	}
	chain := map[string]bool{}
	for p := strings.ToLower(failed[root].Name); p != ""; p = parent[p] {
		chain[p] = true
	}
	var rest, tail []failedAction
	for _, f := range failed {
		if chain[strings.ToLower(f.Name)] {
			tail = append(tail, f)
		} else {
			rest = append(rest, f)
		}
	}
	// Definition order puts parents first, so the chain already runs outer to inner;
	// the root cause is its last element.
	out := append(rest, tail...)
	last := &out[len(out)-1]
	last.DefinitionPath = paths[strings.ToLower(last.Name)]
	return out
}

// Content limits for get_live_flow_run_action_outputs: what one call returns at most.
const (
	defaultContentBytes = 16 << 10
	maxContentBytes     = 256 << 10
)

type actionOutputsIn struct {
	runArgs
	ActionName string `json:"actionName"`
	Repetition *int   `json:"repetition"`
	Include    string `json:"include"`
	MaxBytes   int    `json:"maxBytes"`
}

// contentPiece is one input or output: the JSON value when it fits, else the start
// of its text with a truncation marker.
type contentPiece struct {
	Value      json.RawMessage `json:"value,omitempty"`
	Text       string          `json:"text,omitempty"`
	Truncated  bool            `json:"truncated,omitempty"`
	TotalBytes int64           `json:"totalBytes,omitempty"`
	Skipped    string          `json:"skipped,omitempty"`
	Error      string          `json:"error,omitempty"`
}

type actionContent struct {
	Name            string        `json:"name"`
	Kind            string        `json:"kind,omitempty"` // "trigger" for the trigger
	Status          string        `json:"status,omitempty"`
	Repetition      *int          `json:"repetition,omitempty"`
	RepetitionCount int           `json:"repetitionCount,omitempty"`
	Inputs          *contentPiece `json:"inputs,omitempty"`
	Outputs         *contentPiece `json:"outputs,omitempty"`
	Note            string        `json:"note,omitempty"`
}

type actionOutputsOut struct {
	RunName   string          `json:"runName"`
	Status    string          `json:"status"`
	Actions   []actionContent `json:"actions"`
	Truncated bool            `json:"truncated"`
	Next      string          `json:"next,omitempty"`
}

const contentPieceSchema = `{"type":"object","properties":{"value":{` + anyJSONType + `,"description":"The content as JSON, when complete."},
"text":{"type":"string","description":"The start of the content when truncated (cut at a JSON token boundary), or non-JSON content."},
"truncated":{"type":"boolean"},"totalBytes":{"type":"integer"},"skipped":{"type":"string"},"error":{"type":"string"}}}`

func getLiveFlowRunActionOutputs() *Tool {
	return Define(Tool{
		Name:  "get_live_flow_run_action_outputs",
		Title: "Read the inputs and outputs of a run's actions",
		Description: "Returns what actions of a run received and produced: one action (actionName; the trigger's name " +
			"gives the trigger) or every action in run order. For an action inside a loop, repetition picks the " +
			"iteration (0-based; without it the last iteration is shown). Content over maxBytes (default 16384, " +
			"at most 262144, shared by everything returned) is cut with truncated: true and totalBytes. Use it after " +
			"get_live_flow_run_error to see the data behind a failure; ask for one action and include=inputs or " +
			"outputs to save space.",
		Kind:  ReadOnly,
		Group: Live,
		Input: inputSchema(environmentNameArg, flowNameArg, runNameArg,
			actionNameArg.noted("Leave out for every action (and the trigger). "),
			optionalArg("repetition", `{"type":"integer","minimum":0,"maximum":100000,"description":"0-based loop iteration of actionName."}`),
			optionalArg("include", `{"type":"string","enum":["both","inputs","outputs"],"default":"both","description":"Which side to return."}`),
			optionalArg("maxBytes", `{"type":"integer","minimum":256,"maximum":`+strconv.Itoa(maxContentBytes)+`,"default":`+strconv.Itoa(defaultContentBytes)+`,"description":"Upper bound on content bytes returned in total."}`)),
		Output: json.RawMessage(`{"type":"object","required":["runName","status","actions","truncated"],"properties":{
"runName":{"type":"string"},"status":{"type":"string"},"truncated":{"type":"boolean"},"next":{"type":"string"},
"actions":{"type":"array","items":{"type":"object","required":["name"],"properties":{"name":{"type":"string"},"kind":{"type":"string"},
"status":{"type":"string"},"repetition":{"type":"integer"},"repetitionCount":{"type":"integer"},
"inputs":` + contentPieceSchema + `,"outputs":` + contentPieceSchema + `,"note":{"type":"string"}}}}}}`),
	}, func(ctx context.Context, env *Env, in actionOutputsIn) (actionOutputsOut, error) {
		if in.Repetition != nil && in.ActionName == "" {
			return actionOutputsOut{}, &ToolError{Message: "invalid arguments: repetition needs actionName"}
		}
		if in.MaxBytes == 0 {
			in.MaxBytes = defaultContentBytes
		}
		ref := in.ref()
		run, err := env.PA.GetRun(ctx, ref, in.RunName, false)
		if err != nil {
			return actionOutputsOut{}, err
		}
		out := actionOutputsOut{RunName: run.Name, Status: run.Status, Actions: []actionContent{}}
		type item struct {
			content         actionContent
			inputs, outputs *powerautomate.ContentLink
		}
		var items []item
		trigger := item{content: actionContent{Name: run.Trigger.Name, Kind: "trigger", Status: run.Trigger.Status},
			inputs: run.Trigger.InputsLink, outputs: run.Trigger.OutputsLink}
		if in.ActionName != "" && strings.EqualFold(in.ActionName, run.Trigger.Name) {
			if in.Repetition != nil {
				return actionOutputsOut{}, &ToolError{Message: "invalid arguments: a trigger has no repetitions"}
			}
			items = append(items, trigger)
		} else {
			actions, err := env.PA.ListRunActions(ctx, ref, run.Name)
			if err != nil {
				return actionOutputsOut{}, err
			}
			if in.ActionName == "" && run.Trigger.Name != "" {
				items = append(items, trigger)
			}
			found := false
			for _, a := range actions {
				if in.ActionName != "" && !strings.EqualFold(a.Name, in.ActionName) {
					continue
				}
				found = true
				it := item{content: actionContent{Name: a.Name, Status: a.Status, RepetitionCount: a.RepetitionCount},
					inputs: a.InputsLink, outputs: a.OutputsLink}
				if in.Repetition != nil {
					rep, err := findRepetition(ctx, env, ref, run.Name, a, *in.Repetition)
					if err != nil {
						return actionOutputsOut{}, err
					}
					idx := *in.Repetition
					it.content.Repetition, it.content.Status, it.inputs, it.outputs = &idx, rep.Status, rep.InputsLink, rep.OutputsLink
				} else if in.ActionName != "" && a.RepetitionCount > 0 {
					it.content.Note = "inside a loop: this is the last iteration; pass repetition (0-based) for another"
				}
				items = append(items, it)
			}
			if in.ActionName != "" && !found {
				return actionOutputsOut{}, &ToolError{Message: "no action " + strconv.Quote(in.ActionName) + " ran in this run" +
					actionNamesHint(actions), Next: "pick an action name from this list, or leave actionName out for all"}
			}
		}
		budget := int64(in.MaxBytes)
		for _, it := range items {
			c := it.content
			if in.Include != "outputs" && it.inputs != nil {
				c.Inputs = fetchPiece(ctx, env, it.inputs, &budget)
			}
			if in.Include != "inputs" && it.outputs != nil {
				c.Outputs = fetchPiece(ctx, env, it.outputs, &budget)
			}
			if it.inputs == nil && it.outputs == nil && in.ActionName != "" && c.Note == "" {
				c.Note = "no inputs or outputs were recorded: the action was skipped, is still running, or failed before its inputs were evaluated (see get_live_flow_run_error)"
			}
			for _, p := range []*contentPiece{c.Inputs, c.Outputs} {
				if p != nil && (p.Truncated || p.Skipped != "") {
					out.Truncated = true
				}
			}
			out.Actions = append(out.Actions, c)
		}
		if out.Truncated {
			out.Next = "some content was cut to fit maxBytes " + strconv.Itoa(in.MaxBytes) + ": ask for one action with include=inputs or outputs, or raise maxBytes (at most " + strconv.Itoa(maxContentBytes) + ")"
		}
		return out, nil
	})
}

func actionNamesHint(actions []powerautomate.RunAction) string {
	const show = 30
	names := make([]string, 0, min(len(actions), show))
	for i, a := range actions {
		if i == show {
			names = append(names, "…")
			break
		}
		names = append(names, a.Name)
	}
	if len(names) == 0 {
		return ""
	}
	return "; actions in this run: " + strings.Join(names, ", ")
}

// findRepetition reads an action's repetitions until the one whose innermost loop index is idx.
func findRepetition(ctx context.Context, env *Env, ref powerautomate.FlowRef, run string, a powerautomate.RunAction, idx int) (powerautomate.Repetition, error) {
	if a.RepetitionCount == 0 {
		return powerautomate.Repetition{}, &ToolError{Message: "action " + strconv.Quote(a.Name) + " is not inside a loop; leave repetition out"}
	}
	next := ""
	for range 20 {
		page, err := env.PA.ListActionRepetitions(ctx, ref, run, a.Name, next)
		if err != nil {
			return powerautomate.Repetition{}, err
		}
		for _, r := range page.Repetitions {
			if innermostIndex(r) == idx {
				return r, nil
			}
		}
		if next = page.NextLink; next == "" {
			break
		}
	}
	return powerautomate.Repetition{}, &ToolError{Message: "action " + strconv.Quote(a.Name) + " has no repetition " + strconv.Itoa(idx) +
		"; it ran " + strconv.Itoa(a.RepetitionCount) + " time(s), numbered from 0"}
}

// minPieceBytes: below this much budget a piece is skipped rather than cut to nothing.
const minPieceBytes = 64

// fetchPiece reads one content link within the remaining budget.
func fetchPiece(ctx context.Context, env *Env, link *powerautomate.ContentLink, budget *int64) *contentPiece {
	if *budget < minPieceBytes {
		return &contentPiece{Skipped: "over maxBytes", TotalBytes: link.ContentSize}
	}
	c, err := env.PA.FetchContent(ctx, link.URI, *budget)
	if err != nil {
		te := upstreamToolError(err, env.DashboardURL)
		if te == nil {
			te = &ToolError{Message: "could not read this content"}
		}
		return &contentPiece{Error: te.Error()}
	}
	total := link.ContentSize
	if c.Size > total {
		total = c.Size
	}
	if !c.Truncated && json.Valid(c.Body) {
		v := compactJSON(c.Body)
		*budget -= int64(len(v))
		return &contentPiece{Value: v}
	}
	if !c.Truncated {
		text := strings.ToValidUTF8(string(c.Body), "\uFFFD")
		*budget -= int64(len(text))
		return &contentPiece{Text: text}
	}
	cut := cutJSON(c.Body)
	*budget -= int64(len(cut))
	if total <= int64(len(cut)) {
		total = -1 // unknown: the service sent no size
	}
	p := &contentPiece{Text: strings.ToValidUTF8(string(cut), "\uFFFD"), Truncated: true}
	if total > 0 {
		p.TotalBytes = total
	}
	return p
}

// cutJSON shortens b, the first bytes of a longer JSON text, to a prefix that ends at
// a JSON token boundary (after a comma, a bracket or a complete string) when one lies
// in its second half, else at a point that splits neither a UTF-8 sequence nor an
// escape sequence.
func cutJSON(b []byte) []byte {
	inString := false
	escRemain := 0 // bytes of an escape sequence still to come
	boundary, safe := 0, 0
	// Stop one byte early: whether a prefix ends a rune depends on the byte after it.
	for i := 0; i+1 < len(b); i++ {
		ch := b[i]
		switch {
		case escRemain > 0:
			escRemain--
		case inString && ch == '\\':
			escRemain = 1
			if b[i+1] == 'u' {
				escRemain = 5
			}
		case ch == '"':
			inString = !inString
			if !inString && b[i+1] != ':' { // a value, not a key
				boundary = i + 1
			}
		case !inString && strings.IndexByte(",{[}]", ch) >= 0:
			boundary = i + 1
		}
		if escRemain == 0 && b[i+1]&0xC0 != 0x80 {
			safe = i + 1
		}
	}
	if boundary >= len(b)/2 {
		return b[:boundary]
	}
	return b[:safe]
}

type cancelOut struct {
	RunName        string `json:"runName"`
	Status         string `json:"status"`
	PreviousStatus string `json:"previousStatus"`
	Changed        bool   `json:"changed"`
	Message        string `json:"message,omitempty"`
}

// cancellable are the run statuses that cancel can stop.
func cancellable(s string) bool { return s == "Running" || s == "Waiting" || s == "Suspended" }

func cancelLiveFlowRun() *Tool {
	return Define(Tool{
		Name:  "cancel_live_flow_run",
		Title: "Cancel a running flow run",
		Description: "Cancels a run that is still running or waiting (for example on an approval): actions not yet " +
			"finished never run, and pending approvals and waits are abandoned. Work already done is not undone. " +
			"Reads the run first and reports changed: false when it already finished. Find running runs with " +
			"get_live_flow_runs status Running. To run it again later use resubmit_live_flow_run (it starts over).",
		// Destructive: cancelling discards the run's work in progress (pending approvals,
		// waits, the actions not yet run) and cannot be undone; a resubmission starts over
		// and repeats the side effects of the actions that had already run.
		Kind:       Destructive,
		Group:      Live,
		Idempotent: true,
		Input:      inputSchema(environmentNameArg, flowNameArg, runNameArg),
		Output: json.RawMessage(`{"type":"object","required":["runName","status","previousStatus","changed"],"properties":{
"runName":{"type":"string"},"status":{"type":"string"},"previousStatus":{"type":"string"},"changed":{"type":"boolean"},"message":{"type":"string"}}}`),
	}, func(ctx context.Context, env *Env, in runArgs) (cancelOut, error) {
		ref := in.ref()
		run, err := env.PA.GetRun(ctx, ref, in.RunName, false)
		if err != nil {
			return cancelOut{}, err
		}
		out := cancelOut{RunName: run.Name, Status: run.Status, PreviousStatus: run.Status}
		if !cancellable(run.Status) {
			out.Message = "nothing to cancel: the run has already finished (" + run.Status + ")"
			return out, nil
		}
		if err := env.PA.CancelRun(ctx, ref, run.Name); err != nil {
			return cancelOut{}, err
		}
		after, err := env.PA.GetRun(ctx, ref, run.Name, false)
		if err != nil {
			return cancelOut{}, err
		}
		out.Status, out.Changed = after.Status, true
		if cancellable(after.Status) {
			out.Message = "cancellation requested; the run still reads as " + after.Status + ": check again with get_live_flow_runs"
		}
		return out, nil
	})
}

type resubmitIn struct {
	runArgs
	TriggerName string `json:"triggerName"`
	WaitSeconds int    `json:"waitSeconds"`
}

type newRunOut struct {
	RunName         string        `json:"runName,omitempty"`
	ResubmittedFrom string        `json:"resubmittedFrom,omitempty"`
	TriggerName     string        `json:"triggerName"`
	Response        *contentPiece `json:"response,omitempty"`
	// With waitSeconds: the run as last read.
	Status        string `json:"status,omitempty"`
	Finished      *bool  `json:"finished,omitempty"`
	End           string `json:"end,omitempty"`
	DurationMs    int64  `json:"durationMs,omitempty"`
	ErrorCode     string `json:"errorCode,omitempty"`
	WaitedSeconds *int   `json:"waitedSeconds,omitempty"`
	Next          string `json:"next"`
}

const newRunOutputSchema = `{"type":"object","required":["triggerName","next"],"properties":{
"runName":{"type":"string","description":"The new run, when the service reported it."},"resubmittedFrom":{"type":"string"},
"triggerName":{"type":"string"},"response":` + contentPieceSchema + `,
"status":{"type":"string","description":"With waitSeconds: the run's status when the wait ended."},
"finished":{"type":"boolean","description":"With waitSeconds: whether the run finished within the wait."},
"end":{"type":"string"},"durationMs":{"type":"integer"},"errorCode":{"type":"string"},
"waitedSeconds":{"type":"integer","description":"With waitSeconds: how long the call waited."},"next":{"type":"string"}}}`

func resubmitLiveFlowRun() *Tool {
	return Define(Tool{
		Name:  "resubmit_live_flow_run",
		Title: "Resubmit a flow run",
		Description: "Runs a flow again with the trigger data of a past run (typically a failed one, after fixing the " +
			"flow with update_live_flow) and returns the new run's name. The run uses the flow's current definition. " +
			"The trigger name is taken from the run when left out. Next: get_live_flow_runs (the new run is first) " +
			"or get_live_flow_run_error with the new runName. With waitSeconds it waits for the new run to finish (at most " +
			"100 s) and returns its status.",
		Kind:   Write,
		Group:  Live,
		Input:  inputSchema(environmentNameArg, flowNameArg, runNameArg.noted("The run to resubmit. "), triggerNameArg, waitSecondsArg),
		Output: json.RawMessage(newRunOutputSchema),
	}, func(ctx context.Context, env *Env, in resubmitIn) (newRunOut, error) {
		ref := in.ref()
		trigger := in.TriggerName
		if trigger == "" {
			run, err := env.PA.GetRun(ctx, ref, in.RunName, false)
			if err != nil {
				return newRunOut{}, err
			}
			if trigger = run.Trigger.Name; trigger == "" {
				return newRunOut{}, &ToolError{Message: "the run does not name its trigger", Next: "pass triggerName (see get_live_flow triggers)"}
			}
		}
		name, err := env.PA.ResubmitRun(ctx, ref, trigger, in.RunName)
		if err != nil {
			return newRunOut{}, err
		}
		out := newRunOut{RunName: name, ResubmittedFrom: in.RunName, TriggerName: trigger, Next: pollHint(name)}
		return out, waitFor(ctx, env, ref, &out, in.WaitSeconds)
	})
}

// waitFor waits for a new run when asked to (seconds > 0) and fills its outcome in.
func waitFor(ctx context.Context, env *Env, ref powerautomate.FlowRef, out *newRunOut, seconds int) error {
	if seconds <= 0 {
		return nil
	}
	if out.RunName == "" {
		out.Next = "cannot wait: " + pollHint("")
		return nil
	}
	w, err := awaitRun(ctx, env, ref, out.RunName, seconds)
	if err != nil {
		return err
	}
	out.withWait(w, seconds)
	return nil
}

// pollHint tells the agent how to follow a new run.
func pollHint(run string) string {
	if run == "" {
		return "the service did not report the new run's name: call get_live_flow_runs; the newest run is first"
	}
	return "poll get_live_flow_runs (newest first) until run " + run + " leaves Running; if it fails, get_live_flow_run_error with runName " + run
}
