package powerautomate

import (
	"context"
	"slices"
	"strings"
	"time"
)

// App is a Power Apps app's metadata as the Power Apps API lists it. It holds
// nothing of the app itself: the API's appUris (signed links to the .msapp
// document, which is the app's definition and code) are never decoded.
type App struct {
	Name              string // the app id, a GUID
	DisplayName       string
	Environment       string
	AppType           string // e.g. ClassicCanvasApp; "" when the API does not say
	OwnerObjectID     string
	OwnerName         string
	CreatedTime       time.Time
	LastModifiedTime  time.Time
	LastPublishTime   time.Time
	SharedUsersCount  int
	SharedGroupsCount int
	// Connectors are the connectors the app's connection references name
	// (shared_office365, ...), sorted, without duplicates.
	Connectors []string
}

// appProps is the part of an app's properties that is decoded: metadata only.
type appProps struct {
	DisplayName       string    `json:"displayName"`
	CreatedTime       time.Time `json:"createdTime"`
	LastModifiedTime  time.Time `json:"lastModifiedTime"`
	LastPublishTime   time.Time `json:"lastPublishTime"`
	SharedUsersCount  int       `json:"sharedUsersCount"`
	SharedGroupsCount int       `json:"sharedGroupsCount"`
	Owner             struct {
		ID          string `json:"id"`
		DisplayName string `json:"displayName"`
	} `json:"owner"`
	Environment          struct{ Name string } `json:"environment"`
	ConnectionReferences map[string]struct {
		ID string `json:"id"`
	} `json:"connectionReferences"`
}

type appResource struct {
	armResource[appProps]
	AppType string `json:"appType"`
}

func toApp(r appResource) App {
	p := r.Properties
	a := App{Name: r.Name, DisplayName: p.DisplayName, Environment: p.Environment.Name, AppType: r.AppType,
		OwnerObjectID: p.Owner.ID, OwnerName: p.Owner.DisplayName, CreatedTime: p.CreatedTime,
		LastModifiedTime: p.LastModifiedTime, LastPublishTime: p.LastPublishTime,
		SharedUsersCount: p.SharedUsersCount, SharedGroupsCount: p.SharedGroupsCount}
	seen := map[string]bool{}
	for _, ref := range p.ConnectionReferences {
		// Apps write the id in lower case (/providers/microsoft.powerapps/apis/shared_x).
		c := ref.ID[strings.LastIndexByte(ref.ID, '/')+1:]
		if c != "" && !seen[c] && ValidateConnectorName(c) == nil {
			seen[c] = true
			a.Connectors = append(a.Connectors, c)
		}
	}
	slices.Sort(a.Connectors)
	return a
}

// ListAppsOptions pages ListApps.
type ListAppsOptions struct {
	Top      int
	NextLink string
}

// AppPage is one page of apps.
type AppPage struct {
	Apps     []App
	NextLink string
}

// ListApps returns one page of the apps the user can see in an environment
// (Power Apps API, GET /providers/Microsoft.PowerApps/apps with
// $filter=environment eq '{env}', api-version 2016-11-01).
func (c *Client) ListApps(ctx context.Context, env string, opts ListAppsOptions) (*AppPage, error) {
	if err := ValidateEnvironmentName(env); err != nil {
		return nil, err
	}
	q := envFilter(apiVersionApps, env)
	if err := setTop(q, opts.Top); err != nil {
		return nil, err
	}
	p, err := getPage[appResource](ctx, c, "ListApps", c.cfg.PowerAppsURL+"/providers/Microsoft.PowerApps/apps?"+encodeQuery(q), opts.NextLink)
	if err != nil {
		return nil, err
	}
	out := &AppPage{NextLink: p.next(), Apps: make([]App, 0, len(p.Value))}
	for _, r := range p.Value {
		out.Apps = append(out.Apps, toApp(r))
	}
	return out, nil
}
