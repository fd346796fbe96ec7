package identity

import (
	"net/url"
	"slices"
	"strings"

	"github.com/flowstudio/mcp/cosmos"
	"github.com/flowstudio/mcp/tools/powerautomate"
)

// Consent beyond the default sign-in is asked for incrementally: a user grants
// it from the dashboard (/login?grant=<name>) the first time a tool needs it,
// and the user record names what was granted (cosmos.User.ConsentedResources).
// The token source redeems a token for an audience outside ConsentScopes only
// when the user holds the grant that covers it; an audience no grant covers is
// never redeemed. So the default sign-in is never widened silently.

// GrantConnectors is the connector runtime (token audience
// https://apihub.azure.com): test_live_connection's live check and dynamic
// dropdowns that go through the runtime.
const GrantConnectors = "connectors"

// GrantDataverse is the environments' Dataverse organisations (token audience
// each org URL, e.g. https://contoso.crm4.dynamics.com): add_live_flow_to_solution.
// Every org is the one Dynamics CRM resource app, so consenting once (through
// the Global Discovery URL's user_impersonation) covers all of them.
const GrantDataverse = "dataverse"

// Grant is a named consent beyond the default sign-in.
type Grant struct {
	Name string
	// Scopes are the resource scopes its sign-in asks for (one resource).
	Scopes []string
	// host is the token audience's host it opens; sovereign clouds' hosts
	// under the same first label ("apihub.") too.
	host string
	// match, when set, replaces host: it reports whether an audience host needs the grant.
	match func(host string) bool
}

var grants = []Grant{
	{Name: GrantConnectors, Scopes: []string{"https://apihub.azure.com/.default"}, host: "apihub.azure.com"},
	{Name: GrantDataverse, Scopes: []string{"https://globaldisco.crm.dynamics.com/user_impersonation"}, match: powerautomate.IsDataverseHost},
}

// GrantNames lists the grants' names, for messages.
func GrantNames() []string {
	names := make([]string, len(grants))
	for i, g := range grants {
		names[i] = g.Name
	}
	return names
}

// LookupGrant returns the grant of that exact name. Names come from a fixed
// list: a request can only pick one, never name scopes.
func LookupGrant(name string) (Grant, bool) {
	for _, g := range grants {
		if g.Name == name {
			return g, true
		}
	}
	return Grant{}, false
}

// grantSignInOIDC are the OpenID scopes a grant's sign-in adds: openid for the
// id_token that proves who consented, profile because Entra puts oid into the
// id_token only with it, offline_access for the refresh token. The default
// sign-in already holds all three, so they widen nothing.
var grantSignInOIDC = []string{"openid", "profile", "offline_access"}

// SignInScopes are the scopes the grant's sign-in asks for: exactly its
// resource scopes, plus openid, profile and offline_access.
func (g Grant) SignInScopes() []string {
	return append(slices.Clone(grantSignInOIDC), g.Scopes...)
}

// covers reports whether a token audience needs this grant.
func (g Grant) covers(audience string) bool {
	h := audienceHost(audience)
	if g.match != nil {
		if i := strings.LastIndexByte(h, ':'); i >= 0 {
			return false // org audiences carry no port
		}
		return g.match(h)
	}
	first, _, _ := strings.Cut(g.host, ".")
	return h == g.host || strings.HasPrefix(h, first+".")
}

// GrantedIn reports whether the scope value of a token response (space
// separated) shows the grant's resource: Entra lists what it actually granted
// for the resource of the access token, which is the grant's here.
func (g Grant) GrantedIn(scope string) bool {
	for _, sc := range strings.Fields(scope) {
		if i := strings.LastIndex(sc, "/"); i > 0 && g.covers(sc[:i]) {
			return true
		}
	}
	return false
}

// audienceHost is the lower-case host of an audience URL (or the value itself).
func audienceHost(audience string) string {
	if u, err := url.Parse(audience); err == nil && u.Host != "" {
		return strings.ToLower(u.Host)
	}
	return strings.ToLower(strings.TrimRight(audience, "/"))
}

// DefaultAudience reports whether the default sign-in (ConsentScopes) covers
// an audience: the Flow service and Power Apps, in any cloud.
func DefaultAudience(audience string) bool {
	h := audienceHost(audience)
	return strings.Contains(h, "service.flow.") || strings.HasPrefix(h, "service.powerautomate.") ||
		strings.Contains(h, "service.powerapps.") || strings.HasPrefix(h, "service.apps.")
}

// GrantFor returns the grant a token audience needs: "" and false for one the
// default sign-in covers; "" and true for one no grant covers (it is never
// redeemed); the grant's name and true otherwise.
func GrantFor(audience string) (name string, gated bool) {
	if DefaultAudience(audience) {
		return "", false
	}
	for _, g := range grants {
		if g.covers(audience) {
			return g.Name, true
		}
	}
	return "", true
}

// HasGrant reports whether the user holds the named grant.
func HasGrant(u *cosmos.User, name string) bool {
	return u != nil && name != "" && slices.Contains(u.ConsentedResources, name)
}

// AddGrant records a grant on a user record (an UpdateUser step).
func AddGrant(u *cosmos.User, name string) {
	if !slices.Contains(u.ConsentedResources, name) {
		u.ConsentedResources = append(slices.Clone(u.ConsentedResources), name)
	}
}

// dropGrant removes a grant from a user record; it reports whether it held it.
func dropGrant(u *cosmos.User, name string) bool {
	i := slices.Index(u.ConsentedResources, name)
	if i < 0 {
		return false
	}
	u.ConsentedResources = slices.Delete(slices.Clone(u.ConsentedResources), i, i+1)
	if len(u.ConsentedResources) == 0 {
		u.ConsentedResources = nil
	}
	return true
}
