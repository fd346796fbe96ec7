package powerautomate

import (
	"context"
	"net/url"
	"time"
)

// Connection is a connection (credential) to a connector in an environment.
type Connection struct {
	Name             string
	ID               string
	Connector        string // shared_office365
	APIID            string // /providers/Microsoft.PowerApps/apis/shared_office365
	DisplayName      string
	Environment      string
	Statuses         []ConnectionStatus
	CreatedBy        ConnectionUser
	CreatedTime      time.Time
	LastModifiedTime time.Time
	ExpirationTime   time.Time // zero when it does not expire
	AccountName      string
	TestLinks        []TestLink
}

// Connected reports whether any status says Connected.
func (c *Connection) Connected() bool {
	for _, s := range c.Statuses {
		if s.Status == "Connected" {
			return true
		}
	}
	return false
}

// ConnectionStatus is one entry of a connection's statuses.
type ConnectionStatus struct {
	Status string     `json:"status"` // Connected, Error, Expired
	Target string     `json:"target,omitempty"`
	Error  *ErrorInfo `json:"error,omitempty"`
}

// ConnectionUser is who created a connection.
type ConnectionUser struct {
	ID                string `json:"id"`
	DisplayName       string `json:"displayName"`
	Email             string `json:"email"`
	UserPrincipalName string `json:"userPrincipalName"`
	TenantID          string `json:"tenantId"`
}

// TestLink is a request that exercises a connection.
type TestLink struct {
	RequestURI string `json:"requestUri"`
	Method     string `json:"method"`
}

type connectionProps struct {
	APIID            string                `json:"apiId"`
	DisplayName      string                `json:"displayName"`
	Statuses         []ConnectionStatus    `json:"statuses"`
	CreatedBy        ConnectionUser        `json:"createdBy"`
	CreatedTime      time.Time             `json:"createdTime"`
	LastModifiedTime time.Time             `json:"lastModifiedTime"`
	ExpirationTime   time.Time             `json:"expirationTime"`
	Environment      struct{ Name string } `json:"environment"`
	AccountName      string                `json:"accountName"`
	TestLinks        []TestLink            `json:"testLinks"`
}

func toConnection(r armResource[connectionProps]) Connection {
	p := r.Properties
	return Connection{
		Name: r.Name, ID: r.ID, Connector: ConnectorNameFromAPIID(p.APIID), APIID: p.APIID, DisplayName: p.DisplayName,
		Environment: p.Environment.Name, Statuses: p.Statuses, CreatedBy: p.CreatedBy, CreatedTime: p.CreatedTime,
		LastModifiedTime: p.LastModifiedTime, ExpirationTime: p.ExpirationTime, AccountName: p.AccountName, TestLinks: p.TestLinks,
	}
}

// ListConnectionsOptions narrows ListConnections.
type ListConnectionsOptions struct {
	Connector string // only this connector's connections (shared_xxx), "" for all
	Top       int
	NextLink  string
}

// ConnectionPage is one page of connections.
type ConnectionPage struct {
	Connections []Connection
	NextLink    string
}

// ListConnections returns one page of the connections the user can see in
// an environment (Power Apps API).
func (c *Client) ListConnections(ctx context.Context, env string, opts ListConnectionsOptions) (*ConnectionPage, error) {
	if err := ValidateEnvironmentName(env); err != nil {
		return nil, err
	}
	path := "/providers/Microsoft.PowerApps/connections"
	if opts.Connector != "" {
		if err := ValidateConnectorName(opts.Connector); err != nil {
			return nil, err
		}
		path = "/providers/Microsoft.PowerApps/apis/" + esc(opts.Connector) + "/connections"
	}
	q := envFilter(apiVersionConnections, env)
	if err := setTop(q, opts.Top); err != nil {
		return nil, err
	}
	p, err := getPage[armResource[connectionProps]](ctx, c, "ListConnections", c.cfg.PowerAppsURL+path+"?"+encodeQuery(q), opts.NextLink)
	if err != nil {
		return nil, err
	}
	out := &ConnectionPage{NextLink: p.next()}
	for _, r := range p.Value {
		out.Connections = append(out.Connections, toConnection(r))
	}
	return out, nil
}

// GetConnection returns one connection with its statuses.
func (c *Client) GetConnection(ctx context.Context, env, connector, connection string) (*Connection, error) {
	if err := validateConnectionRef(env, connector, connection); err != nil {
		return nil, err
	}
	u := c.cfg.PowerAppsURL + "/providers/Microsoft.PowerApps/apis/" + esc(connector) + "/connections/" + esc(connection) +
		"?" + encodeQuery(envFilter(apiVersionConnections, env))
	r, err := callJSON[armResource[connectionProps]](ctx, c, "GetConnection", "GET", u, nil)
	if err != nil {
		return nil, err
	}
	conn := toConnection(*r)
	return &conn, nil
}

func validateConnectionRef(env, connector, connection string) error {
	if err := ValidateEnvironmentName(env); err != nil {
		return err
	}
	if err := ValidateConnectorName(connector); err != nil {
		return err
	}
	return ValidateConnectionName(connection)
}

// envFilter is the api-version plus $filter=environment eq '{env}' that the
// Power Apps API wants on every call.
func envFilter(apiVersion, env string) url.Values {
	return url.Values{"api-version": {apiVersion}, "$filter": {"environment eq '" + env + "'"}}
}
