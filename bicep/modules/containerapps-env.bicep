// Container Apps environment (workload profiles, Consumption) sending console and
// system logs to the Log Analytics workspace (tables ContainerAppConsoleLogs_CL and
// ContainerAppSystemLogs_CL), with the managed OpenTelemetry agent on: Container Apps
// then sets OTEL_EXPORTER_OTLP_ENDPOINT in every app, and the agent forwards traces
// and logs to Application Insights and metrics to the OTLP destination, if one is given
// (the agent's Application Insights destination takes no metrics).

@description('Environment name.')
param name string

@description('Azure region.')
param location string

@description('Tags for every resource.')
param tags object

@description('Name of the Log Analytics workspace in this resource group.')
param workspaceName string

@description('Name of the Application Insights component in this resource group (where the agent sends traces and logs).')
param appInsightsName string

@description('OTLP endpoint the agent forwards metrics to (an OpenTelemetry Collector, or the OTLP intake of a vendor); empty: no metrics destination.')
param otlpMetricsEndpoint string = ''

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' existing = {
  name: workspaceName
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

var metricsDestination = empty(otlpMetricsEndpoint)
  ? {}
  : {
      destinationsConfiguration: {
        otlpConfigurations: [
          {
            name: 'metrics'
            endpoint: otlpMetricsEndpoint
            insecure: false
            headers: []
          }
        ]
      }
      metricsConfiguration: {
        destinations: [
          'metrics'
        ]
      }
    }

// A preview API version: the managed OpenTelemetry agent (appInsightsConfiguration,
// openTelemetryConfiguration) is in no GA version of managedEnvironments yet.
resource environment 'Microsoft.App/managedEnvironments@2024-02-02-preview' = {
  name: name
  location: location
  tags: tags
  properties: {
    appInsightsConfiguration: {
      connectionString: appInsights.properties.ConnectionString
    }
    openTelemetryConfiguration: union(
      {
        tracesConfiguration: {
          destinations: [
            'appInsights'
          ]
        }
        logsConfiguration: {
          destinations: [
            'appInsights'
          ]
        }
      },
      metricsDestination
    )
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
