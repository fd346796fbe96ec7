package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/flowstudio/mcp/cosmos"
)

func TestReportsList(t *testing.T) {
	dir := t.TempDir()
	store, err := cosmos.OpenEmbedded(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, title := range []string{"first report", "second\x1b[31m report\nforged line"} {
		if _, err := store.AddBugReport(t.Context(), &cosmos.BugReport{UserHash: "ab12", Tier: "pro", Tool: "list_live_flows",
			Title: title, Description: "what happened\nline two", Evidence: "evidence text"}); err != nil {
			t.Fatal(err)
		}
	}
	store.Close()
	getenv := func(k string) string {
		if k == "FLOWSTUDIO_DATA_DIR" {
			return dir
		}
		return ""
	}

	var out, errb bytes.Buffer
	if code := run([]string{"reports", "list"}, &out, &errb, getenv); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	text := out.String()
	if strings.Index(text, "second") > strings.Index(text, "first report") {
		t.Errorf("not newest first:\n%s", text)
	}
	for _, want := range []string{"user ab12", "tier pro", "tool list_live_flows", "    what happened\n    line two", "evidence:\n    evidence text"} {
		if !strings.Contains(text, want) {
			t.Errorf("listing lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "\x1b") || strings.Contains(text, "\nforged line") {
		t.Errorf("report text forged the listing:\n%q", text)
	}

	out.Reset()
	if code := run([]string{"reports", "list", "--json", "--limit", "1"}, &out, &errb, getenv); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var r cosmos.BugReport
	if lines := strings.Split(strings.TrimSpace(out.String()), "\n"); len(lines) != 1 || json.Unmarshal([]byte(lines[0]), &r) != nil ||
		!strings.HasPrefix(r.Title, "second") {
		t.Fatalf("--json --limit 1: %s", out.String())
	}
	if code := run([]string{"reports"}, &out, &errb, getenv); code == 0 {
		t.Error("reports without list succeeded")
	}
}
