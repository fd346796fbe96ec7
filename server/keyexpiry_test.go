package server

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/flowstudio/mcp/cosmos"
	"github.com/flowstudio/mcp/server/keyring"
	"github.com/flowstudio/mcp/tools"
)

// mcpRefusal posts a ping with key and returns the status and body.
func (h *webHarness) mcpRefusal(t testing.TB, key string) (int, string) {
	t.Helper()
	status, b := h.postMCP(t, key, "", `{"jsonrpc":"2.0","id":1,"method":"ping"}`)
	return status, string(b)
}

// postMCP posts a JSON-RPC body to /mcp with key (and MCP-Protocol-Version when
// version is set) and returns the status and body.
func (h *webHarness) postMCP(t testing.TB, key, version, body string) (int, []byte) {
	t.Helper()
	status, _, b := h.postJSONRPC(t, "/mcp", version, "X-Api-Key", key, body)
	return status, b
}

// postJSONRPC posts a JSON-RPC body to path with one credential header (none when
// value is empty) and MCP-Protocol-Version when version is set.
func (h *webHarness) postJSONRPC(t testing.TB, path, version, header, value, body string) (int, http.Header, []byte) {
	t.Helper()
	req, _ := http.NewRequest("POST", h.ts.URL+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if version != "" {
		req.Header.Set("MCP-Protocol-Version", version)
	}
	if value != "" {
		req.Header.Set(header, value)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

// TestExpiredKeySaysSoAndWhere: a key of ours past its 30 days gets a 401 that says
// it expired and names the dashboard; the same answer whether its user exists or
// not (no user is read for it), and a forged key never hears "expired".
func TestExpiredKeySaysSoAndWhere(t *testing.T) {
	t.Parallel()
	fe := newFakeEntra(t)
	h := newWebHarness(t, webOptions{entra: fe.config()})
	h.signIn(t, h.browser(t))
	u := h.user(t, fakeUserID)
	old := time.Unix(u.KeyIssuedAt, 0).Add(-keyring.KeyLifetime - time.Hour)
	expired, _ := h.keys.Issue(u.ID, u.KeyGeneration, old, tools.ScopeFull)
	status, body := h.mcpRefusal(t, expired)
	if status != 401 || !strings.Contains(body, "expired") || !strings.Contains(body, h.ts.URL+"/dashboard") {
		t.Fatalf("expired key: %d %s", status, body)
	}
	nobody, _ := h.keys.Issue("00000000-0000-0000-0000-000000000000.nobody", 1, old, tools.ScopeFull)
	if s2, b2 := h.mcpRefusal(t, nobody); s2 != status || b2 != body {
		t.Errorf("an expired key of no user answers differently (%d %s), which would confirm users exist", s2, b2)
	}
	other, _ := keyring.New(strings.Repeat("x", 40))
	forged, _ := other.Issue(u.ID, u.KeyGeneration, old, tools.ScopeFull)
	if s3, b3 := h.mcpRefusal(t, forged); s3 != 401 || strings.Contains(b3, "expired") {
		t.Errorf("a forged expired key: %d %s", s3, b3)
	}
}

// TestDashboardCountsDownKeyExpiry: days left always; a warning from 7 days before
// expiry; after it, the page says it expired.
func TestDashboardCountsDownKeyExpiry(t *testing.T) {
	t.Parallel()
	_, h, c := newEntraHarness(t)
	p := h.signIn(t, c)
	if !strings.Contains(p.body, `<span id="key-days-left">30 days left</span>`) || strings.Contains(p.body, "key-expiry-warning") {
		t.Fatalf("a fresh key: want 30 days left and no warning:\n%s", p.body)
	}
	age := func(d time.Duration) {
		t.Helper()
		if _, err := h.store.UpdateUser(context.Background(), fakeUserID, func(u *cosmos.User) error {
			u.KeyIssuedAt = time.Now().Add(-d).Unix()
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		age  time.Duration
		left string
		warn string
	}{
		{22*24*time.Hour + time.Hour, "8 days left", ""},
		{23*24*time.Hour + time.Hour, "7 days left", "expires in 7 days"},
		{29*24*time.Hour + time.Hour, "1 day left", "expires in 1 day"},
		{31 * 24 * time.Hour, "", "expired on"},
	} {
		age(tc.age)
		p := webFetch(t, c, "GET", h.ts.URL+"/dashboard", nil, nil)
		if tc.left != "" && !strings.Contains(p.body, `<span id="key-days-left">`+tc.left+`</span>`) {
			t.Errorf("age %s: want %q", tc.age, tc.left)
		}
		if got := strings.Contains(p.body, `id="key-expiry-warning"`); got != (tc.warn != "") || !strings.Contains(p.body, tc.warn) {
			t.Errorf("age %s: warning shown %v, want %q", tc.age, got, tc.warn)
		}
	}
}
