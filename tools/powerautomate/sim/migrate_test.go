package sim

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/flowstudio/mcp/tools/powerautomate"
)

// TestMigrateFlows: a flow outside Dataverse moves into an unmanaged solution and then
// has a workflowEntityId that Dataverse knows as a component of it; every refusal
// leaves the tenant as it was.
func TestMigrateFlows(t *testing.T) {
	s, srv := newTestSim(t, Options{})
	c := newTestClient(t, s, srv.URL, alice)
	legacy := ref(ContosoDefaultEnv, FlowVacationTracker)
	f, err := c.GetFlow(ctx, legacy)
	if err != nil || f.WorkflowEntityID != "" {
		t.Fatalf("the seeded legacy flow is in Dataverse already: %+v %v", f, err)
	}
	unmanaged := s.SolutionID(ContosoDefaultEnv, SolutionUnmanaged)
	managed := s.SolutionID(ContosoDefaultEnv, SolutionManaged)

	refusals := []struct {
		name   string
		client *powerautomate.Client
		flow   powerautomate.FlowRef
		sol    string
		status int
		code   string
	}{
		{"unknown solution", c, legacy, "11111111-2222-3333-4444-555555555555", http.StatusNotFound, codeSolutionNotFound},
		{"managed solution", c, legacy, managed, http.StatusBadRequest, codeManagedSolution},
		{"unknown flow", c, ref(ContosoDefaultEnv, "6b6e0c0e-0000-4000-8000-000000000001"), unmanaged, http.StatusNotFound, "FlowNotFound"},
		{"someone else's private flow", c, ref(ContosoDefaultEnv, FlowBobPrivate), unmanaged, http.StatusNotFound, "FlowNotFound"},
		{"a flow already in a solution", c, ref(ContosoDefaultEnv, FlowInvoiceApproval), unmanaged, http.StatusConflict, codeFlowAlreadyInSolution},
		{"a shared flow the caller does not own", newTestClient(t, s, srv.URL, bob), legacy, unmanaged, http.StatusForbidden, codeNotFlowOwner},
		{"another tenant", newTestClient(t, s, srv.URL, fiona), legacy, unmanaged, http.StatusForbidden, "EnvironmentAccessDenied"},
	}
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			wantAPIError(t, tc.client.MigrateFlowToSolution(ctx, tc.flow, tc.sol), tc.status, tc.code)
			if f, err := c.GetFlow(ctx, legacy); err != nil || f.WorkflowEntityID != "" {
				t.Errorf("a refusal moved the flow: %+v %v", f, err)
			}
		})
	}

	if err := c.MigrateFlowToSolution(ctx, legacy, strings.ToUpper(unmanaged)); err != nil {
		t.Fatal(err)
	}
	moved, err := c.GetFlow(ctx, legacy)
	if err != nil || moved.WorkflowEntityID == "" || !s.SolutionHasFlow(ContosoDefaultEnv, SolutionUnmanaged, FlowVacationTracker) {
		t.Fatalf("after the move: %+v %v", moved, err)
	}
	// Dataverse knows the row: adding it again answers the component the move made.
	org, err := c.GetDataverseOrg(ctx, ContosoDefaultEnv)
	if err != nil {
		t.Fatal(err)
	}
	first, err := c.AddSolutionComponent(ctx, org, moved.WorkflowEntityID, powerautomate.ComponentTypeWorkflow, SolutionUnmanaged)
	if err != nil || first == "" {
		t.Fatalf("AddSolutionComponent after the move: %q %v", first, err)
	}
	if again, err := c.AddSolutionComponent(ctx, org, moved.WorkflowEntityID, powerautomate.ComponentTypeWorkflow, SolutionUnmanaged); err != nil || again != first {
		t.Fatalf("again: %q %v, want %q", again, err, first)
	}
	// Moving it again is the already-in-a-solution refusal.
	wantAPIError(t, c.MigrateFlowToSolution(ctx, legacy, unmanaged), http.StatusConflict, codeFlowAlreadyInSolution)
}

// TestMigrateFlowsWireShapes: the body must name flows by bare GUID (a resource path is
// FlowNotFound), the api-version is one of those seen for the route, an environment
// without Dataverse is refused, and only a Flow token is accepted.
func TestMigrateFlowsWireShapes(t *testing.T) {
	s, srv := newTestSim(t, Options{})
	tok := flowToken(s, alice, time.Hour)
	unmanaged := s.SolutionID(ContosoDefaultEnv, SolutionUnmanaged)
	route := func(env, sol, version string) string {
		return srv.URL + "/flow/providers/Microsoft.Flow/environments/" + env + "/solutions/" + sol + "/migrateFlows?api-version=" + version
	}
	for _, tc := range []struct {
		name, url, token, body string
		status                 int
		fragment               string
	}{
		{"resource path in the body", route(ContosoDefaultEnv, unmanaged, "2018-10-01"), tok,
			`{"flowsToMigrate":["/providers/Microsoft.ProcessSimple/environments/` + ContosoDefaultEnv + `/flows/` + FlowVacationTracker + `"]}`, 404, "FlowNotFound"},
		{"no flows", route(ContosoDefaultEnv, unmanaged, "2018-10-01"), tok, `{"flowsToMigrate":[]}`, 400, "InvalidRequestContent"},
		{"not JSON", route(ContosoDefaultEnv, unmanaged, "2018-10-01"), tok, `flowsToMigrate`, 400, "InvalidRequestContent"},
		{"unknown api-version", route(ContosoDefaultEnv, unmanaged, "2020-01-01"), tok, `{"flowsToMigrate":["` + FlowVacationTracker + `"]}`, 400, "InvalidApiVersionParameter"},
		{"environment without Dataverse", route(ContosoSandboxEnv, unmanaged, "2016-11-01"), tok, `{"flowsToMigrate":["` + FlowVacationTracker + `"]}`, 400, codeNoDataverse},
		{"a Power Apps token", route(ContosoDefaultEnv, unmanaged, "2018-10-01"),
			s.MintAccessToken(ContosoTenantID, "x", "https://service.powerapps.com/", nil, time.Hour), `{"flowsToMigrate":["` + FlowVacationTracker + `"]}`, 401, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := rawCall(t, "POST", tc.url, tc.token, tc.body)
			if status != tc.status || !strings.Contains(body, tc.fragment) {
				t.Errorf("%d %s, want %d %s", status, body, tc.status, tc.fragment)
			}
		})
	}
	if s.SolutionHasFlow(ContosoDefaultEnv, SolutionUnmanaged, FlowVacationTracker) {
		t.Fatal("a refused request moved the flow")
	}
	// The version Microsoft's module sends works too, with the bare GUID.
	status, body := rawCall(t, "POST", route(ContosoDefaultEnv, unmanaged, "2016-11-01"), tok, `{"flowsToMigrate":["`+FlowVacationTracker+`"]}`)
	if status != http.StatusOK || !s.SolutionHasFlow(ContosoDefaultEnv, SolutionUnmanaged, FlowVacationTracker) {
		t.Fatalf("%d %s", status, body)
	}
}
