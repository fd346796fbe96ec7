package alerts

import (
	"strings"
	"testing"
	"time"

	"github.com/flowstudio/mcp/tools/teamcache"
)

func run(name, status, start string) teamcache.RunBrief {
	return teamcache.RunBrief{Name: name, Status: status, Start: start, ErrorCode: map[bool]string{true: "ActionFailed"}[status == "Failed"]}
}

func TestEvaluateOneAlertPerIncident(t *testing.T) {
	now := time.Date(2026, 5, 2, 12, 0, 0, 0, time.UTC)
	g := teamcache.Governance{EnvironmentName: "env", FlowName: "f", Monitor: true,
		NotifyRules: []teamcache.NotifyRule{{When: teamcache.WhenAnyFailure, Email: "a@x.test"}, {When: teamcache.WhenAnyFailure, Email: "b@x.test"}}}
	f := teamcache.Flow{State: "Started"}
	// First look: only the newest finished run counts; a failure opens one incident.
	runs := []teamcache.RunBrief{run("r5", "Running", "2026-05-02T11:00:00Z"), run("r4", "Failed", "2026-05-02T10:00:00Z"), run("r3", "Failed", "2026-05-02T09:00:00Z")}
	st, op, _ := evaluate(g, f, Observation{Runs: runs}, teamcache.AlertState{}, now)
	if len(op) != 1 || len(op[0].rules) != 2 || op[0].runName != "r4" || !strings.Contains(op[0].what, "1 run failed") {
		t.Fatalf("first evaluation: %+v", op)
	}
	st.Open[teamcache.WhenAnyFailure].AlertKey = "k1"
	// A storm: a thousand more failures raise nothing.
	storm := []teamcache.RunBrief{}
	for i := 1000; i > 0; i-- {
		storm = append(storm, run("s"+itoa(i), "Failed", "2026-05-02T11:30:00Z"))
	}
	storm = append(storm, runs...)
	st, op, _ = evaluate(g, f, Observation{Runs: storm}, st, now)
	if len(op) != 0 || st.Open[teamcache.WhenAnyFailure].Failures != 1001 {
		t.Fatalf("storm: %d alerts, incident %+v", len(op), st.Open[teamcache.WhenAnyFailure])
	}
	// Recovery closes it, quietly.
	rec := append([]teamcache.RunBrief{run("ok", "Succeeded", "2026-05-02T11:40:00Z")}, storm...)
	st, op, closed := evaluate(g, f, Observation{Runs: rec}, st, now)
	if len(op) != 0 || len(closed) != 1 || closed[0] != "k1" || st.Open != nil {
		t.Fatalf("recovery: opened %d, closed %v, open %v", len(op), closed, st.Open)
	}
	// Seen again: nothing; a new failure: one more.
	if _, op, _ = evaluate(g, f, Observation{Runs: rec}, st, now); len(op) != 0 {
		t.Fatal("the same runs raised again")
	}
	again := append([]teamcache.RunBrief{run("bad", "Failed", "2026-05-02T11:50:00Z")}, rec...)
	if _, op, _ = evaluate(g, f, Observation{Runs: again}, st, now); len(op) != 1 || op[0].runName != "bad" {
		t.Fatalf("new failure: %+v", op)
	}
	// Failed and recovered between two looks: still one alert, saying so.
	flap := append([]teamcache.RunBrief{run("ok2", "Succeeded", "2026-05-02T11:55:00Z")}, again...)
	st2, op, _ := evaluate(g, f, Observation{Runs: flap}, st, now)
	if len(op) != 1 || !op[0].recovered || st2.Open != nil {
		t.Fatalf("flap: %+v open %v", op, st2.Open)
	}
}

func TestEvaluateNoRunsAndRate(t *testing.T) {
	now := time.Date(2026, 5, 10, 12, 0, 0, 0, time.UTC)
	g := teamcache.Governance{EnvironmentName: "env", FlowName: "f", Monitor: true, NotifyRules: []teamcache.NotifyRule{
		{When: teamcache.WhenNoRunsFor, Threshold: 48, Email: "a@x.test"},
		{When: teamcache.WhenFailureRateAbove, Threshold: 0.2, Email: "a@x.test"}}}
	started := teamcache.Flow{State: "Started"}
	old := []teamcache.RunBrief{run("r1", "Succeeded", "2026-05-05T12:00:00Z")}
	st, op, _ := evaluate(g, started, Observation{Runs: old}, teamcache.AlertState{}, now)
	if len(op) != 1 || !strings.Contains(op[0].what, "no run for 5 days") {
		t.Fatalf("no runs: %+v", op)
	}
	// The live check has no rate: the rate rule is left alone.
	if _, op, _ = evaluate(g, started, Observation{Runs: old}, st, now); len(op) != 0 {
		t.Fatalf("repeat: %+v", op)
	}
	_, op, _ = evaluate(g, started, Observation{Runs: old, Rate: 0.5, Window: "7d", HasRate: true}, st, now)
	if len(op) != 1 || !strings.Contains(op[0].what, "failure rate 50% over the last 7d") {
		t.Fatalf("rate: %+v", op)
	}
	// A stopped flow is not expected to run.
	if _, op, _ = evaluate(g, teamcache.Flow{State: "Stopped"}, Observation{Runs: old}, teamcache.AlertState{}, now); len(op) != 0 {
		t.Fatalf("stopped flow alerted: %+v", op)
	}
	// A rule removed closes its incident.
	g.NotifyRules = g.NotifyRules[1:]
	st.Open[teamcache.IncidentKey(teamcache.NotifyRule{When: teamcache.WhenNoRunsFor, Threshold: 48})].AlertKey = "k"
	if next, _, closed := evaluate(g, started, Observation{Runs: old}, st, now); len(closed) != 1 || next.Open != nil {
		t.Fatalf("removed rule: closed %v open %v", closed, next.Open)
	}
}

func TestEmailContentIsFactsOnly(t *testing.T) {
	a := &teamcache.Alert{FlowDisplayName: "Pay\r\nBcc: evil@x.test", EnvironmentName: "env", Rule: "anyFailure", What: "1 run failed", At: "t", Link: "https://l"}
	if s := subject(a); strings.ContainsAny(s, "\r\n") {
		t.Fatalf("subject carries a line break: %q", s)
	}
	if b := emailBody(a); strings.Contains(b, "\nBcc:") {
		t.Fatalf("body lets a display name start a line: %q", b)
	}
}
