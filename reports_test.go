package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/flowstudio/mcp/cosmos"
)

func TestReportsList(t *testing.T) {
	dir := t.TempDir()
	store, err := cosmos.OpenEmbedded(dir)
	if err != nil {
		t.Fatal(err)
	}
	// A report filed before reports had day partitions, in SystemPartition:
	// still listed, after the newer ones.
	legacyAt := time.Now().Add(-30 * 24 * time.Hour)
	legacyID := fmt.Sprintf("%019d-00000000", math.MaxInt64-legacyAt.UnixNano())
	legacy, _ := json.Marshal(&cosmos.BugReport{ID: legacyID, UserHash: "ef56", Title: "legacy report", Description: "old",
		CreatedAt: legacyAt.Unix()})
	if _, err := store.CreateCacheItem(t.Context(), &cosmos.CacheItem{UserID: cosmos.SystemPartition, Kind: cosmos.KindBugReport,
		Key: legacyID, Body: legacy, TTL: cosmos.BugReportTTL}); err != nil {
		t.Fatal(err)
	}
	for _, title := range []string{"first report", "second\x1b[31m report\nforged line"} {
		if _, err := store.AddBugReport(t.Context(), "tenant.user", 20, &cosmos.BugReport{UserHash: "ab12", Tier: "pro", Tool: "list_live_flows",
			Title: title, Description: "what happened\nline two", Evidence: "evidence text"}); err != nil {
			t.Fatal(err)
		}
	}
	store.Close()
	getenv := dataDirOnly(dir)

	var out, errb bytes.Buffer
	if code := run([]string{"reports", "list"}, &out, &errb, getenv); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	text := out.String()
	if i, j, k := strings.Index(text, "second"), strings.Index(text, "first report"), strings.Index(text, "legacy report"); i < 0 || i > j || j > k {
		t.Errorf("not newest first, legacy last:\n%s", text)
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

func TestReportsState(t *testing.T) {
	dir := t.TempDir()
	store, err := cosmos.OpenEmbedded(dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := store.AddBugReport(t.Context(), "tenant.user", 20, &cosmos.BugReport{UserHash: "ab12", Title: "t", Description: "d"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.AppendBugReport(t.Context(), "tenant.user", 20, r.ID, "more evidence", 8192); err != nil {
		t.Fatal(err)
	}
	store.Close()
	getenv := dataDirOnly(dir)
	var out, errb bytes.Buffer
	if code := run([]string{"reports", "state", "--id", r.ID, "--state", "acknowledged", "--note", "we see it"}, &out, &errb, getenv); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), r.ID+" is now acknowledged") {
		t.Errorf("state: %s", out.String())
	}
	out.Reset()
	if code := run([]string{"reports", "list"}, &out, &errb, getenv); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	for _, want := range []string{"state acknowledged  note: we see it", "appended ", "    more evidence"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("listing lacks %q:\n%s", want, out.String())
		}
	}
	for _, args := range [][]string{
		{"reports", "state", "--id", r.ID, "--state", "done"},
		{"reports", "state", "--id", "../x", "--state", "fixed"},
		{"reports", "state", "--id", "0000000000000000001-00000000", "--state", "fixed"},
	} {
		if code := run(args, &out, &errb, getenv); code == 0 {
			t.Errorf("%v succeeded", args)
		}
	}
}

// dataDirOnly is an environment that sets FLOWSTUDIO_DATA_DIR and nothing else.
func dataDirOnly(dir string) func(string) string {
	return func(k string) string {
		if k == "FLOWSTUDIO_DATA_DIR" {
			return dir
		}
		return ""
	}
}
