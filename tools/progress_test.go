package tools

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/flowstudio/mcp/cosmos"
	"github.com/flowstudio/mcp/rpc"
	"github.com/flowstudio/mcp/tools/powerautomate/sim"
)

// mcpServer mounts the harness's catalog on an MCP endpoint, as the server does:
// the principal in the request context, the caller's id as the session subject.
func (h *liveHarness) mcpServer(t *testing.T) *httptest.Server {
	t.Helper()
	s := rpc.NewServer(rpc.Options{Info: rpc.Implementation{Name: "t", Version: "1"},
		SessionSecret:  []byte("0123456789abcdef0123456789abcdef"),
		SessionSubject: func(ctx context.Context) string { return PrincipalFrom(ctx).UserID }})
	h.Catalog.Register(s)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.ServeHTTP(w, r.WithContext(WithPrincipal(r.Context(), h.Principal)))
	}))
	t.Cleanup(srv.Close)
	return srv
}

type sseEvent struct {
	Method string          `json:"method"`
	ID     json.RawMessage `json:"id"`
	Params struct {
		ProgressToken json.RawMessage `json:"progressToken"`
		Progress      float64         `json:"progress"`
		Total         float64         `json:"total"`
		Message       string          `json:"message"`
	} `json:"params"`
	Result json.RawMessage `json:"result"`
}

// streamCall posts one tools/call with a progress token and reads its stream;
// onProgress runs on each progress notification.
func streamCall(t *testing.T, url, tool string, args any, onProgress func(sseEvent)) (progress []sseEvent, response *sseEvent) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 41, "method": "tools/call",
		"params": map[string]any{"name": tool, "arguments": args, "_meta": map[string]any{"progressToken": "tok-1"}}})
	resp := postMCP(t, url, string(body))
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q, want an SSE answer", ct)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<22)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok || data == "" {
			continue
		}
		var ev sseEvent
		if err := json.Unmarshal([]byte(data), &ev); err != nil {
			t.Fatalf("event %s: %v", data, err)
		}
		switch {
		case ev.Method == "notifications/progress":
			if string(ev.Params.ProgressToken) != `"tok-1"` {
				t.Fatalf("progress for token %s", ev.Params.ProgressToken)
			}
			if n := len(progress); n > 0 && ev.Params.Progress <= progress[n-1].Params.Progress {
				t.Fatalf("progress did not increase: %v after %v", ev.Params.Progress, progress[n-1].Params.Progress)
			}
			if response != nil {
				t.Fatal("progress after the response")
			}
			progress = append(progress, ev)
			if onProgress != nil {
				onProgress(ev)
			}
		case ev.Result != nil:
			response = &ev
		}
	}
	return progress, response
}

func postMCP(t *testing.T, url, body string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func structured(t *testing.T, ev *sseEvent, out any) {
	t.Helper()
	var r struct {
		StructuredContent json.RawMessage `json:"structuredContent"`
		IsError           bool            `json:"isError"`
		Content           []struct{ Text string }
	}
	if err := json.Unmarshal(ev.Result, &r); err != nil || r.IsError {
		t.Fatalf("result %s (%v)", ev.Result, err)
	}
	if err := json.Unmarshal(r.StructuredContent, out); err != nil {
		t.Fatal(err)
	}
}

// TestProgressWhilePagingFlows: a search over many upstream pages reports each page
// read before the last, with the page bound as total.
func TestProgressWhilePagingFlows(t *testing.T) {
	h := newLiveHarness(t, liveOptions{Email: "admin@contoso.com"})
	srv := h.mcpServer(t)
	// Small pages and a search that few flows match: every page is read.
	progress, resp := streamCall(t, srv.URL, "list_live_flows",
		map[string]any{"environmentName": sim.ContosoDefaultEnv, "mode": "admin", "search": "reminder", "pageSize": 3}, nil)
	if resp == nil {
		t.Fatal("no response")
	}
	var out flowsOut
	structured(t, resp, &out)
	pages := 0
	for _, r := range h.Sim.Requests() {
		if strings.Contains(r.Path, "/flows") {
			pages++
		}
	}
	if pages < 2 {
		t.Fatalf("the search read %d upstream pages; the test needs several", pages)
	}
	if len(progress) != pages-1 {
		t.Fatalf("%d progress notifications for %d pages, want one per page before the last", len(progress), pages)
	}
	for _, p := range progress {
		if p.Params.Total != searchPages || !strings.Contains(p.Params.Message, "pages") {
			t.Fatalf("progress %+v", p.Params)
		}
	}
}

// TestNoProgressWithoutToken: the same call without a token is plain JSON.
func TestNoProgressWithoutToken(t *testing.T) {
	h := newLiveHarness(t, liveOptions{})
	srv := h.mcpServer(t)
	resp := postMCP(t, srv.URL, `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_live_flows","arguments":{"environmentName":"`+
		sim.ContosoDefaultEnv+`","search":"reminder","pageSize":3}}}`)
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("content type %q", ct)
	}
}

// TestTriggerWaitsForTheRun: waitSeconds returns the finished run's status, a
// success for a flow that works and the failure with its code for one that fails.
func TestTriggerWaitsForTheRun(t *testing.T) {
	h := newLiveHarness(t, liveOptions{})
	var ok newRunOut
	h.mustCall(t, "trigger_live_flow", map[string]any{"environmentName": sim.ContosoDefaultEnv, "flowName": sim.FlowCreateProjectTask,
		"waitSeconds": 60}, &ok)
	if ok.Finished == nil || !*ok.Finished || ok.Status != "Succeeded" || ok.WaitedSeconds == nil || ok.End == "" {
		t.Fatalf("trigger with wait: %+v", ok)
	}
	var failed newRunOut
	h.mustCall(t, "trigger_live_flow", map[string]any{"environmentName": sim.ContosoDefaultEnv, "flowName": sim.FlowInvoiceApproval,
		"body": map[string]any{"invoiceId": "INV-9", "total": 10}, "waitSeconds": 60}, &failed)
	if failed.Finished == nil || !*failed.Finished || failed.Status != "Failed" || failed.ErrorCode == "" ||
		!strings.Contains(failed.Next, "get_live_flow_run_error") {
		t.Fatalf("failing run with wait: %+v", failed)
	}
	var resubmitted newRunOut
	h.mustCall(t, "resubmit_live_flow_run", map[string]any{"environmentName": sim.ContosoDefaultEnv, "flowName": sim.FlowInvoiceApproval,
		"runName": failed.RunName, "waitSeconds": 60}, &resubmitted)
	if resubmitted.Finished == nil || !*resubmitted.Finished || resubmitted.Status != "Failed" {
		t.Fatalf("resubmit with wait: %+v", resubmitted)
	}
	var quick newRunOut
	h.mustCall(t, "trigger_live_flow", map[string]any{"environmentName": sim.ContosoDefaultEnv, "flowName": sim.FlowCreateProjectTask}, &quick)
	if quick.Finished != nil || quick.Status != "" || quick.WaitedSeconds != nil {
		t.Fatalf("without waitSeconds the call must not wait: %+v", quick)
	}
	r := h.call(t, "trigger_live_flow", map[string]any{"environmentName": sim.ContosoDefaultEnv, "flowName": sim.FlowCreateProjectTask, "waitSeconds": 101})
	wantToolError(t, r, []string{"waitSeconds"})
}

// TestWaitReportsProgressAndStopsWhenCancelled: a run that waits on an approval
// keeps the call waiting with progress; notifications/cancelled stops the polling
// and the stream ends with no response.
func TestWaitReportsProgressAndStopsWhenCancelled(t *testing.T) {
	h := newLiveHarness(t, liveOptions{})
	srv := h.mcpServer(t)
	var cancelled atomic.Bool
	progress, resp := streamCall(t, srv.URL, "trigger_live_flow",
		map[string]any{"environmentName": sim.ContosoDefaultEnv, "flowName": sim.FlowLeaveRequest, "waitSeconds": 100},
		func(ev sseEvent) {
			if ev.Params.Total != 100 || !strings.Contains(ev.Params.Message, "Running") {
				t.Errorf("progress %+v", ev.Params)
			}
			if cancelled.Swap(true) {
				return
			}
			r := postMCP(t, srv.URL, `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":41,"reason":"test"}}`)
			r.Body.Close()
			if r.StatusCode != http.StatusAccepted {
				t.Errorf("cancel: status %d", r.StatusCode)
			}
		})
	if len(progress) == 0 || !cancelled.Load() {
		t.Fatal("no progress while waiting")
	}
	if resp != nil {
		t.Fatalf("a cancelled call answered: %s", resp.Result)
	}
	// The run itself is not touched: cancelling a call is not cancelling the run.
	if run := h.newestRun(t, sim.ContosoDefaultEnv, sim.FlowLeaveRequest, ""); run.Status != "Running" {
		t.Fatalf("newest run %s is %s", run.Name, run.Status)
	}
}

// TestProgressWhileScanningTheStore: a store listing whose filter few items match
// scans page after page of the cache and reports each page but the last.
func TestProgressWhileScanningTheStore(t *testing.T) {
	sh := newStoreHarness(t)
	sh.seed(t, "u.scan", 450) // three store pages of flows
	h := sh.as(t, "u.scan", cosmos.TierTeam)
	srv := h.mcpServer(t)
	progress, resp := streamCall(t, srv.URL, "list_store_flows", map[string]any{"search": "Invoice approval"}, nil)
	if resp == nil {
		t.Fatal("no response")
	}
	var out storeFlowsOut
	structured(t, resp, &out)
	if len(out.Flows) != 1 {
		t.Fatalf("flows %+v", out.Flows)
	}
	if len(progress) != 2 || progress[0].Params.Total != storeScanPages || !strings.Contains(progress[1].Params.Message, "2 pages") {
		t.Fatalf("progress %+v, want one per store page but the last of three", progress)
	}
}
