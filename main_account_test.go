package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowstudio/mcp/cosmos"
	"github.com/flowstudio/mcp/server"
)

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
