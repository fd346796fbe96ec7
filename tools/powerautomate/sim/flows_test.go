package sim

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/flowstudio/mcp/tools/powerautomate"
)

func TestFlowAccessErrors(t *testing.T) {
	s, srv, asAlice := newAliceSim(t)
	asBob := newTestClient(t, s, srv.URL, bob)
	asAdmin := newTestClient(t, s, srv.URL, "admin@contoso.com")
	missing := "00000000-0000-0000-0000-000000000001"

	_, err := asAlice.GetFlow(ctx, ref(ContosoDefaultEnv, FlowBobPrivate))
	apiErr := wantAPIError(t, err, 403, "ConnectionAuthorizationFailed")
	if !strings.Contains(apiErr.Message, "shared_logicflows") {
		t.Errorf("message = %q", apiErr.Message)
	}
	if f, err := asBob.GetFlow(ctx, ref(ContosoDefaultEnv, FlowBobPrivate)); err != nil || f.Definition == nil {
		t.Errorf("owner: %v", err)
	}
	_, err = asAlice.GetFlow(ctx, ref(ContosoDefaultEnv, missing))
	wantAPIError(t, err, 403, "ConnectionAuthorizationFailed")

	admin := powerautomate.FlowRef{Environment: ContosoDefaultEnv, Flow: missing, Admin: true}
	_, err = asAdmin.GetFlow(ctx, admin)
	wantAPIError(t, err, 404, "FlowNotFound")
	admin.Flow = FlowBobPrivate
	f, err := asAdmin.GetFlow(ctx, admin)
	if err != nil || f.Definition != nil || len(f.Actions) != 0 {
		t.Errorf("admin get: %v, definition %s, actions %v", err, f.Definition, f.Actions)
	}
	_, err = asAlice.GetFlow(ctx, admin)
	wantAPIError(t, err, 403, "UserIsNotEnvironmentAdmin")

	_, err = asAlice.ListFlows(ctx, "11111111-2222-3333-4444-555555555555", powerautomate.ListFlowsOptions{})
	wantAPIError(t, err, 403, "EnvironmentAccessDenied")

	_, err = asAlice.ListRuns(ctx, ref(ContosoDefaultEnv, FlowBobPrivate), powerautomate.ListRunsOptions{})
	wantAPIError(t, err, 403, "ConnectionAuthorizationFailed")
}

func TestRetiredAdminListAnswersWithStringError(t *testing.T) {
	s, srv := newTestSim(t, Options{})
	url := srv.URL + "/flow/providers/Microsoft.ProcessSimple/scopes/admin/environments/" + ContosoDefaultEnv + "/flows?api-version=2016-11-01"
	status, body := rawCall(t, "GET", url, flowToken(s, "admin@contoso.com", time.Hour), "")
	if status != 400 || !strings.HasPrefix(body, `{"error":"The List Flows as Admin API is no longer supported.`) {
		t.Errorf("got %d %s", status, body)
	}
}

func TestListFlowsSearchPagingAndAdmin(t *testing.T) {
	s, srv, asAlice := newAliceSim(t)
	asBob := newTestClient(t, s, srv.URL, bob)
	all := func(c *powerautomate.Client, opts powerautomate.ListFlowsOptions) []powerautomate.Flow {
		t.Helper()
		var out []powerautomate.Flow
		for {
			p, err := c.ListFlows(ctx, ContosoDefaultEnv, opts)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, p.Flows...)
			if p.NextLink == "" {
				return out
			}
			if !strings.Contains(p.NextLink, "%24skiptoken=") {
				t.Errorf("nextLink %q lacks %%24skiptoken", p.NextLink)
			}
			opts.NextLink = p.NextLink
		}
	}
	aliceAll := all(asAlice, powerautomate.ListFlowsOptions{Top: 5})
	bobAll := all(asBob, powerautomate.ListFlowsOptions{})
	if len(aliceAll) < 20 || len(bobAll) != len(aliceAll)+1 {
		t.Errorf("alice sees %d flows, bob %d (bob also owns a private one)", len(aliceAll), len(bobAll))
	}
	seen := map[string]bool{}
	for _, f := range aliceAll {
		if seen[f.Name] || f.Name == FlowBobPrivate {
			t.Errorf("flow %s repeated or private flow leaked", f.Name)
		}
		seen[f.Name] = true
	}
	personal := all(asBob, powerautomate.ListFlowsOptions{Search: "personal"})
	if len(personal) != 1 || personal[0].Name != FlowBobPrivate {
		t.Errorf("bob's personal flows = %v", personal)
	}
	if team := all(asBob, powerautomate.ListFlowsOptions{Search: "team"}); len(team) != len(aliceAll) || team[0].SharingType != "Coauthor" {
		t.Errorf("bob's team flows: %d, first %+v", len(team), team[0])
	}
	admin := newTestClient(t, s, srv.URL, "admin@contoso.com")
	adminAll := all(admin, powerautomate.ListFlowsOptions{Admin: true})
	if len(adminAll) != len(bobAll) || len(adminAll[0].Triggers) != 0 {
		t.Errorf("admin sees %d flows (want %d) with summary %v", len(adminAll), len(bobAll), adminAll[0].Triggers)
	}
}

func TestTenantIsolation(t *testing.T) {
	s, srv := newTestSim(t, Options{})
	asFiona := newTestClient(t, s, srv.URL, fiona)
	asAlice := newTestClient(t, s, srv.URL, alice)
	envs, err := asFiona.ListEnvironments(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range envs {
		if !strings.Contains(e.DisplayName, "Fabrikam") {
			t.Errorf("fabrikam user sees environment %s (%s)", e.Name, e.DisplayName)
		}
	}
	for _, env := range []string{ContosoDefaultEnv, ContosoProductionEnv, ContosoSandboxEnv} {
		_, err := asFiona.ListFlows(ctx, env, powerautomate.ListFlowsOptions{})
		wantAPIError(t, err, 403, "EnvironmentAccessDenied")
		_, err = asFiona.ListConnections(ctx, env, powerautomate.ListConnectionsOptions{})
		wantAPIError(t, err, 403, "EnvironmentAccessDenied")
	}
	_, err = asFiona.GetFlow(ctx, ref(ContosoDefaultEnv, FlowInvoiceApproval))
	wantAPIError(t, err, 403, "EnvironmentAccessDenied")
	// A Contoso flow name under Fabrikam's own environment is not found either.
	_, err = asFiona.GetFlow(ctx, ref(FabrikamDefaultEnv, FlowInvoiceApproval))
	wantAPIError(t, err, 403, "ConnectionAuthorizationFailed")
	_, err = asFiona.ListDynamicValues(ctx, ContosoDefaultEnv, "shared_contosotasks", ContosoTasksConnection,
		powerautomate.DynamicRequest{Definition: json.RawMessage(`{"operationId":"ListProjects"}`)})
	wantAPIError(t, err, 404, "ServiceToServiceEnvironmentNotFound")
	_, err = asFiona.InvokeConnectorOperation(ctx, powerautomate.ConnectorCall{RuntimeURL: srv.URL + "/apihub/apim/contosotasks",
		Connection: ContosoTasksConnection, Method: "GET", PathTemplate: "/{connectionId}/projects"})
	wantAPIError(t, err, 404, "")

	fab, err := asFiona.ListFlows(ctx, "~default", powerautomate.ListFlowsOptions{})
	if err != nil {
		t.Fatal(err)
	}
	con, err := asAlice.ListFlows(ctx, "~default", powerautomate.ListFlowsOptions{})
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, f := range con.Flows {
		names[f.Name] = true
	}
	for _, f := range fab.Flows {
		if names[f.Name] || f.Environment != FabrikamDefaultEnv {
			t.Errorf("flow %s (%s) shared between tenants", f.Name, f.Environment)
		}
	}
}

func TestStartStopAndDLP(t *testing.T) {
	c := newAliceClient(t)
	r := ref(ContosoDefaultEnv, FlowDailySalesReport)
	for range 2 { // idempotent
		if err := c.StopFlow(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if f, _ := c.GetFlow(ctx, r); f.State != "Stopped" {
		t.Errorf("state after stop = %s", f.State)
	}
	for range 2 {
		if err := c.StartFlow(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if f, _ := c.GetFlow(ctx, r); f.State != "Started" {
		t.Errorf("state after start = %s", f.State)
	}
	apiErr := wantAPIError(t, c.StartFlow(ctx, ref(ContosoDefaultEnv, FlowDataverseWebhook)), 403, "ApiPolicyDataFlowViolation")
	if !strings.Contains(apiErr.Message, "COE upgrade DLP") {
		t.Errorf("message = %q", apiErr.Message)
	}
	wantAPIError(t, c.StartFlow(ctx, ref(ContosoProductionEnv, FlowTwitterPost)), 403, "DlpViolation")
	if f, _ := c.GetFlow(ctx, ref(ContosoDefaultEnv, FlowDataverseWebhook)); f.State != "Stopped" {
		t.Errorf("DLP-blocked flow state = %s", f.State)
	}
}

func TestCreateUpdateAndCheckFlow(t *testing.T) {
	s, srv, c := newAliceSim(t)
	def := json.RawMessage(`{"triggers":{"manual":{"type":"Request","kind":"Button","inputs":{}}},
		"actions":{"Compose":{"type":"Compose","runAfter":{},"inputs":"hello"}}}`)
	created, err := c.CreateFlow(ctx, ContosoSandboxEnv, powerautomate.FlowUpdate{DisplayName: "Made by a test", Definition: def, State: "Stopped"})
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^[0-9a-f-]{36}$`).MatchString(created.Name) || created.State != "Stopped" || created.UserType != "Owner" {
		t.Fatalf("created = %+v", created)
	}
	r := ref(ContosoSandboxEnv, created.Name)
	// New flows are personal: another user of the tenant cannot see them.
	_, err = newTestClient(t, s, srv.URL, bob).GetFlow(ctx, r)
	wantAPIError(t, err, 403, "ConnectionAuthorizationFailed")

	clockOf(s).advance(time.Second)
	newDef := json.RawMessage(`{"triggers":{"manual":{"type":"Request","kind":"Button","inputs":{}}},
		"actions":{"Compose":{"type":"Compose","runAfter":{},"inputs":"changed"}}}`)
	updated, err := c.UpdateFlow(ctx, r, powerautomate.FlowUpdate{Definition: newDef})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(updated.Definition), "changed") || !updated.LastModifiedTime.After(created.LastModifiedTime) || updated.DisplayName != "Made by a test" {
		t.Errorf("updated = %+v", updated)
	}

	broken := json.RawMessage(`{"triggers":{},"actions":{
		"A":{"type":"Compose","runAfter":{"Missing":["Succeeded"]},"inputs":1},
		"B":{"type":"Teleport","runAfter":{}},
		"S":{"type":"Scope","runAfter":{},"actions":{"X":{"type":"Compose","runAfter":{"Y":["Succeeded"]}},"Y":{"type":"Compose","runAfter":{"X":["Succeeded"]}}}}}}`)
	issues, err := c.CheckFlowErrors(ctx, r, powerautomate.FlowUpdate{Definition: broken})
	if err != nil {
		t.Fatal(err)
	}
	codes := map[string]bool{}
	for _, i := range issues {
		codes[i.Code+"/"+i.OperationID] = true
	}
	for _, want := range []string{"MissingTrigger/", "InvalidTemplate/A", "InvalidActionType/B", "InvalidTemplate/X"} {
		if !codes[want] {
			t.Errorf("checkFlowErrors lacks %s: %+v", want, issues)
		}
	}
	if issues, err := c.CheckFlowErrors(ctx, r, powerautomate.FlowUpdate{Definition: newDef}); err != nil || len(issues) != 0 {
		t.Errorf("clean definition: %v %+v", err, issues)
	}
	_, err = c.UpdateFlow(ctx, r, powerautomate.FlowUpdate{Definition: broken})
	wantAPIError(t, err, 400, "InvalidOpenApiFlow")
	_, err = c.UpdateFlow(ctx, r, powerautomate.FlowUpdate{ConnectionReferences: json.RawMessage(`{"shared_office365":{"connectionName":"shared-office365-nope"}}`)})
	wantAPIError(t, err, 403, "ConnectionAuthorizationFailed")

	sales, err := c.GetFlow(ctx, ref(ContosoDefaultEnv, FlowDailySalesReport))
	if err != nil {
		t.Fatal(err)
	}
	warnings, err := c.CheckFlowWarnings(ctx, ref(ContosoDefaultEnv, FlowDailySalesReport), powerautomate.FlowUpdate{Definition: sales.Definition})
	if err != nil || len(warnings) == 0 || warnings[0].Code != "LoopConcurrencyNotConfigured" || warnings[0].OperationID != "Apply_to_each" {
		t.Errorf("warnings = %+v, %v", warnings, err)
	}
}

func TestTriggersAndEnvironment(t *testing.T) {
	c := newAliceClient(t)
	env, err := c.GetEnvironment(ctx, "~default")
	if err != nil || env.Name != ContosoDefaultEnv || !env.IsDefault || env.SKU != "Default" {
		t.Fatalf("default environment = %+v, %v", env, err)
	}
	triggers, err := c.ListTriggers(ctx, ref(ContosoDefaultEnv, FlowOrderIntake))
	if err != nil || len(triggers) != 1 || triggers[0].Name != "manual" || triggers[0].State != "Enabled" {
		t.Fatalf("triggers = %+v, %v", triggers, err)
	}
	cb, err := c.ListCallbackURL(ctx, ref(ContosoDefaultEnv, FlowOrderIntake), "manual")
	if err != nil || cb.Method != "POST" || !strings.Contains(cb.Value, "/content/workflows/") || !strings.Contains(cb.Value, "sig=") {
		t.Errorf("callback = %+v, %v", cb, err)
	}
	_, err = c.ListCallbackURL(ctx, ref(ContosoDefaultEnv, FlowDailySalesReport), "Recurrence")
	wantAPIError(t, err, 400, "WorkflowTriggerCallbackUrlNotSupported")
}

// A flow's answer is a struct for speed; it must read byte for byte as the same
// fields in maps with sorted keys (encoding/json's order, and what it replaced), in
// every view of every seeded flow. A field declared out of order fails here.
func TestFlowAnswerReadsAsSortedMap(t *testing.T) {
	s, _ := newTestSim(t, Options{})
	n := 0
	for _, tn := range s.tenants {
		for _, env := range tn.envs {
			for _, f := range env.flows {
				for _, c := range []*caller{{tenantID: tn.id, objectID: f.creator}, {tenantID: tn.id, objectID: "someone-else"}} {
					for _, view := range []struct{ admin, withDefinition bool }{{false, false}, {false, true}, {true, false}} {
						got := encodeJSON(flowJSON(f, c, view.admin, view.withDefinition))
						if want := encodeJSON(sortedObjects(t, got)); string(got) != string(want) {
							t.Fatalf("flow %s, view %+v:\n got %s\nwant %s", f.name, view, got, want)
						}
						n++
					}
				}
			}
		}
	}
	if n == 0 {
		t.Fatal("no seeded flow")
	}
}

// sortedObjects makes every object of raw a map, so that encoding sorts its keys,
// except the members that stay as the flow stores them (raw JSON, written as is).
func sortedObjects(t *testing.T, raw json.RawMessage) any {
	t.Helper()
	switch raw[0] {
	case '{':
		var m map[string]json.RawMessage
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
		out := map[string]any{}
		for k, v := range m {
			if k == "definition" || k == "connectionReferences" {
				out[k] = v
			} else {
				out[k] = sortedObjects(t, v)
			}
		}
		return out
	case '[':
		var a []json.RawMessage
		if err := json.Unmarshal(raw, &a); err != nil {
			t.Fatal(err)
		}
		out := make([]any, len(a))
		for i, v := range a {
			out[i] = sortedObjects(t, v)
		}
		return out
	}
	return raw
}

// The service is .NET, whose serializer escapes control characters only: markup in a
// definition (an email body's <p>) reads as it was written, not as \u003c.
func TestFlowAnswerIsNotHTMLEscaped(t *testing.T) {
	s, _ := newTestSim(t, Options{})
	for _, tn := range s.tenants {
		for _, env := range tn.envs {
			for _, f := range env.flows {
				if !strings.Contains(string(f.definition), "<p>") {
					continue
				}
				got := string(encodeJSON(flowJSON(f, &caller{tenantID: tn.id, objectID: f.creator}, false, true)))
				if !strings.Contains(got, "<p>") || strings.Contains(got, `\u003c`) {
					t.Fatalf("flow %s answers its markup escaped:\n%s", f.name, got)
				}
				return
			}
		}
	}
	t.Fatal("no seeded flow with markup in its definition")
}
