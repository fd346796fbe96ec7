// Key Vault in RBAC mode for the server's secrets: token-secret (TOKEN_SECRET),
// refresh-token-key (the refresh-token sealing key, one version per rotation) and,
// where used, entra-client-secret and stripe-webhook-secret. This template never
// writes a secret value: the operator seeds them (bicep/scripts/bootstrap.sh or
// `az keyvault secret set`), and `flowstudio rotate-key` adds versions.

@description('Key Vault name (3-24 characters, globally unique).')
@minLength(3)
@maxLength(24)
param name string

@description('Azure region.')
param location string

@description('Tags for every resource.')
param tags object

@description('Principals (managed identities) that only read secrets: Key Vault Secrets User.')
param readerPrincipalIds array

@description('Principals (the rotate-key job identity) that add secret versions: Key Vault Secrets Officer.')
param rotatorPrincipalIds array

@description('Object id of the operator who seeds the secrets (Key Vault Secrets Officer). Empty: none.')
param operatorPrincipalId string = ''

@description('Principal type of operatorPrincipalId: User, Group or ServicePrincipal.')
param operatorPrincipalType string = 'User'

// Built-in role definition ids.
var secretsUserRoleId = '4633458b-17de-408a-b874-0445c86b69e6'
var secretsOfficerRoleId = 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7'

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enablePurgeProtection: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

resource secretsUsers 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for principalId in readerPrincipalIds: {
    name: guid(vault.id, principalId, secretsUserRoleId)
    scope: vault
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', secretsUserRoleId)
      principalId: principalId
      principalType: 'ServicePrincipal'
    }
  }
]

resource secretsOfficers 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for principalId in rotatorPrincipalIds: {
    name: guid(vault.id, principalId, secretsOfficerRoleId)
    scope: vault
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', secretsOfficerRoleId)
      principalId: principalId
      principalType: 'ServicePrincipal'
    }
  }
]

resource operatorOfficer 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(operatorPrincipalId)) {
  name: guid(vault.id, operatorPrincipalId, secretsOfficerRoleId)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', secretsOfficerRoleId)
    principalId: operatorPrincipalId
    principalType: operatorPrincipalType
  }
}

output id string = vault.id
output name string = vault.name
@description('Vault URI with a trailing slash, e.g. https://kv-x.vault.azure.net/')
output uri string = vault.properties.vaultUri
