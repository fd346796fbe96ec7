package main

import (
	"bufio"
	"bytes"
	"debug/elf"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// binary is the flowstudio binary built once for the tests that run the real process.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "flowstudio-bin")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "flowstudio")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build failed: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// dockerBuildCommand is the `go build` of the Dockerfile's build stage, so that CI
// builds exactly what the image ships.
func dockerBuildCommand(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^RUN (CGO_ENABLED=0 go build .*) -o /out/flowstudio \.$`).FindSubmatch(b)
	if m == nil {
		t.Fatal("the Dockerfile has no `RUN CGO_ENABLED=0 go build ... -o /out/flowstudio .` line")
	}
	return shellFields(string(m[1]))
}

// shellFields splits a command line on spaces, keeping double-quoted words whole.
func shellFields(s string) []string {
	var out []string
	var cur strings.Builder
	quoted, inWord := false, false
	for _, r := range s {
		switch {
		case r == '"':
			quoted, inWord = !quoted, true
		case r == ' ' && !quoted:
			if inWord {
				out = append(out, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		out = append(out, cur.String())
	}
	return out
}

func TestDockerfileBuildsAStaticBinaryThatRunsWithoutLibcOrShell(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a release binary")
	}
	if !strings.Contains(mustRead(t, "Dockerfile"), "distroless/static") {
		t.Fatal("the runtime stage must be distroless static")
	}
	cmdline := dockerBuildCommand(t)
	out := filepath.Join(t.TempDir(), "flowstudio")
	cmd := exec.Command("go", append(append([]string{}, cmdline[2:]...), "-o", out, ".")...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	for i, f := range cmd.Args {
		cmd.Args[i] = strings.ReplaceAll(f, "${VERSION}", "test")
	}
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %v\n%s", cmd.Args, err, b)
	}
	f, err := elf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Fatal("the binary asks for a dynamic loader (PT_INTERP): it is not static")
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Fatalf("the binary needs shared libraries: %v", libs)
	}
	t.Run("runs in an empty chroot", func(t *testing.T) { runInEmptyChroot(t, out) })
}

// runInEmptyChroot runs the binary in a root holding only itself: no libc, no shell,
// no /etc. chroot needs root; elsewhere the subtest says it skipped (and CI, which
// runs as root, fails on a skip it does not allow).
func runInEmptyChroot(t *testing.T, out string) {
	if os.Geteuid() != 0 {
		t.Skip("not root: chroot needs root; run the tests as root to check the binary in an empty chroot")
	}
	root := t.TempDir()
	if err := os.Link(out, filepath.Join(root, "flowstudio")); err != nil {
		b, _ := os.ReadFile(out)
		if err := os.WriteFile(filepath.Join(root, "flowstudio"), b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	run := exec.Command("/flowstudio", "version")
	run.SysProcAttr = &syscall.SysProcAttr{Chroot: root}
	run.Env = []string{}
	b, err := run.CombinedOutput()
	if err != nil || !strings.Contains(string(b), "flowstudio test") {
		t.Fatalf("in an empty chroot: %v: %s", err, b)
	}
}

func mustRead(t *testing.T, path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// process is a running `flowstudio serve`.
type process struct {
	cmd     *exec.Cmd
	dataDir string
	url     string
	mu      sync.Mutex
	log     bytes.Buffer
	exited  chan error
}

func startServer(t *testing.T, env ...string) *process {
	t.Helper()
	dataDir := t.TempDir()
	return startProcess(t, []string{"serve"}, dataDir,
		append([]string{"FLOWSTUDIO_ADDR=127.0.0.1:0", "FLOWSTUDIO_DATA_DIR=" + dataDir}, env...), "mcp_url")
}

// startProcess runs the binary with args and waits for the JSON log line that
// carries urlField, whose value becomes p.url.
func startProcess(t *testing.T, args []string, dataDir string, env []string, urlField string) *process {
	t.Helper()
	return startBinary(t, binary, args, dataDir, env, urlField)
}

// startBinary is startProcess for a given path of the binary (its os.Args[0]).
func startBinary(t *testing.T, bin string, args []string, dataDir string, env []string, urlField string) *process {
	t.Helper()
	p := &process{dataDir: dataDir, exited: make(chan error, 1)}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = append(os.Environ(), env...)
	stdout, _ := p.cmd.StdoutPipe()
	p.cmd.Stderr = p.cmd.Stdout
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.log.WriteString(line + "\n")
			p.mu.Unlock()
			var entry map[string]any
			if json.Unmarshal([]byte(line), &entry) == nil {
				if u, _ := entry[urlField].(string); u != "" {
					urls <- u
				}
			}
		}
		p.exited <- p.cmd.Wait()
	}()
	t.Cleanup(func() { _ = p.cmd.Process.Kill() })
	select {
	case p.url = <-urls:
	case err := <-p.exited:
		t.Fatalf("%s exited: %v\n%s", args[0], err, p.logs())
	case <-time.After(15 * time.Second):
		t.Fatalf("%s did not start:\n%s", args[0], p.logs())
	}
	return p
}

// stop sends SIGTERM and waits for a clean exit.
func (p *process) stop(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.exited:
		if err != nil {
			t.Fatalf("exit: %v\n%s", err, p.logs())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the process did not exit on SIGTERM")
	}
}

func (p *process) logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

func (p *process) devKey(t *testing.T, email string, extra ...string) string {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"dev-key", "--email", email, "--data-dir", p.dataDir}, extra...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("dev-key: %v: %s", err, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

func (p *process) call(key, body string) (int, string, error) {
	req, _ := http.NewRequest(http.MethodPost, p.url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("X-Api-Key", key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

func TestServeOnEmbeddedDefaultsAndDevKeyBesideIt(t *testing.T) {
	p := startServer(t)
	logs := p.logs()
	for _, want := range []string{"EMBEDDED DEFAULTS", p.dataDir, binary + " dev-key --email you@contoso.com --data-dir " + p.dataDir} {
		if !strings.Contains(logs, want) {
			t.Errorf("start-up log lacks %q:\n%s", want, logs)
		}
	}
	key := p.devKey(t, "alice@contoso.com", "--tier", "pro")
	if again := p.devKey(t, "alice@contoso.com", "--tier", "pro"); again != key {
		t.Error("dev-key for the same user must print the same key")
	}
	status, body, err := p.call(key, `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_live_environments","arguments":{}}}`)
	if err != nil || status != 200 || !strings.Contains(body, `"isError":false`) || !strings.Contains(body, "Default-") {
		t.Fatalf("tools/call: %d %v %s", status, err, body)
	}
	if strings.Contains(p.logs(), key) {
		t.Fatal("the API key appeared in the log")
	}
}

func TestProductionRefusesEmbeddedDefaults(t *testing.T) {
	cmd := exec.Command(binary, "serve")
	cmd.Env = append(os.Environ(), "FLOWSTUDIO_ENV=production", "FLOWSTUDIO_ADDR=127.0.0.1:0", "FLOWSTUDIO_DATA_DIR="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "refuses to start on embedded defaults") {
		t.Fatalf("err %v out %s", err, out)
	}
}

func TestCommandsHaveHelp(t *testing.T) {
	for _, c := range []string{"serve", "dev-key"} {
		out, err := exec.Command(binary, c, "--help").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "-data-dir") {
			t.Errorf("%s --help: %v %s", c, err, out)
		}
	}
	if out, _ := exec.Command(binary, "version").Output(); !strings.HasPrefix(string(out), "flowstudio ") {
		t.Errorf("version: %s", out)
	}
	if err := exec.Command(binary, "bogus").Run(); err == nil {
		t.Error("an unknown command must fail")
	}
}

// TestGracefulDrain sends SIGTERM while calls are in flight: they complete, new
// connections are refused, and the process exits 0 within the drain timeout.
func TestGracefulDrain(t *testing.T) {
	p := startServer(t, "FLOWSTUDIO_SIM_LATENCY=3s", "FLOWSTUDIO_DRAIN_TIMEOUT=10s")
	key := p.devKey(t, "drain@contoso.com")
	const inflight = 5
	type result struct {
		status int
		body   string
		err    error
	}
	results := make(chan result, inflight)
	for range inflight {
		go func() {
			s, b, err := p.call(key, `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_live_environments","arguments":{}}}`)
			results <- result{s, b, err}
		}()
	}
	time.Sleep(time.Second) // the calls are now waiting on the slow upstream (3 s)
	signalled := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if _, _, err := p.call(key, `{"jsonrpc":"2.0","id":2,"method":"ping"}`); err == nil {
		t.Error("a new request was accepted after SIGTERM")
	}
	for range inflight {
		r := <-results
		if r.err != nil || r.status != 200 || !strings.Contains(r.body, `"isError":false`) {
			t.Errorf("in-flight call did not complete: %d %v %.200s", r.status, r.err, r.body)
		}
	}
	select {
	case err := <-p.exited:
		if err != nil {
			t.Fatalf("exit: %v\n%s", err, p.logs())
		}
		if took := time.Since(signalled); took > 10*time.Second {
			t.Fatalf("drain took %v, beyond the drain timeout", took)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the process did not exit")
	}
}

// The "get a key" hint says how to run dev-key the way the server was started: a
// newcomer who typed `go run . serve` has no flowstudio binary to run. The binary is
// started from where `go run` puts what it builds (<tmp>/go-build<N>/b001/exe/<name>).
func TestServeKeyHintMatchesGoRun(t *testing.T) {
	exe := filepath.Join(t.TempDir(), "go-build1234567", "b001", "exe")
	if err := os.MkdirAll(exe, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(exe, "mcp")
	if err := os.Symlink(binary, bin); err != nil {
		t.Fatal(err)
	}
	dataDir := t.TempDir()
	p := startBinary(t, bin, []string{"serve"}, dataDir,
		[]string{"FLOWSTUDIO_ADDR=127.0.0.1:0", "FLOWSTUDIO_DATA_DIR=" + dataDir}, "mcp_url")
	want := `"get_a_key":"go run . dev-key --email you@contoso.com --data-dir ` + dataDir + `"`
	if logs := p.logs(); !strings.Contains(logs, want) {
		t.Errorf("start-up log lacks %s:\n%s", want, logs)
	}
	p.stop(t)
}

func TestInvokedAs(t *testing.T) {
	for arg0, want := range map[string]string{
		"/tmp/go-build2736401/b001/exe/mcp":         "go run .",
		"/var/tmp/x/go-build99/b001/exe/flowstudio": "go run .",
		"./flowstudio":                        "./flowstudio",
		"flowstudio":                          "flowstudio",
		"/usr/local/bin/flowstudio":           "/usr/local/bin/flowstudio",
		"/srv/exe/flowstudio":                 "/srv/exe/flowstudio", // an exe dir outside go run's temp dir
		"/tmp/go-build1/b001/flowstudio.test": "/tmp/go-build1/b001/flowstudio.test",
	} {
		if got := invokedAs(arg0); got != want {
			t.Errorf("invokedAs(%q) = %q, want %q", arg0, got, want)
		}
	}
}
