package tools

import (
	"strconv"
	"strings"

	json "github.com/segmentio/encoding/json"

	"github.com/flowstudio/mcp/tools/powerautomate"
)

// A tool's input schema is a closed object of named arguments, built by inputSchema
// from args. The arguments several tools take are declared here once, so a pattern
// or a description cannot differ from one tool to the next. The patterns match the
// client's validators closely enough that a hostile value never reaches it (an early,
// clear error for agents); the client checks every identifier again before it builds
// a URL.

// arg is one argument of a tool's input: its name, its JSON Schema (a reviewed
// literal) and whether a call must give it.
type arg struct {
	name     string
	schema   string
	required bool
}

func requiredArg(name, schema string) arg { return arg{name: name, schema: schema, required: true} }

func optionalArg(name, schema string) arg { return arg{name: name, schema: schema} }

// optional is the argument as one a call may leave out.
func (a arg) optional() arg {
	a.required = false
	return a
}

// noted is the argument with note put before its description: what the argument
// means to this tool in particular.
func (a arg) noted(note string) arg {
	a.schema = strings.Replace(a.schema, `"description":"`, `"description":"`+note, 1)
	return a
}

// inputSchema is the input schema of a tool taking args, in order: type object and
// additionalProperties false (the catalog accepts nothing else), the required
// arguments listed in "required". It runs once per declaration, never per call.
func inputSchema(args ...arg) json.RawMessage {
	var b strings.Builder
	b.WriteString(`{"type":"object",`)
	first := true
	for _, a := range args {
		if !a.required {
			continue
		}
		if first {
			b.WriteString(`"required":[`)
		} else {
			b.WriteByte(',')
		}
		first = false
		b.WriteString(`"` + a.name + `"`)
	}
	if !first {
		b.WriteString(`],`)
	}
	b.WriteString(`"additionalProperties":false,"properties":{`)
	for i, a := range args {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`"` + a.name + `":` + a.schema)
	}
	b.WriteString(`}}`)
	return json.RawMessage(b.String())
}

// defaultPageSize is the rows per page of a live listing called without pageSize.
const defaultPageSize = 50

// guidPattern is the pattern of a GUID (flow names, Entra object ids, solution ids).
const guidPattern = `"pattern":"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$"`

// workflowNamePattern is the pattern of action and trigger names: letters, digits and
// _ - ( ) . as the client allows, never "..", never a leading or trailing dot.
const workflowNamePattern = `"pattern":"^[\\p{L}\\p{N}_()-]+(\\.[\\p{L}\\p{N}_()-]+)*$"`

// The arguments of the live tools.
var (
	environmentNameArg = requiredArg("environmentName", `{"type":"string","minLength":1,"maxLength":64,"pattern":"^[A-Za-z0-9~][A-Za-z0-9-]*$","description":"Environment name from list_live_environments, e.g. Default-<tenant guid>."}`)
	flowNameArg        = requiredArg("flowName", `{"type":"string","minLength":36,"maxLength":36,`+guidPattern+`,"description":"Flow name (a GUID) from list_live_flows."}`)
	runNameArg         = requiredArg("runName", `{"type":"string","minLength":1,"maxLength":64,"pattern":"^[0-9A-Za-z]+$","description":"Run name from get_live_flow_runs, e.g. 08584...CU12."}`)
	actionNameArg      = optionalArg("actionName", `{"type":"string","minLength":1,"maxLength":128,`+workflowNamePattern+`,"description":"Action name as in the definition or the run, e.g. Calculate_unit_price."}`)
	triggerNameArg     = optionalArg("triggerName", `{"type":"string","minLength":1,"maxLength":128,`+workflowNamePattern+`,"description":"Trigger name, e.g. manual; found from the definition when left out."}`)
	definitionArg      = optionalArg("definition", `{"type":"object","description":"A Logic Apps workflow definition: $schema, contentVersion, parameters, triggers, actions (as get_live_flow returns it)."}`)
	connRefsArg        = optionalArg("connectionReferences", `{"type":"object","description":"Connection references by key, e.g. {\"shared_office365\":{\"connectionName\":\"<from list_live_connections>\",\"id\":\"/providers/Microsoft.PowerApps/apis/shared_office365\",\"source\":\"Embedded\"}}."}`)
	connectorNameArg   = requiredArg("connectorName", `{"type":"string","minLength":8,"maxLength":128,"pattern":"^shared_[A-Za-z0-9][A-Za-z0-9_-]*$","description":"Connector name, e.g. shared_sharepointonline (the connector field of list_live_connections)."}`)
	connectionNameArg  = requiredArg("connectionName", `{"type":"string","minLength":1,"maxLength":128,"pattern":"^[A-Za-z0-9][A-Za-z0-9_-]*$","description":"Connection name (not its display name) from list_live_connections."}`)
	operationIDArg     = requiredArg("operationId", `{"type":"string","minLength":1,"maxLength":128,"pattern":"^[A-Za-z0-9_][A-Za-z0-9_-]*$","description":"operationId from describe_live_connector."}`)
	pageSizeArg        = optionalArg("pageSize", `{"type":"integer","minimum":1,"maximum":250,"default":`+strconv.Itoa(defaultPageSize)+`,"description":"Rows per page."}`)
	cursorArg          = optionalArg("cursor", `{"type":"string","maxLength":4096,"description":"nextCursor from the previous page."}`)
	// runStatusArg lists the statuses the client accepts as a filter.
	runStatusArg = optionalArg("status", `{"type":"string","enum":["`+strings.Join(powerautomate.RunStatuses, `","`)+`"],"description":"Only runs with this status."}`)
)

// The arguments of the dynamic lookups (get_live_dynamic_options, get_live_dynamic_properties).
var (
	parameterKeyArg = requiredArg("parameter", `{"type":"string","minLength":1,"maxLength":256,"pattern":"^[A-Za-z0-9_$@][A-Za-z0-9_$@-]*(/[A-Za-z0-9_$@][A-Za-z0-9_$@-]*){0,7}$","description":"Parameter key as describe_live_connector shows it: projectId, or body/title for a body field."}`)
	otherValuesArg  = optionalArg("parameters", `{"type":"object","maxProperties":50,"description":"Values of the operation's other parameters by key, e.g. {\"dataset\":\"https://contoso.sharepoint.com/sites/sales\"}: the ones the lookup depends on (dependsOn in describe_live_connector)."}`)
)

// The arguments of the store tools; a flow is named by id or by environmentName and
// flowName (storeFlowArgs).
var (
	storeEnvArg      = optionalArg("environmentName", `{"type":"string","minLength":1,"maxLength":64,"pattern":"^[A-Za-z0-9][A-Za-z0-9-]*$","description":"Environment name, as list_store_environments returns it."}`)
	storeFlowArg     = optionalArg("flowName", `{"type":"string","minLength":36,"maxLength":36,`+guidPattern+`,"description":"Flow name (a GUID), as list_store_flows returns it."}`)
	storeFlowIDArg   = optionalArg("id", `{"type":"string","minLength":38,"maxLength":101,"pattern":"^[A-Za-z0-9][A-Za-z0-9-]*\\.[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$","description":"The flow's id from list_store_flows (<environment>.<flow>), instead of environmentName and flowName."}`)
	storePageSizeArg = optionalArg("pageSize", `{"type":"integer","minimum":1,"maximum":200,"default":`+strconv.Itoa(defaultStorePage)+`,"description":"Rows per page."}`)
	storeCursorArg   = optionalArg("cursor", `{"type":"string","maxLength":4096,"description":"nextCursor from the previous page (with the same filters)."}`)
)
