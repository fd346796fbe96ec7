package tools

import (
	"context"
	"encoding/json"
	"strings"

	"github.com/flowstudio/mcp/tools/powerautomate"
)

// Schema fragments shared by the flow tools. Identifiers are checked again by the
// client before any request; the patterns here give agents an early, clear error.
const (
	environmentNameSchema = `{"type":"string","minLength":1,"maxLength":80,"pattern":"^[A-Za-z0-9~][A-Za-z0-9-]*$","description":"Environment name from list_live_environments, e.g. Default-<tenant guid>."}`
	flowNameSchema        = `{"type":"string","minLength":36,"maxLength":36,"pattern":"^[0-9A-Fa-f-]{36}$","description":"Flow name (a GUID) from list_live_flows."}`
	pageSizeSchema        = `{"type":"integer","minimum":1,"maximum":250,"default":50,"description":"Rows per page."}`
	cursorSchema          = `{"type":"string","maxLength":4096,"description":"nextCursor from the previous page."}`
)

type flowRow struct {
	Name        string `json:"name"`
	DisplayName string `json:"displayName"`
	State       string `json:"state"`
	Trigger     string `json:"trigger,omitempty"`
	Created     string `json:"created,omitempty"`
	Modified    string `json:"modified,omitempty"`
	CreatorID   string `json:"creatorObjectId,omitempty"`
	UserType    string `json:"userType,omitempty"`
	Suspended   string `json:"suspensionReason,omitempty"`
}

type flowsIn struct {
	EnvironmentName string `json:"environmentName"`
	Mode            string `json:"mode"`
	Search          string `json:"search"`
	PageSize        int    `json:"pageSize"`
	Cursor          string `json:"cursor"`
}

type flowsOut struct {
	Flows      []flowRow `json:"flows"`
	NextCursor string    `json:"nextCursor,omitempty"`
}

// searchPages bounds how many upstream pages one call scans for a search.
const searchPages = 10

func listLiveFlows() *Tool {
	return Define(Tool{
		Name:  "list_live_flows",
		Title: "List cloud flows in an environment",
		Description: "Lists cloud flows in an environment, compactly: name (the flowName for other tools), display name, " +
			"state, trigger kind, created/modified, creator object id. mode=owner (default) lists flows you own or that " +
			"are shared with you; mode=admin lists every flow (environment admins). search filters by display name " +
			"(case-insensitive). Pages with pageSize and nextCursor. Next: get_live_flow for a definition, " +
			"get_live_flow_runs for its run history.",
		Kind:  ReadOnly,
		Group: Live,
		Input: json.RawMessage(`{"type":"object","required":["environmentName"],"additionalProperties":false,"properties":{
"environmentName":` + environmentNameSchema + `,
"mode":{"type":"string","enum":["owner","admin"],"default":"owner","description":"owner: your flows and flows shared with you; admin: every flow in the environment."},
"search":{"type":"string","maxLength":200,"description":"Case-insensitive text to find in the display name."},
"pageSize":` + pageSizeSchema + `,
"cursor":` + cursorSchema + `}}`),
		Output: json.RawMessage(`{"type":"object","required":["flows"],"properties":{"flows":{"type":"array","items":{"type":"object",
"required":["name","displayName","state"],"properties":{"name":{"type":"string"},"displayName":{"type":"string"},"state":{"type":"string"},
"trigger":{"type":"string"},"created":{"type":"string"},"modified":{"type":"string"},"creatorObjectId":{"type":"string"},
"userType":{"type":"string"},"suspensionReason":{"type":"string"}}}},"nextCursor":{"type":"string"}}}`),
	}, func(ctx context.Context, env *Env, in flowsIn) (flowsOut, error) {
		next, err := linkFromCursor(in.Cursor)
		if err != nil {
			return flowsOut{}, err
		}
		if in.PageSize == 0 {
			in.PageSize = 50
		}
		search := strings.ToLower(strings.TrimSpace(in.Search))
		out := flowsOut{Flows: []flowRow{}}
		for range searchPages {
			page, err := env.PA.ListFlows(ctx, in.EnvironmentName, powerautomate.ListFlowsOptions{
				Admin: in.Mode == "admin", Top: in.PageSize, NextLink: next,
			})
			if err != nil {
				return flowsOut{}, err
			}
			for _, f := range page.Flows {
				if search == "" || strings.Contains(strings.ToLower(f.DisplayName), search) {
					out.Flows = append(out.Flows, toFlowRow(f))
				}
			}
			next = page.NextLink
			// Without a search one upstream page is one page; with one, keep scanning
			// until the page is full or the list ends.
			if search == "" || next == "" || len(out.Flows) >= in.PageSize {
				break
			}
		}
		out.NextCursor = linkCursor(next)
		return out, nil
	})
}

func toFlowRow(f powerautomate.Flow) flowRow {
	row := flowRow{Name: f.Name, DisplayName: f.DisplayName, State: f.State, Created: day(f.CreatedTime),
		Modified: day(f.LastModifiedTime), CreatorID: f.Creator.ObjectID, UserType: f.UserType}
	if f.SuspensionReason != "" && f.SuspensionReason != "None" {
		row.Suspended = f.SuspensionReason
	}
	if len(f.Triggers) > 0 {
		row.Trigger = f.Triggers[0].Type
		if f.Triggers[0].Kind != "" {
			row.Trigger += "/" + f.Triggers[0].Kind
		}
	}
	return row
}
