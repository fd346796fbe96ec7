package identity_test

import (
	"errors"
	"testing"

	"github.com/flowstudio/mcp/server/telemetry"
	"github.com/flowstudio/mcp/tools/powerautomate"
)

func redemptions() map[telemetry.Redemption]uint64 {
	out := map[telemetry.Redemption]uint64{}
	telemetry.TokenRedemptions(func(r telemetry.Redemption, n uint64) { out[r] = n })
	return out
}

// A redemption is counted once by its outcome, and the token endpoint's answer
// under the entra family; a token served from memory is no redemption.
func TestRedemptionsAreCounted(t *testing.T) {
	h := newHarness(t)
	p := h.consent(t, "counted@contoso.com")
	ctx := powerautomate.WithCaller(t.Context(), p)
	before, ok200 := redemptions(), telemetry.UpstreamCount(telemetry.Entra, 200)
	for range 3 {
		if _, err := h.ts.Token(ctx, powerautomate.AudienceFlow); err != nil {
			t.Fatal(err)
		}
	}
	after := redemptions()
	if after[telemetry.Redeemed]-before[telemetry.Redeemed] != 1 || telemetry.UpstreamCount(telemetry.Entra, 200)-ok200 != 1 {
		t.Fatalf("redeemed +%d, entra 200 +%d: want one redemption for three calls",
			after[telemetry.Redeemed]-before[telemetry.Redeemed], telemetry.UpstreamCount(telemetry.Entra, 200)-ok200)
	}
	h.sim.Entra().RevokeRefreshTokens(p.TenantID, p.ObjectID)
	if _, err := h.ts.Token(ctx, powerautomate.AudiencePowerApps); !errors.Is(err, powerautomate.ErrReconnect) {
		t.Fatalf("err %v, want ErrReconnect", err)
	}
	if d := redemptions()[telemetry.Reconnect] - after[telemetry.Reconnect]; d != 1 {
		t.Fatalf("reconnect +%d, want 1", d)
	}
}
