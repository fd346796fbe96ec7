package sim

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// issue is one entry of the checkFlowErrors / checkFlowWarnings answer.
type issue struct {
	OperationID string    `json:"operationId,omitempty"`
	Error       errorBody `json:"error"`
}

var knownActionTypes = map[string]bool{}

func init() {
	for _, t := range []string{"Compose", "InitializeVariable", "SetVariable", "AppendToArrayVariable", "AppendToStringVariable",
		"IncrementVariable", "DecrementVariable", "Scope", "If", "Switch", "Foreach", "Until", "Wait", "Http", "Response",
		"ParseJson", "Query", "Select", "Table", "Join", "Terminate", "OpenApiConnection", "OpenApiConnectionWebhook",
		"ApiConnection", "ApiConnectionWebhook", "Workflow", "Expression", "JavaScriptCode"} {
		knownActionTypes[strings.ToLower(t)] = true
	}
}

// checkErrors finds what would stop a definition from saving or running:
// no or several triggers, unknown action types, runAfter naming an action
// that is not in the same scope, and runAfter cycles.
func checkErrors(def json.RawMessage) []issue {
	var d wfDefinition
	if err := json.Unmarshal(def, &d); err != nil || def == nil {
		return []issue{{Error: errorBody{Code: "InvalidTemplate", Message: "The flow definition is not a valid JSON object."}}}
	}
	var out []issue
	switch len(d.Triggers) {
	case 1:
	case 0:
		out = append(out, issue{Error: errorBody{Code: "MissingTrigger", Message: "The flow definition must contain exactly one trigger; it has none."}})
	default:
		out = append(out, issue{Error: errorBody{Code: "MultipleTriggers", Message: fmt.Sprintf("The flow definition must contain exactly one trigger; it has %d.", len(d.Triggers))}})
	}
	walkActions(d.Actions, func(scope map[string]*wfAction, name string, a *wfAction) {
		if !knownActionTypes[strings.ToLower(a.Type)] {
			out = append(out, issue{name, errorBody{Code: "InvalidActionType", Message: fmt.Sprintf("The action '%s' has an unsupported type '%s'.", name, a.Type)}})
		}
		for _, p := range slices.Sorted(maps.Keys(a.RunAfter)) {
			if _, ok := scope[p]; !ok {
				out = append(out, issue{name, errorBody{Code: "InvalidTemplate",
					Message: fmt.Sprintf("The 'runAfter' property of template action '%s' contains non-existent action: '%s'.", name, p)}})
			}
		}
	})
	walkScopes(d.Actions, func(scope map[string]*wfAction) {
		if name := cycleIn(scope); name != "" {
			out = append(out, issue{name, errorBody{Code: "InvalidTemplate",
				Message: fmt.Sprintf("The template action '%s' is part of a 'runAfter' cycle.", name)}})
		}
	})
	return out
}

// deprecatedOperations are connector operations the flow checker flags.
var deprecatedOperations = map[string]string{"SendEmail": "SendEmailV2", "GetEmails": "GetEmailsV3", "OnNewEmail": "OnNewEmailV3"}

// checkWarnings returns the flow checker's advice: loops without
// concurrency control, deprecated operations, and HTTP actions that send an
// Authorization header without secure inputs.
func checkWarnings(def json.RawMessage) []issue {
	var d wfDefinition
	if json.Unmarshal(def, &d) != nil {
		return nil
	}
	var out []issue
	walkActions(d.Actions, func(_ map[string]*wfAction, name string, a *wfAction) {
		var in struct {
			Host struct {
				OperationID string `json:"operationId"`
			} `json:"host"`
			Headers map[string]any `json:"headers"`
		}
		json.Unmarshal(a.Inputs, &in)
		rc := string(a.RuntimeConfiguration)
		switch strings.ToLower(a.Type) {
		case "foreach":
			if !strings.Contains(rc, "concurrency") {
				out = append(out, issue{name, errorBody{Code: "LoopConcurrencyNotConfigured",
					Message: fmt.Sprintf("The loop '%s' runs its iterations one at a time; turn on concurrency control if they are independent.", name)}})
			}
		case "openapiconnection", "openapiconnectionwebhook":
			if newer, ok := deprecatedOperations[in.Host.OperationID]; ok {
				out = append(out, issue{name, errorBody{Code: "DeprecatedOperation",
					Message: fmt.Sprintf("The action '%s' uses the deprecated operation '%s'; use '%s' instead.", name, in.Host.OperationID, newer)}})
			}
		case "http":
			for h := range in.Headers {
				if strings.EqualFold(h, "Authorization") && !strings.Contains(rc, "secureData") {
					out = append(out, issue{name, errorBody{Code: "SecureInputsNotConfigured",
						Message: fmt.Sprintf("The action '%s' sends an Authorization header; turn on secure inputs so that it is not stored in run history.", name)}})
				}
			}
		}
	})
	return out
}

// walkActions visits every action, nested ones included, with its scope.
func walkActions(actions map[string]*wfAction, visit func(scope map[string]*wfAction, name string, a *wfAction)) {
	for _, name := range slices.Sorted(maps.Keys(actions)) {
		a := actions[name]
		visit(actions, name, a)
		walkActions(a.Actions, visit)
		if a.Else != nil {
			walkActions(a.Else.Actions, visit)
		}
	}
}

func walkScopes(actions map[string]*wfAction, visit func(scope map[string]*wfAction)) {
	if len(actions) == 0 {
		return
	}
	visit(actions)
	for _, a := range actions {
		walkScopes(a.Actions, visit)
		if a.Else != nil {
			walkScopes(a.Else.Actions, visit)
		}
	}
}

// cycleIn returns an action on a runAfter cycle, or "".
func cycleIn(scope map[string]*wfAction) string {
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(n string) bool
	visit = func(n string) bool {
		switch state[n] {
		case 1:
			return true
		case 2:
			return false
		}
		state[n] = 1
		for p := range scope[n].RunAfter {
			if _, ok := scope[p]; ok && visit(p) {
				return true
			}
		}
		state[n] = 2
		return false
	}
	for _, n := range slices.Sorted(maps.Keys(scope)) {
		if visit(n) {
			return n
		}
	}
	return ""
}
