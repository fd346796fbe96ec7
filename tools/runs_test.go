package tools

import (
	"bytes"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/flowstudio/mcp/tools/powerautomate"
	"github.com/flowstudio/mcp/tools/powerautomate/sim"
)

func runArgsFor(flow, run string, extra map[string]any) map[string]any {
	args := flowArgsFor(flow, extra)
	if run != "" {
		args["runName"] = run
	}
	return args
}

func TestGetLiveFlowRuns(t *testing.T) {
	t.Parallel()
	h := newLiveHarness(t, liveOptions{})
	inventory := sim.FlowHourlyInventorySync

	t.Run("pages newest first", func(t *testing.T) {
		var all []runRow
		cursor := ""
		pages := 0
		for {
			args := flowArgsFor(inventory, nil)
			if cursor != "" {
				args["cursor"] = cursor
			}
			var out runsOut
			h.mustCall(t, "get_live_flow_runs", args, &out)
			pages++
			if len(out.Runs) > 50 {
				t.Fatalf("page of %d, default is 50", len(out.Runs))
			}
			all = append(all, out.Runs...)
			if cursor = out.NextCursor; cursor == "" {
				break
			}
		}
		if len(all) != 120 || pages != 3 {
			t.Fatalf("%d runs in %d pages, want 120 in 3", len(all), pages)
		}
		seen := map[string]bool{}
		for i, r := range all {
			if seen[r.Name] {
				t.Fatalf("run %s twice", r.Name)
			}
			seen[r.Name] = true
			if i > 0 && r.Start > all[i-1].Start {
				t.Fatalf("run %d starts after run %d", i, i-1)
			}
			if r.Status == "Succeeded" && (r.End == "" || r.DurationMs <= 0 || r.Trigger != "Recurrence" || r.ErrorCode != "") {
				t.Fatalf("row %+v", r)
			}
		}
	})

	t.Run("status filter", func(t *testing.T) {
		var out runsOut
		h.mustCall(t, "get_live_flow_runs", flowArgsFor(inventory, map[string]any{"status": "Failed", "pageSize": 250}), &out)
		if len(out.Runs) != 12 {
			t.Errorf("%d failed runs, want 12", len(out.Runs))
		}
		for _, r := range out.Runs {
			if r.Status != "Failed" || r.ErrorCode != "ActionFailed" {
				t.Errorf("row %+v", r)
			}
		}
	})

	t.Run("time window", func(t *testing.T) {
		now := time.Now().UTC()
		since, until := now.Add(-10*time.Hour), now.Add(-2*time.Hour)
		var out runsOut
		h.mustCall(t, "get_live_flow_runs", flowArgsFor(inventory, map[string]any{
			"since": since.Format(time.RFC3339), "until": until.Format(time.RFC3339)}), &out)
		if len(out.Runs) < 6 || len(out.Runs) > 9 {
			t.Errorf("%d runs in an 8-hour window of an hourly flow", len(out.Runs))
		}
		for _, r := range out.Runs {
			start, _ := time.Parse(time.RFC3339, r.Start)
			if start.Before(since.Truncate(time.Second)) || !start.Before(until) {
				t.Errorf("run %s at %s is outside the window", r.Name, r.Start)
			}
		}
	})

	for name, c := range map[string]struct {
		args map[string]any
		want string
	}{
		"bad since":       {map[string]any{"since": "yesterday"}, "invalid argument since"},
		"window reversed": {map[string]any{"since": "2026-05-02T00:00:00Z", "until": "2026-05-01T00:00:00Z"}, "since must be before until"},
		"bad cursor":      {map[string]any{"cursor": "!!"}, "invalid argument cursor"},
		"bad status":      {map[string]any{"status": "Broken"}, "status"},
		"forged cursor":   {map[string]any{"cursor": linkCursor("https://evil.example/flow/x")}, "does not trust"},
	} {
		t.Run(name, func(t *testing.T) {
			wantToolError(t, h.call(t, "get_live_flow_runs", flowArgsFor(inventory, c.args)), []string{c.want})
		})
	}
}

func TestGetLiveFlowRunError(t *testing.T) {
	t.Parallel()
	h := newLiveHarness(t, liveOptions{})

	t.Run("newest failed run by default", func(t *testing.T) {
		var out runErrorOut
		h.mustCall(t, "get_live_flow_run_error", flowArgsFor(flowInv, nil), &out)
		newest := h.newestRun(t, envDefault, flowInv, "Failed")
		if out.RunName != newest.Name || !out.Failed || out.Error == nil || out.Error.Code != "ActionFailed" {
			t.Fatalf("run = %+v", out)
		}
		var names []string
		for _, a := range out.FailedActions {
			names = append(names, a.Name)
		}
		if got := strings.Join(names, ">"); got != "Try>Process_invoice>Calculate_unit_price" || out.RootCause != "Calculate_unit_price" {
			t.Fatalf("failed actions %s, root cause %s", got, out.RootCause)
		}
		root := out.FailedActions[2]
		if root.Parent != "Process_invoice" || root.DefinitionPath != "actions.Try.actions.Process_invoice.actions.Calculate_unit_price" ||
			out.FailedActions[0].Message != "" || !strings.Contains(out.Next, "get_live_flow_run_action_outputs") {
			t.Errorf("root cause = %+v, next %q", root, out.Next)
		}
	})

	t.Run("a top-level connector failure", func(t *testing.T) {
		run := h.newestRun(t, envDefault, sim.FlowHourlyInventorySync, "Failed")
		var out runErrorOut
		h.mustCall(t, "get_live_flow_run_error", runArgsFor(sim.FlowHourlyInventorySync, run.Name, nil), &out)
		if out.RootCause != "Get_stock_levels" || len(out.FailedActions) != 1 || out.FailedActions[0].Code != "BadGateway" ||
			!strings.Contains(out.FailedActions[0].Message, "(502) Bad Gateway") {
			t.Errorf("run error = %+v", out)
		}
	})

	t.Run("a run that did not fail", func(t *testing.T) {
		run := h.newestRun(t, envDefault, sim.FlowHourlyInventorySync, "Succeeded")
		var out runErrorOut
		h.mustCall(t, "get_live_flow_run_error", runArgsFor(sim.FlowHourlyInventorySync, run.Name, nil), &out)
		if out.Failed || out.Status != "Succeeded" || len(out.FailedActions) != 0 || !strings.Contains(out.Message, "did not fail") {
			t.Errorf("succeeded run = %+v", out)
		}
	})

	t.Run("a flow without failed runs", func(t *testing.T) {
		var out runErrorOut
		h.mustCall(t, "get_live_flow_run_error", flowArgsFor(sim.FlowDailySalesReport, nil), &out)
		if out.Failed || out.RunName != "" || !strings.Contains(out.Message, "no failed runs") {
			t.Errorf("%+v", out)
		}
	})

	t.Run("unknown run", func(t *testing.T) {
		wantToolError(t, h.call(t, "get_live_flow_run_error", runArgsFor(flowInv, liveUnknownRun, nil)),
			[]string{"not found", "upstream status 404 code WorkflowRunNotFound", "Next: "}, "could not be found", liveUnknownRun)
	})
}

// loopFlow creates a flow whose loop fails in every iteration, runs it and returns
// the failed run.
func loopFlow(t *testing.T, h *liveHarness) (flow, run string) {
	t.Helper()
	def := `{"triggers":{"manual":{"type":"Request","kind":"Button","inputs":{"schema":{"type":"object"}}}},"actions":{
		"Items":{"type":"Compose","runAfter":{},"inputs":[1,2,3]},
		"For_each_item":{"type":"Foreach","foreach":"@outputs('Items')","runAfter":{"Items":["Succeeded"]},"actions":{
			"Share":{"type":"Compose","runAfter":{},"inputs":"@div(items('For_each_item'), 0)"}}}}}`
	var created updateFlowOut
	h.mustCall(t, "update_live_flow", map[string]any{"environmentName": envDefault, "displayName": "Loop", "definition": json.RawMessage(def),
		"state": "Started"}, &created)
	var started newRunOut
	h.mustCall(t, "trigger_live_flow", flowArgsFor(created.FlowName, nil), &started)
	if got := h.waitRunStatus(t, envDefault, created.FlowName, started.RunName); got.Status != "Failed" {
		t.Fatalf("loop run = %+v", got)
	}
	return created.FlowName, started.RunName
}

func TestRunErrorInsideLoop(t *testing.T) {
	t.Parallel()
	h := newLiveHarness(t, liveOptions{})
	flow, run := loopFlow(t, h)
	var out runErrorOut
	h.mustCall(t, "get_live_flow_run_error", runArgsFor(flow, run, nil), &out)
	if len(out.FailedActions) != 2 || out.RootCause != "Share" {
		t.Fatalf("%+v", out)
	}
	loop, share := out.FailedActions[0], out.FailedActions[1]
	if loop.Name != "For_each_item" || share.Parent != "For_each_item" || share.Code != "InvalidTemplate" ||
		share.Repetition == nil || *share.Repetition != 0 || share.FailedRepetitions < 2 ||
		share.DefinitionPath != "actions.For_each_item.actions.Share" || !strings.Contains(out.Next, "repetition 0") {
		t.Errorf("loop %+v, share %+v (repetition %v), next %q", loop, share, share.Repetition, out.Next)
	}
}

func TestGetLiveFlowRunActionOutputs(t *testing.T) {
	t.Parallel()
	h := newLiveHarness(t, liveOptions{})
	sales := sim.FlowDailySalesReport
	run := h.newestRun(t, envDefault, sales, "Succeeded").Name
	ref := powerautomate.FlowRef{Environment: envDefault, Flow: sales}
	actions, err := h.PA.ListRunActions(t.Context(), ref, run)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]powerautomate.RunAction{}
	for _, a := range actions {
		byName[a.Name] = a
	}

	t.Run("large output is cut with a marker", func(t *testing.T) {
		h.Sim.ResetRequests()
		var out actionOutputsOut
		h.mustCall(t, "get_live_flow_run_action_outputs", runArgsFor(sales, run, map[string]any{"actionName": "Get_items", "include": "outputs"}), &out)
		full, err := h.PA.FetchContent(t.Context(), byName["Get_items"].OutputsLink.URI, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		o := out.Actions[0].Outputs
		if !out.Truncated || o == nil || !o.Truncated || o.TotalBytes != int64(len(full.Body)) || o.Value != nil ||
			len(o.Text) > defaultContentBytes || len(o.Text) < defaultContentBytes/2 || !strings.HasPrefix(string(full.Body), o.Text) {
			t.Fatalf("outputs: truncated %v, totalBytes %d of %d, %d bytes of text", o.Truncated, o.TotalBytes, len(full.Body), len(o.Text))
		}
		if last := o.Text[len(o.Text)-1]; !strings.ContainsRune(`,{[}]"`, rune(last)) {
			t.Errorf("cut after %q, not at a token boundary", last)
		}
		if out.Actions[0].Inputs != nil || !strings.Contains(out.Next, "maxBytes") {
			t.Errorf("include=outputs returned inputs, or no next step: %+v", out)
		}
		reqs := h.requestsTo("content")
		if len(reqs) == 0 {
			t.Fatal("no content fetched")
		}
		for _, r := range reqs {
			if r.HadAuthorization {
				t.Fatalf("content link fetched with a token: %+v", r)
			}
		}
	})

	t.Run("a loop iteration", func(t *testing.T) {
		page, err := h.PA.ListActionRepetitions(t.Context(), ref, run, "Compose_row", "")
		if err != nil || len(page.Repetitions) < 2 {
			t.Fatalf("repetitions: %v %d", err, len(page.Repetitions))
		}
		want, _ := h.PA.FetchContent(t.Context(), page.Repetitions[1].InputsLink.URI, 0)
		var out actionOutputsOut
		h.mustCall(t, "get_live_flow_run_action_outputs", runArgsFor(sales, run, map[string]any{"actionName": "Compose_row", "repetition": 1}), &out)
		a := out.Actions[0]
		if a.Repetition == nil || *a.Repetition != 1 || a.Inputs == nil || string(a.Inputs.Value) != string(compactJSON(want.Body)) {
			t.Fatalf("repetition 1 = %+v", a)
		}
		h.mustCall(t, "get_live_flow_run_action_outputs", runArgsFor(sales, run, map[string]any{"actionName": "Compose_row"}), &out)
		if a := out.Actions[0]; a.RepetitionCount != byName["Compose_row"].RepetitionCount || !strings.Contains(a.Note, "last iteration") {
			t.Errorf("without repetition: %+v", a)
		}
	})

	t.Run("every action within one budget", func(t *testing.T) {
		var out actionOutputsOut
		r := h.mustCall(t, "get_live_flow_run_action_outputs", runArgsFor(sales, run, map[string]any{"maxBytes": 2000}), &out)
		if out.Actions[0].Kind != "trigger" || len(out.Actions) != len(actions)+1 || !out.Truncated {
			t.Fatalf("%d entries (run has %d actions), truncated %v", len(out.Actions), len(actions), out.Truncated)
		}
		skipped := 0
		for _, a := range out.Actions {
			for _, p := range []*contentPiece{a.Inputs, a.Outputs} {
				if p != nil && p.Skipped != "" {
					skipped++
				}
			}
		}
		if skipped == 0 || len(r.Text) > 2*2000+4000 {
			t.Errorf("%d pieces skipped, %d bytes returned", skipped, len(r.Text))
		}
	})

	t.Run("the trigger by name", func(t *testing.T) {
		inv := h.newestRun(t, envDefault, flowInv, "Failed").Name
		var out actionOutputsOut
		h.mustCall(t, "get_live_flow_run_action_outputs", runArgsFor(flowInv, inv, map[string]any{"actionName": "manual"}), &out)
		if len(out.Actions) != 1 || out.Actions[0].Kind != "trigger" || !strings.Contains(string(out.Actions[0].Outputs.Value), "INV-1042") {
			t.Errorf("%+v", out)
		}
	})

	for name, c := range map[string]struct {
		args map[string]any
		want []string
	}{
		"unknown action":            {map[string]any{"actionName": "Nope"}, []string{`no action "Nope" ran`, "Get_items", "Compose_row"}},
		"repetition out of range":   {map[string]any{"actionName": "Compose_row", "repetition": 99}, []string{"no repetition 99"}},
		"repetition outside a loop": {map[string]any{"actionName": "Get_items", "repetition": 0}, []string{"not inside a loop"}},
		"repetition alone":          {map[string]any{"repetition": 0}, []string{"repetition needs actionName"}},
		"maxBytes over the cap":     {map[string]any{"maxBytes": maxContentBytes + 1}, []string{"maxBytes"}},
	} {
		t.Run(name, func(t *testing.T) {
			wantToolError(t, h.call(t, "get_live_flow_run_action_outputs", runArgsFor(sales, run, c.args)), c.want)
		})
	}
}

func TestCutJSON(t *testing.T) {
	for _, c := range []struct {
		in, want string // want: the cut of in without its last byte
	}{
		{`{"a":1,"b":2,"c":3}`, `{"a":1,"b":2,`},
		{`[{"x":"yy"},{"x":"zz"}]`, `[{"x":"yy"},{"x":"zz"`},
		{`{"key":"value that goes on and on and on"}`, `{"key":"value that goes on and on and on`},
		{`{"k":"` + strings.Repeat("é", 20) + `"}`, `{"k":"` + strings.Repeat("é", 20)},
		{`{"k":"abcdefghijklmnopqrstuvwxyz\u00e9\u00e9"}`, `{"k":"abcdefghijklmnopqrstuvwxyz\u00e9\u00e9`},
		{`{"k":"abcdefghijklmnopqrstuvwxyz\"\"\"x"}`, `{"k":"abcdefghijklmnopqrstuvwxyz\"\"\"x`},
		{`{"k":"abcdefghijklmnopqrstuvwxyz\u00e9"}`, `{"k":"abcdefghijklmnopqrstuvwxyz\u00e9`},
	} {
		// The input is cut at every length; each result must be a prefix that splits no
		// rune or escape, and for the longest length it is want.
		for n := 1; n <= len(c.in); n++ {
			got := cutJSON([]byte(c.in[:n]))
			if !bytes.HasPrefix([]byte(c.in), got) || !utf8.Valid(got) || strings.HasSuffix(string(got), `\`) ||
				regexpPartialEscape.Match(got) {
				t.Fatalf("cutJSON(%q) = %q", c.in[:n], got)
			}
		}
		if got := string(cutJSON([]byte(c.in[:len(c.in)-1]))); got != c.want {
			t.Errorf("cutJSON(%q) = %q, want %q", c.in[:len(c.in)-1], got, c.want)
		}
	}
}

var regexpPartialEscape = regexp.MustCompile(`\\u[0-9a-fA-F]{0,3}$`)

func TestTriggerLiveFlow(t *testing.T) {
	t.Parallel()
	h := newLiveHarness(t, liveOptions{})

	t.Run("HTTP request trigger with a body", func(t *testing.T) {
		h.Sim.ResetRequests()
		var out newRunOut
		h.mustCall(t, "trigger_live_flow", flowArgsFor(sim.FlowOrderIntake, map[string]any{"body": map[string]any{"orderId": "SO-77", "amount": 5}}), &out)
		if out.RunName == "" || out.TriggerName != "manual" || !strings.Contains(out.Next, "get_live_flow_runs") {
			t.Fatalf("%+v", out)
		}
		for _, r := range h.Sim.Requests() {
			if r.Host == "content" && r.HadAuthorization {
				t.Fatal("the callback URL was called with a token")
			}
		}
		if strings.Contains(mustJSON(t, out), "sig=") {
			t.Fatal("the callback URL leaked into the result")
		}
		got := h.waitRunStatus(t, envDefault, sim.FlowOrderIntake, out.RunName)
		var content actionOutputsOut
		h.mustCall(t, "get_live_flow_run_action_outputs", runArgsFor(sim.FlowOrderIntake, out.RunName, map[string]any{"actionName": "manual"}), &content)
		if got.Status != "Succeeded" || !strings.Contains(string(content.Actions[0].Outputs.Value), `"orderId":"SO-77"`) {
			t.Errorf("run %+v, trigger outputs %+v", got, content.Actions[0])
		}
	})

	for name, c := range map[string]struct {
		flow string
		args map[string]any
		want string
	}{
		"a scheduled flow":             {sim.FlowDailySalesReport, nil, "not on a manual or HTTP request trigger"},
		"an unknown trigger":           {flowInv, map[string]any{"triggerName": "When_x"}, `no trigger "When_x"; its triggers: manual`},
		"a body that is not an object": {flowInv, map[string]any{"body": "x"}, "body"},
	} {
		t.Run(name, func(t *testing.T) {
			h.Sim.ResetRequests()
			wantToolError(t, h.call(t, "trigger_live_flow", flowArgsFor(c.flow, c.args)), []string{c.want})
			for _, r := range h.Sim.Requests() {
				if r.Method != http.MethodGet {
					t.Fatalf("a refused trigger sent %s %s", r.Method, r.Path)
				}
			}
		})
	}

	t.Run("a flow that is off", func(t *testing.T) {
		h2 := newLiveHarness(t, liveOptions{})
		h2.mustCall(t, "set_live_flow_state", flowArgsFor(flowInv, map[string]any{"state": "Stopped"}), nil)
		wantToolError(t, h2.call(t, "trigger_live_flow", flowArgsFor(flowInv, nil)), []string{"turned off", "set_live_flow_state"})
	})
}

func TestResubmitLiveFlowRun(t *testing.T) {
	t.Parallel()
	h := newLiveHarness(t, liveOptions{})
	failed := h.newestRun(t, envDefault, flowInv, "Failed").Name
	for _, args := range []map[string]any{nil, {"triggerName": "manual"}} {
		var out newRunOut
		h.mustCall(t, "resubmit_live_flow_run", runArgsFor(flowInv, failed, args), &out)
		if out.RunName == "" || out.RunName == failed || out.ResubmittedFrom != failed || out.TriggerName != "manual" {
			t.Fatalf("%+v", out)
		}
		// Not fixed yet: the resubmission fails the same way.
		if got := h.waitRunStatus(t, envDefault, flowInv, out.RunName); got.Status != "Failed" || !got.Resubmitted {
			t.Errorf("resubmitted run %+v", got)
		}
	}
	wantToolError(t, h.call(t, "resubmit_live_flow_run", runArgsFor(flowInv, liveUnknownRun, nil)),
		[]string{"upstream status 404 code WorkflowRunNotFound"})
	wantToolError(t, h.call(t, "resubmit_live_flow_run", runArgsFor(flowInv, failed, map[string]any{"triggerName": "other"})),
		[]string{"not found", "upstream status 404 code WorkflowTriggerNotFound"}, "could not be found")
}

func TestCancelLiveFlowRun(t *testing.T) {
	t.Parallel()
	h := newLiveHarness(t, liveOptions{})
	running := h.newestRun(t, envDefault, sim.FlowLeaveRequest, "Running").Name
	var out cancelOut
	h.mustCall(t, "cancel_live_flow_run", runArgsFor(sim.FlowLeaveRequest, running, nil), &out)
	if !out.Changed || out.PreviousStatus != "Running" || out.Status != "Cancelled" {
		t.Fatalf("cancel: %+v", out)
	}
	h.Sim.ResetRequests()
	h.mustCall(t, "cancel_live_flow_run", runArgsFor(sim.FlowLeaveRequest, running, nil), &out)
	if out.Changed || out.Status != "Cancelled" || !strings.Contains(out.Message, "already finished") {
		t.Errorf("cancel again: %+v", out)
	}
	for _, r := range h.Sim.Requests() {
		if r.Method != http.MethodGet {
			t.Errorf("a repeat cancel sent %s %s", r.Method, r.Path)
		}
	}
	if a := h.Catalog.byName["cancel_live_flow_run"].Annotations(); a["destructiveHint"] != true || a["idempotentHint"] != true {
		t.Errorf("annotations %v", a)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestContentLinksOffTheAllowList: a content link on a host that is not allow-listed
// is never fetched; the piece says so and the rest of the answer stands.
func TestContentLinksOffTheAllowList(t *testing.T) {
	t.Parallel()
	h := newLiveHarness(t, liveOptions{})
	run := h.newestRun(t, envDefault, flowInv, "Failed").Name
	h.Sim.InjectFault(sim.FaultMatch{Method: http.MethodGet, PathContains: "/runs/" + strings.ToLower(run) + "/actions", Count: 1},
		sim.Fault{Status: http.StatusOK, Body: `{"value":[{"name":"Leaky","properties":{"status":"Succeeded",` +
			`"inputsLink":{"uri":"https://evil.example/workflows/x/contents/ActionInputs?sig=abc","contentSize":10}}}]}`})
	var out actionOutputsOut
	h.mustCall(t, "get_live_flow_run_action_outputs", runArgsFor(flowInv, run, map[string]any{"actionName": "Leaky"}), &out)
	in := out.Actions[0].Inputs
	if in == nil || in.Value != nil || !strings.Contains(in.Error, "does not trust") {
		t.Fatalf("inputs = %+v", in)
	}
}

func TestResponsePiece(t *testing.T) {
	if p := responsePiece([]byte(`{ "received": true }`), false); string(p.Value) != `{"received":true}` || p.Truncated {
		t.Errorf("small JSON: %+v", p)
	}
	if p := responsePiece([]byte("plain text"), false); p.Text != "plain text" || p.Value != nil {
		t.Errorf("text: %+v", p)
	}
	big := []byte(`{"items":[` + strings.Repeat(`{"n":12345},`, 1000) + `{"n":0}]}`)
	p := responsePiece(big, false)
	if !p.Truncated || p.TotalBytes != int64(len(big)) || len(p.Text) > maxResponseBytes || !strings.ContainsAny(p.Text[len(p.Text)-1:], ",{[}]") {
		t.Errorf("large: truncated %v, total %d, %d bytes ending %q", p.Truncated, p.TotalBytes, len(p.Text), p.Text[len(p.Text)-3:])
	}
}
