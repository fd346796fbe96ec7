package identity

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
)

// App is the Entra ID app registration. Sign-in's code exchange and the
// refresh-token redemption both authenticate as it, with the very same
// parameters (ClientAuth), so a deployment without a client secret signs in
// and calls tools alike.
type App struct {
	Authority string // e.g. https://login.microsoftonline.com, no trailing slash
	Tenant    string // organizations or common: each user's own tenant; else one tenant id
	ClientID  string
	// Exactly one of the two authenticates the app: a client secret, or a
	// federated credential (Assertion returns a JWT, the managed identity's
	// token for api://AzureADTokenExchange; see FederatedAssertion).
	ClientSecret string
	Assertion    func(ctx context.Context) (string, error)
}

// JWTBearer is the client_assertion_type of a federated credential.
const JWTBearer = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// NewApp returns the app registration with its secret or, when secret is
// empty, with a federated credential: the token of the managed identity that
// managedIdentity returns (asked for only then).
func NewApp(authority, tenant, clientID, secret string, managedIdentity func() (azcore.TokenCredential, error)) (App, error) {
	app := App{Authority: strings.TrimRight(authority, "/"), Tenant: tenant, ClientID: clientID, ClientSecret: secret}
	if app.Tenant == "" {
		app.Tenant = "organizations"
	}
	if secret == "" {
		cred, err := managedIdentity()
		if err != nil {
			return App{}, fmt.Errorf("no client secret and no managed identity for a federated credential: %w", err)
		}
		app.Assertion = FederatedAssertion(cred, app.Authority)
	}
	return app, app.Check()
}

// Check reports a registration that cannot authenticate: no authority or
// client id, or not exactly one of a secret and a federated credential.
func (a App) Check() error {
	switch {
	case a.Authority == "":
		return errors.New("identity: Entra authority is required")
	case a.ClientID == "":
		return errors.New("identity: Entra client id is required")
	case a.ClientSecret != "" && a.Assertion != nil:
		return errors.New("identity: Entra app has both a client secret and a federated credential; give one")
	case a.ClientSecret == "" && a.Assertion == nil:
		return errors.New("identity: Entra app needs a client secret or a federated credential")
	}
	return nil
}

// ClientAuth returns the token-request parameters that authenticate the app:
// client_id with client_secret, or with a jwt-bearer client_assertion.
func (a App) ClientAuth(ctx context.Context) (url.Values, error) {
	v := url.Values{"client_id": {a.ClientID}}
	if a.ClientSecret != "" {
		v.Set("client_secret", a.ClientSecret)
		return v, nil
	}
	if a.Assertion == nil {
		return nil, a.Check()
	}
	assertion, err := a.Assertion(ctx)
	if err != nil {
		return nil, fmt.Errorf("entra client assertion: %w", err)
	}
	v.Set("client_assertion_type", JWTBearer)
	v.Set("client_assertion", assertion)
	return v, nil
}

// MultiTenant reports whether the tenant is one of Entra's templates
// (organizations, common, consumers): users come from many tenants.
func (a App) MultiTenant() bool {
	switch strings.ToLower(a.Tenant) {
	case "organizations", "common", "consumers":
		return true
	}
	return false
}
