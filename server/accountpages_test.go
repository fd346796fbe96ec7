package server

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowstudio/mcp/cosmos"
	"github.com/flowstudio/mcp/server/account"
)

// TestDeleteAccountEndToEnd: a signed-in user with usage, a Team cache and bug
// reports sees exactly that on "what we keep" and in its JSON download; the delete
// confirmation says what stays (logs, 90 days, email hash only); a post without
// the confirmation or the CSRF token deletes nothing; the confirmed deletion ends
// the session, kills the keys at once, and a scan of every container finds
// nothing of the user, while another user's data stays.
func TestDeleteAccountEndToEnd(t *testing.T) {
	t.Parallel()
	h, tap, _ := newSimWebHarness(t)
	c := h.browser(t)
	end, _ := simSignIn(t, h, c, "/login", "alice@contoso.com")
	if end.url.Path != "/dashboard" {
		t.Fatalf("sign-in ended at %s", end.url)
	}
	key := webMatch(t, keyField, end.body)
	readKey := webMatch(t, readKeyField, end.body)
	if r := webCallTool(t, h, key, "list_live_environments"); r.status != 200 || r.isError {
		t.Fatalf("tool call: %d %s", r.status, r.text)
	}
	// Bob signs in too: his data must survive Alice's deletion.
	cb := h.browser(t)
	simSignIn(t, h, cb, "/login", "bob@contoso.com")

	var alice *cosmos.User
	ids, _, err := h.store.ListUserIDs(t.Context(), cosmos.PageRequest{})
	if err != nil || len(ids) != 2 {
		t.Fatalf("users: %v %v", ids, err)
	}
	for _, id := range ids {
		if u := h.user(t, id); u.EmailHash == h.keys.HashEmail("alice@contoso.com") {
			alice = u
		}
	}
	if alice == nil {
		t.Fatal("alice not stored")
	}
	for _, k := range []string{"env1.flowA", "env1.flowB"} {
		if _, err := h.store.PutCacheItem(t.Context(), &cosmos.CacheItem{UserID: alice.ID, Kind: "flow", Key: k,
			Body: json.RawMessage(`{"displayName":"Invoice approval"}`), TTL: -1}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := h.store.AddBugReport(t.Context(), alice.ID, 20, &cosmos.BugReport{UserHash: alice.EmailHash,
		Title: "ALICE-REPORT-TITLE", Description: "the run failed"}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond) // one flush interval: the tool call's count is stored

	// What we keep: the page and the download.
	p := webFetch(t, c, "GET", h.ts.URL+"/dashboard/data", nil, nil)
	for _, want := range []string{alice.ID, alice.EmailHash, "ALICE-REPORT-TITLE", "env1.flowA", "bytes, sealed (AES-256-GCM)", "90 days"} {
		if !strings.Contains(p.body, want) {
			t.Errorf("the data page lacks %q", want)
		}
	}
	if strings.Contains(p.body, base64.StdEncoding.EncodeToString(alice.SealedRefreshToken)) {
		t.Error("the data page shows the sealed token itself")
	}
	dl := webFetch(t, c, "GET", h.ts.URL+"/dashboard/data.json", nil, nil)
	if dl.status != 200 || !strings.HasPrefix(dl.header.Get("Content-Disposition"), "attachment;") || dl.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("download: %d %v", dl.status, dl.header)
	}
	var e account.Export
	if err := json.Unmarshal([]byte(dl.body), &e); err != nil {
		t.Fatal(err)
	}
	if e.User.ID != alice.ID || len(e.Cache) != 2 || len(e.Reports) != 1 || len(e.Usage) == 0 || e.Cache[0].Bytes == 0 {
		t.Fatalf("export: %+v", e)
	}
	if r := webFetch(t, h.browser(t), "GET", h.ts.URL+"/dashboard/data.json", nil, nil); strings.Contains(r.body, alice.ID) {
		t.Fatal("the download answered without a session")
	}

	// The confirmation step.
	confirm := webFetch(t, c, "GET", h.ts.URL+"/dashboard/delete", nil, nil)
	for _, want := range []string{"90 days", "hash of your email", `value="delete-everything"`} {
		if !strings.Contains(confirm.body, want) {
			t.Errorf("the confirmation page lacks %q", want)
		}
	}
	csrf := webMatch(t, csrfField, confirm.body)
	headers := map[string]string{"Origin": h.ts.URL, "Sec-Fetch-Site": "same-origin"}
	for name, form := range map[string]url.Values{
		"no confirmation": {"csrf": {csrf}},
		"no csrf":         {"confirm": {"delete-everything"}},
		"other csrf":      {"csrf": {"x" + csrf}, "confirm": {"delete-everything"}},
	} {
		r := webFetch(t, c, "POST", h.ts.URL+"/dashboard/delete", form, headers)
		if r.status == 200 || h.user(t, alice.ID) == nil {
			t.Fatalf("%s: %d", name, r.status)
		}
	}
	if r := webFetch(t, c, "POST", h.ts.URL+"/dashboard/delete", url.Values{"csrf": {csrf}, "confirm": {"delete-everything"}},
		map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}); r.status != http.StatusForbidden {
		t.Fatalf("cross-site deletion: %d", r.status)
	}

	done := webFetch(t, c, "POST", h.ts.URL+"/dashboard/delete", url.Values{"csrf": {csrf}, "confirm": {"delete-everything"}}, headers)
	if done.status != 200 || !strings.Contains(done.body, "Your account is deleted") || !strings.Contains(done.body, "2 Team cache items, 1 bug reports") {
		t.Fatalf("deletion: %d\n%s", done.status, done.body)
	}
	if strings.Contains(done.body, `action="/logout"`) {
		t.Error("the deleted page still shows a signed-in header")
	}
	for _, k := range []string{key, readKey} {
		if st := webCallTool(t, h, k, "list_live_environments").status; st != 401 {
			t.Errorf("a key after deletion: %d", st)
		}
	}
	if again := webFetch(t, c, "GET", h.ts.URL+"/dashboard", nil, nil); again.url.Path != "/" {
		t.Errorf("the dashboard after deletion: %s", again.url)
	}

	// The store scan: nothing of Alice, everything of Bob.
	marks := []string{alice.ID, alice.ObjectID, alice.EmailHash, base64.StdEncoding.EncodeToString(alice.SealedRefreshToken), "ALICE-REPORT-TITLE"}
	bobItems := 0
	if err := h.store.Scan(t.Context(), func(container, id string, doc []byte) error {
		for _, m := range marks {
			if strings.Contains(id, m) || bytes.Contains(doc, []byte(m)) {
				t.Errorf("after deletion %s/%s still holds %.16q", container, id, m)
			}
		}
		if bytes.Contains(doc, []byte(h.keys.HashEmail("bob@contoso.com"))) {
			bobItems++
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if bobItems == 0 {
		t.Error("Bob's data went too")
	}
	if !strings.Contains(h.logs.String(), `"account deleted"`) || strings.Contains(h.logs.String(), "alice@contoso.com") {
		t.Error("the deletion log line is missing, or the log names the email")
	}
	// Not a byte of the data directory keeps Alice either (the store erases what it
	// deleted), nor the log her email, key or tokens.
	h.assertNoSecrets(t, append(tap.secrets(), key, readKey, alice.ID, alice.ObjectID, "ALICE-REPORT-TITLE"))
	// The email hash may be in the log (the deletion's own line names it, as the
	// page says), never in the store's files.
	files, err := os.ReadDir(h.dataDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(h.dataDir, f.Name()))
		if err == nil && bytes.Contains(b, []byte(alice.EmailHash)) {
			t.Errorf("%s still holds the email hash", f.Name())
		}
	}
}
