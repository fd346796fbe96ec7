package powerautomate

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestMigrateFlowToSolution: the request is the one the portal, Microsoft's module and
// the PnP CLI send (Microsoft.Flow route, flowsToMigrate with the bare GUID), with the
// Flow audience; any 2xx, with or without a body, is success; a refusal is an APIError;
// hostile identifiers never reach upstream.
func TestMigrateFlowToSolution(t *testing.T) {
	const solution = "8F6C1C8E-2A8E-4F43-9B4A-3C1F2D0E9A11"
	status, answer := http.StatusOK, ""
	mux := http.NewServeMux()
	mux.HandleFunc("POST /flow/providers/Microsoft.Flow/environments/{env}/solutions/{sol}/migrateFlows", func(w http.ResponseWriter, r *http.Request) {
		requireAuth(t, r, AudienceFlow)
		raw, _ := io.ReadAll(r.Body)
		var body map[string][]string
		if r.PathValue("env") != testEnv || r.PathValue("sol") != strings.ToLower(solution) ||
			r.URL.Query().Get("api-version") != "2018-10-01" || json.Unmarshal(raw, &body) != nil ||
			len(body) != 1 || len(body["flowsToMigrate"]) != 1 || body["flowsToMigrate"][0] != testFlow {
			t.Errorf("request %s %s", r.URL, raw)
		}
		writeJSON(w, status, answer)
	})
	up := newUpstream(t, mux)
	c := newTestClient(t, testConfig(up.URL))
	flow := FlowRef{Environment: testEnv, Flow: strings.ToUpper(testFlow)}
	for _, ok := range []struct {
		status int
		body   string
	}{{200, ""}, {200, `{"value":[]}`}, {202, ""}} {
		status, answer = ok.status, ok.body
		if err := c.MigrateFlowToSolution(t.Context(), flow, solution); err != nil {
			t.Errorf("%d %q: %v", ok.status, ok.body, err)
		}
	}
	status, answer = http.StatusConflict, `{"error":{"code":"FlowAlreadySolutionAware","message":"secret text"}}`
	var apiErr *APIError
	if err := c.MigrateFlowToSolution(t.Context(), flow, solution); !errors.As(err, &apiErr) || apiErr.Status != 409 || apiErr.Code != "FlowAlreadySolutionAware" {
		t.Errorf("refusal: %v", err)
	}

	hits, _ := up.seen()
	for _, bad := range []struct{ env, flow, sol string }{
		{"../x", testFlow, solution}, {testEnv, "a/b", solution}, {testEnv, testFlow, "../solutions"},
		{testEnv, testFlow, "8f6c1c8e-2a8e-4f43-9b4a-3c1f2d0e9a1)"}, {testEnv, testFlow, ""}, {"a?b", testFlow, solution},
	} {
		var ie *InvalidIDError
		if err := c.MigrateFlowToSolution(t.Context(), FlowRef{Environment: bad.env, Flow: bad.flow}, bad.sol); !errors.As(err, &ie) {
			t.Errorf("%+v: %v", bad, err)
		}
	}
	if n, _ := up.seen(); n != hits {
		t.Errorf("%d requests with hostile identifiers", n-hits)
	}
}
