package sim

import (
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
)

const psPrefix = "/providers/microsoft.processsimple"

// flowRoutes serves api.flow.microsoft.com. Paths arrive lower-cased.
func (s *Sim) flowRoutes() http.Handler {
	mux := newMux()
	mux.HandleFunc("GET "+psPrefix+"/environments", s.locked(s.listEnvironments))
	mux.HandleFunc("GET "+psPrefix+"/environments/{env}", s.locked(s.getEnvironment))
	mux.HandleFunc("GET "+psPrefix+"/environments/{env}/flows", s.locked(s.listFlows))
	mux.HandleFunc("GET "+psPrefix+"/scopes/admin/environments/{env}/v2/flows", s.locked(s.listFlows))
	mux.HandleFunc("GET "+psPrefix+"/scopes/admin/environments/{env}/flows", func(w http.ResponseWriter, r *http.Request) {
		// The v1 admin list was retired; the service answers with a string-valued error.
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"error":"The List Flows as Admin API is no longer supported. Please use the List Flows as Admin (V2) API."}`)
	})
	mux.HandleFunc("POST "+psPrefix+"/environments/{env}/flows", s.locked(s.createFlow))
	for _, scope := range []string{psPrefix, psPrefix + "/scopes/admin"} {
		flowPath := scope + "/environments/{env}/flows/{flow}"
		mux.HandleFunc("GET "+flowPath, s.locked(s.getFlow))
		mux.HandleFunc("POST "+flowPath+"/{op}", s.locked(s.flowOperation))
		mux.HandleFunc("GET "+flowPath+"/runs", s.locked(s.listRuns))
		mux.HandleFunc("GET "+flowPath+"/runs/{run}", s.locked(s.getRun))
		mux.HandleFunc("POST "+flowPath+"/runs/{run}/cancel", s.locked(s.cancelRun))
		mux.HandleFunc("GET "+flowPath+"/runs/{run}/actions", s.locked(s.listRunActions))
		mux.HandleFunc("GET "+flowPath+"/runs/{run}/actions/{action}/repetitions", s.locked(s.listRepetitions))
	}
	flowPath := psPrefix + "/environments/{env}/flows/{flow}"
	mux.HandleFunc("PATCH "+flowPath, s.locked(s.updateFlow))
	mux.HandleFunc("GET "+flowPath+"/triggers", s.locked(s.listTriggers))
	mux.HandleFunc("POST "+flowPath+"/triggers/{trigger}/listcallbackurl", s.locked(s.listCallbackURL))
	mux.HandleFunc("POST "+flowPath+"/triggers/{trigger}/run", s.locked(s.runTrigger))
	mux.HandleFunc("POST "+flowPath+"/triggers/{trigger}/histories/{run}/resubmit", s.locked(s.resubmitRun))
	mux.HandleFunc("POST "+flowNSPrefix+"/environments/{env}/solutions/{solution}/migrateflows", s.locked(s.migrateFlows))
	return mux
}

func isAdminRoute(r *http.Request) bool { return strings.Contains(r.URL.Path, "/scopes/admin/") }

// resolveEnv finds the environment of the request or writes the 403.
func (s *Sim) resolveEnv(w http.ResponseWriter, r *http.Request) *environment {
	c := callerOf(r)
	name := r.PathValue("env")
	env := s.findEnv(c, name)
	if env == nil {
		writeError(w, http.StatusForbidden, "EnvironmentAccessDenied", "Access to the environment '"+name+"' is denied.")
		return nil
	}
	if isAdminRoute(r) && !env.tenant.admins[c.objectID] {
		writeError(w, http.StatusForbidden, "UserIsNotEnvironmentAdmin", "The caller with object id '"+c.objectID+"' is not an administrator of environment '"+env.name+"'.")
		return nil
	}
	return env
}

// resolveFlow finds the flow of the request or writes the error the real
// service gives: 403 ConnectionAuthorizationFailed in user scope (unknown
// and not-shared alike), 404 FlowNotFound in admin scope.
func (s *Sim) resolveFlow(w http.ResponseWriter, r *http.Request) *flow {
	env := s.resolveEnv(w, r)
	if env == nil {
		return nil
	}
	name := r.PathValue("flow")
	f := env.findFlow(name)
	if isAdminRoute(r) {
		if f == nil {
			writeError(w, http.StatusNotFound, "FlowNotFound", "Could not find flow '"+name+"'.")
			return nil
		}
		return f
	}
	if f == nil || !f.visibleTo(callerOf(r)) {
		writeError(w, http.StatusForbidden, "ConnectionAuthorizationFailed", "The caller with object id '"+callerOf(r).objectID+
			"' does not have permission for connection '"+name+"' under Api 'shared_logicflows'.")
		return nil
	}
	return f
}

func (s *Sim) listEnvironments(w http.ResponseWriter, r *http.Request) {
	var items []any
	if t := s.tenants[callerOf(r).tenantID]; t != nil {
		for _, e := range t.envs {
			items = append(items, environmentJSON(e))
		}
	}
	collection(w, items, "nextLink", "")
}

func (s *Sim) getEnvironment(w http.ResponseWriter, r *http.Request) {
	if env := s.resolveEnv(w, r); env != nil {
		writeJSON(w, http.StatusOK, environmentJSON(env))
	}
}

func environmentJSON(e *environment) map[string]any {
	geo := map[string]string{"europe": "europe", "unitedstates": "unitedstates"}[e.location]
	return map[string]any{
		"name": e.name, "location": e.location, "type": "Microsoft.ProcessSimple/environments",
		"id": "/providers/Microsoft.ProcessSimple/environments/" + e.name,
		"properties": map[string]any{
			"displayName": e.displayName, "createdTime": e.created.Format(time.RFC3339Nano),
			"createdBy":         map[string]string{"id": "SYSTEM", "displayName": "SYSTEM", "type": "NotSpecified"},
			"provisioningState": "Succeeded", "creationType": map[bool]string{true: "DefaultTenant", false: "User"}[e.isDefault],
			"environmentSku": e.sku, "environmentType": map[bool]string{true: "Sandbox", false: "Production"}[e.sku == "Sandbox"],
			"isDefault": e.isDefault, "azureRegionHint": map[string]string{"europe": "westeurope", "unitedstates": "westus"}[e.location],
			"runtimeEndpoints": map[string]string{
				"microsoft.BusinessAppPlatform": "https://" + geo + ".api.bap.microsoft.com",
				"microsoft.PowerApps":           "https://" + geo + ".api.powerapps.com",
				"microsoft.Flow":                "https://" + geo + ".api.flow.microsoft.com",
			},
		},
	}
}

var searchFilterRE = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^search\('(personal|team|team and personal|personal and team)'\)$`)
}) // compiled on first use: serve with a remote simulator never needs it

func (s *Sim) listFlows(w http.ResponseWriter, r *http.Request) {
	env := s.resolveEnv(w, r)
	if env == nil {
		return
	}
	c, admin := callerOf(r), isAdminRoute(r)
	search := ""
	if filter := strings.TrimSpace(r.URL.Query().Get("$filter")); filter != "" {
		m := searchFilterRE().FindStringSubmatch(strings.ToLower(filter))
		if m == nil {
			writeError(w, http.StatusBadRequest, "InvalidFilter", "The $filter '"+filter+"' is not supported.")
			return
		}
		search = m[1]
	}
	var flows []*flow
	for _, f := range env.flows {
		personal := f.private && f.creator == c.objectID
		switch {
		case admin:
		case !f.visibleTo(c):
			continue
		case search == "personal" && !personal, search == "team" && f.private:
			continue
		}
		flows = append(flows, f)
	}
	key := func(f *flow) string { return strings.ToLower(f.displayName) + "|" + f.name }
	sort.Slice(flows, func(i, j int) bool { return key(flows[i]) < key(flows[j]) })
	writePage(w, r, flows, key, 50, "nextLink", func(f *flow) any { return flowJSON(f, c, admin, false) })
}

func (s *Sim) getFlow(w http.ResponseWriter, r *http.Request) {
	if f := s.resolveFlow(w, r); f != nil {
		admin := isAdminRoute(r)
		writeJSON(w, http.StatusOK, flowJSON(f, callerOf(r), admin, !admin))
	}
}

// flowJSON renders a flow; admin views carry no definition summary.
func flowJSON(f *flow, c *caller, admin, withDefinition bool) *flowView {
	envID := "/providers/Microsoft.ProcessSimple/environments/" + f.env.name
	v := &flowView{ID: envID + "/flows/" + f.name, Name: f.name, Type: "Microsoft.ProcessSimple/environments/flows"}
	p := &v.Properties
	*p = flowProps{
		APIID: "/providers/Microsoft.PowerApps/apis/shared_logicflows", DisplayName: f.displayName,
		UserType: "Owner", State: f.state, CreatedTime: f.created.Format(time.RFC3339Nano),
		LastModifiedTime: f.modified.Format(time.RFC3339Nano), FlowSuspensionReason: "None",
		Environment:        flowEnv{Name: f.env.name, Type: "Microsoft.ProcessSimple/environments", ID: envID},
		Creator:            flowCreator{TenantID: f.env.tenant.id, ObjectID: f.creator, UserID: f.creator, UserType: "ActiveDirectory"},
		ProvisioningMethod: "FromDefinition", FlowFailureAlertSubscribed: true,
		DefinitionSummary: emptySummary, WorkflowEntityID: f.workflowEntityID(),
	}
	if !f.private && f.creator != c.objectID {
		p.SharingType = "Coauthor"
	}
	if !admin {
		p.DefinitionSummary = f.definitionSummaryJSON()
		p.ConnectionReferences = f.connRefs // a nil one reads as null, as the service writes it
	}
	if withDefinition {
		p.Definition = f.definition
	}
	return v
}

// flowView is a flow as the service answers it. Fields are declared in byte order of
// their names, so the answer reads exactly as the sorted map it replaces (a struct
// encodes several times faster, and the simulator's speed paces benchmarks).
type flowView struct {
	ID         string    `json:"id"`
	Name       string    `json:"name"`
	Properties flowProps `json:"properties"`
	Type       string    `json:"type"`
}

type flowProps struct {
	APIID                      string          `json:"apiId"`
	ConnectionReferences       any             `json:"connectionReferences,omitempty"` // nil: absent (admin views)
	CreatedTime                string          `json:"createdTime"`
	Creator                    flowCreator     `json:"creator"`
	Definition                 any             `json:"definition,omitempty"` // nil: absent
	DefinitionSummary          json.RawMessage `json:"definitionSummary"`
	DisplayName                string          `json:"displayName"`
	Environment                flowEnv         `json:"environment"`
	FlowFailureAlertSubscribed bool            `json:"flowFailureAlertSubscribed"`
	FlowSuspensionReason       string          `json:"flowSuspensionReason"`
	IsManaged                  bool            `json:"isManaged"`
	LastModifiedTime           string          `json:"lastModifiedTime"`
	ProvisioningMethod         string          `json:"provisioningMethod"`
	SharingType                string          `json:"sharingType,omitempty"`
	State                      string          `json:"state"`
	UserType                   string          `json:"userType"`
	WorkflowEntityID           string          `json:"workflowEntityId,omitempty"`
}

type flowCreator struct {
	ObjectID string `json:"objectId"`
	TenantID string `json:"tenantId"`
	UserID   string `json:"userId"`
	UserType string `json:"userType"`
}

type flowEnv struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Type string `json:"type"`
}

// emptySummary is an admin view's definition summary.
var emptySummary = json.RawMessage(`{"actions":[],"triggers":[]}`)

func definitionSummary(def json.RawMessage) map[string]any {
	var d struct {
		Triggers map[string]struct {
			Type   string `json:"type"`
			Kind   string `json:"kind"`
			Inputs struct {
				Host struct {
					OperationID string `json:"operationId"`
				} `json:"host"`
			} `json:"inputs"`
		} `json:"triggers"`
		Actions map[string]*wfAction `json:"actions"`
	}
	json.Unmarshal(def, &d)
	triggers, actions := []any{}, []any{}
	for _, name := range slices.Sorted(maps.Keys(d.Triggers)) {
		t := d.Triggers[name]
		entry := map[string]string{"type": t.Type}
		if t.Kind != "" {
			entry["kind"] = t.Kind
		}
		if op := t.Inputs.Host.OperationID; op != "" {
			entry["swaggerOperationId"] = op
		}
		triggers = append(triggers, entry)
	}
	walkActions(d.Actions, func(_ map[string]*wfAction, _ string, a *wfAction) {
		entry := map[string]string{"type": a.Type}
		var in struct {
			Host struct {
				OperationID string `json:"operationId"`
			} `json:"host"`
		}
		if json.Unmarshal(a.Inputs, &in) == nil && in.Host.OperationID != "" {
			entry["swaggerOperationId"] = in.Host.OperationID
		}
		actions = append(actions, entry)
	})
	return map[string]any{"triggers": triggers, "actions": actions}
}

// flowBody is the body of create, update and check requests.
type flowBody struct {
	Properties struct {
		DisplayName          *string         `json:"displayName"`
		Definition           json.RawMessage `json:"definition"`
		ConnectionReferences json.RawMessage `json:"connectionReferences"`
		State                string          `json:"state"`
	} `json:"properties"`
}

func readFlowBody(w http.ResponseWriter, r *http.Request) (*flowBody, bool) {
	var b flowBody
	if err := json.NewDecoder(io.LimitReader(r.Body, 8<<20)).Decode(&b); err != nil {
		writeError(w, http.StatusBadRequest, "InvalidRequestContent", "The request content is not valid JSON.")
		return nil, false
	}
	return &b, true
}

// validateSave applies what saving checks: a valid definition and
// connection references to connections that exist in the environment.
func validateSave(w http.ResponseWriter, c *caller, env *environment, b *flowBody) bool {
	if b.Properties.Definition != nil {
		if issues := checkErrors(b.Properties.Definition); len(issues) > 0 {
			writeError(w, http.StatusBadRequest, "InvalidOpenApiFlow", "Flow save failed with code '"+issues[0].Error.Code+"' and message '"+issues[0].Error.Message+"'.")
			return false
		}
	}
	if b.Properties.ConnectionReferences != nil {
		var refs map[string]struct {
			ConnectionName string `json:"connectionName"`
			ID             string `json:"id"`
		}
		if json.Unmarshal(b.Properties.ConnectionReferences, &refs) != nil {
			writeError(w, http.StatusBadRequest, "InvalidRequestContent", "The connectionReferences property is not valid.")
			return false
		}
		for key, ref := range refs {
			found := false
			for _, conn := range env.connections {
				found = found || strings.EqualFold(conn.name, ref.ConnectionName)
			}
			if ref.ConnectionName != "" && !found {
				writeError(w, http.StatusForbidden, "ConnectionAuthorizationFailed", "The caller with object id '"+c.objectID+
					"' does not have permission for connection '"+ref.ConnectionName+"' under Api '"+key+"'.")
				return false
			}
		}
	}
	return true
}

func (s *Sim) createFlow(w http.ResponseWriter, r *http.Request) {
	env := s.resolveEnv(w, r)
	if env == nil {
		return
	}
	b, ok := readFlowBody(w, r)
	if !ok {
		return
	}
	c := callerOf(r)
	if b.Properties.Definition == nil || b.Properties.DisplayName == nil || *b.Properties.DisplayName == "" {
		writeError(w, http.StatusBadRequest, "InvalidRequestContent", "A new flow needs properties.displayName and properties.definition.")
		return
	}
	if !validateSave(w, c, env, b) {
		return
	}
	now := s.now().UTC()
	name := uuid.NewString()
	f := &flow{name: name, displayName: *b.Properties.DisplayName, state: "Started", env: env, definition: compactRaw(b.Properties.Definition),
		connRefs: compactRaw(b.Properties.ConnectionReferences), created: now, modified: now, creator: c.objectID, private: true,
		workflowID: strings.ReplaceAll(name, "-", ""), entityID: newEntityID(env, name)}
	if strings.EqualFold(b.Properties.State, "Stopped") {
		f.state = "Stopped"
	}
	if f.connRefs == nil {
		f.connRefs = json.RawMessage(`{}`)
	}
	env.flows = append(env.flows, f)
	s.workflows[f.workflowID] = f
	writeJSON(w, http.StatusCreated, flowJSON(f, c, false, true))
}

func (s *Sim) updateFlow(w http.ResponseWriter, r *http.Request) {
	f := s.resolveFlow(w, r)
	if f == nil {
		return
	}
	b, ok := readFlowBody(w, r)
	if !ok || !validateSave(w, callerOf(r), f.env, b) {
		return
	}
	if p := b.Properties; p.DisplayName != nil && *p.DisplayName != "" {
		f.displayName = *p.DisplayName
	}
	if b.Properties.Definition != nil {
		f.definition = compactRaw(b.Properties.Definition)
	}
	if b.Properties.ConnectionReferences != nil {
		f.connRefs = compactRaw(b.Properties.ConnectionReferences)
	}
	f.modified = s.now().UTC()
	writeJSON(w, http.StatusOK, flowJSON(f, callerOf(r), false, true))
}

// flowOperation serves POST …/flows/{flow}/{start|stop|checkFlowErrors|checkFlowWarnings}.
func (s *Sim) flowOperation(w http.ResponseWriter, r *http.Request) {
	op := r.PathValue("op")
	if isAdminRoute(r) && op != "start" && op != "stop" {
		writeError(w, http.StatusNotFound, "NotFound", "No route for '"+r.Method+" "+r.URL.Path+"'.")
		return
	}
	f := s.resolveFlow(w, r)
	if f == nil {
		return
	}
	switch op {
	case "start":
		if f.dlp != nil {
			writeJSON(w, http.StatusForbidden, apiError{*f.dlp})
			return
		}
		f.state = "Started"
		w.WriteHeader(http.StatusOK)
	case "stop":
		f.state = "Stopped"
		w.WriteHeader(http.StatusOK)
	case "checkflowerrors", "checkflowwarnings":
		b, ok := readFlowBody(w, r)
		if !ok {
			return
		}
		def := b.Properties.Definition
		if def == nil {
			def = f.definition
		}
		issues := checkErrors(def)
		if op == "checkflowwarnings" {
			issues = checkWarnings(def)
		}
		if issues == nil {
			issues = []issue{}
		}
		writeJSON(w, http.StatusOK, issues)
	default:
		writeError(w, http.StatusNotFound, "NotFound", "No route for '"+r.Method+" "+r.URL.Path+"'.")
	}
}

func (s *Sim) listTriggers(w http.ResponseWriter, r *http.Request) {
	f := s.resolveFlow(w, r)
	if f == nil {
		return
	}
	var d wfDefinition
	json.Unmarshal(f.definition, &d)
	state := map[bool]string{true: "Enabled", false: "Disabled"}[f.state == "Started"]
	var items []any
	for _, name := range slices.Sorted(maps.Keys(d.Triggers)) {
		items = append(items, map[string]any{
			"name": name, "id": "/providers/Microsoft.ProcessSimple/environments/" + f.env.name + "/flows/" + f.name + "/triggers/" + name,
			"type": "Microsoft.ProcessSimple/environments/flows/triggers",
			"properties": map[string]any{"provisioningState": "Succeeded", "createdTime": f.created.Format(time.RFC3339Nano),
				"changedTime": f.modified.Format(time.RFC3339Nano), "state": state},
		})
	}
	collection(w, items, "nextLink", "")
}
