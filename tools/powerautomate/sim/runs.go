package sim

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
)

// livePace is the typical action duration of runs started through the API:
// short, so that a run completes a moment after it starts (unless it
// waits: Wait actions and approvals take their real time).
const livePace = 10 * time.Millisecond

var runFilterRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`(?i)^(status|starttime)\s+(eq|ge|gt|le|lt)\s+(.+)$`) }) // compiled on first use: serve with a remote simulator never needs it

// runFilter is a parsed $filter of the runs list: every check must hold.
type runFilter struct {
	checks []func(*run, runView) bool
}

func parseRunFilter(filter string) (*runFilter, error) {
	f := &runFilter{}
	if strings.TrimSpace(filter) == "" {
		return f, nil
	}
	for _, clause := range regexp.MustCompile(`(?i)\s+and\s+`).Split(strings.TrimSpace(filter), -1) {
		m := runFilterRE().FindStringSubmatch(strings.TrimSpace(clause))
		if m == nil {
			return nil, fmt.Errorf("unsupported clause %q", clause)
		}
		field, op, value := strings.ToLower(m[1]), strings.ToLower(m[2]), strings.Trim(m[3], "'")
		if field == "status" {
			if op != "eq" {
				return nil, fmt.Errorf("status supports eq only")
			}
			f.checks = append(f.checks, func(_ *run, v runView) bool { return strings.EqualFold(v.status, value) })
			continue
		}
		t, err := time.Parse(time.RFC3339, value)
		if err != nil {
			return nil, fmt.Errorf("bad time %q", value)
		}
		cmp := map[string]func(time.Time) bool{
			"eq": func(s time.Time) bool { return s.Equal(t) }, "ge": func(s time.Time) bool { return !s.Before(t) },
			"gt": func(s time.Time) bool { return s.After(t) }, "le": func(s time.Time) bool { return !s.After(t) },
			"lt": func(s time.Time) bool { return s.Before(t) },
		}[op]
		f.checks = append(f.checks, func(r *run, _ runView) bool { return cmp(r.start) })
	}
	return f, nil
}

func (s *Sim) listRuns(w http.ResponseWriter, r *http.Request) {
	f := s.resolveFlow(w, r)
	if f == nil {
		return
	}
	filter, err := parseRunFilter(r.URL.Query().Get("$filter"))
	if err != nil {
		writeError(w, http.StatusBadRequest, "InvalidFilter", "The $filter is not valid: "+err.Error()+".")
		return
	}
	now := s.now()
	var runs []*run
	for _, rn := range f.runs {
		v := rn.view(now)
		keep := true
		for _, check := range filter.checks {
			keep = keep && check(rn, v)
		}
		if keep {
			runs = append(runs, rn)
		}
	}
	base := infoOf(r).base
	writePage(w, r, runs, func(rn *run) string { return rn.name }, 50, "nextLink", func(rn *run) any { return s.runJSON(rn, base, now, false) })
}

// resolveRun finds the run of the request or writes the wrapped WorkflowRunNotFound.
func (s *Sim) resolveRun(w http.ResponseWriter, r *http.Request) *run {
	f := s.resolveFlow(w, r)
	if f == nil {
		return nil
	}
	rn := f.findRun(r.PathValue("run"))
	if rn == nil {
		writeRunNotFound(w, f, r.PathValue("run"))
	}
	return rn
}

func (s *Sim) getRun(w http.ResponseWriter, r *http.Request) {
	if rn := s.resolveRun(w, r); rn != nil {
		expand := strings.Contains(strings.ToLower(r.URL.Query().Get("$expand")), "actions")
		writeJSON(w, http.StatusOK, s.runJSON(rn, infoOf(r).base, s.now(), expand))
	}
}

func (s *Sim) cancelRun(w http.ResponseWriter, r *http.Request) {
	rn := s.resolveRun(w, r)
	if rn == nil {
		return
	}
	now := s.now()
	if v := rn.view(now); v.status != "Running" {
		inner, _ := json.Marshal(apiError{errorBody{Code: "WorkflowRunInvalidState",
			Message: "The workflow run '" + rn.name + "' cannot be cancelled because it is in '" + v.status + "' state."}})
		writeError(w, http.StatusConflict, "AzureResourceManagerRequestFailed", "Request to Azure Resource Manager failed with error: '"+string(inner)+"'.")
		return
	}
	rn.cancelledAt = now
	w.WriteHeader(http.StatusOK)
}

func (s *Sim) listRunActions(w http.ResponseWriter, r *http.Request) {
	rn := s.resolveRun(w, r)
	if rn == nil {
		return
	}
	base := infoOf(r).base
	var items []any
	for _, a := range rn.view(s.now()).actions {
		items = append(items, map[string]any{
			"name": a.name, "id": runID(rn) + "/actions/" + a.name, "type": "Microsoft.ProcessSimple/environments/flows/runs/actions",
			"properties": s.actionProps(rn, a, base),
		})
	}
	collection(w, items, "nextLink", "")
}

func (s *Sim) listRepetitions(w http.ResponseWriter, r *http.Request) {
	rn := s.resolveRun(w, r)
	if rn == nil {
		return
	}
	action := findNamed(rn.view(s.now()).actions, r.PathValue("action"))
	if action == nil {
		inner, _ := json.Marshal(apiError{errorBody{Code: "WorkflowRunActionNotFound",
			Message: "The workflow '" + rn.flow.name + "' run '" + rn.name + "' action '" + r.PathValue("action") + "' could not be found."}})
		writeError(w, http.StatusNotFound, "AzureResourceManagerRequestFailed", "Request to Azure Resource Manager failed with error: '"+string(inner)+"'.")
		return
	}
	base := infoOf(r).base
	writePage(w, r, action.reps, repName, 50, "nextLink", func(rep *repRecord) any {
		props := map[string]any{
			"repetitionIndexes": rep.indexes, "startTime": rep.start.Format(time.RFC3339Nano), "endTime": rep.end.Format(time.RFC3339Nano),
			"status": rep.status, "code": rep.code,
			"correlation": map[string]string{"actionTrackingId": trackingID(rn, action.name+"/"+repName(rep)), "clientTrackingId": rn.trackingID},
		}
		if rep.err != nil {
			props["error"] = rep.err
		}
		segs := []string{"workflows", rn.flow.workflowID, "runs", rn.name, "actions", action.name, "repetitions", repName(rep), "contents"}
		s.addLinks(props, base, segs, "Action", rep.inputs, rep.outputs)
		return map[string]any{
			"name": repName(rep), "id": runID(rn) + "/actions/" + action.name + "/repetitions/" + repName(rep),
			"type": "Microsoft.ProcessSimple/environments/flows/runs/actions/repetitions", "properties": props,
		}
	})
}

// repName is "000002", or "000001-000003" in nested loops.
func repName(rep *repRecord) string {
	parts := make([]string, len(rep.indexes))
	for i, ix := range rep.indexes {
		parts[i] = fmt.Sprintf("%06d", ix.ItemIndex)
	}
	return strings.Join(parts, "-")
}

func runID(rn *run) string {
	return "/providers/Microsoft.ProcessSimple/environments/" + rn.flow.env.name + "/flows/" + rn.flow.name + "/runs/" + rn.name
}

func trackingID(rn *run, what string) string {
	return uuid.NewSHA1(simNamespace, []byte(rn.name+"/"+what)).String()
}

func (s *Sim) runJSON(rn *run, base string, now time.Time, withActions bool) map[string]any {
	v := rn.view(now)
	corr := map[string]any{"clientTrackingId": rn.trackingID}
	if len(rn.keywords) > 0 {
		corr["clientKeywords"] = rn.keywords
	}
	trigger := map[string]any{
		"name": rn.trigger, "startTime": rn.start.Add(-livePace).Format(time.RFC3339Nano), "endTime": rn.start.Format(time.RFC3339Nano),
		"correlation": map[string]string{"clientTrackingId": rn.trackingID}, "code": "OK", "status": "Succeeded",
	}
	s.addLinks(trigger, base, []string{"workflows", rn.flow.workflowID, "runs", rn.name, "contents"}, "Trigger", rn.triggerInputs, rn.triggerOutputs)
	props := map[string]any{"startTime": rn.start.Format(time.RFC3339Nano), "status": v.status, "correlation": corr, "trigger": trigger}
	if !v.end.IsZero() {
		props["endTime"] = v.end.Format(time.RFC3339Nano)
	}
	if v.code != "" {
		props["code"] = v.code
	}
	if v.err != nil {
		props["error"] = v.err
	}
	if withActions {
		actions := map[string]any{}
		for _, a := range v.actions {
			actions[a.name] = s.actionProps(rn, a, base)
		}
		props["actions"] = actions
	}
	return map[string]any{"name": rn.name, "id": runID(rn), "type": "Microsoft.ProcessSimple/environments/flows/runs", "properties": props}
}

func (s *Sim) actionProps(rn *run, a *actionRecord, base string) map[string]any {
	props := map[string]any{
		"startTime": a.start.Format(time.RFC3339Nano), "status": a.status, "code": a.code,
		"correlation": map[string]string{"actionTrackingId": trackingID(rn, a.name), "clientTrackingId": rn.trackingID},
	}
	if !a.end.IsZero() {
		props["endTime"] = a.end.Format(time.RFC3339Nano)
	}
	if a.err != nil {
		props["error"] = a.err
	}
	if len(a.reps) > 0 {
		props["repetitionCount"] = len(a.reps)
	}
	s.addLinks(props, base, []string{"workflows", rn.flow.workflowID, "runs", rn.name, "actions", a.name, "contents"}, "Action", a.inputs, a.outputs)
	return props
}

// addLinks adds inputsLink/outputsLink for the contents that exist.
func (s *Sim) addLinks(props map[string]any, base string, segs []string, kind string, inputs, outputs []byte) {
	if inputs != nil {
		props["inputsLink"] = s.contentLink(base, append(segs[:len(segs):len(segs)], kind+"Inputs"), len(inputs))
	}
	if outputs != nil {
		props["outputsLink"] = s.contentLink(base, append(segs[:len(segs):len(segs)], kind+"Outputs"), len(outputs))
	}
}

// contentLink is a SAS-style link: the path is signed with the content key
// and checked by serveContent; no bearer token is involved.
func (s *Sim) contentLink(base string, segs []string, size int) map[string]any {
	return map[string]any{"uri": s.signedURL(base, segs, "read"), "contentVersion": "sim", "contentSize": size}
}

func (s *Sim) signedURL(base string, segs []string, permission string) string {
	escaped := make([]string, len(segs))
	for i, seg := range segs {
		escaped[i] = url.PathEscape(seg)
	}
	path := "/" + strings.Join(segs, "/")
	q := url.Values{"api-version": {"2016-06-01"}, "sp": {path + "/" + permission}, "sv": {"1.0"}, "sig": {s.sign(path)}}
	return base + "/content/" + strings.Join(escaped, "/") + "?" + q.Encode()
}

func (s *Sim) sign(path string) string {
	m := hmac.New(sha256.New, s.contentKey)
	io.WriteString(m, strings.ToLower(path))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// triggerType returns the type of a flow's trigger, "" when there is none.
func triggerType(f *flow, name string) (string, string) {
	var d wfDefinition
	json.Unmarshal(f.definition, &d)
	for n, t := range d.Triggers {
		if strings.EqualFold(n, name) {
			return n, t.Type
		}
	}
	return "", ""
}

func (s *Sim) listCallbackURL(w http.ResponseWriter, r *http.Request) {
	f := s.resolveFlow(w, r)
	if f == nil {
		return
	}
	name, typ := triggerType(f, r.PathValue("trigger"))
	switch {
	case name == "":
		writeError(w, http.StatusNotFound, "WorkflowTriggerNotFound", "The workflow '"+f.name+"' trigger '"+r.PathValue("trigger")+"' could not be found.")
	case !strings.EqualFold(typ, "Request"):
		writeError(w, http.StatusBadRequest, "WorkflowTriggerCallbackUrlNotSupported", "The trigger '"+name+"' of type '"+typ+"' has no callback URL.")
	default:
		u := s.signedURL(infoOf(r).base, []string{"workflows", f.workflowID, "triggers", name, "paths", "invoke"}, "run")
		writeJSON(w, http.StatusOK, map[string]any{"response": map[string]any{"value": u, "method": "POST"}})
	}
}

// runTrigger serves POST …/triggers/{trigger}/run on the Flow API.
func (s *Sim) runTrigger(w http.ResponseWriter, r *http.Request) {
	f := s.resolveFlow(w, r)
	if f == nil {
		return
	}
	name, _ := triggerType(f, r.PathValue("trigger"))
	if name == "" {
		writeError(w, http.StatusNotFound, "WorkflowTriggerNotFound", "The workflow '"+f.name+"' trigger '"+r.PathValue("trigger")+"' could not be found.")
		return
	}
	s.startRun(w, r, f, nil, infoOf(r).base)
}

// startRun creates a live run from the request body and answers 202 (or the
// flow's Response action); the caller holds s.mu.
func (s *Sim) startRun(w http.ResponseWriter, r *http.Request, f *flow, keywords []string, base string) {
	if f.state != "Started" {
		writeError(w, http.StatusConflict, "WorkflowDisabled", "The workflow '"+f.name+"' is disabled.")
		return
	}
	payload, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if len(strings.TrimSpace(string(payload))) == 0 {
		payload = []byte("{}")
	}
	if !json.Valid(payload) {
		writeError(w, http.StatusBadRequest, "InvalidRequestContent", "The request body is not valid JSON.")
		return
	}
	rn := s.newRun(f, s.now(), livePace, true, string(payload), keywords)
	w.Header().Set("x-ms-workflow-run-id", rn.name)
	w.Header().Set("x-ms-client-tracking-id", rn.trackingID)
	w.Header().Set("Location", base+"/flow"+runID(rn)+"?api-version=2016-11-01")
	w.WriteHeader(http.StatusAccepted)
}

func (s *Sim) resubmitRun(w http.ResponseWriter, r *http.Request) {
	rn := s.resolveRun(w, r)
	if rn == nil {
		return
	}
	if name, _ := triggerType(rn.flow, r.PathValue("trigger")); name == "" {
		writeError(w, http.StatusNotFound, "WorkflowTriggerNotFound", "The workflow '"+rn.flow.name+"' trigger '"+r.PathValue("trigger")+"' could not be found.")
		return
	}
	payload := "{}"
	var out struct {
		Body json.RawMessage `json:"body"`
	}
	if json.Unmarshal(rn.triggerOutputs, &out) == nil && out.Body != nil {
		payload = string(out.Body)
	}
	nr := s.newRun(rn.flow, s.now(), livePace, true, payload, []string{"resubmitFlow"})
	w.Header().Set("x-ms-workflow-run-id", nr.name)
	w.WriteHeader(http.StatusAccepted)
}
