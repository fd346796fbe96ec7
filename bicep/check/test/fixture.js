'use strict';
// A small template that keeps every rule, in one file and split into a module. Each
// negative test breaks one thing in it and expects the matching rule to fail, after
// checking that the unbroken fixture passes that same rule.

const B = require('../lib/bicep');

const MAIN = `targetScope = 'subscription'

@description('Region.')
param location string = 'australiaeast'
param cpu string = '0.25'
param memory string = '0.5Gi'
param maxReplicas int = 10
param httpConcurrency int = 50
param image string = 'mcr.microsoft.com/k8se/quickstart:latest'
param syncSchedule string = '*/30 * * * *'
param entraClientSecretName string = 'entra-client-secret'

var uri = 'https://kv.vault.azure.net/'
var identityId = '/subscriptions/x/resourceGroups/y/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id'
var refs = [
  {
    name: 'token-secret'
    keyVaultUrl: '\${uri}secrets/token-secret'
    identity: identityId
  }
  {
    name: 'entra-client-secret'
    keyVaultUrl: '\${uri}secrets/\${entraClientSecretName}'
    identity: identityId
  }
  {
    name: 'stripe-webhook-secret'
    keyVaultUrl: '\${uri}secrets/stripe-webhook-secret'
    identity: identityId
  }
]
var env = [
  { name: 'FLOWSTUDIO_ADDR', value: '0.0.0.0:8080' }
  { name: 'FLOWSTUDIO_PUBLIC_URL', value: 'https://x' }
  { name: 'FLOWSTUDIO_DATA_DIR', value: '/tmp/flowstudio' }
  { name: 'FLOWSTUDIO_ENV', value: 'production' }
  { name: 'FLOWSTUDIO_ALLOWED_ORIGINS', value: 'https://x' }
  { name: 'TOKEN_SECRET', secretRef: 'token-secret' }
  { name: 'ENTRA_CLIENT_ID', value: 'id' }
  { name: 'ENTRA_CLIENT_SECRET', secretRef: 'entra-client-secret' }
  { name: 'ENTRA_AUTHORITY', value: 'https://login.microsoftonline.com' }
  { name: 'ENTRA_TENANT', value: 'organizations' }
  { name: 'FLOW_API_URL', value: 'https://api.flow.microsoft.com' }
  { name: 'POWERAPPS_API_URL', value: 'https://api.powerapps.com' }
  { name: 'BAP_API_URL', value: 'https://api.bap.microsoft.com' }
  { name: 'COSMOS_ENDPOINT', value: 'https://c.documents.azure.com:443/' }
  { name: 'COSMOS_DATABASE', value: 'flowstudio' }
  { name: 'KEYVAULT_URL', value: uri }
  { name: 'KEYVAULT_SECRET_NAME', value: 'refresh-token-key' }
  { name: 'STRIPE_WEBHOOK_SECRET', secretRef: 'stripe-webhook-secret' }
  { name: 'LOG_LEVEL', value: 'info' }
  { name: 'AZURE_CLIENT_ID', value: '00000000-0000-0000-0000-000000000001' }
  { name: 'QUOTA_FREE', value: '200/20' }
  { name: 'QUOTA_PRO', value: '5000/120' }
  { name: 'QUOTA_TEAM', value: '50000/600' }
]

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: 'log'
  location: location
  properties: {
    retentionInDays: 90
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: 'appi'
  location: location
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: workspace.id
    RetentionInDays: 90
  }
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: 'kv'
  location: location
  properties: {
    enableRbacAuthorization: true
    enableSoftDelete: true
    enablePurgeProtection: true
  }
}

resource account 'Microsoft.DocumentDB/databaseAccounts@2024-05-15' = {
  name: 'cosmos'
  location: location
  properties: {
    capabilities: [
      {
        name: 'EnableServerless'
      }
    ]
    disableLocalAuth: true
    minimalTlsVersion: 'Tls12'
  }
}

var containers = [
  { name: 'users', partitionKey: '/id' }
  { name: 'cache', partitionKey: '/userId' }
  { name: 'usage', partitionKey: '/userId' }
]
var roleId = '00000000-0000-0000-0000-000000000002'

resource db 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases@2024-05-15' = {
  parent: account
  name: 'flowstudio'
  properties: {
    resource: {
      id: 'flowstudio'
    }
  }
}

resource items 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers@2024-05-15' = [
  for c in containers: {
    parent: db
    name: c.name
    properties: {
      resource: {
        id: c.name
        partitionKey: {
          paths: [
            c.partitionKey
          ]
        }
        defaultTtl: -1
      }
    }
  }
]

resource dataRole 'Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments@2024-05-15' = {
  parent: account
  name: guid('x')
  properties: {
    roleDefinitionId: '\${account.id}/sqlRoleDefinitions/\${roleId}'
    principalId: 'p'
    scope: account.id
  }
}

module app 'modules/app.bicep' = {
  name: 'app'
  params: {
    location: location
    image: image
    env: env
    refs: refs
    cpu: cpu
    memory: memory
    maxReplicas: maxReplicas
    httpConcurrency: httpConcurrency
  }
}

resource syncJob 'Microsoft.App/jobs@2024-03-01' = {
  name: 'sync'
  location: location
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '\${identityId}': {}
    }
  }
  properties: {
    configuration: {
      triggerType: 'Schedule'
      scheduleTriggerConfig: {
        cronExpression: syncSchedule
      }
      secrets: refs
    }
    template: {
      containers: [
        {
          name: 'flowstudio'
          image: image
          args: [
            'sync'
          ]
          env: env
        }
      ]
    }
  }
}

output MCP_URL string = '\${app.outputs.url}/mcp'
output CONSENT_REDIRECT_URI string = '\${app.outputs.url}/callback'
output KEY_VAULT_NAME string = vault.name
output COSMOS_ACCOUNT_NAME string = account.name
`;

const APP = `param location string
param image string
param env array
param refs array
param cpu string
param memory string
param maxReplicas int
param httpConcurrency int

resource app 'Microsoft.App/containerApps@2024-03-01' = {
  name: 'ca'
  location: location
  tags: union({}, {
    'azd-service-name': 'mcp'
  })
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '/subscriptions/x/id': {}
    }
  }
  properties: {
    configuration: {
      activeRevisionsMode: 'Multiple'
      ingress: {
        external: true
        targetPort: 8080
        allowInsecure: false
        traffic: [
          {
            latestRevision: true
            weight: 100
          }
        ]
      }
      secrets: refs
    }
    template: {
      containers: [
        {
          name: 'mcp'
          image: image
          env: env
          resources: {
            cpu: json(cpu)
            memory: memory
          }
          probes: [
            {
              type: 'Startup'
              httpGet: {
                path: '/healthz'
                port: 8080
              }
            }
            {
              type: 'Readiness'
              httpGet: {
                path: '/readyz'
                port: 8080
              }
            }
            {
              type: 'Liveness'
              httpGet: {
                path: '/healthz'
                port: 8080
              }
            }
          ]
        }
      ]
      scale: {
        minReplicas: 0
        maxReplicas: maxReplicas
        rules: [
          {
            name: 'http'
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

output url string = 'https://\${app.properties.configuration.ingress.fqdn}'
`;

const PARAMS = `using './main.bicep'

param location = 'australiaeast'
param syncSchedule = readEnvironmentVariable('SYNC', '*/30 * * * *')
`;

const SOURCES = { 'main.bicep': MAIN, 'modules/app.bicep': APP, 'main.bicepparam': PARAMS };

// The fixture with edits: [[file, from, to], ...]; each `from` must occur exactly once.
function fixture(edits = []) {
  const src = { ...SOURCES };
  for (const [file, from, to] of edits) {
    const s = src[file] ?? '';
    const i = s.indexOf(from);
    if (i < 0 || s.indexOf(from, i + 1) >= 0) throw new Error(`fixture edit: ${JSON.stringify(from)} must occur once in ${file}`);
    src[file] = s.slice(0, i) + to + s.slice(i + from.length);
  }
  return B.projectFromSources(src);
}

module.exports = { SOURCES, fixture };
