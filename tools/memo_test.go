package tools

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// A pure tool runs once per distinct question: the same arguments from callers of the
// same plan and scope get the remembered answer, byte for byte; another plan, another
// scope or other arguments are asked again.
func TestPureToolAnswersAreRemembered(t *testing.T) {
	runs := 0
	pure := Define(Tool{Name: "pure_tool", Title: "Pure", Description: "A pure test tool.", Kind: ReadOnly, Group: Meta, Pure: true,
		Input: json.RawMessage(`{"type":"object","additionalProperties":false,"properties":{"q":{"type":"string"}}}`)},
		func(ctx context.Context, _ *Env, in struct {
			Q string `json:"q"`
		}) (map[string]string, error) {
			runs++
			p := PrincipalFrom(ctx)
			return map[string]string{"q": in.Q, "for": string(p.Tier) + "/" + p.Scope, "run": fmt.Sprint(runs)}, nil
		})
	c, err := NewCatalog(&Env{}, nil, 0, []*Tool{pure})
	if err != nil {
		t.Fatal(err)
	}
	first := callTool(t, c, fullPro, "pure_tool", map[string]any{"q": "a"})
	again := callTool(t, c, fullPro, "pure_tool", map[string]any{"q": "a"})
	if runs != 1 || string(again.StructuredContent) != string(first.StructuredContent) || again.Text != first.Text {
		t.Fatalf("second identical call: %d runs, %s after %s", runs, again.StructuredContent, first.StructuredContent)
	}
	for _, tc := range []struct {
		p    *Principal
		args map[string]any
		want string
	}{
		{readPro, map[string]any{"q": "a"}, `"for":"pro/read"`},
		{fullTeam, map[string]any{"q": "a"}, `"for":"team/full"`},
		{fullPro, map[string]any{"q": "b"}, `"q":"b"`},
	} {
		before := runs
		got := callTool(t, c, tc.p, "pure_tool", tc.args)
		if runs != before+1 || !json.Valid(got.StructuredContent) || !strings.Contains(string(got.StructuredContent), tc.want) {
			t.Fatalf("%s/%s %v: ran %d times, answer %s (want %s)", tc.p.Tier, tc.p.Scope, tc.args, runs-before, got.StructuredContent, tc.want)
		}
	}
}

// A read-scope key must never be handed the skills a full key sees, whichever asks first.
func TestListSkillsRememberedPerScope(t *testing.T) {
	c := mustCatalog(t, &Env{}, nil)
	full := callTool(t, c, fullPro, "list_skills", map[string]any{})
	read := callTool(t, c, readPro, "list_skills", map[string]any{})
	if string(full.StructuredContent) == string(read.StructuredContent) {
		t.Fatal("read and full scope got the same skills answer")
	}
	if again := callTool(t, c, readPro, "list_skills", map[string]any{}); string(again.StructuredContent) != string(read.StructuredContent) {
		t.Fatalf("remembered answer differs: %s", again.StructuredContent)
	}
	if strings.Contains(string(read.StructuredContent), `"update_live_flow"`) {
		t.Fatalf("read scope answer names a write tool: %s", read.StructuredContent)
	}
}

func TestAnswerMemoIsBounded(t *testing.T) {
	var a answerMemo
	for i := range maxAnswers + 10 {
		a.put(fmt.Sprint(i), []byte("x"))
	}
	if n := len(a.m); n > maxAnswers {
		t.Fatalf("%d answers kept, at most %d", n, maxAnswers)
	}
	long := Tool{Name: "x", Pure: true}
	if _, ok := answerKey(&long, fullPro, make(json.RawMessage, maxAnswerArgs+1)); ok {
		t.Fatal("arguments past the bound were given a memo key")
	}
	if _, ok := answerKey(&Tool{Name: "y"}, fullPro, json.RawMessage(`{}`)); ok {
		t.Fatal("a tool not marked pure was given a memo key")
	}
}
