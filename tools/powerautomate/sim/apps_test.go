package sim

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/flowstudio/mcp/tools/powerautomate"
)

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
