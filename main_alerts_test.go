package main

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/flowstudio/mcp/tools/powerautomate/sim"
	"github.com/flowstudio/mcp/tools/teamcache"
)

// TestSyncRaisesAlertsAndTheCheckDoesNotRepeatThem runs the real binary: a monitored
// failing flow raises one alert at the next sync, and neither the frequent check
// (`sync --monitored-only`) nor another sync raises it again. With Mailpit (as CI
// starts it) the alert is emailed once; without SMTP settings it is recorded for the
// dashboard with email "not configured".
func TestSyncRaisesAlertsAndTheCheckDoesNotRepeatThem(t *testing.T) {
	p := startServer(t)
	team := p.devKey(t, "alice@contoso.com", "--tier", "team")
	var extra []string
	to := "ops-" + strings.ToLower(rand.Text()[:8]) + "@contoso.test"
	smtp, api := os.Getenv("MAILPIT_SMTP"), os.Getenv("MAILPIT_API")
	if smtp != "" {
		host, port, _ := strings.Cut(smtp, ":")
		extra = []string{"SMTP_HOST=" + host, "SMTP_PORT=" + port, "SMTP_FROM=alerts@flowstudio.test"}
	}
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(binary, append([]string{"sync", "--data-dir", p.dataDir, "--server-url", strings.TrimSuffix(p.url, "/mcp")}, args...)...)
		cmd.Env = append(os.Environ(), extra...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			t.Fatalf("sync %v: %v\n%s", args, err, out.String())
		}
		return out.String()
	}
	run()
	id := teamcache.Key(sim.ContosoDefaultEnv, sim.FlowInvoiceApproval)
	if isErr, text, _ := p.callTool(t, team, "update_store_flow", map[string]any{"id": id, "monitor": true,
		"notifyRules": []map[string]any{{"when": "anyFailure", "email": to}}}); isErr {
		t.Fatalf("update_store_flow: %s", text)
	}
	out := run()
	want := `"email":"not configured"`
	if smtp != "" {
		want = `"email":"sent"`
	}
	if strings.Count(out, `"msg":"alert raised"`) != 1 || !strings.Contains(out, want) {
		t.Fatalf("sync after monitoring: want one alert raised with %s:\n%s", want, out)
	}
	if strings.Contains(out, to) {
		t.Fatalf("the sync log names the rule's address:\n%s", out)
	}
	check := run("--monitored-only")
	if !strings.Contains(check, `"msg":"alert check finished"`) || !strings.Contains(check, `"monitored_flows":1`) ||
		!strings.Contains(check, `"alerts_raised":0`) {
		t.Fatalf("check:\n%s", check)
	}
	if again := run(); strings.Contains(again, `"msg":"alert raised"`) {
		t.Fatalf("the next sync raised the same incident again:\n%s", again)
	}
	if smtp != "" {
		resp, err := http.Get(api + "/api/v1/search?query=to:" + to)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var found struct{ Messages []struct{ Subject string } }
		json.NewDecoder(resp.Body).Decode(&found)
		if len(found.Messages) != 1 || !strings.Contains(found.Messages[0].Subject, "Invoice approval") {
			t.Fatalf("emails to %s: %+v, want exactly one", to, found.Messages)
		}
	}
}
