package powerautomate

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

var (
	// ErrTimeout is returned (wrapped) when a call used up Config.Timeout.
	ErrTimeout = errors.New("powerautomate: upstream call timed out")
	// ErrLinkNotAllowed is returned (wrapped) for a nextLink, content link,
	// callback or runtime URL outside the configured hosts.
	ErrLinkNotAllowed = errors.New("powerautomate: link not on an allowed host")
	// ErrRedirectRefused is returned (wrapped) when upstream redirects a
	// request to a place its credentials (or our trust) do not extend to.
	ErrRedirectRefused = errors.New("powerautomate: redirect refused")
)

// Error codes the tools branch on.
const (
	CodeConnectionAuthorizationFailed = "ConnectionAuthorizationFailed"
	CodeFlowNotFound                  = "FlowNotFound"
	CodeEnvironmentAccessDenied       = "EnvironmentAccessDenied"
	CodeWorkflowRunNotFound           = "WorkflowRunNotFound"
	CodeTooManyConcurrentRequests     = "TooManyConcurrentRequests"
	CodeExpiredAuthenticationToken    = "ExpiredAuthenticationToken"
	codeARMRequestFailed              = "AzureResourceManagerRequestFailed"
)

// APIError is a non-2xx upstream answer. Code and Message come from the
// body's error object (or string); an AzureResourceManagerRequestFailed
// wrapper is unwrapped so that Code is the inner code (WorkflowRunNotFound)
// and WrapperCode keeps the outer one. Message is upstream text: show it to
// a user only after deciding it is safe.
type APIError struct {
	Status      int
	Code        string
	Message     string
	WrapperCode string
	RetryAfter  time.Duration // from Retry-After, zero when absent
	RequestID   string        // x-ms-request-id, for support
}

func (e *APIError) Error() string {
	code := e.Code
	if code == "" {
		code = http.StatusText(e.Status)
	}
	return fmt.Sprintf("powerautomate: upstream status %d (%s)", e.Status, code)
}

// InvalidIDError reports an identifier rejected before any request was made.
// Value is quoted and shortened so that it is safe to log and show.
type InvalidIDError struct {
	Field  string // "environment", "flow", "run", ...
	Value  string
	Reason string
}

func (e *InvalidIDError) Error() string {
	return fmt.Sprintf("powerautomate: invalid %s %s: %s", e.Field, e.Value, e.Reason)
}

// parseAPIError builds an APIError from a response. The body may carry
// {"error":{"code","message"}}, {"error":"text"}, or the connector runtime's
// {"status":n,"message":"..."}; anything else leaves Code empty.
func parseAPIError(status int, header http.Header, body []byte) *APIError {
	e := &APIError{
		Status:     status,
		RetryAfter: parseRetryAfter(header.Get("Retry-After"), time.Now()),
		RequestID:  header.Get("x-ms-request-id"),
	}
	var env struct {
		Error   json.RawMessage `json:"error"`
		Message string          `json:"message"`
	}
	if json.Unmarshal(body, &env) != nil {
		return e
	}
	var text string
	var obj struct{ Code, Message string }
	switch {
	case json.Unmarshal(env.Error, &text) == nil:
		e.Message = text
	case json.Unmarshal(env.Error, &obj) == nil && (obj.Code != "" || obj.Message != ""):
		e.Code, e.Message = obj.Code, obj.Message
	default:
		e.Message = env.Message
	}
	if e.Code == codeARMRequestFailed {
		if code, msg, ok := unwrapARMMessage(e.Message); ok {
			e.WrapperCode, e.Code, e.Message = e.Code, code, msg
		}
	}
	return e
}

// unwrapARMMessage digs the inner error out of
// "Request to Azure Resource Manager failed with error: '{\"error\":{...}}'".
func unwrapARMMessage(msg string) (code, message string, ok bool) {
	start, end := strings.Index(msg, "{"), strings.LastIndex(msg, "}")
	if start < 0 || end <= start {
		return "", "", false
	}
	var inner struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if json.Unmarshal([]byte(msg[start:end+1]), &inner) != nil || inner.Error.Code == "" {
		return "", "", false
	}
	return inner.Error.Code, inner.Error.Message, true
}

// parseRetryAfter reads delta-seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.Atoi(v); err == nil {
		if secs < 0 {
			return 0
		}
		return time.Duration(secs) * time.Second
	}
	if at, err := http.ParseTime(v); err == nil && at.After(now) {
		return at.Sub(now)
	}
	return 0
}
