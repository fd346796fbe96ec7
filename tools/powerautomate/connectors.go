package powerautomate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// Connector is a connector with its processed swagger inline.
type Connector struct {
	Name                 string // shared_xxx
	ID                   string
	DisplayName          string
	Description          string
	Publisher            string
	Tier                 string // Standard, Premium
	IsCustom             bool
	PrimaryRuntimeURL    string // base for InvokeConnectorOperation
	Capabilities         []string
	ConnectionParameters json.RawMessage
	// ConnectionParameterSets are the alternative ways to sign a connection in
	// (multi-auth connectors), null when there is one.
	ConnectionParameterSets json.RawMessage
	Swagger                 json.RawMessage // OpenAPI 2.0; host/basePath equal the runtime URL
}

type connectorProps struct {
	DisplayName          string          `json:"displayName"`
	Description          string          `json:"description"`
	Publisher            string          `json:"publisher"`
	Tier                 string          `json:"tier"`
	IsCustomAPI          bool            `json:"isCustomApi"`
	PrimaryRuntimeURL    string          `json:"primaryRuntimeUrl"`
	Capabilities         []string        `json:"capabilities"`
	ConnectionParameters json.RawMessage `json:"connectionParameters"`
	ParameterSets        json.RawMessage `json:"connectionParameterSets"`
	Swagger              json.RawMessage `json:"swagger"`
}

// GetConnector returns a connector as seen from an environment, swagger included.
func (c *Client) GetConnector(ctx context.Context, env, connector string) (*Connector, error) {
	if err := ValidateEnvironmentName(env); err != nil {
		return nil, err
	}
	if err := ValidateConnectorName(connector); err != nil {
		return nil, err
	}
	u := c.cfg.PowerAppsURL + "/providers/Microsoft.PowerApps/apis/" + esc(connector) + "?" + encodeQuery(envFilter(apiVersionConnectors, env))
	r, err := callJSON[armResource[connectorProps]](ctx, c, "GetConnector", "GET", u, nil)
	if err != nil {
		return nil, err
	}
	p := r.Properties
	return &Connector{
		Name: r.Name, ID: r.ID, DisplayName: p.DisplayName, Description: p.Description, Publisher: p.Publisher,
		Tier: p.Tier, IsCustom: p.IsCustomAPI, PrimaryRuntimeURL: p.PrimaryRuntimeURL, Capabilities: p.Capabilities,
		ConnectionParameters: p.ConnectionParameters, ConnectionParameterSets: p.ParameterSets, Swagger: p.Swagger,
	}, nil
}

// ConnectorCall is one operation call on a connector runtime, as the
// connector's swagger describes it.
type ConnectorCall struct {
	RuntimeURL   string            // the connector's PrimaryRuntimeURL
	Connection   string            // connection name
	Method       string            // GET or POST
	PathTemplate string            // the swagger path key, e.g. /{connectionId}/projects/{projectId}/tasks
	PathParams   map[string]string // values for the other {placeholders}; escaped here
	Query        url.Values
	Body         json.RawMessage
}

// ConnectorResponse is a 2xx answer of a connector runtime.
type ConnectorResponse struct {
	Status int
	Body   json.RawMessage
}

var placeholderRE = regexp.MustCompile(`\{([^{}/]+)\}`)

// InvokeConnectorOperation calls an operation on a connector runtime with an
// apihub token. The runtime URL must be under ApihubURL or RuntimeHosts.
// A non-2xx answer is an *APIError whose Status is the runtime's.
func (c *Client) InvokeConnectorOperation(ctx context.Context, call ConnectorCall) (*ConnectorResponse, error) {
	if err := ValidateConnectionName(call.Connection); err != nil {
		return nil, err
	}
	if call.Method != "GET" && call.Method != "POST" {
		return nil, invalid("method", call.Method, "want GET or POST")
	}
	tmpl := strings.TrimPrefix(call.PathTemplate, "/{connectionId}")
	if !strings.HasPrefix(tmpl, "/") && tmpl != "" || strings.ContainsAny(tmpl, "?#%\\") || strings.Contains(tmpl, "..") {
		return nil, invalid("path", call.PathTemplate, "want a swagger path such as /{connectionId}/items")
	}
	var missing []string
	p := placeholderRE.ReplaceAllStringFunc(tmpl, func(m string) string {
		name := m[1 : len(m)-1]
		v, ok := call.PathParams[name]
		if !ok || v == "" {
			missing = append(missing, name)
		}
		return url.PathEscape(v)
	})
	if len(missing) > 0 {
		return nil, fmt.Errorf("powerautomate: InvokeConnectorOperation: missing path parameters %s", strings.Join(missing, ", "))
	}
	u := strings.TrimRight(call.RuntimeURL, "/") + "/" + esc(call.Connection) + p
	if len(call.Query) > 0 {
		u += "?" + encodeQuery(call.Query)
	}
	if ru, err := url.Parse(u); err != nil {
		return nil, fmt.Errorf("%w: runtime URL", ErrLinkNotAllowed)
	} else if b, ok := c.baseFor(ru); !ok || b.audience != c.cfg.APIHubAudience {
		return nil, fmt.Errorf("%w: runtime URL", ErrLinkNotAllowed)
	}
	var body any
	if call.Body != nil {
		body = call.Body
	}
	resp, err := c.apiCall(ctx, "InvokeConnectorOperation", call.Method, u, body)
	if err != nil {
		return nil, err
	}
	return &ConnectorResponse{Status: resp.status, Body: resp.body}, nil
}

// DynamicValue is one option of a dynamic dropdown.
type DynamicValue struct {
	Value       json.RawMessage `json:"value"`
	DisplayName string          `json:"displayName"`
	IsParent    bool            `json:"isParent,omitempty"`
}

// LookupPath follows a "/"-separated path (a dynamic extension's value-path,
// value-collection or items path) through decoded JSON, matching keys
// case-insensitively as the platform does: value-path "Schema/InputParameters" finds
// "schema/inputparameters". An exact match wins over a case-folded one. nil when
// the path leads nowhere.
func LookupPath(doc any, path string) any {
	for _, part := range strings.Split(strings.Trim(path, "/"), "/") {
		if part == "" {
			continue
		}
		m, ok := doc.(map[string]any)
		if !ok {
			return nil
		}
		next, found := m[part]
		if !found {
			for k, v := range m {
				if strings.EqualFold(k, part) {
					next, found = v, true
					break
				}
			}
		}
		if !found {
			return nil
		}
		doc = next
	}
	return doc
}

// DynamicDefinition is an x-ms-dynamic-* extension in either spelling (values/list,
// schema/properties) as far as it is read: the operation that answers the lookup,
// its parameters, and where the answer's items, values and titles are; a built-in
// picker names its capability instead.
type DynamicDefinition struct {
	OperationID     string                     `json:"operationId"`
	Parameters      map[string]json.RawMessage `json:"parameters"`
	ItemsPath       string                     `json:"itemsPath"`
	ValueCollection string                     `json:"value-collection"`
	ItemValuePath   string                     `json:"itemValuePath"`
	ValuePath       string                     `json:"value-path"`
	ItemTitlePath   string                     `json:"itemTitlePath"`
	ValueTitle      string                     `json:"value-title"`
	Capability      string                     `json:"capability"`
	BuiltIn         string                     `json:"builtInOperation"`
	// The designer wraps the definition in dynamicState or extension.
	DynamicState *DynamicDefinition `json:"dynamicState"`
	Extension    *DynamicDefinition `json:"extension"`
}

// ParseDynamicDefinition decodes an extension, raw or designer-normalized, down to
// the definition itself; one that does not decode is empty.
func ParseDynamicDefinition(raw json.RawMessage) *DynamicDefinition {
	var d DynamicDefinition
	if json.Unmarshal(raw, &d) != nil {
		return &DynamicDefinition{}
	}
	return d.Unwrapped()
}

// Unwrapped is the definition inside the designer's wrappings (a few deep at most).
func (d *DynamicDefinition) Unwrapped() *DynamicDefinition {
	def := d
	for range 4 {
		switch {
		case def.DynamicState != nil:
			def = def.DynamicState
		case def.Extension != nil:
			def = def.Extension
		default:
			return def
		}
	}
	return def
}

// DynamicRequest asks the service to resolve a dynamic extension of a
// connector operation parameter.
type DynamicRequest struct {
	// Definition is the parameter's x-ms-dynamic-list / x-ms-dynamic-values
	// (or x-ms-dynamic-properties / x-ms-dynamic-schema) object; a
	// designer-normalized one is reduced to its dynamicState.
	Definition json.RawMessage
	// Parameters are the operation's current input values by name.
	Parameters json.RawMessage
	// ContextParameterAlias and Location are for dynamic properties only:
	// the parameter alias (e.g. "body") and "input" or "output".
	ContextParameterAlias string
	Location              string
}

type dynamicBody struct {
	DynamicInvocationDefinition json.RawMessage `json:"dynamicInvocationDefinition"`
	Parameters                  json.RawMessage `json:"parameters"`
	ContextParameterAlias       string          `json:"contextParameterAlias,omitempty"`
	Location                    string          `json:"location,omitempty"`
}

func (r DynamicRequest) body() (dynamicBody, error) {
	def := r.Definition
	var normalized struct {
		DynamicState json.RawMessage `json:"dynamicState"`
	}
	if err := json.Unmarshal(def, &normalized); err != nil {
		return dynamicBody{}, errors.New("powerautomate: dynamic definition is not a JSON object")
	}
	if normalized.DynamicState != nil {
		def = normalized.DynamicState
	}
	params := r.Parameters
	if params == nil {
		params = emptyBody
	}
	return dynamicBody{def, params, r.ContextParameterAlias, r.Location}, nil
}

// ListDynamicValues resolves a dynamic dropdown through the environment's
// listEnum route (Flow audience).
func (c *Client) ListDynamicValues(ctx context.Context, env, connector, connection string, req DynamicRequest) ([]DynamicValue, error) {
	resp, err := c.dynamicCall(ctx, "ListDynamicValues", "listEnum", env, connector, connection, req)
	if err != nil {
		return nil, err
	}
	var p page[DynamicValue]
	if err := decode("ListDynamicValues", resp, &p); err != nil {
		return nil, err
	}
	return p.Value, nil
}

// ListDynamicProperties resolves a dynamic schema through the environment's
// listDynamicProperties route and returns the schema object.
func (c *Client) ListDynamicProperties(ctx context.Context, env, connector, connection string, req DynamicRequest) (json.RawMessage, error) {
	resp, err := c.dynamicCall(ctx, "ListDynamicProperties", "listDynamicProperties", env, connector, connection, req)
	if err != nil {
		return nil, err
	}
	// Tolerate the Logic Apps style {"response":{"statusCode","body"}} wrapper.
	var wrapped struct {
		Response *struct {
			StatusCode string          `json:"statusCode"`
			Body       json.RawMessage `json:"body"`
		} `json:"response"`
	}
	if err := decode("ListDynamicProperties", resp, &wrapped); err != nil {
		return nil, err
	}
	if wrapped.Response == nil {
		return resp.body, nil
	}
	if wrapped.Response.StatusCode != "OK" {
		e := parseAPIError(resp.status, resp.header, wrapped.Response.Body)
		if e.Code == "" {
			e.Code = wrapped.Response.StatusCode
		}
		return nil, e
	}
	return wrapped.Response.Body, nil
}

func (c *Client) dynamicCall(ctx context.Context, op, action, env, connector, connection string, req DynamicRequest) (*response, error) {
	if err := validateConnectionRef(env, connector, connection); err != nil {
		return nil, err
	}
	base, err := c.environmentURL(env)
	if err != nil {
		return nil, err
	}
	body, err := req.body()
	if err != nil {
		return nil, err
	}
	u := base + "/powerautomate/apis/" + esc(connector) + "/connections/" + esc(connection) + "/" + action +
		"?" + encodeQuery(url.Values{"api-version": {apiVersionPowerPlatform}})
	return c.apiCall(ctx, op, "POST", u, body)
}

// EnvironmentHostLabel is the "{30 hex}.{2 hex}" label of an environment's
// Power Platform API host (Default- prefix and dashes dropped).
func EnvironmentHostLabel(env string) (string, error) {
	if err := ValidateEnvironmentName(env); err != nil {
		return "", err
	}
	if env == "~default" {
		return "", invalid("environment", env, "the per-environment host needs the environment id, not ~default")
	}
	if strings.HasPrefix(strings.ToLower(env), "default-") {
		env = env[len("default-"):]
	}
	hex := strings.ToLower(strings.ReplaceAll(env, "-", ""))
	return hex[:len(hex)-2] + "." + hex[len(hex)-2:], nil
}

func (c *Client) environmentURL(env string) (string, error) {
	label, err := EnvironmentHostLabel(env)
	if err != nil {
		return "", err
	}
	return strings.Replace(c.cfg.PowerPlatformURL, "{envhost}", label, 1), nil
}

// ConnectionTest is what TestConnection found.
type ConnectionTest struct {
	Connection *Connection
	Connected  bool // the service's own status says Connected
	LiveCheck  LiveCheck
}

// LiveCheck is the result of running the connector's declared test operation.
type LiveCheck struct {
	Ran         bool
	Reason      string // why it did not run
	OperationID string
	HTTPStatus  int
	OK          bool
	ErrorCode   string
	Message     string // upstream text; show only after deciding it is safe
}

// TestConnection reads a connection's status, then runs the connector's
// x-ms-capabilities.testConnection operation (a GET with literal
// parameters) through the runtime with an apihub token.
func (c *Client) TestConnection(ctx context.Context, env, connector, connection string) (*ConnectionTest, error) {
	conn, err := c.GetConnection(ctx, env, connector, connection)
	if err != nil {
		return nil, err
	}
	out := &ConnectionTest{Connection: conn, Connected: conn.Connected()}
	api, err := c.GetConnector(ctx, env, connector)
	if err != nil {
		return nil, err
	}
	call, opID, reason := testCall(api)
	out.LiveCheck.OperationID = opID
	if reason != "" {
		out.LiveCheck.Reason = reason
		return out, nil
	}
	call.Connection = connection
	out.LiveCheck.Ran = true
	resp, err := c.InvokeConnectorOperation(ctx, call)
	var apiErr *APIError
	switch {
	case err == nil:
		out.LiveCheck.HTTPStatus, out.LiveCheck.OK = resp.Status, true
	case errors.As(err, &apiErr):
		out.LiveCheck.HTTPStatus, out.LiveCheck.ErrorCode, out.LiveCheck.Message = apiErr.Status, apiErr.Code, apiErr.Message
	default:
		return nil, err
	}
	return out, nil
}

// SwaggerCapabilities is a connector swagger's x-ms-capabilities, as far as it is read.
type SwaggerCapabilities struct {
	// TestConnection is the operation that checks a connection, with its fixed
	// parameters (a literal or {"value": x} each).
	TestConnection *struct {
		OperationID string                     `json:"operationId"`
		Parameters  map[string]json.RawMessage `json:"parameters"`
	} `json:"testConnection"`
}

// testCall builds the call for a connector's testConnection capability.
func testCall(api *Connector) (ConnectorCall, string, string) {
	var sw struct {
		Capabilities SwaggerCapabilities                   `json:"x-ms-capabilities"`
		Paths        map[string]map[string]json.RawMessage `json:"paths"`
	}
	if json.Unmarshal(api.Swagger, &sw) != nil || sw.Capabilities.TestConnection == nil {
		return ConnectorCall{}, "", "connector declares no x-ms-capabilities.testConnection"
	}
	tc := sw.Capabilities.TestConnection
	for path, item := range sw.Paths {
		raw, ok := item["get"]
		if !ok {
			continue
		}
		var op struct {
			OperationID string `json:"operationId"`
			Parameters  []struct {
				Name, In string
			} `json:"parameters"`
		}
		if json.Unmarshal(raw, &op) != nil || op.OperationID != tc.OperationID {
			continue
		}
		call := ConnectorCall{RuntimeURL: api.PrimaryRuntimeURL, Method: "GET", PathTemplate: path, PathParams: map[string]string{}, Query: url.Values{}}
		for _, prm := range op.Parameters {
			v, ok := literalParam(tc.Parameters[prm.Name])
			switch {
			case prm.Name == "connectionId" || !ok:
			case prm.In == "path":
				call.PathParams[prm.Name] = v
			case prm.In == "query":
				call.Query.Set(prm.Name, v)
			}
		}
		return call, tc.OperationID, ""
	}
	return ConnectorCall{}, tc.OperationID, "testConnection operation is not a GET in the swagger"
}

// literalParam reads a testConnection parameter: a literal or {"value": x}.
func literalParam(raw json.RawMessage) (string, bool) {
	if raw == nil {
		return "", false
	}
	var wrapped struct{ Value json.RawMessage }
	if json.Unmarshal(raw, &wrapped) == nil && wrapped.Value != nil {
		raw = wrapped.Value
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, true
	}
	return strings.TrimSpace(string(raw)), true
}
