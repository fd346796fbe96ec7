package sim

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// FaultMatch selects requests for a fault. Empty fields match anything.
type FaultMatch struct {
	Method       string // e.g. "GET"
	PathContains string // case-insensitive substring of the path under the mount, e.g. "/flow/" or "/runs"
	Count        int    // how many matching requests get the fault; <= 0 means all until ClearFaults
}

// Fault is what a matched request gets instead of (or before) its answer.
type Fault struct {
	Status         int           // answer with this status; 0 means serve normally after Delay
	RetryAfter     time.Duration // sets Retry-After (whole seconds)
	Body           string        // raw body; empty means the standard error body for Status
	Delay          time.Duration // wait this long first
	DropConnection bool          // close the connection without answering
}

type fault struct {
	match     FaultMatch
	fault     Fault
	remaining int // < 0: unlimited
}

// InjectFault adds a fault; faults are tried in the order added.
func (s *Sim) InjectFault(match FaultMatch, f Fault) {
	remaining := match.Count
	if remaining <= 0 {
		remaining = -1
	}
	s.mu.Lock()
	s.faults = append(s.faults, &fault{match: match, fault: f, remaining: remaining})
	s.mu.Unlock()
}

// ClearFaults removes every fault.
func (s *Sim) ClearFaults() {
	s.mu.Lock()
	s.faults = nil
	s.mu.Unlock()
}

// RecordedRequest is one request the simulator received.
type RecordedRequest struct {
	Host             string // flow, powerapps, bap, ppapi, apihub, content
	Method           string
	Path             string // under the host, original case
	Query            string // raw query
	HadAuthorization bool
	Audience         string // aud of the bearer token, unverified; "" without one
}

// Requests returns the requests received since the last ResetRequests.
func (s *Sim) Requests() []RecordedRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]RecordedRequest(nil), s.requests...)
}

// ResetRequests forgets the recorded requests.
func (s *Sim) ResetRequests() {
	s.mu.Lock()
	s.requests = nil
	s.mu.Unlock()
}

func (s *Sim) record(r *http.Request, hostKey, path string) {
	rec := RecordedRequest{
		Host: hostKey, Method: r.Method, Path: path, Query: r.URL.RawQuery,
		HadAuthorization: r.Header.Get("Authorization") != "", Audience: s.unverifiedAudience(r),
	}
	s.mu.Lock()
	if len(s.requests) >= maxRecorded {
		// A long-running embedded server must not grow without bound: keep the newest half.
		s.requests = append(s.requests[:0], s.requests[maxRecorded/2:]...)
	}
	s.requests = append(s.requests, rec)
	s.mu.Unlock()
}

// maxRecorded bounds the request log; tests read far fewer.
const maxRecorded = 10000

// applyFault answers r with a matching fault and reports whether it did.
func (s *Sim) applyFault(w http.ResponseWriter, r *http.Request) bool {
	path := strings.ToLower(strings.TrimPrefix(r.URL.Path, s.opts.PathPrefix))
	var f *Fault
	s.mu.Lock()
	for _, cand := range s.faults {
		m := cand.match
		if cand.remaining == 0 || (m.Method != "" && !strings.EqualFold(m.Method, r.Method)) ||
			!strings.Contains(path, strings.ToLower(m.PathContains)) {
			continue
		}
		if cand.remaining > 0 {
			cand.remaining--
		}
		f = &cand.fault
		break
	}
	s.mu.Unlock()
	if f == nil {
		return false
	}
	if f.Delay > 0 {
		t := time.NewTimer(f.Delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			return true
		}
	}
	if f.DropConnection {
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				conn.Close()
				return true
			}
		}
		panic(http.ErrAbortHandler) // HTTP/2 or a wrapped writer: abort the stream instead
	}
	if f.Status == 0 {
		return false
	}
	if f.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((f.RetryAfter+time.Second-1)/time.Second)))
	}
	if f.Body != "" {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(f.Status)
		w.Write([]byte(f.Body))
		return true
	}
	code, msg := standardError(f.Status)
	writeError(w, f.Status, code, msg)
	return true
}

// standardError is the body the service sends for a bare status.
func standardError(status int) (code, message string) {
	switch status {
	case http.StatusTooManyRequests:
		return "TooManyConcurrentRequests", "Combined execution time of incoming HTTP requests for identity 'sim' exceeded limit of '10000000' over time window of '00:05:00'. Decrease number of concurrent requests or reduce the duration of requests and try again later."
	case http.StatusServiceUnavailable:
		return "ServiceUnavailable", "The service is temporarily unavailable. Please try again later."
	}
	return strings.ReplaceAll(http.StatusText(status), " ", ""), http.StatusText(status) + "."
}
