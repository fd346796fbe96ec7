package tools

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
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
// flow and environment ones are in TestLiveIdentifierInjection) never reach a URL or a
// request body, whichever way the flow would be added.
func TestAddLiveFlowToSolutionRefusesHostileIdentifiers(t *testing.T) {
	t.Parallel()
	h := newLiveHarness(t, liveOptions{})
	for _, field := range []string{"solutionId", "solutionUniqueName"} {
		for _, bad := range append(hostileIDs, "a'b", "x' or uniquename ne 'y", "Contoso-Invoicing") {
			// In Dataverse (AddSolutionComponent) and outside it (migrateFlows) alike.
			for _, flow := range []string{sim.FlowInvoiceApproval, sim.FlowVacationTracker} {
				t.Run(fmt.Sprintf("%s/%s/%q", flow[:8], field, capForLog(bad)[:min(len(bad), 12)]), func(t *testing.T) {
					h.Sim.ResetRequests()
					r := h.call(t, "add_live_flow_to_solution", solutionArgs(map[string]any{"flowName": flow, field: bad}))
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
}

// legacyArgs names the seeded flow that lives outside Dataverse.
func legacyArgs(extra map[string]any) map[string]any {
	args := solutionArgs(extra)
	args["flowName"] = sim.FlowVacationTracker
	return args
}

// migrateRequests counts the Flow service's migrateFlows requests the simulator saw.
func migrateRequests(h *liveHarness) int {
	n := 0
	for _, r := range h.requestsTo("flow") {
		if r.Method == http.MethodPost && strings.HasSuffix(r.Path, "/migrateFlows") {
			n++
		}
	}
	return n
}

// TestAddLiveFlowToSolutionMovesAFlowOutsideDataverse: a flow stored only in the Flow
// service is moved into the solution by migrateFlows (the Flow audience, no Dataverse
// write), comes back with a workflowEntityId, and a following call finds it in the
// solution through Dataverse.
func TestAddLiveFlowToSolutionMovesAFlowOutsideDataverse(t *testing.T) {
	t.Parallel()
	h := newLiveHarness(t, liveOptions{})
	wantID := h.Sim.SolutionID(sim.ContosoDefaultEnv, sim.SolutionUnmanaged)
	h.Sim.ResetRequests()
	var out addToSolutionOut
	h.mustCall(t, "add_live_flow_to_solution", legacyArgs(map[string]any{"solutionUniqueName": sim.SolutionUnmanaged}), &out)
	if !out.MovedIntoDataverse || out.WorkflowEntityID == "" || out.SolutionID != wantID || out.SolutionUniqueName != sim.SolutionUnmanaged ||
		out.SolutionDisplayName == "" || out.SolutionComponentID != "" || out.FlowName != sim.FlowVacationTracker || out.FlowDisplayName == "" ||
		!strings.Contains(out.Next, "now stored in Dataverse") {
		t.Fatalf("%+v", out)
	}
	var migrate *sim.RecordedRequest
	for _, r := range h.Sim.Requests() {
		if r.Method == http.MethodPost && strings.HasSuffix(r.Path, "/migrateFlows") {
			migrate = &r
		}
	}
	if migrate == nil || migrate.Host != "flow" || migrate.Audience != powerautomate.AudienceFlow ||
		migrate.Path != "/providers/Microsoft.Flow/environments/"+sim.ContosoDefaultEnv+"/solutions/"+wantID+"/migrateFlows" ||
		migrate.Query != "api-version=2018-10-01" {
		t.Fatalf("migrateFlows request: %+v", migrate)
	}
	if n := dataverseRequests(h, http.MethodPost); n != 0 {
		t.Errorf("%d Dataverse writes for a flow outside Dataverse", n)
	}
	if !h.Sim.SolutionHasFlow(sim.ContosoDefaultEnv, sim.SolutionUnmanaged, sim.FlowVacationTracker) {
		t.Fatal("the simulator's solution does not hold the flow")
	}

	// The next call sees a flow in Dataverse: added (found) through Dataverse, same row.
	h.Sim.ResetRequests()
	var again addToSolutionOut
	h.mustCall(t, "add_live_flow_to_solution", legacyArgs(map[string]any{"solutionId": wantID}), &again)
	if again.MovedIntoDataverse || again.WorkflowEntityID != out.WorkflowEntityID || again.SolutionComponentID == "" ||
		again.SolutionUniqueName != sim.SolutionUnmanaged {
		t.Fatalf("following call: %+v", again)
	}
	if n := migrateRequests(h); n != 0 {
		t.Errorf("%d migrateFlows requests for a flow already in Dataverse", n)
	}
}

// TestAddLiveFlowToSolutionMovesWithoutTheDataverseGrant: by solutionId a flow outside
// Dataverse needs only the default sign-in; by unique name the grant is needed (the
// name is resolved in Dataverse) and the answer says both ways out.
func TestAddLiveFlowToSolutionMovesWithoutTheDataverseGrant(t *testing.T) {
	t.Parallel()
	h := newLiveHarness(t, liveOptions{})
	rewire(t, h, 10*time.Second, func(ts powerautomate.TokenSource) powerautomate.TokenSource {
		return dataverseTokens{inner: ts, err: powerautomate.ErrConsentRequired}
	}, nil)
	wantID := h.Sim.SolutionID(sim.ContosoDefaultEnv, sim.SolutionUnmanaged)

	h.Sim.ResetRequests()
	connError(t, h.call(t, "add_live_flow_to_solution", legacyArgs(map[string]any{"solutionUniqueName": sim.SolutionUnmanaged})),
		"extra consent", "grant Dataverse access at "+connDashboard, "or pass solutionId instead", "Next:")
	if n := migrateRequests(h); n != 0 || h.Sim.SolutionHasFlow(sim.ContosoDefaultEnv, sim.SolutionUnmanaged, sim.FlowVacationTracker) {
		t.Fatalf("moved without a solution id (%d migrateFlows requests)", n)
	}

	h.Sim.ResetRequests()
	var out addToSolutionOut
	h.mustCall(t, "add_live_flow_to_solution", legacyArgs(map[string]any{"solutionId": strings.ToUpper(wantID)}), &out)
	if !out.MovedIntoDataverse || out.WorkflowEntityID == "" || out.SolutionID != wantID || out.SolutionUniqueName != "" || out.SolutionDisplayName != "" {
		t.Fatalf("%+v", out)
	}
	if n := dataverseRequests(h, ""); n != 0 {
		t.Errorf("%d Dataverse requests without a token", n)
	}
	if !h.Sim.SolutionHasFlow(sim.ContosoDefaultEnv, sim.SolutionUnmanaged, sim.FlowVacationTracker) {
		t.Fatal("the simulator's solution does not hold the flow")
	}

	// A flow in Dataverse still needs the grant, solutionId or not.
	connError(t, h.call(t, "add_live_flow_to_solution", solutionArgs(map[string]any{"solutionId": wantID})),
		"extra consent", "grant Dataverse access at "+connDashboard, "Next:")
}

// TestAddLiveFlowToSolutionMoveRefusals: what the simulated Flow service refuses, and
// what the tool refuses before asking it, leave the flow outside Dataverse.
func TestAddLiveFlowToSolutionMoveRefusals(t *testing.T) {
	t.Parallel()
	h := newLiveHarness(t, liveOptions{})
	bob := h.sibling(t, liveOptions{Email: "bob@contoso.com"})
	for _, tc := range []struct {
		name       string
		h          *liveHarness
		args       map[string]any
		migrations int
		want       []string
	}{
		{"a shared flow the caller does not own", bob, legacyArgs(map[string]any{"solutionUniqueName": sim.SolutionUnmanaged}), 1,
			[]string{"moving a flow into a solution takes its owner", "upstream status 403 code FlowMigrationRequiresOwner", "Add-AdminFlowsToSolution"}},
		{"a managed solution", h, legacyArgs(map[string]any{"solutionUniqueName": sim.SolutionManaged}), 0, []string{"is managed"}},
		{"an unknown solution id", h, legacyArgs(map[string]any{"solutionId": "11111111-2222-3333-4444-555555555555"}), 0,
			[]string{"solution not found", "code 0x80040217"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h.Sim.ResetRequests()
			connError(t, tc.h.call(t, "add_live_flow_to_solution", tc.args), append(tc.want, "Next:")...)
			if n := migrateRequests(h); n != tc.migrations {
				t.Errorf("%d migrateFlows requests, want %d", n, tc.migrations)
			}
			if h.Sim.SolutionHasFlow(sim.ContosoDefaultEnv, sim.SolutionUnmanaged, sim.FlowVacationTracker) {
				t.Fatal("the flow was moved")
			}
		})
	}
}

// TestAddLiveFlowToSolutionMoveFailures maps each refusal of migrateFlows to our words
// with the upstream status and code, never the upstream text; a retried 429 moves the
// flow; an answer that did not move it, or a failed read-back, is an error.
func TestAddLiveFlowToSolutionMoveFailures(t *testing.T) {
	t.Parallel()
	arm := func(code string) string {
		return `{"error":{"code":"` + code + `","message":"` + upstreamSecret + ` in environment contoso."}}`
	}
	args := legacyArgs(map[string]any{"solutionUniqueName": sim.SolutionUnmanaged})
	match := sim.FaultMatch{Method: http.MethodPost, PathContains: "/migrateflows"}
	h := newLiveHarness(t, liveOptions{MaxRetries: 2})
	for _, tc := range []struct {
		name  string
		fault sim.Fault
		want  []string
	}{
		{"404 flow not found", sim.Fault{Status: 404, Body: arm("FlowNotFound")},
			[]string{"did not find this flow to move", "upstream status 404 code FlowNotFound", "list_live_flows"}},
		{"404 other", sim.Fault{Status: 404, Body: arm("SolutionNotFound")},
			[]string{"did not find the flow or the solution", "status 404 code SolutionNotFound"}},
		{"403", sim.Fault{Status: 403, Body: arm("Forbidden")}, []string{"takes its owner", "status 403 code Forbidden"}},
		{"409", sim.Fault{Status: 409, Body: arm("FlowAlreadySolutionAware")},
			[]string{"already in a solution", "status 409 code FlowAlreadySolutionAware", "call add_live_flow_to_solution again"}},
		{"400", sim.Fault{Status: 400, Body: arm("InvalidMigration")},
			[]string{"refused to move the flow into this solution", "status 400 code InvalidMigration", "unmanaged"}},
		{"401", sim.Fault{Status: 401, Body: arm("InvalidAuthenticationToken")},
			[]string{"refused the delegated token", "status 401", "reconnect at"}},
		{"503 until the retries run out", sim.Fault{Status: 503, Body: arm("ServiceUnavailable")},
			[]string{"Power Automate had a server error", "status 503", "retry"}},
		{"500 not retried", sim.Fault{Status: 500, Body: arm("InternalServerError")},
			[]string{"Power Automate had a server error", "status 500"}},
		{"429 past the longest wait", sim.Fault{Status: 429, RetryAfter: time.Hour, Body: arm("TooManyRequests")},
			[]string{"Power Automate is throttling requests", "status 429", "wait 1h0m0s"}},
		{"200 without moving it", sim.Fault{Status: 200, Body: `{}`},
			[]string{"accepted the move into the solution, but the flow is not in Dataverse yet", "again in a minute"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h.Sim.ClearFaults()
			t.Cleanup(h.Sim.ClearFaults)
			h.Sim.InjectFault(match, tc.fault)
			connError(t, h.call(t, "add_live_flow_to_solution", args), append(tc.want, "Next:")...)
			if h.Sim.SolutionHasFlow(sim.ContosoDefaultEnv, sim.SolutionUnmanaged, sim.FlowVacationTracker) {
				t.Fatal("the flow was moved")
			}
		})
	}
	t.Run("timeout", func(t *testing.T) {
		h := newLiveHarness(t, liveOptions{})
		rewire(t, h, 500*time.Millisecond, nil, nil)
		h.Sim.InjectFault(match, sim.Fault{Delay: 3 * time.Second})
		connError(t, h.call(t, "add_live_flow_to_solution", args), "did not answer in time", "Next:")
	})
	t.Run("the read-back fails", func(t *testing.T) {
		h := newLiveHarness(t, liveOptions{})
		rewire(t, h, 10*time.Second, nil, func(rt http.RoundTripper) http.RoundTripper {
			return failAfterMigrate{next: rt, moved: new(atomic.Bool)}
		})
		connError(t, h.call(t, "add_live_flow_to_solution", args),
			"accepted the move into the solution, but reading the flow back failed", "status 503", "get_live_flow", "Next:")
		if !h.Sim.SolutionHasFlow(sim.ContosoDefaultEnv, sim.SolutionUnmanaged, sim.FlowVacationTracker) {
			t.Error("the move itself did not happen")
		}
	})
	t.Run("429 with Retry-After, then success", func(t *testing.T) {
		h := newLiveHarness(t, liveOptions{MaxRetries: 2})
		h.Sim.InjectFault(sim.FaultMatch{Method: http.MethodPost, PathContains: "/migrateflows", Count: 1},
			sim.Fault{Status: 429, RetryAfter: time.Second})
		h.Sim.ResetRequests()
		var out addToSolutionOut
		h.mustCall(t, "add_live_flow_to_solution", args, &out)
		if !out.MovedIntoDataverse || migrateRequests(h) != 2 {
			t.Fatalf("%+v after %d migrateFlows requests", out, migrateRequests(h))
		}
	})
}

// failAfterMigrate answers 503 to every Flow API GET once a migrateFlows request has
// gone through.
type failAfterMigrate struct {
	next  http.RoundTripper
	moved *atomic.Bool
}

func (f failAfterMigrate) RoundTrip(r *http.Request) (*http.Response, error) {
	if f.moved.Load() && r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/flow/") {
		return &http.Response{StatusCode: 503, Header: http.Header{"Content-Type": {"application/json"}},
			Body: io.NopCloser(strings.NewReader(`{"error":{"code":"ServiceUnavailable","message":"` + upstreamSecret + `"}}`)), Request: r}, nil
	}
	resp, err := f.next.RoundTrip(r)
	if err == nil && strings.HasSuffix(r.URL.Path, "/migrateFlows") && resp.StatusCode == http.StatusOK {
		f.moved.Store(true)
	}
	return resp, err
}
