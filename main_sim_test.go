package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flowstudio/mcp/server"
	"github.com/flowstudio/mcp/tools/powerautomate/entrasim"
	"github.com/flowstudio/mcp/tools/powerautomate/sim"
)

// startSim runs `flowstudio sim` on a free port with dataDir; p.url is the URL it
// logged (the FLOWSTUDIO_SIM_URL of the others).
func startSim(t *testing.T, dataDir string, env ...string) *process {
	t.Helper()
	return startProcess(t, []string{"sim", "--addr", "127.0.0.1:0", "--data-dir", dataDir}, dataDir, env, "sim_url")
}

// flowstudioWith runs the binary with extra environment; stdout and stderr apart.
func flowstudioWith(t *testing.T, env []string, args ...string) (string, string, error) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

func httpGet(t *testing.T, u string) (int, string) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// The simulated tenant in its own process: dev-key mints against it, sync reaches it
// with no server running, serve calls it over the network (and serves no /sim
// itself), and the sign-in pages are its Entra stand-in. Every process shares one
// data directory, hence one generated TOKEN_SECRET, as a newcomer's would.
func TestStandaloneSimulatorBehindServeDevKeyAndSync(t *testing.T) {
	dir := t.TempDir()
	s := startSim(t, dir)
	if !strings.HasPrefix(s.url, "http://127.0.0.1:") {
		t.Fatalf("sim_url %q", s.url)
	}
	if status, body := httpGet(t, s.url+"/healthz"); status != 200 || !strings.Contains(body, `"simulator":true`) {
		t.Fatalf("/healthz: %d %s", status, body)
	}
	if status, _ := httpGet(t, s.url+"/"); status != 200 { // the bench's readiness probe
		t.Fatalf("/: %d", status)
	}
	if status, _ := httpGet(t, s.url+"/entra/organizations/v2.0/.well-known/openid-configuration"); status != 200 {
		t.Fatalf("the Entra stand-in is not at the root: %d", status)
	}
	simEnv := []string{"FLOWSTUDIO_SIM_URL=" + s.url}

	// dev-key with no server anywhere: minted here, redeemed there.
	team, stderr, err := flowstudioWith(t, simEnv, "dev-key", "--email", "carol@contoso.com", "--tier", "team", "--data-dir", dir)
	if err != nil || stderr != "" {
		t.Fatalf("dev-key: %v %s", err, stderr)
	}
	team = strings.TrimSpace(team)

	// sync reaches the simulator itself: still no server.
	out, stderr, err := flowstudioWith(t, simEnv, "sync", "--data-dir", dir)
	if err != nil {
		t.Fatalf("sync: %v\n%s%s", err, out, stderr)
	}
	for _, want := range []string{`"msg":"user synced"`, `"users_synced":1`, `"users_failed":0`} {
		if !strings.Contains(out, want) {
			t.Errorf("sync output lacks %s:\n%s", want, out)
		}
	}

	// serve on the same data directory, the simulator elsewhere.
	p := startServer(t, simEnv[0], "FLOWSTUDIO_DATA_DIR="+dir) // the later setting wins
	p.dataDir = dir
	if logs := p.logs(); !strings.Contains(logs, `"simulated_tenant":"`+s.url+`"`) {
		t.Errorf("start-up log does not name the simulator at %s:\n%s", s.url, logs)
	}
	base := strings.TrimSuffix(p.url, "/mcp")
	for _, path := range []string{"/sim/", "/sim/entra/organizations/discovery/v2.0/keys", "/sim/flow/providers/Microsoft.ProcessSimple/environments?api-version=2016-11-01"} {
		if status, body := httpGet(t, base+path); status != http.StatusNotFound {
			t.Errorf("serve with FLOWSTUDIO_SIM_URL answers %s itself: %d %.200s", path, status, body)
		}
	}

	// Live tools: through the network, to the simulator's hosts and content links.
	isErr, text, raw := p.callTool(t, team, "list_live_environments", map[string]any{})
	if isErr || !strings.Contains(text, sim.ContosoDefaultEnv) {
		t.Fatalf("list_live_environments: %s\n%s", text, p.logs())
	}
	isErr, text, raw = p.callTool(t, team, "list_live_flows", map[string]any{"environmentName": sim.ContosoDefaultEnv, "search": "invoice"})
	var flows struct {
		Flows []struct{ Name, DisplayName string }
	}
	json.Unmarshal(raw, &flows)
	if isErr || len(flows.Flows) == 0 || flows.Flows[0].Name != sim.FlowInvoiceApproval {
		t.Fatalf("list_live_flows: %s", text)
	}
	isErr, text, raw = p.callTool(t, team, "get_live_flow", map[string]any{"environmentName": sim.ContosoDefaultEnv, "flowName": sim.FlowInvoiceApproval})
	var flow struct {
		Name, DisplayName string
		DefinitionBytes   int
		Definition        json.RawMessage
	}
	json.Unmarshal(raw, &flow)
	if isErr || flow.Name != sim.FlowInvoiceApproval || flow.DisplayName != flows.Flows[0].DisplayName || flow.DefinitionBytes == 0 ||
		!strings.Contains(string(flow.Definition), "Process_invoice") {
		t.Fatalf("get_live_flow: %s", text)
	}
	isErr, text, raw = p.callTool(t, team, "get_live_flow_run_error", map[string]any{"environmentName": sim.ContosoDefaultEnv, "flowName": sim.FlowInvoiceApproval})
	var runErr struct{ RunName, RootCause string }
	json.Unmarshal(raw, &runErr)
	if isErr || runErr.RunName == "" || runErr.RootCause == "" {
		t.Fatalf("get_live_flow_run_error: %s", text)
	}
	// Run inputs are content links on the simulator's host: the client must trust it.
	isErr, text, _ = p.callTool(t, team, "get_live_flow_run_action_outputs", map[string]any{"environmentName": sim.ContosoDefaultEnv,
		"flowName": sim.FlowInvoiceApproval, "runName": runErr.RunName})
	if isErr || !strings.Contains(text, `"inputs":{`) {
		t.Fatalf("get_live_flow_run_action_outputs: %s", text)
	}

	// The Team cache sync filled before the server started.
	isErr, text, raw = p.callTool(t, team, "list_store_flows", map[string]any{"search": "invoice approval"})
	var stored struct {
		Flows []struct{ ID string }
		Cache struct{ SyncedAt string }
	}
	json.Unmarshal(raw, &stored)
	if isErr || len(stored.Flows) == 0 || stored.Cache.SyncedAt == "" {
		t.Fatalf("list_store_flows after sync: %s", text)
	}
	// sync again beside the running server: both redeem (and rotate) the same refresh token.
	if out, stderr, err := flowstudioWith(t, simEnv, "sync", "--data-dir", dir); err != nil || !strings.Contains(out, `"users_synced":1`) {
		t.Fatalf("second sync: %v\n%s%s", err, out, stderr)
	}
	p.wantToolsWork(t, team)

	// Sign-in: /login → the standalone simulator's Entra pages → /callback → a key.
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar}
	do := func(req func() (*http.Response, error)) (*http.Response, string) {
		t.Helper()
		resp, err := req()
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	resp, page := do(func() (*http.Response, error) { return browser.Get(base + "/login") })
	authorize := resp.Request.URL.String()
	if !strings.HasPrefix(authorize, s.url+"/entra/organizations/oauth2/v2.0/authorize?") {
		t.Fatalf("login landed on %s: %.300s", authorize, page)
	}
	post := func(form url.Values) (*http.Response, string) {
		return do(func() (*http.Response, error) { return browser.PostForm(authorize, form) })
	}
	if _, page := post(url.Values{"login_email": {"gary@fabrikam.com"}}); !strings.Contains(page, `id="accept"`) {
		t.Fatalf("no consent page: %.300s", page)
	}
	resp, page = post(url.Values{"login_email": {"gary@fabrikam.com"}, "consent": {"accept"}})
	if !strings.HasPrefix(resp.Request.URL.String(), base+"/dashboard") {
		t.Fatalf("after consent: %s %d %.300s", resp.Request.URL, resp.StatusCode, page)
	}
	key := regexp.MustCompile(`eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+`).FindString(page)
	if status, body, err := p.call(key, listEnvironments); key == "" || err != nil || status != 200 || !strings.Contains(body, "Fabrikam (default)") {
		t.Fatalf("tools/call with the dashboard's key: %d %v %.300s", status, err, body)
	}

	for _, secret := range []string{team, key, "0.AS.", "refresh_token"} {
		if strings.Contains(s.logs(), secret) || strings.Contains(p.logs(), secret) {
			t.Fatalf("a key or token appeared in a log")
		}
	}
}

// A simulator on another TOKEN_SECRET would refuse every stored refresh token:
// dev-key and sync say so instead of minting keys that fail. A shared TOKEN_SECRET
// (as the bench sets) works across data directories.
func TestStandaloneSimulatorKeysMustMatch(t *testing.T) {
	secret := "sim-test-secret-0123456789abcdef0123456789abcdef"
	s := startSim(t, t.TempDir(), "TOKEN_SECRET="+secret)
	simEnv := "FLOWSTUDIO_SIM_URL=" + s.url

	other := t.TempDir() // its own generated secret
	_, stderr, err := flowstudioWith(t, []string{simEnv}, "dev-key", "--email", "dave@contoso.com", "--data-dir", other)
	if err == nil || !strings.Contains(stderr, "signs with other keys") || !strings.Contains(stderr, "TOKEN_SECRET") {
		t.Fatalf("dev-key on another secret: %v %s", err, stderr)
	}
	out, stderr, err := flowstudioWith(t, []string{simEnv}, "sync", "--data-dir", other)
	if err == nil || !strings.Contains(stderr, "signs with other keys") {
		t.Fatalf("sync on another secret: %v %s%s", err, out, stderr)
	}

	shared := t.TempDir()
	env := []string{simEnv, "TOKEN_SECRET=" + secret}
	key, stderr, err := flowstudioWith(t, env, "dev-key", "--email", "dave@contoso.com", "--tier", "team", "--data-dir", shared)
	if err != nil {
		t.Fatalf("dev-key on the shared secret: %v %s", err, stderr)
	}
	p := startServer(t, append(env, "FLOWSTUDIO_DATA_DIR="+shared)...)
	p.dataDir = shared
	p.wantToolsWork(t, strings.TrimSpace(key))

	// No simulator at the URL: dev-key still mints (and says it could not check);
	// sync, which needs it, fails naming it.
	s.cmd.Process.Kill()
	<-s.exited
	_, stderr, err = flowstudioWith(t, env, "dev-key", "--email", "erin@contoso.com", "--data-dir", shared)
	if err != nil || !strings.Contains(stderr, "no simulated tenant answers at "+s.url) {
		t.Fatalf("dev-key with the simulator down: %v %s", err, stderr)
	}
	out, stderr, err = flowstudioWith(t, env, "sync", "--data-dir", shared)
	if err == nil || !strings.Contains(stderr, "no simulated tenant answers at "+s.url) {
		t.Fatalf("sync with the simulator down: %v %s%s", err, out, stderr)
	}
}

// `sim --help` exits 0 (the bench's test of the command); FLOWSTUDIO_SIM_LATENCY
// slows it; SIGTERM drains a request in flight and exits 0.
func TestSimCommandHelpLatencyAndDrain(t *testing.T) {
	out, err := exec.Command(binary, "sim", "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("sim --help: %v\n%s", err, out)
	}
	for _, want := range []string{"-addr", "-redirect-uri", "-data-dir", "FLOWSTUDIO_SIM_URL=http://", "FLOWSTUDIO_PUBLIC_URL", "TOKEN_SECRET"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("sim --help lacks %q:\n%s", want, out)
		}
	}
	if out, _ := exec.Command(binary, "--help").Output(); !strings.Contains(string(out), "flowstudio sim [--addr HOST:PORT]") {
		t.Errorf("usage lacks sim:\n%s", out)
	}
	for _, c := range []struct {
		args []string
		env  []string
		want string
	}{
		{[]string{"--redirect-uri", "not a url"}, nil, "--redirect-uri"},
		{nil, []string{"FLOWSTUDIO_SIM_LATENCY=slow"}, "FLOWSTUDIO_SIM_LATENCY"},
		{nil, []string{"FLOWSTUDIO_ENV=production", "TOKEN_SECRET=x"}, "production"},
	} {
		_, stderr, err := flowstudioWith(t, c.env, append([]string{"sim", "--addr", "127.0.0.1:0", "--data-dir", t.TempDir()}, c.args...)...)
		if err == nil || !strings.Contains(stderr, c.want) {
			t.Errorf("sim %v %v: %v %s", c.args, c.env, err, stderr)
		}
	}

	s := startSim(t, t.TempDir(), "FLOWSTUDIO_SIM_LATENCY=1500ms", "FLOWSTUDIO_DRAIN_TIMEOUT=10s")
	type result struct {
		status int
		took   time.Duration
		err    error
	}
	done := make(chan result, 1)
	go func() {
		start := time.Now()
		resp, err := http.Get(s.url + "/flow/providers/Microsoft.ProcessSimple/environments?api-version=2016-11-01")
		if err != nil {
			done <- result{err: err}
			return
		}
		resp.Body.Close()
		done <- result{status: resp.StatusCode, took: time.Since(start)}
	}()
	time.Sleep(500 * time.Millisecond) // the request now waits on the injected latency
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil || r.status != http.StatusUnauthorized || r.took < 1400*time.Millisecond {
		t.Fatalf("request in flight at SIGTERM: %d after %v, %v", r.status, r.took, r.err)
	}
	select {
	case err := <-s.exited:
		if err != nil || !strings.Contains(s.logs(), `"msg":"stopped"`) {
			t.Fatalf("exit: %v\n%s", err, s.logs())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the simulator did not exit")
	}
}

func TestSimURLSetting(t *testing.T) {
	load := func(env map[string]string) (server.Settings, error) {
		return server.LoadSettings(func(k string) string { return env[k] })
	}
	s, err := load(map[string]string{"FLOWSTUDIO_SIM_URL": "http://127.0.0.1:8090/"})
	if err != nil {
		t.Fatal(err)
	}
	if !s.Embedded() || s.SimURL != "http://127.0.0.1:8090" || entraAuthority(s) != "http://127.0.0.1:8090"+server.SimEntraPath ||
		server.SimEntraPath != entrasim.Path {
		t.Fatalf("settings %+v, authority %s", s, entraAuthority(s))
	}
	if s, _ := load(nil); entraAuthority(s) != server.EmbeddedEntraPath { // no setting: as before
		t.Fatalf("authority without FLOWSTUDIO_SIM_URL: %s", entraAuthority(s))
	}
	for _, c := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"FLOWSTUDIO_SIM_URL": "127.0.0.1:8090"}, "FLOWSTUDIO_SIM_URL must be an absolute http(s) URL"},
		{map[string]string{"FLOWSTUDIO_SIM_URL": "ftp://127.0.0.1:8090"}, "FLOWSTUDIO_SIM_URL must be an absolute http(s) URL"},
		{map[string]string{"FLOWSTUDIO_SIM_URL": "http://127.0.0.1:8090?x=1"}, "FLOWSTUDIO_SIM_URL must be an absolute http(s) URL"},
		{map[string]string{"FLOWSTUDIO_SIM_URL": "http://127.0.0.1:8090", "FLOWSTUDIO_ENV": "production"}, "FLOWSTUDIO_ENV=production refuses it"},
		{map[string]string{"FLOWSTUDIO_SIM_URL": "http://127.0.0.1:8090", "COSMOS_ENDPOINT": "https://x.documents.azure.com"}, "unset it or COSMOS_ENDPOINT"},
		{map[string]string{"FLOWSTUDIO_SIM_URL": "http://127.0.0.1:8090", "ENTRA_CLIENT_ID": "app", "FLOW_API_URL": "https://api.flow.microsoft.com"},
			"unset it or FLOW_API_URL, ENTRA_CLIENT_ID"},
	} {
		if _, err := load(c.env); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want %q", c.env, err, c.want)
		}
	}
	// The commands refuse it too, before doing anything.
	dir := t.TempDir()
	for _, args := range [][]string{{"serve", "--addr", "127.0.0.1:0"}, {"dev-key", "--email", "a@contoso.com"}, {"sync"}} {
		_, stderr, err := flowstudioWith(t, []string{"FLOWSTUDIO_SIM_URL=not-a-url"}, append(args, "--data-dir", dir)...)
		if err == nil || !strings.Contains(stderr, "FLOWSTUDIO_SIM_URL must be an absolute http(s) URL") {
			t.Errorf("%v: %v %s", args, err, stderr)
		}
	}
}

// entraAuthority is the authority of the embedded app registration (which needs
// no managed identity).
func entraAuthority(s server.Settings) string {
	app, err := s.Entra(nil)
	if err != nil {
		return err.Error()
	}
	return app.Authority
}
