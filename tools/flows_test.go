package tools

import (
	"encoding/json"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/flowstudio/mcp/tools/powerautomate"
	"github.com/flowstudio/mcp/tools/powerautomate/sim"
)

func flowArgsFor(flow string, extra map[string]any) map[string]any {
	args := map[string]any{"environmentName": envDefault, "flowName": flow}
	maps.Copy(args, extra)
	return args
}

func TestGetLiveFlow(t *testing.T) {
	t.Parallel()
	h := newLiveHarness(t, liveOptions{})

	var whole getFlowOut
	h.mustCall(t, "get_live_flow", flowArgsFor(flowInv, nil), &whole)
	if whole.DisplayName != "Invoice approval" || whole.State != "Started" || whole.Triggers["manual"] != "Request/Button" {
		t.Errorf("metadata = %+v", whole)
	}
	if whole.DefinitionBytes != len(whole.Definition) || whole.Part != nil || whole.Path != "" {
		t.Errorf("definitionBytes %d for %d bytes; part %s at %q", whole.DefinitionBytes, len(whole.Definition), whole.Part, whole.Path)
	}
	sp := whole.ConnectionReferences["shared_sharepointonline"]
	if sp.ConnectionName == "" || sp.ID != "/providers/Microsoft.PowerApps/apis/shared_sharepointonline" || sp.Source != "Embedded" {
		t.Errorf("connection reference = %+v", sp)
	}

	for _, c := range []struct {
		name, path, action string
		wantPath           string
		wantPart           string // a fragment of the compact part
	}{
		{name: "dotted", path: "actions.Try.actions.Process_invoice", wantPath: "actions.Try.actions.Process_invoice", wantPart: `"type":"Scope"`},
		{name: "pointer", path: "/actions/Try/actions/Process_invoice/actions/Calculate_unit_price/inputs",
			wantPath: "actions.Try.actions.Process_invoice.actions.Calculate_unit_price.inputs", wantPart: `"@div(variables('Total'), 0)"`},
		{name: "case-insensitive", path: "ACTIONS.try", wantPath: "actions.Try", wantPart: `"Get_invoice"`},
		{name: "array index", path: "actions.Initialize_total.inputs.variables.0.name", wantPath: "actions.Initialize_total.inputs.variables.0.name", wantPart: `"Total"`},
		{name: "triggers", path: "triggers", wantPath: "triggers", wantPart: `"kind":"Button"`},
		{name: "action at any depth", action: "calculate_unit_price", wantPath: "actions.Try.actions.Process_invoice.actions.Calculate_unit_price", wantPart: `"runAfter":{"Compose_line_count":["Succeeded"]}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			args := map[string]any{}
			if c.path != "" {
				args["path"] = c.path
			}
			if c.action != "" {
				args["actionName"] = c.action
			}
			var out getFlowOut
			h.mustCall(t, "get_live_flow", flowArgsFor(flowInv, args), &out)
			if out.Path != c.wantPath || !strings.Contains(string(out.Part), c.wantPart) || out.Definition != nil {
				t.Errorf("path %q part %s; want %q containing %s", out.Path, out.Part, c.wantPath, c.wantPart)
			}
			if out.DefinitionBytes != whole.DefinitionBytes {
				t.Errorf("definitionBytes %d, whole %d", out.DefinitionBytes, whole.DefinitionBytes)
			}
		})
	}

	for _, c := range []struct {
		name string
		args map[string]any
		want []string
	}{
		{"missing key lists the keys there", map[string]any{"path": "actions.Try.actions.Nope"},
			[]string{`no key "Nope" under "actions.Try.actions"`, "Get_invoice, Process_invoice", "Next: "}},
		{"index out of range", map[string]any{"path": "actions.Initialize_total.inputs.variables.3"}, []string{"length 1"}},
		{"below a plain value", map[string]any{"path": "actions.Try.type.x"}, []string{"is a plain value"}},
		{"unknown action", map[string]any{"actionName": "Nope"}, []string{`no action "Nope"`}},
		{"path and actionName", map[string]any{"path": "triggers", "actionName": "Try"}, []string{"not both"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			wantToolError(t, h.call(t, "get_live_flow", flowArgsFor(flowInv, c.args)), c.want)
		})
	}
}

func TestResolvePathNamesWithDots(t *testing.T) {
	def := json.RawMessage(`{"actions":{"Get_v1.2":{"type":"Compose","inputs":{"a.b":{"c":[1,{"d":true}]}}}}}`)
	for path, want := range map[string]string{
		"actions.Get_v1.2.type":             `"Compose"`,
		"actions.Get_v1.2.inputs.a.b.c.1.d": `true`,
		"/actions/Get_v1.2/inputs/a.b/c/0":  `1`,
		"":                                  string(def),
	} {
		part, _, err := resolvePath(def, path)
		if err != nil || string(part) != want {
			t.Errorf("resolvePath(%q) = %s, %v; want %s", path, part, err, want)
		}
	}
	if a, ok := findAction(json.RawMessage(`{"actions":{"S":{"type":"Switch","cases":{"One":{"case":1,"actions":{"Inner":{"type":"Compose"}}}},
		"default":{"actions":{"Fallback":{"type":"Compose"}}}}}}`), "fallback"); !ok || dottedPath(a.Path) != "actions.S.default.actions.Fallback" || a.Parent != "S" {
		t.Errorf("Switch default action: %+v %v", a, ok)
	}
}

func TestValidateLiveFlow(t *testing.T) {
	t.Parallel()
	h := newLiveHarness(t, liveOptions{})

	var saved validateOut
	h.mustCall(t, "validate_live_flow", flowArgsFor(sim.FlowDailySalesReport, nil), &saved)
	if !saved.Valid || len(saved.Errors) != 0 || len(saved.Warnings) != 1 || saved.Warnings[0].Code != "LoopConcurrencyNotConfigured" ||
		saved.Warnings[0].OperationID != "Apply_to_each" {
		t.Errorf("saved definition: %+v", saved)
	}

	broken := `{"triggers":{"manual":{"type":"Request","kind":"Button","inputs":{}}},"actions":{
		"Broken":{"type":"Compose","runAfter":{"Missing":["Succeeded"]},"inputs":"x"},
		"Odd":{"type":"NoSuchType","runAfter":{},"inputs":{}}}}`
	var proposed validateOut
	h.mustCall(t, "validate_live_flow", flowArgsFor(flowInv, map[string]any{"definition": json.RawMessage(broken)}), &proposed)
	codes := map[string]string{}
	for _, e := range proposed.Errors {
		codes[e.OperationID] = e.Code
	}
	if proposed.Valid || codes["Broken"] != "InvalidTemplate" || codes["Odd"] != "InvalidActionType" {
		t.Errorf("proposed definition: %+v", proposed)
	}
	// The proposal is not saved.
	f, err := h.PA.GetFlow(t.Context(), powerautomate.FlowRef{Environment: envDefault, Flow: flowInv})
	if err != nil || strings.Contains(string(f.Definition), "Broken") {
		t.Errorf("validate saved the definition (%v)", err)
	}

	wantToolError(t, h.call(t, "validate_live_flow", flowArgsFor(flowInv, map[string]any{"definition": "not an object"})), []string{"definition"})
}

// fixedInvoiceDefinition is the invoice flow's definition with the division by zero replaced.
func fixedInvoiceDefinition(t *testing.T, h *liveHarness) json.RawMessage {
	t.Helper()
	f, err := h.PA.GetFlow(t.Context(), powerautomate.FlowRef{Environment: envDefault, Flow: flowInv})
	if err != nil {
		t.Fatal(err)
	}
	fixed := strings.Replace(string(f.Definition), "@div(variables('Total'), 0)", "@div(variables('Total'), 2)", 1)
	if fixed == string(f.Definition) {
		t.Fatal("seeded definition lacks the failing expression")
	}
	return json.RawMessage(fixed)
}

func TestUpdateLiveFlow(t *testing.T) {
	t.Parallel()

	t.Run("fix a definition", func(t *testing.T) {
		t.Parallel()
		h := newLiveHarness(t, liveOptions{})
		var out updateFlowOut
		h.mustCall(t, "update_live_flow", flowArgsFor(flowInv, map[string]any{"definition": fixedInvoiceDefinition(t, h)}), &out)
		want := flowChanges{Actions: &nameChanges{Changed: []string{"Calculate_unit_price"}}}
		if diff := cmp.Diff(want, out.Changes); diff != "" || !out.Changed || out.Created || out.FlowName != flowInv {
			t.Errorf("changes (-want +got):\n%s\n%+v", diff, out)
		}
		f, _ := h.PA.GetFlow(t.Context(), powerautomate.FlowRef{Environment: envDefault, Flow: flowInv})
		if !strings.Contains(string(f.Definition), "@div(variables('Total'), 2)") {
			t.Error("the fix is not saved")
		}
		// The same definition again changes nothing.
		var again updateFlowOut
		h.mustCall(t, "update_live_flow", flowArgsFor(flowInv, map[string]any{"definition": f.Definition}), &again)
		if again.Changed || !again.Changes.empty() {
			t.Errorf("second save: %+v", again)
		}
	})

	t.Run("add, remove and rename", func(t *testing.T) {
		t.Parallel()
		h := newLiveHarness(t, liveOptions{})
		f, _ := h.PA.GetFlow(t.Context(), powerautomate.FlowRef{Environment: envDefault, Flow: flowInv})
		var def map[string]any
		json.Unmarshal(f.Definition, &def)
		actions := def["actions"].(map[string]any)
		delete(actions, "Send_confirmation")
		actions["Log_result"] = map[string]any{"type": "Compose", "runAfter": map[string]any{"Try": []any{"Succeeded"}}, "inputs": "done"}
		sp := f.ConnectionReferences["shared_sharepointonline"]
		refs := map[string]any{"shared_sharepointonline": map[string]any{"connectionName": sp.ConnectionName, "id": sp.APIID, "source": "Embedded"}}
		var out updateFlowOut
		h.mustCall(t, "update_live_flow", flowArgsFor(flowInv, map[string]any{"definition": def, "connectionReferences": refs,
			"displayName": "Invoice approval v2"}), &out)
		want := flowChanges{
			DisplayName:          &valueChange{From: "Invoice approval", To: "Invoice approval v2"},
			Actions:              &nameChanges{Added: []string{"Log_result"}, Removed: []string{"Send_confirmation"}},
			ConnectionReferences: &nameChanges{Removed: []string{"shared_office365"}},
		}
		if diff := cmp.Diff(want, out.Changes); diff != "" || out.DisplayName != "Invoice approval v2" {
			t.Errorf("changes (-want +got):\n%s", diff)
		}
	})

	t.Run("create", func(t *testing.T) {
		t.Parallel()
		h := newLiveHarness(t, liveOptions{})
		def := `{"$schema":"https://schema.management.azure.com/providers/Microsoft.Logic/schemas/2016-06-01/workflowdefinition.json#",
			"contentVersion":"1.0.0.0","triggers":{"manual":{"type":"Request","kind":"Button","inputs":{"schema":{"type":"object","properties":{}}}}},
			"actions":{"Say_hello":{"type":"Compose","runAfter":{},"inputs":"hello"}}}`
		var out updateFlowOut
		h.mustCall(t, "update_live_flow", map[string]any{"environmentName": envDefault, "displayName": "Hello",
			"definition": json.RawMessage(def), "state": "Stopped"}, &out)
		want := flowChanges{Triggers: &nameChanges{Added: []string{"manual"}}, Actions: &nameChanges{Added: []string{"Say_hello"}}}
		if diff := cmp.Diff(want, out.Changes); diff != "" || !out.Created || out.State != "Stopped" || out.DisplayName != "Hello" {
			t.Errorf("create (-want +got):\n%s\n%+v", diff, out)
		}
		if powerautomate.ValidateFlowName(out.FlowName) != nil || !strings.Contains(out.Next, "set_live_flow_state") {
			t.Errorf("flowName %q, next %q", out.FlowName, out.Next)
		}
		var got getFlowOut
		h.mustCall(t, "get_live_flow", flowArgsFor(out.FlowName, nil), &got)
		if got.DisplayName != "Hello" || got.State != "Stopped" {
			t.Errorf("created flow reads back as %+v", got)
		}
	})

	t.Run("refused by the flow checker, nothing written", func(t *testing.T) {
		t.Parallel()
		h := newLiveHarness(t, liveOptions{})
		def := `{"triggers":{"manual":{"type":"Request","kind":"Button","inputs":{}}},"actions":{"Broken":{"type":"Compose","runAfter":{"Missing":[]},"inputs":1}}}`
		h.Sim.ResetRequests()
		r := h.call(t, "update_live_flow", flowArgsFor(flowInv, map[string]any{"definition": json.RawMessage(def)}))
		wantToolError(t, r, []string{"not saved: the flow checker found 1 error(s): Broken: InvalidTemplate", "Next: fix them"})
		for _, req := range h.Sim.Requests() {
			if req.Method == http.MethodPatch {
				t.Fatalf("a refused update was written: %+v", req)
			}
		}
	})

	t.Run("a write that did not apply is an error", func(t *testing.T) {
		t.Parallel()
		h := newLiveHarness(t, liveOptions{})
		// The service answers 200 to the PATCH but keeps the old flow.
		h.Sim.InjectFault(sim.FaultMatch{Method: http.MethodPatch, PathContains: flowInv},
			sim.Fault{Status: http.StatusOK, Body: `{"name":"` + flowInv + `","properties":{"displayName":"Invoice approval"}}`})
		r := h.call(t, "update_live_flow", flowArgsFor(flowInv, map[string]any{"definition": fixedInvoiceDefinition(t, h), "displayName": "New name"}))
		wantToolError(t, r, []string{"read back afterwards does not have it (displayName, definition differ)", "not saved", "Next: "})
	})

	t.Run("a connection the user cannot use", func(t *testing.T) {
		t.Parallel()
		h := newLiveHarness(t, liveOptions{})
		refs := map[string]any{"shared_office365": map[string]any{"connectionName": "shared-office365-someone-elses", "id": "/providers/Microsoft.PowerApps/apis/shared_office365"}}
		r := h.call(t, "update_live_flow", flowArgsFor(flowInv, map[string]any{"connectionReferences": refs}))
		wantToolError(t, r, []string{"upstream status 403 code ConnectionAuthorizationFailed", "Next: "}, "someone-elses", "does not have permission")
	})

	t.Run("argument errors before any request", func(t *testing.T) {
		t.Parallel()
		h := newLiveHarness(t, liveOptions{})
		twoTriggers := `{"triggers":{"a":{"type":"Request"},"b":{"type":"Request"}},"actions":{}}`
		for name, c := range map[string]struct {
			args map[string]any
			want string
		}{
			"state on update":           {flowArgsFor(flowInv, map[string]any{"state": "Stopped"}), "set_live_flow_state"},
			"nothing to update":         {flowArgsFor(flowInv, nil), "nothing to update"},
			"create without definition": {map[string]any{"environmentName": envDefault, "displayName": "x"}, "needs displayName and definition"},
			"not a definition":          {flowArgsFor(flowInv, map[string]any{"definition": map[string]any{"foo": 1}}), "needs triggers and actions"},
			"two triggers":              {flowArgsFor(flowInv, map[string]any{"definition": json.RawMessage(twoTriggers)}), "exactly one trigger"},
			"empty display name":        {flowArgsFor(flowInv, map[string]any{"displayName": ""}), "displayName"},
			"bad state":                 {map[string]any{"environmentName": envDefault, "state": "On"}, "state"},
		} {
			t.Run(name, func(t *testing.T) {
				h.Sim.ResetRequests()
				wantToolError(t, h.call(t, "update_live_flow", c.args), []string{c.want})
				if n := len(h.Sim.Requests()); n != 0 {
					t.Errorf("%d requests made", n)
				}
			})
		}
	})
}

func TestSetLiveFlowState(t *testing.T) {
	t.Parallel()
	h := newLiveHarness(t, liveOptions{})
	set := func(state string) setStateOut {
		var out setStateOut
		h.mustCall(t, "set_live_flow_state", flowArgsFor(flowInv, map[string]any{"state": state}), &out)
		return out
	}
	if got := set("Stopped"); !got.Changed || got.PreviousState != "Started" || got.State != "Stopped" {
		t.Errorf("stop: %+v", got)
	}
	h.Sim.ResetRequests()
	if got := set("Stopped"); got.Changed || got.State != "Stopped" {
		t.Errorf("stop again: %+v", got)
	}
	if reqs := h.Sim.Requests(); len(reqs) != 1 || reqs[0].Method != http.MethodGet {
		t.Errorf("an idempotent repeat should only read: %+v", reqs)
	}
	if got := set("Started"); !got.Changed || got.PreviousState != "Stopped" || got.State != "Started" {
		t.Errorf("start: %+v", got)
	}

	for _, c := range []struct {
		env, flow, code, upstreamText string
	}{
		{envDefault, sim.FlowDataverseWebhook, "ApiPolicyDataFlowViolation", "COE upgrade DLP"},
		{sim.ContosoProductionEnv, sim.FlowTwitterPost, "DlpViolation", "Block social media"},
	} {
		t.Run("DLP "+c.code, func(t *testing.T) {
			args := map[string]any{"environmentName": c.env, "flowName": c.flow, "state": "Started"}
			wantToolError(t, h.call(t, "set_live_flow_state", args),
				[]string{"data loss prevention (DLP) policy", "upstream status 403 code " + c.code, "Next: ask a Power Platform admin"},
				c.upstreamText, "shared_commondataserviceforapps")
			args["state"] = "Stopped"
			var out setStateOut
			h.mustCall(t, "set_live_flow_state", args, &out)
			if out.Changed || out.State != "Stopped" {
				t.Errorf("stopping a stopped flow: %+v", out)
			}
		})
	}
}

// TestLiveDescriptionsNameNextSteps: every flow and run tool says what to call next,
// and only names tools that exist.
func TestLiveDescriptionsNameNextSteps(t *testing.T) {
	names := map[string]bool{}
	for _, tool := range All() {
		names[tool.Name] = true
	}
	mention := regexp.MustCompile(`\b[a-z]+_live_[a-z_]+\b`)
	for _, tool := range All() {
		if !slices.Contains(liveFlowTools, tool.Name) {
			continue
		}
		found := mention.FindAllString(tool.Description, -1)
		if len(found) == 0 {
			t.Errorf("%s names no other tool", tool.Name)
		}
		for _, m := range found {
			if !names[m] && m != "list_live_connections" {
				t.Errorf("%s mentions unknown tool %s", tool.Name, m)
			}
		}
	}
}
