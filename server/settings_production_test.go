package server

import (
	"strings"
	"testing"
)

// productionEnv is a complete production configuration, with overrides.
func productionEnv(over map[string]string) func(string) string {
	env := map[string]string{
		"FLOWSTUDIO_ENV":        "production",
		"FLOWSTUDIO_PUBLIC_URL": "https://mcp.example.com",
		"TOKEN_SECRET":          strings.Repeat("s", 40),
		"COSMOS_ENDPOINT":       "https://acct.documents.azure.com:443/",
		"KEYVAULT_URL":          "https://kv-x.vault.azure.net/",
		"ENTRA_CLIENT_ID":       "11111111-2222-3333-4444-555555555555",
		"ENTRA_CLIENT_SECRET":   "a-real-secret",
	}
	for k, v := range over {
		env[k] = v
	}
	return func(k string) string { return env[k] }
}

// TestProductionRefusesCleartextAndPublicCredentials: every URL that carries tokens,
// codes, secrets or sealed tokens must be https in production, and the embedded
// development app's public credentials are refused; each refusal names its setting.
func TestProductionRefusesCleartextAndPublicCredentials(t *testing.T) {
	if _, err := LoadSettings(productionEnv(nil)); err != nil {
		t.Fatalf("a complete production configuration was refused: %v", err)
	}
	if _, err := LoadSettings(productionEnv(map[string]string{"FLOW_API_URL": "https://high.api.flow.microsoft.us",
		"ENTRA_AUTHORITY": "https://login.microsoftonline.us"})); err != nil {
		t.Fatalf("a sovereign cloud was refused: %v", err)
	}
	for setting, value := range map[string]string{
		"FLOW_API_URL":        "http://api.flow.microsoft.com",
		"POWERAPPS_API_URL":   "http://api.powerapps.com",
		"BAP_API_URL":         "http://api.bap.microsoft.com",
		"ENTRA_AUTHORITY":     "http://login.microsoftonline.com",
		"KEYVAULT_URL":        "http://kv-x.vault.azure.net/",
		"COSMOS_ENDPOINT":     "http://acct.documents.azure.com:443/",
		"STRIPE_API_BASE":     "http://api.stripe.com",
		"ENTRA_CLIENT_ID":     EmbeddedEntraClientID,
		"ENTRA_CLIENT_SECRET": EmbeddedEntraClientSecret,
	} {
		t.Run(setting, func(t *testing.T) {
			_, err := LoadSettings(productionEnv(map[string]string{setting: value}))
			if err == nil || !strings.Contains(err.Error(), setting) || !strings.Contains(err.Error(), "production") {
				t.Fatalf("%s=%s: err = %v, want a refusal naming %s", setting, value, err, setting)
			}
			if strings.Contains(err.Error(), value) {
				t.Fatalf("the refusal echoes the value: %v", err)
			}
			// Outside production the same value is accepted (tests, emulators, sovereign labs).
			dev := productionEnv(map[string]string{setting: value, "FLOWSTUDIO_ENV": "development"})
			if _, err := LoadSettings(dev); err != nil {
				t.Fatalf("development refused %s: %v", setting, err)
			}
		})
	}
	t.Run("not a URL", func(t *testing.T) {
		_, err := LoadSettings(productionEnv(map[string]string{"ENTRA_AUTHORITY": "login.microsoftonline.com"}))
		if err == nil || !strings.Contains(err.Error(), "ENTRA_AUTHORITY must be an https URL") {
			t.Fatalf("err = %v", err)
		}
	})
}
