package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/flowstudio/mcp/cosmos"
)

// reports is `flowstudio reports list`: the bug reports filed with report_bug,
// newest first, from the embedded store or Cosmos DB (whichever the settings
// name). Reports are shown only here, never logged. The store keeps a
// partition per UTC day; ListBugReports walks them from today back over the
// 90 days reports are kept (then the reports filed before day partitions),
// and this loop stops as soon as --limit reports are shown.
func reports(args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	if len(args) > 0 && args[0] == "state" {
		return reportState(args[1:], stdout, stderr, getenv)
	}
	if len(args) == 0 || args[0] != "list" {
		return errors.New("usage: flowstudio reports list [--limit N] [--json] [--data-dir D]\n" +
			"       flowstudio reports state --id ID --state " + strings.Join(cosmos.BugReportStates, "|") + " [--note TEXT] [--data-dir D]")
	}
	var limit int
	var asJSON bool
	settings, err := settingsWithFlags("reports list", args[1:], stderr, getenv, func(fs *flag.FlagSet) {
		fs.IntVar(&limit, "limit", 50, "show at most this many reports, newest first")
		fs.BoolVar(&asJSON, "json", false, "print one JSON object per line")
	})
	if err != nil {
		return err
	}
	if limit < 1 {
		return errors.New("--limit must be at least 1")
	}
	ctx, store, done, err := commandStore(settings, getenv, time.Minute)
	if err != nil {
		return err
	}
	defer done()

	shown, token := 0, ""
	for shown < limit {
		page, next, err := store.ListBugReports(ctx, cosmos.PageRequest{Size: min(limit-shown, 100), Token: token})
		if err != nil {
			return err
		}
		for _, r := range page {
			if err := printReport(stdout, r, asJSON); err != nil {
				return err
			}
			shown++
		}
		if next == "" {
			break
		}
		token = next
	}
	if shown == 0 && !asJSON {
		fmt.Fprintln(stdout, "no bug reports")
	}
	return nil
}

func printReport(w io.Writer, r *cosmos.BugReport, asJSON bool) error {
	if asJSON {
		return json.NewEncoder(w).Encode(r)
	}
	fmt.Fprintf(w, "── %s  %s\n", time.Unix(r.CreatedAt, 0).UTC().Format(time.RFC3339), r.ID)
	fmt.Fprintf(w, "user %s  tier %s  tool %s  request %s\n", orDash(r.UserHash), orDash(r.Tier), orDash(r.Tool), orDash(r.RequestID))
	fmt.Fprintf(w, "state %s", r.StateOrReceived())
	if r.StateNote != "" {
		fmt.Fprintf(w, "  note: %s", oneLine(r.StateNote))
	}
	fmt.Fprintf(w, "\ntitle: %s\n\n%s\n", oneLine(r.Title), indent(r.Description))
	if r.Evidence != "" {
		fmt.Fprintf(w, "\nevidence:\n%s\n", indent(r.Evidence))
	}
	for _, a := range r.Appended {
		fmt.Fprintf(w, "\nappended %s:\n%s\n", time.Unix(a.At, 0).UTC().Format(time.RFC3339), indent(a.Text))
	}
	_, err := fmt.Fprintln(w)
	return err
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// oneLine and indent keep a report's text from forging lines of the listing
// (and terminal escape sequences from reaching the operator's terminal).
func oneLine(s string) string { return strings.Join(strings.Fields(printable(s)), " ") }

func indent(s string) string {
	lines := strings.Split(printable(s), "\n")
	for i, l := range lines {
		lines[i] = "    " + l
	}
	return strings.Join(lines, "\n")
}

func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\t' || (r >= 0x20 && r != 0x7f && (r < 0x80 || r > 0x9f)) {
			return r
		}
		return '�'
	}, s)
}

// reportState is `flowstudio reports state`: the operators say where they are with
// a report, and optionally a note to its reporter, who sees both with report_bug's
// status action.
func reportState(args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	var id, state, note string
	settings, err := settingsWithFlags("reports state", args, stderr, getenv, func(fs *flag.FlagSet) {
		fs.StringVar(&id, "id", "", "the report id (from reports list)")
		fs.StringVar(&state, "state", "", "one of "+strings.Join(cosmos.BugReportStates, ", "))
		fs.StringVar(&note, "note", "", "a note the reporter sees (at most 1000 bytes)")
	})
	if err != nil {
		return err
	}
	if !cosmos.ValidBugReportID(id) {
		return errors.New("--id must be a report id as reports list prints it")
	}
	ctx, store, done, err := commandStore(settings, getenv, time.Minute)
	if err != nil {
		return err
	}
	defer done()
	r, err := store.SetBugReportState(ctx, id, state, note)
	if errors.Is(err, cosmos.ErrNotFound) {
		return errors.New("no report with this id (reports are kept 90 days)")
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s is now %s\n", r.ID, r.StateOrReceived())
	return nil
}
