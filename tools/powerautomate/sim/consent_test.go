package sim

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/flowstudio/mcp/tools/powerautomate"
)

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
