package powerautomate

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestIsDataverseHost(t *testing.T) {
	for host, want := range map[string]bool{
		"contoso.crm.dynamics.com": true, "contoso.crm4.dynamics.com": true, "contoso.api.crm4.dynamics.com": true,
		"contoso.crm9.dynamics.com": true, "org-1.crm11.dynamics.com": true, "contoso.crm.microsoftdynamics.us": true,
		"contoso.api.crm.appsplatform.us": true, "contoso.crm.dynamics.cn": true, "globaldisco.crm.dynamics.com": true,
		"crm.dynamics.com": false, ".crm.dynamics.com": false, "contoso.crmx.dynamics.com": false, "contoso.crm4x.dynamics.com": false,
		"contoso.crm.dynamics.com.evil.example": false, "evil.example": false, "a.b.crm.dynamics.com": false,
		"-x.crm.dynamics.com": false, "contoso.crm9.microsoftdynamics.us": false, "con_toso.crm.dynamics.com": false,
		strings.Repeat("a", 64) + ".crm.dynamics.com": false, "contoso.dynamics.com": false,
	} {
		if got := IsDataverseHost(host); got != want {
			t.Errorf("IsDataverseHost(%q) = %v", host, got)
		}
	}
}

func TestValidateSolutionIdentifiers(t *testing.T) {
	for _, ok := range []string{"ContosoInvoicing", "msdyn_FlowCore", "a", strings.Repeat("a", 65)} {
		if err := ValidateSolutionUniqueName(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "a'b", "a b", "a-b", "a/b", "a.b", "ü", strings.Repeat("a", 66), "x' or 1 eq 1 or 'y"} {
		var ie *InvalidIDError
		if err := ValidateSolutionUniqueName(bad); !errors.As(err, &ie) || ie.Field != "solutionUniqueName" {
			t.Errorf("%q: %v", bad, err)
		}
	}
	if ValidateSolutionID("8f6c1c8e-2a8e-4f43-9b4a-3c1f2d0e9a11") != nil || ValidateSolutionID("8f6c1c8e") == nil ||
		ValidateSolutionID("8f6c1c8e-2a8e-4f43-9b4a-3c1f2d0e9a1)") == nil {
		t.Error("ValidateSolutionID")
	}
}

// TestDataverseOrgFromUpstreamIsChecked: the organisation URLs come from BAP, so a
// URL off the Dataverse hosts (or plain http, a port, a path, a user) is refused
// before any token is minted for it or any request sent to it.
func TestDataverseOrgFromUpstreamIsChecked(t *testing.T) {
	var body string
	mux := http.NewServeMux()
	mux.HandleFunc("/bap/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("api-version") != apiVersionBAP || r.Header.Get("Authorization") != "Bearer tok:"+AudiencePowerApps {
			w.WriteHeader(400)
			return
		}
		io.WriteString(w, body)
	})
	up := newUpstream(t, mux)
	c, err := New(testConfig(up.URL), fakeTokens{})
	if err != nil {
		t.Fatal(err)
	}
	linked := func(instance, api string) string {
		return `{"name":"x","properties":{"linkedEnvironmentMetadata":{"instanceUrl":"` + instance + `","instanceApiUrl":"` + api + `"}}}`
	}
	body = linked("https://contoso.crm4.dynamics.com/", "https://contoso.api.crm4.dynamics.com")
	org, err := c.GetDataverseOrg(t.Context(), testEnv)
	if err != nil || org.APIURL != "https://contoso.api.crm4.dynamics.com" || org.Audience != "https://contoso.crm4.dynamics.com" {
		t.Fatalf("%+v %v", org, err)
	}
	for _, bad := range []string{
		linked("https://contoso.crm4.dynamics.com/", "https://evil.example"),
		linked("https://evil.example/", "https://contoso.api.crm4.dynamics.com"),
		linked("https://contoso.crm4.dynamics.com/", "http://contoso.api.crm4.dynamics.com"),
		linked("https://contoso.crm4.dynamics.com/", "https://contoso.api.crm4.dynamics.com:444"),
		linked("https://contoso.crm4.dynamics.com/", "https://contoso.api.crm4.dynamics.com/x"),
		linked("https://contoso.crm4.dynamics.com/", "https://u@contoso.api.crm4.dynamics.com"),
		linked("https://contoso.crm4.dynamics.com/", up.URL+"/dataverse/org1"), // no simulator configured
	} {
		body = bad
		if _, err := c.GetDataverseOrg(t.Context(), testEnv); !errors.Is(err, ErrLinkNotAllowed) {
			t.Errorf("%s: %v", bad, err)
		}
	}
	body = `{"name":"x","properties":{"displayName":"no database"}}`
	if _, err := c.GetDataverseOrg(t.Context(), testEnv); !errors.Is(err, ErrNoDataverse) {
		t.Errorf("no linkedEnvironmentMetadata: %v", err)
	}
	hits, _ := up.seen()
	if _, err := c.GetDataverseOrg(t.Context(), "../x"); err == nil {
		t.Error("hostile environment accepted")
	}
	if n, _ := up.seen(); n != hits {
		t.Error("a hostile environment reached upstream")
	}
	// A request for another org than the one checked is refused without I/O.
	if _, err := c.dataverseCall(t.Context(), "x", "GET", org, "https://evil.example/api/data/v9.2/solutions", nil); !errors.Is(err, ErrLinkNotAllowed) {
		t.Errorf("dataverseCall off the org: %v", err)
	}
}
