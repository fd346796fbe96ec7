package powerautomate

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"testing"
	"time"
)

// TestListAppsDecodesMetadataOnly: the Power Apps token, the environment filter and
// api-version, the nextLink followed, and the metadata decoded; connectors from the
// connection references (deduplicated, sorted, hostile ids dropped).
func TestListAppsDecodesMetadataOnly(t *testing.T) {
	const path = "/powerapps/providers/Microsoft.PowerApps/apps"
	mux := http.NewServeMux()
	var srv *upstream
	mux.HandleFunc("GET "+path, func(w http.ResponseWriter, r *http.Request) {
		requireAuth(t, r, AudiencePowerApps)
		q := r.URL.Query()
		if q.Get("api-version") != "2016-11-01" || q.Get("$filter") != "environment eq '"+testEnv+"'" {
			t.Errorf("query = %v", q)
		}
		if q.Get("$skiptoken") == "" {
			if q.Get("$top") != "1" {
				t.Errorf("$top = %q", q.Get("$top"))
			}
			writeJSON(w, 200, `{"value":[{"name":"`+testFlow+`","appType":"ClassicCanvasApp","properties":{"displayName":"Expenses",
				"owner":{"id":"0f1e2d3c-0000-4000-8000-000000000001","displayName":"Alice"},"createdTime":"2024-01-02T03:04:05Z",
				"lastModifiedTime":"2024-02-02T03:04:05Z","lastPublishTime":"2024-02-02T03:00:00Z","sharedUsersCount":4,"sharedGroupsCount":1,
				"environment":{"name":"`+testEnv+`"},"appUris":{"documentUri":{"value":"https://blob.example/doc.msapp?sig=x"}},
				"connectionReferences":{"a":{"id":"/providers/microsoft.powerapps/apis/shared_office365"},"b":{"id":"/providers/microsoft.powerapps/apis/shared_teams"},
				"c":{"id":"/providers/microsoft.powerapps/apis/shared_office365"},"d":{"id":"/providers/microsoft.powerapps/apis/shared_a?b"}}}}],
				"nextLink":"`+srv.URL+path+`?api-version=2016-11-01&%24filter=environment+eq+%27`+testEnv+`%27&%24skiptoken=p2"}`)
			return
		}
		writeJSON(w, 200, `{"value":[{"name":"a18e89d1-4c75-41e4-9517-e90aedc079be","properties":{"displayName":"Second"}}]}`)
	})
	srv = newUpstream(t, mux)
	c := newTestClient(t, testConfig(srv.URL))
	p1, err := c.ListApps(context.Background(), testEnv, ListAppsOptions{Top: 1})
	if err != nil {
		t.Fatal(err)
	}
	a := p1.Apps[0]
	if len(p1.Apps) != 1 || p1.NextLink == "" || a.Name != testFlow || a.DisplayName != "Expenses" || a.AppType != "ClassicCanvasApp" ||
		a.OwnerObjectID != "0f1e2d3c-0000-4000-8000-000000000001" || a.OwnerName != "Alice" || a.SharedUsersCount != 4 || a.SharedGroupsCount != 1 ||
		!a.LastPublishTime.Equal(time.Date(2024, 2, 2, 3, 0, 0, 0, time.UTC)) || a.Environment != testEnv ||
		!slices.Equal(a.Connectors, []string{"shared_office365", "shared_teams"}) {
		t.Fatalf("page 1 = %+v", p1)
	}
	p2, err := c.ListApps(context.Background(), testEnv, ListAppsOptions{NextLink: p1.NextLink})
	if err != nil || len(p2.Apps) != 1 || p2.NextLink != "" || p2.Apps[0].DisplayName != "Second" {
		t.Fatalf("page 2 = %+v, %v", p2, err)
	}
}

func TestListAppsRefusesBadInputWithoutRequest(t *testing.T) {
	srv := newUpstream(t, http.NewServeMux())
	c := newTestClient(t, testConfig(srv.URL))
	for _, env := range []string{"../x", "a/b", "", "Default-x", "env' or environment eq 'other"} {
		var invalid *InvalidIDError
		if _, err := c.ListApps(context.Background(), env, ListAppsOptions{}); !errors.As(err, &invalid) {
			t.Errorf("environment %q: err = %v", env, err)
		}
	}
	if _, err := c.ListApps(context.Background(), testEnv, ListAppsOptions{Top: MaxPageSize + 1}); err == nil {
		t.Error("a $top over the maximum was sent")
	}
	if _, err := c.ListApps(context.Background(), testEnv, ListAppsOptions{NextLink: srv.URL + "/powerapps/providers/Microsoft.PowerApps/connections"}); !errors.Is(err, ErrLinkNotAllowed) {
		t.Errorf("a nextLink to another collection: %v", err)
	}
	if n, _ := srv.seen(); n != 0 {
		t.Errorf("server saw %d requests", n)
	}
}
