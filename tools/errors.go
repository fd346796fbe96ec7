package tools

import (
	"strconv"
	"strings"
)

// ToolError is a failure the agent can act on: it becomes an isError result whose text
// is our own message, the upstream status and code where there was one, and a next step.
type ToolError struct {
	Message string
	// Upstream status and error code, when Power Automate or Power Apps refused.
	Status int
	Code   string
	Next   string
}

func (e *ToolError) Error() string {
	var b strings.Builder
	b.WriteString(e.Message)
	if e.Status != 0 || e.Code != "" {
		b.WriteString(" (upstream")
		if e.Status != 0 {
			b.WriteString(" status ")
			b.WriteString(strconv.Itoa(e.Status))
		}
		if e.Code != "" {
			b.WriteString(" code ")
			b.WriteString(e.Code)
		}
		b.WriteString(")")
	}
	if e.Next != "" {
		b.WriteString(". Next: ")
		b.WriteString(e.Next)
	}
	return b.String()
}
