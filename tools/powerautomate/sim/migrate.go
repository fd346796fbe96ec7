package sim

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"

	"github.com/google/uuid"
)

// migrateFlows moves flows stored only in the Flow service ("Outside Dataverse") into a
// solution, as the maker portal's Add existing → Cloud flow → Outside Dataverse does:
//
//	POST /providers/Microsoft.Flow/environments/{env}/solutions/{solutionId}/migrateFlows
//	     {"flowsToMigrate":["<flow GUID>"]}
//
// The route, body and api-versions are what Microsoft's maker module, the PnP CLI and a
// capture of the portal send; a flow given as a resource path is FlowNotFound (from the
// capture). The other refusals' codes and the empty 200 answer are inferred (no source
// shows them): the client depends on neither. All flows are checked before any moves, so
// a refused request changes nothing. A moved flow gets its Dataverse row id
// (workflowEntityId) and becomes a component of the solution, with the id a later
// AddSolutionComponent of it answers.

const flowNSPrefix = "/providers/microsoft.flow"

// migrateAPIVersions are the api-versions seen on Microsoft.Flow routes: Microsoft's
// module sends 2016-11-01, the portal and the PnP CLI 2018-10-01.
var migrateAPIVersions = []string{"2016-11-01", "2018-10-01"}

// Refusal codes of migrateFlows beyond FlowNotFound (inferred, see above).
const (
	codeSolutionNotFound      = "SolutionNotFound"
	codeManagedSolution       = "CannotMigrateToManagedSolution"
	codeFlowAlreadyInSolution = "FlowAlreadySolutionAware"
	codeNotFlowOwner          = "FlowMigrationRequiresOwner"
	codeNoDataverse           = "EnvironmentHasNoDataverse"
)

func (s *Sim) migrateFlows(w http.ResponseWriter, r *http.Request) {
	env := s.resolveEnv(w, r)
	if env == nil {
		return
	}
	c := callerOf(r)
	var in struct {
		FlowsToMigrate []string `json:"flowsToMigrate"`
	}
	if json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&in) != nil || len(in.FlowsToMigrate) == 0 {
		writeError(w, http.StatusBadRequest, "InvalidRequestContent", "The request content must name the flows to migrate in flowsToMigrate.")
		return
	}
	if env.org == "" {
		writeError(w, http.StatusBadRequest, codeNoDataverse, "The environment '"+env.name+"' has no Dataverse database.")
		return
	}
	id := r.PathValue("solution")
	var sol *solution
	for _, candidate := range env.solutions {
		if strings.EqualFold(candidate.id, id) {
			sol = candidate
		}
	}
	if sol == nil {
		writeError(w, http.StatusNotFound, codeSolutionNotFound, "Could not find solution '"+id+"'.")
		return
	}
	if sol.managed {
		writeError(w, http.StatusBadRequest, codeManagedSolution, "Flows cannot be migrated into the managed solution '"+sol.uniqueName+"'.")
		return
	}
	flows := make([]*flow, 0, len(in.FlowsToMigrate))
	for _, name := range in.FlowsToMigrate {
		f := env.findFlow(name) // a resource path names no flow
		if f == nil || !f.visibleTo(c) {
			writeError(w, http.StatusNotFound, "FlowNotFound", "Could not find flow '"+name+"'.")
			return
		}
		if f.entityID != "" {
			writeError(w, http.StatusConflict, codeFlowAlreadyInSolution, "The flow '"+f.name+"' is already solution aware.")
			return
		}
		if f.creator != c.objectID {
			writeError(w, http.StatusForbidden, codeNotFlowOwner, "The caller with object id '"+c.objectID+"' does not own the flow '"+f.name+"'.")
			return
		}
		flows = append(flows, f)
	}
	for _, f := range flows {
		f.entityID = newEntityID(env, f.name)
		sol.components[f.entityID] = componentID(sol, f.entityID)
	}
	w.Header().Set("Cache-Control", "no-store, no-cache")
	w.WriteHeader(http.StatusOK)
}

// componentID is the solutioncomponent row id of a component of sol.
func componentID(sol *solution, componentID string) string {
	return uuid.NewSHA1(simNamespace, []byte("component/"+sol.id+"/"+strings.ToLower(componentID))).String()
}
