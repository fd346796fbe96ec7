package server

import (
	"net/http"
	"strings"
	"testing"
)

func TestMetricsAddrSetting(t *testing.T) {
	env := func(kv ...string) func(string) string {
		m := map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) string { return m[k] }
	}
	s, err := LoadSettings(env())
	if err != nil || s.MetricsAddr != "" {
		t.Fatalf("default: %q %v", s.MetricsAddr, err)
	}
	for _, ok := range [][]string{
		{"FLOWSTUDIO_METRICS_ADDR", "127.0.0.1:9090"},
		{"FLOWSTUDIO_METRICS_ADDR", "0.0.0.0:9090", "FLOWSTUDIO_ADDR", "0.0.0.0:8080"}, // any host
		{"FLOWSTUDIO_METRICS_ADDR", "127.0.0.1:0", "FLOWSTUDIO_ADDR", "127.0.0.1:0"},
		{"FLOWSTUDIO_METRICS_ADDR", "127.0.0.2:8080", "FLOWSTUDIO_ADDR", "127.0.0.1:8080"},
	} {
		if s, err := LoadSettings(env(ok...)); err != nil || s.MetricsAddr != ok[1] {
			t.Errorf("%v: %q %v", ok, s.MetricsAddr, err)
		}
	}
	for _, bad := range []struct{ kv []string }{
		{[]string{"FLOWSTUDIO_METRICS_ADDR", "127.0.0.1:8080"}}, // the default FLOWSTUDIO_ADDR
		{[]string{"FLOWSTUDIO_METRICS_ADDR", "0.0.0.0:8080", "FLOWSTUDIO_ADDR", "127.0.0.1:8080"}},
		{[]string{"FLOWSTUDIO_METRICS_ADDR", ":8080", "FLOWSTUDIO_ADDR", "0.0.0.0:8080"}},
		{[]string{"FLOWSTUDIO_METRICS_ADDR", "127.0.0.1:8080", "FLOWSTUDIO_ADDR", "0.0.0.0:8080"}},
	} {
		if _, err := LoadSettings(env(bad.kv...)); err == nil || !strings.Contains(err.Error(), "FLOWSTUDIO_ADDR") {
			t.Errorf("%v: want a refusal naming FLOWSTUDIO_ADDR, got %v", bad.kv, err)
		}
	}
	for _, bad := range []string{"9090", "metrics", "127.0.0.1:http", "127.0.0.1:99999"} {
		if _, err := LoadSettings(env("FLOWSTUDIO_METRICS_ADDR", bad)); err == nil || !strings.Contains(err.Error(), "HOST:PORT") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

// The public handler never serves /metrics, whatever FLOWSTUDIO_METRICS_ADDR says.
func TestPublicHandlerHasNoMetrics(t *testing.T) {
	h := newHarness(t, func(s *Settings) { s.MetricsAddr = "127.0.0.1:9090" })
	for _, path := range []string{"/metrics", "/metrics/"} {
		if rec := h.do(t, http.MethodGet, path, nil, ""); rec.Code != http.StatusNotFound || strings.Contains(rec.Body.String(), "go_goroutines") {
			t.Errorf("GET %s on the public handler: %d %.100s", path, rec.Code, rec.Body.String())
		}
	}
}
