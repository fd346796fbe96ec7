package powerautomate

import (
	"context"
	"net/url"
	"time"
)

// Environment is a Power Platform environment as the Flow API lists it.
type Environment struct {
	Name         string // GUID or Default-<tenant GUID>
	DisplayName  string
	Location     string // geography, e.g. "europe"
	SKU          string // Default, Production, Sandbox, ...
	Type         string // environmentType
	IsDefault    bool
	CreatedTime  time.Time
	FlowEndpoint string // the regional Flow API host advertised by the environment
}

type environmentProps struct {
	DisplayName      string            `json:"displayName"`
	CreatedTime      time.Time         `json:"createdTime"`
	EnvironmentSKU   string            `json:"environmentSku"`
	EnvironmentType  string            `json:"environmentType"`
	IsDefault        bool              `json:"isDefault"`
	RuntimeEndpoints map[string]string `json:"runtimeEndpoints"`
}

func toEnvironment(r armResource[environmentProps]) Environment {
	p := r.Properties
	return Environment{
		Name: r.Name, DisplayName: p.DisplayName, Location: r.Location, SKU: p.EnvironmentSKU,
		Type: p.EnvironmentType, IsDefault: p.IsDefault, CreatedTime: p.CreatedTime,
		FlowEndpoint: p.RuntimeEndpoints["microsoft.Flow"],
	}
}

// maxListPages bounds how many pages a method that returns a whole list
// follows, so that a server handing out nextLinks forever cannot pin a call.
const maxListPages = 20

// ListEnvironments returns every environment the user can use.
func (c *Client) ListEnvironments(ctx context.Context) ([]Environment, error) {
	first := c.cfg.FlowURL + "/providers/Microsoft.ProcessSimple/environments?" + encodeQuery(url.Values{"api-version": {apiVersionFlow}})
	return getAll(ctx, c, "ListEnvironments", first, toEnvironment)
}

// GetEnvironment returns one environment; "~default" names the tenant's default.
func (c *Client) GetEnvironment(ctx context.Context, env string) (*Environment, error) {
	if err := ValidateEnvironmentName(env); err != nil {
		return nil, err
	}
	u := c.cfg.FlowURL + "/providers/Microsoft.ProcessSimple/environments/" + esc(env) + "?" + encodeQuery(url.Values{"api-version": {apiVersionFlow}})
	r, err := callJSON[armResource[environmentProps]](ctx, c, "GetEnvironment", "GET", u, nil)
	if err != nil {
		return nil, err
	}
	e := toEnvironment(*r)
	return &e, nil
}
