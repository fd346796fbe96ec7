package sim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
)

// connectorInfo is a seeded connector: its swagger (with {{host}} and
// {{basePath}} filled per request) and fake runtime operations by operationId.
type connectorInfo struct {
	name, display, tier, description string
	swagger                          string
	ops                              map[string]runtimeOp
	// params is the connector's connectionParameters (JSON); "" means one OAuth
	// sign-in, as most connectors have. "{}" needs nothing.
	params string
}

// oauthParams is the connectionParameters of a connector signed in with OAuth.
const oauthParams = `{"token":{"type":"oauthSetting","oAuthSettings":{"identityProvider":"oauth2","clientId":"sim","scopes":[],` +
	`"redirectMode":"GlobalPerConnector","redirectUrl":"https://global.consent.azure-apim.net/redirect"},` +
	`"uiDefinition":{"displayName":"Sign in","constraints":{"required":"true"}}}}`

// connectionParams is the connector's connectionParameters.
func (c *connectorInfo) connectionParams() json.RawMessage {
	if c.params == "" {
		return json.RawMessage(oauthParams)
	}
	return json.RawMessage(c.params)
}

// signsInWithOAuth: the connector has an oauthSetting parameter.
func (c *connectorInfo) signsInWithOAuth() bool {
	return strings.Contains(string(c.connectionParams()), `"oauthSetting"`)
}

// requiredValues are the connection parameters other than OAuth that must be given.
func (c *connectorInfo) requiredValues() []string {
	var ps map[string]struct {
		Type         string `json:"type"`
		UIDefinition struct {
			Constraints struct {
				Required string `json:"required"`
			} `json:"constraints"`
		} `json:"uiDefinition"`
	}
	json.Unmarshal(c.connectionParams(), &ps)
	var out []string
	for name, p := range ps {
		if p.Type != "oauthSetting" && p.UIDefinition.Constraints.Required == "true" {
			out = append(out, name)
		}
	}
	return out
}

// runtimeOp answers one operation on the fake connector runtime.
type runtimeOp func(org string, params map[string]string) (status int, body any)

func (c *connectorInfo) api() string { return strings.TrimPrefix(c.name, "shared_") }

func findConnector(name string) *connectorInfo {
	for i := range connectorCatalog {
		if strings.EqualFold(connectorCatalog[i].name, name) {
			return &connectorCatalog[i]
		}
	}
	return nil
}

const (
	connectionIDParam = `{"name":"connectionId","in":"path","required":true,"type":"string","x-ms-visibility":"internal"}`
	swaggerHead       = `"swagger":"2.0","host":"{{host}}","basePath":"{{basePath}}","schemes":["{{scheme}}"],"consumes":["application/json"],"produces":["application/json"]`
)

var connectorCatalog = []connectorInfo{
	{
		name: "shared_contosotasks", display: "Contoso Tasks", tier: "Standard", description: "Manage Contoso projects and tasks.",
		swagger: `{` + swaggerHead + `,"info":{"title":"Contoso Tasks","version":"1.0","description":"Manage Contoso projects and tasks."},
			"paths":{
			"/{connectionId}/projects":{"get":{"operationId":"ListProjects","summary":"List projects","description":"Returns the projects visible to the connection.",
				"x-ms-visibility":"internal","parameters":[` + connectionIDParam + `],
				"responses":{"200":{"description":"OK","schema":{"$ref":"#/definitions/ProjectList"}},"default":{"description":"Operation Failed."}}}},
			"/{connectionId}/projects/{projectId}/tasks":{"post":{"operationId":"CreateTask","summary":"Create a task","description":"Creates a task in a project.",
				"x-ms-visibility":"important","parameters":[` + connectionIDParam + `,
				{"name":"projectId","in":"path","required":true,"type":"string","x-ms-summary":"Project","description":"Pick a project",
				 "x-ms-dynamic-values":{"operationId":"ListProjects","parameters":{},"value-collection":"value","value-path":"id","value-title":"name"},
				 "x-ms-dynamic-list":{"operationId":"ListProjects","parameters":{},"itemsPath":"value","itemValuePath":"id","itemTitlePath":"name"}},
				{"name":"body","in":"body","required":true,"schema":{"type":"object",
				 "x-ms-dynamic-schema":{"operationId":"GetTaskSchema","parameters":{"projectId":{"parameter":"projectId"}},"value-path":"schema"}}}],
				"responses":{"200":{"description":"OK","schema":{"$ref":"#/definitions/Task"}},"default":{"description":"Operation Failed."}}}},
			"/{connectionId}/projects/{projectId}/taskschema":{"get":{"operationId":"GetTaskSchema","summary":"Get task fields","x-ms-visibility":"internal",
				"parameters":[` + connectionIDParam + `,{"name":"projectId","in":"path","required":true,"type":"string"}],
				"responses":{"200":{"description":"OK","schema":{"type":"object"}}}}}},
			"definitions":{
			"ProjectList":{"type":"object","properties":{"value":{"type":"array","items":{"type":"object","properties":{"id":{"type":"string"},"name":{"type":"string"}}}}}},
			"NewTask":{"type":"object","required":["title"],"properties":{"title":{"type":"string","x-ms-summary":"Title"},"dueDate":{"type":"string","format":"date-time","x-ms-summary":"Due date"}}},
			"Task":{"type":"object","properties":{"id":{"type":"string"},"title":{"type":"string"}}}},
			"x-ms-capabilities":{"testConnection":{"operationId":"ListProjects","parameters":{}}},
			"x-ms-connector-metadata":[{"propertyName":"Website","propertyValue":"https://contoso.example"}]}`,
		ops: map[string]runtimeOp{
			"ListProjects": func(string, map[string]string) (int, any) {
				return 200, map[string]any{"value": []map[string]string{{"id": "p-001", "name": "Website relaunch"}, {"id": "p-002", "name": "Q3 budget"}}}
			},
			"GetTaskSchema": func(_ string, p map[string]string) (int, any) {
				return 200, map[string]any{"name": p["projectId"], "schema": map[string]any{"type": "object", "required": []string{"priority"},
					"properties": map[string]any{
						"priority": map[string]any{"type": "integer", "x-ms-summary": "Priority", "enum": []int{1, 2, 3}},
						"labels":   map[string]any{"type": "array", "items": map[string]string{"type": "string"}, "x-ms-summary": "Labels"}}}}
			},
			"CreateTask": func(_ string, p map[string]string) (int, any) {
				return 200, map[string]string{"id": "t-1001", "projectId": p["projectId"]}
			},
		},
	},
	{
		name: "shared_sharepointonline", display: "SharePoint", tier: "Standard", description: "SharePoint sites, lists and libraries.",
		swagger: `{` + swaggerHead + `,"info":{"title":"SharePoint","version":"1.0"},"paths":{
			"/{connectionId}/datasets":{"get":{"operationId":"GetDataSets","summary":"Get sites","x-ms-visibility":"internal","parameters":[` + connectionIDParam + `],
				"responses":{"200":{"description":"OK"}}}},
			"/{connectionId}/datasets/{dataset}/alltables":{"get":{"operationId":"GetAllTables","summary":"Get lists and libraries","parameters":[` + connectionIDParam + `,
				{"name":"dataset","in":"path","required":true,"type":"string","x-ms-summary":"Site Address",
				 "x-ms-dynamic-values":{"operationId":"GetDataSets","parameters":{},"value-collection":"value","value-path":"Name","value-title":"DisplayName"}}],
				"responses":{"200":{"description":"OK"}}}},
			"/{connectionId}/datasets/{dataset}/tables/{table}/items":{"get":{"operationId":"GetItems","summary":"Get items","parameters":[` + connectionIDParam + `,
				{"name":"dataset","in":"path","required":true,"type":"string","x-ms-summary":"Site Address",
				 "x-ms-dynamic-values":{"operationId":"GetDataSets","parameters":{},"value-collection":"value","value-path":"Name","value-title":"DisplayName"}},
				{"name":"table","in":"path","required":true,"type":"string","x-ms-summary":"List Name",
				 "x-ms-dynamic-values":{"operationId":"GetAllTables","parameters":{"dataset":{"parameter":"dataset"}},"value-collection":"value","value-path":"Name","value-title":"DisplayName"}},
				{"name":"$top","in":"query","required":false,"type":"integer","x-ms-summary":"Top Count"}],
				"responses":{"200":{"description":"OK"}}}}},
			"x-ms-capabilities":{"testConnection":{"operationId":"GetDataSets","parameters":{}}}}`,
		ops: map[string]runtimeOp{
			"GetDataSets": func(org string, _ map[string]string) (int, any) {
				return 200, map[string]any{"value": []map[string]string{
					{"Name": "https://" + org + ".sharepoint.com/sites/sales", "DisplayName": "Sales"},
					{"Name": "https://" + org + ".sharepoint.com/sites/finance", "DisplayName": "Finance"}}}
			},
			"GetAllTables": func(string, map[string]string) (int, any) {
				return 200, map[string]any{"value": []map[string]string{
					{"Name": "5f1c0e47-0b7a-4b54-9a3e-3f3c2d1e0a11", "DisplayName": "Orders"},
					{"Name": "a2b7c9d1-4e6f-4a8b-9c0d-1e2f3a4b5c6d", "DisplayName": "Invoices"}}}
			},
			"GetItems": func(string, map[string]string) (int, any) {
				return 200, map[string]any{"value": []map[string]any{{"ID": 1, "Title": "Order 1"}, {"ID": 2, "Title": "Order 2"}}}
			},
		},
	},
	{
		name: "shared_teams", display: "Microsoft Teams", tier: "Standard", description: "Chats, channels and meetings.",
		swagger: `{` + swaggerHead + `,"info":{"title":"Microsoft Teams","version":"1.0"},"paths":{
			"/{connectionId}/beta/me/joinedTeams":{"get":{"operationId":"GetAllTeams","summary":"List teams","x-ms-visibility":"internal","parameters":[` + connectionIDParam + `],
				"responses":{"200":{"description":"OK"}}}},
			"/{connectionId}/beta/groups/{groupId}/channels":{"get":{"operationId":"GetChannelsForGroup","summary":"List channels","parameters":[` + connectionIDParam + `,
				{"name":"groupId","in":"path","required":true,"type":"string","x-ms-summary":"Team",
				 "x-ms-dynamic-values":{"operationId":"GetAllTeams","parameters":{},"value-collection":"value","value-path":"id","value-title":"displayName"}}],
				"responses":{"200":{"description":"OK"}}}}},
			"x-ms-capabilities":{"testConnection":{"operationId":"GetAllTeams","parameters":{}}}}`,
		ops: map[string]runtimeOp{
			"GetAllTeams": func(string, map[string]string) (int, any) {
				return 200, map[string]any{"value": []map[string]string{{"id": "team-ops", "displayName": "Operations"}, {"id": "team-support", "displayName": "Support"}}}
			},
			"GetChannelsForGroup": func(string, map[string]string) (int, any) {
				return 200, map[string]any{"value": []map[string]string{{"id": "19:general", "displayName": "General"}}}
			},
		},
	},
	{name: "shared_office365", display: "Office 365 Outlook", tier: "Standard", description: "Mail, calendar and contacts.",
		swagger: simpleSwagger("Office 365 Outlook", "/{connectionId}/v2/Mail", "post", "SendEmailV2", "Send an email (V2)")},
	{name: "shared_approvals", display: "Approvals", tier: "Standard", description: "Approval workflows.",
		swagger: simpleSwagger("Approvals", "/{connectionId}/approvalTypes/{approvalType}/subscriptions", "post", "StartAndWaitForAnApproval", "Start and wait for an approval")},
	{name: "shared_commondataserviceforapps", display: "Microsoft Dataverse", tier: "Premium", description: "Dataverse tables and rows.",
		swagger: simpleSwagger("Microsoft Dataverse", "/{connectionId}/api/data/v9.1/{entityName}", "get", "ListRecords", "List rows")},
	{name: "shared_twitter", display: "Twitter", tier: "Standard", description: "Tweets.",
		swagger: simpleSwagger("Twitter", "/{connectionId}/posttweet", "post", "Tweet", "Post a tweet")},
	// A connector signed in with an API key and a server name: create_live_connection refuses it.
	{name: "shared_contosoinventory", display: "Contoso Inventory", tier: "Premium", description: "Stock levels (API key).",
		swagger: simpleSwagger("Contoso Inventory", "/{connectionId}/stock", "get", "GetStock", "Get stock levels"),
		params: `{"api_key":{"type":"securestring","uiDefinition":{"displayName":"API Key","description":"The key from the Contoso portal",` +
			`"constraints":{"required":"true"}}},"server":{"type":"string","uiDefinition":{"displayName":"Server","constraints":{"required":"true"}}}}`},
	// A connector that needs no sign-in at all.
	{name: "shared_contosoholidays", display: "Contoso Holidays", tier: "Standard", description: "Public holidays (no sign-in).",
		swagger: simpleSwagger("Contoso Holidays", "/{connectionId}/holidays", "get", "ListHolidays", "List public holidays"), params: `{}`},
}

func simpleSwagger(title, path, method, opID, summary string) string {
	return `{` + swaggerHead + `,"info":{"title":"` + title + `","version":"1.0"},"paths":{"` + path + `":{"` + method + `":{"operationId":"` + opID +
		`","summary":"` + summary + `","parameters":[` + connectionIDParam + `],"responses":{"200":{"description":"OK"}}}}}}`
}

// swaggerFor fills the runtime location into a connector's swagger.
func (c *connectorInfo) swaggerFor(base string) json.RawMessage {
	u, _ := url.Parse(base + "/apihub/apim/" + c.api())
	sw := strings.NewReplacer("{{host}}", u.Host, "{{basePath}}", u.Path, "{{scheme}}", u.Scheme).Replace(c.swagger)
	var buf bytes.Buffer
	if err := json.Compact(&buf, []byte(sw)); err != nil {
		panic("sim: swagger of " + c.name + ": " + err.Error())
	}
	return buf.Bytes()
}

// operation finds an operation of the swagger by method and escaped
// concrete path (after the connection segment) and returns its id and
// unescaped path parameters.
func (c *connectorInfo) operation(method, path string) (string, map[string]string) {
	var sw struct {
		Paths map[string]map[string]struct {
			OperationID string `json:"operationId"`
		} `json:"paths"`
	}
	json.Unmarshal([]byte(strings.NewReplacer("{{host}}", "", "{{basePath}}", "", "{{scheme}}", "").Replace(c.swagger)), &sw)
	got := strings.Split(strings.Trim(path, "/"), "/")
	for tmpl, ops := range sw.Paths {
		op, ok := ops[strings.ToLower(method)]
		if !ok {
			continue
		}
		want := strings.Split(strings.Trim(strings.TrimPrefix(tmpl, "/{connectionId}"), "/"), "/")
		if len(want) != len(got) {
			continue
		}
		params := map[string]string{}
		for i, seg := range want {
			if strings.HasPrefix(seg, "{") {
				v, err := url.PathUnescape(got[i])
				if err != nil {
					params = nil
					break
				}
				params[strings.Trim(seg, "{}")] = v
			} else if !strings.EqualFold(seg, got[i]) {
				params = nil
				break
			}
		}
		if params != nil {
			return op.OperationID, params
		}
	}
	return "", nil
}

// connectorOutput is the outputs content of a connector action in a run.
func connectorOutput(operationID string) []byte {
	switch operationID {
	case "GetItems":
		return bigItemsOutput()
	case "GetItem":
		return []byte(`{"statusCode":200,"headers":{"Content-Type":"application/json"},"body":{"ID":42,"Title":"INV-1042","Lines":[{"sku":"A-1","qty":4},{"sku":"B-7","qty":1}]}}`)
	case "CreateTask":
		return []byte(`{"statusCode":200,"headers":{"Content-Type":"application/json"},"body":{"id":"t-1001","title":"Follow up"}}`)
	case "StartAndWaitForAnApproval":
		return []byte(`{"statusCode":200,"headers":{"Content-Type":"application/json"},"body":{"outcome":"Approve","responses":[{"responder":{"email":"manager@contoso.com"},"approverResponse":"Approve"}]}}`)
	}
	return []byte(`{"statusCode":200,"headers":{"Content-Type":"application/json"},"body":{}}`)
}

var bigItems struct {
	once sync.Once
	data []byte
}

// bigItemsOutput is a ~300 KB SharePoint GetItems output, shared by every
// run that has one, for truncation tests.
func bigItemsOutput() []byte {
	bigItems.once.Do(func() {
		rows := make([]map[string]any, 1500)
		regions := []string{"North", "South", "East", "West"}
		for i := range rows {
			rows[i] = map[string]any{"ID": i + 1, "Title": fmt.Sprintf("Order %05d", i+1), "Region": regions[i%4],
				"Amount": float64(100+(i*37)%900) + 0.5, "Customer": fmt.Sprintf("Customer %03d", i%250),
				"Notes": "Delivered on time; invoice sent; follow-up scheduled with account manager."}
		}
		bigItems.data, _ = json.Marshal(map[string]any{"statusCode": 200, "headers": map[string]string{"Content-Type": "application/json"},
			"body": map[string]any{"value": rows}})
	})
	return bigItems.data
}

// apihubRoutes serves connector runtimes: /apim/{api}/{connection}/{path...}.
func (s *Sim) apihubRoutes() http.Handler {
	mux := newMux()
	mux.HandleFunc("/apim/{api}/{conn}/{rest...}", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		c := callerOf(r)
		info := findConnector("shared_" + r.PathValue("api"))
		conn := s.findConnection(c, info, r.PathValue("conn"))
		if info == nil || conn == nil {
			writeJSON(w, http.StatusNotFound, map[string]any{"status": 404, "message": "The connection was not found."})
			return
		}
		// Match on the original escaped path: the routing copy is lower-cased
		// and decoded, and parameter values may contain "/".
		segs := strings.SplitN(infoOf(r).escapedPath, "/", 6) // "", apihub, apim, api, conn, rest
		rest := ""
		if len(segs) == 6 {
			rest = segs[5]
		}
		opID, params := info.operation(r.Method, rest)
		if opID == "" {
			writeJSON(w, http.StatusNotFound, map[string]any{"status": 404, "message": "Resource not found."})
			return
		}
		for k, v := range r.URL.Query() {
			params[k] = v[0]
		}
		status, body := s.invoke(info, conn, opID, params, infoOf(r).base)
		writeJSON(w, status, body)
	})
	return mux
}

// findConnection finds a connection of the caller's tenant to a connector.
func (s *Sim) findConnection(c *caller, info *connectorInfo, name string) *connection {
	t := s.tenants[c.tenantID]
	if info == nil || t == nil {
		return nil
	}
	for _, e := range t.envs {
		for _, conn := range e.connections {
			if strings.EqualFold(conn.name, name) && conn.connector == info.name {
				return conn
			}
		}
	}
	return nil
}

// invoke runs a fake operation; a broken connection fails as the APIM
// token exchange does.
func (s *Sim) invoke(info *connectorInfo, conn *connection, opID string, params map[string]string, base string) (int, any) {
	if conn.status != "Connected" {
		return http.StatusUnauthorized, map[string]any{"status": 401,
			"source":  base + "/apihub/tokens/" + info.api() + "/" + conn.name + "/exchange",
			"message": "Error from token exchange: Bad authorization token. The access token is missing or invalid."}
	}
	op := info.ops[opID]
	if op == nil {
		return http.StatusOK, map[string]any{}
	}
	return op(strings.ToLower(conn.env.tenant.name), params)
}
