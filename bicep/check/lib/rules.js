'use strict';
// The rules the Bicep templates must keep. Each rule is a function from a project
// (see bicep.js) to a list of problems ("file:line: what"); an empty list passes.
// The tests run every rule on bicep/ (must pass) and on a small bad template (must
// fail), so no rule can pass by finding nothing to look at.

const path = require('node:path');
const B = require('./bicep');

const SECRETISH = /secret|key|password|token/i;
// A name that refers to a secret rather than holding one: entraClientSecretName,
// KEY_VAULT_NAME, KEYVAULT_URL, refreshTokenKeySecretName...
const REFERENCE = /(name|names|url|uri|endpoint)$/i;
// Properties that carry credentials when read off a resource.
const CREDENTIAL_PROPERTY = /(connectionstrings?|primarykey|secondarykey|masterkey|instrumentationkey|sharedkey|password|accesskey)$/i;

function secretish(name) {
  return SECRETISH.test(name) && !REFERENCE.test(name);
}

// Settings the server reads (server/settings.go), all of which the container app and
// the jobs must set. AZURE_CLIENT_ID points azidentity at the user-assigned identity.
const REQUIRED_SETTINGS = [
  'FLOWSTUDIO_ADDR',
  'FLOWSTUDIO_PUBLIC_URL',
  'FLOWSTUDIO_DATA_DIR',
  'FLOWSTUDIO_ENV',
  'FLOWSTUDIO_ALLOWED_ORIGINS',
  'TOKEN_SECRET',
  'ENTRA_CLIENT_ID',
  'ENTRA_CLIENT_SECRET',
  'ENTRA_AUTHORITY',
  'ENTRA_TENANT',
  'FLOW_API_URL',
  'POWERAPPS_API_URL',
  'BAP_API_URL',
  'COSMOS_ENDPOINT',
  'COSMOS_DATABASE',
  'KEYVAULT_URL',
  'KEYVAULT_SECRET_NAME',
  'STRIPE_WEBHOOK_SECRET',
  'LOG_LEVEL',
  'AZURE_CLIENT_ID',
  'QUOTA_FREE',
  'QUOTA_PRO',
  'QUOTA_TEAM',
];

const APP = 'Microsoft.App/containerApps';
const JOB = 'Microsoft.App/jobs';

// ---------------------------------------------------------------------------------
// Helpers

const at = (file, node) => B.where(file, node);

function fmt(v) {
  return v === undefined ? '(not a literal)' : JSON.stringify(v);
}

// Every value reached by `dotted` under each resource body must equal `want`;
// reports a missing property too.
function expectEach(project, resources, dotted, want, label) {
  const problems = [];
  for (const { file, decl } of resources) {
    if (!decl.body) {
      problems.push(`${at(file, decl.node)}: ${label}: resource body is not an object`);
      continue;
    }
    const hits = B.getPath(project, file, decl.body, dotted);
    if (hits.length === 0) {
      problems.push(`${at(file, decl.node)}: ${label}: ${dotted} is not set`);
      continue;
    }
    for (const h of hits) {
      for (const r of B.resolve(project, h.file, h.node)) {
        const v = B.literal(r.node);
        if (v !== want) problems.push(`${at(r.file, r.node)}: ${label}: ${dotted} is ${fmt(v)}, want ${JSON.stringify(want)}`);
      }
    }
  }
  return problems;
}

function requireResources(project, type, label) {
  const found = B.resourcesOfType(project, type).filter((r) => !r.decl.existing);
  return { found, problems: found.length ? [] : [`(project): ${label}: no ${type} resource declared`] };
}

// Elements of an array-valued path under a resource, as resolved { file, node }.
function elementsAt(project, file, obj, dotted) {
  const out = { elements: [], opaque: [] };
  for (const h of B.getPath(project, file, obj, dotted)) {
    const r = B.arrayElements(project, h.file, h.node);
    out.elements.push(...r.elements);
    out.opaque.push(...r.opaque);
  }
  return out;
}

function containersOf(project, file, decl) {
  return elementsAt(project, file, decl.body, 'properties.template.containers').elements.filter((e) => e.node.type === 'object');
}

function literalProp(project, file, obj, key) {
  const v = B.getProp(obj, key);
  if (!v) return [];
  return B.values(project, file, v);
}

// ---------------------------------------------------------------------------------
// Rules

// Every file parses without ERROR or MISSING nodes.
function syntax(project) {
  return project.list().flatMap((f) => B.syntaxProblems(f));
}

// Every module path and every `using` path points at a file of the project.
function modulesExist(project) {
  const problems = [];
  for (const file of project.list()) {
    for (const d of B.declarations(file)) {
      if (d.kind !== 'module' && d.kind !== 'using') continue;
      if (d.path === null) {
        problems.push(`${at(file, d.node)}: ${d.kind} path must be a plain string`);
        continue;
      }
      if (/^(br|ts)[:/]/.test(d.path)) continue; // registry or template-spec modules
      const target = path.posix.normalize(path.posix.join(path.posix.dirname(file.path), d.path));
      if (!project.files.has(target)) problems.push(`${at(file, d.node)}: ${d.kind} '${d.path}' does not exist (${target})`);
    }
  }
  return problems;
}

// Every declared parameter is used in its own file.
function paramsUsed(project) {
  const problems = [];
  for (const file of project.list()) {
    if (file.kind !== 'bicep') continue;
    const used = new Set(B.referenceIdentifiers(file.root).map((n) => n.text));
    for (const d of B.declarations(file)) {
      if (d.kind === 'param' && !used.has(d.name)) problems.push(`${at(file, d.node)}: param '${d.name}' is declared but never used`);
    }
  }
  return problems;
}

// A .bicepparam file sets only parameters its template declares, and every required
// parameter (no default) of that template.
function bicepparamMatches(project) {
  const problems = [];
  for (const file of project.list()) {
    if (file.kind !== 'bicepparam') continue;
    const decls = B.declarations(file);
    const using = decls.find((d) => d.kind === 'using');
    if (!using || !using.path) {
      problems.push(`${file.path}:1: no using statement`);
      continue;
    }
    const target = project.files.get(path.posix.normalize(path.posix.join(path.posix.dirname(file.path), using.path)));
    if (!target) continue; // modulesExist reports it
    const params = B.declarations(target).filter((d) => d.kind === 'param');
    const assigned = decls.filter((d) => d.kind === 'assign');
    for (const a of assigned) {
      if (!params.some((p) => p.name === a.name)) problems.push(`${at(file, a.node)}: '${a.name}' is not a parameter of ${target.path}`);
    }
    for (const p of params) {
      if (!p.value && !assigned.some((a) => a.name === p.name)) problems.push(`${at(target, p.node)}: required param '${p.name}' is not set in ${file.path}`);
    }
  }
  return problems;
}

// Preview API versions allowed, each because no GA version has what the template needs.
const PREVIEW_ALLOWED = new Map([
  ['Microsoft.App/managedEnvironments@2024-02-02-preview',
    'the managed OpenTelemetry agent (appInsightsConfiguration, openTelemetryConfiguration)'],
]);

// Every resource type names an API version: 'Namespace/type@yyyy-mm-dd', not preview
// (but for PREVIEW_ALLOWED).
function apiVersions(project) {
  const problems = [];
  for (const file of project.list()) {
    for (const d of B.declarations(file)) {
      if (d.kind !== 'resource') continue;
      if (d.path === null) problems.push(`${at(file, d.node)}: resource type must be a plain string`);
      else if (!/^[A-Za-z0-9.]+\/[A-Za-z0-9./]+@\d{4}-\d{2}-\d{2}$/.test(d.path) && !PREVIEW_ALLOWED.has(d.path)) {
        problems.push(`${at(file, d.node)}: resource '${d.name}' type '${d.path}' needs a GA @api-version`);
      }
    }
  }
  return problems;
}

// No secret in a plain parameter: a parameter named like a secret is @secure(); a
// .bicepparam file assigns such a parameter no literal.
function secureParams(project) {
  const problems = [];
  for (const file of project.list()) {
    for (const d of B.declarations(file)) {
      if (d.kind === 'param' && secretish(d.name) && !B.hasDecorator(d.node, 'secure')) {
        problems.push(`${at(file, d.node)}: param '${d.name}' looks like a secret but is not @secure()`);
      }
      if (d.kind === 'assign' && secretish(d.name) && d.value && B.literal(d.value) !== undefined) {
        problems.push(`${at(file, d.node)}: '${d.name}' assigns a secret in plain text`);
      }
    }
  }
  return problems;
}

// No secret in an output: by name, by @secure(), by list*() / getSecret() calls, by
// credential properties, or by reference to a @secure() parameter (through vars).
function noSecretOutputs(project) {
  const problems = [];
  for (const file of project.list()) {
    const decls = B.declarations(file);
    const secureParams = new Set(decls.filter((d) => d.kind === 'param' && B.hasDecorator(d.node, 'secure')).map((d) => d.name));
    const vars = new Map(decls.filter((d) => d.kind === 'var').map((d) => [d.name, d]));
    for (const d of decls) {
      if (d.kind !== 'output') continue;
      if (secretish(d.name)) problems.push(`${at(file, d.node)}: output '${d.name}' is named like a secret`);
      if (B.hasDecorator(d.node, 'secure')) problems.push(`${at(file, d.node)}: output '${d.name}' is @secure(): outputs carry no secrets`);
      const seen = new Set();
      const inspect = (root) => {
        for (const n of B.walk(root)) {
          if (n.type === 'call_expression') {
            const fn = n.childForFieldName('function');
            const name = fn?.type === 'member_expression' ? fn.childForFieldName('property')?.text : fn?.text;
            if (name && (/^list/i.test(name) || name === 'getSecret')) problems.push(`${at(file, n)}: output '${d.name}' calls ${name}()`);
          } else if (n.type === 'member_expression') {
            const prop = n.childForFieldName('property')?.text ?? '';
            if (CREDENTIAL_PROPERTY.test(prop) || secretish(prop)) problems.push(`${at(file, n)}: output '${d.name}' reads ${prop}`);
          } else if (n.type === 'identifier' && n.parent?.type !== 'object_property') {
            if (secureParams.has(n.text)) problems.push(`${at(file, n)}: output '${d.name}' uses @secure() param '${n.text}'`);
            const v = vars.get(n.text);
            if (v && !seen.has(v.name)) {
              seen.add(v.name);
              inspect(v.value);
            }
          }
        }
      };
      inspect(d.value);
    }
  }
  return problems;
}

// The server scales to zero.
function minReplicasZero(project) {
  const { found, problems } = requireResources(project, APP, 'min replicas');
  return problems.concat(expectEach(project, found, 'properties.template.scale.minReplicas', 0, 'min replicas'));
}

// Max replicas and the HTTP concurrency rule are parameters.
function scaleParameters(project) {
  const { found, problems } = requireResources(project, APP, 'scale');
  for (const { file, decl } of found) {
    const params = new Set(B.declarations(file).filter((d) => d.kind === 'param').map((d) => d.name));
    const max = B.getPath(project, file, decl.body, 'properties.template.scale.maxReplicas');
    if (!max.length || !max.every((m) => m.node.type === 'identifier' && params.has(m.node.text))) {
      problems.push(`${at(file, decl.node)}: scale.maxReplicas must be a parameter`);
    }
    const rules = elementsAt(project, file, decl.body, 'properties.template.scale.rules').elements;
    const http = rules.flatMap((r) => B.getPath(project, r.file, r.node, 'http.metadata.concurrentRequests'));
    const usesParam = http.some((h) => B.referenceIdentifiers(h.node).some((i) => params.has(i.text)) || (h.node.type === 'identifier' && params.has(h.node.text)));
    if (!usesParam) problems.push(`${at(file, decl.node)}: an http scale rule with concurrentRequests from a parameter is required`);
  }
  return problems;
}

// 90-day retention on the workspace and on Application Insights.
function retention90(project) {
  const ws = requireResources(project, 'Microsoft.OperationalInsights/workspaces', 'retention');
  const ai = requireResources(project, 'Microsoft.Insights/components', 'retention');
  return [
    ...ws.problems,
    ...ai.problems,
    ...expectEach(project, ws.found, 'properties.retentionInDays', 90, 'workspace retention'),
    ...expectEach(project, ai.found, 'properties.RetentionInDays', 90, 'Application Insights retention'),
    ...ai.found
      .filter(({ file, decl }) => !B.getPath(project, file, decl.body, 'properties.WorkspaceResourceId').length)
      .map(({ file, decl }) => `${at(file, decl.node)}: Application Insights must be workspace-based (WorkspaceResourceId)`),
  ];
}

// Cosmos DB: serverless, TLS 1.2, Entra ID only.
function cosmosHardening(project) {
  const { found, problems } = requireResources(project, 'Microsoft.DocumentDB/databaseAccounts', 'cosmos');
  problems.push(...expectEach(project, found, 'properties.minimalTlsVersion', 'Tls12', 'cosmos'));
  problems.push(...expectEach(project, found, 'properties.disableLocalAuth', true, 'cosmos'));
  for (const { file, decl } of found) {
    const caps = elementsAt(project, file, decl.body, 'properties.capabilities').elements;
    const names = caps.flatMap((c) => literalProp(project, c.file, c.node, 'name'));
    if (!names.includes('EnableServerless')) problems.push(`${at(file, decl.node)}: cosmos: capability EnableServerless missing`);
  }
  return problems;
}

// Cosmos DB data: the containers and partition keys the server uses, TTL on, and the
// built-in Data Contributor role for the identity through sqlRoleAssignments.
function cosmosData(project) {
  const want = { users: '/id', cache: '/userId', usage: '/userId' };
  const { found, problems } = requireResources(project, 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers', 'cosmos containers');
  const seen = {};
  for (const { file, decl } of found) {
    problems.push(...expectEach(project, [{ file, decl }], 'properties.resource.defaultTtl', -1, 'cosmos container TTL'));
    // name and partition key: literal, or taken from the array a `for` walks.
    const loop = decl.value.type === 'for_statement' ? decl.value : null;
    const items = loop
      ? B.arrayElements(project, file, loop.namedChildren[1]).elements.map((e) => ({ file: e.file, node: e.node }))
      : [{ file, node: null }];
    for (const it of items) {
      const name = it.node ? literalProp(project, it.file, it.node, 'name')[0] : B.values(project, file, B.getProp(decl.body, 'name'))[0];
      let pk;
      if (it.node) pk = literalProp(project, it.file, it.node, 'partitionKey')[0];
      else {
        const paths = elementsAt(project, file, decl.body, 'properties.resource.partitionKey.paths').elements;
        pk = paths.length ? B.literal(paths[0].node) : undefined;
      }
      if (typeof name === 'string') seen[name] = pk;
    }
  }
  for (const [name, pk] of Object.entries(want)) {
    if (!(name in seen)) problems.push(`(project): cosmos: container '${name}' missing`);
    else if (seen[name] !== pk) problems.push(`(project): cosmos: container '${name}' partition key is ${fmt(seen[name])}, want ${pk}`);
  }
  const ra = requireResources(project, 'Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments', 'cosmos role');
  problems.push(...ra.problems);
  for (const { file, decl } of ra.found) {
    const role = B.getPath(project, file, decl.body, 'properties.roleDefinitionId').map((h) => B.templateString(project, h.file, h.node) ?? '');
    if (!role.some((r) => r.endsWith('/sqlRoleDefinitions/00000000-0000-0000-0000-000000000002'))) {
      problems.push(`${at(file, decl.node)}: cosmos role: want the built-in Data Contributor 00000000-0000-0000-0000-000000000002`);
    }
  }
  return problems;
}

// The app and every job run as a user-assigned managed identity.
function managedIdentity(project) {
  const apps = requireResources(project, APP, 'identity');
  const jobs = requireResources(project, JOB, 'identity');
  const problems = [...apps.problems, ...jobs.problems];
  for (const { file, decl } of [...apps.found, ...jobs.found]) {
    const types = B.getPath(project, file, decl.body, 'identity.type').flatMap((h) => B.values(project, h.file, h.node));
    if (types.length === 0 || !types.every((t) => typeof t === 'string' && /(^|,\s*)UserAssigned$/.test(t))) {
      problems.push(`${at(file, decl.node)}: identity.type must be UserAssigned (is ${types.map(fmt).join(' | ') || 'unset'})`);
    }
    const uai = B.getPath(project, file, decl.body, 'identity.userAssignedIdentities').flatMap((h) => B.resolve(project, h.file, h.node));
    if (uai.length === 0 || uai.some((u) => u.node.type !== 'object' || B.objectProps(u.node).length === 0)) {
      problems.push(`${at(file, decl.node)}: identity.userAssignedIdentities must name the identity`);
    }
  }
  return problems;
}

// External HTTPS ingress on 8080, no plain HTTP.
function ingress(project) {
  const { found, problems } = requireResources(project, APP, 'ingress');
  problems.push(...expectEach(project, found, 'properties.configuration.ingress.allowInsecure', false, 'ingress'));
  problems.push(...expectEach(project, found, 'properties.configuration.ingress.external', true, 'ingress'));
  problems.push(...expectEach(project, found, 'properties.configuration.ingress.targetPort', 8080, 'ingress'));
  return problems;
}

// Startup and liveness probes on /healthz, readiness on /readyz, for every container.
function probes(project) {
  const want = { Startup: '/healthz', Liveness: '/healthz', Readiness: '/readyz' };
  const { found, problems } = requireResources(project, APP, 'probes');
  for (const { file, decl } of found) {
    const containers = containersOf(project, file, decl);
    if (!containers.length) problems.push(`${at(file, decl.node)}: probes: no containers`);
    for (const c of containers) {
      const got = {};
      for (const p of elementsAt(project, c.file, c.node, 'probes').elements) {
        const type = literalProp(project, p.file, p.node, 'type')[0];
        const paths = B.getPath(project, p.file, p.node, 'httpGet.path').flatMap((h) => B.values(project, h.file, h.node));
        if (typeof type === 'string') got[type] = paths;
      }
      for (const [type, p] of Object.entries(want)) {
        if (!got[type]) problems.push(`${at(c.file, c.node)}: probes: no ${type} probe`);
        else if (got[type].length !== 1 || got[type][0] !== p) problems.push(`${at(c.file, c.node)}: probes: ${type} must GET ${p} (is ${got[type].map(fmt).join(' | ')})`);
      }
    }
  }
  return problems;
}

// Several active revisions, with traffic weights (and labels) from the template.
function revisions(project) {
  const { found, problems } = requireResources(project, APP, 'revisions');
  problems.push(...expectEach(project, found, 'properties.configuration.activeRevisionsMode', 'Multiple', 'revisions'));
  for (const { file, decl } of found) {
    if (!B.getPath(project, file, decl.body, 'properties.configuration.ingress.traffic').length) {
      problems.push(`${at(file, decl.node)}: revisions: ingress.traffic (weights and labels) is not set`);
    }
  }
  return problems;
}

// Container Apps secrets are Key Vault references read with a managed identity:
// every element has keyVaultUrl and identity, none has a value.
function keyVaultSecretRefs(project) {
  const problems = [];
  const all = [...requireResources(project, APP, 'secrets').found, ...requireResources(project, JOB, 'secrets').found];
  if (!all.length) problems.push('(project): secrets: no container app or job declared');
  let refs = 0;
  for (const { file, decl } of all) {
    const { elements, opaque } = elementsAt(project, file, decl.body, 'properties.configuration.secrets');
    for (const o of opaque) problems.push(`${at(o.file, o.node)}: secrets: cannot see what this is; use an array of Key Vault references`);
    for (const e of elements) {
      if (e.node.type !== 'object') {
        problems.push(`${at(e.file, e.node)}: secrets: element is not an object`);
        continue;
      }
      refs++;
      if (B.getProp(e.node, 'value')) problems.push(`${at(e.file, e.node)}: secrets: plain secret value; use keyVaultUrl`);
      if (!B.getProp(e.node, 'keyVaultUrl')) problems.push(`${at(e.file, e.node)}: secrets: keyVaultUrl missing`);
      if (!B.getProp(e.node, 'identity')) problems.push(`${at(e.file, e.node)}: secrets: identity missing`);
    }
  }
  if (all.length && refs === 0) problems.push('(project): secrets: no Key Vault reference found (TOKEN_SECRET needs one)');
  return problems;
}

// Every container of the app and the jobs sets every setting the server reads, and a
// setting named like a secret comes from a secretRef, never a value.
function settings(project) {
  const problems = [];
  const all = [...requireResources(project, APP, 'settings').found, ...requireResources(project, JOB, 'settings').found];
  if (!all.length) problems.push('(project): settings: no container app or job declared');
  for (const { file, decl } of all) {
    for (const c of containersOf(project, file, decl)) {
      const { elements, opaque } = elementsAt(project, c.file, c.node, 'env');
      for (const o of opaque) problems.push(`${at(o.file, o.node)}: settings: cannot see what this env list holds`);
      const names = new Set();
      for (const e of elements) {
        const name = literalProp(project, e.file, e.node, 'name')[0];
        if (typeof name !== 'string') continue;
        names.add(name);
        if (secretish(name) && (B.getProp(e.node, 'value') || !B.getProp(e.node, 'secretRef'))) {
          problems.push(`${at(e.file, e.node)}: settings: ${name} must be a secretRef, not a value`);
        }
      }
      const missing = REQUIRED_SETTINGS.filter((s) => !names.has(s));
      if (missing.length) problems.push(`${at(c.file, c.node)}: settings: missing ${missing.join(', ')}`);
    }
  }
  return problems;
}

// Key Vault: RBAC mode, soft delete, purge protection.
function keyVault(project) {
  const { found, problems } = requireResources(project, 'Microsoft.KeyVault/vaults', 'key vault');
  problems.push(...expectEach(project, found, 'properties.enableRbacAuthorization', true, 'key vault'));
  problems.push(...expectEach(project, found, 'properties.enableSoftDelete', true, 'key vault'));
  problems.push(...expectEach(project, found, 'properties.enablePurgeProtection', true, 'key vault'));
  return problems;
}

// A scheduled job runs `sync` with the server's image, every 30 minutes by default.
function syncJob(project) {
  const problems = [];
  const jobs = requireResources(project, JOB, 'sync job');
  if (jobs.problems.length) return jobs.problems;
  const apps = B.resourcesOfType(project, APP);
  const imageKeys = (proj, file, decl) =>
    new Set(
      containersOf(proj, file, decl)
        .flatMap((c) => B.getPath(proj, c.file, c.node, 'image'))
        .flatMap((h) => B.resolve(proj, h.file, h.node))
        .map((r) => `${r.file.path}:${r.node.startIndex}`),
    );
  const appImages = new Set(apps.flatMap(({ file, decl }) => [...imageKeys(project, file, decl)]));
  let ok = false;
  const why = [];
  for (const { file, decl } of jobs.found) {
    // Each way the job is instantiated: directly, or once per module call.
    const callers = B.callersOf(project, file);
    const views = callers.length ? callers.map((c) => ({ c })) : [{ c: null }];
    for (const v of views) {
      const sub = v.c ? only(project, v.c) : project;
      const args = containersOf(sub, file, decl).flatMap((c) => elementsAt(sub, c.file, c.node, 'args').elements.map((e) => B.literal(e.node)));
      if (!(args.length === 1 && args[0] === 'sync')) continue;
      const trigger = B.getPath(sub, file, decl.body, 'properties.configuration.triggerType').flatMap((h) => B.values(sub, h.file, h.node));
      const cron = B.getPath(sub, file, decl.body, 'properties.configuration.scheduleTriggerConfig.cronExpression').flatMap((h) => B.values(sub, h.file, h.node));
      const images = imageKeys(sub, file, decl);
      const where = v.c ? at(v.c.file, v.c.decl.node) : at(file, decl.node);
      if (!(trigger.length === 1 && trigger[0] === 'Schedule')) why.push(`${where}: sync job: triggerType is ${trigger.map(fmt).join(' | ')}, want "Schedule"`);
      else if (!(cron.length === 1 && cron[0] === '*/30 * * * *')) why.push(`${where}: sync job: cron is ${cron.map(fmt).join(' | ') || 'unset'}, want "*/30 * * * *" by default`);
      else if (!apps.length || images.size === 0 || ![...images].every((k) => appImages.has(k))) why.push(`${where}: sync job: image must be the server's image`);
      else ok = true;
    }
  }
  if (!ok) problems.push(...(why.length ? why : ['(project): sync job: no job runs args [\'sync\']']));
  return problems;
}

// A view of the project in which the module file of `caller` is instantiated by that
// caller alone: resolving a module param then yields what this one call passes.
function only(project, caller) {
  const target = path.posix.normalize(path.posix.join(path.posix.dirname(caller.file.path), caller.decl.path));
  return { files: project.files, list: project.list, onlyCaller: { file: caller.file.path, start: caller.decl.node.startIndex, target } };
}

// azd finds the server by its azd-service-name tag.
function azdServiceTag(project) {
  const { found, problems } = requireResources(project, APP, 'azd tag');
  for (const { file, decl } of found) {
    const tags = B.getPath(project, file, decl.body, 'tags').flatMap((h) => B.resolve(project, h.file, h.node));
    // tags: { ... } or union(tags, { ... })
    const objs = tags.flatMap((t) => {
      if (t.node.type === 'object') return [t];
      if (t.node.type === 'call_expression') {
        const args = t.node.namedChildren.find((c) => c.type === 'arguments');
        return (args ? args.namedChildren : []).flatMap((a) => B.resolve(project, t.file, a)).filter((a) => a.node.type === 'object');
      }
      return [];
    });
    const v = objs.flatMap((o) => literalProp(project, o.file, o.node, 'azd-service-name'));
    if (!v.includes('mcp')) problems.push(`${at(file, decl.node)}: azd: tag azd-service-name: 'mcp' missing`);
  }
  return problems;
}

// Defaults of the entry template: region, replica size; outputs: MCP URL, consent
// redirect URI, Key Vault and Cosmos account names.
function entryPoint(project) {
  const problems = [];
  const main = project.files.get('main.bicep');
  if (!main) return ['(project): main.bicep missing'];
  const decls = B.declarations(main);
  const param = (n) => decls.find((d) => d.kind === 'param' && d.name === n);
  const loc = param('location');
  if (!loc || B.literal(loc.value ?? { type: 'none' }) !== 'australiaeast') problems.push(`main.bicep:1: param location must default to 'australiaeast'`);
  for (const [n, v] of [
    ['cpu', '0.25'],
    ['memory', '0.5Gi'],
  ]) {
    const p = param(n);
    if (!p || !p.value || B.literal(p.value) !== v) problems.push(`main.bicep:1: param ${n} must default to '${v}'`);
  }
  const outputs = decls.filter((d) => d.kind === 'output');
  const out = (n) => outputs.find((o) => o.name === n);
  for (const [n, suffix] of [
    ['MCP_URL', '/mcp'],
    ['CONSENT_REDIRECT_URI', '/callback'],
  ]) {
    const o = out(n);
    const s = o && B.templateString(project, main, o.value);
    if (!s || !s.endsWith(suffix) || !s.startsWith('${')) problems.push(`main.bicep:1: output ${n} must be '<public url>${suffix}'`);
  }
  for (const n of ['KEY_VAULT_NAME', 'COSMOS_ACCOUNT_NAME']) if (!out(n)) problems.push(`main.bicep:1: output ${n} missing`);
  return problems;
}

module.exports = {
  REQUIRED_SETTINGS,
  secretish,
  rules: {
    syntax,
    modulesExist,
    paramsUsed,
    bicepparamMatches,
    apiVersions,
    secureParams,
    noSecretOutputs,
    minReplicasZero,
    scaleParameters,
    retention90,
    cosmosHardening,
    cosmosData,
    managedIdentity,
    ingress,
    probes,
    revisions,
    keyVaultSecretRefs,
    settings,
    keyVault,
    syncJob,
    azdServiceTag,
    entryPoint,
  },
};
