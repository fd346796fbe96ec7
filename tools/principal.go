package tools

import "context"

// Tier is a subscription plan.
type Tier string

const (
	TierFree Tier = "free"
	TierPro  Tier = "pro"
	TierTeam Tier = "team"
)

// ParseTier accepts free, pro or team.
func ParseTier(s string) (Tier, bool) {
	switch t := Tier(s); t {
	case TierFree, TierPro, TierTeam:
		return t, true
	}
	return "", false
}

func (t Tier) rank() int {
	switch t {
	case TierPro:
		return 1
	case TierTeam:
		return 2
	}
	return 0
}

// AtLeast reports whether t includes min.
func (t Tier) AtLeast(min Tier) bool { return t.rank() >= min.rank() }

// Key scopes.
const (
	ScopeFull = "full"
	ScopeRead = "read"
)

// Principal is the authenticated caller of a request, set by the server's API-key
// check and read by tools and the upstream token source.
type Principal struct {
	UserID    string
	TenantID  string
	ObjectID  string
	EmailHash string
	// KeyGeneration is the user's key generation when the request was
	// authenticated; the delegated token cache keys on it, so nothing cached
	// survives a revoke or a re-issue.
	KeyGeneration int64
	Tier          Tier
	Scope         string
}

type principalKey struct{}

// WithPrincipal stores the caller in ctx.
func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the caller, or nil.
func PrincipalFrom(ctx context.Context) *Principal {
	p, _ := ctx.Value(principalKey{}).(*Principal)
	return p
}

// canSee reports whether a key may list and call the tool: read-only keys see no
// write tools at all.
func (p *Principal) canSee(t *Tool) bool {
	return p.Scope != ScopeRead || t.Kind == ReadOnly
}
