package server

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/flowstudio/mcp/server/identity"
	"github.com/flowstudio/mcp/tools/alerts/notify"
	"github.com/flowstudio/mcp/tools/metering"
	"github.com/flowstudio/mcp/tools/pattern"
	"github.com/flowstudio/mcp/tools/powerautomate"
)

// Settings are every setting the binary reads, from the environment (flags may
// override). The README lists them; keep it in step.
type Settings struct {
	Addr           string // FLOWSTUDIO_ADDR
	PublicURL      string // FLOWSTUDIO_PUBLIC_URL
	DataDir        string // FLOWSTUDIO_DATA_DIR
	Env            string // FLOWSTUDIO_ENV: "production" refuses embedded defaults
	AllowedOrigins []string
	TokenSecret    string
	DrainTimeout   time.Duration // FLOWSTUDIO_DRAIN_TIMEOUT
	MaxBodyBytes   int64         // FLOWSTUDIO_MAX_BODY_BYTES
	// MaxInFlightPerUser bounds one user's MCP requests running at once on a replica
	// (FLOWSTUDIO_MAX_INFLIGHT_PER_USER).
	MaxInFlightPerUser int
	// SimURL is FLOWSTUDIO_SIM_URL: embedded mode reaches the simulated tenant there
	// (`flowstudio sim`, mounted at the URL's root) instead of building one in-process.
	SimURL string
	// MetricsAddr is FLOWSTUDIO_METRICS_ADDR: the internal GET /metrics listener
	// (metrics.go); empty is off.
	MetricsAddr string

	EntraClientID     string
	EntraClientSecret string
	EntraAuthority    string
	EntraTenant       string

	// Cloud is FLOWSTUDIO_CLOUD: the Power Platform cloud whose hosts, token
	// audiences and Entra authority are the defaults (powerautomate.ForCloud).
	Cloud           powerautomate.Cloud
	FlowAPIURL      string
	PowerAppsAPIURL string
	BAPAPIURL       string

	CosmosEndpoint     string
	CosmosDatabase     string
	KeyVaultURL        string
	KeyVaultSecretName string

	StripeWebhookSecret string
	// StripeSecretKey (STRIPE_SECRET_KEY) turns billing on: Checkout, the Customer
	// Portal and cancelling on account deletion (billing.go). Unset, the dashboard
	// hides its billing buttons and says billing is off.
	StripeSecretKey string
	// StripeAPIBase (STRIPE_API_BASE) replaces https://api.stripe.com (tests: stripe-mock).
	StripeAPIBase string
	// StripePricePro and StripePriceTeam (STRIPE_PRICE_PRO, STRIPE_PRICE_TEAM) are the
	// price ids the Upgrade buttons buy; a subscription holding one has that plan.
	StripePricePro, StripePriceTeam string
	// SecurityContact (SECURITY_CONTACT) is the Contact of /.well-known/security.txt:
	// a mailto: or https: URI (a bare address becomes mailto:); unset, that file is 404.
	SecurityContact string
	// StatusURL (FLOWSTUDIO_STATUS_URL) is the operator's status page, linked from
	// every page's footer and the help page; unset, no link is shown.
	StatusURL string
	// SMTP (SMTP_HOST, SMTP_PORT, SMTP_USERNAME, SMTP_PASSWORD, SMTP_FROM) delivers
	// alert emails; without SMTP_HOST alerts appear on the dashboard only.
	SMTP     notify.SMTPConfig
	LogLevel string

	// Quotas per tier, "PER_DAY/PER_MINUTE" (QUOTA_FREE, QUOTA_PRO, QUOTA_TEAM).
	QuotaFree, QuotaPro, QuotaTeam string
	// Quotas are the three above, parsed and checked.
	Quotas metering.Quotas
}

// Production reports whether FLOWSTUDIO_ENV=production.
func (s Settings) Production() bool { return s.Env == "production" }

// Embedded reports whether the server runs on embedded defaults: the single-file
// store and the built-in simulated tenant instead of Azure and Microsoft.
func (s Settings) Embedded() bool {
	return s.CosmosEndpoint == "" && s.FlowAPIURL == "" && s.EntraClientID == ""
}

// The embedded Entra ID: the simulator's stand-in under the public URL (or at
// FLOWSTUDIO_SIM_URL + SimEntraPath) and its development app registration. The
// secret is public: embedded mode only.
const (
	EmbeddedEntraPath         = "/sim/entra"
	SimEntraPath              = "/entra"
	EmbeddedEntraClientID     = "flowstudio-dev"
	EmbeddedEntraClientSecret = "flowstudio-dev-secret-embedded-only"
)

// Entra returns the app registration in force: ENTRA_* (with a federated
// credential from managedIdentity when ENTRA_CLIENT_SECRET is empty) or, in
// embedded mode, the simulator's stand-in at <public URL>/sim/entra
// (<FLOWSTUDIO_SIM_URL>/entra when set) with the development client. Without
// ENTRA_CLIENT_ID (outside production) it has no client: sign-in fails and
// tools ask to reconnect. Call it once PublicURL is known.
func (s Settings) Entra(managedIdentity func() (azcore.TokenCredential, error)) (identity.App, error) {
	if s.Embedded() {
		authority := s.PublicURL + EmbeddedEntraPath
		if s.SimURL != "" {
			authority = s.SimURL + SimEntraPath
		}
		return identity.App{Authority: authority, Tenant: "organizations",
			ClientID: EmbeddedEntraClientID, ClientSecret: EmbeddedEntraClientSecret}, nil
	}
	if s.EntraClientID == "" {
		return identity.App{Authority: s.EntraAuthority, Tenant: s.EntraTenant}, nil
	}
	return identity.NewApp(s.EntraAuthority, s.EntraTenant, s.EntraClientID, s.EntraClientSecret, managedIdentity)
}

// Upstream is the Power Automate client's configuration outside embedded mode: the
// cloud's preset (FLOWSTUDIO_CLOUD), with FLOW_API_URL, POWERAPPS_API_URL and
// BAP_API_URL overriding its hosts when set.
func (s Settings) Upstream() powerautomate.Config {
	c, _ := powerautomate.ForCloud(s.Cloud) // checked by LoadSettings; unknown: public defaults
	for _, o := range []struct {
		to *string
		v  string
	}{{&c.FlowURL, s.FlowAPIURL}, {&c.PowerAppsURL, s.PowerAppsAPIURL}, {&c.BAPURL, s.BAPAPIURL}} {
		if o.v != "" {
			*o.to = o.v
		}
	}
	return c
}

// LoadSettings reads the environment through getenv.
func LoadSettings(getenv func(string) string) (Settings, error) {
	get := func(name, def string) string {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			return v
		}
		return def
	}
	s := Settings{
		Addr:                get("FLOWSTUDIO_ADDR", "127.0.0.1:8080"),
		PublicURL:           strings.TrimRight(get("FLOWSTUDIO_PUBLIC_URL", ""), "/"),
		DataDir:             get("FLOWSTUDIO_DATA_DIR", "./data"),
		SimURL:              strings.TrimRight(get("FLOWSTUDIO_SIM_URL", ""), "/"),
		Env:                 get("FLOWSTUDIO_ENV", "development"),
		TokenSecret:         getenv("TOKEN_SECRET"),
		EntraClientID:       get("ENTRA_CLIENT_ID", ""),
		EntraClientSecret:   getenv("ENTRA_CLIENT_SECRET"),
		Cloud:               powerautomate.Cloud(strings.ToLower(get("FLOWSTUDIO_CLOUD", string(powerautomate.CloudPublic)))),
		EntraTenant:         get("ENTRA_TENANT", "organizations"),
		FlowAPIURL:          strings.TrimRight(get("FLOW_API_URL", ""), "/"),
		PowerAppsAPIURL:     strings.TrimRight(get("POWERAPPS_API_URL", ""), "/"),
		BAPAPIURL:           strings.TrimRight(get("BAP_API_URL", ""), "/"),
		CosmosEndpoint:      get("COSMOS_ENDPOINT", ""),
		CosmosDatabase:      get("COSMOS_DATABASE", "flowstudio"),
		KeyVaultURL:         get("KEYVAULT_URL", ""),
		KeyVaultSecretName:  get("KEYVAULT_SECRET_NAME", "refresh-token-key"),
		StripeWebhookSecret: getenv("STRIPE_WEBHOOK_SECRET"),
		StripeSecretKey:     getenv("STRIPE_SECRET_KEY"),
		StripeAPIBase:       strings.TrimRight(get("STRIPE_API_BASE", ""), "/"),
		StripePricePro:      get("STRIPE_PRICE_PRO", ""),
		StripePriceTeam:     get("STRIPE_PRICE_TEAM", ""),
		SecurityContact:     get("SECURITY_CONTACT", ""),
		StatusURL:           get("FLOWSTUDIO_STATUS_URL", ""),
		LogLevel:            get("LOG_LEVEL", "info"),
		QuotaFree:           get("QUOTA_FREE", "200/20"),
		QuotaPro:            get("QUOTA_PRO", "5000/120"),
		QuotaTeam:           get("QUOTA_TEAM", "50000/600"),
	}
	if o := get("FLOWSTUDIO_ALLOWED_ORIGINS", ""); o != "" {
		for _, origin := range strings.Split(o, ",") {
			if origin = strings.TrimRight(strings.TrimSpace(origin), "/"); origin != "" {
				s.AllowedOrigins = append(s.AllowedOrigins, origin)
			}
		}
	}
	cloud, ok := powerautomate.ForCloud(s.Cloud)
	if !ok {
		return s, errors.New("FLOWSTUDIO_CLOUD must be public, gcc, gcchigh, dod or china")
	}
	s.EntraAuthority = strings.TrimRight(get("ENTRA_AUTHORITY", cloud.EntraAuthority), "/")
	var err error
	if s.DrainTimeout, err = time.ParseDuration(get("FLOWSTUDIO_DRAIN_TIMEOUT", "20s")); err != nil {
		return s, fmt.Errorf("FLOWSTUDIO_DRAIN_TIMEOUT: %w", err)
	}
	if s.MaxBodyBytes, err = strconv.ParseInt(get("FLOWSTUDIO_MAX_BODY_BYTES", "1048576"), 10, 64); err != nil || s.MaxBodyBytes < 1024 {
		return s, errors.New("FLOWSTUDIO_MAX_BODY_BYTES must be an integer of at least 1024")
	}
	if s.MaxInFlightPerUser, err = strconv.Atoi(get("FLOWSTUDIO_MAX_INFLIGHT_PER_USER", strconv.Itoa(DefaultMaxInFlightPerUser))); err != nil ||
		s.MaxInFlightPerUser < 1 || s.MaxInFlightPerUser > 1024 {
		return s, errors.New("FLOWSTUDIO_MAX_INFLIGHT_PER_USER must be an integer from 1 to 1024")
	}
	if s.PublicURL != "" {
		if u, err := url.Parse(s.PublicURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return s, errors.New("FLOWSTUDIO_PUBLIC_URL must be an absolute http(s) URL")
		}
	}
	s.MetricsAddr = get("FLOWSTUDIO_METRICS_ADDR", "")
	if err := checkMetricsAddr(s.MetricsAddr, s.Addr); err != nil {
		return s, err
	}
	if err := s.checkSimURL(); err != nil {
		return s, err
	}
	if err := s.checkStripe(); err != nil {
		return s, err
	}
	if s.SecurityContact, err = normalizeSecurityContact(s.SecurityContact); err != nil {
		return s, err
	}
	if s.StatusURL != "" && (!isHTTPSURL(s.StatusURL) || strings.ContainsAny(s.StatusURL, " \t\r\n<>\"'")) {
		return s, errors.New("FLOWSTUDIO_STATUS_URL must be an https:// URL (the status page every page links to)")
	}
	s.SMTP = notify.SMTPConfig{Host: get("SMTP_HOST", ""), Username: get("SMTP_USERNAME", ""), Password: getenv("SMTP_PASSWORD"), From: get("SMTP_FROM", "")}
	if p := get("SMTP_PORT", ""); p != "" {
		if s.SMTP.Port, err = strconv.Atoi(p); err != nil || s.SMTP.Port < 1 || s.SMTP.Port > 65535 {
			return s, errors.New("SMTP_PORT must be a port number (587 for STARTTLS, 465 for implicit TLS)")
		}
	}
	if err := s.SMTP.Validate(); err != nil {
		return s, err
	}
	for _, q := range []struct {
		name string
		raw  string
		to   *metering.Quota
	}{{"QUOTA_FREE", s.QuotaFree, &s.Quotas.Free}, {"QUOTA_PRO", s.QuotaPro, &s.Quotas.Pro}, {"QUOTA_TEAM", s.QuotaTeam, &s.Quotas.Team}} {
		if *q.to, err = metering.ParseQuota(q.raw); err != nil {
			return s, fmt.Errorf("%s: %w", q.name, err)
		}
	}
	return s, s.checkProduction()
}

// checkSimURL accepts FLOWSTUDIO_SIM_URL only as an absolute http(s) URL, and only
// on embedded defaults outside production: it stands in for Microsoft's hosts.
func (s Settings) checkSimURL() error {
	if s.SimURL == "" {
		return nil
	}
	if u, err := url.Parse(s.SimURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" ||
		u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return errors.New("FLOWSTUDIO_SIM_URL must be an absolute http(s) URL without query, such as http://127.0.0.1:8090")
	}
	if s.Production() {
		return errors.New("FLOWSTUDIO_SIM_URL (the simulated tenant) is for embedded mode: FLOWSTUDIO_ENV=production refuses it")
	}
	var set []string
	for _, v := range []struct{ name, value string }{
		{"COSMOS_ENDPOINT", s.CosmosEndpoint}, {"FLOW_API_URL", s.FlowAPIURL}, {"ENTRA_CLIENT_ID", s.EntraClientID},
	} {
		if v.value != "" {
			set = append(set, v.name)
		}
	}
	if len(set) > 0 {
		return fmt.Errorf("FLOWSTUDIO_SIM_URL (the simulated tenant) works only on embedded defaults; unset it or %s", strings.Join(set, ", "))
	}
	return nil
}

// checkProduction refuses what must never run in production: embedded defaults, a
// generated TOKEN_SECRET, a public URL that is not HTTPS, an upstream, authority,
// Key Vault or Cosmos DB URL that is not HTTPS, the public development credentials.
func (s Settings) checkProduction() error {
	if !s.Production() {
		return nil
	}
	var missing []string
	if s.TokenSecret == "" {
		missing = append(missing, "TOKEN_SECRET")
	}
	if s.CosmosEndpoint == "" {
		missing = append(missing, "COSMOS_ENDPOINT")
	}
	if s.KeyVaultURL == "" {
		missing = append(missing, "KEYVAULT_URL")
	}
	if s.EntraClientID == "" {
		missing = append(missing, "ENTRA_CLIENT_ID")
	}
	if !strings.HasPrefix(s.PublicURL, "https://") {
		missing = append(missing, "FLOWSTUDIO_PUBLIC_URL (https)")
	}
	if len(missing) > 0 {
		return fmt.Errorf("FLOWSTUDIO_ENV=production refuses to start on embedded defaults; set %s", strings.Join(missing, ", "))
	}
	// Every upstream carries users' bearer tokens, the authority codes, refresh tokens
	// and the client secret, Key Vault the sealing keys, Cosmos DB the sealed tokens,
	// Stripe's API the secret key: none of them in clear. An unset upstream URL is the public cloud's, which is https.
	var refused []string
	for _, v := range []struct{ name, value string }{
		{"FLOW_API_URL", s.FlowAPIURL}, {"POWERAPPS_API_URL", s.PowerAppsAPIURL}, {"BAP_API_URL", s.BAPAPIURL},
		{"ENTRA_AUTHORITY", s.EntraAuthority}, {"KEYVAULT_URL", s.KeyVaultURL}, {"COSMOS_ENDPOINT", s.CosmosEndpoint},
		{"STRIPE_API_BASE", s.StripeAPIBase}, // carries STRIPE_SECRET_KEY
	} {
		if v.value != "" && !isHTTPSURL(v.value) {
			refused = append(refused, v.name+" must be an https URL")
		}
	}
	// The development app's credentials are public (they are in this source code).
	if s.EntraClientID == EmbeddedEntraClientID {
		refused = append(refused, "ENTRA_CLIENT_ID is the public development app's: register your own app")
	}
	if s.EntraClientSecret == EmbeddedEntraClientSecret {
		refused = append(refused, "ENTRA_CLIENT_SECRET is the public development secret: use your app registration's")
	}
	if len(refused) > 0 {
		return fmt.Errorf("FLOWSTUDIO_ENV=production refuses to start: %s", strings.Join(refused, "; "))
	}
	return nil
}

// checkStripe refuses billing settings that cannot work together: a secret key
// needs both price ids (a button that cannot buy is worse than none), price ids
// look like Stripe's, and STRIPE_API_BASE is an absolute http(s) URL.
func (s Settings) checkStripe() error {
	if s.StripeAPIBase != "" {
		if u, err := url.Parse(s.StripeAPIBase); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" {
			return errors.New("STRIPE_API_BASE must be an absolute http(s) URL such as http://127.0.0.1:12111")
		}
	}
	for _, p := range []struct{ name, value string }{{"STRIPE_PRICE_PRO", s.StripePricePro}, {"STRIPE_PRICE_TEAM", s.StripePriceTeam}} {
		if p.value != "" && !stripePriceID.Match(p.value) {
			return fmt.Errorf("%s must be a Stripe price id (price_...)", p.name)
		}
	}
	if s.StripeSecretKey != "" && (s.StripePricePro == "" || s.StripePriceTeam == "") {
		return errors.New("STRIPE_SECRET_KEY needs STRIPE_PRICE_PRO and STRIPE_PRICE_TEAM (the prices the Upgrade buttons buy)")
	}
	if s.StripePricePro != "" && s.StripePricePro == s.StripePriceTeam {
		return errors.New("STRIPE_PRICE_PRO and STRIPE_PRICE_TEAM must differ")
	}
	return nil
}

var stripePriceID = pattern.MustClass(`^price_[A-Za-z0-9_]{1,200}$`)

// normalizeSecurityContact turns SECURITY_CONTACT into the URI security.txt needs
// (RFC 9116 2.5.3: mailto:, https: or tel:), accepting a bare email address.
func normalizeSecurityContact(v string) (string, error) {
	if v == "" {
		return "", nil
	}
	if !strings.Contains(v, ":") && strings.Count(v, "@") == 1 {
		v = "mailto:" + v
	}
	u, err := url.Parse(v)
	ok := err == nil && !strings.ContainsAny(v, " \t\r\n<>\"")
	switch {
	case ok && u.Scheme == "mailto":
		local, domain, found := strings.Cut(u.Opaque, "@")
		ok = found && local != "" && strings.Contains(domain, ".") && u.RawQuery == ""
	case ok && u.Scheme == "https":
		ok = u.Host != ""
	default:
		ok = false
	}
	if !ok {
		return "", errors.New("SECURITY_CONTACT must be an email address, a mailto: URI or an https:// URL")
	}
	return v, nil
}

// isHTTPSURL reports whether v is an absolute https URL with a host.
func isHTTPSURL(v string) bool {
	u, err := url.Parse(v)
	return err == nil && strings.EqualFold(u.Scheme, "https") && u.Host != ""
}
