package sim

// Tests of the simulated Power Apps API (api.powerapps.com): connections and their
// paging, connectors and dynamic values, connection tests, connection create and
// consent links, apps.

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/flowstudio/mcp/tools/powerautomate"
)

func TestConnectionsPageWithODataNextLink(t *testing.T) {
	c := newAliceClient(t)
	var conns []powerautomate.Connection
	opts := powerautomate.ListConnectionsOptions{Top: 3}
	for {
		p, err := c.ListConnections(ctx, ContosoDefaultEnv, opts)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, p.Connections...)
		if p.NextLink == "" {
			break
		}
		opts.NextLink = p.NextLink
	}
	if len(conns) != 8 {
		t.Fatalf("%d connections, want 8", len(conns))
	}
	byStatus := map[string]int{}
	expired := 0
	for _, conn := range conns {
		byStatus[conn.Statuses[0].Status]++
		if !conn.ExpirationTime.IsZero() {
			expired++
		}
		if conn.Environment != ContosoDefaultEnv || conn.CreatedBy.Email != alice {
			t.Errorf("connection %+v", conn)
		}
	}
	if byStatus["Connected"] != 6 || byStatus["Error"] != 2 || expired != 1 {
		t.Errorf("statuses %v, expired %d", byStatus, expired)
	}
	tasks, err := c.ListConnections(ctx, ContosoDefaultEnv, powerautomate.ListConnectionsOptions{Connector: "shared_contosotasks"})
	if err != nil || len(tasks.Connections) != 2 {
		t.Errorf("per-connector list: %v %+v", err, tasks)
	}
	conn, err := c.GetConnection(ctx, ContosoDefaultEnv, "shared_contosotasks", ContosoTasksConnection)
	if err != nil || !conn.Connected() || conn.Connector != "shared_contosotasks" {
		t.Errorf("GetConnection: %v %+v", err, conn)
	}
	_, err = c.GetConnection(ctx, ContosoDefaultEnv, "shared_contosotasks", "nope")
	wantAPIError(t, err, 404, "ConnectionNotFound")
}

func TestConnectorAndDynamicValues(t *testing.T) {
	s, srv, c := newAliceSim(t)
	api, err := c.GetConnector(ctx, ContosoDefaultEnv, "shared_contosotasks")
	if err != nil {
		t.Fatal(err)
	}
	var sw struct {
		Host, BasePath string
		Paths          map[string]json.RawMessage
	}
	if err := json.Unmarshal(api.Swagger, &sw); err != nil || len(sw.Paths) != 3 || api.PrimaryRuntimeURL != srv.URL+"/apihub/apim/contosotasks" ||
		"http://"+sw.Host+sw.BasePath != api.PrimaryRuntimeURL {
		t.Fatalf("connector %+v swagger host %s%s (%v)", api, sw.Host, sw.BasePath, err)
	}
	want := []powerautomate.DynamicValue{
		{Value: json.RawMessage(`"p-001"`), DisplayName: "Website relaunch"},
		{Value: json.RawMessage(`"p-002"`), DisplayName: "Q3 budget"},
	}
	for name, def := range map[string]string{
		"x-ms-dynamic-list":   `{"operationId":"ListProjects","parameters":{},"itemsPath":"value","itemValuePath":"id","itemTitlePath":"name"}`,
		"x-ms-dynamic-values": `{"operationId":"ListProjects","parameters":{},"value-collection":"value","value-path":"id","value-title":"name"}`,
		"designer form":       `{"itemValuePath":"id","dynamicState":{"operationId":"ListProjects","parameters":{},"itemsPath":"value","itemValuePath":"id","itemTitlePath":"name"},"parameters":{}}`,
	} {
		got, err := c.ListDynamicValues(ctx, ContosoDefaultEnv, "shared_contosotasks", ContosoTasksConnection, powerautomate.DynamicRequest{Definition: json.RawMessage(def)})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", name, diff)
		}
	}
	s.ResetRequests()
	schema, err := c.ListDynamicProperties(ctx, ContosoDefaultEnv, "shared_contosotasks", ContosoTasksConnection, powerautomate.DynamicRequest{
		Definition:            json.RawMessage(`{"operationId":"GetTaskSchema","parameters":{"projectId":{"parameter":"projectId"}},"value-path":"schema"}`),
		Parameters:            json.RawMessage(`{"projectId":"p-001"}`),
		ContextParameterAlias: "body", Location: "input",
	})
	if err != nil || !strings.Contains(string(schema), `"priority"`) || strings.Contains(string(schema), `"name"`) {
		t.Errorf("schema = %s, %v", schema, err)
	}
	if reqs := s.Requests(); len(reqs) != 1 || reqs[0].Host != "ppapi" || reqs[0].Audience != powerautomate.AudienceFlow {
		t.Errorf("dynamic properties went to %+v", reqs)
	}
	_, err = c.ListDynamicValues(ctx, ContosoDefaultEnv, "shared_contosotasks", "a1b2c3d4e5f60718293a4b5c6d7e8f90", powerautomate.DynamicRequest{Definition: json.RawMessage(`{"operationId":"ListProjects"}`)})
	wantAPIError(t, err, 404, "ConnectionNotFound")
}

func TestDynamicValuesThroughABrokenConnection(t *testing.T) {
	c := newAliceClient(t)
	tasks, err := c.ListConnections(ctx, ContosoDefaultEnv, powerautomate.ListConnectionsOptions{Connector: "shared_contosotasks"})
	if err != nil {
		t.Fatal(err)
	}
	for _, conn := range tasks.Connections {
		if conn.Connected() {
			continue
		}
		_, err := c.ListDynamicValues(ctx, ContosoDefaultEnv, "shared_contosotasks", conn.Name, powerautomate.DynamicRequest{Definition: json.RawMessage(`{"operationId":"ListProjects"}`)})
		wantAPIError(t, err, 400, "DynamicOperationRequestClientFailure")
		return
	}
	t.Fatal("no broken contosotasks connection seeded")
}

func TestTestConnection(t *testing.T) {
	s, _, c := newAliceSim(t)
	s.ResetRequests()
	good, err := c.TestConnection(ctx, ContosoDefaultEnv, "shared_contosotasks", ContosoTasksConnection)
	if err != nil {
		t.Fatal(err)
	}
	if !good.Connected || !good.LiveCheck.Ran || !good.LiveCheck.OK || good.LiveCheck.OperationID != "ListProjects" || good.LiveCheck.HTTPStatus != 200 {
		t.Errorf("good connection = %+v", good)
	}
	var runtime []RecordedRequest
	for _, r := range s.Requests() {
		if r.Host == "apihub" {
			runtime = append(runtime, r)
		}
	}
	if len(runtime) != 1 || runtime[0].Audience != powerautomate.AudienceAPIHub || runtime[0].Path != "/apim/contosotasks/"+ContosoTasksConnection+"/projects" {
		t.Errorf("runtime calls = %+v", runtime)
	}

	tasks, _ := c.ListConnections(ctx, ContosoDefaultEnv, powerautomate.ListConnectionsOptions{Connector: "shared_contosotasks"})
	for _, conn := range tasks.Connections {
		if conn.Connected() {
			continue
		}
		bad, err := c.TestConnection(ctx, ContosoDefaultEnv, "shared_contosotasks", conn.Name)
		if err != nil {
			t.Fatal(err)
		}
		if bad.Connected || !bad.LiveCheck.Ran || bad.LiveCheck.OK || bad.LiveCheck.HTTPStatus != 401 || !strings.Contains(bad.LiveCheck.Message, "token exchange") {
			t.Errorf("broken connection = %+v", bad)
		}
	}

	outlook, _ := c.ListConnections(ctx, ContosoDefaultEnv, powerautomate.ListConnectionsOptions{Connector: "shared_office365"})
	res, err := c.TestConnection(ctx, ContosoDefaultEnv, "shared_office365", outlook.Connections[0].Name)
	if err != nil || res.LiveCheck.Ran || res.LiveCheck.Reason == "" || !res.Connected {
		t.Errorf("connector without testConnection: %+v %v", res, err)
	}
}

func TestInvokeConnectorOperation(t *testing.T) {
	c := newAliceClient(t)
	api, err := c.GetConnector(ctx, ContosoDefaultEnv, "shared_contosotasks")
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.InvokeConnectorOperation(ctx, powerautomate.ConnectorCall{RuntimeURL: api.PrimaryRuntimeURL, Connection: ContosoTasksConnection,
		Method: "GET", PathTemplate: "/{connectionId}/projects/{projectId}/taskschema", PathParams: map[string]string{"projectId": "p 002/x"}})
	if err != nil {
		t.Fatal(err)
	}
	var body struct{ Name string }
	if json.Unmarshal(resp.Body, &body) != nil || body.Name != "p 002/x" {
		t.Errorf("path parameter not escaped and passed through: %s", resp.Body)
	}
	_, err = c.InvokeConnectorOperation(ctx, powerautomate.ConnectorCall{RuntimeURL: "https://evil.example/apim/x", Connection: ContosoTasksConnection,
		Method: "GET", PathTemplate: "/{connectionId}/projects"})
	if err == nil || !strings.Contains(err.Error(), "not on an allowed host") {
		t.Errorf("off-list runtime URL: %v", err)
	}
}

// TestConnectionCreateAndConsent: the Power Apps API's connection PUT (201 new,
// 200 again, 400 without a required parameter) and getConsentLink (the owner only,
// OAuth connectors only), and consent pages that refuse a forged link.
func TestConnectionCreateAndConsent(t *testing.T) {
	s, srv, c := newAliceSim(t)
	req := powerautomate.CreateConnectionRequest{Environment: ContosoDefaultEnv, Connector: "shared_contosotasks", Name: "0123456789abcdef0123456789abcdef"}
	conn, err := c.CreateConnection(ctx, req)
	if err != nil || conn.Connected() || conn.Statuses[0].Error == nil || conn.Statuses[0].Error.Code != "Unauthenticated" {
		t.Fatalf("create: %+v, %v", conn, err)
	}
	if again, err := c.CreateConnection(ctx, req); err != nil || again.Name != req.Name {
		t.Fatalf("PUT again: %+v, %v", again, err)
	}
	_, err = newTestClient(t, s, srv.URL, bob).CreateConnection(ctx, req)
	wantAPIError(t, err, http.StatusConflict, "ConnectionConflict")

	_, err = c.CreateConnection(ctx, powerautomate.CreateConnectionRequest{Environment: ContosoDefaultEnv, Connector: "shared_contosoinventory", Name: "inv1"})
	wantAPIError(t, err, http.StatusBadRequest, "InvalidConnectionParameters")
	open, err := c.CreateConnection(ctx, powerautomate.CreateConnectionRequest{Environment: ContosoDefaultEnv, Connector: "shared_contosoholidays", Name: "hol1"})
	if err != nil || !open.Connected() {
		t.Fatalf("no-sign-in connector: %+v, %v", open, err)
	}
	_, err = c.GetConsentLink(ctx, ContosoDefaultEnv, "shared_contosoholidays", "hol1", "https://back.example/")
	wantAPIError(t, err, http.StatusBadRequest, "ConsentLinkNotSupported")
	_, err = newTestClient(t, s, srv.URL, bob).GetConsentLink(ctx, ContosoDefaultEnv, "shared_contosotasks", req.Name, "https://back.example/")
	wantAPIError(t, err, http.StatusNotFound, "ConnectionNotFound")

	link, err := c.GetConsentLink(ctx, ContosoDefaultEnv, "shared_contosotasks", req.Name, "https://back.example/done")
	if err != nil || !strings.HasPrefix(link, srv.URL+"/consent/login?") {
		t.Fatalf("link %q, %v", link, err)
	}
	u, _ := url.Parse(link)
	forged := u.Query()
	forged.Set("sig", "x"+forged.Get("sig"))
	if status, _ := rawCall(t, "POST", srv.URL+"/consent/login?"+forged.Encode()+"&consent=accept", "", ""); status != 400 {
		t.Fatalf("a forged link: %d", status)
	}
	if status, body := rawCall(t, "GET", link, "", ""); status != 200 || !strings.Contains(body, "Sign in to shared_contosotasks") {
		t.Fatalf("page: %d %s", status, body)
	}
	if !s.SignInConnection(ContosoDefaultEnv, req.Name) {
		t.Fatal("not signed in")
	}
	got, err := c.GetConnection(ctx, ContosoDefaultEnv, "shared_contosotasks", req.Name)
	if err != nil || !got.Connected() {
		t.Fatalf("after sign-in: %+v, %v", got, err)
	}
	// The routes take the Power Apps audience only.
	tid, oid := s.UserFor(alice)
	flowTok := s.MintAccessToken(tid, oid, "https://service.flow.microsoft.com/", nil, time.Hour)
	if status, _ := rawCall(t, "PUT", srv.URL+"/powerapps/providers/Microsoft.PowerApps/apis/shared_contosotasks/connections/x?api-version=2016-11-01&%24filter="+
		url.QueryEscape("environment eq '"+ContosoDefaultEnv+"'"), flowTok, `{}`); status != 401 {
		t.Errorf("a Flow token created a connection: %d", status)
	}
}

// TestAppsListing: the Power Apps API's shape (appUris included, as a real answer
// carries it), the mandatory environment filter, tenant isolation, apps shared with
// no one visible to their owner only, and nextLink paging.
func TestAppsListing(t *testing.T) {
	s, srv, c := newAliceSim(t)
	p, err := c.ListApps(ctx, ContosoDefaultEnv, powerautomate.ListAppsOptions{Top: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Apps) != 2 || p.NextLink == "" {
		t.Fatalf("page 1 = %+v", p)
	}
	p2, err := c.ListApps(ctx, ContosoDefaultEnv, powerautomate.ListAppsOptions{NextLink: p.NextLink})
	if err != nil || len(p2.Apps) != 1 || p2.NextLink != "" {
		t.Fatalf("page 2 = %+v, %v", p2, err)
	}
	bobs, err := newTestClient(t, s, srv.URL, bob).ListApps(ctx, ContosoDefaultEnv, powerautomate.ListAppsOptions{})
	if err != nil || len(bobs.Apps) != 4 {
		t.Fatalf("bob sees %+v, %v; want the 3 shared apps and his own", bobs, err)
	}
	_, err = newTestClient(t, s, srv.URL, fiona).ListApps(ctx, ContosoDefaultEnv, powerautomate.ListAppsOptions{})
	wantAPIError(t, err, http.StatusForbidden, "EnvironmentAccessDenied")

	tid, oid := s.UserFor(alice)
	token := s.MintAccessToken(tid, oid, "https://service.powerapps.com/", nil, time.Hour)
	base := srv.URL + "/powerapps/providers/Microsoft.PowerApps/apps?api-version=2016-11-01"
	status, body := rawCall(t, "GET", base+"&%24filter="+url.QueryEscape("environment eq '"+ContosoDefaultEnv+"'"), token, "")
	if status != 200 || !strings.Contains(body, `"documentUri"`) || !strings.Contains(body, AppDocumentMarker) ||
		!strings.Contains(body, `"type":"Microsoft.PowerApps/apps"`) || !strings.Contains(body, `"sharedUsersCount"`) {
		t.Fatalf("raw list: %d %s", status, body)
	}
	if status, body := rawCall(t, "GET", base, token, ""); status != 400 || !strings.Contains(body, "InvalidFilter") {
		t.Errorf("no filter: %d %s", status, body)
	}
	flowTok := flowToken(s, alice, time.Hour)
	if status, _ := rawCall(t, "GET", base+"&%24filter="+url.QueryEscape("environment eq '"+ContosoDefaultEnv+"'"), flowTok, ""); status != 401 {
		t.Errorf("a Flow token was accepted: %d", status)
	}
}
