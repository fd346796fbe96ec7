// FlowStudio MCP on Azure Container Apps.
//
//   azd up                    (azure.yaml: infra in bicep/, parameters in main.bicepparam)
//   az deployment sub create --location australiaeast \
//     --template-file bicep/main.bicep --parameters bicep/main.bicepparam
//
// One resource group with: Log Analytics + Application Insights (90 days), a
// user-assigned identity used by the app and the jobs, Key Vault (RBAC) holding the
// secrets, Cosmos DB serverless (Entra ID only), a registry, a Container Apps
// environment, the server (scale to zero, revisions with traffic weights and labels),
// a scheduled `flowstudio sync` job and a manual `flowstudio rotate-key` job.
//
// No secret value passes through this template: the app reads TOKEN_SECRET, the Entra
// client secret and the Stripe webhook secret as Key Vault references, and the sealing
// key (refresh-token-key) from Key Vault at run time. Those secrets must exist before
// the app is created, hence deployApp: provision once with deployApp=false, seed the
// secrets (bicep/scripts/bootstrap.sh), then provision with deployApp=true.

targetScope = 'subscription'

// ---------------------------------------------------------------------------------
// Types

@description('One traffic target of the container app ingress.')
type trafficTarget = {
  @description('A revision by name (<app>--<suffix>); omit when latestRevision is true.')
  revisionName: string?

  @description('True to target the newest revision.')
  latestRevision: bool?

  @description('Percentage of traffic; all weights sum to 100.')
  @minValue(0)
  @maxValue(100)
  weight: int

  @description('Revision label; gives the revision its own URL <app>---<label>.<domain>.')
  label: string?
}

// ---------------------------------------------------------------------------------
// Parameters: deployment

@minLength(1)
@maxLength(64)
@description('azd environment name; seeds resource names and the azd-env-name tag.')
param environmentName string

@description('Azure region for every resource.')
param location string = 'australiaeast'

@description('Resource group to create or update; empty: rg-<environmentName>.')
param resourceGroupName string = ''

@description('Extra tags for every resource.')
param tags object = {}

@description('Create the container app and the jobs. False for the first provision, before the Key Vault secrets exist.')
param deployApp bool = true

@description('Container image for the server and the jobs; its entrypoint is the flowstudio binary. azd deploy replaces it on the app.')
param containerImage string = 'mcr.microsoft.com/k8se/quickstart:latest'

@description('Object id of the operator who seeds Key Vault secrets (given Key Vault Secrets Officer); empty: nobody.')
param operatorPrincipalId string = ''

@description('Principal type of operatorPrincipalId: User, Group or ServicePrincipal.')
param operatorPrincipalType string = 'User'

// ---------------------------------------------------------------------------------
// Parameters: scale and rollout

@description('vCPU per replica (the Go binary idles at 15-30 MB RSS).')
param cpu string = '0.25'

@description('Memory per replica.')
param memory string = '0.5Gi'

@description('Maximum replicas of the server (minimum is always 0).')
@minValue(1)
@maxValue(300)
param maxReplicas int = 10

@description('Concurrent HTTP requests per replica before another replica is added.')
@minValue(1)
param httpConcurrency int = 50

@description('Ingress traffic split. Default: all traffic to the newest revision.')
param traffic trafficTarget[] = [
  {
    latestRevision: true
    weight: 100
  }
]

@description('Suffix of the revision this deployment creates (<app>--<suffix>), e.g. for a canary; empty: generated.')
param revisionSuffix string = ''

@description('Cron schedule (UTC) of the Team-cache sync job.')
param syncSchedule string = '*/30 * * * *'

@description('Cron schedule (UTC) of the frequent alert check of monitored flows (sync --monitored-only).')
param alertSchedule string = '*/5 * * * *'

// ---------------------------------------------------------------------------------
// Parameters: application settings (environment variables)

@description('Public base URL (FLOWSTUDIO_PUBLIC_URL), e.g. a custom domain; empty: https://<app fqdn>.')
param publicUrl string = ''

@description('FLOWSTUDIO_ALLOWED_ORIGINS, comma separated; empty: the public URL only.')
param allowedOrigins string = ''

@description('OTLP endpoint for the metrics of the server, forwarded by the managed OpenTelemetry agent (an OpenTelemetry Collector or the OTLP intake of a vendor); empty: metrics are not exported.')
param otlpMetricsEndpoint string = ''

@description('Seconds the server drains in-flight calls after SIGTERM (FLOWSTUDIO_DRAIN_TIMEOUT).')
param drainTimeout string = '20s'

@description('Entra ID application (client) id (ENTRA_CLIENT_ID).')
param entraClientId string = ''

@description('Name of the Key Vault secret holding the Entra client secret (ENTRA_CLIENT_SECRET); empty: no client secret (federated credential).')
param entraClientSecretName string = ''

@description('ENTRA_AUTHORITY.')
param entraAuthority string = 'https://login.microsoftonline.com'

@description('ENTRA_TENANT: organizations, common, or one tenant id.')
param entraTenant string = 'organizations'

@description('FLOW_API_URL (public cloud by default).')
param flowApiUrl string = 'https://api.flow.microsoft.com'

@description('POWERAPPS_API_URL (public cloud by default).')
param powerAppsApiUrl string = 'https://api.powerapps.com'

@description('BAP_API_URL (public cloud by default).')
param bapApiUrl string = 'https://api.bap.microsoft.com'

@description('Name of the Key Vault secret holding the Stripe webhook signing secret (STRIPE_WEBHOOK_SECRET); empty: billing webhooks off.')
param stripeWebhookSecretName string = 'stripe-webhook-secret'

@description('SMTP_HOST for alert emails (e.g. smtp.azurecomm.net for Azure Communication Services); empty: alerts show on the dashboard only.')
param smtpHost string = ''

@description('SMTP_PORT: 587 (STARTTLS, required for a remote relay) or 465 (implicit TLS).')
param smtpPort string = '587'

@description('SMTP_USERNAME (for Azure Communication Services: the SMTP username of its Entra app); empty: no SMTP AUTH.')
param smtpUsername string = ''

@description('SMTP_FROM: the sender address alert emails come from (a verified sender domain of the relay).')
param smtpFrom string = ''

@description('Name of the Key Vault secret holding SMTP_PASSWORD; empty: no password.')
param smtpPasswordSecretName string = ''

@description('LOG_LEVEL: debug, info, warn or error.')
param logLevel string = 'info'

@description('QUOTA_FREE: calls per day/per minute.')
param quotaFree string = '200/20'

@description('QUOTA_PRO: calls per day/per minute.')
param quotaPro string = '5000/120'

@description('QUOTA_TEAM: calls per day/per minute.')
param quotaTeam string = '50000/600'

// ---------------------------------------------------------------------------------
// Names

var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var rgName = empty(resourceGroupName) ? 'rg-${environmentName}' : resourceGroupName
var allTags = union(tags, {
  'azd-env-name': environmentName
  application: 'flowstudio-mcp'
})
var appName = 'ca-mcp-${resourceToken}'
var syncJobName = 'caj-sync-${resourceToken}'
var alertJobName = 'caj-alerts-${resourceToken}'
var rotateJobName = 'caj-rotate-${resourceToken}'
var databaseName = 'flowstudio'
// Key Vault secret names the server reads.
var tokenSecretName = 'token-secret'
var sealingKeySecretName = 'refresh-token-key'

// ---------------------------------------------------------------------------------
// Resources

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: rgName
  location: location
  tags: allTags
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    workspaceName: 'log-${resourceToken}'
    appInsightsName: 'appi-${resourceToken}'
    location: location
    tags: allTags
  }
}

// The identity of the server and the sync job: reads secrets, reads/writes Cosmos data,
// pulls the image.
module appIdentity 'modules/identity.bicep' = {
  name: 'identity-app'
  scope: rg
  params: {
    name: 'id-mcp-${resourceToken}'
    location: location
    tags: allTags
  }
}

// The identity of the rotate-key job alone: adds versions to the sealing key.
module rotateIdentity 'modules/identity.bicep' = {
  name: 'identity-rotate'
  scope: rg
  params: {
    name: 'id-rotate-${resourceToken}'
    location: location
    tags: allTags
  }
}

module keyVault 'modules/keyvault.bicep' = {
  name: 'keyvault'
  scope: rg
  params: {
    name: 'kv-${resourceToken}'
    location: location
    tags: allTags
    readerPrincipalIds: [
      appIdentity.outputs.principalId
    ]
    rotatorPrincipalIds: [
      rotateIdentity.outputs.principalId
    ]
    operatorPrincipalId: operatorPrincipalId
    operatorPrincipalType: operatorPrincipalType
  }
}

module cosmos 'modules/cosmos.bicep' = {
  name: 'cosmos'
  scope: rg
  params: {
    accountName: 'cosmos-${resourceToken}'
    location: location
    tags: allTags
    databaseName: databaseName
    dataContributorPrincipalIds: [
      appIdentity.outputs.principalId
      rotateIdentity.outputs.principalId
    ]
  }
}

module registry 'modules/registry.bicep' = {
  name: 'registry'
  scope: rg
  params: {
    name: 'cr${resourceToken}'
    location: location
    tags: allTags
    pullPrincipalIds: [
      appIdentity.outputs.principalId
    ]
  }
}

module containerEnv 'modules/containerapps-env.bicep' = {
  name: 'containerapps-env'
  scope: rg
  params: {
    name: 'cae-${resourceToken}'
    location: location
    tags: allTags
    workspaceName: monitoring.outputs.workspaceName
    appInsightsName: monitoring.outputs.appInsightsName
    otlpMetricsEndpoint: otlpMetricsEndpoint
  }
}

// ---------------------------------------------------------------------------------
// Settings shared by the server and the jobs

var resolvedPublicUrl = empty(publicUrl) ? 'https://${appName}.${containerEnv.outputs.defaultDomain}' : publicUrl

// Container Apps secrets: Key Vault references only, read with the app identity.
var secretRefs = concat(
  [
    {
      name: tokenSecretName
      keyVaultUrl: '${keyVault.outputs.uri}secrets/${tokenSecretName}'
      identity: appIdentity.outputs.id
    }
  ],
  empty(entraClientSecretName)
    ? []
    : [
        {
          name: 'entra-client-secret'
          keyVaultUrl: '${keyVault.outputs.uri}secrets/${entraClientSecretName}'
          identity: appIdentity.outputs.id
        }
      ],
  empty(stripeWebhookSecretName)
    ? []
    : [
        {
          name: 'stripe-webhook-secret'
          keyVaultUrl: '${keyVault.outputs.uri}secrets/${stripeWebhookSecretName}'
          identity: appIdentity.outputs.id
        }
      ],
  empty(smtpPasswordRef)
    ? []
    : [
        {
          name: 'smtp-password'
          keyVaultUrl: '${keyVault.outputs.uri}secrets/${smtpPasswordRef}'
          identity: appIdentity.outputs.id
        }
      ]
)

// Alert email settings go in only with a host (SMTP_PORT alone would be refused), and
// the password only with both.
var smtpPasswordRef = empty(smtpHost) ? '' : smtpPasswordSecretName

// Every setting the binary reads, AZURE_CLIENT_ID aside (added per workload).
var settings = concat(
  [
    {
      name: 'FLOWSTUDIO_ADDR'
      value: '0.0.0.0:8080'
    }
    {
      name: 'FLOWSTUDIO_PUBLIC_URL'
      value: resolvedPublicUrl
    }
    {
      name: 'FLOWSTUDIO_DATA_DIR'
      value: '/tmp/flowstudio'
    }
    {
      name: 'FLOWSTUDIO_ENV'
      value: 'production'
    }
    {
      name: 'FLOWSTUDIO_ALLOWED_ORIGINS'
      value: empty(allowedOrigins) ? resolvedPublicUrl : allowedOrigins
    }
    {
      name: 'FLOWSTUDIO_DRAIN_TIMEOUT'
      value: drainTimeout
    }
    {
      // The server exports metrics to the managed OpenTelemetry agent only when the
      // agent has somewhere to send them (otlpMetricsEndpoint).
      name: 'OTEL_METRICS_EXPORTER'
      value: empty(otlpMetricsEndpoint) ? 'none' : 'otlp'
    }
    {
      name: 'TOKEN_SECRET'
      secretRef: tokenSecretName
    }
    {
      name: 'ENTRA_CLIENT_ID'
      value: entraClientId
    }
    {
      name: 'ENTRA_AUTHORITY'
      value: entraAuthority
    }
    {
      name: 'ENTRA_TENANT'
      value: entraTenant
    }
    {
      name: 'FLOW_API_URL'
      value: flowApiUrl
    }
    {
      name: 'POWERAPPS_API_URL'
      value: powerAppsApiUrl
    }
    {
      name: 'BAP_API_URL'
      value: bapApiUrl
    }
    {
      name: 'COSMOS_ENDPOINT'
      value: cosmos.outputs.endpoint
    }
    {
      name: 'COSMOS_DATABASE'
      value: databaseName
    }
    {
      name: 'KEYVAULT_URL'
      value: keyVault.outputs.uri
    }
    {
      name: 'KEYVAULT_SECRET_NAME'
      value: sealingKeySecretName
    }
    {
      name: 'LOG_LEVEL'
      value: logLevel
    }
    {
      name: 'QUOTA_FREE'
      value: quotaFree
    }
    {
      name: 'QUOTA_PRO'
      value: quotaPro
    }
    {
      name: 'QUOTA_TEAM'
      value: quotaTeam
    }
  ],
  empty(entraClientSecretName)
    ? []
    : [
        {
          name: 'ENTRA_CLIENT_SECRET'
          secretRef: 'entra-client-secret'
        }
      ],
  empty(stripeWebhookSecretName)
    ? []
    : [
        {
          name: 'STRIPE_WEBHOOK_SECRET'
          secretRef: 'stripe-webhook-secret'
        }
      ],
  empty(smtpHost)
    ? []
    : [
        {
          name: 'SMTP_HOST'
          value: smtpHost
        }
        {
          name: 'SMTP_PORT'
          value: smtpPort
        }
        {
          name: 'SMTP_USERNAME'
          value: smtpUsername
        }
        {
          name: 'SMTP_FROM'
          value: smtpFrom
        }
      ],
  empty(smtpPasswordRef)
    ? []
    : [
        {
          name: 'SMTP_PASSWORD'
          secretRef: 'smtp-password'
        }
      ]
)

// ---------------------------------------------------------------------------------
// Workloads

module app 'modules/containerapp.bicep' = if (deployApp) {
  name: 'containerapp'
  scope: rg
  params: {
    name: appName
    location: location
    tags: allTags
    environmentId: containerEnv.outputs.id
    identityId: appIdentity.outputs.id
    azureClientId: appIdentity.outputs.clientId
    registryServer: registry.outputs.loginServer
    image: containerImage
    env: settings
    vaultReferences: secretRefs
    cpu: cpu
    memory: memory
    maxReplicas: maxReplicas
    httpConcurrency: httpConcurrency
    traffic: traffic
    revisionSuffix: revisionSuffix
  }
}

module syncJob 'modules/job.bicep' = if (deployApp) {
  name: 'job-sync'
  scope: rg
  params: {
    name: syncJobName
    location: location
    tags: allTags
    environmentId: containerEnv.outputs.id
    identityId: appIdentity.outputs.id
    azureClientId: appIdentity.outputs.clientId
    registryServer: registry.outputs.loginServer
    image: containerImage
    args: [
      'sync'
    ]
    env: settings
    vaultReferences: secretRefs
    triggerType: 'Schedule'
    cronExpression: syncSchedule
    cpu: cpu
    memory: memory
  }
}

// The frequent, cheap alert check: only monitored flows' newest runs, no cache refresh.
module alertJob 'modules/job.bicep' = if (deployApp) {
  name: 'job-alerts'
  scope: rg
  params: {
    name: alertJobName
    location: location
    tags: allTags
    environmentId: containerEnv.outputs.id
    identityId: appIdentity.outputs.id
    azureClientId: appIdentity.outputs.clientId
    registryServer: registry.outputs.loginServer
    image: containerImage
    args: [
      'sync'
      '--monitored-only'
      '--timeout'
      '4m'
    ]
    env: settings
    vaultReferences: secretRefs
    triggerType: 'Schedule'
    cronExpression: alertSchedule
    replicaTimeout: 280
    cpu: cpu
    memory: memory
  }
}

// Started by hand: az containerapp job start -n <ROTATE_KEY_JOB_NAME> -g <rg>
module rotateJob 'modules/job.bicep' = if (deployApp) {
  name: 'job-rotate-key'
  scope: rg
  params: {
    name: rotateJobName
    location: location
    tags: allTags
    environmentId: containerEnv.outputs.id
    identityId: appIdentity.outputs.id
    runAsIdentityId: rotateIdentity.outputs.id
    azureClientId: rotateIdentity.outputs.clientId
    registryServer: registry.outputs.loginServer
    image: containerImage
    args: [
      'rotate-key'
    ]
    env: settings
    vaultReferences: secretRefs
    triggerType: 'Manual'
    cpu: cpu
    memory: memory
  }
}

// ---------------------------------------------------------------------------------
// Outputs (azd writes them to .azure/<env>/.env). No secrets here.

@description('The MCP endpoint to give to clients.')
output MCP_URL string = '${resolvedPublicUrl}/mcp'

@description('Redirect URI to register on the Entra ID app (Web platform).')
output CONSENT_REDIRECT_URI string = '${resolvedPublicUrl}/callback'

output KEY_VAULT_NAME string = keyVault.outputs.name
output KEY_VAULT_URL string = keyVault.outputs.uri
output COSMOS_ACCOUNT_NAME string = cosmos.outputs.name
output AZURE_LOCATION string = location
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_CONTAINER_REGISTRY_ENDPOINT string = registry.outputs.loginServer
output AZURE_CONTAINER_REGISTRY_NAME string = registry.outputs.name
output AZURE_CONTAINER_APPS_ENVIRONMENT_NAME string = containerEnv.outputs.name
output AZURE_CONTAINER_APP_NAME string = appName
output SYNC_JOB_NAME string = syncJobName
output ALERT_JOB_NAME string = alertJobName
output ROTATE_KEY_JOB_NAME string = rotateJobName
output APP_IDENTITY_CLIENT_ID string = appIdentity.outputs.clientId
output APP_IDENTITY_PRINCIPAL_ID string = appIdentity.outputs.principalId
output LOG_ANALYTICS_WORKSPACE_ID string = monitoring.outputs.workspaceCustomerId
output APPLICATION_INSIGHTS_NAME string = monitoring.outputs.appInsightsName
