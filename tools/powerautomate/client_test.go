package powerautomate

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const flowsPath = "/flow/providers/Microsoft.ProcessSimple/environments/" + testEnv + "/flows"

func TestListFlowsSendsTokenQueryAndFollowsNextLink(t *testing.T) {
	mux := http.NewServeMux()
	var srv *upstream
	mux.HandleFunc("GET "+flowsPath, func(w http.ResponseWriter, r *http.Request) {
		requireAuth(t, r, AudienceFlow)
		q := r.URL.Query()
		if q.Get("api-version") != "2016-11-01" {
			t.Errorf("query = %v", q)
		}
		if r.Header.Get("Accept") != "application/json" {
			t.Errorf("Accept = %q", r.Header.Get("Accept"))
		}
		if q.Get("$skiptoken") == "" {
			if q.Get("$filter") != "search('team')" || q.Get("$top") != "2" {
				t.Errorf("first page query = %v", q)
			}
			writeJSON(w, 200, `{"value":[{"name":"`+testFlow+`","properties":{"displayName":"A","state":"Started",
				"definitionSummary":{"triggers":[{"type":"Request","kind":"Button"}]}}}],
				"nextLink":"`+srv.URL+flowsPath+`?api-version=2016-11-01&%24skiptoken=abc"}`)
			return
		}
		writeJSON(w, 200, `{"value":[{"name":"a18e89d1-4c75-41e4-9517-e90aedc079be","properties":{"displayName":"B","state":"Stopped"}}]}`)
	})
	srv = newUpstream(t, mux)
	c := newTestClient(t, testConfig(srv.URL))

	p1, err := c.ListFlows(context.Background(), testEnv, ListFlowsOptions{Search: "team", Top: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(p1.Flows) != 1 || p1.Flows[0].DisplayName != "A" || p1.NextLink == "" {
		t.Fatalf("page 1 = %+v", p1)
	}
	if diff := cmp.Diff([]OperationSummary{{Type: "Request", Kind: "Button"}}, p1.Flows[0].Triggers); diff != "" {
		t.Errorf("triggers (-want +got):\n%s", diff)
	}
	p2, err := c.ListFlows(context.Background(), testEnv, ListFlowsOptions{NextLink: p1.NextLink})
	if err != nil {
		t.Fatal(err)
	}
	if len(p2.Flows) != 1 || p2.Flows[0].State != "Stopped" || p2.NextLink != "" {
		t.Fatalf("page 2 = %+v", p2)
	}
}

func TestListConnectionsFollowsODataNextLink(t *testing.T) {
	mux := http.NewServeMux()
	var srv *upstream
	mux.HandleFunc("GET /powerapps/providers/Microsoft.PowerApps/connections", func(w http.ResponseWriter, r *http.Request) {
		requireAuth(t, r, AudiencePowerApps)
		if got := r.URL.Query().Get("$filter"); got != "environment eq '"+testEnv+"'" {
			t.Errorf("$filter = %q", got)
		}
		if r.URL.Query().Get("page") == "" {
			writeJSON(w, 200, `{"value":[{"name":"c1","properties":{"apiId":"/providers/Microsoft.PowerApps/apis/shared_office365",
				"statuses":[{"status":"Connected"}]}}],"@odata.nextLink":"`+srv.URL+`/powerapps/providers/Microsoft.PowerApps/connections?page=2&%24filter=environment+eq+%27`+testEnv+`%27"}`)
			return
		}
		writeJSON(w, 200, `{"value":[{"name":"c2","properties":{"apiId":"/providers/Microsoft.PowerApps/apis/shared_teams",
			"statuses":[{"status":"Error","target":"token","error":{"code":"Unauthenticated","message":"x"}}]}}]}`)
	})
	srv = newUpstream(t, mux)
	c := newTestClient(t, testConfig(srv.URL))
	p1, err := c.ListConnections(context.Background(), testEnv, ListConnectionsOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p1.NextLink == "" || p1.Connections[0].Connector != "shared_office365" || !p1.Connections[0].Connected() {
		t.Fatalf("page 1 = %+v", p1)
	}
	p2, err := c.ListConnections(context.Background(), testEnv, ListConnectionsOptions{NextLink: p1.NextLink})
	if err != nil {
		t.Fatal(err)
	}
	if p2.NextLink != "" || p2.Connections[0].Connected() || p2.Connections[0].Statuses[0].Error.Code != "Unauthenticated" {
		t.Fatalf("page 2 = %+v", p2)
	}
}

func TestNextLinkElsewhereIsRefusedWithoutRequest(t *testing.T) {
	srv := newUpstream(t, http.NewServeMux())
	other := newUpstream(t, http.NewServeMux())
	c := newTestClient(t, testConfig(srv.URL))
	for name, link := range map[string]string{
		"other host":       other.URL + flowsPath + "?api-version=2016-11-01",
		"other collection": srv.URL + "/flow/providers/Microsoft.ProcessSimple/environments/" + testEnv + "/flows/" + testFlow + "/runs?x=1",
		"other api":        srv.URL + "/powerapps/providers/Microsoft.PowerApps/connections",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := c.ListFlows(context.Background(), testEnv, ListFlowsOptions{NextLink: link})
			if !errors.Is(err, ErrLinkNotAllowed) {
				t.Fatalf("err = %v, want ErrLinkNotAllowed", err)
			}
		})
	}
	if n, _ := srv.seen(); n != 0 {
		t.Errorf("server saw %d requests", n)
	}
	if n, _ := other.seen(); n != 0 {
		t.Errorf("other server saw %d requests", n)
	}
}

func TestErrorBodies(t *testing.T) {
	cases := []struct {
		name   string
		status int
		header map[string]string
		body   string
		want   APIError
	}{
		{"object", 403, nil, `{"error":{"code":"ConnectionAuthorizationFailed","message":"no access"}}`,
			APIError{Status: 403, Code: "ConnectionAuthorizationFailed", Message: "no access"}},
		{"string", 400, nil, `{"error":"Calling Power Automate through ARM is no longer supported."}`,
			APIError{Status: 400, Message: "Calling Power Automate through ARM is no longer supported."}},
		{"arm wrapper", 404, map[string]string{"x-ms-request-id": "westeurope:1"},
			`{"error":{"code":"AzureResourceManagerRequestFailed","message":"Request to Azure Resource Manager failed with error: '{\"error\":{\"code\":\"WorkflowRunNotFound\",\"message\":\"The workflow 'f' run 'r' could not be found.\"}}'"}}`,
			APIError{Status: 404, Code: "WorkflowRunNotFound", WrapperCode: "AzureResourceManagerRequestFailed", Message: "The workflow 'f' run 'r' could not be found.", RequestID: "westeurope:1"}},
		{"runtime", 401, nil, `{"status":401,"message":"Error from token exchange"}`,
			APIError{Status: 401, Message: "Error from token exchange"}},
		{"not json", 500, nil, `<html>oops</html>`, APIError{Status: 500}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mux := http.NewServeMux()
			mux.HandleFunc("GET "+flowsPath+"/"+testFlow, func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tc.header {
					w.Header().Set(k, v)
				}
				writeJSON(w, tc.status, tc.body)
			})
			cfg := testConfig(newUpstream(t, mux).URL)
			cfg.MaxRetries = -1
			_, err := newTestClient(t, cfg).GetFlow(context.Background(), FlowRef{Environment: testEnv, Flow: testFlow})
			var got *APIError
			if !errors.As(err, &got) {
				t.Fatalf("err = %v, want *APIError", err)
			}
			if diff := cmp.Diff(tc.want, *got); diff != "" {
				t.Errorf("APIError (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRetryAfterThenSuccess(t *testing.T) {
	mux, calls := environmentsAfterAFailure("1", 429, `{"error":{"code":"TooManyConcurrentRequests","message":"slow down"}}`)
	c := newTestClient(t, testConfig(newUpstream(t, mux).URL))
	ctx, stats := WithCallStats(context.Background())
	start := time.Now()
	envs, err := c.ListEnvironments(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if elapsed := time.Since(start); elapsed < time.Second {
		t.Errorf("retried after %v, want >= Retry-After 1s", elapsed)
	}
	if len(envs) != 1 || !envs[0].IsDefault || *calls != 2 || stats.Calls() != 2 || stats.Status() != 200 || stats.Bytes() == 0 {
		t.Errorf("envs=%+v calls=%d stats=%d/%d", envs, *calls, stats.Calls(), stats.Status())
	}
}

func TestRetriesRunOut(t *testing.T) {
	cases := []struct {
		name      string
		status    int
		post      bool
		wantCalls int
	}{
		{"503 GET retried", 503, false, 4},
		{"502 GET retried", 502, false, 4},
		{"503 POST retried", 503, true, 4},
		{"502 POST not retried", 502, true, 1},
		{"500 not retried", 500, false, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mux := http.NewServeMux()
			mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
				writeJSON(w, tc.status, `{"error":{"code":"Unavailable","message":"down"}}`)
			})
			srv := newUpstream(t, mux)
			c := newTestClient(t, testConfig(srv.URL))
			ctx, stats := WithCallStats(context.Background())
			var err error
			if tc.post {
				err = c.StopFlow(ctx, FlowRef{Environment: testEnv, Flow: testFlow})
			} else {
				_, err = c.GetFlow(ctx, FlowRef{Environment: testEnv, Flow: testFlow})
			}
			var apiErr *APIError
			if !errors.As(err, &apiErr) || apiErr.Status != tc.status {
				t.Fatalf("err = %v", err)
			}
			if n, _ := srv.seen(); n != tc.wantCalls || stats.Calls() != tc.wantCalls || stats.Status() != tc.status {
				t.Errorf("server saw %d, stats %d/%d; want %d calls", n, stats.Calls(), stats.Status(), tc.wantCalls)
			}
		})
	}
}

func TestLongRetryAfterIsReturned(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "120")
		writeJSON(w, 429, `{"error":{"code":"TooManyConcurrentRequests","message":"x"}}`)
	})
	srv := newUpstream(t, mux)
	_, err := newTestClient(t, testConfig(srv.URL)).ListEnvironments(context.Background())
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.RetryAfter != 120*time.Second || apiErr.Code != CodeTooManyConcurrentRequests {
		t.Fatalf("err = %v", err)
	}
	if n, _ := srv.seen(); n != 1 {
		t.Errorf("server saw %d requests, want 1", n)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for in, want := range map[string]time.Duration{
		"2": 2 * time.Second, "": 0, "-1": 0, "soon": 0,
		now.Add(30 * time.Second).Format(http.TimeFormat): 30 * time.Second,
		now.Add(-time.Minute).Format(http.TimeFormat):     0,
	} {
		if got := parseRetryAfter(in, now); got != want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestTimeout(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	})
	cfg := testConfig(newUpstream(t, mux).URL)
	cfg.Timeout = 100 * time.Millisecond
	_, err := newTestClient(t, cfg).GetFlow(context.Background(), FlowRef{Environment: testEnv, Flow: testFlow})
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("err = %v, want ErrTimeout", err)
	}
}

func TestCallerCancellationIsNotATimeout(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	c := newTestClient(t, testConfig(newUpstream(t, mux).URL))
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	_, err := c.GetFlow(ctx, FlowRef{Environment: testEnv, Flow: testFlow})
	if !errors.Is(err, context.Canceled) || errors.Is(err, ErrTimeout) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

func TestRedirectOffHostIsRefusedWithoutToken(t *testing.T) {
	other := newUpstream(t, http.NewServeMux())
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/steal", http.StatusFound)
	})
	c := newTestClient(t, testConfig(newUpstream(t, mux).URL))
	_, err := c.GetFlow(context.Background(), FlowRef{Environment: testEnv, Flow: testFlow})
	if !errors.Is(err, ErrRedirectRefused) {
		t.Fatalf("err = %v, want ErrRedirectRefused", err)
	}
	if n, _ := other.seen(); n != 0 {
		t.Errorf("redirect target saw %d requests", n)
	}
}

func TestRedirectToAnotherAudienceOnSameHostIsRefused(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/flow/", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/powerapps/x", http.StatusTemporaryRedirect)
	})
	mux.HandleFunc("/powerapps/", func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("Power Apps base reached with Authorization %q", r.Header.Get("Authorization"))
	})
	c := newTestClient(t, testConfig(newUpstream(t, mux).URL))
	if _, err := c.GetFlow(context.Background(), FlowRef{Environment: testEnv, Flow: testFlow}); !errors.Is(err, ErrRedirectRefused) {
		t.Fatalf("err = %v, want ErrRedirectRefused", err)
	}
}

func TestBaseMatching(t *testing.T) {
	c := newTestClient(t, Config{})
	for raw, want := range map[string]string{
		"https://api.flow.microsoft.com/providers/x":                                    AudienceFlow,
		"https://API.FLOW.microsoft.com:443/providers/x":                                AudienceFlow,
		"https://api.powerapps.com/providers/x":                                         AudiencePowerApps,
		"https://api.bap.microsoft.com/providers/x":                                     AudiencePowerApps,
		"https://europe-002.azure-apim.net/apim/contosotasks/c1/x":                      AudienceAPIHub,
		"https://x.09.common.tip2.azure-apihub.net/apim/msnweather/c1":                  AudienceAPIHub,
		"https://0000000000000001.23.environment.api.powerplatform.com/powerautomate/x": AudienceFlow,
		"http://api.flow.microsoft.com/providers/x":                                     "none",
		"https://api.flow.microsoft.com.evil.example/providers/x":                       "none",
		"https://user@api.flow.microsoft.com/providers/x":                               "none",
		"https://prod-59.westeurope.logic.azure.com/workflows/x":                        "none",
	} {
		u := mustParse(t, raw)
		b, ok := c.baseFor(u)
		got := b.audience
		if !ok {
			got = "none"
		}
		if got != want {
			t.Errorf("baseFor(%s) audience = %q, want %q", raw, got, want)
		}
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	for name, cfg := range map[string]Config{
		"relative flow URL":   {FlowURL: "/flow"},
		"ftp scheme":          {PowerAppsURL: "ftp://api.powerapps.com"},
		"template without id": {PowerPlatformURL: "https://api.powerplatform.com"},
	} {
		if _, err := New(cfg, fakeTokens{}); err == nil {
			t.Errorf("%s: New accepted %+v", name, cfg)
		}
	}
}

func TestForCloud(t *testing.T) {
	gcc, ok := ForCloud(CloudGCC)
	if !ok || gcc.FlowURL != "https://gov.api.flow.microsoft.us" || gcc.FlowAudience != "https://gov.service.flow.microsoft.us/" {
		t.Fatalf("GCC = %+v", gcc)
	}
	if _, err := New(gcc, fakeTokens{}); err != nil {
		t.Errorf("New(GCC) = %v", err)
	}
	if _, ok := ForCloud("mars"); ok {
		t.Error("unknown cloud accepted")
	}
}

func mustParse(t *testing.T, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

type failingTokens struct{ err error }

func (f failingTokens) Token(context.Context, string) (string, error) { return "", f.err }

func TestTokenSourceErrorIsReturnedWithoutRequest(t *testing.T) {
	srv := newUpstream(t, http.NewServeMux())
	errConsent := errors.New("consent required")
	c, err := New(testConfig(srv.URL), failingTokens{errConsent})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.ListEnvironments(context.Background()); !errors.Is(err, errConsent) {
		t.Fatalf("err = %v, want the token source's error", err)
	}
	if n, _ := srv.seen(); n != 0 {
		t.Errorf("server saw %d requests", n)
	}
}

// TestReadLimited: declared and undeclared lengths read the same bytes, the limit
// holds either way, and a pooled buffer never leaks one answer into the next.
func TestReadLimited(t *testing.T) {
	long := strings.Repeat("abcdefghij", 1000)
	for _, c := range []struct {
		name            string
		body            string
		declared, limit int64
		want            string
	}{
		{"declared", long, int64(len(long)), 1 << 20, long},
		{"undeclared", long, -1, 1 << 20, long},
		{"undeclared over the limit", long, -1, 100, long[:100]},
		{"declared over the limit", long, int64(len(long)), 100, long[:100]},
		{"empty", "", 0, 100, ""},
		{"short after long", "xyz", -1, 100, "xyz"},
	} {
		got, err := readLimited(strings.NewReader(c.body), c.declared, c.limit)
		if err != nil || string(got) != c.want {
			t.Errorf("%s: %d bytes, %v; want %d bytes", c.name, len(got), err, len(c.want))
		}
	}
}
