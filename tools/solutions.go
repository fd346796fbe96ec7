package tools

import (
	"context"
	"errors"
	"net/http"

	json "github.com/segmentio/encoding/json"

	"github.com/flowstudio/mcp/tools/powerautomate"
)

// add_live_flow_to_solution: adds a cloud flow to an unmanaged solution through the
// environment's Dataverse Web API (AddSolutionComponent, component type 29, the
// flow's workflowEntityId; the calls and what they are based on are in
// powerautomate/dataverse.go). Dataverse's token audience (the org URL) is beyond
// the default sign-in: the user grants it from the dashboard ("dataverse" grant),
// and without it the tool says so and sends nothing to Dataverse.
//
// Decisions: a managed solution is refused before the add (Dataverse refuses it
// too). A flow already in the target solution is not an error: adding it again is a
// no-op in Dataverse and answers the same component, so the tool is idempotent. A
// flow in another unmanaged solution is added to this one as well (a component may
// belong to several unmanaged solutions). A flow with no workflowEntityId is not
// stored in Dataverse; the maker portal's "Outside Dataverse" import for those has
// no documented API, so it is refused with that next step.

type addToSolutionIn struct {
	EnvironmentName    string `json:"environmentName"`
	FlowName           string `json:"flowName"`
	SolutionID         string `json:"solutionId"`
	SolutionUniqueName string `json:"solutionUniqueName"`
}

type addToSolutionOut struct {
	EnvironmentName     string `json:"environmentName"`
	FlowName            string `json:"flowName"`
	FlowDisplayName     string `json:"flowDisplayName"`
	WorkflowEntityID    string `json:"workflowEntityId"`
	SolutionID          string `json:"solutionId"`
	SolutionUniqueName  string `json:"solutionUniqueName"`
	SolutionDisplayName string `json:"solutionDisplayName"`
	SolutionComponentID string `json:"solutionComponentId"`
	Next                string `json:"next"`
}

func addLiveFlowToSolution() *Tool {
	return Define(Tool{
		Name:  "add_live_flow_to_solution",
		Title: "Add a cloud flow to a solution",
		Description: "Adds a cloud flow to an unmanaged solution of its environment (by solutionId or solutionUniqueName), " +
			"as the maker portal's Solutions → Add existing → Cloud flow does, so it can be exported and moved with the " +
			"solution. Needs the environment's Dataverse: this is an extra permission your user grants once on the " +
			"FlowStudio dashboard (Grant Dataverse access); without it the error says so. Managed solutions are refused. " +
			"Repeating the call is harmless: a flow already in the solution stays there once. Next: get_live_flow to " +
			"check the flow, which keeps its name and runs.",
		Kind:       Write,
		Group:      Live,
		Idempotent: true,
		Input: json.RawMessage(`{"type":"object","required":["environmentName","flowName"],"additionalProperties":false,"properties":{
"environmentName":` + environmentNameSchema + `,
"flowName":` + flowNameSchema + `,
"solutionId":{"type":"string","minLength":36,"maxLength":36,"pattern":"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$","description":"The solution's id (a GUID). Give this or solutionUniqueName."},
"solutionUniqueName":{"type":"string","minLength":1,"maxLength":65,"pattern":"^[A-Za-z0-9_]+$","description":"The solution's unique name (Name column in Power Apps → Solutions), e.g. ContosoInvoicing. Give this or solutionId."}}}`),
		Output: json.RawMessage(`{"type":"object","additionalProperties":false,
"required":["environmentName","flowName","flowDisplayName","workflowEntityId","solutionId","solutionUniqueName","solutionDisplayName","solutionComponentId","next"],"properties":{
"environmentName":{"type":"string"},"flowName":{"type":"string"},"flowDisplayName":{"type":"string"},
"workflowEntityId":{"type":"string","description":"The flow's row id in Dataverse (its solution component id)."},
"solutionId":{"type":"string"},"solutionUniqueName":{"type":"string"},"solutionDisplayName":{"type":"string"},
"solutionComponentId":{"type":"string","description":"The solutioncomponent row that links the flow to the solution."},
"next":{"type":"string"}}}`),
	}, func(ctx context.Context, env *Env, in addToSolutionIn) (addToSolutionOut, error) {
		if (in.SolutionID == "") == (in.SolutionUniqueName == "") {
			return addToSolutionOut{}, &ToolError{Message: "give exactly one of solutionId and solutionUniqueName",
				Next: "pass the solution's unique name (Power Apps → Solutions, Name column) or its id"}
		}
		if in.SolutionID != "" {
			if err := powerautomate.ValidateSolutionID(in.SolutionID); err != nil {
				return addToSolutionOut{}, err
			}
		} else if err := powerautomate.ValidateSolutionUniqueName(in.SolutionUniqueName); err != nil {
			return addToSolutionOut{}, err
		}
		if err := powerautomate.ValidateFlowName(in.FlowName); err != nil { // before the first request
			return addToSolutionOut{}, err
		}
		org, err := env.PA.GetDataverseOrg(ctx, in.EnvironmentName)
		if errors.Is(err, powerautomate.ErrNoDataverse) {
			return addToSolutionOut{}, &ToolError{Message: "this environment has no Dataverse database, so it has no solutions",
				Next: "pick an environment with Dataverse from list_live_environments, or add a database to this one in the Power Platform admin center"}
		}
		if err != nil {
			return addToSolutionOut{}, connectionsError(err, "environment")
		}
		f, err := env.PA.GetFlow(ctx, powerautomate.FlowRef{Environment: in.EnvironmentName, Flow: in.FlowName})
		if err != nil {
			return addToSolutionOut{}, err
		}
		if f.WorkflowEntityID == "" {
			return addToSolutionOut{}, &ToolError{Message: "this flow is not stored in the environment's Dataverse (it has no workflowEntityId), " +
				"so it cannot be added as a solution component through the API",
				Next: "add it in the maker portal: Solutions → the solution → Add existing → Automation → Cloud flow → Outside Dataverse"}
		}
		sol, err := env.PA.GetSolution(ctx, org, in.SolutionID, in.SolutionUniqueName)
		if errors.Is(err, powerautomate.ErrSolutionNotFound) {
			return addToSolutionOut{}, &ToolError{Message: "no solution with that unique name in this environment",
				Next: "check the unique name in Power Apps → Solutions (the Name column, not the display name)"}
		}
		if err != nil {
			return addToSolutionOut{}, dataverseError(err, env.DashboardURL, org, "solution")
		}
		if sol.IsManaged {
			return addToSolutionOut{}, &ToolError{Message: "the solution " + clipText(sol.UniqueName, 65) + " is managed: nothing can be added to a managed solution",
				Next: "pick an unmanaged solution (Power Apps → Solutions, Managed column No), or create one"}
		}
		id, err := env.PA.AddSolutionComponent(ctx, org, f.WorkflowEntityID, powerautomate.ComponentTypeWorkflow, sol.UniqueName)
		if err != nil {
			return addToSolutionOut{}, dataverseError(err, env.DashboardURL, org, "flow")
		}
		return addToSolutionOut{EnvironmentName: in.EnvironmentName, FlowName: f.Name, FlowDisplayName: f.DisplayName,
			WorkflowEntityID: f.WorkflowEntityID, SolutionID: sol.ID, SolutionUniqueName: sol.UniqueName,
			SolutionDisplayName: sol.FriendlyName, SolutionComponentID: id,
			Next: "the flow is in the solution; export the solution from Power Apps → Solutions to move it between environments"}, nil
	})
}

// dataverseWords word Dataverse's refusals; what is the thing a 404 is about.
var dataverseWords = refusalWords{
	refusedOther:     {"Dataverse refused the request", ""},
	refusedForbidden: {"Dataverse refused this for your account: adding to a solution needs a security role such as Environment Maker or System Customizer in this environment", "ask an environment admin for the role, then retry"},
	refusedNotFound:  {"not found in the environment's Dataverse", "check the solution in Power Apps → Solutions and the flow with list_live_flows"},
	refusedConflict:  {"Dataverse refused the change as conflicting", "retry in a minute"},
	refusedThrottled: {"Dataverse is throttling requests", "wait {wait} and retry"},
	refusedServer:    {"Dataverse had a server error", "retry in a minute"},
	refusedInvalid:   {"Dataverse rejected the request as invalid", "check that the solution is unmanaged and the flow is a cloud flow"},
	refusedDLP:       {"Dataverse refused the request", ""},
}

// Dataverse codes with their own answer.
const (
	dataverseNotMember = "0x80072560" // the user is not a member of the organisation
	dataverseNotFound  = "0x80040217" // ObjectDoesNotExist
)

// dataverseError maps a failure of a Dataverse call: a missing or refused Dataverse
// token is the grant-required answer; Dataverse's refusals get their own words.
func dataverseError(err error, dashboardURL string, org *powerautomate.DataverseOrg, what string) error {
	var e *powerautomate.APIError
	if errors.Is(err, powerautomate.ErrConsentRequired) || errors.As(err, &e) && e.Status == http.StatusUnauthorized {
		te := dataverseConsentError(dashboardURL, org.Audience)
		if e != nil {
			te.Status, te.Code = e.Status, e.Code
		}
		return te
	}
	if !errors.As(err, &e) {
		return err // the catalog's generic mapping (reconnect, timeout, untrusted host)
	}
	r := classify(e)
	switch {
	case e.Code == dataverseNotMember:
		return &ToolError{Status: e.Status, Code: e.Code, Message: "you are not a user of this environment's Dataverse",
			Next: "ask an environment admin to add you with a security role such as Environment Maker, then retry"}
	case (r == refusedNotFound || e.Code == dataverseNotFound) && what == "solution":
		return &ToolError{Status: e.Status, Code: e.Code, Message: "solution not found in this environment",
			Next: "check the solution's id in Power Apps → Solutions, or pass solutionUniqueName"}
	case r == refusedNotFound || e.Code == dataverseNotFound:
		return &ToolError{Status: e.Status, Code: e.Code, Message: "the flow or the solution was not found in the environment's Dataverse",
			Next: "check the flow with list_live_flows and the solution in Power Apps → Solutions"}
	}
	return dataverseWords.toolError(e, r, dashboardURL)
}

// dataverseConsentError says that Dataverse needs the grant the user has not given.
func dataverseConsentError(dashboardURL, audience string) *ToolError {
	return &ToolError{
		Message: "adding a flow to a solution goes through the environment's Dataverse, which needs an extra consent beyond " +
			"the default sign-in (token audience " + audience + "); it has not been granted or has lapsed, and this server never widens consent on its own",
		Next: "grant Dataverse access at " + dashboardURL + " (its Grant Dataverse access button), then retry",
	}
}
