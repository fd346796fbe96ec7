package sim

import (
	"encoding/json"
	"strings"
	"time"
)

// The simulator's state. Everything is guarded by Sim.mu.

type tenant struct {
	id, name, domain string
	envs             []*environment
	admins           map[string]bool // object ids allowed on /scopes/admin routes
}

type environment struct {
	name, displayName, sku, location string
	isDefault                        bool
	created                          time.Time
	tenant                           *tenant
	flows                            []*flow
	connections                      []*connection
	apps                             []*app
	org                              string // Dataverse organisation host label; "" without a database
	solutions                        []*solution
}

type flow struct {
	name, displayName, state string
	env                      *environment
	definition               json.RawMessage
	connRefs                 json.RawMessage // connectionReferences object
	created, modified        time.Time
	creator                  string     // object id
	private                  bool       // visible to its creator only (else shared with the tenant)
	dlp                      *errorBody // why starting it is refused, nil when allowed
	workflowID               string     // hex id used in content and callback links
	entityID                 string     // workflowEntityId: its Dataverse row id ("" without Dataverse)
	runs                     []*run     // newest first
	// summary is definitionSummary(definition), remembered for the definition it was
	// made from (a definition is replaced, never changed in place).
	summary    map[string]any
	summaryFor json.RawMessage
}

// definitionSummary is the flow's summary, made again only when its definition changed.
func (f *flow) definitionSummary() map[string]any {
	if f.summary == nil || len(f.summaryFor) != len(f.definition) || len(f.definition) > 0 && &f.summaryFor[0] != &f.definition[0] {
		f.summary, f.summaryFor = definitionSummary(f.definition), f.definition
	}
	return f.summary
}

type connection struct {
	name, connector, displayName string
	env                          *environment
	creator                      string // object id
	created, modified, expires   time.Time
	status                       string     // Connected, Error, Expired
	statusError                  *errorBody // for Error
}

// visibleTo says whether a user (not an admin route) may see a flow.
func (f *flow) visibleTo(c *caller) bool {
	return f.env.tenant.id == c.tenantID && (!f.private || f.creator == c.objectID)
}

// findEnv resolves an environment name (or ~default) for a caller; nil when
// it does not exist or belongs to another tenant.
func (s *Sim) findEnv(c *caller, name string) *environment {
	if name == "~default" {
		if t := s.tenants[c.tenantID]; t != nil {
			for _, e := range t.envs {
				if e.isDefault {
					return e
				}
			}
		}
		return nil
	}
	e := s.envs[strings.ToLower(name)]
	if e == nil || e.tenant.id != c.tenantID {
		return nil
	}
	return e
}

func (e *environment) findFlow(name string) *flow {
	for _, f := range e.flows {
		if strings.EqualFold(f.name, name) {
			return f
		}
	}
	return nil
}

func (f *flow) findRun(name string) *run {
	for _, r := range f.runs {
		if strings.EqualFold(r.name, name) {
			return r
		}
	}
	return nil
}

// addRun inserts a run keeping newest first (run names sort that way).
func (f *flow) addRun(r *run) {
	i := 0
	for i < len(f.runs) && f.runs[i].name < r.name {
		i++
	}
	f.runs = append(f.runs, nil)
	copy(f.runs[i+1:], f.runs[i:])
	f.runs[i] = r
}
