package tools

import (
	"context"
	"errors"
	"net/http"
	"strings"

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

// refusal is a class of upstream refusal. classify is the one switch on upstream
// statuses; each API (Power Automate, Power Apps, a connector runtime) words each class
// in its own table (refusalWords), so the three mappings cannot drift apart.
type refusal int

const (
	refusedOther refusal = iota
	refusedAuth
	refusedDLP
	refusedForbidden
	refusedNotFound
	refusedConflict
	refusedThrottled
	refusedServer
	refusedInvalid
	numRefusals
)

func classify(e *powerautomate.APIError) refusal {
	switch {
	case e.Status == http.StatusUnauthorized:
		return refusedAuth
	case isDLP(e.Code) || e.Status == 442: // 442: a connector's DLP refusal
		return refusedDLP
	case e.Status == http.StatusForbidden:
		return refusedForbidden
	case e.Status == http.StatusNotFound:
		return refusedNotFound
	case e.Status == http.StatusConflict:
		return refusedConflict
	case e.Status == http.StatusTooManyRequests:
		return refusedThrottled
	case e.Status >= 500:
		return refusedServer
	case e.Status == http.StatusBadRequest:
		return refusedInvalid
	}
	return refusedOther
}

// refusalWords is one API's message and next step per refusal; in a next step
// {dashboard} stands for the dashboard URL and {wait} for how long to wait.
type refusalWords [numRefusals][2]string

func (w *refusalWords) toolError(e *powerautomate.APIError, r refusal, dashboardURL string) *ToolError {
	next := w[r][1]
	if strings.Contains(next, "{") {
		next = strings.NewReplacer("{dashboard}", dashboardURL, "{wait}", retryHint(e)).Replace(next)
	}
	return &ToolError{Status: e.Status, Code: e.Code, Message: w[r][0], Next: next}
}

// flowWords word Power Automate's refusals (the catalog's generic mapping).
var flowWords = refusalWords{
	refusedOther:     {"Power Automate refused the request", ""},
	refusedAuth:      {"Power Automate refused the delegated token", "reconnect at {dashboard} and retry"},
	refusedDLP:       {"a data loss prevention (DLP) policy of your tenant blocks this", "ask a Power Platform admin about the DLP policy, or change the connectors the flow uses"},
	refusedForbidden: {"Power Automate refused this for your account", "check that you own or co-own the flow"},
	refusedNotFound:  {"not found", "list the parent with list_live_flows or get_live_flow_runs and use a returned name"},
	refusedConflict:  {"the change conflicts with the flow's current state", "read the flow again with get_live_flow and retry"},
	refusedThrottled: {"Power Automate is throttling requests", "wait {wait} and retry"},
	refusedServer:    {"Power Automate had a server error", "retry in a minute"},
	refusedInvalid:   {"Power Automate rejected the request as invalid", "check the arguments; for definitions run validate_live_flow first"},
}

func apiToolError(e *powerautomate.APIError, dashboardURL string) *ToolError {
	r := classify(e)
	if r != refusedAuth {
		switch e.Code {
		case powerautomate.CodeConnectionAuthorizationFailed:
			return &ToolError{Status: e.Status, Code: e.Code,
				Message: "you do not have access to this flow or to a connection it uses (or it does not exist)",
				Next:    "check the flowName with list_live_flows; ask the flow's owner to share it or its connections"}
		case powerautomate.CodeEnvironmentAccessDenied:
			return &ToolError{Status: e.Status, Code: e.Code, Message: "you do not have access to this environment",
				Next: "pick an environment from list_live_environments"}
		case powerautomate.CodeFlowNotFound, powerautomate.CodeWorkflowRunNotFound:
			if r != refusedDLP && r != refusedForbidden {
				r = refusedNotFound
			}
		}
	}
	return flowWords.toolError(e, r, dashboardURL)
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
