package sim

import "strings"

// DeleteFlow removes a flow as if its owner had deleted it in the portal: it leaves
// every list, and its runs and content links with it. It reports whether the flow
// existed. (The Flow API's DELETE route is not simulated; tests of what sees a flow
// vanish, such as the Team cache sync, use this.)
func (s *Sim) DeleteFlow(env, flow string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.envs[strings.ToLower(env)]
	if e == nil {
		return false
	}
	for i, f := range e.flows {
		if strings.EqualFold(f.name, flow) {
			e.flows = append(e.flows[:i], e.flows[i+1:]...)
			delete(s.workflows, f.workflowID)
			return true
		}
	}
	return false
}

// DeleteApp removes an app (tests: an app deleted between two syncs).
func (s *Sim) DeleteApp(env, name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.envs[strings.ToLower(env)]
	if e == nil {
		return false
	}
	for i, a := range e.apps {
		if strings.EqualFold(a.name, name) {
			e.apps = append(e.apps[:i], e.apps[i+1:]...)
			return true
		}
	}
	return false
}
