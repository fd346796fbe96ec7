package sim

import (
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/flowstudio/mcp/tools/powerautomate"
)

const envsPath = "/flow/providers/Microsoft.ProcessSimple/environments"

func TestAPIVersionRequiredAndRoutingCaseInsensitive(t *testing.T) {
	s, srv := newTestSim(t, Options{})
	tok := flowToken(s, alice, time.Hour)
	if status, body := rawCall(t, "GET", srv.URL+envsPath, tok, ""); status != 400 || !strings.Contains(body, "MissingApiVersionParameter") {
		t.Errorf("no api-version: %d %s", status, body)
	}
	if status, body := rawCall(t, "GET", srv.URL+envsPath+"?api-version=2020-01-01", tok, ""); status != 400 || !strings.Contains(body, "InvalidApiVersionParameter") {
		t.Errorf("bad api-version: %d %s", status, body)
	}
	lower := srv.URL + strings.ToLower(envsPath) + "/" + strings.ToUpper(ContosoProductionEnv) + "/FLOWS?api-version=2016-11-01"
	if status, body := rawCall(t, "GET", lower, tok, ""); status != 200 || !strings.Contains(body, `"value"`) {
		t.Errorf("case-insensitive route: %d %s", status, body)
	}
	status, body := rawCall(t, "GET", srv.URL+envsPath+"/~default?api-version=2016-11-01", tok, "")
	if status != 200 || !strings.Contains(body, `"name":"`+ContosoDefaultEnv+`"`) {
		t.Errorf("~default: %d %s", status, body)
	}
}

func TestTokenChecks(t *testing.T) {
	s, srv := newTestSim(t, Options{})
	other := New(Options{KeySeed: []byte("another key")})
	tid, oid := s.UserFor(alice)
	url := srv.URL + envsPath + "?api-version=2016-11-01"
	cases := []struct {
		name, token, wantCode string
		wantStatus            int
	}{
		{"valid", flowToken(s, alice, time.Hour), "", 200},
		{"audience without slash", s.MintAccessToken(tid, oid, "https://service.flow.microsoft.com", nil, time.Hour), "", 200},
		{"missing", "", "AuthenticationFailed", 401},
		{"expired", flowToken(s, alice, -time.Minute), "ExpiredAuthenticationToken", 401},
		{"wrong audience", s.MintAccessToken(tid, oid, "https://service.powerapps.com/", nil, time.Hour), "InvalidAuthenticationTokenAudience", 401},
		{"foreign signature", other.MintAccessToken(tid, oid, "https://service.flow.microsoft.com/", nil, time.Hour), "InvalidAuthenticationToken", 401},
		{"no identity", s.MintAccessToken("", "", "https://service.flow.microsoft.com/", nil, time.Hour), "InvalidAuthenticationToken", 401},
		{"garbage", "not.a.jwt", "InvalidAuthenticationToken", 401},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, body := rawCall(t, "GET", url, tc.token, "")
			if status != tc.wantStatus || !strings.Contains(body, tc.wantCode) {
				t.Errorf("got %d %s, want %d %s", status, body, tc.wantStatus, tc.wantCode)
			}
		})
	}
	if status, body := rawCall(t, "GET", url, flowToken(s, alice, -time.Minute), ""); !strings.Contains(body, "is earlier than current UTC time") {
		t.Errorf("expired message: %d %s", status, body)
	}
}

func TestAudiencePerHost(t *testing.T) {
	s, srv := newTestSim(t, Options{})
	tid, oid := s.UserFor(alice)
	conns := srv.URL + "/powerapps/providers/Microsoft.PowerApps/connections?api-version=2016-11-01&$filter=environment%20eq%20%27" + ContosoDefaultEnv + "%27"
	if status, _ := rawCall(t, "GET", conns, s.MintAccessToken(tid, oid, "https://service.flow.microsoft.com/", nil, time.Hour), ""); status != 401 {
		t.Errorf("Flow token on Power Apps: %d, want 401", status)
	}
	if status, _ := rawCall(t, "GET", conns, s.MintAccessToken(tid, oid, "https://service.powerapps.com/", nil, time.Hour), ""); status != 200 {
		t.Errorf("Power Apps token on Power Apps: %d, want 200", status)
	}
	custom, csrv := newTestSim(t, Options{Audiences: map[string][]string{"flow": {"https://management.azure.com/"}}})
	ctid, coid := custom.UserFor(alice)
	if status, _ := rawCall(t, "GET", csrv.URL+envsPath+"?api-version=2016-11-01", custom.MintAccessToken(ctid, coid, "https://management.azure.com/", nil, time.Hour), ""); status != 200 {
		t.Errorf("configured audience refused: %d", status)
	}
}

func TestScopesEnforcedWhenSwitchedOn(t *testing.T) {
	s, srv := newTestSim(t, Options{EnforceScopes: true})
	tid, oid := s.UserFor(alice)
	readOnly := s.MintAccessToken(tid, oid, "https://service.flow.microsoft.com/", []string{"Flows.Read.All"}, time.Hour)
	flowURL := srv.URL + envsPath + "/" + ContosoDefaultEnv + "/flows/" + FlowInvoiceApproval
	if status, _ := rawCall(t, "GET", flowURL+"?api-version=2016-11-01", readOnly, ""); status != 200 {
		t.Errorf("read with Flows.Read.All: %d", status)
	}
	if status, body := rawCall(t, "POST", flowURL+"/stop?api-version=2016-11-01", readOnly, "{}"); status != 403 || !strings.Contains(body, "Flows.Manage.All") {
		t.Errorf("write with Flows.Read.All: %d %s", status, body)
	}
	none := s.MintAccessToken(tid, oid, "https://service.flow.microsoft.com/", nil, time.Hour)
	if status, _ := rawCall(t, "GET", flowURL+"?api-version=2016-11-01", none, ""); status != 403 {
		t.Errorf("read without scopes: %d, want 403", status)
	}
}

func TestJWKSVerifiesMintedTokens(t *testing.T) {
	s := New(Options{KeySeed: testSeed})
	var set struct {
		Keys []struct{ Kid, N, E string }
	}
	if err := json.Unmarshal(s.JWKS(), &set); err != nil || len(set.Keys) != 1 || set.Keys[0].Kid != s.KeyID() {
		t.Fatalf("JWKS = %s (%v)", s.JWKS(), err)
	}
	n, _ := base64.RawURLEncoding.DecodeString(set.Keys[0].N)
	e, _ := base64.RawURLEncoding.DecodeString(set.Keys[0].E)
	pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
	tok := s.MintAccessToken(ContosoTenantID, "oid-1", "aud", []string{"Flows.Read.All"}, time.Hour)
	parsed, err := jwt.Parse(tok, func(t *jwt.Token) (any, error) {
		if t.Header["kid"] != s.KeyID() {
			return nil, jwt.ErrTokenUnverifiable
		}
		return pub, nil
	}, jwt.WithValidMethods([]string{"RS256"}), jwt.WithIssuer(Issuer(ContosoTenantID)))
	if err != nil || !parsed.Valid {
		t.Fatalf("token does not verify with the JWKS key: %v", err)
	}
	if s.PublicKey().N.Cmp(pub.N) != 0 {
		t.Error("PublicKey differs from the JWKS key")
	}
	if again := New(Options{KeySeed: testSeed}); again.KeyID() != s.KeyID() {
		t.Error("same seed, different key")
	}
	if random := New(Options{}); random.KeyID() == s.KeyID() || random.PublicKey().N.BitLen() != 2048 {
		t.Error("an unseeded sim must get its own 2048-bit key")
	}
}

func TestUserFor(t *testing.T) {
	s := New(Options{KeySeed: testSeed})
	tid1, oid1 := s.UserFor("Alice@Contoso.com")
	tid2, oid2 := s.UserFor(" alice@contoso.com")
	tid3, oid3 := s.UserFor("fiona@fabrikam.com")
	tid4, _ := s.UserFor("someone@example.org")
	if tid1 != ContosoTenantID || tid1 != tid2 || oid1 != oid2 || tid3 != FabrikamTenantID || oid3 == oid1 || tid4 != ContosoTenantID {
		t.Errorf("UserFor: %s %s / %s %s / %s %s / %s", tid1, oid1, tid2, oid2, tid3, oid3, tid4)
	}
}

func TestRequestsAreRecorded(t *testing.T) {
	s, _, c := newAliceSim(t)
	s.ResetRequests()
	if _, err := c.ListEnvironments(ctx); err != nil {
		t.Fatal(err)
	}
	reqs := s.Requests()
	if len(reqs) != 1 {
		t.Fatalf("requests = %+v", reqs)
	}
	r := reqs[0]
	if r.Host != "flow" || r.Method != "GET" || r.Path != "/providers/Microsoft.ProcessSimple/environments" ||
		!r.HadAuthorization || r.Audience != powerautomate.AudienceFlow || !strings.Contains(r.Query, "api-version=2016-11-01") {
		t.Errorf("recorded %+v", r)
	}
	s.ResetRequests()
	if len(s.Requests()) != 0 {
		t.Error("ResetRequests kept requests")
	}
}

func TestFaultInjection(t *testing.T) {
	s, srv, c := newAliceSim(t)

	t.Run("429 with Retry-After then success", func(t *testing.T) {
		s.InjectFault(FaultMatch{Method: "GET", PathContains: "/environments", Count: 1}, Fault{Status: 429, RetryAfter: time.Second})
		ctx, stats := powerautomate.WithCallStats(ctx)
		start := time.Now()
		if _, err := c.ListEnvironments(ctx); err != nil {
			t.Fatal(err)
		}
		if time.Since(start) < time.Second || stats.Calls() != 2 {
			t.Errorf("elapsed %v, calls %d", time.Since(start), stats.Calls())
		}
	})
	t.Run("503 until retries run out", func(t *testing.T) {
		defer s.ClearFaults()
		s.InjectFault(FaultMatch{PathContains: "/environments"}, Fault{Status: 503})
		_, err := c.ListEnvironments(ctx)
		wantAPIError(t, err, 503, "ServiceUnavailable")
	})
	t.Run("dropped connection on GET is retried", func(t *testing.T) {
		s.InjectFault(FaultMatch{PathContains: "/environments", Count: 1}, Fault{DropConnection: true})
		if _, err := c.ListEnvironments(ctx); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("string body", func(t *testing.T) {
		s.InjectFault(FaultMatch{PathContains: "/environments", Count: 1}, Fault{Status: 400, Body: `{"error":"plain text failure"}`})
		apiErr := wantAPIError(t, func() error { _, err := c.ListEnvironments(ctx); return err }(), 400, "")
		if apiErr.Message != "plain text failure" {
			t.Errorf("message = %q", apiErr.Message)
		}
	})
	t.Run("delay hits the client timeout", func(t *testing.T) {
		cfg := s.Config(srv.URL)
		cfg.Timeout = 100 * time.Millisecond
		slow, _ := powerautomate.New(cfg, s.TokenSourceFor(alice))
		s.InjectFault(FaultMatch{PathContains: "/environments", Count: 1}, Fault{Delay: time.Second})
		if _, err := slow.ListEnvironments(ctx); !errors.Is(err, powerautomate.ErrTimeout) {
			t.Fatalf("err = %v, want timeout", err)
		}
	})
	if status, _ := rawCall(t, "GET", srv.URL+"/nowhere/x", "", ""); status != http.StatusNotFound {
		t.Errorf("unknown host: %d", status)
	}
}

// TestMountedUnderPrefix mounts the handler the way the main server does
// and checks that links carry the configured external base.
func TestMountedUnderPrefix(t *testing.T) {
	s := New(Options{KeySeed: testSeed, PathPrefix: "/sim/", BaseURL: "https://flowstudio.example/sim"})
	mux := http.NewServeMux()
	mux.Handle("/sim/", s.Handler())
	srv := httptest.NewServer(mux)
	defer srv.Close()
	c := newTestClient(t, s, srv.URL+"/sim", alice)
	p, err := c.ListRuns(ctx, ref(ContosoDefaultEnv, FlowHourlyInventorySync), powerautomate.ListRunsOptions{Top: 2})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(p.NextLink, "https://flowstudio.example/sim/flow/providers/Microsoft.ProcessSimple/") {
		t.Errorf("nextLink = %q", p.NextLink)
	}
	// A nextLink on another host than the configured one is not followed.
	if _, err := c.ListRuns(ctx, ref(ContosoDefaultEnv, FlowHourlyInventorySync), powerautomate.ListRunsOptions{NextLink: p.NextLink}); !errors.Is(err, powerautomate.ErrLinkNotAllowed) {
		t.Errorf("err = %v, want ErrLinkNotAllowed", err)
	}
	if status, _ := rawCall(t, "GET", srv.URL+"/flow/providers/Microsoft.ProcessSimple/environments?api-version=2016-11-01", flowToken(s, alice, time.Hour), ""); status != 404 {
		t.Errorf("outside the prefix: %d, want 404", status)
	}
}

func TestBAPEnvironments(t *testing.T) {
	s, srv := newTestSim(t, Options{})
	tid, oid := s.UserFor(fiona)
	tok := s.MintAccessToken(tid, oid, "https://service.powerapps.com/", nil, time.Hour)
	status, body := rawCall(t, "GET", srv.URL+"/bap/providers/Microsoft.BusinessAppPlatform/environments?api-version=2020-10-01", tok, "")
	if status != 200 || !strings.Contains(body, FabrikamProductionEnv) || strings.Contains(body, ContosoTenantID) ||
		!strings.Contains(body, "Microsoft.BusinessAppPlatform/environments") {
		t.Errorf("BAP list: %d %s", status, body)
	}
}

// A token is verified once and then remembered; the clock and the audience are still
// checked on every use.
func TestRememberedTokenStillChecked(t *testing.T) {
	var now atomic.Int64
	now.Store(time.Now().UnixNano())
	s, srv := newTestSim(t, Options{Now: func() time.Time { return time.Unix(0, now.Load()) }})
	url := srv.URL + envsPath + "?api-version=2016-11-01"
	tok := flowToken(s, alice, time.Hour)
	for range 2 {
		if status, body := rawCall(t, "GET", url, tok, ""); status != 200 {
			t.Fatalf("valid token: %d %s", status, body)
		}
	}
	conns := srv.URL + "/powerapps/providers/Microsoft.PowerApps/connections?api-version=2016-11-01&$filter=environment%20eq%20%27" + ContosoDefaultEnv + "%27"
	if status, body := rawCall(t, "GET", conns, tok, ""); status != 401 || !strings.Contains(body, "InvalidAuthenticationTokenAudience") {
		t.Fatalf("remembered Flow token on Power Apps: %d %s", status, body)
	}
	now.Add(int64(time.Hour + time.Second))
	if status, body := rawCall(t, "GET", url, tok, ""); status != 401 || !strings.Contains(body, "ExpiredAuthenticationToken") ||
		!strings.Contains(body, "is earlier than current UTC time") {
		t.Fatalf("remembered token past its expiry: %d %s", status, body)
	}
}
