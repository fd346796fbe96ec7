// Command testreport reads `go test -json` output and fails when any test failed or
// when a test was skipped that the allow-list does not name (with a reason): in CI a
// skip means a stand-in did not start or a check did not run, and must not pass
// silently. Usage: go run ./.ci/testreport -allow .ci/allowed-skips < test.json
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

type event struct {
	Action  string
	Package string
	Test    string
	Output  string
}

func main() {
	allowPath := flag.String("allow", ".ci/allowed-skips", "allowed skips: `<package> <test> <reason>` a line")
	flag.Parse()
	allowed, err := readAllowed(*allowPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testreport:", err)
		os.Exit(2)
	}
	os.Exit(report(os.Stdin, os.Stdout, allowed))
}

// readAllowed reads the allow-list; a line without a reason is an error.
func readAllowed(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for n, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 3 {
			return nil, fmt.Errorf("%s:%d: want `<package> <test> <reason>`", path, n+1)
		}
		out[f[0]+" "+f[1]] = strings.Join(f[2:], " ")
	}
	return out, nil
}

// report prints the output of failed tests, every skip with its reason, and a
// summary; it returns the exit code.
func report(in io.Reader, out io.Writer, allowed map[string]string) int {
	output := map[string]*strings.Builder{} // "pkg test" → its output
	var failed, skipped []string
	passed := 0
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var e event
		if json.Unmarshal(sc.Bytes(), &e) != nil {
			fmt.Fprintln(out, sc.Text()) // build errors and the like come as plain text
			continue
		}
		key := e.Package + " " + e.Test
		switch e.Action {
		case "output":
			b := output[key]
			if b == nil {
				b = &strings.Builder{}
				output[key] = b
			}
			b.WriteString(e.Output)
		case "fail":
			failed = append(failed, key)
		case "skip":
			if e.Test != "" { // a package without tests is "skip" with no test: not a skipped check
				skipped = append(skipped, key)
			}
		case "pass":
			if e.Test != "" {
				passed++
			}
		}
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintln(out, "testreport: reading the test output:", err)
		return 2
	}
	sort.Strings(failed)
	for _, k := range failed {
		if b := output[k]; b != nil {
			fmt.Fprintf(out, "--- FAIL %s\n%s\n", k, b.String())
		}
	}
	code := 0
	if len(failed) > 0 {
		code = 1
	}
	sort.Strings(skipped)
	for _, k := range skipped {
		if reason, ok := allowed[k]; ok {
			fmt.Fprintf(out, "skipped (allowed: %s): %s\n", reason, k)
			continue
		}
		why := ""
		if b := output[k]; b != nil {
			why = strings.TrimSpace(b.String())
		}
		fmt.Fprintf(out, "SKIPPED, NOT ALLOWED IN CI: %s\n%s\n", k, why)
		code = 1
	}
	fmt.Fprintf(out, "tests: %d passed, %d failed, %d skipped\n", passed, len(failed), len(skipped))
	return code
}
