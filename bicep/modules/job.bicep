// A Container Apps Job running the server image with one subcommand: `sync` on a cron
// schedule, or `rotate-key` started by hand (az containerapp job start).

@description('Job name (2-32 characters).')
@maxLength(32)
param name string

@description('Azure region.')
param location string

@description('Tags for every resource.')
param tags object

@description('Container Apps environment resource id.')
param environmentId string

@description('Resource id of the user-assigned identity used for Key Vault references and registry pull.')
param identityId string

@description('Resource id of a second user-assigned identity the job runs as (AZURE_CLIENT_ID); empty: the first one.')
param runAsIdentityId string = ''

@description('Client id of the identity azidentity should use (AZURE_CLIENT_ID).')
param azureClientId string

@description('Registry login server.')
param registryServer string

@description('Container image (the same image as the server).')
param image string

@description('Arguments after the image entrypoint (the flowstudio binary), e.g. [\'sync\'].')
param args array

@description('Environment variables ({name, value} or {name, secretRef}), AZURE_CLIENT_ID excluded.')
param env array

@description('Key Vault secret references ({name, keyVaultUrl, identity}).')
param vaultReferences array

@description('Schedule (cron) or Manual.')
@allowed([
  'Schedule'
  'Manual'
])
param triggerType string

@description('Cron expression (UTC) when triggerType is Schedule.')
param cronExpression string = ''

@description('Seconds one run may take.')
param replicaTimeout int = 1500

@description('vCPU per replica.')
param cpu string = '0.25'

@description('Memory per replica.')
param memory string = '0.5Gi'

var identities = empty(runAsIdentityId)
  ? {
      '${identityId}': {}
    }
  : {
      '${identityId}': {}
      '${runAsIdentityId}': {}
    }

resource job 'Microsoft.App/jobs@2024-03-01' = {
  name: name
  location: location
  tags: tags
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: identities
  }
  properties: {
    environmentId: environmentId
    workloadProfileName: 'Consumption'
    configuration: {
      triggerType: triggerType
      replicaTimeout: replicaTimeout
      replicaRetryLimit: 1
      scheduleTriggerConfig: triggerType == 'Schedule'
        ? {
            cronExpression: cronExpression
            parallelism: 1
            replicaCompletionCount: 1
          }
        : null
      manualTriggerConfig: triggerType == 'Manual'
        ? {
            parallelism: 1
            replicaCompletionCount: 1
          }
        : null
      registries: [
        {
          server: registryServer
          identity: identityId
        }
      ]
      secrets: vaultReferences
    }
    template: {
      containers: [
        {
          name: 'flowstudio'
          image: image
          args: args
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
        }
      ]
    }
  }
}

output name string = job.name
