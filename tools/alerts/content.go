package alerts

import (
	"encoding/json"
	"strconv"
	"strings"

	"github.com/flowstudio/mcp/tools/teamcache"
)

// The words of an alert. Everything here comes from the cache's inventory fields and
// the rule: names, times, counts and codes. No run content exists to leak.

func itoa(i int) string { return strconv.Itoa(i) }

func envLabel(a *teamcache.Alert) string {
	if a.EnvironmentDisplayName != "" {
		return a.EnvironmentDisplayName + " (" + a.EnvironmentName + ")"
	}
	return a.EnvironmentName
}

func subject(a *teamcache.Alert) string {
	verb := "needs attention"
	switch {
	case strings.HasPrefix(a.Rule, teamcache.WhenAnyFailure):
		verb = "failed"
	case strings.HasPrefix(a.Rule, teamcache.WhenFailureRateAbove):
		verb = "is failing often"
	case strings.HasPrefix(a.Rule, teamcache.WhenNoRunsFor):
		verb = "has not run"
	}
	return "[FlowStudio] " + oneLine(a.FlowDisplayName) + " " + verb
}

func emailBody(a *teamcache.Alert) string {
	var b strings.Builder
	b.WriteString("A flow you monitor with FlowStudio needs attention.\r\n\r\n")
	b.WriteString("Flow:         " + oneLine(a.FlowDisplayName) + "\r\n")
	b.WriteString("Environment:  " + oneLine(envLabel(a)) + "\r\n")
	b.WriteString("What:         " + oneLine(a.What) + "\r\n")
	b.WriteString("When:         " + a.At + "\r\n")
	if a.RunName != "" {
		b.WriteString("Run:          " + a.RunName + "\r\n")
	}
	b.WriteString("Link:         " + a.Link + "\r\n\r\n")
	b.WriteString("You get one message per incident: none again until the flow has recovered.\r\n")
	b.WriteString("Rule: " + a.Rule + " (set with update_store_flow; raised " + a.RaisedAt + ")\r\n")
	return b.String()
}

// webhookBody is the JSON a webhook receives: "text" for Teams and Slack incoming
// webhooks, and the same facts as fields.
func webhookBody(a *teamcache.Alert) []byte {
	text := subject(a) + " in " + envLabel(a) + ": " + a.What + ". " + a.Link
	b, _ := json.Marshal(map[string]any{
		"text": text,
		"alert": map[string]any{
			"flow": a.FlowDisplayName, "flowName": a.FlowName, "environment": a.EnvironmentDisplayName,
			"environmentName": a.EnvironmentName, "rule": a.Rule, "what": a.What, "at": a.At, "raisedAt": a.RaisedAt,
			"errorCode": a.ErrorCode, "runName": a.RunName, "link": a.Link,
		},
	})
	return b
}

// oneLine keeps a header-bound value on one line.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return ' '
		}
		return r
	}, s)
}
