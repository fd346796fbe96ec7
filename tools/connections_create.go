package tools

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"sort"
	"strings"

	"github.com/flowstudio/mcp/rpc"
	"github.com/flowstudio/mcp/tools/powerautomate"
)

// create_live_connection: the person signs a connection in, never the agent. The
// calls (Power Apps API, default sign-in audience) are documented in
// powerautomate/connections_create.go: PUT the connection, POST getConsentLink,
// then the person opens the link. The link goes to the client as a URL-mode
// elicitation (MCP 2025-11-25) when it declared the capability, else back to the
// agent as signInLink to show. A later call with connectionName reads the
// connection's status from Power Apps: that, not the client's answer, says whether
// the sign-in finished.

type createConnectionIn struct {
	EnvironmentName string `json:"environmentName"`
	ConnectorName   string `json:"connectorName"`
	ConnectionName  string `json:"connectionName"`
	DisplayName     string `json:"displayName"`
}

type createConnectionOut struct {
	EnvironmentName string `json:"environmentName"`
	ConnectorName   string `json:"connectorName"`
	ConnectionName  string `json:"connectionName"`
	Created         bool   `json:"created"`
	// Status is connected, or signInRequired until the person has signed in.
	Status string `json:"status"`
	// SignIn says how the sign-in link went out: notNeeded, elicited (the client
	// was asked to open it) or link (signInLink, for the agent to show).
	SignIn               string               `json:"signIn"`
	SignInLink           string               `json:"signInLink,omitempty"`
	ConnectionReferences *connectionReference `json:"connectionReference,omitempty"`
	Next                 string               `json:"next"`
}

// connectorAuth is how a connector signs a connection in, read from its
// connectionParameters (and connectionParameterSets, for multi-auth connectors).
type connectorAuth struct {
	oauth    bool
	set      string   // the parameter set to create with ("" for none)
	requires []string // display names of values a person must type in (keys, servers, ...)
}

type connParamDef struct {
	Type         string `json:"type"`
	UIDefinition struct {
		DisplayName string `json:"displayName"`
		Constraints struct {
			Required string `json:"required"`
			Hidden   string `json:"hidden"`
		} `json:"constraints"`
	} `json:"uiDefinition"`
}

// classifyParams reads one set of connection parameters: OAuth or not, and the
// required values other than OAuth.
func classifyParams(params map[string]connParamDef) connectorAuth {
	var a connectorAuth
	for name, p := range params {
		switch {
		case p.Type == "oauthSetting":
			a.oauth = true
		case p.UIDefinition.Constraints.Required == "true" && p.UIDefinition.Constraints.Hidden != "true":
			label := p.UIDefinition.DisplayName
			if label == "" {
				label = name
			}
			a.requires = append(a.requires, clipText(label, 60))
		}
	}
	sort.Strings(a.requires)
	return a
}

// connectorAuthOf classifies a connector: a parameter set that signs in with OAuth
// alone wins; otherwise what a person would have to type is listed.
func connectorAuthOf(c *powerautomate.Connector) (connectorAuth, error) {
	bad := &ToolError{Message: "this connector's connection parameters could not be read",
		Next: "create the connection in Power Automate (Data → Connections → New connection)"}
	if sets := c.ConnectionParameterSets; len(sets) > 0 && string(sets) != "null" {
		var ps struct {
			Values []struct {
				Name       string                  `json:"name"`
				Parameters map[string]connParamDef `json:"parameters"`
			} `json:"values"`
		}
		if json.Unmarshal(sets, &ps) != nil {
			return connectorAuth{}, bad
		}
		var all connectorAuth
		for _, set := range ps.Values {
			a := classifyParams(set.Parameters)
			if a.oauth && len(a.requires) == 0 && powerautomate.ValidateConnectionName(set.Name) == nil {
				a.set = set.Name
				return a, nil
			}
			all.requires = append(all.requires, a.requires...)
		}
		if len(all.requires) == 0 {
			all.requires = []string{"values this server cannot supply"}
		}
		return all, nil
	}
	params := map[string]connParamDef{}
	if p := c.ConnectionParameters; len(p) > 0 && string(p) != "null" && json.Unmarshal(p, &params) != nil {
		return connectorAuth{}, bad
	}
	return classifyParams(params), nil
}

// newConnectionName is a client-chosen name, 32 lower-case hex digits, as the
// maker portal and Microsoft's Terraform provider make them.
func newConnectionName() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func createLiveConnection() *Tool {
	return Define(Tool{
		Name:  "create_live_connection",
		Title: "Create a connection, or sign one in again",
		Description: "Creates a connection to a connector in an environment (no connectionName), or signs an existing one in " +
			"again (connectionName, e.g. one test_live_connection found expired). The person signs in to the connector's " +
			"service, never the agent: when your client supports URL elicitation it is asked to open the sign-in page " +
			"(signIn: elicited); otherwise signInLink comes back for you to show the person (signIn: link). Connectors that " +
			"need no sign-in are connected at once. Connectors that need keys or account details (an API key, a server " +
			"name, a gateway) are refused with what they need: create those in Power Automate. After the person signed " +
			"in, call again with the returned connectionName: status says connected (with a connectionReference for " +
			"update_live_flow) or still signInRequired (with a fresh link). Uses the Power Apps API with the default " +
			"sign-in (no extra consent).",
		Kind:  Write,
		Group: Live,
		Input: inputSchema(environmentNameArg, connectorNameArg, connectionNameArg.optional(),
			optionalArg("displayName", `{"type":"string","minLength":1,"maxLength":100,"description":"A display name for a new connection (default: the connector's)."}`)),
		Output: json.RawMessage(`{"type":"object","additionalProperties":false,
"required":["environmentName","connectorName","connectionName","created","status","signIn","next"],"properties":{
"environmentName":{"type":"string"},"connectorName":{"type":"string"},
"connectionName":{"type":"string","description":"Pass it back to check the sign-in, or in connection references."},
"created":{"type":"boolean","description":"This call created the connection."},
"status":{"type":"string","enum":["connected","signInRequired"]},
"signIn":{"type":"string","enum":["notNeeded","elicited","link"],"description":"elicited: your client was asked to open the sign-in page; link: show signInLink to the person."},
"signInLink":{"type":"string","description":"The connector's sign-in page, for the person (not the agent) to open."},
"connectionReference":{"type":"object","additionalProperties":false,"required":["connectionName","source","id"],"properties":{
"connectionName":{"type":"string"},"source":{"type":"string"},"id":{"type":"string"}}},
"next":{"type":"string"}}}`),
	}, func(ctx context.Context, env *Env, in createConnectionIn) (createConnectionOut, error) {
		api, err := env.PA.GetConnector(ctx, in.EnvironmentName, in.ConnectorName)
		if err != nil {
			return createConnectionOut{}, connectionsError(err, "connector")
		}
		auth, err := connectorAuthOf(api)
		if err != nil {
			return createConnectionOut{}, err
		}
		if len(auth.requires) > 0 {
			return createConnectionOut{}, &ToolError{
				Message: "this connector needs keys or account details typed in (" + strings.Join(auth.requires, ", ") +
					"), which this server never asks for or handles",
				Next: "create the connection in Power Automate (Data → Connections → New connection → " + clipText(api.DisplayName, 60) +
					"), then find it with list_live_connections"}
		}
		out := createConnectionOut{EnvironmentName: in.EnvironmentName, ConnectorName: in.ConnectorName, ConnectionName: in.ConnectionName}
		var conn *powerautomate.Connection
		if in.ConnectionName != "" {
			if conn, err = env.PA.GetConnection(ctx, in.EnvironmentName, in.ConnectorName, in.ConnectionName); err != nil {
				return createConnectionOut{}, connectionsError(err, "connection")
			}
		} else {
			out.ConnectionName, out.Created = newConnectionName(), true
			conn, err = env.PA.CreateConnection(ctx, powerautomate.CreateConnectionRequest{Environment: in.EnvironmentName,
				Connector: in.ConnectorName, Name: out.ConnectionName, DisplayName: in.DisplayName, ParameterSet: auth.set})
			if err != nil {
				return createConnectionOut{}, createConnectionError(err)
			}
		}
		if conn.Connected() {
			out.Status, out.SignIn = "connected", "notNeeded"
			out.ConnectionReferences = &connectionReference{ConnectionName: out.ConnectionName, Source: "Embedded",
				ID: "/providers/Microsoft.PowerApps/apis/" + in.ConnectorName}
			out.Next = "use connectionReference in update_live_flow's connectionReferences; test_live_connection checks it end to end"
			return out, nil
		}
		if !auth.oauth {
			return createConnectionOut{}, &ToolError{Message: "the connection is not connected and its connector has no sign-in page to send the person to",
				Next: "fix it in Power Automate (Data → Connections → the connection → Fix connection)"}
		}
		returnURL := env.SignInReturnURL
		if returnURL == "" {
			returnURL = env.DashboardURL
		}
		link, err := env.PA.GetConsentLink(ctx, in.EnvironmentName, in.ConnectorName, out.ConnectionName, returnURL)
		if err != nil {
			if errors.Is(err, powerautomate.ErrNoConsentLink) {
				return createConnectionOut{}, &ToolError{Message: "Power Apps gave no sign-in page for this connection",
					Next: "sign it in in Power Automate (Data → Connections → the connection → Fix connection)"}
			}
			return createConnectionOut{}, connectionsError(err, "connection")
		}
		out.Status = "signInRequired"
		msg := "Sign in to " + clipText(api.DisplayName, 60) + " to connect it for FlowStudio (connection " + out.ConnectionName + ")."
		if rpc.ElicitURL(ctx, msg, link, out.ConnectionName) {
			out.SignIn = "elicited"
			out.Next = "your client was asked to open the sign-in page for the person; once they have signed in, call " +
				"create_live_connection again with this connectionName to confirm"
		} else {
			out.SignIn, out.SignInLink = "link", link
			out.Next = "show signInLink to the person and ask them to sign in there (never open or follow it yourself); then " +
				"call create_live_connection again with this connectionName to confirm"
		}
		return out, nil
	})
}

// createConnectionError maps a refused create: the connector's own refusals first.
func createConnectionError(err error) error {
	var e *powerautomate.APIError
	if errors.As(err, &e) && e.Status == http.StatusBadRequest && strings.Contains(strings.ToLower(e.Code), "connectionparameter") {
		return &ToolError{Status: e.Status, Code: e.Code,
			Message: "Power Apps refused the connection for missing connection parameters: this connector needs values typed in",
			Next:    "create the connection in Power Automate (Data → Connections → New connection)"}
	}
	if errors.As(err, &e) && e.Status == http.StatusConflict {
		return &ToolError{Status: e.Status, Code: e.Code, Message: "a connection with this name exists already",
			Next: "call again without connectionName to create a new one"}
	}
	return connectionsError(err, "connector")
}
