// Command loadtest measures a flowstudio binary on loopback, on embedded defaults:
// cold start (process start to the first successful initialize, over many runs), idle
// RSS, a bounded burst of tools/call (latency and throughput), and RSS after it.
// Figures are medians; the machine is shared and noisy, so compare ratios, not runs.
//
//	go build -o /tmp/flowstudio . && go run ./server/loadtest -bin /tmp/flowstudio
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

func main() {
	bin := flag.String("bin", "./flowstudio", "flowstudio binary")
	starts := flag.Int("starts", 30, "cold starts to measure")
	calls := flag.Int("calls", 2000, "tools/call requests in the burst (bounded)")
	conc := flag.Int("c", 8, "concurrent clients in the burst")
	tool := flag.String("tool", "list_live_environments", "tool to call")
	flag.Parse()
	if err := run(*bin, *starts, *calls, *conc, *tool); err != nil {
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
