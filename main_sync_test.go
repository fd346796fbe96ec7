package main

import (
	"bytes"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/flowstudio/mcp/cosmos"
	"github.com/flowstudio/mcp/server"
	"github.com/flowstudio/mcp/tools/powerautomate/sim"
	"github.com/flowstudio/mcp/tools/teamcache"
)

// runSync runs `flowstudio sync` on the server's data directory, reaching the
// simulated tenant inside the running server.
func (p *process) runSync(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"sync", "--data-dir", p.dataDir, "--server-url", strings.TrimSuffix(p.url, "/mcp")}, args...)...)
	cmd.Env = os.Environ()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// callTool runs tools/call over MCP and returns isError and the structured content.
func (p *process) callTool(t *testing.T, key, tool string, args map[string]any) (bool, string, json.RawMessage) {
	t.Helper()
	params, _ := json.Marshal(map[string]any{"name": tool, "arguments": args})
	status, body, err := p.call(key, `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":`+string(params)+`}`)
	if err != nil || status != 200 {
		t.Fatalf("%s: %d %v %s", tool, status, err, body)
	}
	var resp struct {
		Result struct {
			IsError           bool `json:"isError"`
			Content           []struct{ Text string }
			StructuredContent json.RawMessage `json:"structuredContent"`
		} `json:"result"`
	}
	if err := json.Unmarshal([]byte(body), &resp); err != nil || len(resp.Result.Content) == 0 {
		t.Fatalf("%s: %v %s", tool, err, body)
	}
	return resp.Result.IsError, resp.Result.Content[0].Text, resp.Result.StructuredContent
}

func TestSyncFillsTheTeamCacheBesideARunningServer(t *testing.T) {
	p := startServer(t)
	team := p.devKey(t, "alice@contoso.com", "--tier", "team")
	pro := p.devKey(t, "bob@contoso.com", "--tier", "pro")

	// Before any sync the cache is empty and says why.
	isErr, text, _ := p.callTool(t, team, "list_store_flows", map[string]any{})
	if isErr || !strings.Contains(text, "not been synced") {
		t.Fatalf("before sync: %v %s", isErr, text)
	}

	out, err := p.runSync(t)
	if err != nil {
		t.Fatalf("sync: %v\n%s", err, out)
	}
	for _, want := range []string{`"msg":"user synced"`, `"users_synced":1`, `"users_skipped":1`, `"users_failed":0`} {
		if !strings.Contains(out, want) {
			t.Errorf("sync output lacks %s:\n%s", want, out)
		}
	}
	for _, secret := range []string{team, pro, "0.AS.", "Bearer", "alice@contoso.com", "refresh_token"} {
		if strings.Contains(out, secret) {
			t.Fatalf("sync output contains %q:\n%s", secret, out)
		}
	}

	// The server still redeems the user's refresh token after sync used (and
	// rotated) it from another process.
	p.wantToolsWork(t, team)

	isErr, text, raw := p.callTool(t, team, "list_store_flows", map[string]any{"search": "invoice approval"})
	if isErr {
		t.Fatalf("list_store_flows: %s", text)
	}
	var flows struct {
		Flows []struct{ ID, DisplayName, State string }
		Cache struct{ SyncedAt, Window string }
	}
	json.Unmarshal(raw, &flows)
	invoiceID := teamcache.Key(sim.ContosoDefaultEnv, sim.FlowInvoiceApproval)
	if len(flows.Flows) == 0 || flows.Flows[0].ID != invoiceID || flows.Cache.SyncedAt == "" || flows.Cache.Window != "7d" {
		t.Fatalf("list_store_flows after sync: %s", raw)
	}
	isErr, text, _ = p.callTool(t, team, "get_store_flow_summary", map[string]any{"id": invoiceID})
	if isErr || !strings.Contains(text, `"lastFailure"`) || !strings.Contains(text, `"failureRate"`) {
		t.Fatalf("summary: %s", text)
	}

	// Governance set over MCP survives the next sync.
	isErr, text, _ = p.callTool(t, team, "update_store_flow", map[string]any{"id": invoiceID, "monitor": true, "tags": []string{"finance"}})
	if isErr {
		t.Fatalf("update_store_flow: %s", text)
	}
	if out, err := p.runSync(t, "--window", "2d"); err != nil {
		t.Fatalf("second sync: %v\n%s", err, out)
	}
	isErr, text, _ = p.callTool(t, team, "get_store_flow", map[string]any{"id": invoiceID})
	if isErr || !strings.Contains(text, `"monitor":true`) || !strings.Contains(text, `"finance"`) || !strings.Contains(text, `"window":"2d"`) {
		t.Fatalf("after the second sync: %s", text)
	}

	// The pro key gets the plan error.
	isErr, text, _ = p.callTool(t, pro, "list_store_flows", map[string]any{})
	if !isErr || !strings.Contains(text, "needs the team plan") {
		t.Fatalf("pro key: %v %s", isErr, text)
	}
}

func TestSyncCommandErrors(t *testing.T) {
	dir := t.TempDir()
	// A free port: nothing listens there.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	nobody := "http://" + ln.Addr().String()
	ln.Close()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--server-url", nobody}, "no server answers at " + nobody},
		{[]string{"--server-url", nobody, "--window", "90d"}, "want between 1h and 30d"},
		{[]string{"--server-url", nobody, "--window", "soon"}, "--window"},
		{[]string{"--server-url", nobody, "--user-id", "../x"}, "--user-id"},
		{[]string{"--server-url", "ftp://x"}, "--server-url"},
	} {
		cmd := exec.Command(binary, append([]string{"sync", "--data-dir", dir}, c.args...)...)
		cmd.Env = os.Environ()
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), c.want) {
			t.Errorf("sync %v: %v\n%s", c.args, err, out)
		}
	}
	out, err := exec.Command(binary, "sync", "--help").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "-server-url") || !strings.Contains(string(out), "FLOWSTUDIO_PUBLIC_URL") {
		t.Errorf("sync --help: %v\n%s", err, out)
	}
}

// A user whose refresh token no longer works fails; alone, that makes sync exit
// non-zero, and the failure is recorded for the store tools to explain.
func TestSyncExitsNonZeroWhenEveryUserFails(t *testing.T) {
	p := startServer(t)
	key := p.devKey(t, "erin@contoso.com", "--tier", "team")
	// Sealed under a key version the data directory does not have: the token
	// source cannot open it, so the user must reconnect.
	ctx := t.Context()
	env, err := openOperatorEnv(ctx, mustSettings(t, p.dataDir), os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	users, err := env.store.FindUsersByEmailHash(ctx, env.keys.HashEmail("erin@contoso.com"))
	if err != nil || len(users) != 1 {
		t.Fatalf("%v %d", err, len(users))
	}
	if _, err := env.store.UpdateUser(ctx, users[0].ID, func(u *cosmos.User) error { u.SealKeyVersion = "999"; return nil }); err != nil {
		t.Fatal(err)
	}
	env.store.Close()

	out, err := p.runSync(t)
	if err == nil || !strings.Contains(out, "no user synced: 1 failed") || !strings.Contains(out, `"error_kind":"reconnect"`) {
		t.Fatalf("sync: %v\n%s", err, out)
	}
	isErr, text, _ := p.callTool(t, key, "list_store_environments", map[string]any{})
	if isErr || !strings.Contains(text, "reconnect at") {
		t.Fatalf("after a failed sync: %v %s", isErr, text)
	}
}

func mustSettings(t *testing.T, dataDir string) server.Settings {
	t.Helper()
	s, err := server.LoadSettings(func(k string) string {
		if k == "FLOWSTUDIO_DATA_DIR" {
			return dataDir
		}
		return os.Getenv(k)
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}
