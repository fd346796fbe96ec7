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
	// summary is definitionSummary(definition) encoded, remembered for the definition
	// it was made from (a definition is replaced, never changed in place).
	summary    json.RawMessage
	summaryFor json.RawMessage
}

// definitionSummaryJSON is the flow's summary, made again only when its definition changed.
func (f *flow) definitionSummaryJSON() json.RawMessage {
	if f.summary == nil || len(f.summaryFor) != len(f.definition) || len(f.definition) > 0 && &f.summaryFor[0] != &f.definition[0] {
		f.summary, f.summaryFor = encodeJSON(definitionSummary(f.definition)), f.definition
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

// named is a record the service finds by a name it matches case-insensitively.
type named interface{ nameKey() string }

func (f *flow) nameKey() string         { return f.name }
func (r *run) nameKey() string          { return r.name }
func (a *actionRecord) nameKey() string { return a.name }
func (s *solution) nameKey() string     { return s.uniqueName }

// findNamed is the record of items named name (any letter case), or nil.
func findNamed[T named](items []T, name string) T {
	for _, it := range items {
		if strings.EqualFold(it.nameKey(), name) {
			return it
		}
	}
	var none T
	return none
}

func (e *environment) findFlow(name string) *flow { return findNamed(e.flows, name) }

func (f *flow) findRun(name string) *run { return findNamed(f.runs, name) }

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
