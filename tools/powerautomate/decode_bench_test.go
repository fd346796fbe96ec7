package powerautomate

import (
	"os"
	"testing"
)

// BenchmarkDecodeFlow is GetFlow's decoding of one flow (the simulator's answer for a
// seeded flow, definition included): the largest part of get_live_flow's own CPU.
func BenchmarkDecodeFlow(b *testing.B) {
	body, err := os.ReadFile("testdata/flow.json")
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		var r armResource[flowProps]
		if err := decode("GetFlow", &response{status: 200, body: body}, &r); err != nil {
			b.Fatal(err)
		}
		_ = toFlow(r)
	}
}
