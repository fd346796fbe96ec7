package tools

import (
	"context"
	"errors"
	"net/http"
	"strings"

	json "github.com/segmentio/encoding/json"

	"github.com/flowstudio/mcp/tools/powerautomate"
)

// add_live_flow_to_solution: puts a cloud flow into an unmanaged solution of its
// environment, by one of two routes (what each is based on is in the powerautomate
// package: dataverse.go and migrate.go):
//
//   - a flow stored in Dataverse (it has a workflowEntityId) is added through the
//     environment's Dataverse Web API (AddSolutionComponent, component type 29). That
//     token audience (the org URL) is beyond the default sign-in: the user grants it
//     from the dashboard ("dataverse" grant); without it the tool says so and sends
//     nothing to Dataverse.
//   - a flow stored only in the Flow service (no workflowEntityId: the maker portal's
//     "Outside Dataverse" tab) is moved in by the Flow service's migrateFlows, as the
//     portal does, with the Flow audience of the default sign-in: no new grant. The
//     solution's unique name (and whether it is managed) is still read from Dataverse
//     under the grant; given solutionId and no grant, the move goes ahead without it.
//
// Decisions: a managed solution is refused before anything changes (when it can be
// read). A flow already in the target solution is not an error: adding it again is a
// no-op in Dataverse and answers the same component, and a moved flow is in Dataverse
// from then on, so a repeat takes the first route: the tool is idempotent. A flow in
// another unmanaged solution is added to this one as well (a component may belong to
// several). A move is checked by reading the flow back: it must now have a
// workflowEntityId, else the call is an error (a write that did not apply).

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
	MovedIntoDataverse  bool   `json:"movedIntoDataverse"`
	Next                string `json:"next"`
}

func addLiveFlowToSolution() *Tool {
	return Define(Tool{
		Name:  "add_live_flow_to_solution",
		Title: "Add a cloud flow to a solution",
		Description: "Adds a cloud flow to an unmanaged solution of its environment (by solutionId or solutionUniqueName), " +
			"as the maker portal's Solutions → Add existing → Cloud flow does, so it can be exported and moved with the " +
			"solution. Works for flows already in Dataverse and for flows outside Dataverse (not in any solution yet), " +
			"which Power Automate moves into the solution (movedIntoDataverse: true; treat this as permanent). Reading the " +
			"solution, and adding a flow already in Dataverse, goes through the environment's Dataverse: an extra permission " +
			"your user grants once on the FlowStudio dashboard (Grant Dataverse access); without it the error says so, and a " +
			"flow outside Dataverse can still be moved by solutionId. Managed solutions are refused. Repeating the call is " +
			"harmless: a flow already in the solution stays there once. Next: get_live_flow to check the flow, which keeps " +
			"its name and runs.",
		Kind:       Write,
		Group:      Live,
		Idempotent: true,
		Input: inputSchema(environmentNameArg, flowNameArg,
			optionalArg("solutionId", `{"type":"string","minLength":36,"maxLength":36,`+guidPattern+`,"description":"The solution's id (a GUID). Give this or solutionUniqueName."}`),
			optionalArg("solutionUniqueName", `{"type":"string","minLength":1,"maxLength":65,"pattern":"^[A-Za-z0-9_]+$","description":"The solution's unique name (Name column in Power Apps → Solutions), e.g. ContosoInvoicing. Give this or solutionId."}`)),
		Output: json.RawMessage(`{"type":"object","additionalProperties":false,
"required":["environmentName","flowName","flowDisplayName","workflowEntityId","solutionId","solutionUniqueName","solutionDisplayName","solutionComponentId","movedIntoDataverse","next"],"properties":{
"environmentName":{"type":"string"},"flowName":{"type":"string"},"flowDisplayName":{"type":"string"},
"workflowEntityId":{"type":"string","description":"The flow's row id in Dataverse (its solution component id)."},
"solutionId":{"type":"string"},
"solutionUniqueName":{"type":"string","description":"Empty when a flow outside Dataverse was moved by solutionId without the Dataverse grant."},
"solutionDisplayName":{"type":"string","description":"Empty when a flow outside Dataverse was moved by solutionId without the Dataverse grant."},
"solutionComponentId":{"type":"string","description":"The solutioncomponent row that links the flow to the solution; empty after a move (calling again reads it through Dataverse)."},
"movedIntoDataverse":{"type":"boolean","description":"true when the flow was outside Dataverse and Power Automate moved it into the solution (migrateFlows); false when it was added through Dataverse."},
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
		ref := powerautomate.FlowRef{Environment: in.EnvironmentName, Flow: in.FlowName}
		f, err := env.PA.GetFlow(ctx, ref)
		if err != nil {
			return addToSolutionOut{}, err
		}
		outside := f.WorkflowEntityID == ""
		sol, err := env.PA.GetSolution(ctx, org, in.SolutionID, in.SolutionUniqueName)
		switch {
		case err == nil:
		case outside && in.SolutionID != "" && errors.Is(err, powerautomate.ErrConsentRequired):
			// No Dataverse grant: migrateFlows needs only the id (the Flow service checks the rest).
			sol = &powerautomate.Solution{ID: strings.ToLower(in.SolutionID)}
		case errors.Is(err, powerautomate.ErrSolutionNotFound):
			return addToSolutionOut{}, &ToolError{Message: "no solution with that unique name in this environment",
				Next: "check the unique name in Power Apps → Solutions (the Name column, not the display name)"}
		case outside && dataverseNeedsGrant(err):
			te := dataverseError(err, env.DashboardURL, org, "solution").(*ToolError)
			te.Next += "; or pass solutionId instead: this flow is outside Dataverse, and moving it by id needs no extra consent"
			return addToSolutionOut{}, te
		default:
			return addToSolutionOut{}, dataverseError(err, env.DashboardURL, org, "solution")
		}
		if sol.IsManaged {
			return addToSolutionOut{}, &ToolError{Message: "the solution " + clipText(sol.UniqueName, 65) + " is managed: nothing can be added to a managed solution",
				Next: "pick an unmanaged solution (Power Apps → Solutions, Managed column No), or create one"}
		}
		out := addToSolutionOut{EnvironmentName: in.EnvironmentName, FlowName: f.Name, FlowDisplayName: f.DisplayName,
			WorkflowEntityID: f.WorkflowEntityID, SolutionID: sol.ID, SolutionUniqueName: sol.UniqueName,
			SolutionDisplayName: sol.FriendlyName, Next: "the flow is in the solution; export the solution from Power Apps → Solutions to move it between environments"}
		if !outside {
			out.SolutionComponentID, err = env.PA.AddSolutionComponent(ctx, org, f.WorkflowEntityID, powerautomate.ComponentTypeWorkflow, sol.UniqueName)
			if err != nil {
				return addToSolutionOut{}, dataverseError(err, env.DashboardURL, org, "flow")
			}
			return out, nil
		}
		if err := env.PA.MigrateFlowToSolution(ctx, ref, sol.ID); err != nil {
			return addToSolutionOut{}, migrateError(err, env.DashboardURL)
		}
		moved, err := env.PA.GetFlow(ctx, ref)
		if err != nil {
			te := &ToolError{Message: "Power Automate accepted the move into the solution, but reading the flow back failed",
				Next: "check the flow with get_live_flow; calling add_live_flow_to_solution again is harmless"}
			if up := upstreamToolError(err, env.DashboardURL); up != nil {
				te.Status, te.Code = up.Status, up.Code
			}
			return addToSolutionOut{}, te
		}
		if moved.WorkflowEntityID == "" {
			return addToSolutionOut{}, &ToolError{Message: "Power Automate accepted the move into the solution, but the flow is not in Dataverse yet",
				Next: "call add_live_flow_to_solution again in a minute: once the flow is in Dataverse it is added (or found) through Dataverse"}
		}
		out.WorkflowEntityID, out.MovedIntoDataverse = moved.WorkflowEntityID, true
		out.Next = "the flow is now stored in Dataverse and in the solution (its name and runs are unchanged); " +
			"export the solution from Power Apps → Solutions to move it between environments"
		return out, nil
	})
}

// migrateWords word the Flow service's refusals of migrateFlows (the codes beyond
// FlowNotFound are not documented, so the status decides).
var migrateWords = refusalWords{
	refusedOther:     {"Power Automate refused to move the flow into the solution", ""},
	refusedAuth:      flowWords[refusedAuth],
	refusedDLP:       flowWords[refusedDLP],
	refusedForbidden: {"Power Automate refused to move this flow for your account: moving a flow into a solution takes its owner", "ask the flow's owner (creatorObjectId in get_live_flow) to add it, or an environment admin (Add-AdminFlowsToSolution)"},
	refusedNotFound:  {"Power Automate did not find the flow or the solution", "check the flow with list_live_flows and the solution's id in Power Apps → Solutions"},
	refusedConflict:  {"Power Automate says the flow is already in a solution", "call add_live_flow_to_solution again: a flow already in Dataverse is added through Dataverse"},
	refusedThrottled: flowWords[refusedThrottled],
	refusedServer:    flowWords[refusedServer],
	refusedInvalid:   {"Power Automate refused to move the flow into this solution", "check that the solution is unmanaged; some flows cannot be moved into a solution (Microsoft's known limitations of solutions): the maker portal's Add existing → Outside Dataverse shows why"},
}

// migrateError maps a failure of migrateFlows; non-API failures (timeout, reconnect)
// take the catalog's generic mapping.
func migrateError(err error, dashboardURL string) error {
	var e *powerautomate.APIError
	if !errors.As(err, &e) {
		return err
	}
	r := classify(e)
	if e.Code == powerautomate.CodeFlowNotFound && r != refusedAuth {
		return &ToolError{Status: e.Status, Code: e.Code, Message: "Power Automate did not find this flow to move",
			Next: "check the flowName with list_live_flows"}
	}
	return migrateWords.toolError(e, r, dashboardURL)
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
	if dataverseNeedsGrant(err) {
		te := dataverseConsentError(dashboardURL, org.Audience)
		if errors.As(err, &e) {
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

// dataverseNeedsGrant: no Dataverse token without the grant, or Dataverse refused ours.
func dataverseNeedsGrant(err error) bool {
	var e *powerautomate.APIError
	return errors.Is(err, powerautomate.ErrConsentRequired) || errors.As(err, &e) && e.Status == http.StatusUnauthorized
}

// dataverseConsentError says that Dataverse needs the grant the user has not given.
func dataverseConsentError(dashboardURL, audience string) *ToolError {
	return &ToolError{
		Message: "adding a flow to a solution goes through the environment's Dataverse, which needs an extra consent beyond " +
			"the default sign-in (token audience " + audience + "); it has not been granted or has lapsed, and this server never widens consent on its own",
		Next: "grant Dataverse access at " + dashboardURL + " (its Grant Dataverse access button), then retry",
	}
}
