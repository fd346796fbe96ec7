package powerautomate

import (
	"context"
	"errors"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

func TestValidators(t *testing.T) {
	type tc struct {
		in string
		ok bool
	}
	long := strings.Repeat("a", 200)
	cases := map[string]struct {
		fn    func(string) error
		cases []tc
	}{
		"environment": {ValidateEnvironmentName, []tc{
			{testEnv, true}, {"default-D87A7535-DD31-4437-BFE1-95340ACD55C5", true}, {"~default", true},
			{"b3adefd1-9dc6-4d0e-bd7b-64ed96a9d023", true}, {"", false}, {"Default-", false}, {"../flows", false},
			{"Default-d87a7535-dd31-4437-bfe1-95340acd55c5/flows", false}, {"Contoso", false}, {"~Default", false},
		}},
		"flow": {ValidateFlowName, []tc{
			{testFlow, true}, {"FC2D4EF5-4151-4E93-9AAA-1F380D7ED95D", true}, {"Invoice approval", false},
			{testFlow + "?x=1", false}, {testFlow[:35], false}, {"%2e%2e", false},
		}},
		"run": {ValidateRunName, []tc{
			{testRun, true}, {"08586653536760200319026785874CU62/cancel", false}, {"..", false}, {"run 1", false}, {long, false},
		}},
		"action": {ValidateActionName, []tc{
			{"Compose", true}, {"Send_an_email_(V2)", true}, {"Apply_to_each-2", true}, {"Version.1", true}, {"Größe", true},
			{"a..b", false}, {"a/b", false}, {"a b", false}, {"a\tb", false}, {"a#b", false}, {"a?b", false},
			{"a%2Fb", false}, {"a\x00b", false}, {"a\\b", false}, {"", false}, {long, false}, {"a'b", false},
		}},
		"trigger": {ValidateTriggerName, []tc{
			{"manual", true}, {"When_a_new_email_arrives_(V3)", true}, {"../manual", false},
		}},
		"connection": {ValidateConnectionName, []tc{
			{"shared-office365-19528cc4-23c1-4b39-abea-f010eb9fe3f9", true}, {"4c5d3e2f1a0b49c8b7d6e5f4a3b2c1d0", true},
			{"-leading", false}, {"a.b", false}, {"a/b", false}, {"a\nb", false},
		}},
		"connector": {ValidateConnectorName, []tc{
			{"shared_office365", true}, {"shared_connector-201-5f20a1f2d8d6777a75-5fa602f410652f4dfa", true},
			{"office365", false}, {"shared_", false}, {"shared_a/../b", false}, {"shared_a b", false},
		}},
	}
	for field, group := range cases {
		for _, c := range group.cases {
			err := group.fn(c.in)
			if (err == nil) != c.ok {
				t.Errorf("%s %q: err = %v, want ok=%v", field, c.in, err, c.ok)
			}
			var idErr *InvalidIDError
			if err != nil && (!errors.As(err, &idErr) || idErr.Field != field) {
				t.Errorf("%s %q: err = %#v, want *InvalidIDError for %s", field, c.in, err, field)
			}
		}
	}
}

func TestInvalidIDErrorValueIsSafe(t *testing.T) {
	err := ValidateFlowName("evil\x1b[31m\n" + strings.Repeat("x", 100))
	var idErr *InvalidIDError
	if !errors.As(err, &idErr) {
		t.Fatalf("err = %v", err)
	}
	if strings.ContainsAny(idErr.Value, "\x1b\n") || len(idErr.Value) > 80 {
		t.Errorf("Value = %q: control characters or too long", idErr.Value)
	}
}

// TestMethodsRejectBadIDsWithoutIO calls every method with one bad
// identifier and a server that fails the test if it is reached.
func TestMethodsRejectBadIDsWithoutIO(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("server reached: %s %s", r.Method, r.URL)
	})
	c := newTestClient(t, testConfig(newUpstream(t, mux).URL))
	ctx := context.Background()
	good := FlowRef{Environment: testEnv, Flow: testFlow}
	badEnv := FlowRef{Environment: "../../x", Flow: testFlow}
	badFlow := FlowRef{Environment: testEnv, Flow: "x?y=1"}
	calls := map[string]func() error{
		"GetEnvironment":        func() error { _, err := c.GetEnvironment(ctx, "a/b"); return err },
		"ListFlows":             func() error { _, err := c.ListFlows(ctx, "%2F", ListFlowsOptions{}); return err },
		"ListFlows search":      func() error { _, err := c.ListFlows(ctx, testEnv, ListFlowsOptions{Search: "x') or ('1"}); return err },
		"ListFlows top":         func() error { _, err := c.ListFlows(ctx, testEnv, ListFlowsOptions{Top: 100000}); return err },
		"GetFlow":               func() error { _, err := c.GetFlow(ctx, badFlow); return err },
		"CreateFlow":            func() error { _, err := c.CreateFlow(ctx, "", FlowUpdate{}); return err },
		"UpdateFlow":            func() error { _, err := c.UpdateFlow(ctx, badEnv, FlowUpdate{}); return err },
		"CheckFlowErrors":       func() error { _, err := c.CheckFlowErrors(ctx, badFlow, FlowUpdate{}); return err },
		"CheckFlowWarnings":     func() error { _, err := c.CheckFlowWarnings(ctx, badEnv, FlowUpdate{}); return err },
		"StartFlow":             func() error { return c.StartFlow(ctx, badFlow) },
		"StopFlow":              func() error { return c.StopFlow(ctx, badEnv) },
		"ListTriggers":          func() error { _, err := c.ListTriggers(ctx, badFlow); return err },
		"ListCallbackURL":       func() error { _, err := c.ListCallbackURL(ctx, good, "manual/../x"); return err },
		"RunManualTrigger":      func() error { _, err := c.RunManualTrigger(ctx, good, "a b", nil); return err },
		"ListRuns":              func() error { _, err := c.ListRuns(ctx, badFlow, ListRunsOptions{}); return err },
		"ListRuns status":       func() error { _, err := c.ListRuns(ctx, good, ListRunsOptions{Status: "Failed' or 1"}); return err },
		"GetRun":                func() error { _, err := c.GetRun(ctx, good, "r/../x", true); return err },
		"ListRunActions":        func() error { _, err := c.ListRunActions(ctx, good, ""); return err },
		"ListActionRepetitions": func() error { _, err := c.ListActionRepetitions(ctx, good, testRun, "a..b", ""); return err },
		"CancelRun":             func() error { return c.CancelRun(ctx, good, "x#y") },
		"ResubmitRun":           func() error { _, err := c.ResubmitRun(ctx, good, "manual", "run?x"); return err },
		"ListConnections": func() error {
			_, err := c.ListConnections(ctx, testEnv, ListConnectionsOptions{Connector: "x"})
			return err
		},
		"GetConnection": func() error { _, err := c.GetConnection(ctx, testEnv, "shared_x", "a/b"); return err },
		"GetConnector":  func() error { _, err := c.GetConnector(ctx, testEnv, "shared_../x"); return err },
		"ListDynamicValues": func() error {
			_, err := c.ListDynamicValues(ctx, "~default", "shared_x", "c1", DynamicRequest{})
			return err
		},
		"ListDynamicProperties": func() error {
			_, err := c.ListDynamicProperties(ctx, testEnv, "shared_x", "c 1", DynamicRequest{})
			return err
		},
		"TestConnection": func() error { _, err := c.TestConnection(ctx, testEnv, "shared_x", ""); return err },
		"InvokeConnectorOp conn": func() error {
			_, err := c.InvokeConnectorOperation(ctx, ConnectorCall{Connection: "../x", Method: "GET"})
			return err
		},
		"InvokeConnectorOp path": func() error {
			_, err := c.InvokeConnectorOperation(ctx, ConnectorCall{Connection: "c1", Method: "GET", PathTemplate: "/{connectionId}/../admin"})
			return err
		},
		"InvokeConnectorOp method": func() error {
			_, err := c.InvokeConnectorOperation(ctx, ConnectorCall{Connection: "c1", Method: "DELETE", PathTemplate: "/{connectionId}/x"})
			return err
		},
	}
	for name, call := range calls {
		var idErr *InvalidIDError
		if err := call(); !errors.As(err, &idErr) {
			t.Errorf("%s: err = %v, want *InvalidIDError", name, err)
		}
	}
}

func TestEnvironmentHostLabel(t *testing.T) {
	got, err := EnvironmentHostLabel("Default-00000000-0000-0000-0000-000000000123")
	if want := "000000000000000000000000000001.23"; err != nil || got != want {
		t.Errorf("label = %q, %v; want %q", got, err, want)
	}
}

// TestIDChecksMatchTheirExpressions holds the byte loops to the regular expressions
// they replaced on the call path.
func TestIDChecksMatchTheirExpressions(t *testing.T) {
	samples := []string{"", "a", "0f8fad5b-d9cb-469f-a165-70867728950e", "0F8FAD5B-D9CB-469F-A165-70867728950E",
		"0f8fad5b-d9cb-469f-a165-70867728950", "0f8fad5b-d9cb-469f-a165-70867728950e0", "0f8fad5b_d9cb-469f-a165-70867728950e",
		"0f8fad5g-d9cb-469f-a165-70867728950e", "08586653536760200319026785874CU62", "shared_office365", "shared_",
		"shared_-x", "shared-office365-19528cc4", "_x", "-x", "x_-y", "a b", "é", "x\n", "../x", "shared_a/b"}
	for _, c := range []struct {
		re string
		fn func(string) bool
	}{
		{`^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$`, isGUID},
		{`^[0-9A-Za-z]+$`, isRunName},
		{`^[0-9A-Za-z][0-9A-Za-z_-]*$`, isConnectionName},
		{`^shared_[0-9A-Za-z][0-9A-Za-z_-]*$`, isConnectorName},
	} {
		re := regexp.MustCompile(c.re)
		for _, s := range samples {
			if got, want := c.fn(s), re.MatchString(s); got != want {
				t.Errorf("%s on %q: %v, want %v", c.re, s, got, want)
			}
		}
	}
}
