package tools

import (
	"context"
	"encoding/json"
	"time"
)

type environmentRow struct {
	Name        string `json:"name"`
	DisplayName string `json:"displayName"`
	SKU         string `json:"sku,omitempty"`
	Location    string `json:"location,omitempty"`
	IsDefault   bool   `json:"isDefault"`
	Created     string `json:"created,omitempty"`
	// FlowEndpoint is the regional API host the environment advertises.
	FlowEndpoint string `json:"flowEndpoint,omitempty"`
}

type environmentsOut struct {
	Environments []environmentRow `json:"environments"`
}

func listLiveEnvironments() *Tool {
	return Define(Tool{
		Name:  "list_live_environments",
		Title: "List Power Platform environments",
		Description: "Lists the Power Platform environments the signed-in user can use: name (pass it as environmentName " +
			"to every other live tool), display name, SKU, region, whether it is the default. Call this first; then " +
			"list_live_flows to see the flows of an environment.",
		Kind:  ReadOnly,
		Group: Live,
		Input: json.RawMessage(`{"type":"object","properties":{},"additionalProperties":false}`),
		Output: json.RawMessage(`{"type":"object","required":["environments"],"properties":{"environments":{"type":"array","items":{"type":"object",
"required":["name","displayName","isDefault"],"properties":{"name":{"type":"string"},"displayName":{"type":"string"},"sku":{"type":"string"},
"location":{"type":"string"},"isDefault":{"type":"boolean"},"created":{"type":"string"},"flowEndpoint":{"type":"string"}}}}}}`),
	}, func(ctx context.Context, env *Env, _ struct{}) (environmentsOut, error) {
		list, err := env.PA.ListEnvironments(ctx)
		if err != nil {
			return environmentsOut{}, err
		}
		out := environmentsOut{Environments: make([]environmentRow, 0, len(list))}
		for _, e := range list {
			out.Environments = append(out.Environments, environmentRow{
				Name: e.Name, DisplayName: e.DisplayName, SKU: e.SKU, Location: e.Location,
				IsDefault: e.IsDefault, Created: day(e.CreatedTime), FlowEndpoint: e.FlowEndpoint,
			})
		}
		return out, nil
	})
}

// day renders a time compactly for agents; zero times are omitted.
func day(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}
