package tools

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"unicode"

	"github.com/flowstudio/mcp/cosmos"
	"github.com/flowstudio/mcp/rpc"
)

// Meta tools help an agent find its way. They are free on every plan, are not
// counted against quota and work past it (the Meter skips Group Meta).

// ReportStore keeps report_bug submissions (cosmos.Store implements it).
type ReportStore interface {
	// AddBugReport stores r unless the user userID has filed perDay reports
	// this UTC day; then it answers *cosmos.ReportLimitError. The count is
	// atomic on the store, so every replica keeps the one cap.
	AddBugReport(ctx context.Context, userID string, perDay int64, r *cosmos.BugReport) (*cosmos.BugReport, error)
	// ListMyBugReports returns the user's own reports, newest first, at most limit.
	ListMyBugReports(ctx context.Context, userID string, limit int) ([]*cosmos.BugReport, error)
	// AppendBugReport adds evidence to one of the user's own reports (cosmos.ErrNotFound
	// for any other id), counted against perDay and kept within maxBytes
	// (*cosmos.ReportLimitError, *cosmos.ReportTooLargeError).
	AppendBugReport(ctx context.Context, userID string, perDay int64, id, text string, maxBytes int) (*cosmos.BugReport, error)
}

// MaxBugReportBytes caps a report: title, description and evidence together,
// in bytes of UTF-8.
const MaxBugReportBytes = 8 << 10

// MaxBugReportsPerDay caps the reports one user files per UTC day. report_bug
// is free and works past quota, so without a cap one key could fill the store
// (a review stored 600 reports in 1.3 s); 20 is far more than anyone files by
// hand, and bounds an agent stuck in a loop to 160 KiB a day. The store takes
// the cap as an argument, so its tests choose their own.
const MaxBugReportsPerDay = 20

// skill is a bundle of tools for one task, in the order an agent uses them.
// Steps name tools that may not exist in every build (some are still being
// written): the catalog shows only the steps whose tools it has.
type skill struct {
	Name  string
	Title string
	Goal  string
	Steps []skillStep
}

type skillStep struct {
	Tool string
	Why  string
}

var skills = []skill{
	{
		Name: "discover", Title: "Discover a tenant",
		Goal: "find your way around the user's Power Platform tenant: environments, flows, connections, makers and apps",
		Steps: []skillStep{
			{"list_live_environments", "pick an environment; its name is the environmentName of every other live tool"},
			{"list_live_flows", "list the environment's flows (search by display name; mode=admin for every flow)"},
			{"get_live_flow", "read one flow: trigger, actions, connection references"},
			{"list_live_connections", "see the connections the flows use and whether they are healthy"},
			{"list_store_environments", "team plan: the cached inventory across environments, with counts"},
			{"list_store_flows", "team plan: search every cached flow by state, tag or owner without paging upstream"},
			{"list_store_makers", "team plan: who builds flows and apps"},
			{"list_store_power_apps", "team plan: the Power Apps inventory"},
		},
	},
	{
		Name: "build-flow", Title: "Build or change a flow",
		Goal: "create a cloud flow or change one safely: find connections and connector operations, validate, save, test",
		Steps: []skillStep{
			{"list_live_environments", "pick the environment to build in"},
			{"list_live_connections", "find the connections to use and copy their connection-reference templates"},
			{"create_live_connection", "a connector with no connection yet: the person signs it in, then use its connectionReference"},
			{"describe_live_connector", "see a connector's operations and the parameters of the one you need"},
			{"get_live_dynamic_options", "resolve a parameter's dropdown values (lists, tables, folders)"},
			{"get_live_dynamic_properties", "resolve a dynamic schema (the columns of a list or table)"},
			{"get_live_flow", "when changing a flow, start from its current definition"},
			{"validate_live_flow", "check the definition for errors and warnings before saving"},
			{"update_live_flow", "save: create (no flowName) or patch; it validates, reads back and reports the changes"},
			{"set_live_flow_state", "turn the flow on"},
			{"trigger_live_flow", "run it once with a test body (manual and HTTP request triggers)"},
			{"get_live_flow_runs", "check that the test run succeeded"},
		},
	},
	{
		Name: "debug-flow", Title: "Debug a failing flow",
		Goal: "find why a flow run failed, fix the flow and rerun the failed run",
		Steps: []skillStep{
			{"list_live_flows", "find the flow (search by display name)"},
			{"get_live_flow_runs", "list its recent runs; filter status Failed"},
			{"get_live_flow_run_error", "the failed actions of a run, outer to inner: the root cause is last"},
			{"get_live_flow_run_action_outputs", "inspect the failing action's inputs and outputs (loop iterations by index)"},
			{"test_live_connection", "when the error points at a connection: is it healthy?"},
			{"get_live_flow", "read the definition around the failing action"},
			{"validate_live_flow", "check the fixed definition before saving"},
			{"update_live_flow", "save the fix"},
			{"resubmit_live_flow_run", "rerun the failed run with its original trigger"},
			{"cancel_live_flow_run", "stop a run that hangs or loops"},
		},
	},
	{
		Name: "monitor-flow", Title: "Monitor flows",
		Goal: "watch the health of important flows: failure rates, recent failures, who to notify",
		Steps: []skillStep{
			{"list_store_flows", "team plan: the monitored or critical flows (filters monitored=true, critical=true)"},
			{"get_store_flow_summary", "team plan: runs, failures, failure rate and average duration over a window"},
			{"get_store_flow_runs", "team plan: the cached recent runs of a flow"},
			{"get_live_flow_runs", "the live run history, for what happened in the last minutes"},
			{"get_live_flow_run_error", "the root cause of a failed run"},
			{"update_store_flow", "team plan: turn monitoring on and set notify rules"},
		},
	},
	{
		Name: "governance", Title: "Govern flows",
		Goal: "keep an inventory of flows with owners, business impact and tags, and find risky ones",
		Steps: []skillStep{
			{"list_store_environments", "team plan: environments with flow and connection counts"},
			{"list_store_flows", "team plan: every cached flow; filter by tag, state, critical"},
			{"get_store_flow", "team plan: one flow with its governance fields"},
			{"update_store_flow", "team plan: set tags, business impact, owner team, support email, critical, tier"},
			{"list_store_makers", "team plan: the people who own flows and apps"},
			{"get_store_maker", "team plan: one maker's flows and apps"},
			{"list_store_connections", "team plan: the connection inventory and the flows that use each"},
			{"list_store_power_apps", "team plan: the Power Apps inventory"},
			{"list_live_flows", "every plan: the live list of an environment's flows (mode=admin for all)"},
			{"add_live_flow_to_solution", "put a flow into an unmanaged solution so it moves between environments with it (a flow outside Dataverse is moved in; the Dataverse grant is needed except to move one by solutionId)"},
		},
	},
}

var skillNames = func() []string {
	var names []string
	for _, s := range skills {
		names = append(names, s.Name)
	}
	return names
}()

func findSkill(name string) *skill {
	for i := range skills {
		if skills[i].Name == name {
			return &skills[i]
		}
	}
	return nil
}

// skillView is a skill as the caller sees it: only steps whose tools this
// catalog has and this key may use.
type skillView struct {
	Name  string          `json:"name"`
	Title string          `json:"title"`
	Goal  string          `json:"goal"`
	Steps []skillStepView `json:"steps"`
}

type skillStepView struct {
	Tool string `json:"tool"`
	Why  string `json:"why"`
	// Needs names the plan a step needs when the caller's plan is lower.
	Needs string `json:"needs,omitempty"`
}

func (c *Catalog) skillView(s *skill, p *Principal) skillView {
	v := skillView{Name: s.Name, Title: s.Title, Goal: s.Goal, Steps: []skillStepView{}}
	for _, st := range s.Steps {
		t := c.byName[st.Tool]
		if t == nil || (p != nil && !p.canSee(t)) {
			continue
		}
		step := skillStepView{Tool: t.Name, Why: st.Why}
		if p != nil && !p.Tier.AtLeast(t.MinTier()) {
			step.Needs = string(t.MinTier())
		}
		v.Steps = append(v.Steps, step)
	}
	return v
}

// catalogOf returns the catalog serving a meta tool.
func catalogOf(env *Env) (*Catalog, error) {
	if env == nil || env.catalog == nil {
		return nil, fmt.Errorf("meta tool run outside a catalog")
	}
	return env.catalog, nil
}

// --- tool_search ---

type toolSearchIn struct {
	Query string `json:"query"`
	Limit int    `json:"limit"`
}

type toolSearchOut struct {
	Tools   []any    `json:"tools"`
	Unknown []string `json:"unknown,omitempty"`
	Hint    string   `json:"hint,omitempty"`
}

// toolRow is a compact search result.
type toolRow struct {
	Name    string `json:"name"`
	Title   string `json:"title"`
	Kind    string `json:"kind"`
	Plan    string `json:"plan"`
	Summary string `json:"summary"`
	Why     string `json:"why,omitempty"`
}

func (t *Tool) row(why string) toolRow {
	kind := map[Kind]string{ReadOnly: "read", Write: "write", Destructive: "destructive"}[t.Kind]
	return toolRow{Name: t.Name, Title: t.Title, Kind: kind, Plan: string(t.MinTier()), Summary: firstSentence(t.Description), Why: why}
}

func firstSentence(s string) string {
	if i := strings.Index(s, ". "); i > 0 {
		s = s[:i+1]
	}
	if len(s) > 200 {
		s = s[:197] + "…"
	}
	return s
}

func toolSearch() *Tool {
	return Define(Tool{
		Name:  "tool_search",
		Title: "Search the tools",
		Description: "Finds tools without loading the whole catalog. query takes keywords (e.g. \"failed run error\") and " +
			"returns compact rows (name, title, kind, plan, one-line summary), best match first; skill:<name> returns a " +
			"bundle's tools in order (" + strings.Join(skillNames, ", ") + "); select:tool_a,tool_b returns those tools' " +
			"full definitions with input schemas, ready to call. Free, and not counted against quota.",
		Kind:  ReadOnly,
		Group: Meta,
		Pure:  true,
		Input: inputSchema(
			requiredArg("query", `{"type":"string","minLength":1,"maxLength":300,"description":"Keywords; or skill:<name> for a bundle; or select:tool_a,tool_b for full definitions."}`),
			optionalArg("limit", `{"type":"integer","minimum":1,"maximum":50,"default":10,"description":"Most rows to return for a keyword search."}`)),
		Output: json.RawMessage(`{"type":"object","required":["tools"],"properties":{"tools":{"type":"array","items":{"type":"object"}},
"unknown":{"type":"array","items":{"type":"string"}},"hint":{"type":"string"}}}`),
	}, func(ctx context.Context, env *Env, in toolSearchIn) (toolSearchOut, error) {
		c, err := catalogOf(env)
		if err != nil {
			return toolSearchOut{}, err
		}
		p := PrincipalFrom(ctx)
		q := strings.TrimSpace(in.Query)
		switch {
		case strings.HasPrefix(q, "select:"):
			return c.selectTools(p, strings.TrimPrefix(q, "select:")), nil
		case strings.HasPrefix(q, "skill:"):
			name := strings.TrimSpace(strings.TrimPrefix(q, "skill:"))
			s := findSkill(name)
			if s == nil {
				return toolSearchOut{}, &ToolError{Message: "unknown skill " + quoteShort(name),
					Next: "use one of " + strings.Join(skillNames, ", ") + " (list_skills describes them)"}
			}
			out := toolSearchOut{Tools: []any{}, Hint: "select:<names> returns input schemas"}
			for _, st := range c.skillView(s, p).Steps {
				out.Tools = append(out.Tools, c.byName[st.Tool].row(st.Why))
			}
			return out, nil
		}
		if in.Limit == 0 {
			in.Limit = 10
		}
		out := toolSearchOut{Tools: []any{}}
		for _, t := range c.search(p, q, in.Limit) {
			out.Tools = append(out.Tools, t.row(""))
		}
		if len(out.Tools) == 0 {
			out.Hint = "nothing matched; try fewer or other words, or skill:<name> with one of " + strings.Join(skillNames, ", ")
		} else {
			out.Hint = "select:<names> returns input schemas"
		}
		return out, nil
	})
}

func (c *Catalog) selectTools(p *Principal, list string) toolSearchOut {
	out := toolSearchOut{Tools: []any{}}
	seen := map[string]bool{}
	for _, name := range strings.Split(list, ",") {
		name = strings.TrimSpace(name)
		if name == "" || seen[name] {
			continue
		}
		seen[name] = true
		t := c.byName[name]
		if t == nil || (p != nil && !p.canSee(t)) {
			out.Unknown = append(out.Unknown, quoteShort(name))
			continue
		}
		out.Tools = append(out.Tools, t.listing())
	}
	if len(out.Unknown) > 0 {
		out.Hint = "unknown tools are not in this catalog or not available to this key; search by keyword to find names"
	}
	return out
}

var stopWords = map[string]bool{"a": true, "an": true, "the": true, "of": true, "to": true, "for": true, "in": true,
	"on": true, "and": true, "or": true, "my": true, "is": true, "how": true, "what": true, "with": true, "i": true,
	"do": true, "can": true, "me": true, "it": true, "by": true}

// search scores the visible tools: a keyword in the name counts 3, in the title
// 2, in the description 1. Keywords are lower-cased; a plural s is dropped.
func (c *Catalog) search(p *Principal, query string, limit int) []*Tool {
	var words []string
	for _, w := range strings.FieldsFunc(strings.ToLower(query), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	}) {
		if stopWords[w] {
			continue
		}
		if len(w) > 3 && strings.HasSuffix(w, "s") && !strings.HasSuffix(w, "ss") {
			w = w[:len(w)-1]
		}
		words = append(words, w)
	}
	type scored struct {
		t     *Tool
		score int
		order int
	}
	var hits []scored
	for i, t := range c.visible(p) {
		name := strings.ReplaceAll(t.Name, "_", " ")
		title, desc := strings.ToLower(t.Title), strings.ToLower(t.Description)
		score := 0
		for _, w := range words {
			switch {
			case strings.Contains(name, w):
				score += 3
			case strings.Contains(title, w):
				score += 2
			case strings.Contains(desc, w):
				score++
			}
		}
		if score > 0 {
			hits = append(hits, scored{t, score, i})
		}
	}
	sort.SliceStable(hits, func(i, j int) bool { return hits[i].score > hits[j].score })
	var out []*Tool
	for _, h := range hits[:min(limit, len(hits))] {
		out = append(out, h.t)
	}
	return out
}

func quoteShort(s string) string {
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return fmt.Sprintf("%q", s)
}

// --- list_skills ---

type listSkillsIn struct {
	Skill string `json:"skill"`
}

type listSkillsOut struct {
	Skills []skillView `json:"skills"`
	Hint   string      `json:"hint"`
}

func listSkills() *Tool {
	enum, _ := json.Marshal(skillNames)
	return Define(Tool{
		Name:  "list_skills",
		Title: "List skills (tool bundles for a task)",
		Description: "Lists skills: bundles of tools for a task, each with the tools in the order to use them and what " +
			"each step is for. Skills: " + strings.Join(skillNames, ", ") + ". Pass skill for one bundle. Steps a " +
			"higher plan needs are marked. Then call tool_search with select:<names> for input schemas. Free, and not " +
			"counted against quota; the same bundles are offered as MCP prompts.",
		Kind:  ReadOnly,
		Group: Meta,
		Pure:  true,
		Input: inputSchema(optionalArg("skill", `{"type":"string","enum":`+string(enum)+`,"description":"One skill; omit for all."}`)),
		Output: json.RawMessage(`{"type":"object","required":["skills"],"properties":{"skills":{"type":"array","items":{"type":"object",
"required":["name","title","goal","steps"],"properties":{"name":{"type":"string"},"title":{"type":"string"},"goal":{"type":"string"},
"steps":{"type":"array","items":{"type":"object","required":["tool","why"],"properties":{"tool":{"type":"string"},"why":{"type":"string"},
"needs":{"type":"string"}}}}}}},"hint":{"type":"string"}}}`),
	}, func(ctx context.Context, env *Env, in listSkillsIn) (listSkillsOut, error) {
		c, err := catalogOf(env)
		if err != nil {
			return listSkillsOut{}, err
		}
		p := PrincipalFrom(ctx)
		out := listSkillsOut{Skills: []skillView{}, Hint: "tool_search with select:<tool names> returns their input schemas"}
		for i := range skills {
			if in.Skill == "" || skills[i].Name == in.Skill {
				out.Skills = append(out.Skills, c.skillView(&skills[i], p))
			}
		}
		return out, nil
	})
}

// --- prompts ---

// registerPrompts offers the skills as MCP prompts.
func (c *Catalog) registerPrompts(s *rpc.Server) {
	s.Capability("prompts", map[string]any{"listChanged": false})
	s.Handle("prompts/list", c.listPrompts)
	s.Cacheable("prompts/list", listCacheTTL, rpc.CachePrivate)
	s.Handle("prompts/get", c.getPrompt)
}

type promptArgument struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	Required    bool   `json:"required"`
}

type listedPrompt struct {
	Name        string           `json:"name"`
	Title       string           `json:"title"`
	Description string           `json:"description"`
	Arguments   []promptArgument `json:"arguments"`
}

var promptArguments = []promptArgument{{Name: "context", Required: false,
	Description: "What you are working on: a flow, an environment, an error message."}}

func (c *Catalog) listPrompts(_ context.Context, params json.RawMessage) (any, error) {
	var p struct {
		Cursor *string `json:"cursor"`
	}
	if len(params) > 0 && json.Unmarshal(params, &p) != nil {
		return nil, rpc.NewError(rpc.CodeInvalidParams, "Invalid params", nil)
	}
	if p.Cursor != nil {
		return nil, rpc.NewError(rpc.CodeInvalidParams, "Invalid params: unknown cursor", nil)
	}
	out := make([]listedPrompt, 0, len(skills))
	for _, s := range skills {
		out = append(out, listedPrompt{Name: s.Name, Title: s.Title,
			Description: "Skill: " + s.Goal + ".", Arguments: promptArguments})
	}
	return map[string]any{"prompts": out}, nil
}

const maxPromptContext = 2000

func (c *Catalog) getPrompt(ctx context.Context, params json.RawMessage) (any, error) {
	var p struct {
		Name      string            `json:"name"`
		Arguments map[string]string `json:"arguments"`
	}
	if len(params) == 0 || json.Unmarshal(params, &p) != nil || p.Name == "" {
		return nil, rpc.NewError(rpc.CodeInvalidParams, "Invalid params: name is required", nil)
	}
	s := findSkill(p.Name)
	if s == nil {
		return nil, rpc.NewError(rpc.CodeInvalidParams, "Invalid params: unknown prompt "+quoteShort(p.Name), nil)
	}
	for k := range p.Arguments {
		if !slices.ContainsFunc(promptArguments, func(a promptArgument) bool { return a.Name == k }) {
			return nil, rpc.NewError(rpc.CodeInvalidParams, "Invalid params: unknown argument "+quoteShort(k), nil)
		}
	}
	v := c.skillView(s, PrincipalFrom(ctx))
	var b strings.Builder
	fmt.Fprintf(&b, "Goal: %s.\n\nUse the FlowStudio MCP tools in this order:\n", s.Goal)
	for i, st := range v.Steps {
		fmt.Fprintf(&b, "%d. %s: %s", i+1, st.Tool, st.Why)
		if st.Needs != "" {
			fmt.Fprintf(&b, " (needs the %s plan)", st.Needs)
		}
		b.WriteString("\n")
	}
	b.WriteString("\nKeep answers compact: page with pageSize and cursor, and fetch definitions only for the flows you need. " +
		"If a tool is not in your tool list, get its definition with tool_search (select:<name>).")
	if ctxText := strings.TrimSpace(p.Arguments["context"]); ctxText != "" {
		if len(ctxText) > maxPromptContext {
			ctxText = strings.ToValidUTF8(ctxText[:maxPromptContext], "")
		}
		b.WriteString("\n\nWhat I am working on: " + ctxText)
	}
	return map[string]any{
		"description": s.Title + ": " + s.Goal + ".",
		"messages": []any{map[string]any{"role": "user",
			"content": map[string]any{"type": "text", "text": b.String()}}},
	}, nil
}
