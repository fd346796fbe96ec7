package tools

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/flowstudio/mcp/tools/powerautomate"
)

type connectionRow struct {
	Name        string `json:"name"`
	Connector   string `json:"connector"`
	DisplayName string `json:"displayName,omitempty"`
	Status      string `json:"status"`
	ErrorCode   string `json:"errorCode,omitempty"`
	Owner       string `json:"owner,omitempty"`
	OwnerID     string `json:"ownerObjectId,omitempty"`
	Created     string `json:"created,omitempty"`
	Expires     string `json:"expires,omitempty"`
}

// connectionReference is one entry of a flow's connectionReferences.
type connectionReference struct {
	ConnectionName string `json:"connectionName"`
	Source         string `json:"source"`
	ID             string `json:"id"`
}

type connectionsIn struct {
	EnvironmentName string `json:"environmentName"`
	ConnectorName   string `json:"connectorName"`
	Search          string `json:"search"`
	Status          string `json:"status"`
	Templates       bool   `json:"templates"`
	PageSize        int    `json:"pageSize"`
	Cursor          string `json:"cursor"`
}

type connectionsOut struct {
	Connections          []connectionRow                `json:"connections"`
	ConnectionReferences map[string]connectionReference `json:"connectionReferences,omitempty"`
	NextCursor           string                         `json:"nextCursor,omitempty"`
}

func listLiveConnections() *Tool {
	return Define(Tool{
		Name:  "list_live_connections",
		Title: "List connections in an environment",
		Description: "Lists the connections (signed-in credentials to connectors) you can use in an environment, compactly: " +
			"name (the connectionName for other tools), connector (the connectorName, e.g. shared_sharepointonline), " +
			"display name, status (Connected, or Error with its errorCode), owner (UPN and object id), created, expires. " +
			"Filters: connectorName, status, search (case-insensitive text in the display name or connector). " +
			"With search or templates=true it also returns connectionReferences: paste-ready entries for " +
			"update_live_flow's connectionReferences, one per connector (its first Connected connection; swap " +
			"connectionName to use another). Pages with pageSize and nextCursor. Reads the Power Apps API " +
			"(api.powerapps.com) with the token audience https://service.powerapps.com/ of the default sign-in. " +
			"Next: describe_live_connector for a connector's operations, test_live_connection for a broken one.",
		Kind:  ReadOnly,
		Group: Live,
		Input: inputSchema(environmentNameArg, connectorNameArg.optional(),
			optionalArg("search", `{"type":"string","maxLength":200,"description":"Case-insensitive text to find in the display name or connector name."}`),
			optionalArg("status", `{"type":"string","enum":["Connected","Error"],"description":"Only connections in this state (Error: anything not Connected)."}`),
			optionalArg("templates", `{"type":"boolean","default":false,"description":"Also return connectionReferences templates (implied by search)."}`),
			pageSizeArg, cursorArg),
		Output: json.RawMessage(`{"type":"object","required":["connections"],"properties":{
"connections":{"type":"array","items":{"type":"object","required":["name","connector","status"],"properties":{
"name":{"type":"string"},"connector":{"type":"string"},"displayName":{"type":"string"},"status":{"type":"string"},
"errorCode":{"type":"string"},"owner":{"type":"string"},"ownerObjectId":{"type":"string"},"created":{"type":"string"},"expires":{"type":"string"}}}},
"connectionReferences":{"type":"object","additionalProperties":{"type":"object","required":["connectionName","source","id"],"properties":{
"connectionName":{"type":"string"},"source":{"type":"string"},"id":{"type":"string"}}}},
"nextCursor":{"type":"string"}}}`),
	}, func(ctx context.Context, env *Env, in connectionsIn) (connectionsOut, error) {
		next, err := linkFromCursor(in.Cursor)
		if err != nil {
			return connectionsOut{}, err
		}
		in.PageSize = cmp.Or(in.PageSize, defaultPageSize)
		search := strings.ToLower(strings.TrimSpace(in.Search))
		filtered := search != "" || in.Status != ""
		out := connectionsOut{Connections: []connectionRow{}}
		for range searchPages {
			page, err := env.PA.ListConnections(ctx, in.EnvironmentName, powerautomate.ListConnectionsOptions{
				Connector: in.ConnectorName, Top: in.PageSize, NextLink: next,
			})
			if err != nil {
				return connectionsOut{}, connectionsError(err, "list")
			}
			for _, c := range page.Connections {
				if !matchesConnection(c, search, in.Status) {
					continue
				}
				out.Connections = append(out.Connections, toConnectionRow(c))
			}
			next = page.NextLink
			if !filtered || next == "" || len(out.Connections) >= in.PageSize {
				break
			}
		}
		out.NextCursor = linkCursor(next)
		if in.Templates || search != "" {
			out.ConnectionReferences = connectionTemplates(out.Connections)
		}
		return out, nil
	})
}

func matchesConnection(c powerautomate.Connection, search, status string) bool {
	if status == "Connected" && !c.Connected() || status == "Error" && c.Connected() {
		return false
	}
	return search == "" || strings.Contains(strings.ToLower(c.DisplayName), search) ||
		strings.Contains(strings.ToLower(c.Connector), search)
}

func toConnectionRow(c powerautomate.Connection) connectionRow {
	row := connectionRow{Name: c.Name, Connector: c.Connector, DisplayName: c.DisplayName, OwnerID: c.CreatedBy.ID,
		Owner: connCoalesce(c.CreatedBy.UserPrincipalName, c.CreatedBy.Email), Created: day(c.CreatedTime), Expires: day(c.ExpirationTime)}
	row.Status, row.ErrorCode = connectionStatus(c)
	return row
}

// connectionStatus is Connected when any status says so, else the first status (or
// Unknown) with its error code.
func connectionStatus(c powerautomate.Connection) (status, code string) {
	if c.Connected() {
		return "Connected", ""
	}
	if len(c.Statuses) == 0 {
		return "Unknown", ""
	}
	s := c.Statuses[0]
	if s.Error != nil {
		code = s.Error.Code
	}
	return connCoalesce(s.Status, "Unknown"), code
}

// connectionTemplates returns one connection reference per connector: its first
// Connected connection among rows. Broken connections would only break the flow.
func connectionTemplates(rows []connectionRow) map[string]connectionReference {
	refs := map[string]connectionReference{}
	for _, r := range rows {
		if _, seen := refs[r.Connector]; seen || r.Status != "Connected" {
			continue
		}
		refs[r.Connector] = connectionReference{ConnectionName: r.Name, Source: "Embedded",
			ID: "/providers/Microsoft.PowerApps/apis/" + r.Connector}
	}
	return refs
}

type connectionRefIn struct {
	EnvironmentName string `json:"environmentName"`
	ConnectorName   string `json:"connectorName"`
	ConnectionName  string `json:"connectionName"`
}

type liveCheckOut struct {
	Ran         bool   `json:"ran"`
	OperationID string `json:"operationId,omitempty"`
	HTTPStatus  int    `json:"httpStatus,omitempty"`
	OK          bool   `json:"ok"`
	ErrorCode   string `json:"errorCode,omitempty"`
	Reason      string `json:"reason,omitempty"`
}

type testConnectionOut struct {
	ConnectionName string       `json:"connectionName"`
	ConnectorName  string       `json:"connectorName"`
	DisplayName    string       `json:"displayName,omitempty"`
	OK             bool         `json:"ok"`
	Status         string       `json:"status"`
	ErrorCode      string       `json:"errorCode,omitempty"`
	Expires        string       `json:"expires,omitempty"`
	LiveCheck      liveCheckOut `json:"liveCheck"`
	Problem        string       `json:"problem,omitempty"`
	Next           string       `json:"next,omitempty"`
}

// fixConnectionHint is where a user repairs a connection; this server cannot sign a
// connection in for them.
const fixConnectionHint = "fix it in Power Automate (make.powerautomate.com → Data → Connections → the connection → Fix connection), then run test_live_connection again"

func testLiveConnection() *Tool {
	return Define(Tool{
		Name:  "test_live_connection",
		Title: "Test whether a connection works",
		Description: "Checks whether a connection is healthy: first the status Power Apps keeps for it (Connected, or Error " +
			"with a code such as an expired sign-in), then, if it says Connected, the connector's own test operation " +
			"(x-ms-capabilities.testConnection) run through the connector runtime with the connection's credential. " +
			"Returns ok, the status and error code, the live check (operation, HTTP status) and, when broken, the problem " +
			"and the next step (usually: fix the connection in Power Automate → Data → Connections). Use it when a flow " +
			"run fails on a connector action or before wiring a connection into a flow. The live check calls the " +
			"connector runtime (token audience https://apihub.azure.com), which needs an extra consent beyond the " +
			"default sign-in; without it the tool says where to grant it.",
		Kind:  ReadOnly,
		Group: Live,
		Input: inputSchema(environmentNameArg, connectorNameArg, connectionNameArg),
		Output: json.RawMessage(`{"type":"object","required":["connectionName","connectorName","ok","status","liveCheck"],"properties":{
"connectionName":{"type":"string"},"connectorName":{"type":"string"},"displayName":{"type":"string"},"ok":{"type":"boolean"},
"status":{"type":"string"},"errorCode":{"type":"string"},"expires":{"type":"string"},
"liveCheck":{"type":"object","required":["ran","ok"],"properties":{"ran":{"type":"boolean"},"operationId":{"type":"string"},
"httpStatus":{"type":"integer"},"ok":{"type":"boolean"},"errorCode":{"type":"string"},"reason":{"type":"string"}}},
"problem":{"type":"string"},"next":{"type":"string"}}}`),
	}, func(ctx context.Context, env *Env, in connectionRefIn) (testConnectionOut, error) {
		conn, err := env.PA.GetConnection(ctx, in.EnvironmentName, in.ConnectorName, in.ConnectionName)
		if err != nil {
			return testConnectionOut{}, connectionsError(err, "connection")
		}
		out := testConnectionOut{ConnectionName: conn.Name, ConnectorName: in.ConnectorName, DisplayName: conn.DisplayName,
			Expires: day(conn.ExpirationTime)}
		out.Status, out.ErrorCode = connectionStatus(*conn)
		if out.Status != "Connected" && out.Status != "Unknown" { // no status at all: let the live check tell
			out.LiveCheck.Reason = "skipped: Power Apps already reports the connection as not connected"
			out.Problem = "the connection is not connected"
			if out.ErrorCode != "" {
				out.Problem += " (" + out.ErrorCode + ")"
			}
			if !conn.ExpirationTime.IsZero() {
				out.Problem += "; its sign-in expired " + out.Expires
			}
			out.Next = fixConnectionHint
			return out, nil
		}
		api, sw, err := connectorSwagger(ctx, env, in.EnvironmentName, in.ConnectorName)
		if err != nil {
			return testConnectionOut{}, err
		}
		tc := sw.Capabilities.TestConnection
		if tc == nil || tc.OperationID == "" {
			out.OK = out.Status == "Connected"
			out.LiveCheck.Reason = "the connector declares no test operation; only its status was checked"
			return out, nil
		}
		out.LiveCheck.OperationID = tc.OperationID
		op, ok := sw.find(tc.OperationID)
		if !ok {
			out.OK = out.Status == "Connected"
			out.LiveCheck.Reason = "the connector's test operation is missing from its definition; only its status was checked"
			return out, nil
		}
		args := map[string]json.RawMessage{}
		for name, v := range tc.Parameters {
			if lit, ok := literalValue(v); ok {
				args[name] = lit
			}
		}
		call, missing, problem := sw.runtimeCall(api.PrimaryRuntimeURL, in.ConnectionName, op, args, nil)
		if problem == "" && len(missing) > 0 {
			problem = "it needs values for " + strings.Join(missing, ", ")
		}
		if problem != "" {
			out.OK = out.Status == "Connected"
			out.LiveCheck.Reason = "the connector's test operation cannot be run here (" + problem + "); only its status was checked"
			return out, nil
		}
		out.LiveCheck.Ran = true
		resp, err := env.PA.InvokeConnectorOperation(ctx, call)
		if err == nil {
			out.OK, out.LiveCheck.OK, out.LiveCheck.HTTPStatus = true, true, resp.Status
			return out, nil
		}
		var apiErr *powerautomate.APIError
		if !errors.As(err, &apiErr) || !conclusiveRuntimeFailure(apiErr) {
			return testConnectionOut{}, runtimeError(err, env.DashboardURL, "status Connected, live test inconclusive: ")
		}
		out.LiveCheck.HTTPStatus, out.LiveCheck.ErrorCode = apiErr.Status, apiErr.Code
		var te *ToolError
		if errors.As(runtimeError(apiErr, env.DashboardURL, ""), &te) {
			out.Problem, out.Next = te.Message, te.Next
		}
		return out, nil
	})
}

// conclusiveRuntimeFailure says whether a runtime refusal tells something about the
// connection (its credential or its permissions) rather than about us or the moment:
// throttling, server errors and our own token being refused are not verdicts.
func conclusiveRuntimeFailure(e *powerautomate.APIError) bool {
	if ourTokenRefused(e) {
		return false
	}
	return e.Status >= 400 && e.Status < 500 && e.Status != http.StatusTooManyRequests && e.Status != http.StatusRequestTimeout
}

// ourTokenRefused: the runtime (not the connection behind it) refused our bearer token.
func ourTokenRefused(e *powerautomate.APIError) bool {
	switch e.Code {
	case "InvalidAuthenticationToken", "ExpiredAuthenticationToken", "InvalidAuthenticationTokenAudience", "AuthenticationFailed":
		return e.Status == http.StatusUnauthorized
	}
	return false
}

// consentError says that a call needs an audience the user has not granted.
func consentError(dashboardURL, audience, prefix string) *ToolError {
	return &ToolError{
		Message: prefix + "connector runtime calls need an extra consent beyond the default sign-in (token audience " +
			audience + "), which has not been granted or has lapsed; this server never widens consent on its own",
		Next: "grant connector access at " + dashboardURL + " (its Grant connector access button), then retry",
	}
}

// runtimeError maps a failure of a connector runtime call. prefix is prepended to
// the message (it carries what was already found, e.g. the connection's status).
func runtimeError(err error, dashboardURL, prefix string) error {
	if errors.Is(err, powerautomate.ErrConsentRequired) || errors.Is(err, powerautomate.ErrReconnect) {
		return consentError(dashboardURL, powerautomate.AudienceAPIHub, prefix)
	}
	var e *powerautomate.APIError
	if !errors.As(err, &e) {
		if te := upstreamToolError(err, dashboardURL); te != nil {
			te.Message = prefix + te.Message
			return te
		}
		return err
	}
	if ourTokenRefused(e) {
		te := consentError(dashboardURL, powerautomate.AudienceAPIHub, prefix)
		te.Status, te.Code = e.Status, e.Code
		return te
	}
	r := classify(e)
	if r == refusedInvalid && strings.Contains(strings.ToLower(e.Message), "token exchange") {
		r = refusedAuth // the connector could not exchange the connection's credential
	}
	te := runtimeWords.toolError(e, r, dashboardURL)
	te.Message = prefix + te.Message
	return te
}

// runtimeWords word a connector runtime's refusals.
var runtimeWords = refusalWords{
	refusedOther:     {"the connector refused the request", ""},
	refusedAuth:      {"the connection's own sign-in is broken: the connector could not use its credential", fixConnectionHint},
	refusedDLP:       {"a data loss prevention (DLP) policy of your tenant blocks this connector here", "ask a Power Platform admin about the DLP policy"},
	refusedForbidden: {"the connector refused this: the connection's account lacks permission on the resource", "use a connection whose account has access, or ask for access to the resource"},
	refusedNotFound:  {"the connector answered not found: the connection is not in this environment, or a parameter value (site, list, project, …) is wrong", "check the values in parameters; resolve each one with get_live_dynamic_options first"},
	refusedConflict:  {"the connector refused the request", ""},
	refusedThrottled: {"the connector is throttling requests", "wait {wait} and retry"},
	refusedServer:    {"the connector had a server error", "retry in a minute"},
	refusedInvalid:   {"the connector rejected the request as invalid", "check the parameter values against describe_live_connector"},
}

// connectionsError maps a failure of a Power Apps or per-environment call made by the
// connection and connector tools; what names the object the call was about
// ("list", "connection", "connector", "dynamic"). The generic mapping's 403/404 next
// steps speak of flows, so those are replaced here.
func connectionsError(err error, what string) error {
	var e *powerautomate.APIError
	if !errors.As(err, &e) {
		return err // the catalog's generic mapping (reconnect, timeout, invalid id)
	}
	r := classify(e)
	switch {
	case r == refusedAuth || r == refusedDLP || r == refusedThrottled || r == refusedServer ||
		e.Code == powerautomate.CodeEnvironmentAccessDenied:
		return err // the catalog's generic mapping says it for every API alike
	case e.Code == "ServiceToServiceEnvironmentNotFound" || e.Code == "EnvironmentNotFound":
		return connectionsWords(e, "environment not found", "pick an environment from list_live_environments")
	case e.Code == "ConnectionNotFound" || r == refusedNotFound && (what == "connection" || what == "dynamic"):
		return connectionsWords(e, "connection not found in this environment (or not visible to you)",
			"pick a connectionName together with its connector from list_live_connections")
	case e.Code == "ApiNotFound" || r == refusedNotFound && what == "connector":
		return connectionsWords(e, "connector not found in this environment",
			"use the connector field of list_live_connections, e.g. shared_sharepointonline")
	case e.Code == "DynamicOperationRequestClientFailure" && r != refusedForbidden && r != refusedNotFound:
		return connectionsWords(e, "the connector could not resolve this lookup: the connection may be broken, or another parameter value is wrong",
			"run test_live_connection; check the values in parameters")
	}
	return powerAppsWords.toolError(e, r, "")
}

func connectionsWords(e *powerautomate.APIError, message, next string) *ToolError {
	return &ToolError{Status: e.Status, Code: e.Code, Message: message, Next: next}
}

// powerAppsWords word the refusals of Power Apps and the per-environment API, for the
// connection and connector tools (the generic 403/404 next steps speak of flows); the
// classes connectionsError passes on to the generic mapping have no words here.
var powerAppsWords = refusalWords{
	refusedOther:     {"Power Apps refused the request", ""},
	refusedForbidden: {"Power Apps refused this for your account: the connection is not shared with you, or you lack permission in this environment", "use a connection from list_live_connections, or ask its owner to share it"},
	refusedNotFound:  {"not found", "check environmentName and connectorName with list_live_environments and list_live_connections"},
	refusedConflict:  {"Power Apps refused the request", ""},
	refusedInvalid:   {"Power Apps rejected the request as invalid", "check the arguments against describe_live_connector"},
}

func connCoalesce(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}
