//go:build linux

// Command loadtest measures a flowstudio binary on loopback, on embedded defaults:
// cold start (process start to the first successful initialize, over many runs), idle
// RSS, a bounded burst of tools/call (latency and throughput), and RSS after it.
// Figures are medians; the machine is shared and noisy, so compare ratios, not runs.
//
//	go build -o /tmp/flowstudio . && go run ./server/loadtest -bin /tmp/flowstudio
//
// With -mixed it runs the mixed load instead (see runMixed): `flowstudio sim` in its own
// process, `serve` reaching it over loopback with the internal metrics listener on,
// and -c clients over -users team-tier keys calling a weighted mix of tools for -d;
// it prints errors, latency percentiles, CPU per call, RSS and goroutines before and
// after, and exits non-zero on any HTTP or JSON-RPC error.
//
//	go build -o /tmp/flowstudio . && go run ./server/loadtest -bin /tmp/flowstudio -mixed -c 64 -d 60s
//
// Linux only: it reads /proc, and its children die with it (Pdeathsig).
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

func main() {
	bin := flag.String("bin", "./flowstudio", "flowstudio binary")
	starts := flag.Int("starts", 30, "cold starts to measure")
	calls := flag.Int("calls", 2000, "tools/call requests in the burst (bounded)")
	conc := flag.Int("c", 8, "concurrent clients in the burst")
	tool := flag.String("tool", "list_live_environments", "tool to call")
	mixed := flag.Bool("mixed", false, "instead: the mixed load, -c clients (default 64) for -d against serve + a separate `flowstudio sim`")
	dur := flag.Duration("d", 60*time.Second, "mixed: how long the load runs")
	users := flag.Int("users", 8, "mixed: team-tier dev-key users the clients are spread over")
	flag.Parse()
	var err error
	if *mixed {
		clients := 64
		flag.Visit(func(f *flag.Flag) {
			if f.Name == "c" {
				clients = *conc
			}
		})
		err = runMixed(*bin, clients, *users, *dur)
	} else {
		err = run(*bin, *starts, *calls, *conc, *tool)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		os.Exit(1)
	}
}

func run(bin string, starts, calls, conc int, tool string) error {
	data, err := os.MkdirTemp("", "flowstudio-load")
	if err != nil {
		return err
	}
	defer os.RemoveAll(data)
	out, err := exec.Command(bin, "dev-key", "--email", "load@contoso.com", "--tier", "team", "--data-dir", data).Output()
	if err != nil {
		return fmt.Errorf("dev-key: %w", err)
	}
	key := strings.TrimSpace(string(out))

	var cold []time.Duration
	for range starts {
		d, err := coldStart(bin, data, key)
		if err != nil {
			return err
		}
		cold = append(cold, d)
	}
	fmt.Printf("cold start to first initialize: median %v, p90 %v, min %v (n=%d)\n",
		median(cold), percentile(cold, 90), percentile(cold, 0), len(cold))

	srv, url, err := start(bin, data)
	if err != nil {
		return err
	}
	defer srv.Process.Kill() //nolint:errcheck
	if _, err := initialize(url, key); err != nil {
		return err
	}
	time.Sleep(300 * time.Millisecond)
	fmt.Printf("idle RSS: %.1f MiB\n", rssMiB(srv.Process.Pid))

	lat, elapsed, failures := burst(url, key, tool, calls, conc)
	fmt.Printf("burst: %d x tools/call %s at concurrency %d in %v: %.0f calls/s, latency median %v, p95 %v, failures %d\n",
		calls, tool, conc, elapsed.Round(time.Millisecond), float64(calls)/elapsed.Seconds(), median(lat), percentile(lat, 95), failures)
	fmt.Printf("RSS after burst: %.1f MiB\n", rssMiB(srv.Process.Pid))
	if st, err := os.Stat(bin); err == nil {
		fmt.Printf("binary size: %.1f MiB\n", float64(st.Size())/(1<<20))
	}
	return nil
}

// coldStart runs one process to its first successful initialize, then kills it.
func coldStart(bin, data, key string) (time.Duration, error) {
	began := time.Now()
	cmd, url, err := start(bin, data)
	if err != nil {
		return 0, err
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	for time.Since(began) < 10*time.Second {
		if ok, _ := initialize(url, key); ok {
			return time.Since(began), nil
		}
		time.Sleep(time.Millisecond)
	}
	return 0, fmt.Errorf("no initialize within 10s")
}

// start launches `serve` on a free loopback port and returns once it printed its URL.
func start(bin, data string) (*exec.Cmd, string, error) {
	cmd := exec.Command(bin, "serve")
	cmd.SysProcAttr = orphanless()
	// Quotas would refuse a burst well before it ends; lift them for the measurement.
	cmd.Env = append(os.Environ(), "FLOWSTUDIO_ADDR=127.0.0.1:0", "FLOWSTUDIO_DATA_DIR="+data,
		"QUOTA_TEAM=100000000/10000000")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, "", err
	}
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		var line struct {
			MCPURL string `json:"mcp_url"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.MCPURL != "" {
			go io.Copy(io.Discard, stdout) //nolint:errcheck
			return cmd, line.MCPURL, nil
		}
	}
	_ = cmd.Process.Kill()
	return nil, "", fmt.Errorf("%s serve printed no mcp_url", filepath.Base(bin))
}

var client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

func post(url, key, body string) (int, []byte, error) {
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("X-Api-Key", key)
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

func initialize(url, key string) (bool, error) {
	status, body, err := post(url, key, `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"loadtest","version":"1"}}}`)
	return err == nil && status == 200 && bytes.Contains(body, []byte(`"protocolVersion"`)), err
}

func burst(url, key, tool string, calls, conc int) ([]time.Duration, time.Duration, int) {
	body := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"` + tool + `","arguments":{}}}`
	var mu sync.Mutex
	var lat []time.Duration
	failures := 0
	jobs := make(chan struct{}, calls)
	for range calls {
		jobs <- struct{}{}
	}
	close(jobs)
	began := time.Now()
	var wg sync.WaitGroup
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range jobs {
				t := time.Now()
				status, b, err := post(url, key, body)
				d := time.Since(t)
				mu.Lock()
				lat = append(lat, d)
				if err != nil || status != 200 || !bytes.Contains(b, []byte(`"isError":false`)) {
					failures++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return lat, time.Since(began), failures
}

func rssMiB(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

func percentile(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := (len(s) - 1) * p / 100
	return s[i].Round(10 * time.Microsecond)
}

func median(d []time.Duration) time.Duration { return percentile(d, 50) }

// --- the mixed load (-mixed) ---

// mixOp is one kind of call in the mix and its weight.
type mixOp struct {
	tool   string
	weight int
	args   func(t target) string // JSON arguments
}

// target is what one user's live calls read: an environment and a flow in it.
type target struct{ env, flow string }

var mix = []mixOp{
	{"list_skills", 1, func(target) string { return `{}` }},
	{"tool_search", 1, func(target) string { return `{"query":"flow"}` }},
	{"list_live_environments", 2, func(target) string { return `{}` }},
	{"list_live_flows", 2, func(t target) string { return jsonArgs("environmentName", t.env) }},
	{"get_live_flow", 2, func(t target) string { return jsonArgs("environmentName", t.env, "flowName", t.flow) }},
	{"get_live_flow_runs", 2, func(t target) string { return jsonArgs("environmentName", t.env, "flowName", t.flow) }},
	{"list_store_flows", 1, func(target) string { return `{}` }},
}

func jsonArgs(kv ...string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// runMixed starts `flowstudio sim` and `flowstudio serve` (FLOWSTUDIO_SIM_URL, the
// metrics listener on, quotas lifted) on one fresh data directory, makes `users`
// team-tier keys with dev-key, fills their Team cache with `sync`, and runs `clients`
// clients (spread evenly over the keys) for d, each calling the weighted mix in a loop
// over keep-alive connections.
func runMixed(bin string, clients, users int, d time.Duration) error {
	if clients < 1 || users < 1 || d <= 0 {
		return fmt.Errorf("-c, -users and -d must be positive")
	}
	users = min(users, clients)
	data, err := os.MkdirTemp("", "flowstudio-mixed")
	if err != nil {
		return err
	}
	defer os.RemoveAll(data)

	simProc, simLog, err := launch(bin, nil, []string{"sim", "--addr", "127.0.0.1:0", "--data-dir", data}, "sim_url")
	if err != nil {
		return err
	}
	defer stop(simProc)
	simEnv := []string{"FLOWSTUDIO_SIM_URL=" + simLog["sim_url"], "FLOWSTUDIO_DATA_DIR=" + data}

	keys := make([]string, users)
	for i := range keys {
		var out string
		for attempt := 0; attempt < 3; attempt++ { // a busy machine can miss dev-key's 10 s budget
			if out, err = command(bin, simEnv, "dev-key", "--email", fmt.Sprintf("load%d@contoso.com", i+1), "--tier", "team"); err == nil {
				break
			}
		}
		if err != nil {
			return fmt.Errorf("dev-key: %w", err)
		}
		keys[i] = strings.TrimSpace(out)
	}
	if _, err := command(bin, simEnv, "sync"); err != nil {
		return fmt.Errorf("sync: %w", err)
	}

	perUser := (clients + users - 1) / users
	serveEnv := slices.Concat(simEnv, []string{"FLOWSTUDIO_ADDR=127.0.0.1:0", "FLOWSTUDIO_METRICS_ADDR=127.0.0.1:0",
		"QUOTA_FREE=1000000000/1000000000", "QUOTA_PRO=1000000000/1000000000", "QUOTA_TEAM=1000000000/1000000000",
		"FLOWSTUDIO_MAX_INFLIGHT_PER_USER=" + strconv.Itoa(min(1024, max(16, perUser)))})
	srv, srvLog, err := launch(bin, serveEnv, []string{"serve"}, "mcp_url", "metrics_addr")
	if err != nil {
		return err
	}
	defer stop(srv)
	mcpURL, metricsURL := srvLog["mcp_url"], "http://"+srvLog["metrics_addr"]+"/metrics"
	pid := srv.Process.Pid

	hc := &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{
		MaxIdleConns: clients + 16, MaxIdleConnsPerHost: clients + 16, IdleConnTimeout: time.Minute, DisableCompression: true}}

	// One discovery per user: an environment with a flow, for the live calls.
	targets := make([]target, users)
	for i, key := range keys {
		if targets[i], err = discover(hc, mcpURL, key, i); err != nil {
			return fmt.Errorf("user %d: %w", i+1, err)
		}
	}
	var weights []string
	for _, op := range mix {
		weights = append(weights, fmt.Sprintf("%s×%d", op.tool, op.weight))
	}
	fmt.Printf("mixed load: %d clients (%d team-tier keys × %d clients) for %v against serve (pid %d) + a separate `flowstudio sim`\n",
		clients, users, perUser, d, pid)
	fmt.Printf("mix per client loop (weights): %s\n", strings.Join(weights, ", "))
	for i, t := range targets {
		fmt.Printf("  key %d: environment %s, flow %s\n", i+1, t.env, t.flow)
	}

	// Each client initializes its own session before the clock starts.
	sessions := make([]*mcpClient, clients)
	for i := range sessions {
		c := &mcpClient{hc: hc, url: mcpURL, key: keys[i%users], target: targets[i%users]}
		if err := c.initialize(); err != nil {
			return fmt.Errorf("client %d: initialize: %w", i+1, err)
		}
		sessions[i] = c
	}

	hc.CloseIdleConnections()
	time.Sleep(time.Second)
	baseGoroutines, err := scrapeGoroutines(metricsURL)
	if err != nil {
		return err
	}
	rssBefore, anonBefore := procStatusMiB(pid, "VmRSS:"), procStatusMiB(pid, "RssAnon:")
	fmt.Printf("before: server RSS %.1f MiB, goroutines %d\n", rssBefore, baseGoroutines)

	cpuBefore, err := cpuTicks(pid)
	if err != nil {
		return err
	}
	stats := newMixStats()
	deadline := time.Now().Add(d)
	began := time.Now()
	var wg sync.WaitGroup
	for i, c := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.loop(i, deadline, stats)
		}()
	}
	wg.Wait()
	elapsed := time.Since(began)
	cpuAfter, err := cpuTicks(pid)
	if err != nil {
		return err
	}
	peak := procStatusMiB(pid, "VmHWM:")

	all := stats.all()
	calls := len(all)
	tick := clockTick()
	fmt.Printf("after %v: %d calls, %.0f calls/s\n", elapsed.Round(time.Millisecond), calls, float64(calls)/elapsed.Seconds())
	fmt.Printf("errors: HTTP %d, JSON-RPC %d, tool isError %d\n", stats.httpErrs, stats.rpcErrs, stats.toolErrs)
	fmt.Printf("latency: p50 %v, p90 %v, p99 %v, max %v\n", percentile(all, 50), percentile(all, 90), percentile(all, 99), percentile(all, 100))
	for _, op := range mix {
		l := stats.lat[op.tool]
		fmt.Printf("  %-24s %6d calls  p50 %-9v p99 %v\n", op.tool, len(l), percentile(l, 50), percentile(l, 99))
	}
	if calls > 0 {
		fmt.Printf("server CPU: %.0f µs per call (%.1f s user+system over the run, CLK_TCK %d)\n",
			float64(cpuAfter-cpuBefore)/float64(tick)*1e6/float64(calls), float64(cpuAfter-cpuBefore)/float64(tick), tick)
	}
	fmt.Printf("server peak RSS (VmHWM): %.1f MiB\n", peak)
	for _, e := range stats.samples {
		fmt.Printf("  error sample: %s\n", e)
	}

	hc.CloseIdleConnections()
	// Idle upstream connections (and their goroutines) go after 15 s unused, and the
	// server gives its heap back 5 s and 20 s after the last request (its idle check
	// ticks every 2.5 s, so up to 22.5 s): poll for the goroutines up to 30 s, and
	// read RSS once the second release is surely done.
	idleStart := time.Now()
	var idleGoroutines int
	for {
		time.Sleep(time.Second)
		if idleGoroutines, err = scrapeGoroutines(metricsURL); err != nil {
			return err
		}
		if idleGoroutines <= baseGoroutines+5 || time.Since(idleStart) > 30*time.Second {
			break
		}
	}
	time.Sleep(max(time.Second, 25*time.Second-time.Since(idleStart)))
	back := "yes"
	if idleGoroutines > baseGoroutines+5 {
		back = "NO"
	}
	fmt.Printf("after %.0f s idle: server RSS %.1f MiB (before the load %.1f MiB; of it anonymous %.1f MiB, before %.1f MiB), goroutines %d (baseline %d; back within +5: %s)\n",
		time.Since(idleStart).Seconds(), procStatusMiB(pid, "VmRSS:"), rssBefore, procStatusMiB(pid, "RssAnon:"), anonBefore,
		idleGoroutines, baseGoroutines, back)

	if stats.httpErrs > 0 || stats.rpcErrs > 0 {
		return fmt.Errorf("%d HTTP errors and %d JSON-RPC errors", stats.httpErrs, stats.rpcErrs)
	}
	return nil
}

// launch starts the binary with args and extra environment and waits (up to 30 s) for
// its JSON log to carry every field in want; it returns those fields' values.
func launch(bin string, env, args []string, want ...string) (*exec.Cmd, map[string]string, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = orphanless()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	found := map[string]string{}
	done := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var line map[string]any
			if json.Unmarshal(sc.Bytes(), &line) != nil {
				continue
			}
			for _, k := range want {
				if v, ok := line[k].(string); ok && v != "" {
					found[k] = v
				}
			}
			if len(found) == len(want) {
				done <- nil
				_, _ = io.Copy(io.Discard, stdout) // the server logs every call; keep its pipe drained
				return
			}
		}
		done <- fmt.Errorf("%s %s exited before logging %v", filepath.Base(bin), args[0], want)
	}()
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		err = fmt.Errorf("%s %s logged no %v within 30s", filepath.Base(bin), args[0], want)
	}
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, nil, err
	}
	return cmd, found, nil
}

// orphanless makes a child process die with this one (however this one ends: a
// closed stdout pipe, a signal), so that no server or simulator outlives the run.
func orphanless() *syscall.SysProcAttr { return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} }

// stop sends SIGTERM (the process drains) and waits for the process, killing it after 25 s.
func stop(cmd *exec.Cmd) {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	select {
	case <-exited:
	case <-time.After(25 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
	}
}

// command runs the binary to completion and returns its stdout.
func command(bin string, env []string, args ...string) (string, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("%w: %s%s", err, out, stderr.String())
	}
	return string(out), nil
}

// mcpClient is one client: its session and the user's target.
type mcpClient struct {
	hc      *http.Client
	url     string
	key     string
	session string
	target  target
}

// rpcReply is the part of a JSON-RPC answer the load reads.
type rpcReply struct {
	Error *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
	Result *struct {
		IsError           bool            `json:"isError"`
		StructuredContent json.RawMessage `json:"structuredContent"`
		Content           []struct {
			Text string `json:"text"`
		} `json:"content"`
	} `json:"result"`
}

// post sends one JSON-RPC message; the answer may be JSON or one SSE event.
func (c *mcpClient) post(body string) (int, *rpcReply, http.Header, error) {
	req, err := http.NewRequest(http.MethodPost, c.url, strings.NewReader(body))
	if err != nil {
		return 0, nil, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Mcp-Protocol-Version", "2025-06-18")
	req.Header.Set("X-Api-Key", c.key)
	if c.session != "" {
		req.Header.Set("Mcp-Session-Id", c.session)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return resp.StatusCode, nil, resp.Header, err
	}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		var last []byte
		for _, line := range bytes.Split(b, []byte("\n")) {
			if data, ok := bytes.CutPrefix(line, []byte("data:")); ok && bytes.Contains(data, []byte(`"id"`)) {
				last = bytes.TrimSpace(data)
			}
		}
		b = last
	}
	var r rpcReply
	if err := json.Unmarshal(b, &r); err != nil {
		return resp.StatusCode, nil, resp.Header, fmt.Errorf("undecodable answer: %.200s", b)
	}
	return resp.StatusCode, &r, resp.Header, nil
}

func (c *mcpClient) initialize() error {
	status, r, h, err := c.post(`{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"loadtest","version":"1"}}}`)
	if err != nil || status != http.StatusOK || r == nil || r.Error != nil {
		return fmt.Errorf("status %d, %v", status, err)
	}
	c.session = h.Get("Mcp-Session-Id")
	status, _, _, err = c.post(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	if err != nil || (status != http.StatusAccepted && status != http.StatusOK) {
		return fmt.Errorf("notifications/initialized: status %d, %v", status, err)
	}
	return nil
}

// call runs one tool and returns its structured content, or an error saying why not.
func (c *mcpClient) call(id int, tool, args string) (json.RawMessage, error) {
	status, r, _, err := c.post(fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":%q,"arguments":%s}}`, id, tool, args))
	switch {
	case err != nil || status != http.StatusOK:
		return nil, fmt.Errorf("%s: HTTP %d %v", tool, status, err)
	case r.Error != nil:
		return nil, fmt.Errorf("%s: JSON-RPC error %d %s", tool, r.Error.Code, r.Error.Message)
	case r.Result == nil || r.Result.IsError:
		return nil, fmt.Errorf("%s: isError", tool)
	}
	return r.Result.StructuredContent, nil
}

// discover finds an environment with at least one flow, for the live calls; nth
// spreads the users over the environments and flows they share. It also checks
// that sync filled the user's Team cache.
func discover(hc *http.Client, mcpURL, key string, nth int) (target, error) {
	c := &mcpClient{hc: hc, url: mcpURL, key: key}
	out, err := c.call(1, "list_store_flows", `{}`)
	if err != nil {
		return target{}, err
	}
	var cached struct {
		Flows []json.RawMessage `json:"flows"`
	}
	if json.Unmarshal(out, &cached) != nil || len(cached.Flows) == 0 {
		return target{}, fmt.Errorf("list_store_flows: the Team cache is empty after sync")
	}
	out, err = c.call(1, "list_live_environments", `{}`)
	if err != nil {
		return target{}, err
	}
	var envs struct {
		Environments []struct {
			Name string `json:"name"`
		} `json:"environments"`
	}
	if err := json.Unmarshal(out, &envs); err != nil {
		return target{}, err
	}
	for i := range envs.Environments {
		e := envs.Environments[(i+nth)%len(envs.Environments)]
		out, err := c.call(2, "list_live_flows", jsonArgs("environmentName", e.Name))
		if err != nil {
			continue
		}
		var flows struct {
			Flows []struct {
				Name string `json:"name"`
			} `json:"flows"`
		}
		if json.Unmarshal(out, &flows) == nil && len(flows.Flows) > 0 {
			return target{env: e.Name, flow: flows.Flows[nth%len(flows.Flows)].Name}, nil
		}
	}
	return target{}, fmt.Errorf("none of %d environments has a flow", len(envs.Environments))
}

// mixStats gathers the outcome of every call.
type mixStats struct {
	mu                          sync.Mutex
	lat                         map[string][]time.Duration
	httpErrs, rpcErrs, toolErrs int
	samples                     []string // the first few distinct failures
}

func newMixStats() *mixStats { return &mixStats{lat: map[string][]time.Duration{}} }

func (s *mixStats) all() []time.Duration {
	var all []time.Duration
	for _, l := range s.lat {
		all = append(all, l...)
	}
	return all
}

func (s *mixStats) sample(msg string) {
	if len(s.samples) < 8 && !slices.Contains(s.samples, msg) {
		s.samples = append(s.samples, msg)
	}
}

// loop calls the weighted mix until the deadline; a call under way then completes.
func (c *mcpClient) loop(seed int, deadline time.Time, stats *mixStats) {
	total := 0
	for _, op := range mix {
		total += op.weight
	}
	rng := rand.New(rand.NewPCG(uint64(seed), 0x5eed))
	lat := map[string][]time.Duration{}
	var httpErrs, rpcErrs, toolErrs int
	var failures []string
	for id := 1; time.Now().Before(deadline); id++ {
		n := rng.IntN(total)
		op := mix[0]
		for _, o := range mix {
			if n < o.weight {
				op = o
				break
			}
			n -= o.weight
		}
		body := fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":%q,"arguments":%s}}`, id, op.tool, op.args(c.target))
		began := time.Now()
		status, r, _, err := c.post(body)
		lat[op.tool] = append(lat[op.tool], time.Since(began))
		switch {
		case err != nil || status != http.StatusOK || r == nil:
			httpErrs++
			failures = append(failures, fmt.Sprintf("%s: HTTP %d %v", op.tool, status, err))
		case r.Error != nil:
			rpcErrs++
			failures = append(failures, fmt.Sprintf("%s: JSON-RPC %d %s", op.tool, r.Error.Code, r.Error.Message))
		case r.Result == nil:
			rpcErrs++
			failures = append(failures, op.tool+": neither result nor error")
		case r.Result.IsError:
			toolErrs++
			text := ""
			if len(r.Result.Content) > 0 {
				text = r.Result.Content[0].Text
			}
			failures = append(failures, fmt.Sprintf("%s: isError: %.160s", op.tool, text))
		}
	}
	stats.mu.Lock()
	defer stats.mu.Unlock()
	for tool, l := range lat {
		stats.lat[tool] = append(stats.lat[tool], l...)
	}
	stats.httpErrs += httpErrs
	stats.rpcErrs += rpcErrs
	stats.toolErrs += toolErrs
	for _, f := range failures {
		stats.sample(f)
	}
}

// scrapeGoroutines reads go_goroutine_count from the server's internal /metrics.
func scrapeGoroutines(metricsURL string) (int, error) {
	resp, err := http.Get(metricsURL)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET %s: %d %v", metricsURL, resp.StatusCode, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "go_goroutine_count" {
			return strconv.Atoi(f[1])
		}
	}
	return 0, fmt.Errorf("no go_goroutine_count at %s", metricsURL)
}

// procStatusMiB reads a kB field of /proc/PID/status (VmRSS, VmHWM) in MiB.
func procStatusMiB(pid int, field string) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == field {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

// cpuTicks is utime + stime of the process, in clock ticks (/proc/PID/stat).
func cpuTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name, which is in parentheses and may hold spaces:
	// state is field 3, utime 14 and stime 15.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: bad utime or stime", pid)
	}
	return utime + stime, nil
}

// clockTick is the kernel's clock ticks per second (getconf CLK_TCK), else 100.
func clockTick() int64 {
	if out, err := exec.Command("getconf", "CLK_TCK").Output(); err == nil {
		if n, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64); err == nil && n > 0 {
			return n
		}
	}
	return 100
}
