package server

import (
	"strings"
	"testing"

	"github.com/flowstudio/mcp/cosmos"
	"github.com/flowstudio/mcp/server/keyring"
)

// newTestStore is an embedded store in the test's temporary directory, closed
// when the test ends.
func newTestStore(t *testing.T) *cosmos.Store {
	t.Helper()
	store, err := cosmos.OpenEmbedded(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return store
}

// testKeys is a keyring from a fixed test secret.
func testKeys() *keyring.Keyring {
	keys, _ := keyring.New(strings.Repeat("k", 40))
	return keys
}
