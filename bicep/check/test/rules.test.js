'use strict';
// One or more negative cases per rule: the fixture passes the rule, the fixture with
// one thing broken fails it for the expected reason. So a rule that finds nothing to
// look at, or reads the wrong node, cannot pass silently.

const test = require('node:test');
const assert = require('node:assert/strict');
const B = require('../lib/bicep');
const { rules, secretish } = require('../lib/rules');
const { fixture } = require('./fixture');

const M = 'main.bicep';
const A = 'modules/app.bicep';
const P = 'main.bicepparam';

// [rule, case name, edits, expected problem]
const CASES = [
  ['syntax', 'unclosed object', [[M, "output KEY_VAULT_NAME string = vault.name\n", "resource broken 'Microsoft.Web/sites@2023-12-01' = {\n  name: 'x'\n"]], /^main\.bicep:\d+:\d+: (syntax error|missing)/],
  ['syntax', 'parameter without a type', [[A, 'param location string', 'param location =']], /^modules\/app\.bicep:1:\d+:/],
  ['syntax', 'bad .bicepparam assignment', [[P, "param location = 'australiaeast'", "param location = 'australiaeast' 'x'"]], /^main\.bicepparam:3:/],

  ['modulesExist', 'module path that does not exist', [[M, "module app 'modules/app.bicep'", "module app 'modules/missing.bicep'"]], /main\.bicep:\d+: module 'modules\/missing\.bicep' does not exist/],
  ['modulesExist', 'using path that does not exist', [[P, "using './main.bicep'", "using './other.bicep'"]], /main\.bicepparam:1: using '.\/other\.bicep' does not exist/],

  ['paramsUsed', 'unused param in a module', [[A, 'param image string\n', 'param image string\nparam unused string\n']], /modules\/app\.bicep:3: param 'unused' is declared but never used/],
  ['paramsUsed', 'param used only as an object key', [[M, "param entraClientSecretName string = 'entra-client-secret'\n", "param entraClientSecretName string = 'entra-client-secret'\nparam logLevel string = 'info'\nvar o = {\n  logLevel: 'x'\n}\n"]], /param 'logLevel' is declared but never used/],

  ['bicepparamMatches', 'assignment of an undeclared param', [[P, "param location = 'australiaeast'", "param location = 'australiaeast'\nparam region = 'x'"]], /main\.bicepparam:4: 'region' is not a parameter of main\.bicep/],
  ['bicepparamMatches', 'required param left unset', [[M, "param image string = 'mcr.microsoft.com/k8se/quickstart:latest'", 'param image string']], /required param 'image' is not set in main\.bicepparam/],

  ['apiVersions', 'resource type without @api-version', [[M, "'Microsoft.KeyVault/vaults@2023-07-01'", "'Microsoft.KeyVault/vaults'"]], /resource 'vault' type 'Microsoft\.KeyVault\/vaults' needs a GA @api-version/],
  ['apiVersions', 'preview api-version', [[A, "'Microsoft.App/containerApps@2024-03-01'", "'Microsoft.App/containerApps@2024-02-02-preview'"]], /needs a GA @api-version/],
  ['apiVersions', 'a preview api-version other than the allowed one', [[A, "'Microsoft.App/containerApps@2024-03-01'", "'Microsoft.App/managedEnvironments@2025-02-02-preview'"]], /needs a GA @api-version/],

  ['secureParams', 'secret in a plain param', [[M, "param entraClientSecretName string = 'entra-client-secret'\n", "param entraClientSecretName string = 'entra-client-secret'\nparam tokenSecret string\n"]], /param 'tokenSecret' looks like a secret but is not @secure\(\)/],
  ['secureParams', 'secret in plain text in .bicepparam', [[P, "param location = 'australiaeast'", "param location = 'australiaeast'\nparam stripeWebhookSecret = 'whsec_123'"]], /'stripeWebhookSecret' assigns a secret in plain text/],

  ['noSecretOutputs', 'output named like a secret', [[M, 'output KEY_VAULT_NAME string = vault.name', 'output KEY_VAULT_NAME string = vault.name\noutput TOKEN_SECRET string = vault.name']], /output 'TOKEN_SECRET' is named like a secret/],
  ['noSecretOutputs', 'output calling listKeys()', [[M, 'output COSMOS_ACCOUNT_NAME string = account.name', 'output COSMOS_ACCOUNT_NAME string = account.listKeys().primaryMasterKey']], /calls listKeys\(\)/],
  ['noSecretOutputs', 'output of a @secure() param through a var', [[M, "param cpu string = '0.25'\n", "param cpu string = '0.25'\n@secure()\nparam adminSecret string\nvar banner = 'x\${adminSecret}'\noutput BANNER string = banner\n"]], /uses @secure\(\) param 'adminSecret'/],
  ['noSecretOutputs', '@secure() output', [[M, 'output COSMOS_ACCOUNT_NAME string', '@secure()\noutput COSMOS_ACCOUNT_NAME string']], /is @secure\(\)/],

  ['minReplicasZero', 'min replicas 1', [[A, 'minReplicas: 0', 'minReplicas: 1']], /min replicas: properties\.template\.scale\.minReplicas is 1, want 0/],
  ['minReplicasZero', 'min replicas through a param default', [[A, 'minReplicas: 0', 'minReplicas: minimum'], [A, 'param location string\n', 'param location string\nparam minimum int = 2\n']], /minReplicas is 2, want 0/],
  ['minReplicasZero', 'min replicas unset', [[A, 'minReplicas: 0\n', '']], /minReplicas is not set/],
  ['minReplicasZero', 'no container app at all', [[M, "module app 'modules/app.bicep'", "module app 'modules/app.bicep'"], [A, "'Microsoft.App/containerApps@2024-03-01'", "'Microsoft.Web/sites@2023-12-01'"]], /no Microsoft\.App\/containerApps resource declared/],

  ['scaleParameters', 'max replicas hard-coded', [[A, 'maxReplicas: maxReplicas', 'maxReplicas: 10 + 0 * maxReplicas'], [M, 'maxReplicas: maxReplicas', 'maxReplicas: maxReplicas']], /scale\.maxReplicas must be a parameter/],
  ['scaleParameters', 'no http scale rule', [[A, "concurrentRequests: string(httpConcurrency)", "concurrentRequests: '50'"], [A, 'param httpConcurrency int\n', 'param httpConcurrency int\nvar unusedConcurrency = httpConcurrency\n']], /http scale rule with concurrentRequests from a parameter/],

  ['retention90', 'workspace kept 30 days', [[M, 'retentionInDays: 90', 'retentionInDays: 30']], /workspace retention: properties\.retentionInDays is 30, want 90/],
  ['retention90', 'App Insights kept 30 days', [[M, 'RetentionInDays: 90', 'RetentionInDays: 30']], /Application Insights retention: properties\.RetentionInDays is 30, want 90/],
  ['retention90', 'classic App Insights', [[M, '    WorkspaceResourceId: workspace.id\n', '']], /must be workspace-based/],

  ['cosmosHardening', 'TLS 1.0', [[M, "minimalTlsVersion: 'Tls12'", "minimalTlsVersion: 'Tls'"]], /cosmos: properties\.minimalTlsVersion is "Tls", want "Tls12"/],
  ['cosmosHardening', 'keys allowed', [[M, 'disableLocalAuth: true', 'disableLocalAuth: false']], /properties\.disableLocalAuth is false, want true/],
  ['cosmosHardening', 'provisioned throughput', [[M, "name: 'EnableServerless'", "name: 'EnableTable'"]], /capability EnableServerless missing/],

  ['cosmosData', 'wrong partition key', [[M, "{ name: 'users', partitionKey: '/id' }", "{ name: 'users', partitionKey: '/userId' }"]], /container 'users' partition key is "\/userId", want \/id/],
  ['cosmosData', 'missing container', [[M, "  { name: 'usage', partitionKey: '/userId' }\n", '']], /container 'usage' missing/],
  ['cosmosData', 'TTL off', [[M, 'defaultTtl: -1', 'defaultTtl: 3600']], /cosmos container TTL: properties\.resource\.defaultTtl is 3600, want -1/],
  ['cosmosData', 'wrong data-plane role', [[M, "var roleId = '00000000-0000-0000-0000-000000000002'", "var roleId = '00000000-0000-0000-0000-000000000001'"]], /built-in Data Contributor/],

  ['managedIdentity', 'system-assigned app', [[A, "type: 'UserAssigned'", "type: 'SystemAssigned'"]], /modules\/app\.bicep:\d+: identity\.type must be UserAssigned/],
  ['managedIdentity', 'job without identity', [[M, "  identity: {\n    type: 'UserAssigned'\n    userAssignedIdentities: {\n      '${identityId}': {}\n    }\n  }\n", '']], /main\.bicep:\d+: identity\.type must be UserAssigned \(is unset\)/],

  ['ingress', 'plain HTTP allowed', [[A, 'allowInsecure: false', 'allowInsecure: true']], /ingress\.allowInsecure is true, want false/],
  ['ingress', 'wrong target port', [[A, 'targetPort: 8080', 'targetPort: 80']], /ingress\.targetPort is 80, want 8080/],

  ['probes', 'readiness on /healthz', [[A, "path: '/readyz'", "path: '/healthz'"]], /Readiness must GET \/readyz/],
  ['probes', 'no liveness probe', [[A, "type: 'Liveness'", "type: 'Other'"]], /no Liveness probe/],

  ['revisions', 'single revision mode', [[A, "activeRevisionsMode: 'Multiple'", "activeRevisionsMode: 'Single'"]], /activeRevisionsMode is "Single", want "Multiple"/],

  ['keyVaultSecretRefs', 'plain secret value', [[M, "    keyVaultUrl: '${uri}secrets/stripe-webhook-secret'\n", "    value: 'whsec_123'\n"]], /plain secret value; use keyVaultUrl/],
  ['keyVaultSecretRefs', 'reference without identity', [[M, "    keyVaultUrl: '${uri}secrets/token-secret'\n    identity: identityId\n", "    keyVaultUrl: '${uri}secrets/token-secret'\n"]], /secrets: identity missing/],

  ['settings', 'TOKEN_SECRET as a value', [[M, "{ name: 'TOKEN_SECRET', secretRef: 'token-secret' }", "{ name: 'TOKEN_SECRET', value: 'not-so-secret' }"]], /TOKEN_SECRET must be a secretRef, not a value/],
  ['settings', 'missing settings', [[M, "  { name: 'QUOTA_TEAM', value: '50000/600' }\n", ''], [M, "  { name: 'AZURE_CLIENT_ID', value: '00000000-0000-0000-0000-000000000001' }\n", '']], /settings: missing AZURE_CLIENT_ID, QUOTA_TEAM/],

  ['keyVault', 'no purge protection', [[M, 'enablePurgeProtection: true', 'enablePurgeProtection: false']], /key vault: properties\.enablePurgeProtection is false, want true/],
  ['keyVault', 'access policies instead of RBAC', [[M, 'enableRbacAuthorization: true', 'enableRbacAuthorization: false']], /enableRbacAuthorization is false, want true/],

  ['syncJob', 'job runs serve', [[M, "            'sync'\n", "            'serve'\n"]], /no job runs args \['sync'\]/],
  ['syncJob', 'hourly schedule', [[M, "param syncSchedule string = '*/30 * * * *'", "param syncSchedule string = '0 * * * *'"], [P, "readEnvironmentVariable('SYNC', '*/30 * * * *')", "readEnvironmentVariable('SYNC', '0 * * * *')"]], /sync job: cron is "0 \* \* \* \*", want "\*\/30 \* \* \* \*"/],
  ['syncJob', 'manual trigger', [[M, "triggerType: 'Schedule'", "triggerType: 'Manual'"]], /triggerType is "Manual", want "Schedule"/],
  ['syncJob', 'another image', [[M, '          image: image\n          args:', "          image: 'example.azurecr.io/other:1'\n          args:"]], /sync job: image must be the server's image/],

  ['azdServiceTag', 'untagged app', [[A, "'azd-service-name': 'mcp'", "'azd-service-name': 'web'"]], /tag azd-service-name: 'mcp' missing/],

  ['entryPoint', 'another default region', [[M, "param location string = 'australiaeast'", "param location string = 'eastus'"]], /param location must default to 'australiaeast'/],
  ['entryPoint', 'bigger replicas', [[M, "param memory string = '0.5Gi'", "param memory string = '2Gi'"]], /param memory must default to '0\.5Gi'/],
  ['entryPoint', 'MCP URL without /mcp', [[M, "output MCP_URL string = '${app.outputs.url}/mcp'", "output MCP_URL string = '${app.outputs.url}/'"]], /output MCP_URL must be/],
  ['entryPoint', 'no Cosmos account output', [[M, 'output COSMOS_ACCOUNT_NAME string = account.name\n', '']], /output COSMOS_ACCOUNT_NAME missing/],
];

test('every rule has a negative case', () => {
  const covered = new Set(CASES.map((c) => c[0]));
  const missing = Object.keys(rules).filter((r) => !covered.has(r));
  assert.deepEqual(missing, [], `rules without a negative case: ${missing.join(', ')}`);
});

test('the fixture keeps every rule', async (t) => {
  const project = fixture();
  for (const [name, rule] of Object.entries(rules)) {
    await t.test(name, () => {
      const problems = rule(project);
      assert.deepEqual(problems, [], problems.join('\n'));
    });
  }
});

test('negative cases', async (t) => {
  for (const [ruleName, caseName, edits, want] of CASES) {
    await t.test(`${ruleName}: ${caseName}`, () => {
      const rule = rules[ruleName];
      assert.ok(rule, `no rule ${ruleName}`);
      const problems = rule(fixture(edits));
      assert.ok(problems.length > 0, `${ruleName} passed a broken template (${caseName})`);
      assert.ok(problems.some((p) => want.test(p)), `expected ${want}, got:\n${problems.join('\n')}`);
    });
  }
});

test('secret-like names', () => {
  for (const n of ['tokenSecret', 'TOKEN_SECRET', 'apiKey', 'adminPassword', 'refreshToken', 'stripeWebhookSecret']) assert.ok(secretish(n), n);
  for (const n of ['entraClientSecretName', 'KEY_VAULT_NAME', 'KEYVAULT_URL', 'keyVaultUri', 'location', 'vaultReferences']) assert.ok(!secretish(n), n);
});

test('a .bicepparam file parses, with line numbers intact and vars told from params', () => {
  const src = "using './x.bicep'\n\n// é, non-ASCII before\nparam a = 1\nvar v = 'x'\n  param b = v == 'x' ? 'two' : 'three'\n";
  const p = B.projectFromSources({ 'x.bicepparam': src, 'x.bicep': "param a int\nparam b string\noutput o string = '${a}${b}'\n" });
  const f = p.files.get('x.bicepparam');
  assert.deepEqual(B.syntaxProblems(f), []);
  assert.deepEqual(
    B.declarations(f).filter((x) => x.name).map((x) => [x.kind, x.name, B.line(x.node)]),
    [['assign', 'a', 4], ['var', 'v', 5], ['assign', 'b', 6]],
  );
  assert.deepEqual(rules.bicepparamMatches(p), []);
});
