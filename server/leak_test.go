package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowstudio/mcp/cosmos"
	"github.com/flowstudio/mcp/server/logtest"
	"github.com/flowstudio/mcp/tools"
	"github.com/flowstudio/mcp/tools/metering"
	"github.com/flowstudio/mcp/tools/powerautomate"
	"github.com/flowstudio/mcp/tools/powerautomate/sim"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// The no-leak test runs every tool in tools.All() through the whole server with
// canary strings planted in the arguments and in upstream answers, and checks
// that no log line (operational or metering) carries a canary, the API key, an
// upstream bearer token or the user's plain email. The metering line may carry
// the environment the call names, so environment names are a separate marker
// that may appear there and nowhere else.

const (
	canaryPrefix = "CANARY"
	// canaryGUID fits GUID-shaped arguments (flow, run names).
	canaryGUID = "cafe0000-c0de-4000-8000-00000000ca7e"
	// envMarker is a real environment of the simulated user, so that calls reach
	// upstream; as an argument it may appear in the metering line only.
	envMarker = sim.ContosoDefaultEnv
	leakEmail = "leaky.user@contoso.com"
)

// recordingTokens hands out the simulator's tokens and remembers them.
type recordingTokens struct {
	inner  powerautomate.TokenSource
	mu     sync.Mutex
	issued []string
}

func (r *recordingTokens) Token(ctx context.Context, audience string) (string, error) {
	tok, err := r.inner.Token(ctx, audience)
	r.mu.Lock()
	r.issued = append(r.issued, tok)
	r.mu.Unlock()
	return tok, err
}

// jsonSchema is the part of a JSON Schema the argument generator reads.
type jsonSchema struct {
	Type       any                    `json:"type"`
	Properties map[string]*jsonSchema `json:"properties"`
	Required   []string               `json:"required"`
	Items      *jsonSchema            `json:"items"`
	Enum       []any                  `json:"enum"`
	Pattern    string                 `json:"pattern"`
	MinLength  *int                   `json:"minLength"`
	MaxLength  *int                   `json:"maxLength"`
	Minimum    *float64               `json:"minimum"`
	MinItems   *int                   `json:"minItems"`
	// AdditionalProperties is false, true or a schema.
	AdditionalProperties any `json:"additionalProperties"`
}

func (s *jsonSchema) is(typ string) bool {
	switch t := s.Type.(type) {
	case string:
		return t == typ
	case []any:
		return slices.Contains(t, any(typ))
	}
	return false
}

// argGen builds arguments from an input schema with a canary in every string a
// schema lets it put one in.
type argGen struct {
	n        int
	required bool // only required properties
}

func (g *argGen) value(name string, s *jsonSchema) any {
	if s == nil {
		return nil
	}
	if len(s.Enum) > 0 {
		return s.Enum[0]
	}
	switch {
	case s.is("object") || (s.Type == nil && s.Properties != nil):
		obj := map[string]any{}
		if len(s.Properties) == 0 {
			if s.AdditionalProperties == false {
				return obj
			}
			g.n++
			obj["canaryKey"] = fmt.Sprintf("%s-free-%d", canaryPrefix, g.n)
			return obj
		}
		for k, ps := range s.Properties {
			if g.required && !slices.Contains(s.Required, k) {
				continue
			}
			obj[k] = g.value(k, ps)
		}
		return obj
	case s.is("array"):
		n := 1
		if s.MinItems != nil && *s.MinItems > 1 {
			n = *s.MinItems
		}
		var arr []any
		for range n {
			arr = append(arr, g.value(name, s.Items))
		}
		return arr
	case s.is("integer") || s.is("number"):
		if s.Minimum != nil {
			return int(*s.Minimum)
		}
		return 1
	case s.is("boolean"):
		return true
	}
	// A string (or an untyped value): the first candidate the schema accepts.
	g.n++
	word := fmt.Sprintf("%s%dx", canaryPrefix, g.n)
	candidates := []string{word, canaryGUID, "Default-" + canaryGUID, "shared_" + strings.ToLower(word), strings.ToLower(word),
		"https://example.com/" + word, word + "@contoso.com"}
	if strings.Contains(strings.ToLower(name), "environment") {
		candidates = []string{envMarker}
	}
	var re *regexp.Regexp
	if s.Pattern != "" {
		re, _ = regexp.Compile(s.Pattern)
	}
	for _, c := range candidates {
		if (re == nil || re.MatchString(c)) && (s.MaxLength == nil || len(c) <= *s.MaxLength) &&
			(s.MinLength == nil || len(c) >= *s.MinLength) {
			return c
		}
	}
	return word
}

type leakHarness struct {
	h        http.Handler
	key      string
	ops, mtr *logtest.Buffer
	tokens   *recordingTokens
	sim      *sim.Sim
	user     *cosmos.User
	catalog  *tools.Catalog
}

func newLeakHarness(t *testing.T) *leakHarness {
	t.Helper()
	store, keys := newTestStore(t), testKeys()
	simulator := sim.New(sim.Options{})
	upstream := httptest.NewServer(simulator.Handler())
	t.Cleanup(upstream.Close)
	tokens := &recordingTokens{inner: simulator.TokenSourceFor(leakEmail)}
	cfg := simulator.Config(upstream.URL)
	cfg.MaxRetries, cfg.Timeout = -1, 5*time.Second
	pa, err := powerautomate.New(cfg, tokens)
	if err != nil {
		t.Fatal(err)
	}
	tid, oid := simulator.UserFor(leakEmail)
	user, err := store.CreateUser(t.Context(), &cosmos.User{TenantID: tid, ObjectID: oid, EmailHash: keys.HashEmail(leakEmail),
		Tier: cosmos.TierTeam, KeyGeneration: 1, KeyIssuedAt: time.Now().Unix(), Consent: cosmos.ConsentGranted})
	if err != nil {
		t.Fatal(err)
	}
	ops, mtr := &logtest.Buffer{}, &logtest.Buffer{}
	enc := zap.NewProductionEncoderConfig()
	log := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(enc), ops, zap.DebugLevel))
	settings, _ := LoadSettings(func(string) string { return "" })
	settings.PublicURL = "http://127.0.0.1:8080"
	settings.StripeWebhookSecret = testStripeSecret
	env := &tools.Env{PA: pa, DashboardURL: settings.PublicURL + "/dashboard", Logger: log, Reports: store}
	meter := metering.New(metering.Options{Store: store, Quotas: settings.Quotas, DashboardURL: env.DashboardURL,
		Log: metering.NewLogger(mtr), Ops: log})
	catalog, err := tools.NewCatalog(env, meter, 0, tools.All())
	if err != nil {
		t.Fatal(err)
	}
	srv := New(Deps{Settings: settings, Logger: log, Keys: keys, Users: store, Catalog: catalog, Billing: store})
	key, _ := keys.Issue(user.ID, 1, time.Unix(user.KeyIssuedAt, 0), tools.ScopeFull)
	return &leakHarness{h: srv.Handler(), key: key, ops: ops, mtr: mtr, tokens: tokens, sim: simulator, user: user, catalog: catalog}
}

func (h *leakHarness) post(t *testing.T, body string) string {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/mcp", strings.NewReader(body))
	req.Host = "127.0.0.1:8080"
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("X-Api-Key", h.key)
	rec := httptest.NewRecorder()
	h.h.ServeHTTP(rec, req)
	return rec.Body.String()
}

func (h *leakHarness) callTool(t *testing.T, name string, args any) string {
	t.Helper()
	b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 7, "method": "tools/call",
		"params": map[string]any{"name": name, "arguments": args}})
	return h.post(t, string(b))
}

// upstream answers that carry canaries.
var upstreamFaults = []struct {
	name  string
	fault sim.Fault
}{
	{"normal", sim.Fault{}},
	{"403 with canary text", sim.Fault{Status: 403, Body: `{"error":{"code":"CANARYUPCODE","message":"CANARY-UPSTREAM-MESSAGE user bob@contoso.com"}}`}},
	{"500 with canary text", sim.Fault{Status: 500, Body: `{"error":{"code":"InternalServerError","message":"CANARY-UPSTREAM-500"}}`}},
	{"400 string error", sim.Fault{Status: 400, Body: `{"error":"CANARY-UPSTREAM-STRING"}`}},
	{"200 with canary rows", sim.Fault{Status: 200, Body: `{"value":[{"name":"CANARY-UP-NAME","id":"/x/CANARY-UP-ID","properties":{"displayName":"CANARY-UP-DISPLAY","state":"Started","definition":{"actions":{"CANARY-UP-ACTION":{}}}}}],"nextLink":"https://evil.example/CANARY-UP-LINK"}`}},
	{"200 with broken JSON", sim.Fault{Status: 200, Body: `{"value": CANARY-UP-BROKEN`}},
	{"dropped connection", sim.Fault{DropConnection: true}},
}

func TestNoSecretsInLogs(t *testing.T) {
	h := newLeakHarness(t)
	all := tools.All()
	if len(all) == 0 {
		t.Fatal("no tools")
	}
	calls := 0
	for _, tool := range all {
		var schema jsonSchema
		if err := json.Unmarshal(tool.Input, &schema); err != nil {
			t.Fatal(err)
		}
		for _, uf := range upstreamFaults {
			if uf.fault.Status != 0 || uf.fault.DropConnection {
				h.sim.InjectFault(sim.FaultMatch{}, uf.fault)
			}
			for _, required := range []bool{true, false} {
				args := (&argGen{required: required}).value("", &schema)
				h.callTool(t, tool.Name, args)
				calls++
			}
			h.sim.ClearFaults()
		}
		// Arguments of the wrong type, and unknown ones.
		h.callTool(t, tool.Name, map[string]any{"CANARYbogusKey": "CANARY-bogus-value", "environmentName": 42})
		calls++
	}
	// Protocol-level oddities carrying canaries.
	for _, body := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"CANARY/method","params":{}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"CANARY_tool","arguments":{}}}`,
		`{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"debug-flow","arguments":{"context":"CANARY-prompt"}}}`,
		`{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"CANARY-prompt-name"}}`,
		`{"jsonrpc":"1.0","id":"CANARY-id","method":"ping"}`,
		`{not json CANARY`,
	} {
		h.post(t, body)
	}
	// A Stripe event with canaries in its payload.
	p := eventJSON("evt_leak", "customer.subscription.updated", time.Now().Unix(),
		sub{id: "sub_leak", status: "active", user: "tenant.nobody", lookupKey: "team"}.object())
	req := httptest.NewRequest(http.MethodPost, "/webhooks/stripe", bytes.NewReader(p))
	req.Header.Set("Stripe-Signature", sign(p, testStripeSecret, time.Now()))
	h.h.ServeHTTP(httptest.NewRecorder(), req)

	secrets := []string{canaryPrefix, "cafe0000-c0de", h.key, leakEmail, "leaky.user", "bob@contoso.com", testStripeSecret}
	h.tokens.mu.Lock()
	if len(h.tokens.issued) == 0 {
		t.Error("no upstream token was issued: the upstream path was not exercised")
	}
	for _, tok := range h.tokens.issued {
		secrets = append(secrets, tok, tok[len(tok)-20:])
	}
	h.tokens.mu.Unlock()

	opsLines, meterLines := h.ops.Lines(), h.mtr.Lines()
	if len(meterLines) != calls {
		t.Errorf("%d metering lines for %d tool calls", len(meterLines), calls)
	}
	sawEnv, sawUpstream := false, false
	for _, line := range meterLines {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("metering line is not JSON: %s", line)
		}
		for k := range m {
			if !slices.Contains(metering.Fields, k) {
				t.Errorf("metering line has key %q: %s", k, line)
			}
		}
		if env, ok := m["environment"]; ok {
			if env != envMarker {
				t.Errorf("metering environment %v", env)
			}
			sawEnv = true
			delete(m, "environment")
		}
		if _, ok := m["upstream_status"]; ok {
			sawUpstream = true
		}
		rest, _ := json.Marshal(m)
		checkNoSecret(t, "metering", string(rest), append(secrets, envMarker))
	}
	if !sawEnv || !sawUpstream {
		t.Errorf("environment seen %v, upstream_status seen %v: the test did not reach those paths", sawEnv, sawUpstream)
	}
	for _, line := range opsLines {
		checkNoSecret(t, "operational", line, append(secrets, envMarker))
	}
	t.Logf("%d tools, %d tool calls, %d metering lines, %d operational lines, %d upstream tokens checked",
		len(all), calls, len(meterLines), len(opsLines), len(h.tokens.issued))
}

func checkNoSecret(t *testing.T, kind, line string, secrets []string) {
	t.Helper()
	for _, s := range secrets {
		if s != "" && strings.Contains(line, s) {
			t.Errorf("%s log line carries %q: %s", kind, shorten(s), line)
		}
	}
}

func shorten(s string) string {
	if len(s) > 24 {
		return s[:24] + "…"
	}
	return s
}
