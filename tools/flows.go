package tools

import (
	"bytes"
	"cmp"
	"context"
	"strconv"
	"strings"
	"unicode/utf8"

	json "github.com/segmentio/encoding/json"

	"github.com/flowstudio/mcp/tools/powerautomate"
)

// flowArgs are the identifier arguments every single-flow tool takes.
type flowArgs struct {
	EnvironmentName string `json:"environmentName"`
	FlowName        string `json:"flowName"`
}

func (a flowArgs) ref() powerautomate.FlowRef {
	return powerautomate.FlowRef{Environment: a.EnvironmentName, Flow: a.FlowName}
}

type flowRow struct {
	Name        string `json:"name"`
	DisplayName string `json:"displayName"`
	State       string `json:"state"`
	Trigger     string `json:"trigger,omitempty"`
	Created     string `json:"created,omitempty"`
	Modified    string `json:"modified,omitempty"`
	CreatorID   string `json:"creatorObjectId,omitempty"`
	UserType    string `json:"userType,omitempty"`
	Suspended   string `json:"suspensionReason,omitempty"`
}

type flowsIn struct {
	EnvironmentName string `json:"environmentName"`
	Mode            string `json:"mode"`
	Search          string `json:"search"`
	PageSize        int    `json:"pageSize"`
	Cursor          string `json:"cursor"`
}

type flowsOut struct {
	Flows      []flowRow `json:"flows"`
	NextCursor string    `json:"nextCursor,omitempty"`
}

// searchPages bounds how many upstream pages one call scans for a search.
const searchPages = 10

func listLiveFlows() *Tool {
	return Define(Tool{
		Name:  "list_live_flows",
		Title: "List cloud flows in an environment",
		Description: "Lists cloud flows in an environment, compactly: name (the flowName for other tools), display name, " +
			"state, trigger kind, created/modified, creator object id. mode=owner (default) lists flows you own or that " +
			"are shared with you; mode=admin lists every flow (environment admins). search filters by display name " +
			"(case-insensitive). Pages with pageSize and nextCursor. Next: get_live_flow for a definition, " +
			"get_live_flow_runs for its run history.",
		Kind:  ReadOnly,
		Group: Live,
		Input: inputSchema(environmentNameArg,
			optionalArg("mode", `{"type":"string","enum":["owner","admin"],"default":"owner","description":"owner: your flows and flows shared with you; admin: every flow in the environment."}`),
			optionalArg("search", `{"type":"string","maxLength":200,"description":"Case-insensitive text to find in the display name."}`),
			pageSizeArg, cursorArg),
		Output: json.RawMessage(`{"type":"object","required":["flows"],"properties":{"flows":{"type":"array","items":{"type":"object",
"required":["name","displayName","state"],"properties":{"name":{"type":"string"},"displayName":{"type":"string"},"state":{"type":"string"},
"trigger":{"type":"string"},"created":{"type":"string"},"modified":{"type":"string"},"creatorObjectId":{"type":"string"},
"userType":{"type":"string"},"suspensionReason":{"type":"string"}}}},"nextCursor":{"type":"string"}}}`),
	}, func(ctx context.Context, env *Env, in flowsIn) (flowsOut, error) {
		next, err := linkFromCursor(in.Cursor)
		if err != nil {
			return flowsOut{}, err
		}
		in.PageSize = cmp.Or(in.PageSize, defaultPageSize)
		search := strings.ToLower(strings.TrimSpace(in.Search))
		out := flowsOut{Flows: []flowRow{}}
		progress := newPageProgress(ctx, "matching flows")
		for n := 1; n <= searchPages; n++ {
			page, err := env.PA.ListFlows(ctx, in.EnvironmentName, powerautomate.ListFlowsOptions{
				Admin: in.Mode == "admin", Top: in.PageSize, NextLink: next,
			})
			if err != nil {
				return flowsOut{}, err
			}
			for _, f := range page.Flows {
				if search == "" || strings.Contains(strings.ToLower(f.DisplayName), search) {
					out.Flows = append(out.Flows, toFlowRow(f))
				}
			}
			next = page.NextLink
			// Without a search one upstream page is one page; with one, keep scanning
			// until the page is full or the list ends.
			if search == "" || next == "" || len(out.Flows) >= in.PageSize {
				break
			}
			progress.page(n, searchPages, len(out.Flows))
		}
		out.NextCursor = linkCursor(next)
		return out, nil
	})
}

func toFlowRow(f powerautomate.Flow) flowRow {
	row := flowRow{Name: f.Name, DisplayName: f.DisplayName, State: f.State, Created: day(f.CreatedTime),
		Modified: day(f.LastModifiedTime), CreatorID: f.Creator.ObjectID, UserType: f.UserType}
	if f.SuspensionReason != "" && f.SuspensionReason != "None" {
		row.Suspended = f.SuspensionReason
	}
	if len(f.Triggers) > 0 {
		row.Trigger = f.Triggers[0].Type
		if f.Triggers[0].Kind != "" {
			row.Trigger += "/" + f.Triggers[0].Kind
		}
	}
	return row
}

// Definition and issue text limits: messages are upstream text (the flow checker's
// findings, the flow's own errors), shown because the user asked for them, but capped.
const (
	maxMessageChars = 500
	maxDisplayName  = 256
)

// capText shortens s to at most n runes, marking the cut.
func capText(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n]) + "…"
}

// compactJSON removes insignificant whitespace; agents pay for every byte.
func compactJSON(raw json.RawMessage) json.RawMessage {
	if isCompact(raw) {
		return raw // APIs answer compact JSON: no copy
	}
	var b bytes.Buffer
	if json.Compact(&b, raw) != nil {
		return raw
	}
	return b.Bytes()
}

type connRefOut struct {
	ConnectionName string `json:"connectionName,omitempty"`
	ID             string `json:"id,omitempty"`
	Source         string `json:"source,omitempty"`
	LogicalName    string `json:"connectionReferenceLogicalName,omitempty"`
}

func toConnRefs(refs map[string]powerautomate.ConnectionReference) map[string]connRefOut {
	out := make(map[string]connRefOut, len(refs))
	for k, r := range refs {
		out[k] = connRefOut{ConnectionName: r.ConnectionName, ID: r.APIID, Source: r.Source, LogicalName: r.LogicalName}
	}
	return out
}

// triggerSummary maps trigger names to type[/kind], e.g. manual: Request/Button, in
// one pass over the definition.
func triggerSummary(def json.RawMessage) map[string]string {
	if out, ok := scanTriggers(def); ok {
		return out
	}
	var root struct {
		Triggers map[string]struct{ Type, Kind string } `json:"triggers"`
	}
	json.Unmarshal(def, &root)
	out := make(map[string]string, len(root.Triggers))
	for name, t := range root.Triggers {
		out[name] = t.Type
		if t.Kind != "" {
			out[name] += "/" + t.Kind
		}
	}
	return out
}

// scanTriggers reads the summary without decoding the definition; ok is false when
// something needs the decoder's judgement (escapes, keys that differ only in case,
// duplicates, values that are not plain strings).
func scanTriggers(def []byte) (map[string]string, bool) {
	out := make(map[string]string, 2)
	if len(def) == 0 {
		return out, true
	}
	triggers, ok := soleMember(def, "triggers")
	if !ok || string(triggers) == "null" {
		return out, ok
	}
	plain := true
	whole := eachMember(triggers, func(name, t []byte) bool {
		rawType, ok1 := soleMember(t, "type")
		rawKind, ok2 := soleMember(t, "kind")
		typ, ok3 := plainString(rawType)
		kind, ok4 := plainString(rawKind)
		_, seen := out[string(name)]
		if !ok1 || !ok2 || !plainASCII(name) || !ok3 && rawType != nil || !ok4 && rawKind != nil || seen {
			plain = false
			return false
		}
		if kind != "" {
			typ += "/" + kind
		}
		out[string(name)] = typ
		return true
	})
	return out, whole && plain
}

type getFlowIn struct {
	flowArgs
	Path       string `json:"path"`
	ActionName string `json:"actionName"`
}

type getFlowOut struct {
	Name                 string                `json:"name"`
	DisplayName          string                `json:"displayName"`
	State                string                `json:"state"`
	Created              string                `json:"created,omitempty"`
	Modified             string                `json:"modified,omitempty"`
	CreatorID            string                `json:"creatorObjectId,omitempty"`
	Triggers             map[string]string     `json:"triggers"`
	ConnectionReferences map[string]connRefOut `json:"connectionReferences"`
	DefinitionBytes      int                   `json:"definitionBytes"`
	Definition           json.RawMessage       `json:"definition,omitempty"`
	Path                 string                `json:"path,omitempty"`
	Part                 json.RawMessage       `json:"part,omitempty"`
}

func getLiveFlow() *Tool {
	return Define(Tool{
		Name:  "get_live_flow",
		Title: "Get a cloud flow with its definition",
		Description: "Returns one cloud flow: display name, state, triggers (type/kind), connection references (paste-ready " +
			"for update_live_flow) and its workflow definition. For a large definition pass path (dotted " +
			"actions.Try.actions.Process_invoice or a JSON pointer /actions/Try) or actionName (an action at any depth) " +
			"to get only that part; definitionBytes says how big the whole definition is. Next: validate_live_flow and " +
			"update_live_flow to change it, get_live_flow_runs for its run history.",
		Kind:  ReadOnly,
		Group: Live,
		Input: inputSchema(environmentNameArg, flowNameArg,
			optionalArg("path", `{"type":"string","maxLength":1024,"description":"Only return the part of the definition at this path: dotted (actions.Try.actions.Process_invoice) or a JSON pointer (/actions/Try)."}`),
			actionNameArg.noted("Only return this action's definition, found at any depth (its path is returned). ")),
		Output: json.RawMessage(`{"type":"object","required":["name","displayName","state","triggers","connectionReferences","definitionBytes"],"properties":{
"name":{"type":"string"},"displayName":{"type":"string"},"state":{"type":"string"},"created":{"type":"string"},"modified":{"type":"string"},
"creatorObjectId":{"type":"string"},"triggers":{"type":"object","additionalProperties":{"type":"string"}},
"connectionReferences":{"type":"object","additionalProperties":{"type":"object","properties":{"connectionName":{"type":"string"},"id":{"type":"string"},
"source":{"type":"string"},"connectionReferenceLogicalName":{"type":"string"}}}},
"definitionBytes":{"type":"integer","description":"Size of the whole definition in bytes (compact JSON)."},
"definition":{"type":"object","description":"The whole definition, when neither path nor actionName is given."},
"path":{"type":"string","description":"Where part sits in the definition (dotted)."},
"part":{` + anyJSONType + `,"description":"The part of the definition at path: any JSON value."}}}`),
	}, func(ctx context.Context, env *Env, in getFlowIn) (getFlowOut, error) {
		if in.Path != "" && in.ActionName != "" {
			return getFlowOut{}, &ToolError{Message: "invalid arguments: pass path or actionName, not both"}
		}
		f, err := env.PA.GetFlow(ctx, in.ref())
		if err != nil {
			return getFlowOut{}, err
		}
		def := compactJSON(f.Definition)
		if string(def) == "null" {
			def = nil
		}
		out := getFlowOut{Name: f.Name, DisplayName: f.DisplayName, State: f.State, Created: day(f.CreatedTime),
			Modified: day(f.LastModifiedTime), CreatorID: f.Creator.ObjectID, Triggers: triggerSummary(def),
			ConnectionReferences: toConnRefs(f.ConnectionReferences), DefinitionBytes: len(def)}
		switch {
		case in.ActionName != "":
			a, ok := findAction(def, in.ActionName)
			if !ok {
				return getFlowOut{}, &ToolError{Message: "no action " + strconv.Quote(in.ActionName) + " in this flow's definition",
					Next: "call get_live_flow without actionName to see the action names"}
			}
			out.Path, out.Part = dottedPath(a.Path), a.Raw
		case strings.TrimSpace(in.Path) != "":
			part, canonical, err := resolvePath(def, strings.TrimSpace(in.Path))
			if err != nil {
				return getFlowOut{}, err
			}
			out.Path, out.Part = canonical, part
			if canonical == "" {
				out.Path, out.Part, out.Definition = "", nil, def
			}
		default:
			out.Definition = def
		}
		return out, nil
	})
}

type issueOut struct {
	OperationID string `json:"operationId,omitempty"`
	Code        string `json:"code,omitempty"`
	Message     string `json:"message"`
}

func toIssues(in []powerautomate.FlowIssue) []issueOut {
	out := make([]issueOut, 0, len(in))
	for _, i := range in {
		out = append(out, issueOut{OperationID: i.OperationID, Code: i.Code, Message: capText(i.Message, maxMessageChars)})
	}
	return out
}

const issueSchema = `{"type":"array","items":{"type":"object","required":["message"],"properties":{"operationId":{"type":"string"},"code":{"type":"string"},"message":{"type":"string"}}}}`

type validateIn struct {
	flowArgs
	Definition           json.RawMessage `json:"definition"`
	ConnectionReferences json.RawMessage `json:"connectionReferences"`
}

type validateOut struct {
	Valid    bool       `json:"valid"`
	Errors   []issueOut `json:"errors"`
	Warnings []issueOut `json:"warnings"`
}

func validateLiveFlow() *Tool {
	return Define(Tool{
		Name:  "validate_live_flow",
		Title: "Check a flow definition for errors and warnings",
		Description: "Runs Power Automate's flow checker on a definition without saving it: errors (which would stop a save " +
			"or a run) and warnings (advice such as deprecated operations), each with the action concerned. Pass a proposed " +
			"definition (and connectionReferences) for an existing flow, or leave them out to check what is saved. " +
			"Next: fix the errors, then update_live_flow (which runs the same check before writing).",
		Kind:  ReadOnly,
		Group: Live,
		Input: inputSchema(environmentNameArg, flowNameArg, definitionArg, connRefsArg),
		Output: json.RawMessage(`{"type":"object","required":["valid","errors","warnings"],"properties":{"valid":{"type":"boolean"},
"errors":` + issueSchema + `,"warnings":` + issueSchema + `}}`),
	}, func(ctx context.Context, env *Env, in validateIn) (validateOut, error) {
		upd := powerautomate.FlowUpdate{Definition: in.Definition, ConnectionReferences: in.ConnectionReferences}
		if upd.Definition == nil {
			f, err := env.PA.GetFlow(ctx, in.ref())
			if err != nil {
				return validateOut{}, err
			}
			upd.Definition = f.Definition
		}
		errs, warns, err := checkFlow(ctx, env, in.ref(), upd)
		if err != nil {
			return validateOut{}, err
		}
		return validateOut{Valid: len(errs) == 0, Errors: toIssues(errs), Warnings: toIssues(warns)}, nil
	})
}

// checkFlow runs the flow checker's errors and warnings.
func checkFlow(ctx context.Context, env *Env, ref powerautomate.FlowRef, upd powerautomate.FlowUpdate) (errs, warns []powerautomate.FlowIssue, err error) {
	if errs, err = env.PA.CheckFlowErrors(ctx, ref, upd); err != nil {
		return nil, nil, err
	}
	if warns, err = env.PA.CheckFlowWarnings(ctx, ref, upd); err != nil {
		return nil, nil, err
	}
	return errs, warns, nil
}

type updateFlowIn struct {
	EnvironmentName      string          `json:"environmentName"`
	FlowName             string          `json:"flowName"`
	DisplayName          string          `json:"displayName"`
	Definition           json.RawMessage `json:"definition"`
	ConnectionReferences json.RawMessage `json:"connectionReferences"`
	State                string          `json:"state"`
}

type valueChange struct {
	From string `json:"from"`
	To   string `json:"to"`
}

type flowChanges struct {
	DisplayName          *valueChange `json:"displayName,omitempty"`
	Triggers             *nameChanges `json:"triggers,omitempty"`
	Actions              *nameChanges `json:"actions,omitempty"`
	DefinitionKeys       []string     `json:"definitionKeys,omitempty"`
	ConnectionReferences *nameChanges `json:"connectionReferences,omitempty"`
}

type updateFlowOut struct {
	FlowName    string      `json:"flowName"`
	Created     bool        `json:"created"`
	Changed     bool        `json:"changed"`
	DisplayName string      `json:"displayName"`
	State       string      `json:"state"`
	Changes     flowChanges `json:"changes"`
	Warnings    []issueOut  `json:"warnings,omitempty"`
	Next        string      `json:"next"`
}

const nameChangesSchema = `{"type":"object","properties":{"added":{"type":"array","items":{"type":"string"}},"removed":{"type":"array","items":{"type":"string"}},"changed":{"type":"array","items":{"type":"string"}}}}`

func updateLiveFlow() *Tool {
	return Define(Tool{
		Name:  "update_live_flow",
		Title: "Create or update a cloud flow",
		Description: "Creates a cloud flow (leave out flowName; give displayName and definition, optionally " +
			"connectionReferences and state) or updates one (flowName plus any of definition, connectionReferences, " +
			"displayName; fields left out stay as they are). An update is checked with the flow checker first and refused " +
			"on errors; warnings are reported. The flow is read back after the write: the result says what changed " +
			"(actions and triggers added, removed or changed, display name old and new), and a write that did not apply " +
			"is an error. Start from get_live_flow's definition. Turn flows on or off with set_live_flow_state; " +
			"test with trigger_live_flow or resubmit_live_flow_run.",
		Kind:  Write,
		Group: Live,
		Input: inputSchema(environmentNameArg, flowNameArg.optional().noted("Leave out to create a new flow. "),
			optionalArg("displayName", `{"type":"string","minLength":1,"maxLength":`+strconv.Itoa(maxDisplayName)+`,"description":"Display name; required when creating."}`),
			definitionArg, connRefsArg,
			optionalArg("state", `{"type":"string","enum":["Started","Stopped"],"description":"Only when creating: whether the new flow is on. Left out, the service default applies."}`)),
		Output: json.RawMessage(`{"type":"object","required":["flowName","created","changed","displayName","state","changes","next"],"properties":{
"flowName":{"type":"string"},"created":{"type":"boolean"},"changed":{"type":"boolean"},"displayName":{"type":"string"},"state":{"type":"string"},
"changes":{"type":"object","properties":{"displayName":{"type":"object","properties":{"from":{"type":"string"},"to":{"type":"string"}}},
"triggers":` + nameChangesSchema + `,"actions":` + nameChangesSchema + `,"definitionKeys":{"type":"array","items":{"type":"string"}},
"connectionReferences":` + nameChangesSchema + `}},
"warnings":` + issueSchema + `,"next":{"type":"string"}}}`),
	}, func(ctx context.Context, env *Env, in updateFlowIn) (updateFlowOut, error) {
		if in.Definition != nil {
			in.Definition = compactJSON(in.Definition)
			if err := checkDefinitionShape(in.Definition); err != nil {
				return updateFlowOut{}, err
			}
		}
		if in.FlowName == "" {
			return createFlow(ctx, env, in)
		}
		if in.State != "" {
			return updateFlowOut{}, &ToolError{Message: "invalid argument state: it applies only when creating a flow",
				Next: "use set_live_flow_state to turn an existing flow on or off"}
		}
		if in.Definition == nil && in.ConnectionReferences == nil && in.DisplayName == "" {
			return updateFlowOut{}, &ToolError{Message: "nothing to update: pass definition, connectionReferences or displayName"}
		}
		ref := flowArgs{in.EnvironmentName, in.FlowName}.ref()
		before, err := env.PA.GetFlow(ctx, ref)
		if err != nil {
			return updateFlowOut{}, err
		}
		upd := powerautomate.FlowUpdate{DisplayName: in.DisplayName, Definition: in.Definition, ConnectionReferences: in.ConnectionReferences}
		var warns []powerautomate.FlowIssue
		if in.Definition != nil || in.ConnectionReferences != nil {
			check := upd
			if check.Definition == nil {
				check.Definition = before.Definition
			}
			errs, w, err := checkFlow(ctx, env, ref, check)
			if err != nil {
				return updateFlowOut{}, err
			}
			if len(errs) > 0 {
				return updateFlowOut{}, refusedByChecker(errs)
			}
			warns = w
		}
		if _, err := env.PA.UpdateFlow(ctx, ref, upd); err != nil {
			return updateFlowOut{}, err
		}
		after, err := env.PA.GetFlow(ctx, ref)
		if err != nil {
			return updateFlowOut{}, err
		}
		if err := verifyApplied(upd, after); err != nil {
			return updateFlowOut{}, err
		}
		out := updateFlowOut{FlowName: after.Name, DisplayName: after.DisplayName, State: after.State,
			Changes: describeChanges(before, after), Warnings: toIssues(warns)}
		out.Changed = !out.Changes.empty()
		out.Next = "test it: trigger_live_flow (manual/HTTP trigger) or resubmit_live_flow_run with a past run, then get_live_flow_runs"
		if after.State != "Started" {
			out.Next = "the flow is " + after.State + "; turn it on with set_live_flow_state, then test it"
		}
		return out, nil
	})
}

// checkDefinitionShape catches what is not a workflow definition at all before any
// request: the flow checker's messages for those are unhelpful.
func checkDefinitionShape(def json.RawMessage) error {
	var d struct {
		Triggers *map[string]json.RawMessage `json:"triggers"`
		Actions  *map[string]json.RawMessage `json:"actions"`
	}
	if err := json.Unmarshal(def, &d); err != nil || d.Triggers == nil || d.Actions == nil {
		return &ToolError{Message: "invalid argument definition: a workflow definition needs triggers and actions objects",
			Next: "start from the definition get_live_flow returns"}
	}
	if len(*d.Triggers) != 1 {
		return &ToolError{Message: "invalid argument definition: a cloud flow has exactly one trigger; this definition has " + strconv.Itoa(len(*d.Triggers))}
	}
	return nil
}

func refusedByChecker(errs []powerautomate.FlowIssue) *ToolError {
	const show = 5
	var parts []string
	for i, e := range errs {
		if i == show {
			parts = append(parts, "and "+strconv.Itoa(len(errs)-show)+" more")
			break
		}
		p := e.Code
		if e.OperationID != "" {
			p = e.OperationID + ": " + p
		}
		parts = append(parts, p+" ("+capText(e.Message, 200)+")")
	}
	return &ToolError{Message: "not saved: the flow checker found " + strconv.Itoa(len(errs)) + " error(s): " + strings.Join(parts, "; "),
		Next: "fix them (validate_live_flow shows each in full) and call update_live_flow again"}
}

func createFlow(ctx context.Context, env *Env, in updateFlowIn) (updateFlowOut, error) {
	if in.DisplayName == "" || in.Definition == nil {
		return updateFlowOut{}, &ToolError{Message: "creating a flow needs displayName and definition",
			Next: "pass flowName to update an existing flow instead"}
	}
	upd := powerautomate.FlowUpdate{DisplayName: in.DisplayName, Definition: in.Definition,
		ConnectionReferences: in.ConnectionReferences, State: in.State}
	created, err := env.PA.CreateFlow(ctx, in.EnvironmentName, upd)
	if err != nil {
		return updateFlowOut{}, err
	}
	ref := flowArgs{in.EnvironmentName, created.Name}.ref()
	after, err := env.PA.GetFlow(ctx, ref)
	if err != nil {
		te := upstreamToolError(err, env.DashboardURL)
		if te == nil {
			te = &ToolError{}
		}
		te.Message = "the flow was created as " + created.Name + " but reading it back failed: " + te.Message
		te.Next = "call get_live_flow with flowName " + created.Name + "; do not create it again"
		return updateFlowOut{}, te
	}
	upd.State = "" // the service may start a flow later; state is reported, not verified
	if err := verifyApplied(upd, after); err != nil {
		return updateFlowOut{}, err
	}
	// Saving already validated the definition; warnings are advice, so a failed
	// check must not hide that the flow now exists.
	warns, _ := env.PA.CheckFlowWarnings(ctx, ref, powerautomate.FlowUpdate{Definition: after.Definition})
	out := updateFlowOut{FlowName: after.Name, Created: true, Changed: true, DisplayName: after.DisplayName, State: after.State,
		Changes: describeChanges(&powerautomate.Flow{}, after), Warnings: toIssues(warns)}
	out.Changes.DisplayName = nil
	out.Next = "keep flowName " + after.Name + " for later calls; test it with trigger_live_flow (manual/HTTP trigger)"
	if after.State != "Started" {
		out.Next = "keep flowName " + after.Name + "; the flow is " + after.State + ": turn it on with set_live_flow_state"
	}
	return out, nil
}

// verifyApplied checks the flow as read back against what was written: a save the
// service accepted but did not keep is reported, never passed off as success.
func verifyApplied(upd powerautomate.FlowUpdate, after *powerautomate.Flow) error {
	var differs []string
	if upd.DisplayName != "" && after.DisplayName != upd.DisplayName {
		differs = append(differs, "displayName")
	}
	if upd.Definition != nil {
		sent, got := decodeJSONValue(upd.Definition), decodeJSONValue(after.Definition)
		if !jsonContains(got, sent) || !sameNames(actionIndex(upd.Definition), actionIndex(after.Definition)) ||
			!sameNames(definitionTriggers(upd.Definition), definitionTriggers(after.Definition)) {
			differs = append(differs, "definition")
		}
	}
	if upd.ConnectionReferences != nil {
		var sent map[string]powerautomate.ConnectionReference
		json.Unmarshal(upd.ConnectionReferences, &sent)
		for key, ref := range sent {
			got, ok := after.ConnectionReferences[key]
			if !ok || (ref.ConnectionName != "" && !strings.EqualFold(got.ConnectionName, ref.ConnectionName)) {
				differs = append(differs, "connectionReferences")
				break
			}
		}
	}
	if len(differs) == 0 {
		return nil
	}
	return &ToolError{Message: "Power Automate accepted the write, but the flow read back afterwards does not have it (" +
		strings.Join(differs, ", ") + " differ); treat the change as not saved",
		Next: "read the flow with get_live_flow, then retry update_live_flow"}
}

func (c flowChanges) empty() bool {
	return c.DisplayName == nil && c.Triggers == nil && c.Actions == nil && len(c.DefinitionKeys) == 0 && c.ConnectionReferences == nil
}

func describeChanges(before, after *powerautomate.Flow) flowChanges {
	var c flowChanges
	if before.DisplayName != after.DisplayName {
		c.DisplayName = &valueChange{From: before.DisplayName, To: after.DisplayName}
	}
	c.Triggers = diffNamed(triggerIndex(before.Definition), triggerIndex(after.Definition))
	c.Actions = diffNamed(actionIndex(before.Definition), actionIndex(after.Definition))
	if before.Definition != nil {
		c.DefinitionKeys = otherDefinitionChanges(before.Definition, after.Definition)
	}
	refs := func(m map[string]powerautomate.ConnectionReference) map[string]any {
		out := map[string]any{}
		for k, r := range m {
			out[k] = strings.ToLower(r.ConnectionName + "|" + r.APIID + "|" + r.Source)
		}
		return out
	}
	c.ConnectionReferences = diffNamed(refs(before.ConnectionReferences), refs(after.ConnectionReferences))
	return c
}

type setStateIn struct {
	flowArgs
	State string `json:"state"`
}

type setStateOut struct {
	FlowName      string `json:"flowName"`
	State         string `json:"state"`
	PreviousState string `json:"previousState"`
	Changed       bool   `json:"changed"`
}

func setLiveFlowState() *Tool {
	return Define(Tool{
		Name:  "set_live_flow_state",
		Title: "Turn a cloud flow on or off",
		Description: "Turns a cloud flow on (state Started) or off (state Stopped). Reads the current state first and " +
			"reports changed: false when the flow is already there, so it is safe to repeat. Turning on can be refused by " +
			"a data loss prevention (DLP) policy or by a connection you cannot use; the error says which. Next: " +
			"get_live_flow_runs to watch new runs, trigger_live_flow to run a manual flow.",
		Kind:       Write,
		Group:      Live,
		Idempotent: true,
		Input: inputSchema(environmentNameArg, flowNameArg,
			requiredArg("state", `{"type":"string","enum":["Started","Stopped"],"description":"Started turns the flow on, Stopped turns it off."}`)),
		Output: json.RawMessage(`{"type":"object","required":["flowName","state","previousState","changed"],"properties":{
"flowName":{"type":"string"},"state":{"type":"string"},"previousState":{"type":"string"},"changed":{"type":"boolean"}}}`),
	}, func(ctx context.Context, env *Env, in setStateIn) (setStateOut, error) {
		ref := in.ref()
		f, err := env.PA.GetFlow(ctx, ref)
		if err != nil {
			return setStateOut{}, err
		}
		out := setStateOut{FlowName: f.Name, State: f.State, PreviousState: f.State}
		if f.State == in.State {
			return out, nil
		}
		if in.State == "Started" {
			err = env.PA.StartFlow(ctx, ref)
		} else {
			err = env.PA.StopFlow(ctx, ref)
		}
		if err != nil {
			return setStateOut{}, err
		}
		after, err := env.PA.GetFlow(ctx, ref)
		if err != nil {
			return setStateOut{}, err
		}
		if after.State != in.State {
			return setStateOut{}, &ToolError{Message: "Power Automate accepted the request, but the flow reads back as " +
				after.State + ", not " + in.State, Next: "check again with get_live_flow in a minute; retry if it has not changed"}
		}
		out.State, out.Changed = after.State, true
		return out, nil
	})
}
