package powerautomate

import (
	"context"
	"errors"
	"net/url"
)

// ErrNoConsentLink: the consent service answered without a usable sign-in link.
var ErrNoConsentLink = errors.New("powerautomate: the consent service returned no sign-in link")

// Creating a connection and getting its sign-in link, on the Power Apps API with
// the default sign-in's audience (https://service.powerapps.com/), as the maker
// portal and Microsoft's own scripts do:
//
//	PUT  /providers/Microsoft.PowerApps/apis/{connector}/connections/{name}
//	     ?api-version=2016-11-01&$filter=environment eq '{env}'
//	     {"properties":{"environment":{"id":"/providers/Microsoft.PowerApps/environments/{env}","name":"{env}"},
//	                    "connectionParameters":{}}}         (or "connectionParametersSet":{"name":..,"values":{}})
//	     → 201 with the connection; statuses Error/Unauthenticated until someone signs in
//	POST …/connections/{name}/getConsentLink?api-version=2016-11-01&$filter=environment eq '{env}'
//	     {"redirectUrl":"<where the consent page returns to>"}
//	     → {"consentLink":"https://…consent.azure-apim.net/login?data=…"}
//
// The person opens the consent link and signs in to the connector's service; the
// connection turns Connected (GET connection shows it). The redirect's code is not
// needed for that (the portal's confirmConsentCode is bookkeeping), so it is not
// called.

// CreateConnectionRequest describes a new connection. ParameterSet names the
// connectionParameterSets entry of a multi-auth connector ("" for none).
type CreateConnectionRequest struct {
	Environment, Connector, Name string
	DisplayName                  string
	ParameterSet                 string
}

// CreateConnection creates (or, for an existing name, updates) a connection with no
// parameter values: for connectors that sign in with OAuth, or need nothing.
func (c *Client) CreateConnection(ctx context.Context, req CreateConnectionRequest) (*Connection, error) {
	if err := validateConnectionRef(req.Environment, req.Connector, req.Name); err != nil {
		return nil, err
	}
	if req.ParameterSet != "" {
		if err := ValidateConnectionName(req.ParameterSet); err != nil {
			return nil, &InvalidIDError{Field: "parameterSet", Value: req.ParameterSet, Reason: "want letters, digits, - and _"}
		}
	}
	props := map[string]any{
		"environment": map[string]string{"id": "/providers/Microsoft.PowerApps/environments/" + req.Environment, "name": req.Environment},
	}
	if req.ParameterSet != "" {
		props["connectionParametersSet"] = map[string]any{"name": req.ParameterSet, "values": map[string]any{}}
	} else {
		props["connectionParameters"] = map[string]any{}
	}
	if req.DisplayName != "" {
		props["displayName"] = req.DisplayName
	}
	r, err := callJSON[armResource[connectionProps]](ctx, c, "CreateConnection", "PUT",
		c.connectionURL(req.Environment, req.Connector, req.Name, ""), map[string]any{"properties": props})
	if err != nil {
		return nil, err
	}
	conn := toConnection(*r)
	return &conn, nil
}

// GetConsentLink returns the link at which a person signs a connection in; the
// consent page sends them back to redirectURL afterwards.
func (c *Client) GetConsentLink(ctx context.Context, env, connector, connection, redirectURL string) (string, error) {
	if err := validateConnectionRef(env, connector, connection); err != nil {
		return "", err
	}
	resp, err := c.apiCall(ctx, "GetConsentLink", "POST", c.connectionURL(env, connector, connection, "/getConsentLink"),
		map[string]string{"redirectUrl": redirectURL})
	if err != nil {
		return "", err
	}
	var out struct {
		ConsentLink string `json:"consentLink"`
	}
	if err := decode("GetConsentLink", resp, &out); err != nil {
		return "", err
	}
	if u, err := url.Parse(out.ConsentLink); err != nil || u.Scheme != "https" && u.Scheme != "http" || u.Host == "" || u.User != nil {
		return "", ErrNoConsentLink
	}
	return out.ConsentLink, nil
}

func (c *Client) connectionURL(env, connector, connection, action string) string {
	return c.cfg.PowerAppsURL + "/providers/Microsoft.PowerApps/apis/" + esc(connector) + "/connections/" + esc(connection) + action +
		"?" + encodeQuery(envFilter(apiVersionConnections, env))
}
