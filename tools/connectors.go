package tools

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"sort"
	"strings"

	"github.com/flowstudio/mcp/tools/powerautomate"
)

// The connector tools read a connector's processed swagger (OpenAPI 2.0, inline in
// the Power Apps connector object) and turn it into what an agent writing a flow
// needs: operations, the parameter keys a flow definition uses (projectId,
// body/title), and where a value list or schema is dynamic. Dynamic lookups go
// through the environment's listEnum / listDynamicProperties routes (default
// sign-in) and, where that host is unreachable, through the connector runtime
// (extra consent, audience apihub).

// Output caps: agents pay for every token.
const (
	maxOptions      = 500
	maxInputs       = 200
	maxResponseRows = 60
	maxTextLen      = 200
	maxEnumValues   = 25
)

// swaggerDoc is the part of a connector's swagger the tools read.
type swaggerDoc struct {
	Paths        map[string]map[string]json.RawMessage `json:"paths"`
	Definitions  map[string]*schemaNode                `json:"definitions"`
	Parameters   map[string]*paramNode                 `json:"parameters"`
	Capabilities powerautomate.SwaggerCapabilities     `json:"x-ms-capabilities"`

	ops []swaggerOp // triggers first, then by operationId
}

// dynamicExt holds the x-ms-dynamic-* extensions of a parameter or schema.
type dynamicExt struct {
	DynValues json.RawMessage `json:"x-ms-dynamic-values"`
	DynList   json.RawMessage `json:"x-ms-dynamic-list"`
	DynTree   json.RawMessage `json:"x-ms-dynamic-tree"`
	DynSchema json.RawMessage `json:"x-ms-dynamic-schema"`
	DynProps  json.RawMessage `json:"x-ms-dynamic-properties"`
}

func (d dynamicExt) options() json.RawMessage {
	if d.DynList != nil {
		return d.DynList
	}
	return d.DynValues
}

func (d dynamicExt) schema() json.RawMessage {
	if d.DynSchema != nil {
		return d.DynSchema
	}
	return d.DynProps
}

func (d dynamicExt) present() bool {
	return d.options() != nil || d.schema() != nil || d.DynTree != nil
}

func (d dynamicExt) or(o dynamicExt) dynamicExt {
	pick := func(a, b json.RawMessage) json.RawMessage {
		if a != nil {
			return a
		}
		return b
	}
	return dynamicExt{pick(d.DynValues, o.DynValues), pick(d.DynList, o.DynList), pick(d.DynTree, o.DynTree),
		pick(d.DynSchema, o.DynSchema), pick(d.DynProps, o.DynProps)}
}

// schemaNode is a JSON schema as swaggers write it; polymorphic fields stay raw.
type schemaNode struct {
	Ref         string                 `json:"$ref"`
	Type        json.RawMessage        `json:"type"`
	Format      string                 `json:"format"`
	Title       string                 `json:"title"`
	Summary     string                 `json:"x-ms-summary"`
	Description string                 `json:"description"`
	Visibility  string                 `json:"x-ms-visibility"`
	Required    json.RawMessage        `json:"required"`
	Properties  map[string]*schemaNode `json:"properties"`
	Items       *schemaNode            `json:"items"`
	Enum        []json.RawMessage      `json:"enum"`
	Default     json.RawMessage        `json:"default"`
	dynamicExt
}

// paramNode is a swagger parameter: a schema plus name, location and, for body
// parameters, the body's schema.
type paramNode struct {
	schemaNode
	Name   string      `json:"name"`
	In     string      `json:"in"`
	Schema *schemaNode `json:"schema"`
	// URLEncoding "double" asks for a path value escaped twice (values that
	// contain "/", such as SharePoint site addresses).
	URLEncoding string `json:"x-ms-url-encoding"`
}

type opNode struct {
	OperationID string          `json:"operationId"`
	Summary     string          `json:"summary"`
	Description string          `json:"description"`
	Deprecated  bool            `json:"deprecated"`
	Visibility  string          `json:"x-ms-visibility"`
	Trigger     json.RawMessage `json:"x-ms-trigger"`
	Parameters  []*paramNode    `json:"parameters"`
	Responses   map[string]*struct {
		Schema *schemaNode `json:"schema"`
	} `json:"responses"`
}

// swaggerOp is an operation with its path-level parameters merged in and every
// parameter $ref resolved.
type swaggerOp struct {
	path, method string
	*opNode
	params []*paramNode
}

func (o swaggerOp) kind() string {
	if len(o.Trigger) > 0 && string(o.Trigger) != "null" {
		return "trigger"
	}
	return "action"
}

func (o swaggerOp) internal() bool { return strings.EqualFold(o.Visibility, "internal") }

var httpMethods = []string{"get", "post", "put", "patch", "delete", "head"}

// parseSwagger reads a connector's swagger. Operations that do not parse are left
// out rather than failing the whole connector.
func parseSwagger(raw json.RawMessage) (*swaggerDoc, error) {
	var sw swaggerDoc
	if len(raw) == 0 || json.Unmarshal(raw, &sw) != nil {
		return nil, &ToolError{Message: "this connector's definition (swagger) could not be read",
			Next: "the connector may be custom and malformed; check it in Power Automate → Custom connectors"}
	}
	for path, item := range sw.Paths {
		var shared []*paramNode
		if p, ok := item["parameters"]; ok {
			_ = json.Unmarshal(p, &shared)
		}
		for _, m := range httpMethods {
			rawOp, ok := item[m]
			if !ok {
				continue
			}
			var op opNode
			if json.Unmarshal(rawOp, &op) != nil || op.OperationID == "" {
				continue
			}
			sw.ops = append(sw.ops, swaggerOp{path: path, method: strings.ToUpper(m), opNode: &op,
				params: sw.mergeParams(shared, op.Parameters)})
		}
	}
	sort.Slice(sw.ops, func(i, j int) bool {
		a, b := sw.ops[i], sw.ops[j]
		if a.kind() != b.kind() {
			return a.kind() == "trigger"
		}
		return a.OperationID < b.OperationID
	})
	return &sw, nil
}

// mergeParams resolves parameter $refs; an operation's parameter overrides a
// path-level one with the same name and location.
func (sw *swaggerDoc) mergeParams(shared, own []*paramNode) []*paramNode {
	var out []*paramNode
	index := map[string]int{}
	for _, list := range [][]*paramNode{shared, own} {
		for _, p := range list {
			p = sw.resolveParam(p)
			if p == nil || p.Name == "" {
				continue
			}
			key := p.In + "\x00" + p.Name
			if i, ok := index[key]; ok {
				out[i] = p
				continue
			}
			index[key] = len(out)
			out = append(out, p)
		}
	}
	return out
}

func (sw *swaggerDoc) resolveParam(p *paramNode) *paramNode {
	for range 8 {
		if p == nil || p.Ref == "" {
			return p
		}
		name, ok := strings.CutPrefix(p.Ref, "#/parameters/")
		if !ok {
			return nil
		}
		p = sw.Parameters[pointerUnescape(name)]
	}
	return nil
}

// resolve follows #/definitions/ references (a bounded number of hops).
func (sw *swaggerDoc) resolve(s *schemaNode) *schemaNode {
	for range 16 {
		if s == nil || s.Ref == "" {
			return s
		}
		name, ok := strings.CutPrefix(s.Ref, "#/definitions/")
		if !ok || sw == nil || sw.Definitions[pointerUnescape(name)] == nil {
			return s
		}
		next := sw.Definitions[pointerUnescape(name)]
		if !next.present() {
			next = withExt(next, s.dynamicExt)
		}
		s = next
	}
	return s
}

func withExt(s *schemaNode, ext dynamicExt) *schemaNode {
	if !ext.present() {
		return s
	}
	c := *s
	c.dynamicExt = c.dynamicExt.or(ext)
	return &c
}

func pointerUnescape(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~1", "/"), "~0", "~")
}

// find returns an operation by operationId (exact, else case-insensitive).
func (sw *swaggerDoc) find(id string) (swaggerOp, bool) {
	for _, o := range sw.ops {
		if o.OperationID == id {
			return o, true
		}
	}
	for _, o := range sw.ops {
		if strings.EqualFold(o.OperationID, id) {
			return o, true
		}
	}
	return swaggerOp{}, false
}

// similar lists up to five operationIds that contain id or that id contains.
func (sw *swaggerDoc) similar(id string) []string {
	id = strings.ToLower(id)
	var out []string
	for _, o := range sw.ops {
		l := strings.ToLower(o.OperationID)
		if strings.Contains(l, id) || strings.Contains(id, l) {
			out = append(out, o.OperationID)
			if len(out) == 5 {
				break
			}
		}
	}
	return out
}

func schemaType(s *schemaNode) string {
	if s == nil {
		return ""
	}
	var t string
	if json.Unmarshal(s.Type, &t) == nil && t != "" {
		return t
	}
	var ts []string
	if json.Unmarshal(s.Type, &ts) == nil {
		for _, t := range ts {
			if t != "null" {
				return t
			}
		}
	}
	switch {
	case len(s.Properties) > 0:
		return "object"
	case s.Items != nil:
		return "array"
	}
	return ""
}

func requiredSet(s *schemaNode) map[string]bool {
	var names []string
	_ = json.Unmarshal(s.Required, &names)
	set := make(map[string]bool, len(names))
	for _, n := range names {
		set[n] = true
	}
	return set
}

func paramRequired(p *paramNode) bool {
	var b bool
	return json.Unmarshal(p.Required, &b) == nil && b
}

// opInput is one value a flow definition can set: a parameter, or a field of a body.
type opInput struct {
	key      string // projectId, body/title
	in       string
	node     *schemaNode
	ext      dynamicExt
	required bool
	internal bool
}

// inputs flattens an operation's parameters; body fields are expanded depth levels
// deep. The connectionId path parameter is filled in by the platform and left out.
// The second result reports that maxInputs cut the list.
func (sw *swaggerDoc) inputs(op swaggerOp, depth int) ([]opInput, bool) {
	var out []opInput
	full := false
	add := func(in opInput) {
		if len(out) >= maxInputs {
			full = true
			return
		}
		out = append(out, in)
	}
	for _, p := range op.params {
		if p.In == "path" && p.Name == "connectionId" {
			continue
		}
		internal := strings.EqualFold(p.Visibility, "internal")
		if p.In != "body" {
			add(opInput{key: p.Name, in: p.In, node: &p.schemaNode, ext: p.dynamicExt, required: paramRequired(p), internal: internal})
			continue
		}
		s := sw.resolve(p.Schema)
		if s == nil {
			s = &schemaNode{}
		}
		ext := p.dynamicExt.or(s.dynamicExt)
		if ext.present() || len(s.Properties) == 0 || depth == 0 {
			add(opInput{key: p.Name, in: "body", node: s, ext: ext, required: paramRequired(p), internal: internal})
		}
		if depth > 0 {
			sw.flatten(s, p.Name, "body", depth, internal, add)
		}
	}
	return out, full
}

// flatten emits the properties of s as prefix/name inputs, required ones first.
func (sw *swaggerDoc) flatten(s *schemaNode, prefix, in string, depth int, internal bool, add func(opInput)) {
	if s == nil || depth <= 0 {
		return
	}
	req := requiredSet(s)
	names := make([]string, 0, len(s.Properties))
	for n := range s.Properties {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool {
		if req[names[i]] != req[names[j]] {
			return req[names[i]]
		}
		return names[i] < names[j]
	})
	for _, n := range names {
		child := sw.resolve(s.Properties[n])
		if child == nil {
			continue
		}
		key := n
		if prefix != "" {
			key = prefix + "/" + n
		}
		hidden := internal || strings.EqualFold(child.Visibility, "internal")
		if schemaType(child) == "object" && len(child.Properties) > 0 && depth > 1 && !child.present() {
			sw.flatten(child, key, in, depth-1, hidden, add)
			continue
		}
		add(opInput{key: key, in: in, node: child, ext: child.dynamicExt, required: req[n], internal: hidden})
	}
}

// findInput finds a parameter or body field by key (case-insensitive as a fallback).
func (sw *swaggerDoc) findInput(op swaggerOp, key string) (opInput, []string, bool) {
	all, _ := sw.inputs(op, 4)
	var keys []string
	for _, in := range all {
		if in.key == key {
			return in, nil, true
		}
		if !in.internal {
			keys = append(keys, in.key)
		}
	}
	for _, in := range all {
		if strings.EqualFold(in.key, key) {
			return in, nil, true
		}
	}
	return opInput{}, keys, false
}

// dynamicRef is one entry of a dynamic definition's parameters: a literal, or a
// reference to another parameter of the calling operation.
type dynamicRef struct {
	literal  json.RawMessage
	ref      string
	required bool
}

func parseDynamicRef(raw json.RawMessage) dynamicRef {
	var obj struct {
		Value     json.RawMessage `json:"value"`
		Parameter string          `json:"parameter"`
		Reference string          `json:"parameterReference"`
		Required  *bool           `json:"required"`
	}
	if bytes.HasPrefix(bytes.TrimSpace(raw), []byte("{")) && json.Unmarshal(raw, &obj) == nil {
		switch {
		case obj.Parameter != "" || obj.Reference != "":
			return dynamicRef{ref: connCoalesce(obj.Parameter, obj.Reference), required: obj.Required == nil || *obj.Required}
		case obj.Value != nil:
			return dynamicRef{literal: obj.Value}
		}
	}
	return dynamicRef{literal: raw}
}

// dependsOn lists the caller parameters a dynamic definition reads.
func dependsOn(d *powerautomate.DynamicDefinition) []string {
	var out []string
	for _, v := range d.Parameters {
		if r := parseDynamicRef(v); r.ref != "" {
			out = append(out, r.ref)
		}
	}
	sort.Strings(out)
	return out
}

// arguments resolves the definition's parameters against the caller's values; the
// second result lists required references without a value.
func dynamicArguments(d *powerautomate.DynamicDefinition, current map[string]json.RawMessage) (map[string]json.RawMessage, []string) {
	args := map[string]json.RawMessage{}
	var missing []string
	for name, v := range d.Parameters {
		r := parseDynamicRef(v)
		if r.ref == "" {
			args[name] = r.literal
			continue
		}
		if val, ok := valueAt(current, r.ref); ok {
			args[name] = val
		} else if r.required {
			missing = append(missing, r.ref)
		}
	}
	sort.Strings(missing)
	return args, missing
}

// valueAt reads key from the caller's values: the exact key, else a path into an
// object value (body/title → values["body"]["title"]).
func valueAt(values map[string]json.RawMessage, key string) (json.RawMessage, bool) {
	if v, ok := values[key]; ok && string(v) != "null" {
		return v, true
	}
	first, rest, ok := strings.Cut(key, "/")
	if !ok {
		return nil, false
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(values[first], &obj) != nil {
		return nil, false
	}
	return valueAt(obj, rest)
}

// literalValue reads a testConnection parameter: a literal or {"value": x};
// references cannot be resolved there.
func literalValue(raw json.RawMessage) (json.RawMessage, bool) {
	r := parseDynamicRef(raw)
	return r.literal, r.ref == ""
}

// scalarText renders a JSON value for a URL: strings unquoted, others as JSON.
func scalarText(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	if string(raw) == "null" {
		return ""
	}
	var buf bytes.Buffer
	if json.Compact(&buf, raw) != nil {
		return string(raw)
	}
	return buf.String()
}

// runtimeCall builds a call of op on the connector runtime from argument values by
// parameter name; fallback supplies values the arguments lack (the caller's other
// parameter values). It returns the required parameters still missing, or a reason
// the call cannot be made.
func (sw *swaggerDoc) runtimeCall(runtimeURL, connection string, op swaggerOp, args, fallback map[string]json.RawMessage) (powerautomate.ConnectorCall, []string, string) {
	call := powerautomate.ConnectorCall{RuntimeURL: runtimeURL, Connection: connection, Method: op.method,
		PathTemplate: op.path, PathParams: map[string]string{}, Query: url.Values{}}
	if op.method != "GET" && op.method != "POST" {
		return call, nil, "operation " + op.OperationID + " uses " + op.method + ", and only GET and POST lookups are run"
	}
	var missing []string
	for _, p := range op.params {
		if p.In == "path" && p.Name == "connectionId" {
			continue
		}
		v, ok := args[p.Name]
		if !ok {
			v, ok = fallback[p.Name]
		}
		if !ok && len(p.Default) > 0 {
			v, ok = p.Default, true
		}
		if !ok {
			if paramRequired(p) && (p.In == "path" || p.In == "query" || p.In == "body") {
				missing = append(missing, p.Name)
			}
			continue
		}
		switch p.In {
		case "path":
			s := scalarText(v)
			if s == "" {
				missing = append(missing, p.Name)
				continue
			}
			if s == "." || s == ".." {
				return call, nil, "the value of " + p.Name + " cannot be a URL path segment"
			}
			if strings.EqualFold(p.URLEncoding, "double") {
				s = url.PathEscape(s) // the client escapes it once more
			}
			call.PathParams[p.Name] = s
		case "query":
			call.Query.Set(p.Name, scalarText(v))
		case "body":
			call.Body = v
		}
	}
	return call, missing, ""
}

// hostUnreachable: the per-environment host gave no HTTP answer at all (no DNS
// record for older default environments, connection refused). Timeouts are not
// included: the host is there, just slow.
func hostUnreachable(err error) bool {
	var ue *url.Error
	return errors.As(err, &ue) && !ue.Timeout() && !errors.Is(err, powerautomate.ErrTimeout)
}

// ---- describe_live_connector ----

type connectorSummary struct {
	Name          string `json:"name"`
	DisplayName   string `json:"displayName"`
	Description   string `json:"description,omitempty"`
	Publisher     string `json:"publisher,omitempty"`
	Tier          string `json:"tier,omitempty"`
	Custom        bool   `json:"custom,omitempty"`
	TestOperation string `json:"testOperation,omitempty"`
}

type operationRow struct {
	OperationID string   `json:"operationId"`
	Summary     string   `json:"summary,omitempty"`
	Method      string   `json:"method"`
	Kind        string   `json:"kind"`
	Deprecated  bool     `json:"deprecated,omitempty"`
	Internal    bool     `json:"internal,omitempty"`
	Params      []string `json:"params,omitempty"`
}

type dynamicHint struct {
	Kind        string   `json:"kind"` // options, tree, schema
	OperationID string   `json:"operationId,omitempty"`
	DependsOn   []string `json:"dependsOn,omitempty"`
	Resolve     string   `json:"resolve"`
}

type paramDetail struct {
	Name        string            `json:"name"`
	In          string            `json:"in,omitempty"`
	Type        string            `json:"type,omitempty"`
	Items       string            `json:"items,omitempty"`
	Format      string            `json:"format,omitempty"`
	Required    bool              `json:"required,omitempty"`
	Title       string            `json:"title,omitempty"`
	Description string            `json:"description,omitempty"`
	Enum        []json.RawMessage `json:"enum,omitempty"`
	Default     json.RawMessage   `json:"default,omitempty"`
	Internal    bool              `json:"internal,omitempty"`
	Dynamic     *dynamicHint      `json:"dynamic,omitempty"`
}

type responseSummary struct {
	Type       string       `json:"type,omitempty"`
	Properties []string     `json:"properties,omitempty"`
	Dynamic    *dynamicHint `json:"dynamic,omitempty"`
}

type operationDetail struct {
	OperationID string           `json:"operationId"`
	Summary     string           `json:"summary,omitempty"`
	Description string           `json:"description,omitempty"`
	Method      string           `json:"method"`
	Kind        string           `json:"kind"`
	Deprecated  bool             `json:"deprecated,omitempty"`
	Internal    bool             `json:"internal,omitempty"`
	Parameters  []paramDetail    `json:"parameters"`
	Truncated   bool             `json:"truncated,omitempty"`
	Response    *responseSummary `json:"response,omitempty"`
}

type describeIn struct {
	EnvironmentName string `json:"environmentName"`
	ConnectorName   string `json:"connectorName"`
	OperationID     string `json:"operationId"`
	Search          string `json:"search"`
	IncludeInternal bool   `json:"includeInternal"`
}

type describeOut struct {
	Connector      connectorSummary `json:"connector"`
	Operations     []operationRow   `json:"operations,omitempty"`
	HiddenInternal int              `json:"hiddenInternal,omitempty"`
	Operation      *operationDetail `json:"operation,omitempty"`
}

const paramDetailSchema = `{"type":"object","required":["name"],"properties":{"name":{"type":"string"},"in":{"type":"string"},
"type":{"type":"string"},"items":{"type":"string"},"format":{"type":"string"},"required":{"type":"boolean"},"title":{"type":"string"},
"description":{"type":"string"},"enum":{"type":"array"},"default":{` + anyJSONType + `,"description":"The default from the connector's definition."},"internal":{"type":"boolean"},"dynamic":` + dynamicHintSchema + `}}`

const dynamicHintSchema = `{"type":"object","required":["kind","resolve"],"properties":{"kind":{"type":"string","enum":["options","tree","schema"]},
"operationId":{"type":"string"},"dependsOn":{"type":"array","items":{"type":"string"}},"resolve":{"type":"string"}}}`

func describeLiveConnector() *Tool {
	return Define(Tool{
		Name:  "describe_live_connector",
		Title: "Describe a connector's operations",
		Description: "Describes a connector as seen from an environment. Without operationId: the connector (name, " +
			"display name, tier, its test operation) and its operations compactly: operationId, summary, method, kind " +
			"(trigger or action), deprecated flag, and params, the keys a flow definition sets (body fields as " +
			"body/title), required ones marked with a trailing *. Internal operations are hidden unless " +
			"includeInternal=true; search narrows by operationId or summary. With operationId: that operation in full: " +
			"every parameter with type, required, title, enum, default and a dynamic hint (kind options → " +
			"get_live_dynamic_options, kind schema → get_live_dynamic_properties, dependsOn = the parameters to pass " +
			"first), plus a summary of the response schema. Reads the Power Apps API (default sign-in). Use it before " +
			"writing an OpenApiConnection action for update_live_flow.",
		Kind:  ReadOnly,
		Group: Live,
		Input: inputSchema(environmentNameArg, connectorNameArg, operationIDArg.optional(),
			optionalArg("search", `{"type":"string","maxLength":100,"description":"Case-insensitive text to find in the operationId or summary (list mode)."}`),
			optionalArg("includeInternal", `{"type":"boolean","default":false,"description":"Also list internal operations (lookups the designer calls itself)."}`)),
		Output: json.RawMessage(`{"type":"object","required":["connector"],"properties":{
"connector":{"type":"object","required":["name","displayName"],"properties":{"name":{"type":"string"},"displayName":{"type":"string"},
"description":{"type":"string"},"publisher":{"type":"string"},"tier":{"type":"string"},"custom":{"type":"boolean"},"testOperation":{"type":"string"}}},
"operations":{"type":"array","items":{"type":"object","required":["operationId","method","kind"],"properties":{"operationId":{"type":"string"},
"summary":{"type":"string"},"method":{"type":"string"},"kind":{"type":"string","enum":["action","trigger"]},"deprecated":{"type":"boolean"},
"internal":{"type":"boolean"},"params":{"type":"array","items":{"type":"string"}}}}},
"hiddenInternal":{"type":"integer"},
"operation":{"type":"object","required":["operationId","method","kind","parameters"],"properties":{"operationId":{"type":"string"},
"summary":{"type":"string"},"description":{"type":"string"},"method":{"type":"string"},"kind":{"type":"string","enum":["action","trigger"]},
"deprecated":{"type":"boolean"},"internal":{"type":"boolean"},"parameters":{"type":"array","items":` + paramDetailSchema + `},
"truncated":{"type":"boolean"},"response":{"type":"object","properties":{"type":{"type":"string"},
"properties":{"type":"array","items":{"type":"string"}},"dynamic":` + dynamicHintSchema + `}}}}}}`),
	}, func(ctx context.Context, env *Env, in describeIn) (describeOut, error) {
		api, sw, err := connectorSwagger(ctx, env, in.EnvironmentName, in.ConnectorName)
		if err != nil {
			return describeOut{}, err
		}
		out := describeOut{Connector: connectorSummary{Name: api.Name, DisplayName: api.DisplayName,
			Description: clipText(api.Description, maxTextLen), Publisher: api.Publisher, Tier: api.Tier, Custom: api.IsCustom}}
		if tc := sw.Capabilities.TestConnection; tc != nil {
			out.Connector.TestOperation = tc.OperationID
		}
		if in.OperationID != "" {
			op, ok := sw.find(in.OperationID)
			if !ok {
				return describeOut{}, operationNotFound(sw, in.OperationID, in.ConnectorName)
			}
			out.Connector.Description = "" // the operation is what was asked for
			out.Operation = sw.detail(op)
			return out, nil
		}
		search := strings.ToLower(strings.TrimSpace(in.Search))
		out.Operations = []operationRow{}
		for _, op := range sw.ops {
			if search != "" && !strings.Contains(strings.ToLower(op.OperationID+" "+op.Summary), search) {
				continue
			}
			if op.internal() && !in.IncludeInternal {
				out.HiddenInternal++
				continue
			}
			out.Operations = append(out.Operations, sw.row(op))
		}
		return out, nil
	})
}

func operationNotFound(sw *swaggerDoc, id, connector string) *ToolError {
	te := &ToolError{Message: "operation " + connQuote(id) + " not found in connector " + connector,
		Next: "call describe_live_connector without operationId to list the operations (includeInternal=true for hidden ones)"}
	if s := sw.similar(id); len(s) > 0 {
		te.Next = "did you mean " + strings.Join(s, ", ") + "? Otherwise " + te.Next
	}
	return te
}

func (sw *swaggerDoc) row(op swaggerOp) operationRow {
	r := operationRow{OperationID: op.OperationID, Summary: clipText(connCoalesce(op.Summary, op.Description), 120), Method: op.method,
		Kind: op.kind(), Deprecated: op.Deprecated, Internal: op.internal()}
	ins, full := sw.inputs(op, 1)
	for _, in := range ins {
		if in.internal {
			continue
		}
		name := in.key
		if in.required {
			name += "*"
		}
		r.Params = append(r.Params, name)
	}
	if full {
		r.Params = append(r.Params, "…")
	}
	return r
}

func (sw *swaggerDoc) detail(op swaggerOp) *operationDetail {
	d := &operationDetail{OperationID: op.OperationID, Summary: op.Summary, Description: clipText(op.Description, maxTextLen),
		Method: op.method, Kind: op.kind(), Deprecated: op.Deprecated, Internal: op.internal(), Parameters: []paramDetail{}}
	if d.Description == d.Summary {
		d.Description = ""
	}
	ins, full := sw.inputs(op, 3)
	d.Truncated = full
	for _, in := range ins {
		d.Parameters = append(d.Parameters, toParamDetail(in, true))
	}
	d.Response = sw.responseSummary(op)
	return d
}

func toParamDetail(in opInput, withHint bool) paramDetail {
	s := in.node
	p := paramDetail{Name: in.key, In: in.in, Type: schemaType(s), Format: s.Format, Required: in.required,
		Title: s.Summary, Description: clipText(s.Description, maxTextLen), Default: s.Default, Internal: in.internal}
	if p.Title == "" {
		p.Title = s.Title
	}
	if p.Description == p.Title {
		p.Description = ""
	}
	if p.Type == "array" && s.Items != nil {
		p.Items = schemaType(s.Items)
	}
	if len(s.Enum) > 0 {
		p.Enum = s.Enum[:min(len(s.Enum), maxEnumValues)]
	}
	if withHint {
		p.Dynamic = hintFor(in.ext)
	}
	return p
}

func hintFor(ext dynamicExt) *dynamicHint {
	switch {
	case ext.options() != nil:
		def := powerautomate.ParseDynamicDefinition(ext.options())
		h := &dynamicHint{Kind: "options", OperationID: def.OperationID, DependsOn: dependsOn(def), Resolve: "get_live_dynamic_options"}
		if def.OperationID == "" {
			h.Resolve = "none: a built-in picker (" + connCoalesce(def.Capability, def.BuiltIn, "unknown") + "); enter the value directly"
		}
		return h
	case ext.schema() != nil:
		def := powerautomate.ParseDynamicDefinition(ext.schema())
		return &dynamicHint{Kind: "schema", OperationID: def.OperationID, DependsOn: dependsOn(def), Resolve: "get_live_dynamic_properties"}
	case ext.DynTree != nil:
		def := powerautomate.ParseDynamicDefinition(ext.DynTree)
		return &dynamicHint{Kind: "tree", OperationID: def.OperationID, Resolve: "none: a tree picker (folders); enter the path directly"}
	}
	return nil
}

// responseSchema returns the operation's success response schema (200, else the
// first 2xx, else default), resolved.
func (sw *swaggerDoc) responseSchema(op swaggerOp) *schemaNode {
	codes := make([]string, 0, len(op.Responses))
	for c := range op.Responses {
		codes = append(codes, c)
	}
	sort.Strings(codes)
	pick := ""
	for _, c := range codes {
		if strings.HasPrefix(c, "2") && (pick == "" || c == "200") {
			pick = c
		}
	}
	if pick == "" {
		pick = "default"
	}
	r := op.Responses[pick]
	if r == nil {
		return nil
	}
	return sw.resolve(r.Schema)
}

func (sw *swaggerDoc) responseSummary(op swaggerOp) *responseSummary {
	s := sw.responseSchema(op)
	if s == nil {
		return nil
	}
	out := &responseSummary{Type: schemaType(s)}
	if _, ext, ok := sw.findDynamicSchema(s, "", 3); ok {
		out.Dynamic = hintFor(ext)
	}
	sw.describeProps(s, "", 2, &out.Properties)
	if out.Type == "" && out.Properties == nil && out.Dynamic == nil {
		return nil
	}
	return out
}

// describeProps renders properties as "name:type", arrays of objects as name[]/field.
func (sw *swaggerDoc) describeProps(s *schemaNode, prefix string, depth int, out *[]string) {
	if s == nil || depth <= 0 {
		return
	}
	if schemaType(s) == "array" && prefix == "" {
		sw.describeProps(sw.resolve(s.Items), "[]", depth, out)
		return
	}
	names := make([]string, 0, len(s.Properties))
	for n := range s.Properties {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if len(*out) >= maxResponseRows {
			*out = append(*out, "…")
			return
		}
		child := sw.resolve(s.Properties[n])
		key := n
		if prefix != "" {
			key = prefix + "/" + n
		}
		t := schemaType(child)
		if t == "array" && child.Items != nil {
			items := sw.resolve(child.Items)
			if it := schemaType(items); it == "object" && len(items.Properties) > 0 && depth > 1 {
				*out = append(*out, key+":array")
				sw.describeProps(items, key+"[]", depth-1, out)
				continue
			} else if it != "" {
				t = "array<" + it + ">"
			}
		}
		if t == "object" && len(child.Properties) > 0 && depth > 1 {
			sw.describeProps(child, key, depth-1, out)
			continue
		}
		*out = append(*out, key+":"+connCoalesce(t, "any"))
	}
}

// findDynamicSchema finds the first x-ms-dynamic-schema/-properties at or below s
// and returns its path below s (e.g. "" for s itself, "value" for a property).
func (sw *swaggerDoc) findDynamicSchema(s *schemaNode, path string, depth int) (string, dynamicExt, bool) {
	if s == nil || depth < 0 {
		return "", dynamicExt{}, false
	}
	if s.schema() != nil {
		return path, s.dynamicExt, true
	}
	if s.Items != nil {
		if p, ext, ok := sw.findDynamicSchema(sw.resolve(s.Items), path, depth-1); ok {
			return p, ext, true
		}
	}
	names := make([]string, 0, len(s.Properties))
	for n := range s.Properties {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		child := path + "/" + n
		if path == "" {
			child = n
		}
		if p, ext, ok := sw.findDynamicSchema(sw.resolve(s.Properties[n]), child, depth-1); ok {
			return p, ext, true
		}
	}
	return "", dynamicExt{}, false
}

// ---- get_live_dynamic_options / get_live_dynamic_properties ----

type dynamicIn struct {
	EnvironmentName string                     `json:"environmentName"`
	ConnectorName   string                     `json:"connectorName"`
	ConnectionName  string                     `json:"connectionName"`
	OperationID     string                     `json:"operationId"`
	Parameter       string                     `json:"parameter"`
	Parameters      map[string]json.RawMessage `json:"parameters"`
}

type dynOption struct {
	Value       json.RawMessage `json:"value"`
	DisplayName string          `json:"displayName"`
}

type dynamicOptionsOut struct {
	Parameter string      `json:"parameter"`
	Options   []dynOption `json:"options"`
	Truncated bool        `json:"truncated,omitempty"`
	Via       string      `json:"via"`
}

type dynamicPropertiesOut struct {
	Parameter  string        `json:"parameter,omitempty"`
	Location   string        `json:"location"`
	SchemaType string        `json:"schemaType,omitempty"`
	Properties []paramDetail `json:"properties"`
	Truncated  bool          `json:"truncated,omitempty"`
	Via        string        `json:"via"`
}

// Where a lookup was resolved.
const (
	viaListEnum   = "listEnum"
	viaProperties = "listDynamicProperties"
	viaRuntime    = "runtime"
)

// lookupContext is what both dynamic tools establish before resolving.
type lookupContext struct {
	api *powerautomate.Connector
	sw  *swaggerDoc
	op  swaggerOp
}

// connectorSwagger reads a connector as the environment sees it, and parses its swagger.
func connectorSwagger(ctx context.Context, env *Env, environment, connector string) (*powerautomate.Connector, *swaggerDoc, error) {
	api, err := env.PA.GetConnector(ctx, environment, connector)
	if err != nil {
		return nil, nil, connectionsError(err, "connector")
	}
	sw, err := parseSwagger(api.Swagger)
	if err != nil {
		return nil, nil, err
	}
	return api, sw, nil
}

func loadLookup(ctx context.Context, env *Env, in dynamicIn) (*lookupContext, error) {
	api, sw, err := connectorSwagger(ctx, env, in.EnvironmentName, in.ConnectorName)
	if err != nil {
		return nil, err
	}
	op, ok := sw.find(in.OperationID)
	if !ok {
		return nil, operationNotFound(sw, in.OperationID, in.ConnectorName)
	}
	return &lookupContext{api: api, sw: sw, op: op}, nil
}

func (lc *lookupContext) input(key string) (opInput, error) {
	in, keys, ok := lc.sw.findInput(lc.op, key)
	if !ok {
		te := &ToolError{Message: "operation " + lc.op.OperationID + " has no parameter " + connQuote(key)}
		if len(keys) > 20 {
			keys = append(keys[:20], "…")
		}
		te.Next = "use one of: " + strings.Join(keys, ", ")
		return opInput{}, te
	}
	return in, nil
}

// missingError says which other parameter values a lookup needs first.
func missingError(key string, missing []string) *ToolError {
	example := make([]string, len(missing))
	for i, m := range missing {
		example[i] = `"` + m + `":<value>`
	}
	return &ToolError{Message: "the lookup for " + key + " depends on " + strings.Join(missing, ", ") + ", which parameters does not give",
		Next: "call again with parameters {" + strings.Join(example, ",") + "}; resolve each of those with get_live_dynamic_options first if it has options"}
}

func getLiveDynamicOptions() *Tool {
	return Define(Tool{
		Name:  "get_live_dynamic_options",
		Title: "Resolve a parameter's dropdown values",
		Description: "Resolves the dropdown of a connector operation parameter (x-ms-dynamic-values / x-ms-dynamic-list): " +
			"the sites, lists, tables, teams, projects… it offers, as value/displayName pairs; put the value into the " +
			"flow definition. Give the connection (from list_live_connections), the operationId and parameter key (from " +
			"describe_live_connector, whose dynamic hint names the parameters this one dependsOn) and those other values " +
			"in parameters. Resolved through the environment's designer route with the default sign-in; where that " +
			"host is unreachable, through the connector runtime, which needs an extra consent (audience " +
			"https://apihub.azure.com) — the tool says where to grant it. Next: the dependent parameters, or " +
			"get_live_dynamic_properties for a dynamic schema.",
		Kind:  ReadOnly,
		Group: Live,
		Input: inputSchema(environmentNameArg, connectorNameArg, connectionNameArg, operationIDArg, otherValuesArg, parameterKeyArg),
		Output: json.RawMessage(`{"type":"object","required":["parameter","options","via"],"properties":{"parameter":{"type":"string"},
"options":{"type":"array","items":{"type":"object","required":["value","displayName"],"properties":{"value":{` + anyJSONType + `,"description":"What to pass for the parameter: usually a string or a number, as the connector returns it."},"displayName":{"type":"string"}}}},
"truncated":{"type":"boolean"},"via":{"type":"string","enum":["listEnum","runtime"]}}}`),
	}, func(ctx context.Context, env *Env, in dynamicIn) (dynamicOptionsOut, error) {
		lc, err := loadLookup(ctx, env, in)
		if err != nil {
			return dynamicOptionsOut{}, err
		}
		target, err := lc.input(in.Parameter)
		if err != nil {
			return dynamicOptionsOut{}, err
		}
		ext := target.ext.options()
		if ext == nil {
			return dynamicOptionsOut{}, noOptionsError(target)
		}
		def := powerautomate.ParseDynamicDefinition(ext)
		if def.OperationID == "" {
			return dynamicOptionsOut{}, &ToolError{Message: target.key + " is filled by a built-in picker (" +
				connCoalesce(def.Capability, def.BuiltIn, "unknown") + "), which this server cannot list",
				Next: "enter the value directly (e.g. an email address or a file path)"}
		}
		args, missing := dynamicArguments(def, in.Parameters)
		if len(missing) > 0 {
			return dynamicOptionsOut{}, missingError(target.key, missing)
		}
		out := dynamicOptionsOut{Parameter: target.key, Options: []dynOption{}}
		if !strings.EqualFold(in.EnvironmentName, "~default") {
			current, _ := json.Marshal(nonNil(in.Parameters))
			values, err := env.PA.ListDynamicValues(ctx, in.EnvironmentName, in.ConnectorName, in.ConnectionName,
				powerautomate.DynamicRequest{Definition: ext, Parameters: current})
			if err == nil {
				out.Via = viaListEnum
				for _, v := range values {
					out.Options = append(out.Options, dynOption{Value: v.Value, DisplayName: v.DisplayName})
				}
				out.Options, out.Truncated = capOptions(out.Options)
				return out, nil
			}
			if !hostUnreachable(err) {
				return dynamicOptionsOut{}, connectionsError(err, "dynamic")
			}
		}
		body, err := lc.runLookup(ctx, env, in, def, args)
		if err != nil {
			return dynamicOptionsOut{}, err
		}
		out.Via = viaRuntime
		out.Options, out.Truncated = capOptions(extractOptions(body, def))
		return out, nil
	})
}

func noOptionsError(target opInput) *ToolError {
	switch {
	case target.ext.schema() != nil:
		return &ToolError{Message: target.key + " has a dynamic schema, not a list of options",
			Next: "call get_live_dynamic_properties for it"}
	case target.ext.DynTree != nil:
		return &ToolError{Message: target.key + " is a tree picker (folders), which this server does not resolve",
			Next: "enter the path directly"}
	}
	return &ToolError{Message: target.key + " has no dynamic options",
		Next: "describe_live_connector with this operationId shows its type, enum and default"}
}

// runLookup runs a dynamic definition's operation on the connector runtime, where
// the per-environment designer route is out of reach. Only operations that the
// connector itself names in a dynamic extension (or its test capability) are run.
func (lc *lookupContext) runLookup(ctx context.Context, env *Env, in dynamicIn, def *powerautomate.DynamicDefinition, args map[string]json.RawMessage) (json.RawMessage, error) {
	op, ok := lc.sw.find(def.OperationID)
	if !ok {
		return nil, &ToolError{Message: "the connector names lookup operation " + connQuote(def.OperationID) + " but does not define it",
			Next: "enter the value directly"}
	}
	call, missing, problem := lc.sw.runtimeCall(lc.api.PrimaryRuntimeURL, in.ConnectionName, op, args, in.Parameters)
	if problem != "" {
		return nil, &ToolError{Message: "the lookup cannot be run: " + problem, Next: "enter the value directly"}
	}
	if len(missing) > 0 {
		return nil, missingError(connCoalesce(in.Parameter, "the response"), missing)
	}
	resp, err := env.PA.InvokeConnectorOperation(ctx, call)
	if err != nil {
		return nil, runtimeError(err, env.DashboardURL, "")
	}
	return resp.Body, nil
}

func nonNil(m map[string]json.RawMessage) map[string]json.RawMessage {
	if m == nil {
		return map[string]json.RawMessage{}
	}
	return m
}

func capOptions(opts []dynOption) ([]dynOption, bool) {
	if len(opts) > maxOptions {
		return opts[:maxOptions], true
	}
	return opts, false
}

// decodeLoose parses JSON keeping numbers exact.
func decodeLoose(raw json.RawMessage) any {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v any
	if d.Decode(&v) != nil {
		return nil
	}
	return v
}

// extractOptions applies a dynamic-values/-list definition to a runtime response.
func extractOptions(body json.RawMessage, def *powerautomate.DynamicDefinition) []dynOption {
	doc := decodeLoose(body)
	items, ok := doc.([]any)
	if !ok {
		if coll := connCoalesce(def.ItemsPath, def.ValueCollection); coll != "" {
			items, _ = powerautomate.LookupPath(doc, coll).([]any)
		} else if items, ok = powerautomate.LookupPath(doc, "value").([]any); !ok {
			if m, isMap := doc.(map[string]any); isMap {
				keys := make([]string, 0, len(m))
				for k := range m {
					keys = append(keys, k)
				}
				sort.Strings(keys)
				for _, k := range keys {
					if arr, isArr := m[k].([]any); isArr {
						items = arr
						break
					}
				}
			}
		}
	}
	valuePath := connCoalesce(def.ItemValuePath, def.ValuePath)
	titlePath := connCoalesce(def.ItemTitlePath, def.ValueTitle)
	out := []dynOption{}
	for _, item := range items {
		v := item
		if valuePath != "" {
			v = powerautomate.LookupPath(item, valuePath)
		}
		title := any(nil)
		if titlePath != "" {
			title = powerautomate.LookupPath(item, titlePath)
		}
		if v == nil || isContainer(v) {
			// Some connectors answer {value, displayName} whatever their swagger says.
			v, title = powerautomate.LookupPath(item, "value"), powerautomate.LookupPath(item, "displayName")
		}
		if v == nil || isContainer(v) {
			continue
		}
		if title == nil {
			title = v
		}
		raw, err := json.Marshal(v)
		if err != nil {
			continue
		}
		out = append(out, dynOption{Value: raw, DisplayName: displayText(title)})
	}
	return out
}

func isContainer(v any) bool {
	switch v.(type) {
	case map[string]any, []any:
		return true
	}
	return false
}

func displayText(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func getLiveDynamicProperties() *Tool {
	return Define(Tool{
		Name:  "get_live_dynamic_properties",
		Title: "Resolve a dynamic schema",
		Description: "Resolves the dynamic schema (x-ms-dynamic-schema / x-ms-dynamic-properties) of a connector operation: " +
			"the fields of a body whose shape depends on other values (the columns of a SharePoint list, the fields of a " +
			"table), or of the operation's response when parameter is left out. Returns a compact property list: name " +
			"(for inputs the flow-definition key, e.g. item/Title), type, required, title, enum. Give the connection, " +
			"operationId, parameter key (from describe_live_connector: its dynamic hint of kind schema, with dependsOn) " +
			"and those other values in parameters. Resolved through the environment's designer route with the default " +
			"sign-in; where that host is unreachable, through the connector runtime, which needs an extra consent " +
			"(audience https://apihub.azure.com) — the tool says where to grant it.",
		Kind:  ReadOnly,
		Group: Live,
		Input: inputSchema(environmentNameArg, connectorNameArg, connectionNameArg, operationIDArg, otherValuesArg, parameterKeyArg.optional().noted("Leave out for the response schema. ")),
		Output: json.RawMessage(`{"type":"object","required":["location","properties","via"],"properties":{"parameter":{"type":"string"},
"location":{"type":"string","enum":["input","output"]},"schemaType":{"type":"string"},
"properties":{"type":"array","items":` + paramDetailSchema + `},"truncated":{"type":"boolean"},
"via":{"type":"string","enum":["listDynamicProperties","runtime"]}}}`),
	}, func(ctx context.Context, env *Env, in dynamicIn) (dynamicPropertiesOut, error) {
		lc, err := loadLookup(ctx, env, in)
		if err != nil {
			return dynamicPropertiesOut{}, err
		}
		out := dynamicPropertiesOut{Parameter: in.Parameter, Location: "input", Properties: []paramDetail{}}
		var ext json.RawMessage
		alias := in.Parameter
		if in.Parameter != "" {
			target, err := lc.input(in.Parameter)
			if err != nil {
				return dynamicPropertiesOut{}, err
			}
			out.Parameter, alias = target.key, target.key
			if ext = target.ext.schema(); ext == nil {
				return dynamicPropertiesOut{}, &ToolError{Message: target.key + " has no dynamic schema",
					Next: "describe_live_connector with operationId " + lc.op.OperationID + " lists its fields"}
			}
		} else {
			out.Location = "output"
			path, found, ok := lc.sw.findDynamicSchema(lc.sw.responseSchema(lc.op), "", 3)
			if !ok {
				return dynamicPropertiesOut{}, &ToolError{Message: "the response of " + lc.op.OperationID + " has no dynamic schema",
					Next: "describe_live_connector with this operationId summarizes its response"}
			}
			ext, alias = found.schema(), strings.TrimSuffix("body/"+path, "/")
		}
		def := powerautomate.ParseDynamicDefinition(ext)
		if def.OperationID == "" {
			return dynamicPropertiesOut{}, &ToolError{Message: "this dynamic schema names no lookup operation", Next: "enter the fields directly"}
		}
		args, missing := dynamicArguments(def, in.Parameters)
		if len(missing) > 0 {
			return dynamicPropertiesOut{}, missingError(connCoalesce(in.Parameter, "the response"), missing)
		}
		var schema json.RawMessage
		if !strings.EqualFold(in.EnvironmentName, "~default") {
			current, _ := json.Marshal(nonNil(in.Parameters))
			schema, err = env.PA.ListDynamicProperties(ctx, in.EnvironmentName, in.ConnectorName, in.ConnectionName,
				powerautomate.DynamicRequest{Definition: ext, Parameters: current, ContextParameterAlias: alias, Location: out.Location})
			if err == nil {
				out.Via = viaProperties
			} else if !hostUnreachable(err) {
				return dynamicPropertiesOut{}, connectionsError(err, "dynamic")
			}
		}
		if out.Via == "" {
			body, err := lc.runLookup(ctx, env, in, def, args)
			if err != nil {
				return dynamicPropertiesOut{}, err
			}
			out.Via = viaRuntime
			schema = schemaFromResponse(body, def)
		}
		var s schemaNode
		if len(schema) > 0 && json.Unmarshal(schema, &s) != nil {
			return dynamicPropertiesOut{}, &ToolError{Message: "the connector answered with a schema this server cannot read",
				Next: "enter the fields directly"}
		}
		out.SchemaType = schemaType(&s)
		prefix := ""
		if out.Location == "input" {
			prefix = out.Parameter
		}
		(&swaggerDoc{}).flatten(&s, prefix, "", 3, false, func(i opInput) {
			if len(out.Properties) >= maxInputs {
				out.Truncated = true
				return
			}
			out.Properties = append(out.Properties, toParamDetail(i, false))
		})
		return out, nil
	})
}

// schemaFromResponse picks the schema out of a runtime lookup's answer: at the
// definition's value path, or, without one, the answer's root object as properties.
func schemaFromResponse(body json.RawMessage, def *powerautomate.DynamicDefinition) json.RawMessage {
	path := connCoalesce(def.ValuePath, def.ItemValuePath)
	doc := decodeLoose(body)
	var schema any
	if path == "" {
		schema = map[string]any{"type": "object", "properties": doc}
	} else {
		schema = powerautomate.LookupPath(doc, path)
	}
	raw, _ := json.Marshal(schema)
	return raw
}

func clipText(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && (s[cut]&0xC0) == 0x80 { // do not split a UTF-8 sequence
		cut--
	}
	return strings.TrimSpace(s[:cut]) + "…"
}

// connQuote quotes an (already validated) identifier for a message.
func connQuote(s string) string { return `"` + clipText(s, 64) + `"` }
