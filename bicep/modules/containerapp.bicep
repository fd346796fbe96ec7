// The MCP server: one container app, scale to zero, external HTTPS ingress on 8080,
// several active revisions with traffic weights and labels (canaries), probes on
// /healthz and /readyz. Tagged azd-service-name: mcp so `azd deploy` finds it.

@description('Container app name (2-32 characters).')
@maxLength(32)
param name string

@description('Azure region.')
param location string

@description('Tags for every resource; azd-service-name is added.')
param tags object

@description('Container Apps environment resource id.')
param environmentId string

@description('Resource id of the user-assigned identity (Key Vault references, registry pull, azidentity).')
param identityId string

@description('Client id of that identity; set as AZURE_CLIENT_ID so azidentity picks it.')
param azureClientId string

@description('Registry login server the identity pulls from.')
param registryServer string

@description('Container image.')
param image string

@description('Environment variables ({name, value} or {name, secretRef}), AZURE_CLIENT_ID excluded.')
param env array

@description('Key Vault secret references ({name, keyVaultUrl, identity}).')
param vaultReferences array

@description('vCPU per replica.')
param cpu string = '0.25'

@description('Memory per replica.')
param memory string = '0.5Gi'

@description('Maximum replicas.')
@minValue(1)
@maxValue(300)
param maxReplicas int = 10

@description('Concurrent HTTP requests per replica before another replica is added.')
@minValue(1)
param httpConcurrency int = 50

@description('Traffic weights: [{revisionName | latestRevision, weight, label?}], weights summing to 100.')
param traffic array

@description('Revision suffix for the revision this deployment creates; empty lets Container Apps choose.')
param revisionSuffix string = ''

@description('Seconds a replica has after SIGTERM; keep above FLOWSTUDIO_DRAIN_TIMEOUT.')
param terminationGracePeriodSeconds int = 30

var targetPort = 8080

resource app 'Microsoft.App/containerApps@2024-03-01' = {
  name: name
  location: location
  tags: union(tags, {
    'azd-service-name': 'mcp'
  })
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    environmentId: environmentId
    workloadProfileName: 'Consumption'
    configuration: {
      activeRevisionsMode: 'Multiple'
      maxInactiveRevisions: 10
      ingress: {
        external: true
        targetPort: targetPort
        transport: 'auto'
        allowInsecure: false
        traffic: traffic
      }
      registries: [
        {
          server: registryServer
          identity: identityId
        }
      ]
      secrets: vaultReferences
    }
    template: {
      revisionSuffix: empty(revisionSuffix) ? null : revisionSuffix
      terminationGracePeriodSeconds: terminationGracePeriodSeconds
      containers: [
        {
          name: 'mcp'
          image: image
          args: [
            'serve'
          ]
          env: concat(env, [
            {
              name: 'AZURE_CLIENT_ID'
              value: azureClientId
            }
          ])
          resources: {
            cpu: json(cpu)
            memory: memory
          }
          probes: [
            {
              type: 'Startup'
              httpGet: {
                path: '/healthz'
                port: targetPort
                scheme: 'HTTP'
              }
              periodSeconds: 1
              timeoutSeconds: 1
              failureThreshold: 30
            }
            {
              type: 'Readiness'
              httpGet: {
                path: '/readyz'
                port: targetPort
                scheme: 'HTTP'
              }
              periodSeconds: 5
              timeoutSeconds: 2
              failureThreshold: 3
            }
            {
              type: 'Liveness'
              httpGet: {
                path: '/healthz'
                port: targetPort
                scheme: 'HTTP'
              }
              periodSeconds: 10
              timeoutSeconds: 2
              failureThreshold: 3
            }
          ]
        }
      ]
      scale: {
        minReplicas: 0
        maxReplicas: maxReplicas
        rules: [
          {
            name: 'http-concurrency'
            http: {
              metadata: {
                concurrentRequests: string(httpConcurrency)
              }
            }
          }
        ]
      }
    }
  }
}

output name string = app.name
output fqdn string = app.properties.configuration.ingress.fqdn
output latestRevisionName string = app.properties.latestRevisionName
