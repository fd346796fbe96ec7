package powerautomate

import (
	"context"
	"net/url"
	"strings"
	"time"
)

// Run is one execution of a flow.
type Run struct {
	Name             string
	ID               string
	Status           string // Succeeded, Running, Failed, Cancelled, ...
	Code             string // e.g. ActionFailed on failed runs
	StartTime        time.Time
	EndTime          time.Time // zero while running
	Error            *ErrorInfo
	Trigger          RunTrigger
	ClientTrackingID string
	ClientKeywords   []string // ["resubmitFlow"] on resubmitted runs
	// Actions is filled by GetRun with withActions, keyed by action name.
	Actions map[string]RunAction
}

// ErrorInfo is an {code, message} pair of a run, action or connection status.
type ErrorInfo struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// ContentLink is a SAS link to inputs or outputs; fetch it with FetchContent.
type ContentLink struct {
	URI         string `json:"uri"`
	ContentSize int64  `json:"contentSize"`
}

// ActionResult is how one execution of an action went (the action in a run, one
// repetition of it in a loop, or the run's trigger), with links to what it took in
// and gave out.
type ActionResult struct {
	Status      string       `json:"status"`
	Code        string       `json:"code"`
	StartTime   time.Time    `json:"startTime"`
	EndTime     time.Time    `json:"endTime"`
	Error       *ErrorInfo   `json:"error"`
	InputsLink  *ContentLink `json:"inputsLink"`
	OutputsLink *ContentLink `json:"outputsLink"`
}

// RunTrigger is the trigger part of a run: how the trigger's execution went.
type RunTrigger struct {
	Name string `json:"name"`
	ActionResult
}

// RunAction is one action of a run; inside loops it shows the last
// repetition and RepetitionCount says how many there were.
type RunAction struct {
	Name string
	ActionResult
	RepetitionCount int
}

type correlation struct {
	ClientTrackingID string   `json:"clientTrackingId"`
	ClientKeywords   []string `json:"clientKeywords"`
}

type actionProps struct {
	ActionResult
	RepetitionCount int `json:"repetitionCount"`
}

func toRunAction(name string, p actionProps) RunAction {
	return RunAction{Name: name, ActionResult: p.ActionResult, RepetitionCount: p.RepetitionCount}
}

type runProps struct {
	Status      string                 `json:"status"`
	Code        string                 `json:"code"`
	StartTime   time.Time              `json:"startTime"`
	EndTime     time.Time              `json:"endTime"`
	Error       *ErrorInfo             `json:"error"`
	Correlation correlation            `json:"correlation"`
	Trigger     RunTrigger             `json:"trigger"`
	Actions     map[string]actionProps `json:"actions"`
}

func toRun(r armResource[runProps]) Run {
	p := r.Properties
	run := Run{
		Name: r.Name, ID: r.ID, Status: p.Status, Code: p.Code, StartTime: p.StartTime, EndTime: p.EndTime,
		Error: p.Error, Trigger: p.Trigger, ClientTrackingID: p.Correlation.ClientTrackingID,
		ClientKeywords: p.Correlation.ClientKeywords,
	}
	if p.Actions != nil {
		run.Actions = make(map[string]RunAction, len(p.Actions))
		for name, a := range p.Actions {
			run.Actions[name] = toRunAction(name, a)
		}
	}
	return run
}

// RunStatuses are the values ListRunsOptions.Status accepts.
var RunStatuses = []string{"Succeeded", "Running", "Failed", "Cancelled", "Waiting", "Skipped", "Suspended", "TimedOut", "Aborted"}

// ListRunsOptions narrows ListRuns.
type ListRunsOptions struct {
	Status    string    // one of RunStatuses, "" for all
	StartFrom time.Time // runs started at or after (zero: no bound)
	StartTo   time.Time // runs started before (zero: no bound)
	Top       int       // page size, 0 for the server default (50)
	NextLink  string
}

// RunPage is one page of runs, newest first.
type RunPage struct {
	Runs     []Run
	NextLink string
}

// ListRuns returns one page of a flow's runs. The status and time filters
// are sent to the service and applied again here, because not every
// deployment honours them server-side.
func (c *Client) ListRuns(ctx context.Context, ref FlowRef, opts ListRunsOptions) (*RunPage, error) {
	if err := ref.validate(); err != nil {
		return nil, err
	}
	var filters []string
	if opts.Status != "" {
		canonical := ""
		for _, s := range RunStatuses {
			if strings.EqualFold(s, opts.Status) {
				canonical = s
			}
		}
		if canonical == "" {
			return nil, invalid("status", opts.Status, "want one of "+strings.Join(RunStatuses, ", "))
		}
		opts.Status = canonical
		filters = append(filters, "status eq '"+canonical+"'")
	}
	if !opts.StartFrom.IsZero() {
		filters = append(filters, "startTime ge "+opts.StartFrom.UTC().Format(time.RFC3339))
	}
	if !opts.StartTo.IsZero() {
		filters = append(filters, "startTime lt "+opts.StartTo.UTC().Format(time.RFC3339))
	}
	q := url.Values{}
	if len(filters) > 0 {
		q.Set("$filter", strings.Join(filters, " and "))
	}
	if err := setTop(q, opts.Top); err != nil {
		return nil, err
	}
	p, err := getPage[armResource[runProps]](ctx, c, "ListRuns", c.flowURL(ref.path()+"/runs", q), opts.NextLink)
	if err != nil {
		return nil, err
	}
	out := &RunPage{NextLink: p.next()}
	for _, r := range p.Value {
		run := toRun(r)
		if (opts.Status != "" && !strings.EqualFold(run.Status, opts.Status)) ||
			(!opts.StartFrom.IsZero() && run.StartTime.Before(opts.StartFrom)) ||
			(!opts.StartTo.IsZero() && !run.StartTime.Before(opts.StartTo)) {
			continue
		}
		out.Runs = append(out.Runs, run)
	}
	return out, nil
}

// GetRun returns one run; withActions adds its actions (without nesting).
func (c *Client) GetRun(ctx context.Context, ref FlowRef, run string, withActions bool) (*Run, error) {
	if err := ref.validate(); err != nil {
		return nil, err
	}
	if err := ValidateRunName(run); err != nil {
		return nil, err
	}
	q := url.Values{}
	if withActions {
		q.Set("$expand", "properties/actions")
	}
	r, err := callJSON[armResource[runProps]](ctx, c, "GetRun", "GET", c.flowURL(ref.path()+"/runs/"+esc(run), q), nil)
	if err != nil {
		return nil, err
	}
	out := toRun(*r)
	return &out, nil
}

// ListRunActions returns every action of a run, nested ones included, in
// the order the service lists them (it follows nextLinks itself).
func (c *Client) ListRunActions(ctx context.Context, ref FlowRef, run string) ([]RunAction, error) {
	if err := ref.validate(); err != nil {
		return nil, err
	}
	if err := ValidateRunName(run); err != nil {
		return nil, err
	}
	first := c.flowURL(ref.path()+"/runs/"+esc(run)+"/actions", nil)
	return getAll(ctx, c, "ListRunActions", first, func(r armResource[actionProps]) RunAction {
		return toRunAction(r.Name, r.Properties)
	})
}

// Repetition is one iteration of an action inside Foreach/Until loops.
type Repetition struct {
	Name    string            // e.g. "000002"
	Indexes []RepetitionIndex // one per enclosing loop, outermost first
	ActionResult
}

// RepetitionIndex locates a repetition in one loop.
type RepetitionIndex struct {
	ScopeName string `json:"scopeName"`
	ItemIndex int    `json:"itemIndex"`
}

// RepetitionPage is one page of repetitions.
type RepetitionPage struct {
	Repetitions []Repetition
	NextLink    string
}

// ListActionRepetitions lists the iterations of an action inside a loop.
func (c *Client) ListActionRepetitions(ctx context.Context, ref FlowRef, run, action, nextLink string) (*RepetitionPage, error) {
	if err := ref.validate(); err != nil {
		return nil, err
	}
	if err := ValidateRunName(run); err != nil {
		return nil, err
	}
	if err := ValidateActionName(action); err != nil {
		return nil, err
	}
	type repProps struct {
		actionProps
		RepetitionIndexes []RepetitionIndex `json:"repetitionIndexes"`
	}
	p, err := getPage[armResource[repProps]](ctx, c, "ListActionRepetitions",
		c.flowURL(ref.path()+"/runs/"+esc(run)+"/actions/"+esc(action)+"/repetitions", nil), nextLink)
	if err != nil {
		return nil, err
	}
	out := &RepetitionPage{NextLink: p.next()}
	for _, r := range p.Value {
		a := r.Properties
		out.Repetitions = append(out.Repetitions, Repetition{Name: r.Name, Indexes: a.RepetitionIndexes, ActionResult: a.ActionResult})
	}
	return out, nil
}

// CancelRun cancels a running run.
func (c *Client) CancelRun(ctx context.Context, ref FlowRef, run string) error {
	if err := ref.validate(); err != nil {
		return err
	}
	if err := ValidateRunName(run); err != nil {
		return err
	}
	_, err := c.apiCall(ctx, "CancelRun", "POST", c.flowURL(ref.path()+"/runs/"+esc(run)+"/cancel", nil), emptyBody)
	return err
}

// ResubmitRun runs a flow again with the trigger inputs of a past run. It
// returns the new run's name when the service reports it (else "").
func (c *Client) ResubmitRun(ctx context.Context, ref FlowRef, trigger, run string) (string, error) {
	if err := ref.validate(); err != nil {
		return "", err
	}
	if err := ValidateTriggerName(trigger); err != nil {
		return "", err
	}
	if err := ValidateRunName(run); err != nil {
		return "", err
	}
	ref.Admin = false
	u := c.flowURL(ref.path()+"/triggers/"+esc(trigger)+"/histories/"+esc(run)+"/resubmit", nil)
	resp, err := c.apiCall(ctx, "ResubmitRun", "POST", u, emptyBody)
	if err != nil {
		return "", err
	}
	return runNameFromHeader(resp), nil
}

// runNameFromHeader reads the run id Logic Apps returns on a new run.
func runNameFromHeader(resp *response) string {
	name := resp.header.Get("x-ms-workflow-run-id")
	if ValidateRunName(name) != nil {
		return ""
	}
	return name
}
