package powerautomate

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
)

func TestFetchContentIsAnonymousAndCapped(t *testing.T) {
	big := strings.Repeat("x", 5000)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /workflows/wf/runs/r/contents/ActionOutputs", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("sig") != "s" {
			t.Errorf("query lost: %v", r.URL.RawQuery)
		}
		w.Header().Set("Content-Length", "5000")
		w.Write([]byte(big))
	})
	srv := newUpstream(t, mux)
	cfg := testConfig(srv.URL)
	cfg.ContentHosts = []string{hostOf(srv.URL)}
	c := newTestClient(t, cfg)
	link := srv.URL + "/workflows/wf/runs/r/contents/ActionOutputs?api-version=2016-06-01&sig=s"

	got, err := c.FetchContent(context.Background(), link, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Truncated || len(got.Body) != 1000 || got.Size != 5000 {
		t.Errorf("truncated=%v len=%d size=%d", got.Truncated, len(got.Body), got.Size)
	}
	full, err := c.FetchContent(context.Background(), link, 0)
	if err != nil || full.Truncated || len(full.Body) != 5000 {
		t.Fatalf("full read: %v truncated=%v len=%d", err, full.Truncated, len(full.Body))
	}
	if _, auths := srv.seen(); len(auths) != 2 || auths[0] != "" || auths[1] != "" {
		t.Errorf("Authorization headers seen by content host: %q", auths)
	}
}

func TestFetchContentRefusesOffListHosts(t *testing.T) {
	srv := newUpstream(t, http.NewServeMux())
	c := newTestClient(t, testConfig(srv.URL)) // content hosts: content.invalid only
	for _, link := range []string{
		srv.URL + "/workflows/x",
		"https://prod-1.westeurope.logic.azure.com.evil.example/workflows/x",
		"file:///etc/passwd",
		"::bad",
	} {
		if _, err := c.FetchContent(context.Background(), link, 0); !errors.Is(err, ErrLinkNotAllowed) {
			t.Errorf("FetchContent(%q) err = %v, want ErrLinkNotAllowed", link, err)
		}
	}
	if n, _ := srv.seen(); n != 0 {
		t.Errorf("server saw %d requests", n)
	}
}

func TestFetchContentRedirectOffListIsRefused(t *testing.T) {
	other := newUpstream(t, http.NewServeMux())
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, other.URL+"/x", http.StatusFound) })
	srv := newUpstream(t, mux)
	cfg := testConfig(srv.URL)
	cfg.ContentHosts = []string{hostOf(srv.URL)}
	if _, err := newTestClient(t, cfg).FetchContent(context.Background(), srv.URL+"/c", 0); !errors.Is(err, ErrRedirectRefused) {
		t.Fatalf("err = %v, want ErrRedirectRefused", err)
	}
	if n, _ := other.seen(); n != 0 {
		t.Errorf("redirect target saw %d requests", n)
	}
}

func TestRunManualTriggerPostsCallbackWithoutToken(t *testing.T) {
	mux := http.NewServeMux()
	var srv *upstream
	mux.HandleFunc("POST "+flowsPath+"/"+testFlow+"/triggers/manual/listCallbackUrl", func(w http.ResponseWriter, r *http.Request) {
		requireAuth(t, r, AudienceFlow)
		writeJSON(w, 200, `{"response":{"value":"`+srv.URL+`/workflows/wf/triggers/manual/paths/invoke?sig=s","method":"POST"}}`)
	})
	mux.HandleFunc("POST /workflows/wf/triggers/manual/paths/invoke", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			t.Error("callback received an Authorization header")
		}
		var body map[string]string
		if json.NewDecoder(r.Body).Decode(&body) != nil || body["text"] != "hi" {
			t.Errorf("payload = %v", body)
		}
		w.Header().Set("x-ms-workflow-run-id", testRun)
		w.WriteHeader(http.StatusAccepted)
	})
	srv = newUpstream(t, mux)
	cfg := testConfig(srv.URL)
	cfg.ContentHosts = []string{hostOf(srv.URL)}
	res, err := newTestClient(t, cfg).RunManualTrigger(context.Background(), FlowRef{Environment: testEnv, Flow: testFlow}, "manual", json.RawMessage(`{"text":"hi"}`))
	if err != nil {
		t.Fatal(err)
	}
	if res.Via != "callback" || res.Status != 202 || res.RunName != testRun {
		t.Errorf("result = %+v", res)
	}
}

func TestRunManualTriggerFallsBackToRunAPI(t *testing.T) {
	cases := map[string]func(srvURL string, w http.ResponseWriter){
		"no callback URL": func(_ string, w http.ResponseWriter) {
			writeJSON(w, 400, `{"error":{"code":"WorkflowTriggerCallbackUrlNotSupported","message":"x"}}`)
		},
		"callback off the allow-list": func(_ string, w http.ResponseWriter) {
			writeJSON(w, 200, `{"response":{"value":"https://elsewhere.example/invoke?sig=s"}}`)
		},
	}
	for name, callback := range cases {
		t.Run(name, func(t *testing.T) {
			mux := http.NewServeMux()
			var srv *upstream
			mux.HandleFunc("POST "+flowsPath+"/"+testFlow+"/triggers/manual/listCallbackUrl", func(w http.ResponseWriter, r *http.Request) {
				callback(srv.URL, w)
			})
			mux.HandleFunc("POST "+flowsPath+"/"+testFlow+"/triggers/manual/run", func(w http.ResponseWriter, r *http.Request) {
				requireAuth(t, r, AudienceFlow)
				w.Header().Set("Location", srv.URL+flowsPath+"/"+testFlow+"/runs/"+testRun+"?api-version=2016-11-01")
				w.WriteHeader(http.StatusAccepted)
			})
			srv = newUpstream(t, mux)
			res, err := newTestClient(t, testConfig(srv.URL)).RunManualTrigger(context.Background(), FlowRef{Environment: testEnv, Flow: testFlow}, "manual", nil)
			if err != nil {
				t.Fatal(err)
			}
			if res.Via != "run" || res.RunName != testRun {
				t.Errorf("result = %+v", res)
			}
		})
	}
}

func TestRunManualTriggerDoesNotFallBackOnForbidden(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+flowsPath+"/"+testFlow+"/triggers/manual/listCallbackUrl", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 403, `{"error":{"code":"ConnectionAuthorizationFailed","message":"x"}}`)
	})
	srv := newUpstream(t, mux)
	_, err := newTestClient(t, testConfig(srv.URL)).RunManualTrigger(context.Background(), FlowRef{Environment: testEnv, Flow: testFlow}, "manual", nil)
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Code != CodeConnectionAuthorizationFailed {
		t.Fatalf("err = %v", err)
	}
	if n, _ := srv.seen(); n != 1 {
		t.Errorf("server saw %d requests, want 1 (no fallback)", n)
	}
}
