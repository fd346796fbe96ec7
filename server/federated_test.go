package server

import (
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/flowstudio/mcp/server/identity"
	"github.com/flowstudio/mcp/tools/powerautomate/entrasim"
	"github.com/flowstudio/mcp/tools/powerautomate/sim"
)

// federatedApp is registered at the stand-in with no secret at all: only a
// federated credential trusting the simulated managed identity.
const federatedApp = "flowstudio-federated"

// TestSignInAndToolsWithAFederatedCredentialOnly is the deployment without a client
// secret, end to end: the app registration comes from identity.NewApp with an empty
// secret and the managed identity azidentity finds as in a Container App
// (IDENTITY_ENDPOINT, IDENTITY_HEADER, AZURE_CLIENT_ID), here served by the stand-in.
// A person signs in (the code exchange) and calls a tool (the refresh-token
// redemption); both token requests carry the managed identity's client_assertion and
// no client_secret.
func TestSignInAndToolsWithAFederatedCredentialOnly(t *testing.T) {
	var mu sync.Mutex
	var forms []map[string][]string // what each token request sent, as Entra saw it
	record := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasSuffix(r.URL.Path, "/oauth2/v2.0/token") && r.ParseForm() == nil {
				mu.Lock()
				forms = append(forms, r.PostForm)
				mu.Unlock()
			}
			next.ServeHTTP(w, r)
		})
	}
	h, tap, simulator := newSimWebHarnessAs(t, func(a string) identity.App {
		t.Setenv("IDENTITY_ENDPOINT", a+entrasim.ManagedIdentityPath)
		t.Setenv("IDENTITY_HEADER", entrasim.IdentityHeader)
		app, err := identity.NewApp(a, "organizations", federatedApp, "", func() (azcore.TokenCredential, error) {
			return azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{
				ID: azidentity.ClientID(entrasim.ManagedIdentityClientID)})
		})
		if err != nil || app.ClientSecret != "" || app.Assertion == nil {
			t.Fatalf("NewApp without a secret: %+v %v", app, err)
		}
		return app
	}, record)
	simulator.Entra().RegisterClient(entrasim.Client{ID: federatedApp, LoopbackRedirects: true,
		Federated: []entrasim.FederatedCredential{entrasim.DevFederatedCredential}})

	dash, _ := simSignIn(t, h, h.browser(t), "/login", "alice@contoso.com")
	if dash.url.Path != "/dashboard" || dash.status != 200 {
		t.Fatalf("sign-in ended at %s (%d):\n%s", dash.url, dash.status, dash.body)
	}
	key := webMatch(t, keyField, dash.body)
	if r := callTool(t, h, key, "list_live_environments", map[string]any{}); r.status != 200 || r.isError || !strings.Contains(r.text, sim.ContosoDefaultEnv) {
		t.Fatalf("tools/call: %d isError=%v %s", r.status, r.isError, r.text)
	}

	mu.Lock()
	defer mu.Unlock()
	var grants []string
	for _, f := range forms {
		grants = append(grants, f["grant_type"][0])
		if f["client_id"][0] != federatedApp || len(f["client_secret"]) != 0 ||
			f["client_assertion_type"][0] != identity.JWTBearer || len(f["client_assertion"]) != 1 {
			t.Errorf("%s request authenticated with %v", f["grant_type"], slices.Sorted(func(yield func(string) bool) {
				for k := range f {
					if !yield(k) {
						return
					}
				}
			}))
		}
	}
	if !slices.Contains(grants, "authorization_code") || !slices.Contains(grants, "refresh_token") {
		t.Fatalf("token requests %v, want the sign-in's code exchange and a redemption", grants)
	}
	assertion := forms[0]["client_assertion"][0]
	h.assertNoSecrets(t, append(tap.secrets(), key, assertion))
}
