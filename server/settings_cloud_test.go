package server

import (
	"reflect"
	"strings"
	"testing"

	"github.com/flowstudio/mcp/tools/powerautomate"
)

// TestCloudSetting: FLOWSTUDIO_CLOUD picks the upstream hosts, token audiences and Entra
// authority from powerautomate.ForCloud; the explicit URLs still override; an unknown
// cloud is refused with the names it accepts.
func TestCloudSetting(t *testing.T) {
	load := func(env map[string]string) (Settings, error) {
		return LoadSettings(func(k string) string { return env[k] })
	}
	s, err := load(nil)
	if err != nil {
		t.Fatal(err)
	}
	public, _ := powerautomate.ForCloud(powerautomate.CloudPublic)
	if s.Cloud != powerautomate.CloudPublic || s.EntraAuthority != "https://login.microsoftonline.com" || !reflect.DeepEqual(s.Upstream(), public) {
		t.Fatalf("default: cloud %q authority %s upstream %+v", s.Cloud, s.EntraAuthority, s.Upstream())
	}

	s, err = load(map[string]string{"FLOWSTUDIO_CLOUD": "GCCHigh"})
	if err != nil {
		t.Fatal(err)
	}
	up := s.Upstream()
	if s.EntraAuthority != "https://login.microsoftonline.us" || up.FlowURL != "https://high.api.flow.microsoft.us" ||
		up.FlowAudience != "https://high.service.flow.microsoft.us/" || up.PowerAppsURL != "https://high.api.powerapps.us" {
		t.Fatalf("gcchigh: authority %s upstream %+v", s.EntraAuthority, up)
	}

	s, err = load(map[string]string{"FLOWSTUDIO_CLOUD": "china", "FLOW_API_URL": "https://flow.example/", "ENTRA_AUTHORITY": "https://login.example"})
	if err != nil {
		t.Fatal(err)
	}
	if up := s.Upstream(); up.FlowURL != "https://flow.example" || up.BAPURL != "https://api.bap.partner.microsoftonline.cn" ||
		up.FlowAudience != "https://service.powerautomate.cn/" || s.EntraAuthority != "https://login.example" {
		t.Fatalf("overrides: authority %s upstream %+v", s.EntraAuthority, up)
	}

	if _, err := load(map[string]string{"FLOWSTUDIO_CLOUD": "mars"}); err == nil || !strings.Contains(err.Error(), "public, gcc, gcchigh, dod or china") {
		t.Fatalf("unknown cloud: %v", err)
	}
}
