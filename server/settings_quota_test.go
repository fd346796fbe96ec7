package server

import (
	"strings"
	"testing"

	"github.com/flowstudio/mcp/tools/metering"
)

func TestQuotaSettings(t *testing.T) {
	s, err := LoadSettings(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if s.Quotas != metering.DefaultQuotas {
		t.Fatalf("default quotas %+v, want %+v", s.Quotas, metering.DefaultQuotas)
	}
	s, err = LoadSettings(func(k string) string {
		return map[string]string{"QUOTA_FREE": "10/2", "QUOTA_PRO": " 100/ 10", "QUOTA_TEAM": "1000/100"}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	want := metering.Quotas{Free: metering.Quota{PerDay: 10, PerMinute: 2}, Pro: metering.Quota{PerDay: 100, PerMinute: 10},
		Team: metering.Quota{PerDay: 1000, PerMinute: 100}}
	if s.Quotas != want {
		t.Fatalf("quotas %+v, want %+v", s.Quotas, want)
	}
	for name, value := range map[string]string{"QUOTA_FREE": "200", "QUOTA_PRO": "0/0", "QUOTA_TEAM": "10/100"} {
		_, err := LoadSettings(func(k string) string {
			if k == name {
				return value
			}
			return ""
		})
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s=%q: error %v, want one naming the setting", name, value, err)
		}
	}
}
