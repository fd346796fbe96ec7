package main

import (
	"strings"
	"testing"
)

func TestReportFailsOnSkipsNotAllowedAndOnFailures(t *testing.T) {
	stream := func(lines ...string) *strings.Reader { return strings.NewReader(strings.Join(lines, "\n")) }
	pass := `{"Action":"pass","Package":"p","Test":"TestA"}`
	skip := `{"Action":"output","Package":"p","Test":"TestB","Output":"COSMOS_TEST_ENDPOINT is not set\n"}` + "\n" +
		`{"Action":"skip","Package":"p","Test":"TestB"}`
	noTests := `{"Action":"skip","Package":"q"}`
	fail := `{"Action":"output","Package":"p","Test":"TestC","Output":"boom\n"}` + "\n" + `{"Action":"fail","Package":"p","Test":"TestC"}`
	for name, c := range map[string]struct {
		in      *strings.Reader
		allowed map[string]string
		code    int
		says    string
	}{
		"all pass":             {stream(pass, noTests), nil, 0, "1 passed, 0 failed, 0 skipped"},
		"a skip":               {stream(pass, skip), nil, 1, "SKIPPED, NOT ALLOWED IN CI: p TestB\nCOSMOS_TEST_ENDPOINT is not set"},
		"an allowed skip":      {stream(pass, skip), map[string]string{"p TestB": "needs a GPU"}, 0, "skipped (allowed: needs a GPU): p TestB"},
		"a failure":            {stream(pass, fail), nil, 1, "--- FAIL p TestC\nboom"},
		"a build error (text)": {stream("# p\n./x.go:1: syntax error", `{"Action":"fail","Package":"p"}`), nil, 1, "syntax error"},
	} {
		var out strings.Builder
		if code := report(c.in, &out, c.allowed); code != c.code || !strings.Contains(out.String(), c.says) {
			t.Errorf("%s: code %d, output:\n%s", name, code, out.String())
		}
	}
}
