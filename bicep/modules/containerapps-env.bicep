// Container Apps environment (workload profiles, Consumption) sending console and
// system logs to the Log Analytics workspace (tables ContainerAppConsoleLogs_CL and
// ContainerAppSystemLogs_CL).

@description('Environment name.')
param name string

@description('Azure region.')
param location string

@description('Tags for every resource.')
param tags object

@description('Name of the Log Analytics workspace in this resource group.')
param workspaceName string

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' existing = {
  name: workspaceName
}

resource environment 'Microsoft.App/managedEnvironments@2024-03-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    appLogsConfiguration: {
      destination: 'log-analytics'
      logAnalyticsConfiguration: {
        customerId: workspace.properties.customerId
        sharedKey: workspace.listKeys().primarySharedKey
      }
    }
    workloadProfiles: [
      {
        name: 'Consumption'
        workloadProfileType: 'Consumption'
      }
    ]
    zoneRedundant: false
  }
}

output id string = environment.id
output name string = environment.name
@description('Default domain; an app with external ingress is reachable at <app name>.<default domain>.')
output defaultDomain string = environment.properties.defaultDomain
