package powerautomate

import (
	"context"
	"errors"
	"fmt"
	"net/url"

	"strings"
)

// Adding a flow to a solution goes through the environment's Dataverse Web API,
// as Microsoft documents it (Dataverse Web API reference: AddSolutionComponent
// action; solution entity; "Work with cloud flows using code": a cloud flow is a
// workflow row, solution component type 29):
//
//	GET  {BAP}/providers/Microsoft.BusinessAppPlatform/environments/{env}?api-version=2020-10-01
//	     → properties.linkedEnvironmentMetadata.{instanceUrl, instanceApiUrl} (absent: no Dataverse)
//	GET  {org}/api/data/v9.2/solutions({id})?$select=solutionid,uniquename,friendlyname,ismanaged
//	GET  {org}/api/data/v9.2/solutions?$filter=uniquename eq '{name}'&$select=…
//	POST {org}/api/data/v9.2/AddSolutionComponent
//	     {"ComponentId":"<workflowEntityId>","ComponentType":29,"SolutionUniqueName":"<name>","AddRequiredComponents":false}
//	     → AddSolutionComponentResponse {"id":"<solutioncomponent id>"}
//
// The flow's workflow row id is the Flow API's properties.workflowEntityId. The
// token audience is the organisation URL (instanceUrl), which the default sign-in
// does not cover: the caller's TokenSource redeems it only under a grant. Errors
// come back as OData {"error":{"code":"0x…","message":"…"}}, read like the others.

// ComponentTypeWorkflow is the solution component type of a workflow row (cloud flows).
const ComponentTypeWorkflow = 29

const (
	apiVersionBAP     = "2020-10-01"
	dataverseAPIPath  = "/api/data/v9.2"
	maxUniqueNameLen  = 65 // solution.uniquename's maximum length
	maxOrgHostLabel   = 63
	dataverseSelect   = "solutionid,uniquename,friendlyname,ismanaged"
	dataverseOrgLabel = "organization URL"
)

var (
	// ErrNoDataverse: the environment has no Dataverse database.
	ErrNoDataverse = errors.New("powerautomate: the environment has no Dataverse database")
	// ErrSolutionNotFound: no solution has that unique name.
	ErrSolutionNotFound = errors.New("powerautomate: no solution with that unique name")
)

// DataverseOrg is an environment's Dataverse organisation: its Web API base and
// the token audience for it.
type DataverseOrg struct {
	APIURL   string // e.g. https://contoso.api.crm4.dynamics.com (no trailing slash)
	Audience string // e.g. https://contoso.crm4.dynamics.com
}

// Solution is a Dataverse solution row.
type Solution struct {
	ID           string `json:"solutionid"`
	UniqueName   string `json:"uniquename"`
	FriendlyName string `json:"friendlyname"`
	IsManaged    bool   `json:"ismanaged"`
}

// dataverseSuffixes are the Dataverse organisation host suffixes per cloud
// (public and GCC under crm*.dynamics.com, GCC High, DoD, China), after the
// org label and an optional "api." label.
var dataverseSuffixes = []string{".dynamics.com", ".microsoftdynamics.us", ".appsplatform.us", ".dynamics.cn"}

// IsDataverseHost reports whether host (lower-case, no port) is a Dataverse
// organisation host: {org}[.api].crm[N].dynamics.com, {org}[.api].crm.microsoftdynamics.us,
// {org}[.api].crm.appsplatform.us or {org}[.api].crm.dynamics.cn.
func IsDataverseHost(host string) bool {
	for _, suf := range dataverseSuffixes {
		rest, ok := strings.CutSuffix(host, suf)
		if !ok {
			continue
		}
		i := strings.LastIndexByte(rest, '.')
		if i <= 0 {
			return false
		}
		crm := rest[i+1:]
		digits, ok := strings.CutPrefix(crm, "crm")
		if !ok || (suf != ".dynamics.com" && digits != "") {
			return false
		}
		for j := 0; j < len(digits); j++ {
			if digits[j] < '0' || digits[j] > '9' {
				return false
			}
		}
		org := strings.TrimSuffix(rest[:i], ".api")
		if org == "" || len(org) > maxOrgHostLabel || org[0] == '-' {
			return false
		}
		for j := 0; j < len(org); j++ {
			if c := org[j]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
		return true
	}
	return false
}

// ValidateSolutionID accepts a solution's GUID.
func ValidateSolutionID(id string) error {
	return checkName("solutionId", id, 36, isGUID, "want the solution GUID")
}

// ValidateSolutionUniqueName accepts a unique name: letters, digits and '_'.
func ValidateSolutionUniqueName(name string) error {
	if err := basicCheck("solutionUniqueName", name, maxUniqueNameLen); err != nil {
		return err
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; !isAlnum(c) && c != '_' {
			return invalid("solutionUniqueName", name, "want letters, digits and '_'")
		}
	}
	return nil
}

// orgURL checks an organisation URL from upstream: https on a Dataverse host, or
// under Config.DataverseURL (the simulator); no user, query or fragment.
func (c *Client) orgURL(raw string, apiBase bool) (string, error) {
	bad := fmt.Errorf("%w: %s not on a Dataverse host", ErrLinkNotAllowed, dataverseOrgLabel)
	u, err := url.Parse(strings.TrimRight(raw, "/"))
	if err != nil || u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Host == "" {
		return "", bad
	}
	if apiBase && c.cfg.DataverseURL != "" {
		if sim, err := url.Parse(c.cfg.DataverseURL); err == nil && strings.EqualFold(u.Scheme, sim.Scheme) &&
			normalHost(u) == normalHost(sim) && pathUnder(u.Path, sim.Path) && len(u.Path) > len(sim.Path) &&
			!strings.Contains(u.Path, "..") && !strings.Contains(u.Path[len(sim.Path)+1:], "/") {
			return u.Scheme + "://" + u.Host + u.Path, nil
		}
	}
	if u.Scheme != "https" || u.Path != "" || u.Port() != "" || !IsDataverseHost(strings.ToLower(u.Hostname())) {
		return "", bad
	}
	return "https://" + strings.ToLower(u.Host), nil
}

// GetDataverseOrg returns the Dataverse organisation of an environment, or
// ErrNoDataverse when it has none.
func (c *Client) GetDataverseOrg(ctx context.Context, env string) (*DataverseOrg, error) {
	if err := ValidateEnvironmentName(env); err != nil {
		return nil, err
	}
	u := c.cfg.BAPURL + "/providers/Microsoft.BusinessAppPlatform/environments/" + esc(env) + "?" +
		encodeQuery(url.Values{"api-version": {apiVersionBAP}})
	resp, err := c.apiCall(ctx, "GetDataverseOrg", "GET", u, nil)
	if err != nil {
		return nil, err
	}
	var r struct {
		Properties struct {
			Linked *struct {
				InstanceURL    string `json:"instanceUrl"`
				InstanceAPIURL string `json:"instanceApiUrl"`
			} `json:"linkedEnvironmentMetadata"`
		} `json:"properties"`
	}
	if err := decode("GetDataverseOrg", resp, &r); err != nil {
		return nil, err
	}
	l := r.Properties.Linked
	if l == nil || (l.InstanceURL == "" && l.InstanceAPIURL == "") {
		return nil, ErrNoDataverse
	}
	if l.InstanceAPIURL == "" {
		l.InstanceAPIURL = l.InstanceURL
	}
	if l.InstanceURL == "" {
		l.InstanceURL = l.InstanceAPIURL
	}
	api, err := c.orgURL(l.InstanceAPIURL, true)
	if err != nil {
		return nil, err
	}
	aud, err := c.orgURL(l.InstanceURL, false)
	if err != nil {
		return nil, err
	}
	return &DataverseOrg{APIURL: api, Audience: aud}, nil
}

// GetSolution finds a solution by id (when id is set) or by unique name.
func (c *Client) GetSolution(ctx context.Context, org *DataverseOrg, id, uniqueName string) (*Solution, error) {
	sel := url.Values{"$select": {dataverseSelect}}
	var u string
	if id != "" {
		if err := ValidateSolutionID(id); err != nil {
			return nil, err
		}
		u = org.APIURL + dataverseAPIPath + "/solutions(" + strings.ToLower(id) + ")?" + encodeQuery(sel)
	} else {
		if err := ValidateSolutionUniqueName(uniqueName); err != nil {
			return nil, err
		}
		sel.Set("$filter", "uniquename eq '"+uniqueName+"'")
		u = org.APIURL + dataverseAPIPath + "/solutions?" + encodeQuery(sel)
	}
	resp, err := c.dataverseCall(ctx, "GetSolution", "GET", org, u, nil)
	if err != nil {
		return nil, err
	}
	if id != "" {
		var s Solution
		if err := decode("GetSolution", resp, &s); err != nil {
			return nil, err
		}
		return &s, nil
	}
	var list struct {
		Value []Solution `json:"value"`
	}
	if err := decode("GetSolution", resp, &list); err != nil {
		return nil, err
	}
	for i := range list.Value {
		if strings.EqualFold(list.Value[i].UniqueName, uniqueName) {
			return &list.Value[i], nil
		}
	}
	return nil, ErrSolutionNotFound
}

// AddSolutionComponent adds a component (by id and type) to an unmanaged
// solution, without its required components; it returns the solutioncomponent id.
func (c *Client) AddSolutionComponent(ctx context.Context, org *DataverseOrg, componentID string, componentType int, solutionUniqueName string) (string, error) {
	if err := ValidateSolutionUniqueName(solutionUniqueName); err != nil {
		return "", err
	}
	if !isGUID(componentID) {
		return "", invalid("componentId", componentID, "want a GUID")
	}
	body := map[string]any{"ComponentId": strings.ToLower(componentID), "ComponentType": componentType,
		"SolutionUniqueName": solutionUniqueName, "AddRequiredComponents": false}
	resp, err := c.dataverseCall(ctx, "AddSolutionComponent", "POST", org, org.APIURL+dataverseAPIPath+"/AddSolutionComponent", body)
	if err != nil {
		return "", err
	}
	var out struct {
		ID string `json:"id"`
	}
	if err := decode("AddSolutionComponent", resp, &out); err != nil {
		return "", err
	}
	return out.ID, nil
}

// dataverseCall sends a request to an organisation checked by GetDataverseOrg,
// with a token for its audience. Redirects are refused (no configured base
// matches an org), so the token stays on the org.
func (c *Client) dataverseCall(ctx context.Context, op, method string, org *DataverseOrg, rawURL string, body any) (*response, error) {
	if org == nil || !strings.HasPrefix(rawURL, org.APIURL+"/") {
		return nil, fmt.Errorf("%w: %s", ErrLinkNotAllowed, op)
	}
	return c.sendAPI(ctx, request{op: op, method: method, url: rawURL, audience: org.Audience}, body)
}
