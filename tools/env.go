package tools

import (
	"github.com/flowstudio/mcp/tools/powerautomate"
	"go.uber.org/zap"
)

// Env carries what tool handlers depend on, built once in main.
type Env struct {
	// PA calls Power Automate, Power Apps and BAP with the caller's delegated token.
	PA *powerautomate.Client
	// DashboardURL is where users reconnect or upgrade.
	DashboardURL string
	Logger       *zap.Logger
}

func (e *Env) log() *zap.Logger {
	if e == nil || e.Logger == nil {
		return zap.NewNop()
	}
	return e.Logger
}
