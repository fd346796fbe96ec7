package tools

import (
	"github.com/flowstudio/mcp/tools/powerautomate"
	"github.com/flowstudio/mcp/tools/teamcache"
	"go.uber.org/zap"
)

// Env carries what tool handlers depend on, built once in main.
type Env struct {
	// PA calls Power Automate, Power Apps and BAP with the caller's delegated token.
	PA *powerautomate.Client
	// DashboardURL is where users reconnect or upgrade.
	DashboardURL string
	// SignInReturnURL is where a connector's consent page sends a person back after
	// signing a connection in (create_live_connection); "" means DashboardURL.
	SignInReturnURL string
	Logger          *zap.Logger
	// Reports keeps report_bug submissions; nil means this server takes none.
	Reports ReportStore
	// Cache is the Team cache the store tools read (and update_store_flow writes);
	// nil means the store tools answer that this server has no cache.
	Cache teamcache.Store

	// catalog is the catalog serving the call, for the meta tools; NewCatalog
	// sets it on its own copy of the Env.
	catalog *Catalog
}

func (e *Env) log() *zap.Logger {
	if e == nil || e.Logger == nil {
		return zap.NewNop()
	}
	return e.Logger
}

// UpgradeURL is where the dashboard offers the plans (its Plans section): the
// link refusals for plan or quota give. Built only when a call is refused.
func UpgradeURL(dashboardURL string) string { return dashboardURL + "#plans" }
