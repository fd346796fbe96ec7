package tools

// All is the catalog: every tool, in the order tools/list shows them. It feeds
// tools/list, tools/call, tool_search and the docs.
func All() []*Tool {
	return []*Tool{
		listLiveEnvironments(),
		listLiveFlows(),
	}
}
