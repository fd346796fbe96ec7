package tools

import (
	"context"

	"github.com/flowstudio/mcp/cosmos"
	"github.com/flowstudio/mcp/tools/powerautomate"
)

// Key scopes.
const (
	ScopeFull = "full"
	ScopeRead = "read"
)

// Principal is the authenticated caller of an MCP request, set by the server's
// API-key check and read by the tools. It embeds the upstream caller, the part
// the delegated token source reads, so one context value serves both.
type Principal struct {
	powerautomate.Caller
	Tier  cosmos.Tier
	Scope string
}

// WithPrincipal stores the caller in ctx (for the token source as well).
func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	if p == nil {
		return ctx
	}
	return powerautomate.WithCaller(ctx, p)
}

// PrincipalFrom returns the caller, or nil.
func PrincipalFrom(ctx context.Context) *Principal {
	p, _ := powerautomate.CallerValue(ctx).(*Principal)
	return p
}

// canSee reports whether a key may list and call the tool: read-only keys see no
// write tools at all.
func (p *Principal) canSee(t *Tool) bool {
	return p.Scope != ScopeRead || t.Kind == ReadOnly
}
