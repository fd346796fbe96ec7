package server

import (
	"io"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/flowstudio/mcp/server/telemetry"
	"github.com/flowstudio/mcp/server/telemetry/otelexport"
	"github.com/flowstudio/mcp/tools/powerautomate/sim"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.uber.org/zap"
)

// No metric names a user: every tool runs with canaries in its arguments and in
// upstream answers (as in TestNoSecretsInLogs), then the Prometheus exposition
// must carry none of the caller's identifiers (email, user, tenant and object id,
// email hash, key, tokens), no canary and no environment name, and every label
// must be one of the declared keys with a value from its fixed list (tool names
// from the catalog itself).
func TestNoUserIdentifiersInMetrics(t *testing.T) {
	exp, err := otelexport.Start(t.Context(), otelexport.Options{MetricsAddr: "127.0.0.1:0", Version: "test", Log: zap.NewNop(),
		Getenv: func(string) string { return "" }})
	if err != nil {
		t.Fatal(err)
	}
	defer exp.Shutdown(t.Context()) //nolint:errcheck

	h := newLeakHarness(t)
	for _, tool := range h.catalog.Tools() {
		for _, fault := range []sim.Fault{{}, {Status: 403, Body: `{"error":{"code":"CANARYUPCODE","message":"CANARY leaky.user@contoso.com"}}`}} {
			if fault.Status != 0 {
				h.sim.InjectFault(sim.FaultMatch{}, fault)
			}
			h.callTool(t, tool.Name, map[string]any{"environmentName": envMarker, "flowName": canaryGUID, "CANARYkey": "CANARY-value"})
			h.callTool(t, tool.Name, map[string]any{"environmentName": envMarker})
			h.sim.ClearFaults()
		}
	}
	h.callTool(t, "CANARY_unknown_tool", map[string]any{})

	resp, err := http.Get("http://" + exp.Addr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	body := string(raw)

	secrets := []string{canaryPrefix, canaryGUID, h.key, leakEmail, "leaky.user", envMarker,
		h.user.ID, h.user.TenantID, h.user.ObjectID, h.user.EmailHash}
	h.tokens.mu.Lock()
	for _, tok := range h.tokens.issued {
		secrets = append(secrets, tok, tok[len(tok)-20:])
	}
	h.tokens.mu.Unlock()
	for _, s := range secrets {
		if s != "" && strings.Contains(body, s) {
			t.Errorf("the metrics carry %q", shorten(s))
		}
	}

	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var toolNames []string
	for _, tool := range h.catalog.Tools() {
		toolNames = append(toolNames, tool.Name)
	}
	names := func(list []string) func(string) bool { return func(v string) bool { return slices.Contains(list, v) } }
	var outcomes, families2, ops, refusals, redemptions []string
	for _, o := range telemetry.Outcomes() {
		outcomes = append(outcomes, o.String())
	}
	for _, f := range telemetry.Families() {
		families2 = append(families2, f.String())
	}
	for op := telemetry.Read; op <= telemetry.DeletePartition; op++ {
		ops = append(ops, op.String())
	}
	for r := telemetry.DailyQuota; r <= telemetry.BugReports; r++ {
		refusals = append(refusals, r.String())
	}
	for r := telemetry.Redeemed; r <= telemetry.RedeemFailed; r++ {
		redemptions = append(redemptions, r.String())
	}
	storeOutcomes := []string{"ok", "not_found", "conflict", "error"}
	status := func(v string) bool {
		n, err := strconv.Atoi(v)
		return v == "none" || err == nil && n >= 100 && n <= 599
	}
	// A tool label is a declared tool's name: the catalog's, or one that another
	// test of this package declared (they share the counters); never a client's text.
	declared := func(v string) bool {
		return slices.Contains(toolNames, v) || regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`).MatchString(v)
	}
	// Each metric's labels and what their values may be.
	allowed := map[string]map[string]func(string) bool{
		"flowstudio_tool_calls_total":           {"tool": declared, "outcome": names(outcomes)},
		"flowstudio_tool_calls_in_flight":       {"tool": declared},
		"flowstudio_tool_call_duration_seconds": {"tool": declared},
		"flowstudio_upstream_responses_total":   {"family": names(families2), "status": status},
		"flowstudio_store_operations_total":     {"container": names([]string{"users", "cache", "usage"}), "operation": names(ops), "outcome": names(storeOutcomes)},
		"flowstudio_token_redemptions_total":    {"outcome": names(redemptions)},
		"flowstudio_quota_refusals_total":       {"reason": names(refusals), "plan": names(telemetry.Plans)},
	}
	seen := map[string]bool{}
	for name, f := range families {
		if !strings.HasPrefix(name, "flowstudio_") {
			continue
		}
		rules, ok := allowed[name]
		if !ok {
			t.Errorf("metric %s is not in the test's list: add its labels and their values", name)
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				check, ok := rules[l.GetName()]
				if !ok {
					t.Errorf("%s has label %q", name, l.GetName())
				} else if !check(l.GetValue()) {
					t.Errorf("%s{%s=%q}: not a value from its list", name, l.GetName(), l.GetValue())
				}
			}
			seen[name] = true
		}
	}
	for _, name := range []string{"flowstudio_tool_calls_total", "flowstudio_tool_call_duration_seconds",
		"flowstudio_upstream_responses_total", "flowstudio_store_operations_total"} {
		if !seen[name] {
			t.Errorf("no %s sample: the test did not reach it", name)
		}
	}
	// Tools from other packages' tests in this binary share the counters; the
	// catalog's tools must all be there.
	for _, tool := range toolNames {
		if !strings.Contains(body, `tool="`+tool+`"`) {
			t.Errorf("no samples for tool %s", tool)
		}
	}
}
