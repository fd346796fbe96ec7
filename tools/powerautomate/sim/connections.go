package sim

import (
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/flowstudio/mcp/tools/powerautomate"
)

const paPrefix = "/providers/microsoft.powerapps"

// powerAppsRoutes serves api.powerapps.com: connections, connectors and apps.
func (s *Sim) powerAppsRoutes() http.Handler {
	mux := newMux()
	mux.HandleFunc("GET "+paPrefix+"/connections", s.locked(s.listConnections))
	mux.HandleFunc("GET "+paPrefix+"/apis/{connector}/connections", s.locked(s.listConnections))
	mux.HandleFunc("GET "+paPrefix+"/apis/{connector}/connections/{conn}", s.locked(s.getConnection))
	mux.HandleFunc("GET "+paPrefix+"/apis/{connector}", s.locked(s.getConnector))
	mux.HandleFunc("GET "+paPrefix+"/apps", s.locked(s.listApps))
	mux.HandleFunc("PUT "+paPrefix+"/apis/{connector}/connections/{conn}", s.locked(s.putConnection))
	mux.HandleFunc("POST "+paPrefix+"/apis/{connector}/connections/{conn}/getconsentlink", s.locked(s.getConsentLink))
	return mux
}

var envFilterRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`(?i)environment\s+eq\s+'([^']+)'`) }) // compiled on first use: serve with a remote simulator never needs it

// filteredEnv resolves the mandatory $filter=environment eq '{env}'.
func (s *Sim) filteredEnv(w http.ResponseWriter, r *http.Request) *environment {
	m := envFilterRE().FindStringSubmatch(r.URL.Query().Get("$filter"))
	if m == nil {
		writeError(w, http.StatusBadRequest, "InvalidFilter", "The request needs $filter=environment eq '<environment name>'.")
		return nil
	}
	env := s.findEnv(callerOf(r), m[1])
	if env == nil {
		writeError(w, http.StatusForbidden, "EnvironmentAccessDenied", "Access to the environment '"+m[1]+"' is denied.")
	}
	return env
}

func (s *Sim) listConnections(w http.ResponseWriter, r *http.Request) {
	env := s.filteredEnv(w, r)
	if env == nil {
		return
	}
	var conns []*connection
	for _, c := range env.connections {
		if r.PathValue("connector") == "" || strings.EqualFold(c.connector, r.PathValue("connector")) {
			conns = append(conns, c)
		}
	}
	sort.Slice(conns, func(i, j int) bool { return conns[i].name < conns[j].name })
	writePage(w, r, conns, func(c *connection) string { return c.name }, 100, "@odata.nextLink", func(c *connection) any { return s.connectionJSON(c) })
}

func (s *Sim) getConnection(w http.ResponseWriter, r *http.Request) {
	env := s.filteredEnv(w, r)
	if env == nil {
		return
	}
	for _, c := range env.connections {
		if strings.EqualFold(c.name, r.PathValue("conn")) && strings.EqualFold(c.connector, r.PathValue("connector")) {
			writeJSON(w, http.StatusOK, s.connectionJSON(c))
			return
		}
	}
	writeError(w, http.StatusNotFound, "ConnectionNotFound", "The connection '"+r.PathValue("conn")+"' was not found.")
}

func (s *Sim) connectionJSON(c *connection) map[string]any {
	apiID := "/providers/Microsoft.PowerApps/apis/" + c.connector
	status := map[string]any{"status": c.status}
	if c.statusError != nil {
		status["target"], status["error"] = "token", c.statusError
	}
	email := s.users[c.creator]
	props := map[string]any{
		"apiId": apiID, "displayName": c.displayName, "iconUri": "https://connectoricons.example/" + c.connector + "/icon.png",
		"statuses": []any{status}, "connectionParameters": map[string]any{},
		"createdBy": map[string]string{"id": c.creator, "displayName": strings.Split(email, "@")[0], "email": email, "type": "User",
			"tenantId": c.env.tenant.id, "userPrincipalName": email},
		"createdTime": c.created.Format(time.RFC3339Nano), "lastModifiedTime": c.modified.Format(time.RFC3339Nano),
		"environment": map[string]string{"id": "/providers/Microsoft.PowerApps/environments/" + c.env.name, "name": c.env.name},
		"accountName": email, "allowSharing": false,
	}
	if !c.expires.IsZero() {
		props["expirationTime"] = c.expires.Format(time.RFC3339Nano)
	}
	return map[string]any{"name": c.name, "id": apiID + "/connections/" + c.name, "type": "Microsoft.PowerApps/apis/connections", "properties": props}
}

func (s *Sim) getConnector(w http.ResponseWriter, r *http.Request) {
	if s.filteredEnv(w, r) == nil {
		return
	}
	info := findConnector(r.PathValue("connector"))
	if info == nil {
		writeError(w, http.StatusNotFound, "ApiNotFound", "The API '"+r.PathValue("connector")+"' could not be found.")
		return
	}
	base := infoOf(r).base
	runtime := base + "/apihub/apim/" + info.api()
	writeJSON(w, http.StatusOK, map[string]any{
		"name": info.name, "id": "/providers/Microsoft.PowerApps/apis/" + info.name, "type": "Microsoft.PowerApps/apis",
		"properties": map[string]any{
			"displayName": info.display, "description": info.description, "iconUri": "https://connectoricons.example/" + info.name + "/icon.png",
			"iconBrandColor": "#2370ec", "apiEnvironment": "Shared", "isCustomApi": false, "tier": info.tier, "publisher": "Microsoft",
			"capabilities": []string{"actions"}, "runtimeUrls": []string{runtime}, "primaryRuntimeUrl": runtime,
			"connectionParameters": info.connectionParams(),
			"metadata":             map[string]string{"source": "marketplace", "brandColor": "#2370ec"},
			"swagger":              info.swaggerFor(base), "createdTime": "2024-01-01T00:00:00Z", "changedTime": "2024-06-01T00:00:00Z",
		},
	})
}

// bapRoutes serves api.bap.microsoft.com environments (user scope).
func (s *Sim) bapRoutes() http.Handler {
	mux := newMux()
	mux.HandleFunc("GET /providers/microsoft.businessappplatform/environments", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		var items []any
		if t := s.tenants[callerOf(r).tenantID]; t != nil {
			for _, e := range t.envs {
				env := environmentJSON(e)
				env["id"] = "/providers/Microsoft.BusinessAppPlatform/environments/" + e.name
				env["type"] = "Microsoft.BusinessAppPlatform/environments"
				if e.org != "" {
					env["properties"].(map[string]any)["linkedEnvironmentMetadata"] = linkedEnvironmentMetadata(e, infoOf(r).base)
				}
				items = append(items, env)
			}
		}
		collection(w, items, "nextLink", "")
	})
	mux.HandleFunc("GET /providers/microsoft.businessappplatform/environments/{env}", s.locked(func(w http.ResponseWriter, r *http.Request) {
		e := s.findEnv(callerOf(r), r.PathValue("env"))
		if e == nil {
			writeError(w, http.StatusNotFound, "EnvironmentNotFound", "The environment '"+r.PathValue("env")+"' could not be found in the tenant.")
			return
		}
		env := environmentJSON(e)
		env["id"] = "/providers/Microsoft.BusinessAppPlatform/environments/" + e.name
		env["type"] = "Microsoft.BusinessAppPlatform/environments"
		if e.org != "" {
			env["properties"].(map[string]any)["linkedEnvironmentMetadata"] = linkedEnvironmentMetadata(e, infoOf(r).base)
		}
		writeJSON(w, http.StatusOK, env)
	}))
	return mux
}

// ppapiRoutes serves {envhost}.environment.api.powerplatform.com: the
// designer's dynamic-values and dynamic-schema resolution.
func (s *Sim) ppapiRoutes() http.Handler {
	mux := newMux()
	conn := "/{envhost}/powerautomate/apis/{connector}/connections/{conn}"
	mux.HandleFunc("POST "+conn+"/listenum", func(w http.ResponseWriter, r *http.Request) { s.dynamicCall(w, r, false) })
	mux.HandleFunc("POST "+conn+"/listdynamicproperties", func(w http.ResponseWriter, r *http.Request) { s.dynamicCall(w, r, true) })
	return mux
}

func (s *Sim) dynamicCall(w http.ResponseWriter, r *http.Request, properties bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := callerOf(r)
	var env *environment
	for _, e := range s.envs {
		if label, _ := powerautomate.EnvironmentHostLabel(e.name); label == r.PathValue("envhost") {
			env = e
		}
	}
	if env == nil || env.tenant.id != c.tenantID {
		writeError(w, http.StatusNotFound, "ServiceToServiceEnvironmentNotFound", "The environment could not be found in the tenant '"+c.tenantID+"'.")
		return
	}
	info := findConnector(r.PathValue("connector"))
	conn := s.findConnection(c, info, r.PathValue("conn"))
	if conn == nil || conn.env != env {
		writeError(w, http.StatusNotFound, "ConnectionNotFound", "The connection '"+r.PathValue("conn")+"' was not found.")
		return
	}
	var body struct {
		Definition *powerautomate.DynamicDefinition `json:"dynamicInvocationDefinition"`
		Parameters map[string]json.RawMessage       `json:"parameters"`
	}
	raw, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if json.Unmarshal(raw, &body) != nil || body.Definition == nil {
		writeError(w, http.StatusBadRequest, "InvalidRequestContent", "The request needs a dynamicInvocationDefinition.")
		return
	}
	def := body.Definition.Unwrapped()
	args := map[string]string{}
	for name, v := range def.Parameters {
		if val, ok := dynamicArgument(v, body.Parameters); ok {
			args[name] = val
		}
	}
	status, result := s.invoke(info, conn, def.OperationID, args, infoOf(r).base)
	if status >= 300 {
		writeError(w, http.StatusBadRequest, "DynamicOperationRequestClientFailure", "The dynamic operation request to API '"+info.api()+
			"' operation '"+def.OperationID+"' failed with status code '"+http.StatusText(status)+"'.")
		return
	}
	var doc any
	rawResult, _ := json.Marshal(result)
	json.Unmarshal(rawResult, &doc)
	if properties {
		path := firstNonEmpty(def.ItemValuePath, def.ValuePath)
		if path == "" {
			writeJSON(w, http.StatusOK, map[string]any{"type": "object", "properties": doc})
			return
		}
		writeJSON(w, http.StatusOK, powerautomate.LookupPath(doc, path))
		return
	}
	items, _ := powerautomate.LookupPath(doc, firstNonEmpty(def.ItemsPath, def.ValueCollection, "value")).([]any)
	values := []any{}
	for _, item := range items {
		v := powerautomate.LookupPath(item, firstNonEmpty(def.ItemValuePath, def.ValuePath))
		if v == nil {
			continue
		}
		title := powerautomate.LookupPath(item, firstNonEmpty(def.ItemTitlePath, def.ValueTitle))
		if title == nil {
			title = v
		}
		values = append(values, map[string]any{"value": v, "displayName": title})
	}
	writeJSON(w, http.StatusOK, map[string]any{"value": values})
}

// dynamicArgument resolves one parameter of a dynamic definition: a
// literal, {"value": x}, or {"parameter"|"parameterReference": name}.
func dynamicArgument(v json.RawMessage, current map[string]json.RawMessage) (string, bool) {
	var ref struct {
		Value     json.RawMessage `json:"value"`
		Parameter string          `json:"parameter"`
		Reference string          `json:"parameterReference"`
	}
	if json.Unmarshal(v, &ref) == nil {
		switch {
		case ref.Value != nil:
			v = ref.Value
		case ref.Parameter != "" || ref.Reference != "":
			cur, ok := current[firstNonEmpty(ref.Parameter, ref.Reference)]
			if !ok {
				return "", false
			}
			v = cur
		}
	}
	var str string
	if json.Unmarshal(v, &str) == nil {
		return str, true
	}
	return string(v), true
}

func firstNonEmpty(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}
