package powerautomate

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"path"
	"time"
)

// Trigger is one trigger of a flow.
type Trigger struct {
	Name              string
	State             string // Enabled, Disabled
	ProvisioningState string
	CreatedTime       time.Time
	ChangedTime       time.Time
}

// ListTriggers returns a flow's triggers (user scope).
func (c *Client) ListTriggers(ctx context.Context, ref FlowRef) ([]Trigger, error) {
	if err := ref.validate(); err != nil {
		return nil, err
	}
	ref.Admin = false
	resp, err := c.apiCall(ctx, "ListTriggers", "GET", c.flowURL(ref.path()+"/triggers", nil), nil)
	if err != nil {
		return nil, err
	}
	type triggerProps struct {
		State             string    `json:"state"`
		ProvisioningState string    `json:"provisioningState"`
		CreatedTime       time.Time `json:"createdTime"`
		ChangedTime       time.Time `json:"changedTime"`
	}
	var p page[armResource[triggerProps]]
	if err := decode("ListTriggers", resp, &p); err != nil {
		return nil, err
	}
	out := make([]Trigger, 0, len(p.Value))
	for _, r := range p.Value {
		t := r.Properties
		out = append(out, Trigger{Name: r.Name, State: t.State, ProvisioningState: t.ProvisioningState, CreatedTime: t.CreatedTime, ChangedTime: t.ChangedTime})
	}
	return out, nil
}

// CallbackURL is a SAS-signed URL that runs a Request trigger when POSTed
// to without Authorization. Treat Value as a secret.
type CallbackURL struct {
	Value  string `json:"value"`
	Method string `json:"method"`
}

// ListCallbackURL returns the callback URL of a Request (manual/HTTP) trigger.
func (c *Client) ListCallbackURL(ctx context.Context, ref FlowRef, trigger string) (*CallbackURL, error) {
	if err := ref.validate(); err != nil {
		return nil, err
	}
	if err := ValidateTriggerName(trigger); err != nil {
		return nil, err
	}
	ref.Admin = false
	u := c.flowURL(ref.path()+"/triggers/"+esc(trigger)+"/listCallbackUrl", nil)
	resp, err := c.apiCall(ctx, "ListCallbackURL", "POST", u, emptyBody)
	if err != nil {
		return nil, err
	}
	// The URL sits in response.value; some deployments answer unwrapped.
	var wrapped struct {
		Response *CallbackURL `json:"response"`
		CallbackURL
	}
	if err := decode("ListCallbackURL", resp, &wrapped); err != nil {
		return nil, err
	}
	cb := wrapped.CallbackURL
	if wrapped.Response != nil {
		cb = *wrapped.Response
	}
	if cb.Value == "" {
		return nil, errors.New("powerautomate: ListCallbackURL: no URL in response")
	}
	return &cb, nil
}

// TriggerResult says how a manual run was started.
type TriggerResult struct {
	Via       string // "callback" (SAS URL, no token) or "run" (triggers/{t}/run fallback)
	Status    int    // HTTP status of the accepted request, usually 202 (200 with a Response action)
	RunName   string // when the service reports it
	Body      []byte // the flow's synchronous response, if any, capped at MaxContentBytes
	Truncated bool
}

// RunManualTrigger runs a flow with a Request trigger. It POSTs payload to
// the trigger's callback URL without Authorization (the URL is SAS-signed
// and must be on ContentHosts); when the trigger has no callback URL, the URL
// is off the allow-list, or the callback demands a token, it falls back to
// POST …/triggers/{trigger}/run on the Flow API. A nil payload sends {}.
func (c *Client) RunManualTrigger(ctx context.Context, ref FlowRef, trigger string, payload json.RawMessage) (*TriggerResult, error) {
	if err := ref.validate(); err != nil {
		return nil, err
	}
	if err := ValidateTriggerName(trigger); err != nil {
		return nil, err
	}
	if payload == nil {
		payload = emptyBody
	}
	if !json.Valid(payload) {
		return nil, errors.New("powerautomate: RunManualTrigger: payload is not JSON")
	}
	cb, err := c.ListCallbackURL(ctx, ref, trigger)
	switch {
	case err == nil:
		if u, perr := url.Parse(cb.Value); perr == nil && c.contentAllowed(u) {
			res, err := c.postCallback(ctx, cb.Value, payload)
			if err == nil || !fallbackStatus(err, http.StatusUnauthorized, http.StatusForbidden) {
				return res, err
			}
		}
	case !fallbackStatus(err, http.StatusBadRequest, http.StatusNotFound, http.StatusMethodNotAllowed):
		return nil, err
	}
	ref.Admin = false
	resp, err := c.apiCall(ctx, "RunManualTrigger", "POST", c.flowURL(ref.path()+"/triggers/"+esc(trigger)+"/run", nil), payload)
	if err != nil {
		return nil, err
	}
	res := &TriggerResult{Via: "run", Status: resp.status, RunName: runNameFromHeader(resp), Body: resp.body}
	if loc := resp.header.Get("Location"); res.RunName == "" && loc != "" {
		if u, err := url.Parse(loc); err == nil && ValidateRunName(path.Base(u.Path)) == nil {
			res.RunName = path.Base(u.Path)
		}
	}
	return res, nil
}

// postCallback POSTs to an allow-listed SAS URL, anonymously.
func (c *Client) postCallback(ctx context.Context, raw string, payload []byte) (*TriggerResult, error) {
	resp, err := c.send(ctx, request{op: "RunManualTrigger", method: "POST", url: raw, body: payload, readLimit: c.cfg.MaxContentBytes})
	if err != nil {
		return nil, err
	}
	return &TriggerResult{Via: "callback", Status: resp.status, RunName: runNameFromHeader(resp), Body: resp.body, Truncated: resp.truncated}, nil
}

func fallbackStatus(err error, statuses ...int) bool {
	var apiErr *APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	for _, s := range statuses {
		if apiErr.Status == s {
			return true
		}
	}
	return false
}
