package pattern

import (
	"regexp"
	"testing"
)

// The identifier checks written as classes in the code answer as regexp does (the
// general agreement is FuzzClassPattern's, in package tools).
func TestIdentifierClassesAgreeWithRegexp(t *testing.T) {
	patterns := []string{`^cus_[A-Za-z0-9]{1,200}$`, `^evt_[A-Za-z0-9_]{1,200}$`, `^[a-z_.]{1,100}$`,
		`^[0-9A-Za-z][0-9A-Za-z-]{0,63}$`, `^[a-z][a-z0-9_]{0,63}$`, `^[0-9A-Za-z][0-9A-Za-z_-]{0,127}$`}
	samples := []string{"", "cus_", "cus_A1", "cus_A1!", "evt_1_2", "invoice.payment_failed", "Invoice.paid", "a", "-a",
		"a-", "get_live_flow", "Get", "a" + string(make([]byte, 64)), "x\n", "cus_" + repeat('a', 200), "cus_" + repeat('a', 201)}
	for _, p := range patterns {
		c, re := MustClass(p), regexp.MustCompile(p)
		for _, s := range samples {
			if got, want := c.Match(s), re.MatchString(s); got != want {
				t.Errorf("%q on %q: table %v, regexp %v", p, s, got, want)
			}
		}
	}
}

func TestMustClassRefusesOtherPatterns(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("MustClass took a pattern that needs regexp")
		}
	}()
	MustClass(`^(ab)+$`)
}

func repeat(c byte, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = c
	}
	return string(b)
}
