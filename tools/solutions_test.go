package tools

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/flowstudio/mcp/tools/powerautomate"
	"github.com/flowstudio/mcp/tools/powerautomate/sim"
)

func solutionArgs(extra map[string]any) map[string]any {
	args := map[string]any{"environmentName": sim.ContosoDefaultEnv, "flowName": sim.FlowInvoiceApproval}
	for k, v := range extra {
		args[k] = v
	}
	return args
}

// dataverseRequests counts the requests that reached the simulated Dataverse.
func dataverseRequests(h *liveHarness, method string) int {
	n := 0
	for _, r := range h.requestsTo("dataverse") {
		if method == "" || r.Method == method {
			n++
		}
	}
	return n
}

// TestAddLiveFlowToSolution: the flow lands in the solution (by unique name or id),
// a repeat answers the same component, and what cannot work is refused with a next
// step, before the add when it can be known.
func TestAddLiveFlowToSolution(t *testing.T) {
	t.Parallel()
	h := newLiveHarness(t, liveOptions{})
	var out addToSolutionOut
	h.mustCall(t, "add_live_flow_to_solution", solutionArgs(map[string]any{"solutionUniqueName": sim.SolutionUnmanaged}), &out)
	wantID := h.Sim.SolutionID(sim.ContosoDefaultEnv, sim.SolutionUnmanaged)
	if out.SolutionID != wantID || out.SolutionUniqueName != sim.SolutionUnmanaged || out.FlowName != sim.FlowInvoiceApproval ||
		out.WorkflowEntityID == "" || out.SolutionComponentID == "" || out.FlowDisplayName == "" || out.Next == "" {
		t.Fatalf("%+v", out)
	}
	if !h.Sim.SolutionHasFlow(sim.ContosoDefaultEnv, sim.SolutionUnmanaged, sim.FlowInvoiceApproval) {
		t.Fatal("the simulator's solution does not hold the flow")
	}
	adds := h.Sim.Requests()
	var add *sim.RecordedRequest
	for i := range adds {
		if adds[i].Host == "dataverse" && adds[i].Method == http.MethodPost {
			add = &adds[i]
		}
	}
	if add == nil || !strings.HasSuffix(add.Path, "/api/data/v9.2/AddSolutionComponent") || !strings.HasSuffix(add.Audience, ".crm4.dynamics.com") {
		t.Fatalf("AddSolutionComponent request: %+v", add)
	}

	t.Run("again, by id: the same component", func(t *testing.T) {
		var again addToSolutionOut
		h.mustCall(t, "add_live_flow_to_solution", solutionArgs(map[string]any{"solutionId": strings.ToUpper(wantID)}), &again)
		if again.SolutionComponentID != out.SolutionComponentID || again.SolutionUniqueName != sim.SolutionUnmanaged {
			t.Errorf("%+v, want component %s", again, out.SolutionComponentID)
		}
	})
	refused := func(t *testing.T, args map[string]any, posts int, fragments ...string) {
		t.Helper()
		h.Sim.ResetRequests()
		wantToolError(t, h.call(t, "add_live_flow_to_solution", args), append(fragments, "Next: "))
		if n := dataverseRequests(h, http.MethodPost); n != posts {
			t.Errorf("%d AddSolutionComponent requests, want %d", n, posts)
		}
	}
	t.Run("managed solution", func(t *testing.T) {
		refused(t, solutionArgs(map[string]any{"solutionUniqueName": sim.SolutionManaged}), 0, "is managed", "unmanaged solution")
	})
	t.Run("unknown unique name", func(t *testing.T) {
		refused(t, solutionArgs(map[string]any{"solutionUniqueName": "NoSuchSolution"}), 0, "no solution with that unique name")
	})
	t.Run("unknown id", func(t *testing.T) {
		refused(t, solutionArgs(map[string]any{"solutionId": "11111111-2222-3333-4444-555555555555"}), 0,
			"solution not found", "upstream status 404 code 0x80040217")
	})
	t.Run("no Dataverse in the environment", func(t *testing.T) {
		env := sim.ContosoSandboxEnv
		refused(t, map[string]any{"environmentName": env, "flowName": sim.FlowInvoiceApproval, "solutionUniqueName": sim.SolutionUnmanaged}, 0,
			"no Dataverse database")
		if n := dataverseRequests(h, ""); n != 0 {
			t.Errorf("%d Dataverse requests", n)
		}
	})
	t.Run("someone else's private flow", func(t *testing.T) {
		refused(t, solutionArgs(map[string]any{"flowName": sim.FlowBobPrivate, "solutionUniqueName": sim.SolutionUnmanaged}), 0,
			"you do not have access to this flow", "status 403")
	})
	t.Run("neither or both solution arguments", func(t *testing.T) {
		refused(t, solutionArgs(nil), 0, "exactly one of solutionId and solutionUniqueName")
		refused(t, solutionArgs(map[string]any{"solutionId": wantID, "solutionUniqueName": sim.SolutionUnmanaged}), 0, "exactly one")
		if n := len(h.Sim.Requests()); n != 0 {
			t.Errorf("%d upstream requests", n)
		}
	})
	t.Run("another tenant's environment", func(t *testing.T) {
		refused(t, map[string]any{"environmentName": sim.FabrikamDefaultEnv, "flowName": sim.FlowInvoiceApproval,
			"solutionUniqueName": sim.SolutionUnmanaged}, 0, "status 404")
	})
}

// dataverseTokens refuses every Dataverse audience, as the token source does for a
// user without the "dataverse" grant.
type dataverseTokens struct {
	inner powerautomate.TokenSource
	err   error
}

func (d dataverseTokens) Token(ctx context.Context, aud string) (string, error) {
	if strings.HasSuffix(aud, ".dynamics.com") {
		return "", fmt.Errorf("token source: %w", d.err)
	}
	return d.inner.Token(ctx, aud)
}

// TestAddLiveFlowToSolutionNeedsTheDataverseGrant: without the grant nothing reaches
// Dataverse and the answer names the grant and where to give it, like the
// connector-runtime tools; a lapsed sign-in is the generic reconnect.
func TestAddLiveFlowToSolutionNeedsTheDataverseGrant(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		err  error
		want []string
	}{
		"not granted": {powerautomate.ErrConsentRequired, []string{"extra consent", ".crm4.dynamics.com", "grant Dataverse access at " + connDashboard}},
		"reconnect":   {powerautomate.ErrReconnect, []string{"reconnect at " + connDashboard}},
	} {
		t.Run(name, func(t *testing.T) {
			h := newLiveHarness(t, liveOptions{})
			rewire(t, h, 10*time.Second, func(ts powerautomate.TokenSource) powerautomate.TokenSource {
				return dataverseTokens{inner: ts, err: tc.err}
			}, nil)
			h.Sim.ResetRequests()
			connError(t, h.call(t, "add_live_flow_to_solution", solutionArgs(map[string]any{"solutionUniqueName": sim.SolutionUnmanaged})),
				append(tc.want, "Next:")...)
			if n := dataverseRequests(h, ""); n != 0 {
				t.Errorf("%d Dataverse requests without a token", n)
			}
			if h.Sim.SolutionHasFlow(sim.ContosoDefaultEnv, sim.SolutionUnmanaged, sim.FlowInvoiceApproval) {
				t.Error("the flow was added")
			}
		})
	}
}

// TestAddLiveFlowToSolutionDataverseFailures maps each Dataverse refusal (OData error
// bodies) to our words with the upstream status and code, never the upstream text.
func TestAddLiveFlowToSolutionDataverseFailures(t *testing.T) {
	t.Parallel()
	odata := func(code string) string {
		return `{"error":{"code":"` + code + `","message":"` + upstreamSecret + ` in org contoso."}}`
	}
	args := solutionArgs(map[string]any{"solutionUniqueName": sim.SolutionUnmanaged})
	h := newLiveHarness(t, liveOptions{MaxRetries: 2})
	for _, tc := range []struct {
		name   string
		method string // the request that fails
		fault  sim.Fault
		count  int
		ok     bool
		want   []string
	}{
		{name: "401 our token refused", method: "POST", fault: sim.Fault{Status: 401, Body: odata("0x80072182")},
			want: []string{"extra consent", "grant Dataverse access at", "status 401"}},
		{name: "403 missing privilege", method: "POST", fault: sim.Fault{Status: 403, Body: odata("0x80040220")},
			want: []string{"security role", "status 403 code 0x80040220"}},
		{name: "403 not a member", method: "GET", fault: sim.Fault{Status: 403, Body: odata("0x80072560")},
			want: []string{"not a user of this environment's Dataverse", "code 0x80072560"}},
		{name: "404 on the add", method: "POST", fault: sim.Fault{Status: 404, Body: odata("0x80040217")},
			want: []string{"not found in the environment's Dataverse", "status 404 code 0x80040217", "list_live_flows"}},
		{name: "400", method: "POST", fault: sim.Fault{Status: 400, Body: odata("0x80040203")},
			want: []string{"Dataverse rejected the request as invalid", "code 0x80040203"}},
		{name: "503 until the retries run out", method: "GET", fault: sim.Fault{Status: 503, Body: odata("0x80044183")},
			want: []string{"Dataverse had a server error", "status 503", "retry"}},
		{name: "429 with Retry-After, then success", method: "POST", fault: sim.Fault{Status: 429, RetryAfter: time.Second}, count: 1, ok: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h.Sim.ClearFaults()
			t.Cleanup(h.Sim.ClearFaults)
			h.Sim.InjectFault(sim.FaultMatch{Method: tc.method, PathContains: "/dataverse/", Count: tc.count}, tc.fault)
			h.Sim.ResetRequests()
			r := h.call(t, "add_live_flow_to_solution", args)
			if tc.ok {
				if r.IsError {
					t.Fatalf("not retried: %s", r.Text)
				}
				if n := dataverseRequests(h, "POST"); n != 2 {
					t.Errorf("%d adds, want 2", n)
				}
				return
			}
			connError(t, r, append(tc.want, "Next:")...)
		})
	}
	t.Run("timeout", func(t *testing.T) {
		h.Sim.ClearFaults()
		t.Cleanup(h.Sim.ClearFaults)
		rewire(t, h, 500*time.Millisecond, nil, nil)
		h.Sim.InjectFault(sim.FaultMatch{PathContains: "/dataverse/"}, sim.Fault{Delay: 3 * time.Second})
		connError(t, h.call(t, "add_live_flow_to_solution", args), "did not answer in time", "Next:")
	})
}

// TestAddLiveFlowToSolutionRefusesHostileIdentifiers: the solution arguments (the
// flow and environment ones are in TestLiveIdentifierInjection) never reach a URL.
func TestAddLiveFlowToSolutionRefusesHostileIdentifiers(t *testing.T) {
	t.Parallel()
	h := newLiveHarness(t, liveOptions{})
	for _, field := range []string{"solutionId", "solutionUniqueName"} {
		for _, bad := range append(hostileIDs, "a'b", "x' or uniquename ne 'y", "Contoso-Invoicing") {
			t.Run(fmt.Sprintf("%s/%q", field, capForLog(bad)[:min(len(bad), 12)]), func(t *testing.T) {
				h.Sim.ResetRequests()
				r := h.call(t, "add_live_flow_to_solution", solutionArgs(map[string]any{field: bad}))
				if !r.IsError || !strings.Contains(r.Text, field) {
					t.Fatalf("hostile %s %q: %s", field, bad, capForLog(r.Text))
				}
				if n := len(h.Sim.Requests()); n != 0 {
					t.Errorf("%d upstream requests", n)
				}
			})
		}
	}
}
