package main

import (
	"bytes"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/flowstudio/mcp/server"
	"github.com/flowstudio/mcp/tools/powerautomate/entrasim"
	"github.com/flowstudio/mcp/tools/powerautomate/sim"
)

// flowstudio runs the binary with args against the server's data directory.
func (p *process) flowstudio(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(binary, append(args, "--data-dir", p.dataDir)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

const listEnvironments = `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_live_environments","arguments":{}}}`

func (p *process) wantToolsWork(t *testing.T, key string) {
	t.Helper()
	status, body, err := p.call(key, listEnvironments)
	if err != nil || status != 200 || !strings.Contains(body, `"isError":false`) || !strings.Contains(body, "Default-") {
		t.Fatalf("tools/call: %d %v %s\n%s", status, err, body, p.logs())
	}
}

func TestEmbeddedEntraDefaultsMatchTheSimulator(t *testing.T) {
	if server.EmbeddedEntraClientID != entrasim.DevClientID || server.EmbeddedEntraClientSecret != entrasim.DevClientSecret ||
		server.EmbeddedEntraPath != "/sim"+entrasim.Path {
		t.Fatal("server's embedded Entra defaults and the simulator's dev client differ")
	}
}

// dev-key makes a consented user with a sealed refresh token; tool calls redeem it
// at the simulator's Entra stand-in; `user show` and `user revoke` work beside the
// running server, and a revoked key gets 401.
func TestUserShowAndRevokeBesideARunningServer(t *testing.T) {
	p := startServer(t)
	key := p.devKey(t, "alice@contoso.com", "--tier", "pro")
	p.wantToolsWork(t, key)
	p.wantToolsWork(t, key) // again: cached access token, rotated refresh token saved

	out, err := p.flowstudio(t, "user", "show", "--email", "alice@contoso.com")
	if err != nil {
		t.Fatalf("user show: %v\n%s", err, out)
	}
	for _, want := range []string{"tier            pro", "consent         granted", "key generation  1", "refresh token   sealed (key version 1)", "subscription    none"} {
		if !strings.Contains(out, want) {
			t.Errorf("user show lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "alice") || strings.Contains(out, "0.AS.") {
		t.Fatalf("user show printed an email or a token:\n%s", out)
	}

	out, err = p.flowstudio(t, "user", "revoke", "--email", "alice@contoso.com")
	if err != nil || !strings.Contains(out, "consent revoked, key generation now 2") {
		t.Fatalf("user revoke: %v\n%s", err, out)
	}
	status, body, err := p.call(key, listEnvironments)
	if err != nil || status != 401 {
		t.Fatalf("after revoke: %d %v %s", status, err, body)
	}
	out, _ = p.flowstudio(t, "user", "show", "--email", "alice@contoso.com")
	if !strings.Contains(out, "consent         revoked") || !strings.Contains(out, "refresh token   none") {
		t.Fatalf("after revoke:\n%s", out)
	}

	// dev-key consents again: a new key (new generation) that works.
	again := p.devKey(t, "alice@contoso.com", "--tier", "pro")
	if again == key {
		t.Fatal("the revoked key came back")
	}
	p.wantToolsWork(t, again)

	if out, err := p.flowstudio(t, "user", "show", "--email", "nobody@contoso.com"); err == nil || !strings.Contains(out, "no user with that email") {
		t.Fatalf("unknown user: %v %s", err, out)
	}
	if out, err := p.flowstudio(t, "user", "show"); err == nil || !strings.Contains(out, "--email") {
		t.Fatalf("no selector: %v %s", err, out)
	}
	for _, s := range []string{key, again, "0.AS."} {
		if strings.Contains(p.logs(), s) {
			t.Fatal("a key or refresh token appeared in the server log")
		}
	}
}

// rotate-key adds a key version and re-seals every stored refresh token while the
// server runs; the server then opens tokens under the new version.
func TestRotateKeyBesideARunningServer(t *testing.T) {
	p := startServer(t)
	alice := p.devKey(t, "alice@contoso.com")
	gary := p.devKey(t, "gary@fabrikam.com")
	p.wantToolsWork(t, alice)

	out, err := p.flowstudio(t, "rotate-key")
	if err != nil || !strings.Contains(out, "new key version 2") || !strings.Contains(out, "re-sealed 2 refresh tokens") {
		t.Fatalf("rotate-key: %v\n%s", err, out)
	}
	for _, email := range []string{"alice@contoso.com", "gary@fabrikam.com"} {
		out, _ := p.flowstudio(t, "user", "show", "--email", email)
		if !strings.Contains(out, "sealed (key version 2)") {
			t.Fatalf("%s not re-sealed:\n%s", email, out)
		}
	}
	p.wantToolsWork(t, gary)
	p.wantToolsWork(t, alice)
	if out, err := p.flowstudio(t, "rotate-key", "--reseal-only"); err != nil || !strings.Contains(out, "re-sealed 0") {
		t.Fatalf("reseal-only: %v\n%s", err, out)
	}
}

func TestIdentityCommandsHaveHelp(t *testing.T) {
	for _, args := range [][]string{{"user", "show", "--help"}, {"user", "revoke", "--help"}, {"rotate-key", "--help"}} {
		out, err := exec.Command(binary, args...).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "-data-dir") {
			t.Errorf("%v: %v %s", args, err, out)
		}
	}
	if out, err := exec.Command(binary, "user", "--help").CombinedOutput(); err != nil || !strings.Contains(string(out), "revoke") {
		t.Errorf("user --help: %v %s", err, out)
	}
}

// The whole chain in the real binary: /login sends the browser to the simulator's
// Entra stand-in, whose pages sign in and consent; /callback stores the sealed
// refresh token; the dashboard's key then calls a tool, which redeems it.
func TestSignInThroughTheEntraStandIn(t *testing.T) {
	p := startServer(t)
	base := strings.TrimSuffix(p.url, "/mcp")
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar}
	get := func(u string) (*http.Response, string) {
		t.Helper()
		resp, err := browser.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	resp, page := get(base + "/login")
	authorize := resp.Request.URL
	if !strings.HasPrefix(authorize.String(), base+"/sim/entra/organizations/oauth2/v2.0/authorize?") || !strings.Contains(page, "gary@fabrikam.com") {
		t.Fatalf("login landed on %s: %s", authorize, page)
	}
	post := func(form url.Values) (*http.Response, string) {
		t.Helper()
		resp, err := browser.PostForm(authorize.String(), form)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	if _, page := post(url.Values{"login_email": {"gary@fabrikam.com"}}); !strings.Contains(page, `id="accept"`) {
		t.Fatalf("no consent page: %s", page)
	}
	resp, page = post(url.Values{"login_email": {"gary@fabrikam.com"}, "consent": {"accept"}})
	if resp.Request.URL.Path != "/dashboard" {
		t.Fatalf("after consent: %s %d %s", resp.Request.URL, resp.StatusCode, page)
	}
	key := regexp.MustCompile(`eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+`).FindString(page)
	if key == "" {
		t.Fatalf("no key on the dashboard: %s", page)
	}
	status, body, err := p.call(key, listEnvironments)
	if err != nil || status != 200 || !strings.Contains(body, "Fabrikam (default)") {
		t.Fatalf("tools/call with the dashboard's key: %d %v %s\n%s", status, err, body, p.logs())
	}
	out, _ := p.flowstudio(t, "user", "show", "--email", "gary@fabrikam.com")
	if !strings.Contains(out, "consent         granted") || !strings.Contains(out, "sealed (key version 1)") {
		t.Fatalf("user show after sign-in:\n%s", out)
	}
}

// TestDevKeyGrantsConnectorAccess: a dev-key user starts with the default consent,
// and --grant connectors gives what the dashboard's grant button gives, through the
// same token source and the simulator's consent checks.
func TestDevKeyGrantsConnectorAccess(t *testing.T) {
	p := startServer(t)
	call := func(key string) string {
		_, body, err := p.call(key, `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"test_live_connection","arguments":{"environmentName":"`+
			sim.ContosoDefaultEnv+`","connectorName":"shared_contosotasks","connectionName":"`+sim.ContosoTasksConnection+`"}}}`)
		if err != nil {
			t.Fatal(err)
		}
		return body
	}
	plain := p.devKey(t, "carol@contoso.com")
	if body := call(plain); !strings.Contains(body, `"isError":true`) || !strings.Contains(body, "grant connector access") {
		t.Fatalf("without the grant: %s", body)
	}
	granted := p.devKey(t, "carol@contoso.com", "--grant", "connectors")
	if granted != plain {
		t.Error("a grant must not change the key")
	}
	if body := call(granted); !strings.Contains(body, `"isError":false`) || !strings.Contains(body, `"ok":true`) {
		t.Fatalf("with the grant: %s", body)
	}
	cmd := exec.Command(binary, "dev-key", "--email", "carol@contoso.com", "--grant", "mailbox", "--data-dir", p.dataDir)
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "unknown grant") {
		t.Fatalf("an unknown grant must be refused: %v %s", err, out)
	}
}

// TestDevKeyGrantsDataverse: add_live_flow_to_solution needs the "dataverse" grant;
// --grant dataverse gives what the dashboard's button gives, and the flow lands in
// the solution through the same token source and the simulator's consent checks.
func TestDevKeyGrantsDataverse(t *testing.T) {
	p := startServer(t)
	call := func(key string) string {
		_, body, err := p.call(key, `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"add_live_flow_to_solution","arguments":{"environmentName":"`+
			sim.ContosoDefaultEnv+`","flowName":"`+sim.FlowInvoiceApproval+`","solutionUniqueName":"`+sim.SolutionUnmanaged+`"}}}`)
		if err != nil {
			t.Fatal(err)
		}
		return body
	}
	plain := p.devKey(t, "dave@contoso.com")
	if body := call(plain); !strings.Contains(body, `"isError":true`) || !strings.Contains(body, "grant Dataverse access") {
		t.Fatalf("without the grant: %s", body)
	}
	granted := p.devKey(t, "dave@contoso.com", "--grant", "dataverse")
	if body := call(granted); !strings.Contains(body, `"isError":false`) || !strings.Contains(body, `solutionComponentId`) {
		t.Fatalf("with the grant: %s\n%s", body, p.logs())
	}
}
