package sim

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/google/uuid"
)

// Dataverse: each environment with a database (default and production; the
// sandboxes have none) has an organisation whose Web API the simulator serves
// at /dataverse/{org}/api/data/v9.2/... The BAP environment advertises it in
// linkedEnvironmentMetadata: instanceUrl is the real-looking org URL (the token
// audience), instanceApiUrl points at the simulator. Tokens must carry exactly
// that audience. Errors are OData's {"error":{"code":"0x…","message":"…"}}.

// Seeded solutions of every Dataverse environment ({Tenant} is the tenant's name).
const (
	SolutionUnmanaged = "ContosoInvoicing" // unmanaged, in Contoso; Fabrikam has FabrikamInvoicing
	SolutionManaged   = "msdyn_FlowCore"   // managed: nothing can be added to it
)

// Dataverse error codes the simulator answers with (as Dataverse sends them).
const (
	dvNotFound     = "0x80040217" // ObjectDoesNotExist
	dvNoPrivilege  = "0x80040220" // the user lacks a privilege
	dvNotMember    = "0x80072560" // the user is not a member of the organisation
	dvManaged      = "0x80048033" // a managed solution cannot be changed (simulator's stand-in code)
	dvInvalidArg   = "0x80040203" // InvalidArgument
	dvUnknownRoute = "0x8006088a" // Resource not found for the segment
)

type solution struct {
	id, uniqueName, friendlyName string
	managed                      bool
	components                   map[string]string // component id → solutioncomponent id
}

// seedDataverse gives an environment its organisation and solutions.
func (s *Sim) seedDataverse(env *environment) {
	env.org = "org" + uuid.NewSHA1(simNamespace, []byte("org/"+env.name)).String()[:8]
	for _, sol := range []struct {
		name, friendly string
		managed        bool
	}{
		{strings.Replace(SolutionUnmanaged, "Contoso", env.tenant.name, 1), env.tenant.name + " invoicing", false},
		{SolutionManaged, "Flow core", true},
	} {
		env.solutions = append(env.solutions, &solution{
			id:         uuid.NewSHA1(simNamespace, []byte("solution/"+env.name+"/"+sol.name)).String(),
			uniqueName: sol.name, friendlyName: sol.friendly, managed: sol.managed, components: map[string]string{}})
	}
}

// workflowEntityID is a flow's row id in its environment's Dataverse ("" without one).
func (f *flow) workflowEntityID() string { return f.entityID }

// newEntityID is the Dataverse row id of a new flow of env, fixed at creation.
func newEntityID(env *environment, name string) string {
	if env.org == "" {
		return ""
	}
	return uuid.NewSHA1(simNamespace, []byte("workflow/"+name)).String()
}

// SolutionID returns the id of a seeded solution of an environment ("" if none).
func (s *Sim) SolutionID(env, uniqueName string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.envs[strings.ToLower(env)]; e != nil {
		if sol := e.solution(uniqueName); sol != nil {
			return sol.id
		}
	}
	return ""
}

// SolutionHasFlow reports whether a flow is a component of a solution.
func (s *Sim) SolutionHasFlow(env, uniqueName, flowName string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.envs[strings.ToLower(env)]
	if e == nil {
		return false
	}
	sol := e.solution(uniqueName)
	for _, f := range e.flows {
		if sol != nil && strings.EqualFold(f.name, flowName) {
			_, ok := sol.components[f.workflowEntityID()]
			return ok
		}
	}
	return false
}

func (e *environment) solution(uniqueName string) *solution {
	return findNamed(e.solutions, uniqueName)
}

// linkedEnvironmentMetadata is what BAP says about an environment's database.
func linkedEnvironmentMetadata(e *environment, base string) map[string]any {
	return map[string]any{
		"type": "Dynamics365Instance", "resourceId": uuid.NewSHA1(simNamespace, []byte("resource/"+e.name)).String(),
		"friendlyName": e.displayName, "uniqueName": "unq" + e.org[3:], "domainName": e.org,
		"version": "9.2.25103.170", "instanceUrl": orgAudience(e) + "/", "instanceApiUrl": base + "/dataverse/" + e.org,
		"baseLanguage": 1033, "instanceState": "Ready", "createdTime": e.created.Format("2006-01-02T15:04:05.000Z"),
	}
}

// orgAudience is the organisation URL: the token audience Dataverse wants.
func orgAudience(e *environment) string { return "https://" + e.org + ".crm4.dynamics.com" }

func writeOData(w http.ResponseWriter, status int, code, message string) {
	w.Header().Set("OData-Version", "4.0")
	writeJSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": message}})
}

// serveDataverse serves /dataverse/{org}/api/data/v9.2/{rest}.
func (s *Sim) serveDataverse(w http.ResponseWriter, r *http.Request, path string) {
	org, rest, _ := strings.Cut(strings.TrimPrefix(path, "/"), "/")
	s.mu.Lock()
	var env *environment
	for _, e := range s.envs {
		if e.org != "" && strings.EqualFold(e.org, org) {
			env = e
		}
	}
	s.mu.Unlock()
	if env == nil {
		writeOData(w, http.StatusNotFound, dvUnknownRoute, "No organization here.")
		return
	}
	aud := orgAudience(env)
	c, ok := s.authenticateFor(w, r, []string{aud, aud + "/"})
	if !ok {
		return
	}
	rest, ok = strings.CutPrefix(rest, "api/data/v9.2/")
	if !ok {
		writeOData(w, http.StatusNotFound, dvUnknownRoute, "Resource not found for the segment '"+rest+"'.")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if env.tenant.id != c.tenantID {
		writeOData(w, http.StatusForbidden, dvNotMember, "The user with id "+c.objectID+" is not a member of the organization.")
		return
	}
	switch {
	case r.Method == http.MethodGet && strings.HasPrefix(rest, "solutions(") && strings.HasSuffix(rest, ")"):
		id := strings.TrimSuffix(strings.TrimPrefix(rest, "solutions("), ")")
		for _, sol := range env.solutions {
			if strings.EqualFold(sol.id, id) {
				writeJSON(w, http.StatusOK, solutionJSON(sol, true))
				return
			}
		}
		writeOData(w, http.StatusNotFound, dvNotFound, "solution With Id = "+id+" Does Not Exist")
	case r.Method == http.MethodGet && rest == "solutions":
		filter := r.URL.Query().Get("$filter")
		name, ok := strings.CutPrefix(filter, "uniquename eq '")
		if name, ok = strings.CutSuffix(name, "'"); !ok || strings.Contains(name, "'") {
			writeOData(w, http.StatusBadRequest, dvInvalidArg, "The simulator understands only $filter=uniquename eq '…'.")
			return
		}
		items := []any{}
		if sol := env.solution(name); sol != nil {
			items = append(items, solutionJSON(sol, false))
		}
		writeJSON(w, http.StatusOK, map[string]any{"@odata.context": "$metadata#solutions", "value": items})
	case r.Method == http.MethodPost && rest == "AddSolutionComponent":
		s.addSolutionComponent(w, r, env, c)
	default:
		writeOData(w, http.StatusNotFound, dvUnknownRoute, "Resource not found for the segment '"+rest+"'.")
	}
}

func solutionJSON(sol *solution, withContext bool) map[string]any {
	m := map[string]any{"solutionid": sol.id, "uniquename": sol.uniqueName, "friendlyname": sol.friendlyName, "ismanaged": sol.managed}
	if withContext {
		m["@odata.context"] = "$metadata#solutions(solutionid,uniquename,friendlyname,ismanaged)/$entity"
	}
	return m
}

func (s *Sim) addSolutionComponent(w http.ResponseWriter, r *http.Request, env *environment, c *caller) {
	var in struct {
		ComponentID           string `json:"ComponentId"`
		ComponentType         int    `json:"ComponentType"`
		SolutionUniqueName    string `json:"SolutionUniqueName"`
		AddRequiredComponents *bool  `json:"AddRequiredComponents"`
	}
	if json.NewDecoder(r.Body).Decode(&in) != nil || in.ComponentID == "" || in.SolutionUniqueName == "" || in.AddRequiredComponents == nil {
		writeOData(w, http.StatusBadRequest, dvInvalidArg, "ComponentId, ComponentType, SolutionUniqueName and AddRequiredComponents are required.")
		return
	}
	sol := env.solution(in.SolutionUniqueName)
	if sol == nil {
		writeOData(w, http.StatusNotFound, dvNotFound, "solution With Name = "+in.SolutionUniqueName+" Does Not Exist")
		return
	}
	if in.ComponentType != 29 {
		writeOData(w, http.StatusBadRequest, dvInvalidArg, "The simulator knows only workflow components (type 29).")
		return
	}
	var target *flow
	for _, f := range env.flows {
		if strings.EqualFold(f.workflowEntityID(), in.ComponentID) {
			target = f
		}
	}
	if target == nil {
		writeOData(w, http.StatusNotFound, dvNotFound, "workflow With Id = "+in.ComponentID+" Does Not Exist")
		return
	}
	if target.private && target.creator != c.objectID {
		writeOData(w, http.StatusForbidden, dvNoPrivilege, "Principal user (Id="+c.objectID+") is missing prvReadWorkflow privilege on workflow.")
		return
	}
	if sol.managed {
		writeOData(w, http.StatusBadRequest, dvManaged, "Cannot add components to the managed solution "+sol.uniqueName+".")
		return
	}
	id, ok := sol.components[target.workflowEntityID()]
	if !ok { // adding again is a no-op, as in Dataverse
		id = componentID(sol, in.ComponentID)
		sol.components[target.workflowEntityID()] = id
	}
	writeJSON(w, http.StatusOK, map[string]any{"@odata.context": "$metadata#Microsoft.Dynamics.CRM.AddSolutionComponentResponse", "id": id})
}
