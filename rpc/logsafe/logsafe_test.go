package logsafe

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
)

func TestScrub(t *testing.T) {
	tests := []struct {
		name    string
		err     error
		redact  []string
		absent  []string
		present []string
	}{
		{
			name: "url error keeps only the host",
			err: &url.Error{Op: "Get", URL: "https://api.flow.microsoft.com/providers/Microsoft.ProcessSimple/environments/SECRET-ENV/flows?$filter=search('CANARY')",
				Err: errors.New("dial tcp: connection refused")},
			absent:  []string{"SECRET-ENV", "CANARY", "$filter"},
			present: []string{"api.flow.microsoft.com", "connection refused", "Get"},
		},
		{
			name:    "quoted values",
			err:     fmt.Errorf("flow %q not found: %w", "CANARY-flow", errors.New("boom")),
			absent:  []string{"CANARY"},
			present: []string{"not found", "boom"},
		},
		{
			name:    "redacted arguments",
			err:     errors.New("cannot read CANARYARG at all"),
			redact:  []string{"CANARYARG", "x"},
			absent:  []string{"CANARYARG"},
			present: []string{"cannot read", "at all"},
		},
		{
			name:    "tokens",
			err:     errors.New("bad token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ0LmFsaWNlIn0.c2lnbmF0dXJlLXNpZw"),
			absent:  []string{"eyJhbGciOiJIUzI1NiJ9"},
			present: []string{"bad token"},
		},
		{
			name:   "long messages are cut",
			err:    errors.New(strings.Repeat("é", 400)),
			absent: []string{strings.Repeat("é", 200)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Message(tt.err, tt.redact...)
			for _, a := range tt.absent {
				if strings.Contains(got, a) {
					t.Errorf("%q kept %q", got, a)
				}
			}
			for _, p := range tt.present {
				if !strings.Contains(got, p) {
					t.Errorf("%q lost %q", got, p)
				}
			}
			if !strings.HasSuffix(got, "…") && len(got) > maxLen {
				t.Errorf("not cut: %d bytes", len(got))
			}
		})
	}
}

func TestPanic(t *testing.T) {
	var nilMap map[string]int
	func() {
		defer func() {
			f := Panic(recover())
			if !strings.Contains(f.String, "assignment to entry in nil map") {
				t.Errorf("runtime error lost: %q", f.String)
			}
		}()
		nilMap["x"] = 1
	}()
	if f := Panic("CANARY in a panic"); strings.Contains(f.String, "CANARY") || !strings.Contains(f.String, "string") {
		t.Errorf("custom panic value logged: %q", f.String)
	}
	if f := Panic(fmt.Errorf("wrapped CANARY")); strings.Contains(f.String, "CANARY") {
		t.Errorf("custom panic error logged: %q", f.String)
	}
}
