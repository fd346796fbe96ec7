package tools

import (
	"encoding/json"
	"regexp"
	"testing"

	"github.com/flowstudio/mcp/tools/pattern"
)

// catalogPatterns collects every "pattern" in the catalog's input schemas.
func catalogPatterns(t testing.TB) []string {
	seen := map[string]bool{}
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if p, ok := x["pattern"].(string); ok {
				seen[p] = true
			}
			for _, e := range x {
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	for _, tool := range All() {
		var s any
		if err := json.Unmarshal(tool.Input, &s); err != nil {
			t.Fatalf("%s: %v", tool.Name, err)
		}
		walk(s)
	}
	out := make([]string, 0, len(seen))
	for p := range seen {
		out = append(out, p)
	}
	return out
}

var patternSamples = []string{
	"", "a", "~default", "Default-0f8fad5b-d9cb-469f-a165-70867728950e", "0f8fad5b-d9cb-469f-a165-70867728950e",
	"0F8FAD5B-D9CB-469F-A165-70867728950E", "0f8fad5b-d9cb-469f-a165-70867728950", "0f8fad5b-d9cb-469f-a165-70867728950ee",
	"0f8fad5bd9cb-469f-a165-70867728950e-", "08586653536760200319026785874CU62", "shared_office365", "shared-office365-19528cc4",
	"-x", "x-", "a\n", "\na", "é", "a b", "../x", "x/../y", "~", "~~", "Default-", "a_b", "A-1", "2147483648", "-0", "00",
}

// TestClassPatternAgreesWithRegexp: for every pattern of the catalog that the table
// matcher takes, it answers as regexp does.
func TestClassPatternAgreesWithRegexp(t *testing.T) {
	taken := 0
	for _, p := range append(catalogPatterns(t), `^-?(0|[1-9][0-9]*)$`, `^[a-z]+[0-9]{2,4}$`, `^ab?c$`, `^[a-z]*[0-9]?[A-Z]$`) {
		cp, ok := pattern.ParseClass(p)
		if !ok {
			continue
		}
		taken++
		re := regexp.MustCompile(p)
		for _, s := range patternSamples {
			if got, want := cp.Match(s), re.MatchString(s); got != want {
				t.Errorf("pattern %q on %q: table %v, regexp %v", p, s, got, want)
			}
		}
	}
	if taken == 0 {
		t.Fatal("no catalog pattern compiled to a table: the fast path is dead")
	}
}

// TestClassPatternRefusesWhatItCannotMatchGreedily: overlapping variable runs, classes
// with escapes or negation, and alternation go to regexp.
func TestClassPatternRefusesWhatItCannotMatchGreedily(t *testing.T) {
	for _, p := range []string{`^[a-z]*[a-c]$`, `^[^a]+$`, `^[\w]+$`, `^a|b$`, `^(ab)+$`, `[a-z]+`, `^[a-z]+`, `^\d+$`, `^[a-z]{2,}$`, `^.+$`, `^[a-z]*[0-9]?[a-z]$`, `^[a-z]+_?[a-z_]$`} {
		if _, ok := pattern.ParseClass(p); ok {
			t.Errorf("%q compiled to a table", p)
		}
	}
}

// FuzzClassPattern holds the table matcher to regexp on any pattern it accepts.
func FuzzClassPattern(f *testing.F) {
	for _, p := range catalogPatterns(f) {
		for _, s := range patternSamples {
			f.Add(p, s)
		}
	}
	f.Add(`^[a-z]*[0-9]?[a-z]$`, "ab")
	f.Fuzz(func(t *testing.T, p, s string) {
		cp, ok := pattern.ParseClass(p)
		if !ok {
			return
		}
		re, err := regexp.Compile(p)
		if err != nil {
			t.Fatalf("table took %q, regexp refuses it: %v", p, err)
		}
		if got, want := cp.Match(s), re.MatchString(s); got != want {
			t.Fatalf("pattern %q on %q: table %v, regexp %v", p, s, got, want)
		}
	})
}
