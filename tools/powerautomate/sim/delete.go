package sim

import (
	"slices"
	"strings"
)

// DeleteFlow removes a flow as if its owner had deleted it in the portal: it leaves
// every list, and its runs and content links with it. It reports whether the flow
// existed. (The Flow API's DELETE route is not simulated; tests of what sees a flow
// vanish, such as the Team cache sync, use this.)
func (s *Sim) DeleteFlow(env, name string) bool {
	return s.inEnv(env, func(e *environment) bool {
		i := slices.IndexFunc(e.flows, func(f *flow) bool { return strings.EqualFold(f.name, name) })
		if i < 0 {
			return false
		}
		delete(s.workflows, e.flows[i].workflowID)
		e.flows = slices.Delete(e.flows, i, i+1)
		return true
	})
}

// DeleteApp removes an app (tests: an app deleted between two syncs).
func (s *Sim) DeleteApp(env, name string) bool {
	return s.inEnv(env, func(e *environment) bool {
		i := slices.IndexFunc(e.apps, func(a *app) bool { return strings.EqualFold(a.name, name) })
		if i < 0 {
			return false
		}
		e.apps = slices.Delete(e.apps, i, i+1)
		return true
	})
}

// inEnv runs change on an environment under the sim's lock, for the exported
// helpers tests call; it reports false when there is no such environment.
func (s *Sim) inEnv(env string, change func(*environment) bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.envs[strings.ToLower(env)]
	return e != nil && change(e)
}
