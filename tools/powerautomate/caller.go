package powerautomate

import (
	"context"
	"errors"
)

// Caller is the user an upstream call is made for: the TokenSource reads it
// from ctx and answers with that user's delegated token. The MCP server's
// principal embeds it; `flowstudio sync` builds one per user it syncs.
type Caller struct {
	UserID    string // <tenant id>.<object id>
	TenantID  string
	ObjectID  string
	EmailHash string // for log lines; never a plain email
	// KeyGeneration is the user's key generation when the caller was
	// authenticated; delegated token caches key on it, so nothing cached
	// survives a revoke or a re-issue.
	KeyGeneration int64
}

// ErrReconnect is returned by a TokenSource when the user must sign in again
// (no refresh token, invalid_grant, revoked consent, no caller in ctx).
var ErrReconnect = errors.New("the user must reconnect")

// ErrConsentRequired is returned (wrapped) by a TokenSource when the user has
// not granted an audience beyond the default sign-in: the connector runtime
// (https://apihub.azure.com) or the Power Platform API
// (https://api.powerplatform.com). Nothing ever asks for a wider consent on
// its own; the tools say where to grant it.
var ErrConsentRequired = errors.New("an extra consent is required for this audience")

// callerCarrier is a *Caller or anything that embeds Caller (the promoted
// method satisfies it), so a richer principal rides in ctx as one value.
type callerCarrier interface{ upstreamCaller() *Caller }

func (c *Caller) upstreamCaller() *Caller { return c }

type callerKey struct{}

// WithCaller returns ctx carrying c: a *Caller, or a pointer to a type that
// embeds Caller (ValueOf gives that pointer back).
func WithCaller(ctx context.Context, c callerCarrier) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// CallerFrom returns the caller in ctx, or nil.
func CallerFrom(ctx context.Context) *Caller {
	if c, ok := ctx.Value(callerKey{}).(callerCarrier); ok {
		return c.upstreamCaller()
	}
	return nil
}

// CallerValue returns what WithCaller stored, as stored (nil when nothing
// was), so that a type embedding Caller finds itself without a second
// context value.
func CallerValue(ctx context.Context) any { return ctx.Value(callerKey{}) }
