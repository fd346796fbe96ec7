package teamcache

import (
	"testing"
	"time"
)

func TestWindows(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]time.Duration{"7d": 7 * 24 * time.Hour, "1d": 24 * time.Hour, "36h": 36 * time.Hour, "30d": MaxWindow, "1h": time.Hour} {
		got, err := ParseWindow(in)
		if err != nil || got != want {
			t.Errorf("ParseWindow(%q) = %v, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "0d", "31d", "59m", "7 days", "-1d", "d"} {
		if _, err := ParseWindow(bad); err == nil {
			t.Errorf("ParseWindow(%q) accepted", bad)
		}
	}
	for d, want := range map[time.Duration]string{DefaultWindow: "7d", 48 * time.Hour: "2d", 36 * time.Hour: "36h0m0s"} {
		if got := FormatWindow(d); got != want {
			t.Errorf("FormatWindow(%v) = %s", d, got)
		}
	}
}

func TestKeys(t *testing.T) {
	t.Parallel()
	k := Key("Default-4C19ECC8-D2B9-44EA-8F16-376422920943", "AD07DD5F-5D17-476A-AC1F-2C878C551F59")
	if k != "default-4c19ecc8-d2b9-44ea-8f16-376422920943.ad07dd5f-5d17-476a-ac1f-2c878c551f59" {
		t.Fatalf("Key = %s", k)
	}
	env, name, ok := SplitKey(k)
	if !ok || env != "default-4c19ecc8-d2b9-44ea-8f16-376422920943" || name != "ad07dd5f-5d17-476a-ac1f-2c878c551f59" {
		t.Fatalf("SplitKey = %s %s %v", env, name, ok)
	}
	for _, bad := range []string{"", "nodot", ".x", "x."} {
		if _, _, ok := SplitKey(bad); ok {
			t.Errorf("SplitKey(%q) ok", bad)
		}
	}
}
