package powerautomate

import (
	"context"
	"testing"
)

// principal stands for a richer caller type elsewhere (the MCP principal):
// it embeds Caller and rides in ctx as one value.
type principal struct {
	Caller
	Scope string
}

func TestCallerInContext(t *testing.T) {
	if CallerFrom(context.Background()) != nil || CallerValue(context.Background()) != nil {
		t.Fatal("an empty context has a caller")
	}
	c := &Caller{UserID: "t.o", TenantID: "t", ObjectID: "o", KeyGeneration: 3}
	if got := CallerFrom(WithCaller(t.Context(), c)); got != c {
		t.Fatalf("CallerFrom = %+v, want the stored caller", got)
	}
	p := &principal{Caller: Caller{UserID: "t.p", TenantID: "t", ObjectID: "p"}, Scope: "read"}
	ctx := WithCaller(t.Context(), p)
	if got := CallerFrom(ctx); got != &p.Caller {
		t.Fatalf("CallerFrom = %+v, want the embedded caller", got)
	}
	if got, _ := CallerValue(ctx).(*principal); got != p {
		t.Fatalf("CallerValue = %v, want the principal itself", CallerValue(ctx))
	}
	// The innermost caller wins: sync never inherits an MCP principal.
	if got := CallerFrom(WithCaller(ctx, c)); got != c {
		t.Fatalf("CallerFrom = %+v after a second WithCaller", got)
	}
}
