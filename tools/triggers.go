package tools

import (
	"context"
	"encoding/json"
	"sort"
	"strconv"
	"strings"
)

type triggerIn struct {
	flowArgs
	TriggerName string          `json:"triggerName"`
	Body        json.RawMessage `json:"body"`
	WaitSeconds int             `json:"waitSeconds"`
}

// maxResponseBytes caps the synchronous answer of a flow with a Response action.
const maxResponseBytes = 4 << 10

func triggerLiveFlow() *Tool {
	return Define(Tool{
		Name:  "trigger_live_flow",
		Title: "Run a flow with a manual or HTTP request trigger",
		Description: "Starts a run of a cloud flow whose trigger is manual (button) or an HTTP request, with body as the " +
			"trigger's JSON input (see the trigger's schema with get_live_flow path triggers). The trigger is found " +
			"from the definition when triggerName is left out; the flow must be on. Returns the new run's name and, when " +
			"the flow answers synchronously (Response action), its response. Flows with other triggers (schedules, " +
			"connector events) cannot be started this way: resubmit_live_flow_run reruns a past run instead. With waitSeconds " +
			"it waits for the run to finish (at most 100 s) and returns its status; otherwise poll get_live_flow_runs until " +
			"the run finishes, then get_live_flow_run_error if it failed.",
		Kind:  Write,
		Group: Live,
		Input: inputSchema(environmentNameArg, flowNameArg, triggerNameArg,
			optionalArg("body", `{"type":"object","description":"JSON input for the trigger, e.g. {\"invoiceId\":\"INV-1\"}; {} when left out."}`),
			waitSecondsArg),
		Output: json.RawMessage(newRunOutputSchema),
	}, func(ctx context.Context, env *Env, in triggerIn) (newRunOut, error) {
		ref := in.ref()
		f, err := env.PA.GetFlow(ctx, ref)
		if err != nil {
			return newRunOut{}, err
		}
		name, err := requestTrigger(f.Definition, in.TriggerName)
		if err != nil {
			return newRunOut{}, err
		}
		if f.State != "Started" {
			return newRunOut{}, &ToolError{Message: "the flow is turned off (state " + f.State + "), so it cannot run",
				Next: "turn it on with set_live_flow_state, then call trigger_live_flow again"}
		}
		res, err := env.PA.RunManualTrigger(ctx, ref, name, in.Body)
		if err != nil {
			return newRunOut{}, err
		}
		out := newRunOut{RunName: res.RunName, TriggerName: name, Next: pollHint(res.RunName)}
		if body := strings.TrimSpace(string(res.Body)); body != "" {
			out.Response = responsePiece([]byte(body), res.Truncated)
		}
		return out, waitFor(ctx, env, ref, &out, in.WaitSeconds)
	})
}

// requestTrigger returns the name of the flow's Request trigger (manual or HTTP),
// or a tool error saying why the flow cannot be triggered directly.
func requestTrigger(def json.RawMessage, want string) (string, error) {
	triggers := definitionTriggers(def)
	names := make([]string, 0, len(triggers))
	for n := range triggers {
		names = append(names, n)
	}
	sort.Strings(names)
	typeOf := func(n string) string {
		var t struct{ Type string }
		json.Unmarshal(triggers[n], &t)
		return t.Type
	}
	if want != "" {
		for _, n := range names {
			if strings.EqualFold(n, want) {
				if !strings.EqualFold(typeOf(n), "Request") {
					return "", notRequestTrigger(n, typeOf(n))
				}
				return n, nil
			}
		}
		return "", &ToolError{Message: "the flow has no trigger " + strconv.Quote(want) + "; its triggers: " + strings.Join(names, ", "),
			Next: "leave triggerName out to use the flow's own trigger"}
	}
	for _, n := range names {
		if strings.EqualFold(typeOf(n), "Request") {
			return n, nil
		}
	}
	if len(names) == 0 {
		return "", &ToolError{Message: "the flow's definition has no trigger", Next: "check it with get_live_flow"}
	}
	return "", notRequestTrigger(names[0], typeOf(names[0]))
}

func notRequestTrigger(name, typ string) *ToolError {
	return &ToolError{Message: "the flow starts on its " + typ + " trigger " + strconv.Quote(name) +
		", not on a manual or HTTP request trigger, so it cannot be run on demand",
		Next: "rerun a past run with resubmit_live_flow_run (runName from get_live_flow_runs)"}
}

// responsePiece holds a flow's synchronous response: its own output, capped.
func responsePiece(body []byte, truncated bool) *contentPiece {
	if !truncated && len(body) <= maxResponseBytes && json.Valid(body) {
		return &contentPiece{Value: compactJSON(body)}
	}
	if !truncated && len(body) <= maxResponseBytes {
		return &contentPiece{Text: strings.ToValidUTF8(string(body), "\uFFFD")}
	}
	p := &contentPiece{Text: strings.ToValidUTF8(string(cutJSON(body[:min(len(body), maxResponseBytes)])), "\uFFFD"), Truncated: true}
	if !truncated {
		p.TotalBytes = int64(len(body))
	}
	return p
}
