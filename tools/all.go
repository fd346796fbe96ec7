package tools

// All is the catalog: every tool, in the order tools/list shows them. It feeds
// tools/list, tools/call, tool_search and the docs.
func All() []*Tool {
	return []*Tool{
		listLiveEnvironments(),
		listLiveFlows(),
		getLiveFlow(),
		updateLiveFlow(),
		validateLiveFlow(),
		setLiveFlowState(),
		getLiveFlowRuns(),
		getLiveFlowRunError(),
		getLiveFlowRunActionOutputs(),
		triggerLiveFlow(),
		resubmitLiveFlowRun(),
		cancelLiveFlowRun(),
		// Connections and connectors (tools/connections.go, tools/connectors.go).
		listLiveConnections(),
		describeLiveConnector(),
		getLiveDynamicOptions(),
		getLiveDynamicProperties(),
		testLiveConnection(),
		createLiveConnection(),
		// Solutions (tools/solutions.go).
		addLiveFlowToSolution(),
		// Store tools: the Team cache, filled by `flowstudio sync` (tools/store.go).
		listStoreEnvironments(),
		listStoreFlows(),
		getStoreFlow(),
		getStoreFlowSummary(),
		getStoreFlowRuns(),
		updateStoreFlow(),
		listStoreConnections(),
		listStoreMakers(),
		getStoreMaker(),
		listStorePowerApps(),
		// Meta tools: free, not counted against quota (tools/meta.go).
		toolSearch(),
		listSkills(),
		reportBug(),
	}
}
