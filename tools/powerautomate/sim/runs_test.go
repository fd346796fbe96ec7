package sim

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/flowstudio/mcp/tools/powerautomate"
)

func TestRunsPageNewestFirst(t *testing.T) {
	c := newAliceClient(t)
	r := ref(ContosoDefaultEnv, FlowHourlyInventorySync)
	var runs []powerautomate.Run
	opts := powerautomate.ListRunsOptions{}
	pages := 0
	for {
		p, err := c.ListRuns(ctx, r, opts)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		if len(p.Runs) > 50 {
			t.Errorf("page of %d runs, default is 50", len(p.Runs))
		}
		runs = append(runs, p.Runs...)
		if p.NextLink == "" {
			break
		}
		opts.NextLink = p.NextLink
	}
	if len(runs) != 120 || pages != 3 {
		t.Fatalf("%d runs in %d pages, want 120 in 3", len(runs), pages)
	}
	for i := 1; i < len(runs); i++ {
		if runs[i].StartTime.After(runs[i-1].StartTime) {
			t.Fatalf("run %d starts after run %d: not newest first", i, i-1)
		}
	}
	failed, err := c.ListRuns(ctx, r, powerautomate.ListRunsOptions{Status: "failed", StartFrom: time.Now().Add(-48 * time.Hour), Top: 250})
	if err != nil {
		t.Fatal(err)
	}
	if len(failed.Runs) == 0 || len(failed.Runs) > 5 {
		t.Errorf("failed runs in the last two days: %d", len(failed.Runs))
	}
	for _, run := range failed.Runs {
		if run.Status != "Failed" || run.Error == nil || run.Error.Code != "ActionFailed" {
			t.Errorf("run %+v", run)
		}
	}
}

func TestFailedRunRootCauseAndFix(t *testing.T) {
	s, _, c := newAliceSim(t)
	r := ref(ContosoDefaultEnv, FlowInvoiceApproval)
	run := newestRun(t, c, r)
	if run.Status != "Failed" || run.Code != "ActionFailed" || run.Error.Message != "An action failed. No dependent actions succeeded." {
		t.Fatalf("latest run = %+v", run)
	}
	actions, err := c.ListRunActions(ctx, r, run.Name)
	if err != nil {
		t.Fatal(err)
	}
	status := map[string]powerautomate.RunAction{}
	for _, a := range actions {
		status[a.Name] = a
	}
	for name, want := range map[string]string{"Try": "Failed", "Process_invoice": "Failed", "Calculate_unit_price": "Failed",
		"Update_invoice": "Skipped", "Send_confirmation": "Skipped", "Get_invoice": "Succeeded"} {
		if status[name].Status != want {
			t.Errorf("%s = %s, want %s", name, status[name].Status, want)
		}
	}
	if rc := status["Calculate_unit_price"]; rc.Code != "InvalidTemplate" || !strings.Contains(rc.Error.Message, "divide by zero") {
		t.Errorf("root cause = %+v", rc)
	}

	// A manual run of the current definition fails the same way.
	res, err := c.RunManualTrigger(ctx, r, "manual", json.RawMessage(`{"invoiceId":"INV-1","total":10}`))
	if err != nil || res.Via != "callback" || res.RunName == "" {
		t.Fatalf("trigger: %+v %v", res, err)
	}
	if got := finishRun(t, s, c, r, res.RunName); got.Status != "Failed" {
		t.Errorf("run before the fix = %s", got.Status)
	}

	flow, err := c.GetFlow(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	fixed := strings.Replace(string(flow.Definition), "@div(variables('Total'), 0)", "@div(variables('Total'), outputs('Compose_line_count'))", 1)
	if fixed == string(flow.Definition) {
		t.Fatal("seeded definition lacks the failing expression")
	}
	if _, err := c.UpdateFlow(ctx, r, powerautomate.FlowUpdate{Definition: json.RawMessage(fixed)}); err != nil {
		t.Fatal(err)
	}
	res, err = c.RunManualTrigger(ctx, r, "manual", json.RawMessage(`{"invoiceId":"INV-2","total":10}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := finishRun(t, s, c, r, res.RunName); got.Status != "Succeeded" {
		t.Errorf("run after the fix = %s (%+v)", got.Status, got.Error)
	}
	// Resubmitting the failed run now succeeds too, and is marked as a resubmission.
	newRun, err := c.ResubmitRun(ctx, r, "manual", run.Name)
	if err != nil || newRun == "" {
		t.Fatalf("resubmit: %q %v", newRun, err)
	}
	got := finishRun(t, s, c, r, newRun)
	if got.Status != "Succeeded" || len(got.ClientKeywords) != 1 || got.ClientKeywords[0] != "resubmitFlow" {
		t.Errorf("resubmitted run = %+v", got)
	}
}

func TestUnknownRunIsWrappedNotFound(t *testing.T) {
	c := newAliceClient(t)
	r := ref(ContosoDefaultEnv, FlowInvoiceApproval)
	apiErr := wantAPIError(t, c.CancelRun(ctx, r, "08584000000000000000000000000CU00"), 404, "WorkflowRunNotFound")
	if apiErr.WrapperCode != "AzureResourceManagerRequestFailed" {
		t.Errorf("wrapper = %q", apiErr.WrapperCode)
	}
	_, err := c.ResubmitRun(ctx, r, "manual", "08584000000000000000000000000CU00")
	wantAPIError(t, err, 404, "WorkflowRunNotFound")
}

func TestCancelRunningRun(t *testing.T) {
	s, _, c := newAliceSim(t)
	r := ref(ContosoDefaultEnv, FlowLeaveRequest)
	runs, err := c.ListRuns(ctx, r, powerautomate.ListRunsOptions{})
	if err != nil {
		t.Fatal(err)
	}
	statuses := map[string]int{}
	for _, run := range runs.Runs {
		statuses[run.Status]++
	}
	if statuses["Running"] != 1 || statuses["Cancelled"] != 1 {
		t.Errorf("seeded statuses = %v", statuses)
	}
	res, err := c.RunManualTrigger(ctx, r, "manual", nil)
	if err != nil {
		t.Fatal(err)
	}
	if run, _ := c.GetRun(ctx, r, res.RunName, true); run.Status != "Running" || !run.EndTime.IsZero() {
		t.Fatalf("new approval run = %+v", run)
	}
	clockOf(s).advance(time.Second) // the run now waits on the approval
	if err := c.CancelRun(ctx, r, res.RunName); err != nil {
		t.Fatal(err)
	}
	run, err := c.GetRun(ctx, r, res.RunName, true)
	if err != nil {
		t.Fatal(err)
	}
	if run.Status != "Cancelled" || run.Actions["Start_and_wait_for_an_approval"].Status != "Cancelled" {
		t.Errorf("after cancel: %s, approval %+v", run.Status, run.Actions["Start_and_wait_for_an_approval"])
	}
	apiErr := wantAPIError(t, c.CancelRun(ctx, r, res.RunName), 409, "WorkflowRunInvalidState")
	if apiErr.WrapperCode == "" {
		t.Error("conflict not wrapped")
	}
}

func TestStoppedFlowCannotBeTriggered(t *testing.T) {
	c := newAliceClient(t)
	r := ref(ContosoDefaultEnv, FlowOrderIntake)
	if err := c.StopFlow(ctx, r); err != nil {
		t.Fatal(err)
	}
	_, err := c.RunManualTrigger(ctx, r, "manual", nil)
	wantAPIError(t, err, 409, "WorkflowDisabled")
}

func TestRecurrenceFlowRunsThroughRunAPI(t *testing.T) {
	s, _, c := newAliceSim(t)
	r := ref(ContosoDefaultEnv, FlowDailySalesReport)
	res, err := c.RunManualTrigger(ctx, r, "Recurrence", nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Via != "run" || res.RunName == "" {
		t.Fatalf("result = %+v", res)
	}
	if got := finishRun(t, s, c, r, res.RunName); got.Status != "Succeeded" {
		t.Errorf("run = %+v", got)
	}
}

func TestLoopRepetitionsAndLargeContent(t *testing.T) {
	s, _, c := newAliceSim(t)
	r := ref(ContosoDefaultEnv, FlowDailySalesReport)
	run, err := c.GetRun(ctx, r, newestRun(t, c, r).Name, true)
	if err != nil {
		t.Fatal(err)
	}
	compose := run.Actions["Compose_row"]
	if compose.RepetitionCount < 2 {
		t.Fatalf("Compose_row = %+v", compose)
	}
	reps, err := c.ListActionRepetitions(ctx, r, run.Name, "Compose_row", "")
	if err != nil {
		t.Fatal(err)
	}
	if len(reps.Repetitions) != compose.RepetitionCount {
		t.Fatalf("%d repetitions, action says %d", len(reps.Repetitions), compose.RepetitionCount)
	}
	for i, rep := range reps.Repetitions {
		if len(rep.Indexes) != 1 || rep.Indexes[0].ScopeName != "Apply_to_each" || rep.Indexes[0].ItemIndex != i || rep.InputsLink == nil {
			t.Errorf("repetition %d = %+v", i, rep)
		}
	}
	in, err := c.FetchContent(ctx, reps.Repetitions[1].InputsLink.URI, 0)
	if err != nil || !strings.Contains(string(in.Body), "Apply_to_each") {
		t.Errorf("repetition inputs: %s %v", in.Body, err)
	}

	items := run.Actions["Get_items"]
	if items.OutputsLink == nil || items.OutputsLink.ContentSize < 200_000 {
		t.Fatalf("Get_items outputs = %+v", items.OutputsLink)
	}
	s.ResetRequests()
	part, err := c.FetchContent(ctx, items.OutputsLink.URI, 64<<10)
	if err != nil {
		t.Fatal(err)
	}
	if !part.Truncated || len(part.Body) != 64<<10 {
		t.Errorf("truncated=%v len=%d", part.Truncated, len(part.Body))
	}
	full, err := c.FetchContent(ctx, items.OutputsLink.URI, 1<<20)
	if err != nil || full.Truncated || int64(len(full.Body)) != items.OutputsLink.ContentSize || !json.Valid(full.Body) {
		t.Errorf("full read: %v truncated=%v len=%d", err, full.Truncated, len(full.Body))
	}
	for _, req := range s.Requests() {
		if req.Host == "content" && req.HadAuthorization {
			t.Errorf("content request carried Authorization: %+v", req)
		}
	}
}

func TestContentSignatureIsChecked(t *testing.T) {
	c := newAliceClient(t)
	r := ref(ContosoDefaultEnv, FlowInvoiceApproval)
	run, err := c.GetRun(ctx, r, newestRun(t, c, r).Name, false)
	if err != nil || run.Trigger.OutputsLink == nil {
		t.Fatalf("run %+v %v", run, err)
	}
	link := run.Trigger.OutputsLink.URI
	if status, body := rawCall(t, "GET", link, "", ""); status != 200 || !strings.Contains(body, "INV-1042") {
		t.Errorf("signed link: %d %s", status, body)
	}
	forged := strings.Replace(link, "/contents/TriggerOutputs", "/contents/TriggerInputs", 1)
	if status, body := rawCall(t, "GET", forged, "", ""); status != 401 || !strings.Contains(body, "DirectApiInvalidAuthorizationSignature") {
		t.Errorf("forged link: %d %s", status, body)
	}
}
