package powerautomate

import (
	"context"
	"encoding/json"
	"net/url"
	"strconv"
	"time"
)

// FlowRef names a flow. Admin selects the /scopes/admin routes, which work
// for environment admins on flows they do not own (no definition returned).
type FlowRef struct {
	Environment string
	Flow        string
	Admin       bool
}

func (r FlowRef) validate() error {
	if err := ValidateEnvironmentName(r.Environment); err != nil {
		return err
	}
	return ValidateFlowName(r.Flow)
}

// path is the flow's resource path, user or admin scope.
func (r FlowRef) path() string {
	return envPath(r.Environment, r.Admin) + "/flows/" + esc(r.Flow)
}

func envPath(env string, admin bool) string {
	if admin {
		return "/providers/Microsoft.ProcessSimple/scopes/admin/environments/" + esc(env)
	}
	return "/providers/Microsoft.ProcessSimple/environments/" + esc(env)
}

// Flow is a cloud flow. Definition is set by GetFlow in user scope only.
type Flow struct {
	Name                 string // GUID
	ID                   string
	DisplayName          string
	State                string // Started, Stopped, Suspended, Deleted
	Environment          string
	UserType             string // Owner, User
	SharingType          string // Coauthor or empty
	CreatedTime          time.Time
	LastModifiedTime     time.Time
	Creator              Principal
	Triggers             []OperationSummary
	Actions              []OperationSummary
	SuspensionReason     string
	TriggerURI           string
	ConnectionReferences map[string]ConnectionReference
	Definition           json.RawMessage
	// WorkflowEntityID is the flow's row id in the environment's Dataverse
	// workflow table, for flows stored there ("" otherwise).
	WorkflowEntityID string
}

// Principal is a creator or owner; the API gives object ids, not names.
type Principal struct {
	TenantID string `json:"tenantId"`
	ObjectID string `json:"objectId"`
}

// OperationSummary is one entry of a flow's definitionSummary.
type OperationSummary struct {
	Type        string `json:"type"`
	Kind        string `json:"kind,omitempty"`
	OperationID string `json:"swaggerOperationId,omitempty"`
}

// ConnectionReference ties a flow's connector key to a connection.
type ConnectionReference struct {
	ConnectionName string `json:"connectionName"`
	APIID          string `json:"id"`
	DisplayName    string `json:"displayName"`
	Source         string `json:"source"` // Embedded or Invoker
	Tier           string `json:"tier"`
	LogicalName    string `json:"connectionReferenceLogicalName,omitempty"` // solution flows
}

type flowProps struct {
	DisplayName          string                         `json:"displayName"`
	State                string                         `json:"state"`
	UserType             string                         `json:"userType"`
	SharingType          string                         `json:"sharingType"`
	CreatedTime          time.Time                      `json:"createdTime"`
	LastModifiedTime     time.Time                      `json:"lastModifiedTime"`
	FlowSuspensionReason string                         `json:"flowSuspensionReason"`
	FlowTriggerURI       string                         `json:"flowTriggerUri"`
	Environment          struct{ Name string }          `json:"environment"`
	Creator              Principal                      `json:"creator"`
	ConnectionReferences map[string]ConnectionReference `json:"connectionReferences"`
	Definition           json.RawMessage                `json:"definition"`
	WorkflowEntityID     string                         `json:"workflowEntityId"`
	DefinitionSummary    struct {
		Triggers []OperationSummary `json:"triggers"`
		Actions  []OperationSummary `json:"actions"`
	} `json:"definitionSummary"`
}

func toFlow(r armResource[flowProps]) Flow {
	p := r.Properties
	return Flow{
		Name: r.Name, ID: r.ID, DisplayName: p.DisplayName, State: p.State, Environment: p.Environment.Name,
		UserType: p.UserType, SharingType: p.SharingType, CreatedTime: p.CreatedTime, LastModifiedTime: p.LastModifiedTime,
		Creator: p.Creator, Triggers: p.DefinitionSummary.Triggers, Actions: p.DefinitionSummary.Actions,
		SuspensionReason: p.FlowSuspensionReason, TriggerURI: p.FlowTriggerURI, WorkflowEntityID: p.WorkflowEntityID,
		ConnectionReferences: p.ConnectionReferences, Definition: p.Definition,
	}
}

// ListFlowsOptions narrows ListFlows.
type ListFlowsOptions struct {
	Admin    bool   // list every flow of the environment (admin v2 route)
	Search   string // "", "personal", "team" or "team AND personal" (user scope)
	Top      int    // page size, 0 for the server default, at most MaxPageSize
	NextLink string // continue from a previous page's NextLink
}

// MaxPageSize bounds $top on lists.
const MaxPageSize = 250

// FlowPage is one page of flows.
type FlowPage struct {
	Flows    []Flow
	NextLink string
}

// ListFlows returns one page of flows in an environment.
func (c *Client) ListFlows(ctx context.Context, env string, opts ListFlowsOptions) (*FlowPage, error) {
	if err := ValidateEnvironmentName(env); err != nil {
		return nil, err
	}
	q := url.Values{"api-version": {apiVersionFlow}}
	switch opts.Search {
	case "":
	case "personal", "team", "team AND personal":
		if opts.Admin {
			return nil, invalid("search", opts.Search, "not available in admin scope")
		}
		q.Set("$filter", "search('"+opts.Search+"')")
	default:
		return nil, invalid("search", opts.Search, "want personal, team or team AND personal")
	}
	if err := setTop(q, opts.Top); err != nil {
		return nil, err
	}
	path := envPath(env, opts.Admin) + "/flows"
	if opts.Admin {
		path = envPath(env, true) + "/v2/flows"
	}
	p, err := getPage[armResource[flowProps]](ctx, c, "ListFlows", c.cfg.FlowURL+path+"?"+encodeQuery(q), opts.NextLink)
	if err != nil {
		return nil, err
	}
	out := &FlowPage{NextLink: p.next()}
	for _, r := range p.Value {
		out.Flows = append(out.Flows, toFlow(r))
	}
	return out, nil
}

func setTop(q url.Values, top int) error {
	if top < 0 || top > MaxPageSize {
		return &InvalidIDError{Field: "top", Value: strconv.Itoa(top), Reason: "want 0.." + strconv.Itoa(MaxPageSize)}
	}
	if top > 0 {
		q.Set("$top", strconv.Itoa(top))
	}
	return nil
}

// GetFlow returns a flow; in user scope with its definition and connection references.
func (c *Client) GetFlow(ctx context.Context, ref FlowRef) (*Flow, error) {
	if err := ref.validate(); err != nil {
		return nil, err
	}
	return c.flowCall(ctx, "GetFlow", "GET", c.flowURL(ref.path(), nil), nil)
}

// FlowUpdate is the writable part of a flow. Empty fields are left out of
// the request, so a PATCH changes only what is set.
type FlowUpdate struct {
	DisplayName          string          `json:"displayName,omitempty"`
	Definition           json.RawMessage `json:"definition,omitempty"`
	ConnectionReferences json.RawMessage `json:"connectionReferences,omitempty"`
	State                string          `json:"state,omitempty"` // on create: Started or Stopped
}

type flowUpdateBody struct {
	Properties struct {
		FlowUpdate
		Environment struct {
			Name string `json:"name"`
		} `json:"environment"`
	} `json:"properties"`
}

func updateBody(env string, u FlowUpdate) flowUpdateBody {
	var b flowUpdateBody
	b.Properties.FlowUpdate = u
	b.Properties.Environment.Name = env
	return b
}

// CreateFlow creates a flow in env (user scope); the result carries its new Name.
func (c *Client) CreateFlow(ctx context.Context, env string, u FlowUpdate) (*Flow, error) {
	if err := ValidateEnvironmentName(env); err != nil {
		return nil, err
	}
	return c.flowCall(ctx, "CreateFlow", "POST", c.flowURL(envPath(env, false)+"/flows", nil), updateBody(env, u))
}

// UpdateFlow patches a flow (user scope) and returns it as saved.
func (c *Client) UpdateFlow(ctx context.Context, ref FlowRef, u FlowUpdate) (*Flow, error) {
	if err := ref.validate(); err != nil {
		return nil, err
	}
	ref.Admin = false
	return c.flowCall(ctx, "UpdateFlow", "PATCH", c.flowURL(ref.path(), nil), updateBody(ref.Environment, u))
}

func (c *Client) flowCall(ctx context.Context, op, method, u string, body any) (*Flow, error) {
	r, err := callJSON[armResource[flowProps]](ctx, c, op, method, u, body)
	if err != nil {
		return nil, err
	}
	f := toFlow(*r)
	return &f, nil
}

// FlowIssue is one finding of checkFlowErrors / checkFlowWarnings.
type FlowIssue struct {
	OperationID string // the action or trigger concerned, when given
	Code        string
	Message     string
}

// CheckFlowErrors asks the service to validate a definition against a flow.
// An empty result means no errors.
func (c *Client) CheckFlowErrors(ctx context.Context, ref FlowRef, u FlowUpdate) ([]FlowIssue, error) {
	return c.checkFlow(ctx, "CheckFlowErrors", "checkFlowErrors", ref, u)
}

// CheckFlowWarnings returns the flow checker's warnings for a definition.
func (c *Client) CheckFlowWarnings(ctx context.Context, ref FlowRef, u FlowUpdate) ([]FlowIssue, error) {
	return c.checkFlow(ctx, "CheckFlowWarnings", "checkFlowWarnings", ref, u)
}

func (c *Client) checkFlow(ctx context.Context, op, action string, ref FlowRef, u FlowUpdate) ([]FlowIssue, error) {
	if err := ref.validate(); err != nil {
		return nil, err
	}
	ref.Admin = false
	resp, err := c.apiCall(ctx, op, "POST", c.flowURL(ref.path()+"/"+action, nil), updateBody(ref.Environment, u))
	if err != nil {
		return nil, err
	}
	type wireIssue struct {
		OperationID string `json:"operationId"`
		Error       struct{ Code, Message string }
	}
	// The answer is a bare array; accept a {"value":[...]} wrapper too.
	var issues []wireIssue
	if err := json.Unmarshal(resp.body, &issues); err != nil {
		var p page[wireIssue]
		if err := decode(op, resp, &p); err != nil {
			return nil, err
		}
		issues = p.Value
	}
	out := make([]FlowIssue, 0, len(issues))
	for _, i := range issues {
		out = append(out, FlowIssue{OperationID: i.OperationID, Code: i.Error.Code, Message: i.Error.Message})
	}
	return out, nil
}

// StartFlow turns a flow on. Starting a started flow succeeds.
func (c *Client) StartFlow(ctx context.Context, ref FlowRef) error {
	return c.flowAction(ctx, "StartFlow", ref, "start")
}

// StopFlow turns a flow off. Stopping a stopped flow succeeds.
func (c *Client) StopFlow(ctx context.Context, ref FlowRef) error {
	return c.flowAction(ctx, "StopFlow", ref, "stop")
}

func (c *Client) flowAction(ctx context.Context, op string, ref FlowRef, action string) error {
	if err := ref.validate(); err != nil {
		return err
	}
	_, err := c.apiCall(ctx, op, "POST", c.flowURL(ref.path()+"/"+action, nil), emptyBody)
	return err
}

// flowURL adds api-version (and q) to a Flow API path.
func (c *Client) flowURL(path string, q url.Values) string {
	if q == nil {
		q = url.Values{}
	}
	q.Set("api-version", apiVersionFlow)
	return c.cfg.FlowURL + path + "?" + encodeQuery(q)
}
