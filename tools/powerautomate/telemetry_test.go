package powerautomate

import (
	"context"
	"testing"

	"github.com/flowstudio/mcp/server/telemetry"
)

// Every attempt's answer is counted under the family of the host it went to; a
// request that got no answer counts as "none".
func TestUpstreamAnswersAreCountedByFamily(t *testing.T) {
	mux, _ := environmentsAfterAFailure("", 503, `{"error":{"code":"ServiceUnavailable","message":"busy"}}`)
	srv := newUpstream(t, mux)
	c := newTestClient(t, testConfig(srv.URL))
	b503, b200, bNone := telemetry.UpstreamCount(telemetry.Flow, 503), telemetry.UpstreamCount(telemetry.Flow, 200), telemetry.UpstreamCount(telemetry.Flow, telemetry.NoResponse)
	if _, err := c.ListEnvironments(context.Background()); err != nil {
		t.Fatal(err)
	}
	if d503, d200 := telemetry.UpstreamCount(telemetry.Flow, 503)-b503, telemetry.UpstreamCount(telemetry.Flow, 200)-b200; d503 != 1 || d200 != 1 {
		t.Fatalf("flow 503 +%d, 200 +%d; want +1 each", d503, d200)
	}
	srv.Close()
	if _, err := c.ListEnvironments(context.Background()); err == nil {
		t.Fatal("a closed upstream answered")
	}
	if telemetry.UpstreamCount(telemetry.Flow, telemetry.NoResponse) <= bNone {
		t.Fatal("a request without an answer was not counted as none")
	}
}
