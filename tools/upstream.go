package tools

import (
	"context"
	"errors"
	"net/http"

	"github.com/flowstudio/mcp/tools/powerautomate"
)

// withUpstreamStatus records upstream responses made under ctx; the returned func
// reads the last status (0 when no upstream call was made), for metering.
func withUpstreamStatus(ctx context.Context) (context.Context, func() int) {
	ctx, stats := powerautomate.WithCallStats(ctx)
	return ctx, stats.Status
}

// upstreamToolError maps the upstream client's errors to what an agent can act on.
// Upstream message text is never echoed: it can carry names from the tenant and is not
// ours to vouch for. nil means "not an upstream condition".
func upstreamToolError(err error, dashboardURL string) *ToolError {
	var invalid *powerautomate.InvalidIDError
	var api *powerautomate.APIError
	switch {
	case errors.As(err, &invalid):
		return &ToolError{Message: "invalid " + invalid.Field + " identifier: " + invalid.Reason,
			Next: "pass the exact name returned by a list_live_* tool"}
	case errors.Is(err, context.Canceled):
		// The client cancelled the call (notifications/cancelled); the answer is not sent.
		return &ToolError{Message: "the call was cancelled"}
	case errors.Is(err, powerautomate.ErrReconnect):
		return &ToolError{Message: "Power Automate access needs to be reconnected",
			Next: "reconnect at " + dashboardURL + " and retry"}
	case errors.Is(err, powerautomate.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return &ToolError{Message: "Power Automate did not answer in time",
			Next: "retry in a few seconds; narrow the request (smaller page size or time window) if it keeps happening"}
	case errors.Is(err, powerautomate.ErrLinkNotAllowed), errors.Is(err, powerautomate.ErrRedirectRefused):
		return &ToolError{Message: "upstream pointed to a host this server does not trust, so the request was not sent"}
	case errors.As(err, &api):
		return apiToolError(api, dashboardURL)
	}
	return nil
}

func apiToolError(e *powerautomate.APIError, dashboardURL string) *ToolError {
	te := &ToolError{Status: e.Status, Code: e.Code}
	switch {
	case e.Status == http.StatusUnauthorized:
		te.Message = "Power Automate refused the delegated token"
		te.Next = "reconnect at " + dashboardURL + " and retry"
	case e.Code == powerautomate.CodeConnectionAuthorizationFailed:
		te.Message = "you do not have access to this flow or to a connection it uses (or it does not exist)"
		te.Next = "check the flowName with list_live_flows; ask the flow's owner to share it or its connections"
	case e.Code == powerautomate.CodeEnvironmentAccessDenied:
		te.Message = "you do not have access to this environment"
		te.Next = "pick an environment from list_live_environments"
	case isDLP(e.Code):
		te.Message = "a data loss prevention (DLP) policy of your tenant blocks this"
		te.Next = "ask a Power Platform admin about the DLP policy, or change the connectors the flow uses"
	case e.Status == http.StatusForbidden:
		te.Message = "Power Automate refused this for your account"
		te.Next = "check that you own or co-own the flow"
	case e.Status == http.StatusNotFound || e.Code == powerautomate.CodeFlowNotFound || e.Code == powerautomate.CodeWorkflowRunNotFound:
		te.Message = "not found"
		te.Next = "list the parent with list_live_flows or get_live_flow_runs and use a returned name"
	case e.Status == http.StatusConflict:
		te.Message = "the change conflicts with the flow's current state"
		te.Next = "read the flow again with get_live_flow and retry"
	case e.Status == http.StatusTooManyRequests:
		te.Message = "Power Automate is throttling requests"
		te.Next = "wait " + retryHint(e) + " and retry"
	case e.Status >= 500:
		te.Message = "Power Automate had a server error"
		te.Next = "retry in a minute"
	case e.Status == http.StatusBadRequest:
		te.Message = "Power Automate rejected the request as invalid"
		te.Next = "check the arguments; for definitions run validate_live_flow first"
	default:
		te.Message = "Power Automate refused the request"
	}
	return te
}

func isDLP(code string) bool {
	switch code {
	case "DlpViolation", "ApiPolicyDataFlowViolation", "ApiPolicyEndpointViolation":
		return true
	}
	return false
}

func retryHint(e *powerautomate.APIError) string {
	if e.RetryAfter > 0 {
		return e.RetryAfter.Round(1e9).String()
	}
	return "a few seconds"
}
