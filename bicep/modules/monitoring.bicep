// Log Analytics workspace and workspace-based Application Insights. Container Apps
// console logs (one metering line per tool call) land in ContainerAppConsoleLogs_CL of
// this workspace and are kept 90 days.

@description('Log Analytics workspace name.')
param workspaceName string

@description('Application Insights component name.')
param appInsightsName string

@description('Azure region.')
param location string

@description('Tags for every resource.')
param tags object

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: workspaceName
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: 90
    features: {
      enableLogAccessUsingOnlyResourcePermissions: true
    }
    publicNetworkAccessForIngestion: 'Enabled'
    publicNetworkAccessForQuery: 'Enabled'
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: appInsightsName
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: workspace.id
    IngestionMode: 'LogAnalytics'
    RetentionInDays: 90
  }
}

output workspaceId string = workspace.id
output workspaceName string = workspace.name
@description('Workspace (customer) id, for az monitor log-analytics query.')
output workspaceCustomerId string = workspace.properties.customerId
output appInsightsName string = appInsights.name
