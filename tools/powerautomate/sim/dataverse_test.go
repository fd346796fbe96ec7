package sim

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/flowstudio/mcp/tools/powerautomate"
)

// TestDataverse: BAP advertises the organisation of environments with a database
// (not of the sandboxes), the Web API answers solutions and AddSolutionComponent in
// OData's shapes, tokens must carry the org URL as audience, and another tenant's
// user is not a member.
func TestDataverse(t *testing.T) {
	s, srv := newTestSim(t, Options{})
	c := newTestClient(t, s, srv.URL, alice)
	org, err := c.GetDataverseOrg(ctx, ContosoDefaultEnv)
	if err != nil || !strings.HasPrefix(org.APIURL, srv.URL+"/dataverse/org") || !strings.HasSuffix(org.Audience, ".crm4.dynamics.com") {
		t.Fatalf("%+v %v", org, err)
	}
	if _, err := c.GetDataverseOrg(ctx, ContosoSandboxEnv); err != powerautomate.ErrNoDataverse {
		t.Errorf("sandbox: %v", err)
	}
	sol, err := c.GetSolution(ctx, org, "", strings.ToLower(SolutionUnmanaged))
	if err != nil || sol.UniqueName != SolutionUnmanaged || sol.IsManaged || sol.ID != s.SolutionID(ContosoDefaultEnv, SolutionUnmanaged) {
		t.Fatalf("by name: %+v %v", sol, err)
	}
	byID, err := c.GetSolution(ctx, org, sol.ID, "")
	if err != nil || *byID != *sol {
		t.Fatalf("by id: %+v %v", byID, err)
	}
	if m, err := c.GetSolution(ctx, org, "", SolutionManaged); err != nil || !m.IsManaged {
		t.Fatalf("managed: %+v %v", m, err)
	}
	_, err = c.GetSolution(ctx, org, "11111111-2222-3333-4444-555555555555", "")
	wantAPIError(t, err, http.StatusNotFound, "0x80040217")

	f, err := c.GetFlow(ctx, ref(ContosoDefaultEnv, FlowInvoiceApproval))
	if err != nil || f.WorkflowEntityID == "" {
		t.Fatalf("workflowEntityId: %+v %v", f, err)
	}
	id, err := c.AddSolutionComponent(ctx, org, f.WorkflowEntityID, powerautomate.ComponentTypeWorkflow, SolutionUnmanaged)
	if err != nil || id == "" || !s.SolutionHasFlow(ContosoDefaultEnv, SolutionUnmanaged, FlowInvoiceApproval) {
		t.Fatalf("add: %q %v", id, err)
	}
	if again, err := c.AddSolutionComponent(ctx, org, f.WorkflowEntityID, powerautomate.ComponentTypeWorkflow, SolutionUnmanaged); err != nil || again != id {
		t.Fatalf("add again: %q %v", again, err)
	}
	_, err = c.AddSolutionComponent(ctx, org, f.WorkflowEntityID, powerautomate.ComponentTypeWorkflow, SolutionManaged)
	wantAPIError(t, err, http.StatusBadRequest, "0x80048033")
	_, err = c.AddSolutionComponent(ctx, org, "11111111-2222-3333-4444-555555555555", powerautomate.ComponentTypeWorkflow, SolutionUnmanaged)
	wantAPIError(t, err, http.StatusNotFound, "0x80040217")

	// Bob's private flow: Alice lacks the privilege on it.
	bobFlow, err := newTestClient(t, s, srv.URL, bob).GetFlow(ctx, ref(ContosoDefaultEnv, FlowBobPrivate))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.AddSolutionComponent(ctx, org, bobFlow.WorkflowEntityID, powerautomate.ComponentTypeWorkflow, SolutionUnmanaged)
	wantAPIError(t, err, http.StatusForbidden, "0x80040220")

	// A Fabrikam user is no member of Contoso's organisation.
	_, err = newTestClient(t, s, srv.URL, fiona).GetSolution(ctx, org, "", SolutionUnmanaged)
	wantAPIError(t, err, http.StatusForbidden, "0x80072560")

	// The Flow audience is not Dataverse's.
	status, body := rawCall(t, "GET", org.APIURL+"/api/data/v9.2/solutions?$filter=uniquename%20eq%20'x'", flowToken(s, alice, time.Hour), "")
	if status != http.StatusUnauthorized || !strings.Contains(body, "InvalidAuthenticationTokenAudience") {
		t.Errorf("flow token: %d %s", status, body)
	}
}
