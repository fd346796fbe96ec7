package alerts

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/flowstudio/mcp/cosmos"
	"github.com/flowstudio/mcp/tools/alerts/notify"
	"github.com/flowstudio/mcp/tools/powerautomate"
	"github.com/flowstudio/mcp/tools/powerautomate/sim"
	"github.com/flowstudio/mcp/tools/teamcache"
	"github.com/flowstudio/mcp/tools/teamsync"
)

// principalTokens mints a simulator token for the principal in ctx, as the real
// token source redeems the user's refresh token.
type principalTokens struct{ sim *sim.Sim }

func (pt principalTokens) Token(ctx context.Context, audience string) (string, error) {
	p := powerautomate.CallerFrom(ctx)
	if p == nil {
		return "", powerautomate.ErrReconnect
	}
	return pt.sim.MintAccessToken(p.TenantID, p.ObjectID, audience, []string{"Flows.Read.All", "Flows.Manage.All", "User"}, time.Hour), nil
}

// hookReceiver is a webhook endpoint that records the calls it gets.
type hookReceiver struct {
	mu    sync.Mutex
	calls [][]byte
	sigOK []bool
}

func (h *hookReceiver) count() int { h.mu.Lock(); defer h.mu.Unlock(); return len(h.calls) }

// mailpit is the API of the Mailpit server .ci/mailpit.sh starts.
type mailpit struct{ api string }

type mailSummary struct {
	ID      string `json:"ID"`
	Subject string `json:"Subject"`
	To      []struct {
		Address string `json:"Address"`
	} `json:"To"`
}

func (m mailpit) search(t *testing.T, to string) []mailSummary {
	t.Helper()
	resp, err := http.Get(m.api + "/api/v1/search?query=" + "to:" + to)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct{ Messages []mailSummary }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out.Messages
}

// message returns a message's raw source and its decoded text part.
func (m mailpit) message(t *testing.T, id string) (raw, text string) {
	t.Helper()
	get := func(path string) []byte {
		resp, err := http.Get(m.api + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return b
	}
	var msg struct{ Text string }
	if err := json.Unmarshal(get("/api/v1/message/"+id), &msg); err != nil {
		t.Fatal(err)
	}
	return string(get("/api/v1/message/" + id + "/raw")), msg.Text
}

// TestMonitoredFlowAlertsOncePerIncident is the whole journey against the simulator,
// the embedded store, Mailpit and a webhook receiver: a monitored flow that fails
// gives exactly one email and one webhook call, however often it is evaluated and
// however many runs fail meanwhile; recovery then a new failure gives one more; the
// email carries no run payload.
func TestMonitoredFlowAlertsOncePerIncident(t *testing.T) {
	smtpAddr, api := os.Getenv("MAILPIT_SMTP"), os.Getenv("MAILPIT_API")
	if smtpAddr == "" || api == "" {
		t.Skip(`MAILPIT_SMTP and MAILPIT_API are not set; start Mailpit with: eval "$(bash .ci/mailpit.sh)"`)
	}
	host, port, _ := strings.Cut(smtpAddr, ":")
	portN, _ := strconv.Atoi(port)
	mailer, err := notify.NewMailer(notify.SMTPConfig{Host: host, Port: portN, From: "alerts@flowstudio.test"})
	if err != nil {
		t.Fatal(err)
	}
	mp := mailpit{api: api}
	ctx := t.Context()

	s := sim.New(sim.Options{KeySeed: []byte("alerts tests")})
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	cfg := s.Config(srv.URL)
	cfg.HTTPClient = &http.Client{Transport: srv.Client().Transport}
	pa, err := powerautomate.New(cfg, principalTokens{sim: s})
	if err != nil {
		t.Fatal(err)
	}
	store, err := cosmos.OpenEmbedded(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })

	secret := []byte("webhook key of the test user")
	hooks := &hookReceiver{}
	hookSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		ts, _ := strconv.ParseInt(r.Header.Get(notify.HeaderTimestamp), 10, 64)
		hooks.mu.Lock()
		hooks.calls = append(hooks.calls, b)
		hooks.sigOK = append(hooks.sigOK, r.Header.Get(notify.HeaderSignature) == notify.Sign(secret, ts, b))
		hooks.mu.Unlock()
	}))
	t.Cleanup(hookSrv.Close)

	core, logs := observer.New(zap.DebugLevel)
	runner, err := New(Options{Store: store, Mail: mailer, Webhook: notify.NewPoster(true),
		WebhookSecret: func(string) []byte { return secret }, Logger: zap.New(core)})
	if err != nil {
		t.Fatal(err)
	}

	tid, oid := s.UserFor("alice@contoso.com")
	u, err := store.CreateUser(ctx, &cosmos.User{TenantID: tid, ObjectID: oid, EmailHash: "0a1b2c", Tier: cosmos.TierTeam,
		Consent: cosmos.ConsentGranted, KeyGeneration: 1, KeyIssuedAt: time.Now().Unix()})
	if err != nil {
		t.Fatal(err)
	}
	syncer, err := teamsync.New(teamsync.Options{Store: store, Upstream: pa, AfterUser: func(ctx context.Context, id string) {
		if _, err := runner.EvaluateUser(ctx, id, FromCache(store, id)); err != nil {
			t.Errorf("evaluation after sync: %v", err)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	if out := syncer.SyncUser(ctx, u.ID); out != teamsync.OutcomeSynced {
		t.Fatalf("first sync: %s", out)
	}

	// Monitor the invoice flow (its newest runs fail), with the webhook set.
	to := "ops-" + strings.ToLower(rand.Text()[:8]) + "@contoso.test"
	env, flow := sim.ContosoDefaultEnv, sim.FlowInvoiceApproval
	gov, _ := json.Marshal(teamcache.Governance{EnvironmentName: env, FlowName: flow, Monitor: true,
		NotifyRules: []teamcache.NotifyRule{{When: teamcache.WhenAnyFailure, Email: to}}})
	if _, err := store.CreateCacheItem(ctx, &cosmos.CacheItem{UserID: u.ID, Kind: teamcache.KindGovernance, Key: teamcache.Key(env, flow), Body: gov}); err != nil {
		t.Fatal(err)
	}
	settings, _ := json.Marshal(teamcache.AlertSettings{WebhookURL: hookSrv.URL + "/hook"})
	if _, err := store.CreateCacheItem(ctx, &cosmos.CacheItem{UserID: u.ID, Kind: teamcache.KindAlertSettings, Key: teamcache.AlertSettingsKey, Body: settings}); err != nil {
		t.Fatal(err)
	}

	asUser := powerautomate.WithCaller(ctx, &powerautomate.Caller{UserID: u.ID, TenantID: tid, ObjectID: oid})
	ref := powerautomate.FlowRef{Environment: env, Flow: flow}
	const canary = "CANARY-PAYLOAD-5b1e"
	trigger := func() string {
		t.Helper()
		res, err := pa.RunManualTrigger(asUser, ref, "manual", json.RawMessage(`{"invoiceId":"`+canary+`","total":99}`))
		if err != nil {
			t.Fatal(err)
		}
		for range 200 { // the simulator's live runs take milliseconds
			r, err := pa.GetRun(asUser, ref, res.RunName, false)
			if err != nil {
				t.Fatal(err)
			}
			if finished(r.Status) {
				return r.Status
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatal("run did not finish")
		return ""
	}
	check := func() {
		t.Helper()
		if _, err := runner.Check(ctx, store, pa, u.ID); err != nil {
			t.Fatal(err)
		}
	}
	want := func(stage string, mails, calls int) {
		t.Helper()
		if got := len(mp.search(t, to)); got != mails {
			t.Fatalf("%s: %d emails to %s, want %d", stage, got, to, mails)
		}
		if got := hooks.count(); got != calls {
			t.Fatalf("%s: %d webhook calls, want %d", stage, got, calls)
		}
	}

	// The failing flow: one alert after the next sync, and nothing more however
	// often it is checked and however many runs fail meanwhile.
	if out := syncer.SyncUser(ctx, u.ID); out != teamsync.OutcomeSynced {
		t.Fatalf("sync: %s", out)
	}
	want("after the sync", 1, 1)
	check()
	for range 3 {
		if st := trigger(); st != "Failed" {
			t.Fatalf("invoice run %s, want Failed", st)
		}
	}
	check()
	syncer.SyncUser(ctx, u.ID)
	want("failing on", 1, 1)

	// Recovery: fix the definition, a run succeeds; the incident closes quietly.
	f, err := pa.GetFlow(asUser, ref)
	if err != nil {
		t.Fatal(err)
	}
	broken := f.Definition
	fixed := json.RawMessage(strings.Replace(string(broken), "@div(variables('Total'), 0)", "@variables('Total')", 1))
	if _, err := pa.UpdateFlow(asUser, ref, powerautomate.FlowUpdate{Definition: fixed}); err != nil {
		t.Fatal(err)
	}
	if st := trigger(); st != "Succeeded" {
		t.Fatalf("fixed run %s", st)
	}
	check()
	want("recovered", 1, 1)
	check()

	// A new failure: one more alert.
	if _, err := pa.UpdateFlow(asUser, ref, powerautomate.FlowUpdate{Definition: broken}); err != nil {
		t.Fatal(err)
	}
	trigger()
	trigger()
	check()
	check()
	want("failed again", 2, 2)

	// What arrived: the flow, the environment, what happened, a link; no payload.
	for _, m := range mp.search(t, to) {
		raw, text := mp.message(t, m.ID)
		if !strings.Contains(m.Subject, "Invoice approval failed") {
			t.Fatalf("subject %q", m.Subject)
		}
		for _, want := range []string{"Invoice approval", env, "failed since", "first error code ActionFailed", "/flows/" + flow + "/runs/"} {
			if !strings.Contains(text, want) {
				t.Fatalf("email lacks %q:\n%s", want, text)
			}
		}
		for _, leak := range []string{canary, "div(", "1250.5", "Total", "invoiceId"} {
			if strings.Contains(raw, leak) || strings.Contains(text, leak) {
				t.Fatalf("email carries run content %q:\n%s", leak, text)
			}
		}
	}
	hooks.mu.Lock()
	defer hooks.mu.Unlock()
	for i, b := range hooks.calls {
		if !hooks.sigOK[i] {
			t.Fatalf("webhook call %d: bad signature", i)
		}
		if strings.Contains(string(b), canary) || !strings.Contains(string(b), `"text"`) {
			t.Fatalf("webhook body %s", b)
		}
	}
	// The log names flows, rules and outcomes: never the addresses, the URL or run data.
	raisedLines := 0
	for _, e := range logs.All() {
		line, _ := json.Marshal(e.ContextMap())
		text := e.Message + string(line)
		if e.Message == "alert raised" {
			raisedLines++
		}
		for _, secretish := range []string{to, hookSrv.URL, canary, string(secret)} {
			if strings.Contains(text, secretish) {
				t.Fatalf("log line carries %q: %s", secretish, text)
			}
		}
	}
	if raisedLines != 2 {
		t.Fatalf("%d 'alert raised' log lines, want 2", raisedLines)
	}
	recent, err := Recent(ctx, store, u.ID, 10)
	if err != nil || len(recent) != 2 || recent[1].RecoveredAt == "" || recent[0].RecoveredAt != "" ||
		recent[0].Email != DeliverySent || recent[0].Webhook != DeliverySent {
		t.Fatalf("recent alerts %+v (%v)", recent, err)
	}
}
