// Package clients connects MCP clients that nobody here wrote, on their defaults, to
// the real server binary: the official Go SDK and mcp-go. Each must see the server's
// name and version, list every tool, and call a read tool and a write tool whose
// structuredContent validates against the tool's own output schema. It is a module of
// its own so that the server's go.mod does not carry the clients.
//
//	FLOWSTUDIO_BIN=path/to/flowstudio go test ./...   (without it the server is built from ../..)
package clients

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/jsonschema-go/jsonschema"
	mcpgo "github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	mcpgotypes "github.com/mark3labs/mcp-go/mcp"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// server is the running binary under test.
var server struct {
	url, key, version string
}

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "flowstudio-clients")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	stop, err := start(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "server did not start:", err)
		return 1
	}
	defer stop()
	return m.Run()
}

// start runs `flowstudio serve` on embedded defaults on a free loopback port, and
// mints a key with `flowstudio dev-key`, exactly as a newcomer does.
func start(dir string) (func(), error) {
	bin := os.Getenv("FLOWSTUDIO_BIN")
	if bin == "" {
		bin = filepath.Join(dir, "flowstudio")
		build := exec.Command("go", "build", "-o", bin, ".")
		build.Dir = filepath.Join("..", "..")
		if out, err := build.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("go build: %v\n%s", err, out)
		}
	}
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		return nil, fmt.Errorf("%s version: %v", bin, err)
	}
	// "flowstudio <version>"
	fields := strings.Fields(string(out))
	if len(fields) != 2 {
		return nil, fmt.Errorf("%s version printed %q", bin, out)
	}
	server.version = fields[1]
	data := filepath.Join(dir, "data")
	cmd := exec.Command(bin, "serve")
	cmd.Env = append(os.Environ(), "FLOWSTUDIO_ADDR=127.0.0.1:0", "FLOWSTUDIO_DATA_DIR="+data, "FLOWSTUDIO_PUBLIC_URL=")
	logs, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout = cmd.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	stop := func() { _ = cmd.Process.Signal(os.Interrupt); _ = cmd.Wait() }
	found := make(chan string, 1)
	go func() {
		re := regexp.MustCompile(`"mcp_url":"([^"]+)"`)
		sc := bufio.NewScanner(logs)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case found <- m[1]:
				default:
				}
			}
			if strings.Contains(sc.Text(), `"level":"error"`) {
				fmt.Fprintln(os.Stderr, "server logged an error:", sc.Text())
			}
		}
	}()
	select {
	case server.url = <-found:
	case <-time.After(60 * time.Second):
		stop()
		return nil, fmt.Errorf("no mcp_url in the log within 60s")
	}
	key, err := exec.Command(bin, "dev-key", "--email", "clients@contoso.com", "--tier", "pro", "--data-dir", data).Output()
	if err != nil {
		stop()
		return nil, fmt.Errorf("dev-key: %v", err)
	}
	server.key = strings.TrimSpace(string(key))
	return stop, nil
}

// withKey adds the API key to every request the Go SDK sends.
type withKey struct{ next http.RoundTripper }

func (k withKey) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("x-api-key", server.key)
	return k.next.RoundTrip(r)
}

// The protocol each client must settle on: its default is 2026-07-28 (no initialize,
// server/discover); pinned, the handshake revision.
var protocols = []struct{ ask, want string }{
	{"", "2026-07-28"},
	{"2025-06-18", "2025-06-18"},
}

func TestGoSDK(t *testing.T) {
	for _, p := range protocols {
		t.Run("protocol "+p.want, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			client := mcp.NewClient(&mcp.Implementation{Name: "flowstudio-ci", Version: "1"}, nil)
			cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: server.url,
				HTTPClient: &http.Client{Transport: withKey{http.DefaultTransport}}},
				&mcp.ClientSessionOptions{ProtocolVersion: p.ask})
			if err != nil {
				t.Fatal(err)
			}
			defer cs.Close()
			init := cs.InitializeResult()
			if init.ProtocolVersion != p.want {
				t.Fatalf("negotiated %s, want %s", init.ProtocolVersion, p.want)
			}
			if init.ServerInfo == nil || init.ServerInfo.Name != "flowstudio-mcp" || init.ServerInfo.Version != server.version {
				t.Fatalf("server identity %+v, want flowstudio-mcp %s", init.ServerInfo, server.version)
			}
			schemas := map[string]*jsonschema.Resolved{}
			for tool, err := range cs.Tools(ctx, nil) {
				if err != nil {
					t.Fatal(err)
				}
				schemas[tool.Name] = compile(t, tool.Name, tool.OutputSchema)
			}
			call := func(name string, args map[string]any) map[string]any {
				res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: args})
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				if res.IsError {
					t.Fatalf("%s: isError: %s", name, text(res.Content[0]))
				}
				return validate(t, name, schemas, res.StructuredContent)
			}
			exercise(t, schemas, call)
		})
	}
}

func TestMCPGo(t *testing.T) {
	for _, p := range protocols {
		t.Run("protocol "+p.want, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			c, err := mcpgo.NewStreamableHttpClient(server.url, transport.WithHTTPHeaders(map[string]string{"x-api-key": server.key}))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if err := c.Start(ctx); err != nil {
				t.Fatal(err)
			}
			init, err := c.Initialize(ctx, mcpgotypes.InitializeRequest{Params: mcpgotypes.InitializeParams{
				ProtocolVersion: p.ask, ClientInfo: mcpgotypes.Implementation{Name: "flowstudio-ci", Version: "1"}}})
			if err != nil {
				t.Fatal(err)
			}
			if c.ProtocolVersion() != p.want {
				t.Fatalf("negotiated %s, want %s", c.ProtocolVersion(), p.want)
			}
			if init.ServerInfo.Name != "flowstudio-mcp" || init.ServerInfo.Version != server.version {
				t.Fatalf("server identity %+v, want flowstudio-mcp %s", init.ServerInfo, server.version)
			}
			list, err := c.ListTools(ctx, mcpgotypes.ListToolsRequest{})
			if err != nil {
				t.Fatal(err)
			}
			schemas := map[string]*jsonschema.Resolved{}
			for _, tool := range list.Tools {
				var schema any = tool.OutputSchema // mcp-go decodes it into its own type
				if len(tool.RawOutputSchema) > 0 {
					schema = tool.RawOutputSchema
				}
				schemas[tool.Name] = compile(t, tool.Name, schema)
			}
			call := func(name string, args map[string]any) map[string]any {
				res, err := c.CallTool(ctx, mcpgotypes.CallToolRequest{Params: mcpgotypes.CallToolParams{Name: name, Arguments: args}})
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				if res.IsError {
					t.Fatalf("%s: isError: %v", name, res.Content)
				}
				return validate(t, name, schemas, res.StructuredContent)
			}
			exercise(t, schemas, call)
		})
	}
}

// exercise lists environments and flows (read tools) and sets a flow to the state it
// is in (a write tool, idempotent, so the simulated tenant is left as it was).
func exercise(t *testing.T, schemas map[string]*jsonschema.Resolved, call func(string, map[string]any) map[string]any) {
	t.Helper()
	for _, want := range []string{"list_live_environments", "list_live_flows", "set_live_flow_state", "tool_search"} {
		if _, ok := schemas[want]; !ok {
			t.Fatalf("tools/list lacks %s (%d tools)", want, len(schemas))
		}
	}
	envs := call("list_live_environments", map[string]any{})["environments"].([]any)
	for _, e := range envs {
		env := e.(map[string]any)["name"].(string)
		flows, _ := call("list_live_flows", map[string]any{"environmentName": env})["flows"].([]any)
		if len(flows) == 0 {
			continue
		}
		flow := flows[0].(map[string]any)
		state, _ := flow["state"].(string)
		if state != "Started" && state != "Stopped" {
			continue
		}
		out := call("set_live_flow_state", map[string]any{"environmentName": env, "flowName": flow["name"], "state": state})
		if out["changed"] != false {
			t.Fatalf("set_live_flow_state to the current state changed something: %v", out)
		}
		return
	}
	t.Fatal("no environment with a started or stopped flow to write to")
}

func compile(t *testing.T, tool string, schema any) *jsonschema.Resolved {
	t.Helper()
	raw, err := json.Marshal(schema)
	if err != nil {
		t.Fatal(err)
	}
	if string(raw) == "null" {
		return nil
	}
	var s jsonschema.Schema
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatalf("%s output schema: %v", tool, err)
	}
	r, err := s.Resolve(nil)
	if err != nil {
		t.Fatalf("%s output schema does not compile: %v", tool, err)
	}
	return r
}

// validate checks structuredContent against the tool's output schema as the client
// received it, and returns it as an object.
func validate(t *testing.T, tool string, schemas map[string]*jsonschema.Resolved, structured any) map[string]any {
	t.Helper()
	raw, err := json.Marshal(structured)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	obj, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("%s: structuredContent is not an object: %s", tool, raw)
	}
	schema := schemas[tool]
	if schema == nil {
		t.Fatalf("%s has no output schema", tool)
	}
	if err := schema.Validate(obj); err != nil {
		t.Fatalf("%s: structuredContent does not match its output schema: %v", tool, err)
	}
	return obj
}

func text(c mcp.Content) string {
	if tc, ok := c.(*mcp.TextContent); ok {
		return tc.Text
	}
	return fmt.Sprintf("%T", c)
}

// TestWrongKey pins what each client shows for a refused key, as the README says:
// the Go SDK shows our message (the 401 answers the request's id), mcp-go only that
// authorization is required.
func TestWrongKey(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	client := mcp.NewClient(&mcp.Implementation{Name: "flowstudio-ci", Version: "1"}, nil)
	_, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: server.url,
		HTTPClient: &http.Client{Transport: badKey{}}}, nil)
	if err == nil || !strings.Contains(err.Error(), "Unauthorized: invalid x-api-key") {
		t.Errorf("go-sdk: %v", err)
	}
	t.Logf("go-sdk shows: %v", err)
	c, err := mcpgo.NewStreamableHttpClient(server.url, transport.WithHTTPHeaders(map[string]string{"x-api-key": "wrong"}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	_, err = c.Initialize(ctx, mcpgotypes.InitializeRequest{})
	if err == nil || !strings.Contains(err.Error(), "authorization required") {
		t.Errorf("mcp-go: %v", err)
	}
	t.Logf("mcp-go shows: %v", err)
}

type badKey struct{}

func (badKey) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("x-api-key", "wrong")
	return http.DefaultTransport.RoundTrip(r)
}
