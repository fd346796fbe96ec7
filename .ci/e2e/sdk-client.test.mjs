// The official TypeScript SDK client against the real binary: connect with the
// x-api-key header, list every tool (following nextCursor), call list_live_flows.
// MCP_URL and MCP_API_KEY come from run.sh.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ElicitRequestSchema } from '@modelcontextprotocol/sdk/types.js';

const url = new URL(process.env.MCP_URL);
const key = process.env.MCP_API_KEY;

async function connect(apiKey = key) {
  const client = new Client({ name: 'flowstudio-e2e', version: '1.0.0' });
  const transport = new StreamableHTTPClientTransport(url, { requestInit: { headers: { 'x-api-key': apiKey } } });
  await client.connect(transport);
  return client;
}

// withClient runs fn with a connected client (a new one when none is given) and closes
// the client after it, whatever fn does.
async function withClient(fn, client) {
  client ??= await connect();
  try {
    return await fn(client);
  } finally {
    await client.close();
  }
}

async function listAllTools(client) {
  const tools = [];
  let cursor;
  do {
    const page = await client.listTools(cursor ? { cursor } : {});
    tools.push(...page.tools);
    cursor = page.nextCursor;
  } while (cursor);
  return tools;
}

test('lists tools and calls list_live_flows with an API key', () => withClient(async (client) => {
  const tools = await listAllTools(client);
  const names = tools.map((t) => t.name);
  assert.ok(names.includes('list_live_environments'), names.join(','));
  assert.ok(names.includes('list_live_flows'));
  for (const t of tools) {
    assert.ok(t.description, `${t.name} has a description`);
    assert.equal(t.inputSchema.type, 'object');
  }
  const envs = await client.callTool({ name: 'list_live_environments', arguments: {} });
  assert.equal(envs.isError, false, JSON.stringify(envs.content));
  const env = envs.structuredContent.environments.find((e) => e.isDefault) ?? envs.structuredContent.environments[0];
  const flows = await client.callTool({ name: 'list_live_flows', arguments: { environmentName: env.name, pageSize: 5 } });
  assert.equal(flows.isError, false, JSON.stringify(flows.content));
  assert.ok(flows.structuredContent.flows.length > 0, 'the simulated tenant has flows');
  assert.ok(flows.structuredContent.flows.length <= 5);
  assert.deepEqual(JSON.parse(flows.content[0].text), flows.structuredContent);
}));

test('bad arguments are a tool error naming the field', () => withClient(async (client) => {
  const r = await client.callTool({ name: 'list_live_flows', arguments: { environmentName: 'x', pageSize: 0 } });
  assert.equal(r.isError, true);
  assert.match(r.content[0].text, /pageSize/);
}));

test('a wrong key is refused with 401', async () => {
  await assert.rejects(connect('not-a-key'), (err) => {
    // StreamableHTTPError carries the HTTP status as code and our JSON-RPC error text.
    assert.equal(err.code, 401, String(err));
    assert.match(String(err), /invalid x-api-key/);
    return true;
  });
});

async function defaultEnvironment(client) {
  const envs = await client.callTool({ name: 'list_live_environments', arguments: {} });
  return envs.structuredContent.environments.find((e) => e.isDefault) ?? envs.structuredContent.environments[0];
}

test('a call that pages upstream reports progress to onprogress', () => withClient(async (client) => {
  const env = await defaultEnvironment(client);
  const seen = [];
  // Small pages and a search few flows match: the call reads page after page.
  const r = await client.callTool(
    { name: 'list_live_flows', arguments: { environmentName: env.name, search: 'reminder', pageSize: 3 } },
    undefined,
    { onprogress: (p) => seen.push(p) },
  );
  assert.equal(r.isError, false, JSON.stringify(r.content));
  assert.ok(seen.length >= 1, 'progress notifications arrived');
  for (let i = 0; i < seen.length; i++) {
    assert.ok(seen[i].total > 0 && seen[i].progress <= seen[i].total, JSON.stringify(seen[i]));
    assert.match(seen[i].message, /pages/);
    if (i > 0) assert.ok(seen[i].progress > seen[i - 1].progress, 'progress increases');
  }
}));

test('AbortSignal cancels a call that waits for a run', () => withClient(async (client) => {
  const env = await defaultEnvironment(client);
  const flows = await client.callTool({ name: 'list_live_flows', arguments: { environmentName: env.name, search: 'Leave request' } });
  const leave = flows.structuredContent.flows[0];
  assert.ok(leave, 'the simulated tenant has the approval flow');
  const ac = new AbortController();
  let progress = 0;
  // The flow waits on an approval for hours: the call would wait its whole 100 s.
  const call = client.callTool(
    { name: 'trigger_live_flow', arguments: { environmentName: env.name, flowName: leave.name, waitSeconds: 100 } },
    undefined,
    { signal: ac.signal, onprogress: (p) => { progress++; assert.match(p.message, /Running/); ac.abort('enough'); } },
  );
  await assert.rejects(call, (err) => String(err).includes('enough') || err.name === 'AbortError');
  assert.ok(progress >= 1, 'the wait reported progress before it was cancelled');
  // The server stopped polling (run.sh checks its log for the cancellation); the
  // client is still usable.
  const again = await client.callTool({ name: 'list_live_environments', arguments: {} });
  assert.equal(again.isError, false);
}));

// The person's part of a connector sign-in: open the consent page the link names and
// submit its form (the simulated consent service signs the connection in).
async function signIn(link) {
  const page = await fetch(link);
  assert.equal(page.status, 200, 'the sign-in page opens');
  const u = new URL(link);
  const form = new URLSearchParams(u.searchParams);
  form.set('consent', 'accept');
  const done = await fetch(link, { method: 'POST', body: form, redirect: 'manual' });
  assert.equal(done.status, 302, 'the sign-in page sends the person back');
  return new URL(done.headers.get('location'));
}

test('create_live_connection asks a client with URL elicitation to open the sign-in page', async () => {
  const client = new Client({ name: 'flowstudio-e2e', version: '1.0.0' }, { capabilities: { elicitation: { url: {} } } });
  const elicited = [];
  client.setRequestHandler(ElicitRequestSchema, async (req) => {
    elicited.push(req.params);
    return { action: 'accept' };
  });
  const transport = new StreamableHTTPClientTransport(url, { requestInit: { headers: { 'x-api-key': key } } });
  await client.connect(transport);
  await withClient(async () => {
    const env = await defaultEnvironment(client);
    const r = await client.callTool({ name: 'create_live_connection', arguments: { environmentName: env.name, connectorName: 'shared_contosotasks' } });
    assert.equal(r.isError, false, JSON.stringify(r.content));
    const out = r.structuredContent;
    assert.equal(out.signIn, 'elicited');
    assert.equal(out.status, 'signInRequired');
    assert.equal(out.signInLink, undefined, 'no link for the agent when the client was asked');
    assert.equal(elicited.length, 1, 'one elicitation/create reached the client');
    assert.equal(elicited[0].mode, 'url');
    assert.equal(elicited[0].elicitationId, out.connectionName);
    const back = await signIn(elicited[0].url);
    assert.equal(back.pathname, '/connections/signed-in');
    const page = await fetch(back);
    assert.equal(page.status, 200);
    const done = await client.callTool({ name: 'create_live_connection',
      arguments: { environmentName: env.name, connectorName: 'shared_contosotasks', connectionName: out.connectionName } });
    assert.equal(done.structuredContent.status, 'connected', JSON.stringify(done.structuredContent));
    assert.equal(done.structuredContent.connectionReference.connectionName, out.connectionName);
  }, client);
});

test('create_live_connection gives a client without URL elicitation a link to show', () => withClient(async (client) => {
  const env = await defaultEnvironment(client);
  const r = await client.callTool({ name: 'create_live_connection', arguments: { environmentName: env.name, connectorName: 'shared_contosotasks' } });
  assert.equal(r.structuredContent.signIn, 'link', JSON.stringify(r.structuredContent));
  assert.match(r.structuredContent.signInLink, /\/consent\/login\?/);
}));
