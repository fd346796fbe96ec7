package identity

import (
	"context"
	"net/url"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// FederatedAudience is the audience of the token a managed identity presents
// as the app's client assertion, per cloud (from the authority's host).
func FederatedAudience(authority string) string {
	host := authority
	if u, err := url.Parse(authority); err == nil && u.Host != "" {
		host = u.Host
	}
	host = strings.ToLower(host)
	switch {
	case strings.HasSuffix(host, ".microsoftonline.us"):
		return "api://AzureADTokenExchangeUSGov"
	case strings.HasSuffix(host, ".chinacloudapi.cn"), strings.HasSuffix(host, ".microsoftonline.cn"):
		return "api://AzureADTokenExchangeChina"
	}
	return "api://AzureADTokenExchange"
}

// FederatedAssertion returns a Config.ClientAssertion that presents cred's
// token (the app's managed identity, trusted by the app registration's
// federated credential) instead of a client secret. azidentity caches the
// token, so this is cheap per redemption.
func FederatedAssertion(cred azcore.TokenCredential, authority string) func(ctx context.Context) (string, error) {
	scope := FederatedAudience(authority) + "/.default"
	return func(ctx context.Context) (string, error) {
		tok, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{scope}})
		return tok.Token, err
	}
}
