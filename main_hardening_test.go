package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowstudio/mcp/cosmos"
	"github.com/flowstudio/mcp/cosmos/cosmostest"
	"github.com/flowstudio/mcp/server"
)

// sealedTokenOf reads a user's sealed refresh token from the data directory's store
// (another handle beside the server's, closed again).
func sealedTokenOf(t *testing.T, dataDir, email string, idOf func(string) string) []byte {
	t.Helper()
	s, err := cosmos.OpenEmbedded(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	u, err := s.GetUser(context.Background(), idOf(email))
	if err != nil || len(u.SealedRefreshToken) == 0 {
		t.Fatalf("no sealed token for %s: %v", email, err)
	}
	return u.SealedRefreshToken
}

// dataDirHolds reports the files of dir in which a 16-byte window of the sealed token
// (raw, or as the base64 the JSON document stores) occurs.
func dataDirHolds(t *testing.T, dir string, sealed []byte) []string {
	t.Helper()
	return cosmostest.FilesHolding(t, dir, sealed, []byte(base64.StdEncoding.EncodeToString(sealed)))
}

// TestRevokeLeavesNoByteOfTheToken: after `flowstudio user revoke` beside a running
// server, no file of the data directory (store, WAL, shared memory, keys) holds any
// 16 bytes of the sealed refresh token the user had.
func TestRevokeLeavesNoByteOfTheToken(t *testing.T) {
	p := startServer(t)
	defer p.stop(t)
	const email = "erase@contoso.com"
	key := p.devKey(t, email)
	p.wantToolsWork(t, key) // the server reads (and rotates) it too
	idOf := func(email string) string { return userIDFor(t, p.dataDir, email) }
	sealed := sealedTokenOf(t, p.dataDir, email, idOf)
	if hits := dataDirHolds(t, p.dataDir, sealed); len(hits) == 0 {
		t.Fatal("the scan does not find the live sealed token: it could not find a deleted one either")
	}
	if out, err := p.flowstudio(t, "user", "revoke", "--email", email); err != nil {
		t.Fatalf("user revoke: %v\n%s", err, out)
	}
	if hits := dataDirHolds(t, p.dataDir, sealed); len(hits) > 0 {
		t.Fatalf("after revoke the sealed refresh token is still readable in %v", hits)
	}
}

// `flowstudio user delete --email` beside a running server: the key dies at once,
// and a scan of the store finds nothing of the user, even the usage the server
// counted just before (the deletion waits for that count to be written first).
func TestUserDeleteBesideARunningServer(t *testing.T) {
	p := startServer(t)
	key := p.devKey(t, "carol@contoso.com", "--tier", "team")
	other := p.devKey(t, "dave@contoso.com")
	p.wantToolsWork(t, key)
	p.wantToolsWork(t, other)
	report := `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"report_bug","arguments":{"title":"CAROL-REPORT","description":"broken"}}}`
	if st, body, err := p.call(key, report); err != nil || st != 200 || !strings.Contains(body, `"isError":false`) {
		t.Fatalf("report_bug: %d %v %s", st, err, body)
	}
	p.wantToolsWork(t, key) // counted last, written after the deletion started at the earliest

	settings, err := server.LoadSettings(func(k string) string {
		if k == "FLOWSTUDIO_DATA_DIR" {
			return p.dataDir
		}
		return ""
	})
	if err != nil {
		t.Fatal(err)
	}
	_, keys, err := loadKeyring(settings)
	if err != nil {
		t.Fatal(err)
	}
	hash := keys.HashEmail("carol@contoso.com")
	store, err := cosmos.OpenEmbedded(p.dataDir)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	users, err := store.FindUsersByEmailHash(t.Context(), hash)
	if err != nil || len(users) != 1 {
		t.Fatalf("carol: %v %v", users, err)
	}
	carol := users[0]

	out, err := p.flowstudio(t, "user", "delete", "--email", "carol@contoso.com")
	if err != nil || !strings.Contains(out, "deleted "+carol.ID) || !strings.Contains(out, "1 bug reports") || !strings.Contains(out, "90 days") {
		t.Fatalf("user delete: %v\n%s", err, out)
	}
	if st, _, _ := p.call(key, listEnvironments); st != 401 {
		t.Fatalf("the key after deletion: %d", st)
	}
	p.wantToolsWork(t, other)
	time.Sleep(1500 * time.Millisecond) // any count still in the server's memory would be written by now

	marks := []string{carol.ID, carol.ObjectID, hash, "CAROL-REPORT"}
	if err := store.Scan(t.Context(), func(container, id string, doc []byte) error {
		for _, m := range marks {
			if strings.Contains(id, m) || bytes.Contains(doc, []byte(m)) {
				t.Errorf("after deletion %s/%s still holds %.16q", container, id, m)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// No byte of the data directory keeps Carol: the deletion erased what it deleted.
	files, err := os.ReadDir(p.dataDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if !strings.HasPrefix(f.Name(), cosmos.EmbeddedFile) {
			continue
		}
		b, err := os.ReadFile(filepath.Join(p.dataDir, f.Name()))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range marks {
			if bytes.Contains(b, []byte(m)) {
				t.Errorf("%s still holds %.16q", f.Name(), m)
			}
		}
	}
	if out, err := p.flowstudio(t, "user", "delete", "--email", "carol@contoso.com"); err == nil || !strings.Contains(out, "no user with that email") {
		t.Fatalf("deleting again: %v %s", err, out)
	}
	if strings.Contains(p.logs(), "carol@contoso.com") {
		t.Fatal("the server log names the email")
	}
}

// userIDFor is the id dev-key gives a simulated email, as `user show` prints it.
func userIDFor(t *testing.T, dataDir, email string) string {
	t.Helper()
	cmd := (&process{dataDir: dataDir})
	out, err := cmd.flowstudio(t, "user", "show", "--email", email)
	if err != nil {
		t.Fatalf("user show: %v %s", err, out)
	}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "id" {
			return f[1]
		}
	}
	t.Fatalf("no id in:\n%s", out)
	return ""
}

// TestDeletedStoreFileIsNoticed: the embedded store file deleted under a running
// server makes /readyz answer 503 and is logged once.
func TestDeletedStoreFileIsNoticed(t *testing.T) {
	p := startServer(t)
	defer p.stop(t)
	key := p.devKey(t, "lost@contoso.com")
	p.wantToolsWork(t, key)
	readyz := strings.TrimSuffix(p.url, "/mcp") + "/readyz"
	status := func() int {
		resp, err := http.Get(readyz)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := status(); got != 200 {
		t.Fatalf("/readyz before: %d", got)
	}
	if err := os.Remove(filepath.Join(p.dataDir, cosmos.EmbeddedFile)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for status() != http.StatusServiceUnavailable {
		if time.Now().After(deadline) {
			t.Fatal("/readyz stays ready with the store file deleted")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code, body, err := p.call(key, listEnvironments); err != nil || code == 200 && !strings.Contains(body, "error") {
		t.Fatalf("a call still succeeded on a deleted store: %d %v %s", code, err, body)
	}
	status()
	const line = "the embedded store file was deleted or replaced"
	if n := strings.Count(p.logs(), line); n != 1 {
		t.Fatalf("logged %d times, want once:\n%s", n, p.logs())
	}
}
