package cosmos

import (
	"errors"
	"testing"

	"github.com/flowstudio/mcp/server/telemetry"
)

func storeCount(container string, op telemetry.StoreOp, o telemetry.StoreOutcome) uint64 {
	var got uint64
	telemetry.StoreOps(func(c string, oo telemetry.StoreOp, ooo telemetry.StoreOutcome, n uint64) {
		if c == container && oo == op && ooo == o {
			got = n
		}
	})
	return got
}

// Every backend operation is counted by container, operation and outcome.
func TestStoreOperationsAreCounted(t *testing.T) {
	s, err := OpenEmbedded(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	type key struct {
		op telemetry.StoreOp
		o  telemetry.StoreOutcome
	}
	watch := []key{{telemetry.Read, telemetry.StoreNotFound}, {telemetry.Create, telemetry.StoreOK}, {telemetry.Create, telemetry.StoreConflict}}
	before := map[key]uint64{}
	for _, k := range watch {
		before[k] = storeCount("users", k.op, k.o)
	}
	if _, err := s.GetUser(t.Context(), "tenant.missing"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetUser: %v", err)
	}
	u := &User{TenantID: "tenant", ObjectID: "object", Tier: TierFree, KeyGeneration: 1, Consent: ConsentGranted}
	if _, err := s.CreateUser(t.Context(), u); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateUser(t.Context(), u); !errors.Is(err, ErrConflict) {
		t.Fatalf("second CreateUser: %v", err)
	}
	for _, k := range watch {
		if d := storeCount("users", k.op, k.o) - before[k]; d < 1 {
			t.Errorf("users %s %s went up by %d", k.op, k.o, d)
		}
	}
}
