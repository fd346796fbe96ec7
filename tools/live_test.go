package tools

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/jsonschema-go/jsonschema"

	"github.com/flowstudio/mcp/cosmos"
	"github.com/flowstudio/mcp/tools/powerautomate"
	"github.com/flowstudio/mcp/tools/powerautomate/sim"
)

// Shared helpers for the live tools' tests (flows, runs, connections, …): a catalog
// wired to the in-process Power Automate simulator, called through tools/call.
//
//	h := newLiveHarness(t, liveOptions{})               // alice@contoso.com, Contoso
//	res := h.call(t, "get_live_flow", map[string]any{...}) // isError or structuredContent
//	var out getFlowOut; h.mustCall(t, "get_live_flow", args, &out)
//	h.Sim.InjectFault(...); h.Sim.ResetRequests(); h.Sim.Requests()

// liveSimSeed makes every test simulator share one signing key, generated once.
var liveSimSeed = []byte("tools live tests")

// Well-known simulated users and a run name no flow has.
const (
	liveAlice      = "alice@contoso.com"
	liveUnknownRun = "08584000000000000000000000000CU00"
)

// liveOptions tune a harness; zero values take test defaults.
type liveOptions struct {
	Email        string        // simulated user; default alice@contoso.com
	Timeout      time.Duration // per upstream call, retries included; default 10s
	MaxRetries   int           // default 2; -1 for none
	MaxRetryWait time.Duration // default 5s
	Principal    *Principal    // default a full-scope pro key
	Tools        []*Tool       // default All()
}

// liveHarness is one simulator on 127.0.0.1, a client for one simulated user and a
// catalog over it.
type liveHarness struct {
	Sim       *sim.Sim
	URL       string // the simulator's base URL
	PA        *powerautomate.Client
	Catalog   *Catalog
	Principal *Principal
	Email     string
	client    *http.Client // the test server's, for siblings
}

func newLiveHarness(t testing.TB, opts liveOptions) *liveHarness {
	t.Helper()
	s := sim.New(sim.Options{KeySeed: liveSimSeed})
	srv := httptest.NewServer(s.Handler()) // binds 127.0.0.1
	t.Cleanup(srv.Close)
	return (&liveHarness{Sim: s, URL: srv.URL, client: srv.Client()}).sibling(t, opts)
}

// sibling is another harness on the same simulator: another user, timeout or tool
// list, seeing the same tenants, faults and recorded requests.
func (h *liveHarness) sibling(t testing.TB, opts liveOptions) *liveHarness {
	t.Helper()
	if opts.Email == "" {
		opts.Email = liveAlice
	}
	if opts.Timeout == 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.MaxRetries == 0 {
		opts.MaxRetries = 2
	}
	if opts.MaxRetryWait == 0 {
		opts.MaxRetryWait = 5 * time.Second
	}
	if opts.Principal == nil {
		opts.Principal = &Principal{Caller: powerautomate.Caller{UserID: "u.live", TenantID: sim.ContosoTenantID}, Tier: cosmos.TierPro, Scope: ScopeFull}
	}
	if opts.Tools == nil {
		opts.Tools = All()
	}
	cfg := h.Sim.Config(h.URL)
	cfg.Timeout = opts.Timeout
	cfg.MaxRetries = opts.MaxRetries
	cfg.RetryBackoff = time.Millisecond
	cfg.MaxRetryWait = opts.MaxRetryWait
	cfg.HTTPClient = &http.Client{Transport: h.client.Transport}
	pa, err := powerautomate.New(cfg, h.Sim.TokenSourceFor(opts.Email))
	if err != nil {
		t.Fatal(err)
	}
	cat, err := NewCatalog(&Env{PA: pa, DashboardURL: "https://flowstudio.test/dashboard"}, nil, 0, opts.Tools)
	if err != nil {
		t.Fatal(err)
	}
	return &liveHarness{Sim: h.Sim, URL: h.URL, client: h.client, PA: pa, Catalog: cat, Principal: opts.Principal, Email: opts.Email}
}

// liveResult is a CallToolResult as a client sees it.
type liveResult struct {
	IsError    bool
	Text       string
	Structured json.RawMessage
}

// call runs one tools/call with the harness's principal. A successful result must
// carry structuredContent that matches the tool's output schema and equals its text.
func (h *liveHarness) call(t testing.TB, tool string, args any) liveResult {
	t.Helper()
	o := callTool(t, h.Catalog, h.Principal, tool, args)
	r := liveResult{IsError: o.IsError, Text: o.Text, Structured: o.StructuredContent}
	if !r.IsError {
		h.checkOutput(t, tool, r)
	}
	return r
}

// mustCall calls a tool, fails the test on an isError result, and decodes
// structuredContent into out (when out is not nil).
func (h *liveHarness) mustCall(t testing.TB, tool string, args any, out any) liveResult {
	t.Helper()
	r := h.call(t, tool, args)
	if r.IsError {
		t.Fatalf("%s(%v): isError: %s", tool, args, r.Text)
	}
	if out != nil {
		if err := json.Unmarshal(r.Structured, out); err != nil {
			t.Fatalf("%s: decoding structuredContent: %v", tool, err)
		}
	}
	return r
}

// checkOutput holds a successful result to its declaration: the text is the JSON of
// structuredContent, and structuredContent validates against the output schema (the
// TypeScript SDK refuses results that do not).
func (h *liveHarness) checkOutput(t testing.TB, tool string, r liveResult) {
	t.Helper()
	var text, structured any
	if err := json.Unmarshal([]byte(r.Text), &text); err != nil {
		t.Fatalf("%s: text is not JSON: %v", tool, err)
	}
	if err := json.Unmarshal(r.Structured, &structured); err != nil {
		t.Fatalf("%s: structuredContent: %v", tool, err)
	}
	a, _ := json.Marshal(text)
	b, _ := json.Marshal(structured)
	if string(a) != string(b) {
		t.Fatalf("%s: text and structuredContent differ", tool)
	}
	decl := h.Catalog.byName[tool]
	if decl == nil || decl.Output == nil {
		return
	}
	var s jsonschema.Schema
	if err := json.Unmarshal(decl.Output, &s); err != nil {
		t.Fatalf("%s: output schema: %v", tool, err)
	}
	rs, err := s.Resolve(nil)
	if err != nil {
		t.Fatalf("%s: output schema: %v", tool, err)
	}
	if err := rs.Validate(structured); err != nil {
		t.Fatalf("%s: structuredContent does not match the output schema: %v\n%s", tool, err, capForLog(r.Text))
	}
}

// requestsTo returns the recorded requests to one simulated host (flow, content, …).
func (h *liveHarness) requestsTo(host string) []sim.RecordedRequest {
	var out []sim.RecordedRequest
	for _, r := range h.Sim.Requests() {
		if r.Host == host {
			out = append(out, r)
		}
	}
	return out
}

// newestRun returns the newest run of a flow with a status ("" for any), read through
// the client.
func (h *liveHarness) newestRun(t testing.TB, env, flow, status string) powerautomate.Run {
	t.Helper()
	// Through a sibling on the default timeout: the harness under test may have a
	// timeout short enough to fail this setup read on a loaded machine.
	page, err := h.sibling(t, liveOptions{Email: h.Email}).PA.ListRuns(t.Context(), powerautomate.FlowRef{Environment: env, Flow: flow},
		powerautomate.ListRunsOptions{Status: status, Top: 1})
	if err != nil {
		t.Fatalf("newest %q run of %s: %v", status, flow, err)
	}
	if len(page.Runs) == 0 {
		t.Fatalf("newest %q run of %s: no runs", status, flow)
	}
	return page.Runs[0]
}

// waitRunStatus polls get_live_flow_runs until the run leaves Running.
func (h *liveHarness) waitRunStatus(t testing.TB, env, flow, run string) runRow {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var out runsOut
		h.mustCall(t, "get_live_flow_runs", map[string]any{"environmentName": env, "flowName": flow, "pageSize": 10}, &out)
		for _, r := range out.Runs {
			if r.Name == run && r.Status != "Running" {
				return r
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %s did not finish in time", run)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func capForLog(s string) string {
	if len(s) > 2000 {
		return s[:2000] + "…"
	}
	return s
}

// wantToolError asserts an isError result whose text has every fragment, our "Next:"
// step, and none of the forbidden fragments (upstream message text).
func wantToolError(t testing.TB, r liveResult, fragments []string, forbidden ...string) {
	t.Helper()
	if !r.IsError {
		t.Fatalf("want isError, got %s", capForLog(r.Text))
	}
	for _, f := range fragments {
		if !strings.Contains(r.Text, f) {
			t.Errorf("error %q lacks %q", r.Text, f)
		}
	}
	for _, f := range forbidden {
		if f != "" && strings.Contains(r.Text, f) {
			t.Errorf("error %q echoes upstream text %q", r.Text, f)
		}
	}
}

// Fixtures shared by the per-tool tables: valid arguments for every live tool of
// this file's domain, against the seeded Contoso tenant.
const (
	envDefault = sim.ContosoDefaultEnv
	flowInv    = sim.FlowInvoiceApproval
)

// liveFlowTools are the flow and run tools, in catalog order.
var liveFlowTools = []string{"get_live_flow", "update_live_flow", "validate_live_flow", "set_live_flow_state",
	"get_live_flow_runs", "get_live_flow_run_error", "get_live_flow_run_action_outputs", "trigger_live_flow",
	"resubmit_live_flow_run", "cancel_live_flow_run", "add_live_flow_to_solution"}

// validArgs returns arguments under which each tool succeeds on a fresh simulator
// (the run is the newest Running run of the leave-request flow for cancel, the newest
// failed invoice run otherwise), with flow replacing flowName when not "".
func (h *liveHarness) validArgs(t testing.TB, tool, flow string) map[string]any {
	t.Helper()
	target := flowInv
	if tool == "cancel_live_flow_run" {
		target = sim.FlowLeaveRequest
	}
	run := ""
	if tool == "get_live_flow_run_error" || tool == "get_live_flow_run_action_outputs" ||
		tool == "resubmit_live_flow_run" || tool == "cancel_live_flow_run" {
		status := "Failed"
		if tool == "cancel_live_flow_run" {
			status = "Running"
		}
		run = h.newestRun(t, envDefault, target, status).Name
	}
	if flow != "" {
		target = flow
	}
	args := map[string]any{"environmentName": envDefault, "flowName": target}
	switch tool {
	case "get_live_flow":
		args["actionName"] = "Calculate_unit_price"
	case "update_live_flow":
		args["displayName"] = "Invoice approval (renamed)"
	case "set_live_flow_state":
		args["state"] = "Stopped"
	case "get_live_flow_run_error", "resubmit_live_flow_run", "cancel_live_flow_run":
		args["runName"] = run
	case "get_live_flow_run_action_outputs":
		args["runName"], args["actionName"] = run, "manual"
	case "trigger_live_flow":
		args["body"] = map[string]any{"invoiceId": "INV-7", "total": 70}
	case "add_live_flow_to_solution":
		args["solutionUniqueName"] = sim.SolutionUnmanaged
	}
	return args
}

// TestLiveUpstreamFailures maps every upstream failure of every flow and run tool to
// an isError result with our own message, the upstream status and code and a next
// step, never the upstream text.
func TestLiveUpstreamFailures(t *testing.T) {
	t.Parallel()
	type scenario struct {
		name     string
		opts     liveOptions
		flow     string // replaces flowName
		fault    *sim.Fault
		ok       bool     // the call succeeds after the fault
		want     []string // fragments of the error
		requests int      // Flow API requests expected (0: not checked)
	}
	rbacMessage := "does not have permission for connection"
	scenarios := []scenario{
		{name: "403 someone else's private flow", flow: sim.FlowBobPrivate,
			want: []string{"you do not have access to this flow", "upstream status 403 code ConnectionAuthorizationFailed", "Next: "}},
		{name: "404", fault: &sim.Fault{Status: http.StatusNotFound},
			want: []string{"not found", "upstream status 404 code NotFound", "Next: "}},
		{name: "503 until retries run out", fault: &sim.Fault{Status: http.StatusServiceUnavailable}, requests: 3,
			want: []string{"Power Automate had a server error", "upstream status 503 code ServiceUnavailable", "Next: retry"}},
		{name: "timeout", opts: liveOptions{Timeout: 300 * time.Millisecond}, fault: &sim.Fault{Delay: 3 * time.Second},
			want: []string{"Power Automate did not answer in time", "Next: retry"}},
		{name: "429 Retry-After then success", fault: &sim.Fault{Status: http.StatusTooManyRequests, RetryAfter: time.Second}, ok: true},
	}
	// One simulator per tool, the scenarios in turn (faults cleared in between; the
	// one that succeeds runs last, since it changes the tenant).
	for _, tool := range liveFlowTools {
		t.Run(tool, func(t *testing.T) {
			t.Parallel()
			base := newLiveHarness(t, liveOptions{})
			for _, sc := range scenarios {
				t.Run(sc.name, func(t *testing.T) {
					h := base
					if sc.opts.Timeout != 0 {
						h = base.sibling(t, sc.opts)
					}
					h.Sim.ClearFaults()
					t.Cleanup(h.Sim.ClearFaults)
					args := h.validArgs(t, tool, sc.flow)
					if sc.fault != nil {
						count := 0
						if sc.ok {
							count = 1
						}
						h.Sim.InjectFault(sim.FaultMatch{PathContains: "/flow/", Count: count}, *sc.fault)
					}
					h.Sim.ResetRequests()
					started := time.Now()
					r := h.call(t, tool, args)
					if sc.ok {
						if r.IsError {
							t.Fatalf("after a 429 the call should succeed: %s", r.Text)
						}
						if time.Since(started) < 900*time.Millisecond {
							t.Errorf("Retry-After: 1 was not honoured (%s)", time.Since(started))
						}
						return
					}
					wantToolError(t, r, sc.want, rbacMessage, "Combined execution time", "temporarily unavailable",
						"Not Found.", sim.ContosoTenantID)
					if sc.requests > 0 {
						if n := len(h.requestsTo("flow")); n != sc.requests {
							t.Errorf("Flow API saw %d requests, want %d (1 + 2 retries)", n, sc.requests)
						}
					}
				})
			}
		})
	}
}

// hostileIDs are identifier values that must never reach a URL.
var hostileIDs = []string{"../x", "a/b", "a?b", "a#b", "%2e%2e", "a b", "\n", "\u0000", strings.Repeat("a", 300), "..",
	"a\\b", "x/../../y", "a%2Fb"}

// TestLiveIdentifierInjection: every identifier argument of every flow and run tool
// refuses hostile values before any request.
func TestLiveIdentifierInjection(t *testing.T) {
	t.Parallel()
	h := newLiveHarness(t, liveOptions{})
	idArgs := []string{"environmentName", "flowName", "runName", "actionName", "triggerName"}
	for _, tool := range liveFlowTools {
		decl := h.Catalog.byName[tool]
		var schema struct {
			Properties map[string]json.RawMessage `json:"properties"`
		}
		json.Unmarshal(decl.Input, &schema)
		base := h.validArgs(t, tool, "")
		base["runName"] = liveUnknownRun
		tested := 0
		for _, field := range idArgs {
			if _, ok := schema.Properties[field]; !ok {
				continue
			}
			tested++
			for _, bad := range hostileIDs {
				t.Run(fmt.Sprintf("%s/%s/%q", tool, field, capForLog(bad)[:min(len(bad), 12)]), func(t *testing.T) {
					args := map[string]any{}
					for k, v := range base {
						if _, ok := schema.Properties[k]; ok {
							args[k] = v
						}
					}
					args[field] = bad
					h.Sim.ResetRequests()
					r := h.call(t, tool, args)
					if !r.IsError || !strings.Contains(r.Text, field) {
						t.Fatalf("hostile %s %q: %s", field, bad, capForLog(r.Text))
					}
					if reqs := h.Sim.Requests(); len(reqs) != 0 {
						t.Fatalf("the simulator saw %d request(s), first %s %s", len(reqs), reqs[0].Method, reqs[0].Path)
					}
				})
			}
		}
		if tested < 2 {
			t.Errorf("%s: only %d identifier arguments", tool, tested)
		}
	}
}

// TestLiveAgentJourney walks what an agent does with a broken flow: find it, find the
// failed run and its root cause, read the data, fix the definition, resubmit, see the
// new run succeed.
func TestLiveAgentJourney(t *testing.T) {
	t.Parallel()
	h := newLiveHarness(t, liveOptions{})

	var envs environmentsOut
	h.mustCall(t, "list_live_environments", map[string]any{}, &envs)
	i := slices.IndexFunc(envs.Environments, func(e environmentRow) bool { return e.IsDefault })
	if i < 0 {
		t.Fatal("no default environment")
	}
	env := envs.Environments[i].Name

	var flows flowsOut
	h.mustCall(t, "list_live_flows", map[string]any{"environmentName": env, "search": "invoice"}, &flows)
	j := slices.IndexFunc(flows.Flows, func(f flowRow) bool { return f.DisplayName == "Invoice approval" })
	if j < 0 {
		t.Fatalf("invoice flow not listed: %+v", flows.Flows)
	}
	flow := flows.Flows[j].Name

	var runs runsOut
	h.mustCall(t, "get_live_flow_runs", map[string]any{"environmentName": env, "flowName": flow, "status": "Failed", "pageSize": 5}, &runs)
	if len(runs.Runs) == 0 || runs.Runs[0].ErrorCode != "ActionFailed" {
		t.Fatalf("failed runs: %+v", runs.Runs)
	}
	failedRun := runs.Runs[0].Name

	var rerr runErrorOut
	h.mustCall(t, "get_live_flow_run_error", map[string]any{"environmentName": env, "flowName": flow, "runName": failedRun}, &rerr)
	if rerr.RootCause != "Calculate_unit_price" {
		t.Fatalf("root cause = %q (%+v)", rerr.RootCause, rerr.FailedActions)
	}
	root := rerr.FailedActions[len(rerr.FailedActions)-1]
	if root.Code != "InvalidTemplate" || !strings.Contains(root.Message, "divide by zero") {
		t.Fatalf("root cause = %+v", root)
	}

	var outputs actionOutputsOut
	h.mustCall(t, "get_live_flow_run_action_outputs", map[string]any{"environmentName": env, "flowName": flow,
		"runName": failedRun, "actionName": root.Name}, &outputs)
	if a := outputs.Actions[0]; a.Name != root.Name || a.Status != "Failed" || a.Inputs != nil || a.Note == "" {
		t.Fatalf("failing action content = %+v", a)
	}
	h.mustCall(t, "get_live_flow_run_action_outputs", map[string]any{"environmentName": env, "flowName": flow,
		"runName": failedRun, "actionName": "manual", "include": "outputs"}, &outputs)
	if o := outputs.Actions[0].Outputs; o == nil || !strings.Contains(string(o.Value), `"total":1250.5`) {
		t.Fatalf("trigger outputs = %+v", outputs.Actions[0])
	}

	var part getFlowOut
	h.mustCall(t, "get_live_flow", map[string]any{"environmentName": env, "flowName": flow, "actionName": root.Name}, &part)
	if !strings.Contains(string(part.Part), "@div(variables('Total'), 0)") || part.Path != root.DefinitionPath {
		t.Fatalf("action definition = %s at %s (run error said %s)", part.Part, part.Path, root.DefinitionPath)
	}
	var whole getFlowOut
	h.mustCall(t, "get_live_flow", map[string]any{"environmentName": env, "flowName": flow}, &whole)
	fixed := strings.Replace(string(whole.Definition), "@div(variables('Total'), 0)",
		"@div(variables('Total'), max(1, outputs('Compose_line_count')))", 1)
	var upd updateFlowOut
	h.mustCall(t, "update_live_flow", map[string]any{"environmentName": env, "flowName": flow,
		"definition": json.RawMessage(fixed)}, &upd)
	if !upd.Changed || upd.Changes.Actions == nil || !slices.Equal(upd.Changes.Actions.Changed, []string{"Calculate_unit_price"}) {
		t.Fatalf("update = %+v", upd)
	}

	var resub newRunOut
	h.mustCall(t, "resubmit_live_flow_run", map[string]any{"environmentName": env, "flowName": flow, "runName": failedRun}, &resub)
	if resub.RunName == "" || resub.TriggerName != "manual" {
		t.Fatalf("resubmit = %+v", resub)
	}
	if got := h.waitRunStatus(t, env, flow, resub.RunName); got.Status != "Succeeded" || !got.Resubmitted {
		t.Fatalf("resubmitted run = %+v", got)
	}
}

// TestLiveOutputBytes reports (does not assert) how much smaller the tools' answers
// are than the upstream answers they come from; run with -v for the figures.
func TestLiveOutputBytes(t *testing.T) {
	t.Parallel()
	var recorded []CallRecord
	meter := recordingMeter(func(r CallRecord) { recorded = append(recorded, r) })
	h := newLiveHarness(t, liveOptions{})
	cat, err := NewCatalog(&Env{PA: h.PA}, meter, 0, All())
	if err != nil {
		t.Fatal(err)
	}
	h.Catalog = cat
	for _, c := range []struct {
		label, tool string
		args        map[string]any
		raw         func() (int64, error)
	}{
		{"default environment, default page", "list_live_flows", map[string]any{"environmentName": envDefault}, func() (int64, error) {
			ctx, stats := powerautomate.WithCallStats(t.Context())
			_, err := h.PA.ListFlows(ctx, envDefault, powerautomate.ListFlowsOptions{Top: 50})
			return stats.Bytes(), err
		}},
		{"hourly inventory sync (120 runs), default page", "get_live_flow_runs", map[string]any{"environmentName": envDefault, "flowName": sim.FlowHourlyInventorySync}, func() (int64, error) {
			ctx, stats := powerautomate.WithCallStats(t.Context())
			_, err := h.PA.ListRuns(ctx, powerautomate.FlowRef{Environment: envDefault, Flow: sim.FlowHourlyInventorySync}, powerautomate.ListRunsOptions{Top: 50})
			return stats.Bytes(), err
		}},
		{"invoice approval (14 runs), default page", "get_live_flow_runs", map[string]any{"environmentName": envDefault, "flowName": flowInv}, func() (int64, error) {
			ctx, stats := powerautomate.WithCallStats(t.Context())
			_, err := h.PA.ListRuns(ctx, powerautomate.FlowRef{Environment: envDefault, Flow: flowInv}, powerautomate.ListRunsOptions{Top: 50})
			return stats.Bytes(), err
		}},
	} {
		recorded = nil
		r := h.mustCall(t, c.tool, c.args, nil)
		raw, err := c.raw()
		if err != nil {
			t.Fatal(err)
		}
		if len(recorded) != 1 {
			t.Fatalf("%d records", len(recorded))
		}
		// The result carries the JSON twice (structuredContent and its text), as MCP asks.
		whole, once := recorded[0].Bytes, len(r.Structured)
		t.Logf("%s, %s: upstream %d bytes; structuredContent %d bytes (ratio %.3f, %.1fx smaller); whole result %d bytes (ratio %.3f)",
			c.tool, c.label, raw, once, float64(once)/float64(raw), float64(raw)/float64(once), whole, float64(whole)/float64(raw))
	}
}

// recordingMeter admits everything and hands each record to a func.
type recordingMeter func(CallRecord)

func (recordingMeter) Admit(context.Context, *Principal, *Tool) error { return nil }
func (m recordingMeter) Record(_ context.Context, rec CallRecord)     { m(rec) }
