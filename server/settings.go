package server

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
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

	EntraClientID     string
	EntraClientSecret string
	EntraAuthority    string
	EntraTenant       string

	FlowAPIURL      string
	PowerAppsAPIURL string
	BAPAPIURL       string

	CosmosEndpoint     string
	CosmosDatabase     string
	KeyVaultURL        string
	KeyVaultSecretName string

	StripeWebhookSecret string
	LogLevel            string

	// Quotas per tier, "PER_DAY/PER_MINUTE" (QUOTA_FREE, QUOTA_PRO, QUOTA_TEAM).
	QuotaFree, QuotaPro, QuotaTeam string
}

// Production reports whether FLOWSTUDIO_ENV=production.
func (s Settings) Production() bool { return s.Env == "production" }

// Embedded reports whether the server runs on embedded defaults: the single-file
// store and the built-in simulated tenant instead of Azure and Microsoft.
func (s Settings) Embedded() bool {
	return s.CosmosEndpoint == "" && s.FlowAPIURL == "" && s.EntraClientID == ""
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
		Env:                 get("FLOWSTUDIO_ENV", "development"),
		TokenSecret:         getenv("TOKEN_SECRET"),
		EntraClientID:       get("ENTRA_CLIENT_ID", ""),
		EntraClientSecret:   getenv("ENTRA_CLIENT_SECRET"),
		EntraAuthority:      strings.TrimRight(get("ENTRA_AUTHORITY", "https://login.microsoftonline.com"), "/"),
		EntraTenant:         get("ENTRA_TENANT", "organizations"),
		FlowAPIURL:          strings.TrimRight(get("FLOW_API_URL", ""), "/"),
		PowerAppsAPIURL:     strings.TrimRight(get("POWERAPPS_API_URL", ""), "/"),
		BAPAPIURL:           strings.TrimRight(get("BAP_API_URL", ""), "/"),
		CosmosEndpoint:      get("COSMOS_ENDPOINT", ""),
		CosmosDatabase:      get("COSMOS_DATABASE", "flowstudio"),
		KeyVaultURL:         get("KEYVAULT_URL", ""),
		KeyVaultSecretName:  get("KEYVAULT_SECRET_NAME", "refresh-token-key"),
		StripeWebhookSecret: getenv("STRIPE_WEBHOOK_SECRET"),
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
	var err error
	if s.DrainTimeout, err = time.ParseDuration(get("FLOWSTUDIO_DRAIN_TIMEOUT", "20s")); err != nil {
		return s, fmt.Errorf("FLOWSTUDIO_DRAIN_TIMEOUT: %w", err)
	}
	if s.MaxBodyBytes, err = strconv.ParseInt(get("FLOWSTUDIO_MAX_BODY_BYTES", "1048576"), 10, 64); err != nil || s.MaxBodyBytes < 1024 {
		return s, errors.New("FLOWSTUDIO_MAX_BODY_BYTES must be an integer of at least 1024")
	}
	if s.PublicURL != "" {
		if u, err := url.Parse(s.PublicURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return s, errors.New("FLOWSTUDIO_PUBLIC_URL must be an absolute http(s) URL")
		}
	}
	return s, s.checkProduction()
}

// checkProduction refuses what must never run in production: embedded defaults, a
// generated TOKEN_SECRET, a public URL that is not HTTPS.
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
	return nil
}
