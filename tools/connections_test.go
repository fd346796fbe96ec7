package tools

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/flowstudio/mcp/tools/powerautomate"
	"github.com/flowstudio/mcp/tools/powerautomate/sim"
)

// The connection and connector tools against the in-process simulator, through the
// shared live harness (live_test.go).

const (
	connAlice = "alice@contoso.com"
	connFiona = "fiona@fabrikam.com"
	// connDashboard is the dashboard URL of catalogs that rewire builds.
	connDashboard = "https://flowstudio.test/dashboard"
	// upstreamSecret marks upstream error text that must never reach a result.
	upstreamSecret = "SECRET-UPSTREAM-DETAIL"
)

// rewire rebuilds a harness's client and catalog with a wrapped token source
// (audiences the user has not consented to) and/or transport (to see the URLs sent).
func rewire(t *testing.T, h *liveHarness, timeout time.Duration,
	tokens func(powerautomate.TokenSource) powerautomate.TokenSource, transport func(http.RoundTripper) http.RoundTripper) {
	t.Helper()
	cfg := h.Sim.Config(h.URL)
	cfg.Timeout, cfg.MaxRetries, cfg.RetryBackoff, cfg.MaxRetryWait = timeout, 2, time.Millisecond, 5*time.Second
	var rt http.RoundTripper = http.DefaultTransport
	if transport != nil {
		rt = transport(rt)
	}
	cfg.HTTPClient = &http.Client{Transport: rt}
	ts := h.Sim.TokenSourceFor(h.Email)
	if tokens != nil {
		ts = tokens(ts)
	}
	pa, err := powerautomate.New(cfg, ts)
	if err != nil {
		t.Fatal(err)
	}
	cat, err := NewCatalog(&Env{PA: pa, DashboardURL: connDashboard}, nil, 0, All())
	if err != nil {
		t.Fatal(err)
	}
	h.PA, h.Catalog = pa, cat
}

// refusingTokens fails for one audience, as a real token source does for an
// audience the user has not consented to.
type refusingTokens struct {
	inner    powerautomate.TokenSource
	audience string
	err      error
}

func (r refusingTokens) Token(ctx context.Context, aud string) (string, error) {
	if aud == r.audience {
		return "", fmt.Errorf("token source: %w", r.err)
	}
	return r.inner.Token(ctx, aud)
}

// uriRecorder records the escaped request URI of every connector runtime request.
type uriRecorder struct {
	next http.RoundTripper
	mu   sync.Mutex
	uris []string
}

func (u *uriRecorder) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.HasPrefix(r.URL.Path, "/apihub/") {
		u.mu.Lock()
		u.uris = append(u.uris, r.URL.RequestURI())
		u.mu.Unlock()
	}
	return u.next.RoundTrip(r)
}

func (u *uriRecorder) take() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := u.uris
	u.uris = nil
	return out
}

// connError asserts an isError result with every fragment and no upstream text.
func connError(t *testing.T, r liveResult, fragments ...string) {
	t.Helper()
	wantToolError(t, r, fragments, upstreamSecret)
}

// connectionOf finds the first connection of a connector in a status, by listing.
func connectionOf(t *testing.T, h *liveHarness, env, connector string, connected bool) listedConnection {
	t.Helper()
	var out struct{ Connections []listedConnection }
	h.mustCall(t, "list_live_connections", map[string]any{"environmentName": env, "connectorName": connector}, &out)
	for _, c := range out.Connections {
		if (c.Status == "Connected") == connected {
			return c
		}
	}
	t.Fatalf("no %s connection (connected=%v) in %s", connector, connected, env)
	return listedConnection{}
}

type listedConnection struct {
	Name, Connector, DisplayName, Status, ErrorCode, Owner, OwnerObjectID, Created, Expires string
}

func TestListLiveConnections(t *testing.T) {
	t.Parallel()
	h := newLiveHarness(t, liveOptions{})
	type out struct {
		Connections          []listedConnection
		ConnectionReferences map[string]connectionReference
		NextCursor           string
	}
	var all out
	h.mustCall(t, "list_live_connections", map[string]any{"environmentName": sim.ContosoDefaultEnv}, &all)
	if len(all.Connections) != 8 || all.ConnectionReferences != nil || all.NextCursor != "" {
		t.Fatalf("connections = %+v", all)
	}
	byStatus := map[string]int{}
	for _, c := range all.Connections {
		byStatus[c.Status]++
		if c.Owner != connAlice || c.OwnerObjectID == "" || c.Created == "" || c.Connector == "" || c.Name == "" {
			t.Errorf("row %+v", c)
		}
		if c.Status == "Connected" && (c.ErrorCode != "" || c.Expires != "") {
			t.Errorf("healthy row %+v", c)
		}
	}
	if byStatus["Connected"] != 6 || byStatus["Error"] != 2 {
		t.Errorf("statuses %v", byStatus)
	}
	twitter := connectionOf(t, h, sim.ContosoDefaultEnv, "shared_twitter", false)
	if twitter.Expires == "" || twitter.ErrorCode != "Unauthorized" {
		t.Errorf("expired connection %+v", twitter)
	}
	for _, r := range h.requestsTo("powerapps") {
		if r.Audience != powerautomate.AudiencePowerApps {
			t.Errorf("request %s with audience %q", r.Path, r.Audience)
		}
	}

	t.Run("connector and status filters", func(t *testing.T) {
		var tasks, broken out
		h.mustCall(t, "list_live_connections", map[string]any{"environmentName": sim.ContosoDefaultEnv, "connectorName": "shared_contosotasks"}, &tasks)
		h.mustCall(t, "list_live_connections", map[string]any{"environmentName": sim.ContosoDefaultEnv, "status": "Error"}, &broken)
		if len(tasks.Connections) != 2 || len(broken.Connections) != 2 {
			t.Errorf("tasks %+v broken %+v", tasks.Connections, broken.Connections)
		}
		for _, c := range broken.Connections {
			if c.Status != "Error" || c.ErrorCode == "" {
				t.Errorf("broken row %+v", c)
			}
		}
	})

	t.Run("search returns paste-ready connection references", func(t *testing.T) {
		var got out
		h.mustCall(t, "list_live_connections", map[string]any{"environmentName": sim.ContosoDefaultEnv, "search": "TASKS"}, &got)
		if len(got.Connections) != 2 {
			t.Fatalf("search rows %+v", got.Connections)
		}
		want := map[string]connectionReference{"shared_contosotasks": {ConnectionName: sim.ContosoTasksConnection, Source: "Embedded",
			ID: "/providers/Microsoft.PowerApps/apis/shared_contosotasks"}}
		if diff := cmp.Diff(want, got.ConnectionReferences); diff != "" {
			t.Errorf("templates (-want +got):\n%s", diff)
		}
		var tpl out
		h.mustCall(t, "list_live_connections", map[string]any{"environmentName": sim.ContosoDefaultEnv, "templates": true}, &tpl)
		if len(tpl.ConnectionReferences) != 6 || tpl.ConnectionReferences["shared_twitter"].ConnectionName != "" {
			t.Errorf("templates of every healthy connector: %+v", tpl.ConnectionReferences)
		}
	})

	t.Run("pages with a cursor", func(t *testing.T) {
		seen := map[string]bool{}
		args := map[string]any{"environmentName": sim.ContosoDefaultEnv, "pageSize": 3}
		for page := 0; ; page++ {
			var got out
			h.mustCall(t, "list_live_connections", args, &got)
			if len(got.Connections) > 3 || page > 5 {
				t.Fatalf("page %d: %d rows", page, len(got.Connections))
			}
			for _, c := range got.Connections {
				seen[c.Name] = true
			}
			if got.NextCursor == "" {
				break
			}
			args["cursor"] = got.NextCursor
		}
		if len(seen) != 8 {
			t.Errorf("%d distinct connections over the pages", len(seen))
		}
		connError(t, h.call(t, "list_live_connections", map[string]any{"environmentName": sim.ContosoDefaultEnv, "cursor": "!!"}), "cursor")
	})
}

func TestDescribeLiveConnector(t *testing.T) {
	t.Parallel()
	h := newLiveHarness(t, liveOptions{})
	args := func(kv ...any) map[string]any {
		m := map[string]any{"environmentName": sim.ContosoDefaultEnv, "connectorName": "shared_contosotasks"}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}

	t.Run("operations compactly", func(t *testing.T) {
		res := h.call(t, "describe_live_connector", args())
		var got describeOut
		decodeResult(t, res, &got)
		want := describeOut{
			Connector: connectorSummary{Name: "shared_contosotasks", DisplayName: "Contoso Tasks", Description: "Manage Contoso projects and tasks.",
				Publisher: "Microsoft", Tier: "Standard", TestOperation: "ListProjects"},
			Operations:     []operationRow{{OperationID: "CreateTask", Summary: "Create a task", Method: "POST", Kind: "action", Params: []string{"projectId*", "body*"}}},
			HiddenInternal: 2,
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
		if len(res.Text) > 600 {
			t.Errorf("list answer is %d bytes; keep it compact", len(res.Text))
		}
		var all describeOut
		h.mustCall(t, "describe_live_connector", args("includeInternal", true, "search", "task"), &all)
		if len(all.Operations) != 2 || !all.Operations[1].Internal || all.Operations[1].OperationID != "GetTaskSchema" {
			t.Errorf("includeInternal+search: %+v", all.Operations)
		}
	})

	t.Run("one operation in full", func(t *testing.T) {
		var got describeOut
		h.mustCall(t, "describe_live_connector", args("operationId", "CreateTask"), &got)
		want := &operationDetail{OperationID: "CreateTask", Summary: "Create a task", Description: "Creates a task in a project.",
			Method: "POST", Kind: "action",
			Parameters: []paramDetail{
				{Name: "projectId", In: "path", Type: "string", Required: true, Title: "Project", Description: "Pick a project",
					Dynamic: &dynamicHint{Kind: "options", OperationID: "ListProjects", Resolve: "get_live_dynamic_options"}},
				{Name: "body", In: "body", Type: "object", Required: true,
					Dynamic: &dynamicHint{Kind: "schema", OperationID: "GetTaskSchema", DependsOn: []string{"projectId"}, Resolve: "get_live_dynamic_properties"}},
			},
			Response: &responseSummary{Type: "object", Properties: []string{"id:string", "title:string"}},
		}
		if diff := cmp.Diff(want, got.Operation); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
		var sp describeOut
		h.mustCall(t, "describe_live_connector", map[string]any{"environmentName": sim.ContosoDefaultEnv,
			"connectorName": "shared_sharepointonline", "operationId": "getitems"}, &sp)
		params := sp.Operation.Parameters
		if len(params) != 3 || params[1].Name != "table" || !slices.Equal(params[1].Dynamic.DependsOn, []string{"dataset"}) ||
			params[2].Name != "$top" || params[2].Required || params[2].Type != "integer" {
			t.Errorf("SharePoint GetItems parameters %+v", params)
		}
	})

	t.Run("unknown operation or connector", func(t *testing.T) {
		connError(t, h.call(t, "describe_live_connector", args("operationId", "Task")), "not found", "CreateTask", "GetTaskSchema", "Next:")
		connError(t, h.call(t, "describe_live_connector", map[string]any{"environmentName": sim.ContosoDefaultEnv, "connectorName": "shared_nope"}), "connector not found", "status 404", "code ApiNotFound", "list_live_connections")
	})
}

// A richer swagger than the simulator's: $refs, path-level parameters, triggers,
// deprecation, nested bodies, an array response and a dynamic response schema.
const richSwagger = `{"swagger":"2.0","paths":{
"/{connectionId}/tables/{table}/items":{
  "parameters":[{"$ref":"#/parameters/table"}],
  "get":{"operationId":"GetRows","summary":"Get rows","deprecated":true,
    "parameters":[{"name":"connectionId","in":"path","required":true,"type":"string"},{"name":"$filter","in":"query","type":"string","x-ms-visibility":"advanced"}],
    "responses":{"200":{"schema":{"type":"object","properties":{"value":{"type":"array","items":{"$ref":"#/definitions/Row"}}}}}}},
  "post":{"operationId":"AddRow","summary":"Add a row",
    "parameters":[{"name":"item","in":"body","required":true,"schema":{"$ref":"#/definitions/NewRow"}}],
    "responses":{"201":{"schema":{"type":"object","x-ms-dynamic-schema":{"operationId":"GetTable","parameters":{"table":{"parameter":"table"}},"value-path":"schema/items"}}}}}},
"/{connectionId}/trigger":{"get":{"operationId":"OnNewRow","summary":"When a row is added","x-ms-trigger":"batch","responses":{}}},
"/{connectionId}/tables":{"get":{"operationId":"GetTables","x-ms-visibility":"internal","responses":{}}},
"/{connectionId}/bad":{"get":{"operationId":42}}},
"parameters":{"table":{"name":"table","in":"path","required":true,"type":"string","x-ms-summary":"Table",
  "x-ms-dynamic-list":{"dynamicState":{"operationId":"GetTables","parameters":{"scope":{"value":"all"},"site":{"parameterReference":"site","required":false}}}}}},
"definitions":{
  "Row":{"type":"object","properties":{"id":{"type":"integer"},"name":{"type":"string"}}},
  "NewRow":{"type":"object","required":["name"],"properties":{"name":{"type":"string","x-ms-summary":"Name"},
    "address":{"type":"object","properties":{"city":{"type":"string"},"zip":{"type":"string","x-ms-visibility":"internal"}}},
    "tags":{"type":"array","items":{"type":"string"}},"kind":{"type":"string","enum":["a","b"],"default":"a"}}}}}`

func TestSwaggerReading(t *testing.T) {
	t.Parallel()
	sw, err := parseSwagger(json.RawMessage(richSwagger))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, op := range sw.ops {
		ids = append(ids, op.OperationID)
	}
	if want := []string{"OnNewRow", "AddRow", "GetRows", "GetTables"}; !slices.Equal(ids, want) {
		t.Errorf("operations %v, want %v (triggers first; the unparsable one left out)", ids, want)
	}
	rows := map[string]operationRow{}
	for _, op := range sw.ops {
		rows[op.OperationID] = sw.row(op)
	}
	if r := rows["GetRows"]; !r.Deprecated || r.Kind != "action" || !slices.Equal(r.Params, []string{"table*", "$filter"}) {
		t.Errorf("GetRows row %+v", r)
	}
	if r := rows["OnNewRow"]; r.Kind != "trigger" || r.Params != nil {
		t.Errorf("OnNewRow row %+v", r)
	}
	if r := rows["AddRow"]; !slices.Equal(r.Params, []string{"table*", "item/name*", "item/address", "item/kind", "item/tags"}) {
		t.Errorf("AddRow row params %v", r.Params)
	}
	add, _ := sw.find("AddRow")
	d := sw.detail(add)
	var names []string
	for _, p := range d.Parameters {
		names = append(names, p.Name)
	}
	if want := []string{"table", "item/name", "item/address/city", "item/address/zip", "item/kind", "item/tags"}; !slices.Equal(names, want) {
		t.Errorf("AddRow parameters %v, want %v", names, want)
	}
	byName := map[string]paramDetail{}
	for _, p := range d.Parameters {
		byName[p.Name] = p
	}
	if p := byName["table"]; p.Title != "Table" || p.Dynamic == nil || p.Dynamic.OperationID != "GetTables" || !slices.Equal(p.Dynamic.DependsOn, []string{"site"}) {
		t.Errorf("table %+v %+v", p, p.Dynamic)
	}
	if p := byName["item/address/zip"]; !p.Internal {
		t.Errorf("zip %+v", p)
	}
	if p := byName["item/kind"]; string(p.Default) != `"a"` || len(p.Enum) != 2 {
		t.Errorf("kind %+v", p)
	}
	if p := byName["item/tags"]; p.Type != "array" || p.Items != "string" {
		t.Errorf("tags %+v", p)
	}
	if r := d.Response; r == nil || r.Dynamic == nil || r.Dynamic.Kind != "schema" || r.Dynamic.OperationID != "GetTable" {
		t.Errorf("AddRow response %+v", r)
	}
	get, _ := sw.find("GetRows")
	if r := sw.detail(get).Response; r == nil || !slices.Equal(r.Properties, []string{"value:array", "value[]/id:integer", "value[]/name:string"}) {
		t.Errorf("GetRows response %+v", r)
	}
	if _, err := parseSwagger(json.RawMessage(`[1]`)); err == nil {
		t.Error("a non-object swagger was read")
	}
}

func TestExtractOptions(t *testing.T) {
	t.Parallel()
	cases := map[string]struct{ body, def, want string }{
		"dynamic-values, case-insensitive collection": {`{"Value":[{"Name":"a","DisplayName":"A"},{"Name":"b"}]}`,
			`{"operationId":"x","value-collection":"value","value-path":"Name","value-title":"DisplayName"}`, `[{"value":"a","displayName":"A"},{"value":"b","displayName":"b"}]`},
		"dynamic-list with nested paths and numbers": {`{"data":{"rows":[{"id":{"n":12345678901234567890},"t":"T"}]}}`,
			`{"dynamicState":{"operationId":"x","itemsPath":"data/rows","itemValuePath":"id/n","itemTitlePath":"t"}}`, `[{"value":12345678901234567890,"displayName":"T"}]`},
		"array root":              {`["x","y"]`, `{"operationId":"x"}`, `[{"value":"x","displayName":"x"},{"value":"y","displayName":"y"}]`},
		"first array property":    {`{"count":1,"items":[{"id":"i"}]}`, `{"operationId":"x","value-path":"id"}`, `[{"value":"i","displayName":"i"}]`},
		"value/displayName shape": {`{"value":[{"value":"v","displayName":"V"}]}`, `{"operationId":"x","value-path":"id","value-title":"name"}`, `[{"value":"v","displayName":"V"}]`},
		"not JSON":                {`<html>`, `{"operationId":"x"}`, `[]`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, _ := json.Marshal(extractOptions(json.RawMessage(tc.body), powerautomate.ParseDynamicDefinition(json.RawMessage(tc.def))))
			if string(got) != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
}

func TestGetLiveDynamicOptions(t *testing.T) {
	t.Parallel()
	h := newLiveHarness(t, liveOptions{})
	tasks := map[string]any{"environmentName": sim.ContosoDefaultEnv, "connectorName": "shared_contosotasks",
		"connectionName": sim.ContosoTasksConnection, "operationId": "CreateTask", "parameter": "projectId"}
	wantProjects := []dynOption{{Value: json.RawMessage(`"p-001"`), DisplayName: "Website relaunch"}, {Value: json.RawMessage(`"p-002"`), DisplayName: "Q3 budget"}}

	t.Run("through the designer route with the default sign-in", func(t *testing.T) {
		h.Sim.ResetRequests()
		var got dynamicOptionsOut
		h.mustCall(t, "get_live_dynamic_options", tasks, &got)
		if diff := cmp.Diff(dynamicOptionsOut{Parameter: "projectId", Options: wantProjects, Via: "listEnum"}, got); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
		pp := h.requestsTo("ppapi")
		if len(pp) != 1 || pp[0].Audience != powerautomate.AudienceFlow || len(h.requestsTo("apihub")) != 0 {
			t.Errorf("requests %+v", h.Sim.Requests())
		}
	})

	sp := connectionOf(t, h, sim.ContosoDefaultEnv, "shared_sharepointonline", true)
	spArgs := func(param string, values map[string]any) map[string]any {
		m := map[string]any{"environmentName": sim.ContosoDefaultEnv, "connectorName": "shared_sharepointonline",
			"connectionName": sp.Name, "operationId": "GetItems", "parameter": param}
		if values != nil {
			m["parameters"] = values
		}
		return m
	}
	t.Run("dependent parameters", func(t *testing.T) {
		var sites, lists dynamicOptionsOut
		h.mustCall(t, "get_live_dynamic_options", spArgs("dataset", nil), &sites)
		if len(sites.Options) != 2 || string(sites.Options[0].Value) != `"https://contoso.sharepoint.com/sites/sales"` || sites.Options[0].DisplayName != "Sales" {
			t.Errorf("sites %+v", sites)
		}
		connError(t, h.call(t, "get_live_dynamic_options", spArgs("table", nil)), "depends on dataset", `"dataset":<value>`)
		h.mustCall(t, "get_live_dynamic_options", spArgs("table", map[string]any{"dataset": "https://contoso.sharepoint.com/sites/sales"}), &lists)
		if len(lists.Options) != 2 || lists.Options[0].DisplayName != "Orders" {
			t.Errorf("lists %+v", lists)
		}
	})

	t.Run("parameters without options", func(t *testing.T) {
		connError(t, h.call(t, "get_live_dynamic_options", spArgs("$top", nil)), "no dynamic options", "describe_live_connector")
		with := func(param string) map[string]any { m := cloneArgs(tasks); m["parameter"] = param; return m }
		connError(t, h.call(t, "get_live_dynamic_options", with("body")), "dynamic schema", "get_live_dynamic_properties")
		connError(t, h.call(t, "get_live_dynamic_options", with("nope")), "no parameter", "projectId")
		m := cloneArgs(tasks)
		m["operationId"] = "CreateTsk"
		connError(t, h.call(t, "get_live_dynamic_options", m), "not found")
	})

	t.Run("a broken connection", func(t *testing.T) {
		broken := connectionOf(t, h, sim.ContosoDefaultEnv, "shared_contosotasks", false)
		m := cloneArgs(tasks)
		m["connectionName"] = broken.Name
		r := h.call(t, "get_live_dynamic_options", m)
		connError(t, r, "status 400", "code DynamicOperationRequestClientFailure", "test_live_connection")
		if strings.Contains(r.Text, "dynamic operation request to API") {
			t.Errorf("upstream message echoed: %s", r.Text)
		}
	})

	t.Run("through the runtime where the environment host is unreachable", func(t *testing.T) {
		h := newLiveHarness(t, liveOptions{})
		h.Sim.InjectFault(sim.FaultMatch{PathContains: "/ppapi/"}, sim.Fault{DropConnection: true})
		var got dynamicOptionsOut
		h.mustCall(t, "get_live_dynamic_options", tasks, &got)
		if diff := cmp.Diff(dynamicOptionsOut{Parameter: "projectId", Options: wantProjects, Via: "runtime"}, got); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
		rt := h.requestsTo("apihub")
		if len(rt) != 1 || rt[0].Audience != powerautomate.AudienceAPIHub || rt[0].Path != "/apim/contosotasks/"+sim.ContosoTasksConnection+"/projects" {
			t.Errorf("runtime requests %+v", rt)
		}
		m := cloneArgs(tasks)
		m["environmentName"] = "~default" // no per-environment host for the alias
		h.Sim.ClearFaults()
		h.Sim.ResetRequests()
		h.mustCall(t, "get_live_dynamic_options", m, &got)
		if got.Via != "runtime" || len(got.Options) != 2 || len(h.requestsTo("ppapi")) != 0 {
			t.Errorf("~default: %+v, requests %+v", got, h.Sim.Requests())
		}
	})
}

// decodeResult decodes a successful result's structuredContent.
func decodeResult(t *testing.T, r liveResult, out any) {
	t.Helper()
	if r.IsError {
		t.Fatalf("unexpected isError: %s", r.Text)
	}
	if err := json.Unmarshal(r.Structured, out); err != nil {
		t.Fatalf("decoding %s: %v", r.Structured, err)
	}
}

func cloneArgs(m map[string]any) map[string]any {
	c := make(map[string]any, len(m))
	maps.Copy(c, m)
	return c
}

func TestGetLiveDynamicProperties(t *testing.T) {
	t.Parallel()
	h := newLiveHarness(t, liveOptions{})
	args := map[string]any{"environmentName": sim.ContosoDefaultEnv, "connectorName": "shared_contosotasks",
		"connectionName": sim.ContosoTasksConnection, "operationId": "CreateTask", "parameter": "body",
		"parameters": map[string]any{"projectId": "p-001"}}
	want := dynamicPropertiesOut{Parameter: "body", Location: "input", SchemaType: "object", Properties: []paramDetail{
		{Name: "body/priority", Type: "integer", Required: true, Title: "Priority", Enum: []json.RawMessage{json.RawMessage("1"), json.RawMessage("2"), json.RawMessage("3")}},
		{Name: "body/labels", Type: "array", Items: "string", Title: "Labels"},
	}}

	for _, via := range []string{"listDynamicProperties", "runtime"} {
		t.Run(via, func(t *testing.T) {
			h := newLiveHarness(t, liveOptions{})
			if via == "runtime" {
				h.Sim.InjectFault(sim.FaultMatch{PathContains: "/ppapi/"}, sim.Fault{DropConnection: true})
			}
			var got dynamicPropertiesOut
			h.mustCall(t, "get_live_dynamic_properties", args, &got)
			w := want
			w.Via = via
			if diff := cmp.Diff(w, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}

	t.Run("refusals", func(t *testing.T) {
		m := cloneArgs(args)
		delete(m, "parameters")
		connError(t, h.call(t, "get_live_dynamic_properties", m), "depends on projectId")
		m = cloneArgs(args)
		m["parameter"] = "projectId"
		connError(t, h.call(t, "get_live_dynamic_properties", m), "has no dynamic schema")
		m = cloneArgs(args)
		delete(m, "parameter")
		connError(t, h.call(t, "get_live_dynamic_properties", m), "response of CreateTask has no dynamic schema")
	})
}

func TestTestLiveConnection(t *testing.T) {
	t.Parallel()
	h := newLiveHarness(t, liveOptions{})
	args := func(connector, conn string) map[string]any {
		return map[string]any{"environmentName": sim.ContosoDefaultEnv, "connectorName": connector, "connectionName": conn}
	}

	t.Run("healthy: status, then the connector's test operation", func(t *testing.T) {
		h.Sim.ResetRequests()
		var got testConnectionOut
		h.mustCall(t, "test_live_connection", args("shared_contosotasks", sim.ContosoTasksConnection), &got)
		want := testConnectionOut{ConnectionName: sim.ContosoTasksConnection, ConnectorName: "shared_contosotasks", DisplayName: connAlice,
			OK: true, Status: "Connected", LiveCheck: liveCheckOut{Ran: true, OperationID: "ListProjects", HTTPStatus: 200, OK: true}}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
		rt := h.requestsTo("apihub")
		if len(rt) != 1 || rt[0].Audience != powerautomate.AudienceAPIHub || rt[0].Method != "GET" {
			t.Errorf("runtime requests %+v", rt)
		}
	})

	t.Run("broken and expired connections", func(t *testing.T) {
		broken := connectionOf(t, h, sim.ContosoDefaultEnv, "shared_contosotasks", false)
		twitter := connectionOf(t, h, sim.ContosoDefaultEnv, "shared_twitter", false)
		h.Sim.ResetRequests()
		var got testConnectionOut
		h.mustCall(t, "test_live_connection", args("shared_contosotasks", broken.Name), &got)
		if got.OK || got.Status != "Error" || got.ErrorCode != "Unauthenticated" || got.LiveCheck.Ran ||
			!strings.Contains(got.Next, "Data → Connections") || !strings.Contains(got.Problem, "Unauthenticated") {
			t.Errorf("broken: %+v", got)
		}
		h.mustCall(t, "test_live_connection", args("shared_twitter", twitter.Name), &got)
		if got.OK || got.Expires == "" || got.ErrorCode != "Unauthorized" || !strings.Contains(got.Problem, "expired") {
			t.Errorf("expired: %+v", got)
		}
		if n := len(h.requestsTo("apihub")); n != 0 {
			t.Errorf("%d runtime calls for connections already known broken", n)
		}
	})

	t.Run("a connector without a test operation", func(t *testing.T) {
		outlook := connectionOf(t, h, sim.ContosoDefaultEnv, "shared_office365", true)
		var got testConnectionOut
		h.mustCall(t, "test_live_connection", args("shared_office365", outlook.Name), &got)
		if !got.OK || got.LiveCheck.Ran || !strings.Contains(got.LiveCheck.Reason, "no test operation") {
			t.Errorf("outlook: %+v", got)
		}
	})

	t.Run("the runtime's verdicts", func(t *testing.T) {
		cases := map[string]struct {
			fault   sim.Fault
			isError bool
			want    []string
		}{
			"credential broken behind a Connected status": {fault: sim.Fault{Status: 401,
				Body: `{"status":401,"message":"Error from token exchange: ` + upstreamSecret + `"}`}, want: []string{"sign-in is broken", "Data → Connections"}},
			"account lacks permission": {fault: sim.Fault{Status: 403, Body: `{"status":403,"message":"` + upstreamSecret + `"}`},
				want: []string{"lacks permission"}},
			"runtime down: inconclusive": {fault: sim.Fault{Status: 503}, isError: true,
				want: []string{"status Connected, live test inconclusive", "connector had a server error", "status 503", "retry"}},
			"our runtime token refused": {fault: sim.Fault{Status: 401, Body: `{"error":{"code":"InvalidAuthenticationTokenAudience","message":"` + upstreamSecret + `"}}`},
				isError: true, want: []string{"extra consent", connDashboard, "status 401"}},
		}
		for name, tc := range cases {
			t.Run(name, func(t *testing.T) {
				h := newLiveHarness(t, liveOptions{})
				h.Sim.InjectFault(sim.FaultMatch{PathContains: "/apihub/"}, tc.fault)
				res := h.call(t, "test_live_connection", args("shared_contosotasks", sim.ContosoTasksConnection))
				if tc.isError {
					connError(t, res, tc.want...)
					return
				}
				var got testConnectionOut
				decodeResult(t, res, &got)
				if got.OK || !got.LiveCheck.Ran || got.LiveCheck.HTTPStatus != tc.fault.Status || got.Status != "Connected" {
					t.Errorf("%+v", got)
				}
				for _, w := range tc.want {
					if !strings.Contains(got.Problem+" "+got.Next, w) {
						t.Errorf("problem/next %q / %q lacks %q", got.Problem, got.Next, w)
					}
				}
				if strings.Contains(string(res.Structured), upstreamSecret) {
					t.Errorf("upstream text echoed: %s", res.Structured)
				}
			})
		}
	})
}

// TestExtraConsentIsNeverWidenedSilently: the runtime audience comes from a consent
// the default sign-in does not include. Without it, the tools say so and where to
// grant it; with the designer route available, the lookups need no extra consent.
func TestExtraConsentIsNeverWidenedSilently(t *testing.T) {
	t.Parallel()
	for name, refusal := range map[string]error{"consent required": powerautomate.ErrConsentRequired, "reconnect": powerautomate.ErrReconnect} {
		t.Run(name, func(t *testing.T) {
			h := newLiveHarness(t, liveOptions{})
			rewire(t, h, 10*time.Second, func(ts powerautomate.TokenSource) powerautomate.TokenSource {
				return refusingTokens{inner: ts, audience: powerautomate.AudienceAPIHub, err: refusal}
			}, nil)
			res := h.call(t, "test_live_connection", map[string]any{"environmentName": sim.ContosoDefaultEnv,
				"connectorName": "shared_contosotasks", "connectionName": sim.ContosoTasksConnection})
			connError(t, res, "status Connected, live test inconclusive", "extra consent", "https://apihub.azure.com", connDashboard, "Next:")

			opts := map[string]any{"environmentName": sim.ContosoDefaultEnv, "connectorName": "shared_contosotasks",
				"connectionName": sim.ContosoTasksConnection, "operationId": "CreateTask", "parameter": "projectId"}
			var got dynamicOptionsOut
			h.mustCall(t, "get_live_dynamic_options", opts, &got)
			if got.Via != "listEnum" || len(got.Options) != 2 {
				t.Errorf("designer route: %+v", got)
			}
			h.Sim.InjectFault(sim.FaultMatch{PathContains: "/ppapi/"}, sim.Fault{DropConnection: true})
			connError(t, h.call(t, "get_live_dynamic_options", opts), "extra consent", "https://apihub.azure.com", connDashboard)
			props := cloneArgs(opts)
			props["parameter"], props["parameters"] = "body", map[string]any{"projectId": "p-001"}
			connError(t, h.call(t, "get_live_dynamic_properties", props), "extra consent", connDashboard)
			if rt := h.requestsTo("apihub"); len(rt) != 0 {
				t.Errorf("runtime called without a token: %+v", rt)
			}
		})
	}
}

// connToolCase is a valid call of each tool and the path of its main upstream request.
type connToolCase struct {
	tool      string
	args      map[string]any
	faultPath string
	method    string
}

func connToolCases() []connToolCase {
	env, conn := sim.ContosoDefaultEnv, sim.ContosoTasksConnection
	dyn := func(param string, values map[string]any) map[string]any {
		m := map[string]any{"environmentName": env, "connectorName": "shared_contosotasks", "connectionName": conn,
			"operationId": "CreateTask", "parameter": param}
		if values != nil {
			m["parameters"] = values
		}
		return m
	}
	return []connToolCase{
		{"list_live_connections", map[string]any{"environmentName": env, "connectorName": "shared_contosotasks"}, "/apis/shared_contosotasks/connections", "GET"},
		{"describe_live_connector", map[string]any{"environmentName": env, "connectorName": "shared_contosotasks", "operationId": "CreateTask"}, "/apis/shared_contosotasks", "GET"},
		{"get_live_dynamic_options", dyn("projectId", nil), "/listenum", "POST"},
		{"get_live_dynamic_properties", dyn("body", map[string]any{"projectId": "p-001"}), "/listdynamicproperties", "POST"},
		{"test_live_connection", map[string]any{"environmentName": env, "connectorName": "shared_contosotasks", "connectionName": conn}, "/connections/" + conn, "GET"},
		{"create_live_connection", map[string]any{"environmentName": env, "connectorName": "shared_contosotasks"}, "/apis/shared_contosotasks/connections/", "PUT"},
	}
}

func TestConnectionToolsUpstreamFailures(t *testing.T) {
	t.Parallel()
	errBody := func(code string) string {
		return `{"error":{"code":"` + code + `","message":"` + upstreamSecret + ` for 'x'."}}`
	}
	for _, tc := range connToolCases() {
		t.Run(tc.tool, func(t *testing.T) {
			t.Parallel()
			hits := func(h *liveHarness) int {
				n := 0
				for _, r := range h.Sim.Requests() {
					if r.Method == tc.method && strings.Contains(strings.ToLower(r.Path), strings.ToLower(tc.faultPath)) {
						n++
					}
				}
				return n
			}
			match := sim.FaultMatch{Method: tc.method, PathContains: tc.faultPath}
			// One simulator per tool; the scenarios run in turn, each with its own fault.
			h := newLiveHarness(t, liveOptions{MaxRetries: 2})
			scenario := func(name string, f sim.Fault, count int, check func(t *testing.T, r liveResult, took time.Duration)) {
				t.Run(name, func(t *testing.T) {
					m := match
					m.Count = count
					h.Sim.ClearFaults()
					h.Sim.InjectFault(m, f)
					t.Cleanup(h.Sim.ClearFaults)
					h.Sim.ResetRequests()
					start := time.Now()
					check(t, h.call(t, tc.tool, tc.args), time.Since(start))
				})
			}
			scenario("403", sim.Fault{Status: 403, Body: errBody("Forbidden")}, 0, func(t *testing.T, r liveResult, _ time.Duration) {
				connError(t, r, "status 403", "code Forbidden", "Next:")
			})
			scenario("404 ConnectionNotFound", sim.Fault{Status: 404, Body: errBody("ConnectionNotFound")}, 0, func(t *testing.T, r liveResult, _ time.Duration) {
				connError(t, r, "not found", "status 404", "code ConnectionNotFound", "list_live_connections")
			})
			scenario("429 with Retry-After, then success", sim.Fault{Status: 429, RetryAfter: time.Second}, 1, func(t *testing.T, r liveResult, took time.Duration) {
				if r.IsError {
					t.Fatalf("not retried: %s", r.Text)
				}
				if n := hits(h); n != 2 || took < 900*time.Millisecond {
					t.Errorf("%d requests in %s; want 2, the second after Retry-After", n, took)
				}
			})
			scenario("503 until the retries run out", sim.Fault{Status: 503, Body: errBody("ServiceUnavailable")}, 0, func(t *testing.T, r liveResult, _ time.Duration) {
				connError(t, r, "server error", "status 503", "retry")
				if n := hits(h); n != 3 {
					t.Errorf("%d attempts, want 3 (1 + 2 retries)", n)
				}
			})
			rewire(t, h, 500*time.Millisecond, nil, nil)
			scenario("timeout", sim.Fault{Delay: 3 * time.Second}, 0, func(t *testing.T, r liveResult, _ time.Duration) {
				connError(t, r, "did not answer in time", "Next:")
			})
		})
	}
}

// TestConnectionToolsRefuseHostileIdentifiers: no identifier an agent passes can
// reshape a URL; each is refused before any request.
func TestConnectionToolsRefuseHostileIdentifiers(t *testing.T) {
	t.Parallel()
	hostile := []string{"../x", "a/b", "a?b", "a#b", "%2e%2e", "a b", "\n", "\u0000", strings.Repeat("a", 300), "..", "shared_../x", "shared_a/b"}
	h := newLiveHarness(t, liveOptions{})
	for _, tc := range connToolCases() {
		for _, field := range []string{"environmentName", "connectorName", "connectionName", "operationId", "parameter"} {
			if _, ok := tc.args[field]; !ok {
				continue
			}
			for _, v := range hostile {
				if field == "parameter" && (v == "a/b" || v == "shared_a/b") {
					continue // a body field key (body/title): matched against the swagger, never put in a URL; see below
				}
				t.Run(fmt.Sprintf("%s/%s/%q", tc.tool, field, v), func(t *testing.T) {
					args := cloneArgs(tc.args)
					args[field] = v
					before := len(h.Sim.Requests())
					connError(t, h.call(t, tc.tool, args), field)
					if n := len(h.Sim.Requests()) - before; n != 0 {
						t.Errorf("%d upstream requests", n)
					}
				})
			}
		}
	}
	t.Run("well-formed but not an environment id", func(t *testing.T) {
		h.Sim.ResetRequests()
		connError(t, h.call(t, "list_live_connections", map[string]any{"environmentName": "not-a-guid"}), "invalid environment identifier")
		if n := len(h.Sim.Requests()); n != 0 {
			t.Errorf("%d upstream requests", n)
		}
	})
	t.Run("a body key is only looked up", func(t *testing.T) {
		h.Sim.ResetRequests()
		args := cloneArgs(connToolCases()[2].args)
		args["parameter"] = "a/b"
		connError(t, h.call(t, "get_live_dynamic_options", args), "no parameter")
		for _, r := range h.Sim.Requests() {
			if r.Host != "powerapps" {
				t.Errorf("request beyond reading the connector: %+v", r)
			}
		}
	})
}

// TestDynamicLookupValuesStayInTheirSegment: the values of other parameters go into
// the runtime URL escaped, as one path segment; dot segments are refused.
func TestDynamicLookupValuesStayInTheirSegment(t *testing.T) {
	t.Parallel()
	h := newLiveHarness(t, liveOptions{})
	rec := &uriRecorder{}
	rewire(t, h, 10*time.Second, nil, func(next http.RoundTripper) http.RoundTripper { rec.next = next; return rec })
	h.Sim.InjectFault(sim.FaultMatch{PathContains: "/ppapi/"}, sim.Fault{DropConnection: true})
	sp := connectionOf(t, h, sim.ContosoDefaultEnv, "shared_sharepointonline", true)
	args := func(dataset string) map[string]any {
		return map[string]any{"environmentName": sim.ContosoDefaultEnv, "connectorName": "shared_sharepointonline",
			"connectionName": sp.Name, "operationId": "GetItems", "parameter": "table", "parameters": map[string]any{"dataset": dataset}}
	}
	prefix := "/apihub/apim/sharepointonline/" + sp.Name + "/datasets/"
	for _, v := range []string{"../x", "a/b", "a?b", "a#b", "%2e%2e", "a b", "\n", "\u0000", strings.Repeat("a", 300),
		"https://contoso.sharepoint.com/sites/sales"} {
		t.Run(fmt.Sprintf("%q", v), func(t *testing.T) {
			rec.take()
			res := h.call(t, "get_live_dynamic_options", args(v))
			uris := rec.take()
			if want := prefix + url.PathEscape(v) + "/alltables"; len(uris) != 1 || uris[0] != want {
				t.Fatalf("runtime saw %q, want %q", uris, want)
			}
			// The simulator routes on decoded paths, so values with "/" that clean to
			// another path ("..", "//") do not reach its handler; the URL sent is what
			// this test is about.
			if strings.Contains(v, "/") && v != "a/b" {
				return
			}
			var got dynamicOptionsOut
			decodeResult(t, res, &got)
			if got.Via != "runtime" || len(got.Options) != 2 {
				t.Errorf("%+v", got)
			}
		})
	}
	for _, v := range []string{".", ".."} {
		t.Run(v, func(t *testing.T) {
			before := len(h.requestsTo("apihub"))
			connError(t, h.call(t, "get_live_dynamic_options", args(v)), "cannot be a URL path segment")
			if n := len(h.requestsTo("apihub")) - before; n != 0 {
				t.Errorf("%d runtime requests", n)
			}
		})
	}
}

func TestRuntimeCallEncoding(t *testing.T) {
	t.Parallel()
	sw, err := parseSwagger(json.RawMessage(`{"paths":{"/{connectionId}/sites/{site}/files/{file}":{"get":{"operationId":"GetFile","parameters":[
		{"name":"connectionId","in":"path","required":true},{"name":"site","in":"path","required":true,"x-ms-url-encoding":"double"},
		{"name":"file","in":"path","required":true},{"name":"top","in":"query","type":"integer","default":10},{"name":"mode","in":"query"}]}},
	"/{connectionId}/put":{"put":{"operationId":"Put"}}}}`))
	if err != nil {
		t.Fatal(err)
	}
	op, _ := sw.find("GetFile")
	call, missing, problem := sw.runtimeCall("https://x.azure-apim.net/apim/sp", "c1", op,
		map[string]json.RawMessage{"site": json.RawMessage(`"https://contoso.sharepoint.com/sites/a"`)},
		map[string]json.RawMessage{"file": json.RawMessage(`"a/b.txt"`), "mode": json.RawMessage(`true`)})
	if problem != "" || len(missing) != 0 {
		t.Fatalf("missing %v, problem %q", missing, problem)
	}
	if call.PathParams["site"] != "https:%2F%2Fcontoso.sharepoint.com%2Fsites%2Fa" || call.PathParams["file"] != "a/b.txt" ||
		call.Query.Get("top") != "10" || call.Query.Get("mode") != "true" {
		t.Errorf("call %+v", call)
	}
	if _, missing, _ := sw.runtimeCall("", "c1", op, nil, nil); !slices.Equal(missing, []string{"site", "file"}) {
		t.Errorf("missing %v", missing)
	}
	put, _ := sw.find("Put")
	if _, _, problem := sw.runtimeCall("", "c1", put, nil, nil); !strings.Contains(problem, "only GET and POST") {
		t.Errorf("PUT lookup: %q", problem)
	}
}

// TestConnectionToolsTenantIsolation: a Fabrikam user can neither see nor test nor
// use a Contoso connection.
func TestConnectionToolsTenantIsolation(t *testing.T) {
	t.Parallel()
	h := newLiveHarness(t, liveOptions{Email: connFiona})
	contoso, fabrikam := sim.ContosoDefaultEnv, sim.FabrikamDefaultEnv
	conn := sim.ContosoTasksConnection
	dyn := func(env, param string) map[string]any {
		return map[string]any{"environmentName": env, "connectorName": "shared_contosotasks", "connectionName": conn,
			"operationId": "CreateTask", "parameter": param, "parameters": map[string]any{"projectId": "p-001"}}
	}
	test := func(env string) map[string]any {
		return map[string]any{"environmentName": env, "connectorName": "shared_contosotasks", "connectionName": conn}
	}
	cases := []struct {
		name, tool string
		args       map[string]any
		want       []string
	}{
		{"list Contoso's connections", "list_live_connections", map[string]any{"environmentName": contoso}, []string{"status 403", "EnvironmentAccessDenied"}},
		{"describe from Contoso's environment", "describe_live_connector", map[string]any{"environmentName": contoso, "connectorName": "shared_contosotasks"}, []string{"status 403"}},
		{"test in Contoso's environment", "test_live_connection", test(contoso), []string{"status 403"}},
		{"test from Fabrikam's environment", "test_live_connection", test(fabrikam), []string{"status 404", "ConnectionNotFound"}},
		{"options in Contoso's environment", "get_live_dynamic_options", dyn(contoso, "projectId"), []string{"status 403"}},
		{"options from Fabrikam's environment", "get_live_dynamic_options", dyn(fabrikam, "projectId"), []string{"status 404", "ConnectionNotFound"}},
		{"schema from Fabrikam's environment", "get_live_dynamic_properties", dyn(fabrikam, "body"), []string{"status 404", "ConnectionNotFound"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := h.call(t, tc.tool, tc.args)
			connError(t, res, tc.want...)
			if strings.Contains(res.Text, "Website relaunch") || strings.Contains(res.Text, "alice@contoso.com") {
				t.Errorf("Contoso data leaked: %s", res.Text)
			}
		})
	}
	t.Run("not through the runtime either", func(t *testing.T) {
		h := newLiveHarness(t, liveOptions{Email: connFiona})
		h.Sim.InjectFault(sim.FaultMatch{PathContains: "/ppapi/"}, sim.Fault{DropConnection: true})
		res := h.call(t, "get_live_dynamic_options", dyn(fabrikam, "projectId"))
		connError(t, res, "status 404")
		if strings.Contains(res.Text, "Website relaunch") {
			t.Errorf("Contoso data leaked: %s", res.Text)
		}
	})
	t.Run("Fabrikam's own connection works", func(t *testing.T) {
		own := connectionOf(t, h, fabrikam, "shared_contosotasks", true)
		var got testConnectionOut
		connError(t, h.call(t, "test_live_connection", test(fabrikam)), "ConnectionNotFound")
		args := test(fabrikam)
		args["connectionName"] = own.Name
		h.mustCall(t, "test_live_connection", args, &got)
		if !got.OK || !got.LiveCheck.OK {
			t.Errorf("%+v", got)
		}
	})
}

func TestRuntimeErrorMapping(t *testing.T) {
	t.Parallel()
	cases := []struct {
		err  error
		want []string
	}{
		{fmt.Errorf("x: %w", powerautomate.ErrConsentRequired), []string{"extra consent", "https://apihub.azure.com", connDashboard}},
		{&powerautomate.APIError{Status: 400, Message: "Error from token exchange: " + upstreamSecret}, []string{"sign-in is broken", "status 400"}},
		{&powerautomate.APIError{Status: 442, Message: upstreamSecret}, []string{"DLP", "status 442"}},
		{&powerautomate.APIError{Status: 404}, []string{"not found", "parameter"}},
		{&powerautomate.APIError{Status: 429, RetryAfter: 3 * time.Second}, []string{"throttling", "wait 3s"}},
		{fmt.Errorf("wrapped: %w", powerautomate.ErrTimeout), []string{"did not answer in time"}},
	}
	for _, tc := range cases {
		var te *ToolError
		if !errors.As(runtimeError(tc.err, connDashboard, ""), &te) {
			t.Errorf("%v: not a ToolError", tc.err)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(te.Error(), w) {
				t.Errorf("%v → %q lacks %q", tc.err, te.Error(), w)
			}
		}
		if strings.Contains(te.Error(), upstreamSecret) {
			t.Errorf("upstream text echoed: %q", te.Error())
		}
	}
	if _, ok := runtimeError(errors.New("boom"), connDashboard, "").(*ToolError); ok {
		t.Error("an unknown error became a ToolError instead of an internal error")
	}
}
