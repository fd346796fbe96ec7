package powerautomate

import (
	"net/http"
	"time"

	"github.com/flowstudio/mcp/server/outbound"
)

// Token audiences (the `aud` a delegated Entra ID access token must carry)
// for the public cloud. Sovereign clouds use other values; see Config.
const (
	// AudienceFlow is for api.flow.microsoft.com and the per-environment
	// /powerautomate routes (listEnum, listDynamicProperties).
	AudienceFlow = "https://service.flow.microsoft.com/"
	// AudiencePowerApps is for api.powerapps.com and api.bap.microsoft.com.
	AudiencePowerApps = "https://service.powerapps.com/"
	// AudienceAPIHub is for connector runtime URLs (azure-apim.net); no trailing slash.
	AudienceAPIHub = "https://apihub.azure.com"
	// AudiencePowerPlatform is for the Power Platform API's /connectivity
	// routes (connection create/consent), which this client does not call yet.
	AudiencePowerPlatform = "https://api.powerplatform.com"
)

// API versions, one per endpoint family, so that a change upstream is a
// one-line edit here.
const (
	apiVersionFlow          = "2016-11-01" // every /providers/Microsoft.ProcessSimple call
	apiVersionConnections   = "2016-11-01" // api.powerapps.com connections
	apiVersionConnectors    = "2016-11-01" // api.powerapps.com apis/{connector}
	apiVersionApps          = "2016-11-01" // api.powerapps.com apps
	apiVersionPowerPlatform = "1"          // {envhost}.environment.api.powerplatform.com
)

// Public-cloud defaults.
const (
	DefaultFlowURL          = "https://api.flow.microsoft.com"
	DefaultPowerAppsURL     = "https://api.powerapps.com"
	DefaultBAPURL           = "https://api.bap.microsoft.com"
	DefaultPowerPlatformURL = "https://{envhost}.environment.api.powerplatform.com"
	DefaultApihubURL        = "https://azure-apim.net"

	DefaultTimeout         = 30 * time.Second
	DefaultMaxRetries      = 3
	DefaultRetryBackoff    = 500 * time.Millisecond
	DefaultMaxRetryWait    = 10 * time.Second
	DefaultMaxContentBytes = 1 << 20
)

// DefaultContentHosts are the host suffixes that serve run inputsLink /
// outputsLink content and trigger callback URLs (SAS-signed, anonymous).
var DefaultContentHosts = []string{".logic.azure.com", ".api.powerplatform.com"}

// DefaultRuntimeHosts are host suffixes of connector runtime URLs
// (primaryRuntimeUrl), besides ApihubURL's own host.
var DefaultRuntimeHosts = []string{".azure-apim.net", ".azure-apihub.net"}

// Config says where the upstream APIs live and how hard to try.
// Zero fields take the public-cloud defaults.
//
// Sovereign clouds (hosts from Microsoft's PowerShell modules, PnP and the
// Terraform provider; audiences from Microsoft's Flow docs and the
// PowerShell host→audience map; ForCloud returns these presets):
//
//	cloud     Flow API                     Power Apps API           BAP API                             Power Platform API                          Flow audience                             Power Apps audience
//	Public    api.flow.microsoft.com       api.powerapps.com        api.bap.microsoft.com               api.powerplatform.com                        https://service.flow.microsoft.com/       https://service.powerapps.com/
//	GCC       gov.api.flow.microsoft.us    gov.api.powerapps.us     gov.api.bap.microsoft.us            api.gov.powerplatform.microsoft.us           https://gov.service.flow.microsoft.us/    https://gov.service.powerapps.us/
//	GCC High  high.api.flow.microsoft.us   high.api.powerapps.us    high.api.bap.microsoft.us           api.high.powerplatform.microsoft.us          https://high.service.flow.microsoft.us/   https://high.service.powerapps.us/
//	DoD       api.flow.appsplatform.us     api.apps.appsplatform.us api.bap.appsplatform.us             api.appsplatform.us                          https://service.flow.appsplatform.us/     https://service.apps.appsplatform.us/
//	China     api.powerautomate.cn         api.powerapps.cn         api.bap.partner.microsoftonline.cn  api.powerplatform.partner.microsoftonline.cn https://service.powerautomate.cn/         https://service.powerapps.cn/
//
// The China Power Apps audience and the sovereign connector-runtime hosts
// and apihub audiences are not confirmed by any source we have; the presets
// keep the public apihub values there, so check them before use.
type Config struct {
	FlowURL      string // Flow management API base, e.g. https://api.flow.microsoft.com
	PowerAppsURL string // connections and connectors, e.g. https://api.powerapps.com
	BAPURL       string // Business Application Platform, e.g. https://api.bap.microsoft.com
	// PowerPlatformURL is the per-environment Power Platform API base, a
	// template in which "{envhost}" stands for the environment's host label
	// ("{30 hex}.{2 hex}", see EnvironmentHostLabel). It may sit in the host
	// (the cloud) or in the path (the simulator).
	PowerPlatformURL string
	// ApihubURL is the base that connector runtime URLs must fall under: the
	// same scheme, its host or a subdomain of it, and its path as a prefix.
	ApihubURL string
	// RuntimeHosts are further host suffixes (".azure-apihub.net") or exact
	// hosts accepted for connector runtime URLs. Nil means DefaultRuntimeHosts.
	RuntimeHosts []string
	// ContentHosts is the allow-list for inputsLink/outputsLink content and
	// trigger callback URLs: host suffixes starting with "." or exact
	// host[:port] values. Nil means DefaultContentHosts.
	ContentHosts []string

	// DataverseURL is where simulated Dataverse organisations live (each org's
	// Web API base sits under it, http allowed). Empty in the cloud: there an
	// org URL must be https on a Dataverse host (IsDataverseHost).
	DataverseURL string

	// Audiences requested from the TokenSource; empty means the public-cloud constants.
	FlowAudience      string
	PowerAppsAudience string
	APIHubAudience    string

	Timeout         time.Duration // whole budget of one client method call, retries included
	MaxRetries      int           // retries after the first attempt; negative means none
	RetryBackoff    time.Duration // first backoff step; doubles per retry
	MaxRetryWait    time.Duration // a Retry-After longer than this is returned to the caller instead of waited out
	MaxContentBytes int64         // FetchContent default read cap
	HTTPClient      *http.Client  // transport to use; its CheckRedirect is replaced
	// EntraAuthority is the cloud's sign-in authority (ForCloud fills it; the client
	// does not use it: the settings default ENTRA_AUTHORITY to it).
	EntraAuthority string
}

// Cloud names a Power Platform cloud for ForCloud.
type Cloud string

const (
	CloudPublic  Cloud = "public"
	CloudGCC     Cloud = "gcc"
	CloudGCCHigh Cloud = "gcchigh"
	CloudDoD     Cloud = "dod"
	CloudChina   Cloud = "china"
)

// ForCloud returns the host and audience preset of a cloud (see the table
// on Config) and false for an unknown name.
func ForCloud(c Cloud) (Config, bool) {
	type preset struct{ flow, powerApps, bap, ppapi, flowAud, powerAppsAud, entra string }
	presets := map[Cloud]preset{
		CloudPublic:  {"api.flow.microsoft.com", "api.powerapps.com", "api.bap.microsoft.com", "api.powerplatform.com", AudienceFlow, AudiencePowerApps, "login.microsoftonline.com"},
		CloudGCC:     {"gov.api.flow.microsoft.us", "gov.api.powerapps.us", "gov.api.bap.microsoft.us", "api.gov.powerplatform.microsoft.us", "https://gov.service.flow.microsoft.us/", "https://gov.service.powerapps.us/", "login.microsoftonline.com"},
		CloudGCCHigh: {"high.api.flow.microsoft.us", "high.api.powerapps.us", "high.api.bap.microsoft.us", "api.high.powerplatform.microsoft.us", "https://high.service.flow.microsoft.us/", "https://high.service.powerapps.us/", "login.microsoftonline.us"},
		CloudDoD:     {"api.flow.appsplatform.us", "api.apps.appsplatform.us", "api.bap.appsplatform.us", "api.appsplatform.us", "https://service.flow.appsplatform.us/", "https://service.apps.appsplatform.us/", "login.microsoftonline.us"},
		CloudChina:   {"api.powerautomate.cn", "api.powerapps.cn", "api.bap.partner.microsoftonline.cn", "api.powerplatform.partner.microsoftonline.cn", "https://service.powerautomate.cn/", "https://service.powerapps.cn/", "login.chinacloudapi.cn"},
	}
	p, ok := presets[c]
	if !ok {
		return Config{}, false
	}
	return Config{
		FlowURL:           "https://" + p.flow,
		PowerAppsURL:      "https://" + p.powerApps,
		BAPURL:            "https://" + p.bap,
		PowerPlatformURL:  "https://{envhost}.environment." + p.ppapi,
		FlowAudience:      p.flowAud,
		PowerAppsAudience: p.powerAppsAud,
		EntraAuthority:    "https://" + p.entra,
	}, true
}

func (c Config) withDefaults() Config {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&c.FlowURL, DefaultFlowURL)
	def(&c.PowerAppsURL, DefaultPowerAppsURL)
	def(&c.BAPURL, DefaultBAPURL)
	def(&c.PowerPlatformURL, DefaultPowerPlatformURL)
	def(&c.ApihubURL, DefaultApihubURL)
	def(&c.FlowAudience, AudienceFlow)
	def(&c.PowerAppsAudience, AudiencePowerApps)
	def(&c.APIHubAudience, AudienceAPIHub)
	if c.RuntimeHosts == nil {
		c.RuntimeHosts = DefaultRuntimeHosts
	}
	if c.ContentHosts == nil {
		c.ContentHosts = DefaultContentHosts
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.MaxRetries == 0 {
		c.MaxRetries = DefaultMaxRetries
	}
	if c.MaxRetries < 0 {
		c.MaxRetries = 0
	}
	if c.RetryBackoff <= 0 {
		c.RetryBackoff = DefaultRetryBackoff
	}
	if c.MaxRetryWait <= 0 {
		c.MaxRetryWait = DefaultMaxRetryWait
	}
	if c.MaxContentBytes <= 0 {
		c.MaxContentBytes = DefaultMaxContentBytes
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Transport: upstreamTransport}
	}
	return c
}

// upstreamTransport is shared by every client of the upstream APIs. Unlike
// http.DefaultTransport it keeps enough idle connections per host for the calls a
// replica runs at once (the default of 2 made most calls dial anew), lets them go
// after 15 s unused (so a replica back at rest holds no connections and their
// goroutines), and never speaks TLS below 1.2.
var upstreamTransport = func() *http.Transport {
	t := outbound.NewTransport()
	t.MaxIdleConns = 256
	t.MaxIdleConnsPerHost = 64
	t.IdleConnTimeout = 15 * time.Second
	return t
}()
