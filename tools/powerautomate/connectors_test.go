package powerautomate

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

func TestListDynamicPropertiesUnwrapsLogicAppsResponse(t *testing.T) {
	const label = "111111112222333344445555555555.55"
	path := "/ppapi/" + label + "/powerautomate/apis/shared_contosotasks/connections/c1/listDynamicProperties"
	cases := map[string]struct {
		status      int
		body        string
		wantSchema  string
		wantErrCode string
	}{
		"bare":            {200, `{"type":"object"}`, `{"type":"object"}`, ""},
		"wrapped":         {200, `{"response":{"statusCode":"OK","body":{"type":"string"}}}`, `{"type":"string"}`, ""},
		"wrapped failure": {200, `{"response":{"statusCode":"BadRequest","body":{"error":{"code":"Boom","message":"x"}}}}`, "", "Boom"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			mux := http.NewServeMux()
			mux.HandleFunc("POST "+path, func(w http.ResponseWriter, r *http.Request) {
				requireAuth(t, r, AudienceFlow)
				var body map[string]json.RawMessage
				json.NewDecoder(r.Body).Decode(&body)
				if string(body["dynamicInvocationDefinition"]) != `{"operationId":"GetTaskSchema"}` || string(body["location"]) != `"input"` {
					t.Errorf("body = %v", body)
				}
				writeJSON(w, tc.status, tc.body)
			})
			c := newTestClient(t, testConfig(newUpstream(t, mux).URL))
			schema, err := c.ListDynamicProperties(context.Background(), "11111111-2222-3333-4444-555555555555", "shared_contosotasks", "c1", DynamicRequest{
				Definition: json.RawMessage(`{"dynamicState":{"operationId":"GetTaskSchema"}}`), Location: "input"})
			if tc.wantErrCode != "" {
				if apiErr, ok := err.(*APIError); !ok || apiErr.Code != tc.wantErrCode {
					t.Fatalf("err = %v, want code %s", err, tc.wantErrCode)
				}
				return
			}
			if err != nil || string(schema) != tc.wantSchema {
				t.Errorf("schema = %s, %v", schema, err)
			}
		})
	}
}

func TestTestCallUsesLiteralParameters(t *testing.T) {
	api := &Connector{PrimaryRuntimeURL: "https://x.azure-apim.net/apim/sql", Swagger: json.RawMessage(`{
		"paths":{"/{connectionId}/datasets/{server}/tables":{"parameters":[],"get":{"operationId":"GetTables","parameters":[
			{"name":"connectionId","in":"path"},{"name":"server","in":"path"},{"name":"top","in":"query"},{"name":"skip","in":"query"}]}}},
		"x-ms-capabilities":{"testConnection":{"operationId":"GetTables","parameters":{"server":"default","top":{"value":5}}}}}`)}
	call, opID, reason := testCall(api)
	if reason != "" || opID != "GetTables" || call.PathParams["server"] != "default" || call.Query.Get("top") != "5" || call.Query.Has("skip") {
		t.Errorf("call = %+v, op %q, reason %q", call, opID, reason)
	}
}

func TestErrorStringsDoNotEchoUpstreamText(t *testing.T) {
	apiErr := &APIError{Status: 403, Code: "Forbidden", Message: "secret internal detail"}
	idErr := invalid("flow", "x/../y", "want the flow GUID")
	if strings.Contains(apiErr.Error(), "secret") || !strings.Contains(apiErr.Error(), "403") {
		t.Errorf("APIError.Error() = %q", apiErr.Error())
	}
	if !strings.Contains(idErr.Error(), `"x/../y"`) || !strings.Contains(idErr.Error(), "flow") {
		t.Errorf("InvalidIDError.Error() = %q", idErr.Error())
	}
}

// LookupPath is the one reader of value-paths for the tools and the simulator: keys
// match case-insensitively, an exact key wins over a folded one, and a path that
// leads nowhere (a missing key, a value that is not an object) is nil.
func TestLookupPath(t *testing.T) {
	var doc any
	if err := json.Unmarshal([]byte(`{"Schema":{"InputParameters":[1],"inputparameters":[2]},"value":[{"Id":"a"}],"n":1}`), &doc); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		"Schema/InputParameters":   `[1]`,
		"schema/inputparameters":   `[2]`,
		"/SCHEMA/":                 `{"InputParameters":[1],"inputparameters":[2]}`,
		"value":                    `[{"Id":"a"}]`,
		"":                         `{"Schema":{"InputParameters":[1],"inputparameters":[2]},"n":1,"value":[{"Id":"a"}]}`,
		"missing":                  `null`,
		"n/deeper":                 `null`,
		"Schema/InputParameters/x": `null`,
	} {
		got, err := json.Marshal(LookupPath(doc, path))
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != want {
			t.Errorf("LookupPath(%q) = %s, want %s", path, got, want)
		}
	}
}
