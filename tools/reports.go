package tools

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/flowstudio/mcp/cosmos"
	"github.com/flowstudio/mcp/rpc"
	"github.com/flowstudio/mcp/server/telemetry"
)

// --- report_bug: the product's support channel ---

type reportBugIn struct {
	Action      string `json:"action"`
	Title       string `json:"title"`
	Description string `json:"description"`
	Evidence    string `json:"evidence"`
	Tool        string `json:"tool"`
	ReportID    string `json:"reportId"`
	Limit       int    `json:"limit"`
}

// myReportRow is one of the caller's reports as status shows it: never the text
// (the caller wrote it), only what the operators did with it.
type myReportRow struct {
	ID        string `json:"id"`
	Title     string `json:"title"`
	Tool      string `json:"tool,omitempty"`
	Received  string `json:"received"`
	State     string `json:"state"`
	StateNote string `json:"stateNote,omitempty"`
	Updated   string `json:"updated,omitempty"`
	Appended  int    `json:"appended"`
	Bytes     int    `json:"bytes"`
}

type reportBugOut struct {
	Action    string        `json:"action"`
	ID        string        `json:"id,omitempty"`
	Received  string        `json:"received,omitempty"`
	Reports   []myReportRow `json:"reports,omitempty"`
	BytesLeft *int          `json:"bytesLeft,omitempty"`
	Note      string        `json:"note,omitempty"`
}

const (
	reportActionFile   = "file"
	reportActionStatus = "status"
	reportActionAppend = "append"
	defaultMyReports   = 10
)

func reportBug() *Tool {
	return Define(Tool{
		Name:  "report_bug",
		Title: "Report a bug to the FlowStudio operators, see your reports, add evidence",
		Description: "The FlowStudio support channel. action file (the default) files a bug report with the operators: a " +
			"title, what happened and what was expected, and text evidence (the tool called, its arguments and the error, " +
			"with secrets and personal data removed). action status lists your own reports, newest first (or one, by " +
			"reportId), with where the operators are with each (received, acknowledged, fixed, wontfix, closed) and their " +
			"note. action append adds evidence to one of your reports (reportId and evidence). A report holds at most 8 KiB " +
			"in all (title, description, evidence and everything appended); filing and appending count together, at most " +
			strconv.Itoa(MaxBugReportsPerDay) + " a day. Reports are stored with your hashed user id and the time, kept 90 " +
			"days, never logged; only you see yours. Works on every plan, even past quota.",
		Kind:  Write,
		Group: Meta,
		Input: inputSchema(
			optionalArg("action", `{"type":"string","enum":["file","status","append"],"default":"file","description":"file a report (title and description), status of your reports, or append evidence to one (reportId and evidence)."}`),
			optionalArg("title", `{"type":"string","minLength":1,"maxLength":200,"description":"file: one line, what went wrong."}`),
			optionalArg("description", `{"type":"string","minLength":1,"maxLength":8192,"description":"file: what you did, what happened, what you expected."}`),
			optionalArg("evidence", `{"type":"string","maxLength":8192,"description":"file or append: text evidence, the tool, arguments and error text. Remove secrets and personal data."}`),
			optionalArg("tool", `{"type":"string","maxLength":64,"pattern":"^[a-z][a-z0-9_]*$","description":"file: the tool the report is about, if any."}`),
			optionalArg("reportId", `{"type":"string","minLength":28,"maxLength":28,"pattern":"^[0-9]{19}-[0-9a-f]{8}$","description":"append (required) or status (only this one): the id report_bug returned when you filed it."}`),
			optionalArg("limit", `{"type":"integer","minimum":1,"maximum":50,"default":10,"description":"status: at most this many reports, newest first."}`)),
		Output: json.RawMessage(`{"type":"object","additionalProperties":false,"required":["action"],"properties":{
"action":{"type":"string","enum":["file","status","append"]},
"id":{"type":"string","description":"file, append: the report's id."},
"received":{"type":"string","description":"file: when it was stored (RFC 3339)."},
"reports":{"type":"array","description":"status: your reports, newest first.","items":{"type":"object","additionalProperties":false,
"required":["id","title","received","state","appended","bytes"],"properties":{
"id":{"type":"string"},"title":{"type":"string"},"tool":{"type":"string"},"received":{"type":"string"},
"state":{"type":"string","enum":["received","acknowledged","fixed","wontfix","closed"]},"stateNote":{"type":"string"},
"updated":{"type":"string"},"appended":{"type":"integer","description":"Evidence appended since filing."},
"bytes":{"type":"integer","description":"The report's size against the 8 KiB cap."}}}},
"bytesLeft":{"type":"integer","description":"append: bytes the report can still take."},
"note":{"type":"string"}}}`),
	}, func(ctx context.Context, env *Env, in reportBugIn) (reportBugOut, error) {
		if in.Action == "" {
			in.Action = reportActionFile
		}
		if err := in.check(); err != nil {
			return reportBugOut{}, err
		}
		if env == nil || env.Reports == nil {
			return reportBugOut{}, &ToolError{Message: "this server does not take bug reports"}
		}
		p := PrincipalFrom(ctx)
		if p == nil || p.UserID == "" {
			return reportBugOut{}, &ToolError{Message: "report_bug needs a signed-in caller: reports and their daily limit are per user"}
		}
		var out reportBugOut
		var err error
		switch in.Action {
		case reportActionStatus:
			out, err = reportStatus(ctx, env, p, in)
		case reportActionAppend:
			out, err = reportAppend(ctx, env, p, in)
		default:
			out, err = reportFile(ctx, env, p, in)
		}
		if _, ok := errors.AsType[*cosmos.ReportLimitError](err); ok {
			telemetry.QuotaRefusal(telemetry.BugReports, string(p.Tier))
		}
		return out, reportStoreError(err, in.Action)
	})
}

// check refuses arguments that do not belong to the action, naming them.
func (in *reportBugIn) check() error {
	misplaced := func(field string) error {
		return &ToolError{Message: "invalid argument " + field + ": not used by action " + in.Action,
			Next: "file takes title, description, evidence, tool; status takes reportId, limit; append takes reportId, evidence"}
	}
	switch in.Action {
	case reportActionFile:
		if in.Title == "" || in.Description == "" {
			return &ToolError{Message: "invalid arguments: action file needs title and description"}
		}
		if in.ReportID != "" {
			return misplaced("reportId")
		}
		if in.Limit != 0 {
			return misplaced("limit")
		}
		if size := len(in.Title) + len(in.Description) + len(in.Evidence); size > MaxBugReportBytes {
			return &ToolError{
				Message: fmt.Sprintf("the report is %d bytes; the limit is %d bytes (8 KiB) for title, description and evidence together", size, MaxBugReportBytes),
				Next:    "keep only the relevant lines of the evidence and file it again"}
		}
	case reportActionStatus, reportActionAppend:
		for field, v := range map[string]string{"title": in.Title, "description": in.Description, "tool": in.Tool} {
			if v != "" {
				return misplaced(field)
			}
		}
		if in.Action == reportActionStatus && in.Evidence != "" {
			return misplaced("evidence")
		}
		if in.Action == reportActionAppend {
			if in.Limit != 0 {
				return misplaced("limit")
			}
			if in.ReportID == "" || in.Evidence == "" {
				return &ToolError{Message: "invalid arguments: action append needs reportId and evidence",
					Next: "report_bug with action status lists your reports and their ids"}
			}
		}
	}
	return nil
}

func reportFile(ctx context.Context, env *Env, p *Principal, in reportBugIn) (reportBugOut, error) {
	// The user id only counts the report and indexes it for its reporter; the
	// report itself names its reporter by the email hash alone.
	r := &cosmos.BugReport{Title: in.Title, Description: in.Description, Evidence: in.Evidence,
		Tool: in.Tool, RequestID: rpc.RequestID(ctx), UserHash: p.EmailHash, Tier: string(p.Tier)}
	stored, err := env.Reports.AddBugReport(ctx, p.UserID, MaxBugReportsPerDay, r)
	if err != nil {
		return reportBugOut{}, err
	}
	return reportBugOut{Action: reportActionFile, ID: stored.ID, Received: reportTime(stored.CreatedAt),
		Note: "thank you; the operators read every report. report_bug with action status shows where they are with it"}, nil
}

func reportStatus(ctx context.Context, env *Env, p *Principal, in reportBugIn) (reportBugOut, error) {
	limit := in.Limit
	if limit == 0 {
		limit = defaultMyReports
	}
	if in.ReportID != "" {
		limit = cosmos.MaxMyBugReports // look for it among the newest
	}
	reports, err := env.Reports.ListMyBugReports(ctx, p.UserID, limit)
	if err != nil {
		return reportBugOut{}, err
	}
	out := reportBugOut{Action: reportActionStatus, Reports: []myReportRow{}}
	for _, r := range reports {
		if in.ReportID != "" && r.ID != in.ReportID {
			continue
		}
		row := myReportRow{ID: r.ID, Title: r.Title, Tool: r.Tool, Received: reportTime(r.CreatedAt), State: r.StateOrReceived(),
			StateNote: r.StateNote, Appended: len(r.Appended), Bytes: r.Size()}
		if r.UpdatedAt != 0 {
			row.Updated = reportTime(r.UpdatedAt)
		}
		out.Reports = append(out.Reports, row)
	}
	switch {
	case in.ReportID != "" && len(out.Reports) == 0:
		return reportBugOut{}, errNotMyReport
	case len(out.Reports) == 0:
		out.Note = "you have filed no reports in the last 90 days (reports are kept that long)"
	}
	return out, nil
}

func reportAppend(ctx context.Context, env *Env, p *Principal, in reportBugIn) (reportBugOut, error) {
	r, err := env.Reports.AppendBugReport(ctx, p.UserID, MaxBugReportsPerDay, in.ReportID, in.Evidence, MaxBugReportBytes)
	if err != nil {
		return reportBugOut{}, err
	}
	left := MaxBugReportBytes - r.Size()
	return reportBugOut{Action: reportActionAppend, ID: r.ID, BytesLeft: &left,
		Note: "added; the operators see it with the report"}, nil
}

var errNotMyReport = &ToolError{Message: "you have no report with this id (reports are kept 90 days; only your own are visible to you)",
	Next: "report_bug with action status lists your reports and their ids"}

// reportStoreError maps the store's refusals to what the caller can act on.
func reportStoreError(err error, action string) error {
	var lim *cosmos.ReportLimitError
	var big *cosmos.ReportTooLargeError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &lim):
		te := &ToolError{
			Message: fmt.Sprintf("you have filed %d reports today, the daily limit; it resets at %s UTC",
				lim.Limit, lim.ResetsAt.UTC().Format("2006-01-02 15:04")),
			Next: "file it after the reset"}
		if action == reportActionAppend {
			te.Message = fmt.Sprintf("you have filed or added evidence %d times today, the daily limit (appends count like reports); it resets at %s UTC",
				lim.Limit, lim.ResetsAt.UTC().Format("2006-01-02 15:04"))
			te.Next = "append it after the reset"
		}
		return te
	case errors.As(err, &big):
		return &ToolError{
			Message: fmt.Sprintf("the report is %d bytes and this evidence %d; a report holds at most %d bytes (8 KiB) in all", big.Size, big.Adding, big.Max),
			Next:    "append only the relevant lines, or file a new report"}
	case errors.Is(err, cosmos.ErrNotFound):
		return errNotMyReport
	case errors.Is(err, cosmos.ErrThrottled), errors.Is(err, cosmos.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		return &ToolError{Message: "the report store is busy or unreachable", Next: "retry in a few seconds"}
	}
	return err
}

func reportTime(unix int64) string { return time.Unix(unix, 0).UTC().Format(time.RFC3339) }
