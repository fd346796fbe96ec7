package teamsync

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flowstudio/mcp/cosmos"
	"github.com/flowstudio/mcp/tools/powerautomate/sim"
)

// TestCacheKeepsNoPeoplesEmailsOrNames: the landing page promises that the email is
// kept only as a keyed hash and the name only in the browser's cookie. After a sync
// of Team users in both simulated tenants, no byte of any file of the store's data
// directory holds a simulated person's email address or name (connection display
// names and owners, makers), in any letter case.
func TestCacheKeepsNoPeoplesEmailsOrNames(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.user(t, "alice@contoso.com", cosmos.TierTeam, cosmos.ConsentGranted)
	h.user(t, "alice@fabrikam.com", cosmos.TierTeam, cosmos.ConsentGranted)
	h.user(t, "gary@fabrikam.com", cosmos.TierTeam, cosmos.ConsentGranted)
	if rep, err := h.syncer(t, Options{}).Run(t.Context(), ""); err != nil || rep.Synced != 3 {
		t.Fatalf("sync: %+v %v", rep, err)
	}
	if n := len(h.items(t, cosmos.UserID(h.sim.UserFor("alice@contoso.com")))); n < 20 {
		t.Fatalf("only %d cache items: the scan would prove nothing", n)
	}

	// The people the simulator knows, and the names it gives them (an owner's
	// display name is the email's local part).
	var needles []string
	for _, u := range sim.SignInPeople {
		local, _, _ := strings.Cut(u.Email, "@")
		needles = append(needles, u.Email, `"`+local+`"`, u.Name)
	}
	if err := filepath.WalkDir(h.dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		data = bytes.ToLower(data)
		for _, n := range needles {
			if bytes.Contains(data, []byte(strings.ToLower(n))) {
				t.Errorf("%s holds %q", filepath.Base(path), n)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
