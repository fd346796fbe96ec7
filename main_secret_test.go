package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// devKeyWith runs dev-key on dataDir with exactly these extra environment entries
// (no TOKEN_SECRET unless given), returning the key, stderr and the error.
func devKeyWith(t *testing.T, dataDir, email string, env ...string) (string, string, error) {
	t.Helper()
	cmd := exec.Command(binary, "dev-key", "--email", email, "--data-dir", dataDir)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TOKEN_SECRET=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	return strings.TrimSpace(string(out)), stderr.String(), err
}

// TestDevKeyNoticesTheServersSecret: a server with TOKEN_SECRET in its environment
// records its fingerprint in the data directory; dev-key run there without that
// secret (or with another) refuses and says what to do, instead of writing a secret
// of its own and printing a key the server rejects.
func TestDevKeyNoticesTheServersSecret(t *testing.T) {
	secret := strings.Repeat("k", 24) + "server-secret-1234"
	p := startServer(t, "TOKEN_SECRET="+secret)
	defer p.stop(t)

	_, stderr, err := devKeyWith(t, p.dataDir, "fp@contoso.com")
	if err == nil || !strings.Contains(stderr, "TOKEN_SECRET") || !strings.Contains(stderr, "same TOKEN_SECRET as the server") {
		t.Fatalf("dev-key without the server's secret: err %v, stderr %s", err, stderr)
	}
	if _, err := os.Stat(filepath.Join(p.dataDir, "token-secret")); !os.IsNotExist(err) {
		t.Fatalf("dev-key wrote a secret of its own beside the server's: %v", err)
	}
	_, stderr, err = devKeyWith(t, p.dataDir, "fp@contoso.com", "TOKEN_SECRET="+strings.Repeat("o", 40))
	if err == nil || !strings.Contains(stderr, "TOKEN_SECRET is not the one the server") {
		t.Fatalf("dev-key with another secret: err %v, stderr %s", err, stderr)
	}
	if strings.Contains(stderr, secret) || strings.Contains(stderr, strings.Repeat("o", 40)) {
		t.Fatal("a refusal echoed a secret")
	}

	key, stderr, err := devKeyWith(t, p.dataDir, "fp@contoso.com", "TOKEN_SECRET="+secret)
	if err != nil {
		t.Fatalf("dev-key with the server's secret: %v %s", err, stderr)
	}
	status, body, err := p.call(key, `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_live_environments","arguments":{}}}`)
	if err != nil || status != 200 || !strings.Contains(body, `"isError":false`) {
		t.Fatalf("the server refused the key made with its own secret: %d %v %s", status, err, body)
	}
}

// TestDevKeyNoticesASecretThatReplacedTheGenerated: a data directory first served
// without TOKEN_SECRET (so it holds a generated one), then by a server with one: dev-key
// without it must not use the stale generated secret.
func TestDevKeyNoticesASecretThatReplacedTheGenerated(t *testing.T) {
	dataDir := t.TempDir()
	if _, stderr, err := devKeyWith(t, dataDir, "early@contoso.com"); err != nil { // generates token-secret
		t.Fatalf("dev-key on a fresh directory: %v %s", err, stderr)
	}
	p := startProcess(t, []string{"serve"}, dataDir,
		[]string{"FLOWSTUDIO_ADDR=127.0.0.1:0", "FLOWSTUDIO_DATA_DIR=" + dataDir, "TOKEN_SECRET=" + strings.Repeat("n", 40)}, "mcp_url")
	defer p.stop(t)
	if !strings.Contains(p.logs(), "TOKEN_SECRET is not the one this data directory was last served with") {
		t.Fatalf("the server did not say its secret replaced the recorded one: %s", p.logs())
	}
	_, stderr, err := devKeyWith(t, dataDir, "late@contoso.com")
	if err == nil || !strings.Contains(stderr, "same TOKEN_SECRET as the server") {
		t.Fatalf("dev-key with the stale generated secret: err %v, stderr %s", err, stderr)
	}
}
