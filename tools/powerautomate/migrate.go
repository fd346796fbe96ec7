package powerautomate

import (
	"context"
	"net/url"
	"strings"
)

// A flow that lives only in the Flow service (no workflowEntityId: the maker portal's
// "Outside Dataverse" tab) has no Dataverse row, so AddSolutionComponent cannot reach
// it. The Flow service moves it into a solution itself: it creates the workflow row and
// makes it a component of the solution (and of the Default and Active solutions). What
// this is based on, [V] verified in the source named, [I] inferred:
//
//	POST {Flow API}/providers/Microsoft.Flow/environments/{env}/solutions/{solutionId}/migrateFlows?api-version=2018-10-01
//	     {"flowsToMigrate":["<flow name GUID>"]}
//
//   - [V] Microsoft's maker module Microsoft.PowerApps.PowerShell, Set-FlowAsSolutionAware
//     ("will add a flow to a solution for the first time"): this route and body, with
//     api-version 2016-11-01, on the Flow endpoint (so the Flow token audience).
//   - [V] PnP CLI for Microsoft 365, `m365 pp solution flow add` (src/m365/pp/commands/
//     solution/solution-flow-add.ts and its spec): the same route and body with
//     api-version 2018-10-01; a solution given by name is first resolved to its id in
//     Dataverse; upstream errors read as {"error":{"message"}}.
//   - [V] a third-party client that captured the maker portal's own call ("Add existing →
//     Cloud flow → Outside Dataverse"): Microsoft.Flow namespace, api-version 2018-10-01,
//     the bare flow GUID in flowsToMigrate (a resource path there gets 404 FlowNotFound).
//   - [V] Microsoft Learn: the portal's Outside Dataverse tab, and the admin cmdlet
//     Add-AdminFlowsToSolution (Administration module 2.0.167+: "migrating non-solution
//     flows to solution as admin"), which does the same for any flow of an environment.
//     Its route is not in any source read, so the admin scope is not used here.
//   - [V] microsoft/power-platform-skills#557: after the move Dataverse holds the
//     workflow row and its memberships in the Active, Default and chosen solutions.
//   - [I] the answer: no source reads it, so neither does this client; any 2xx is
//     success and the caller reads the flow back for its new workflowEntityId.
//   - [I] the refusals beyond FlowNotFound (a flow already in a solution, a flow the
//     caller does not own, an unknown or managed solution): the usual
//     {"error":{"code","message"}} with 409/403/404/400, read like any Flow API error.
//
// api-version 2018-10-01 is what the portal and the CLI send today; Microsoft's module
// defaults to 2016-11-01 for the same route.

const apiVersionMigrateFlows = "2018-10-01"

type migrateFlowsBody struct {
	FlowsToMigrate []string `json:"flowsToMigrate"`
}

// MigrateFlowToSolution moves a flow stored only in the Flow service into a solution
// of its environment (user scope: the caller's own flow). The flow then has a
// workflowEntityId; read it back with GetFlow.
func (c *Client) MigrateFlowToSolution(ctx context.Context, ref FlowRef, solutionID string) error {
	if err := ref.validate(); err != nil {
		return err
	}
	if err := ValidateSolutionID(solutionID); err != nil {
		return err
	}
	u := c.cfg.FlowURL + "/providers/Microsoft.Flow/environments/" + esc(ref.Environment) + "/solutions/" +
		strings.ToLower(solutionID) + "/migrateFlows?" + encodeQuery(url.Values{"api-version": {apiVersionMigrateFlows}})
	_, err := c.apiCall(ctx, "MigrateFlowToSolution", "POST", u, migrateFlowsBody{FlowsToMigrate: []string{strings.ToLower(ref.Flow)}})
	return err
}
