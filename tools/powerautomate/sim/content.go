package sim

import (
	"crypto/hmac"
	"encoding/json"
	"net/http"
	"strings"
	"time"
)

// serveContent answers the SAS-style routes on the content host: run
// inputs/outputs (GET) and trigger callbacks (POST). They are authorized by
// the sig parameter alone; an Authorization header is ignored (and
// recorded, so tests can assert that clients never send one).
func (s *Sim) serveContent(w http.ResponseWriter, r *http.Request, info requestInfo, path string) {
	q := r.URL.Query()
	if q.Get("api-version") != "2016-06-01" {
		writeError(w, http.StatusBadRequest, "InvalidApiVersionParameter", "The api-version '"+q.Get("api-version")+"' is invalid. The supported versions are '2016-06-01'.")
		return
	}
	if !hmac.Equal([]byte(q.Get("sig")), []byte(s.sign(path))) {
		writeError(w, http.StatusUnauthorized, "DirectApiInvalidAuthorizationSignature", "The provided authorization signature is not valid.")
		return
	}
	segs := strings.Split(strings.Trim(path, "/"), "/")
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(segs) < 4 || segs[0] != "workflows" || s.workflows[segs[1]] == nil {
		writeError(w, http.StatusNotFound, "WorkflowNotFound", "The workflow could not be found.")
		return
	}
	f := s.workflows[segs[1]]
	if r.Method == http.MethodPost && len(segs) == 6 && segs[2] == "triggers" && segs[4] == "paths" && segs[5] == "invoke" {
		s.startRun(w, r, f, nil, info.base)
		return
	}
	if r.Method != http.MethodGet || segs[2] != "runs" {
		writeError(w, http.StatusNotFound, "NotFound", "No route for this path.")
		return
	}
	rn := f.findRun(segs[3])
	if rn == nil {
		writeRunNotFound(w, f, segs[3])
		return
	}
	body := contentAt(rn, segs[4:], s.now())
	if body == nil {
		writeError(w, http.StatusNotFound, "ContentNotFound", "The requested content does not exist.")
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Write(body)
}

// contentAt resolves contents/{kind}, actions/{a}/contents/{kind} or
// actions/{a}/repetitions/{rep}/contents/{kind} of a run as seen now.
func contentAt(rn *run, segs []string, now time.Time) json.RawMessage {
	pick := func(kind string, inputs, outputs []byte) []byte {
		switch kind {
		case "TriggerInputs", "ActionInputs":
			return inputs
		case "TriggerOutputs", "ActionOutputs":
			return outputs
		}
		return nil
	}
	if len(segs) == 2 && segs[0] == "contents" {
		return pick(segs[1], rn.triggerInputs, rn.triggerOutputs)
	}
	if len(segs) < 4 || segs[0] != "actions" {
		return nil
	}
	for _, a := range rn.view(now).actions {
		if a.name != segs[1] {
			continue
		}
		if len(segs) == 4 && segs[2] == "contents" {
			return pick(segs[3], a.inputs, a.outputs)
		}
		if len(segs) == 6 && segs[2] == "repetitions" && segs[4] == "contents" {
			for _, rep := range a.reps {
				if repName(rep) == segs[3] {
					return pick(segs[5], rep.inputs, rep.outputs)
				}
			}
		}
	}
	return nil
}
