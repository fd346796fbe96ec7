// An agent's journey with the official TypeScript SDK client against the real binary
// (embedded mode: the simulated Contoso tenant): find a flow with a failed run, get
// the root cause, read the failing action's data, fix the definition, resubmit, and
// see the new run succeed. The SDK checks every structuredContent against the tool's
// outputSchema. MCP_URL and MCP_API_KEY come from run.sh.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

const url = new URL(process.env.MCP_URL);
const key = process.env.MCP_API_KEY;

async function connect() {
  const client = new Client({ name: 'flowstudio-e2e-journey', version: '1.0.0' });
  const transport = new StreamableHTTPClientTransport(url, { requestInit: { headers: { 'x-api-key': key } } });
  await client.connect(transport);
  // Listing caches the output schemas, so that callTool validates structuredContent.
  let cursor;
  do {
    const page = await client.listTools(cursor ? { cursor } : {});
    cursor = page.nextCursor;
  } while (cursor);
  return client;
}

async function call(client, name, args) {
  const r = await client.callTool({ name, arguments: args });
  assert.equal(r.isError, false, `${name}: ${JSON.stringify(r.content)}`);
  assert.deepEqual(JSON.parse(r.content[0].text), r.structuredContent, `${name}: text and structuredContent differ`);
  return r.structuredContent;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

test('debug a failing flow, fix it and see the resubmitted run succeed', async () => {
  const client = await connect();
  try {
    const { environments } = await call(client, 'list_live_environments', {});
    const environmentName = (environments.find((e) => e.isDefault) ?? environments[0]).name;

    const { flows } = await call(client, 'list_live_flows', { environmentName, search: 'invoice approval' });
    const flow = flows.find((f) => f.displayName === 'Invoice approval');
    assert.ok(flow, `the seeded invoice flow is listed: ${JSON.stringify(flows)}`);
    const ids = { environmentName, flowName: flow.name };

    const { runs } = await call(client, 'get_live_flow_runs', { ...ids, status: 'Failed', pageSize: 5 });
    assert.ok(runs.length > 0, 'the flow has failed runs');
    assert.equal(runs[0].errorCode, 'ActionFailed');
    const runName = runs[0].name;

    const why = await call(client, 'get_live_flow_run_error', { ...ids, runName });
    assert.equal(why.failed, true);
    assert.equal(why.rootCause, 'Calculate_unit_price');
    const root = why.failedActions.at(-1);
    assert.deepEqual(why.failedActions.map((a) => a.name), ['Try', 'Process_invoice', 'Calculate_unit_price']);
    assert.equal(root.code, 'InvalidTemplate');
    assert.match(root.message, /divide by zero/);

    // The failing expression never produced inputs; the trigger's data shows what came in.
    const failing = await call(client, 'get_live_flow_run_action_outputs', { ...ids, runName, actionName: root.name });
    assert.equal(failing.actions[0].status, 'Failed');
    assert.equal(failing.actions[0].inputs, undefined);
    assert.ok(failing.actions[0].note);
    const trigger = await call(client, 'get_live_flow_run_action_outputs', { ...ids, runName, actionName: 'manual', include: 'outputs' });
    assert.equal(trigger.actions[0].outputs.value.body.total, 1250.5);

    const part = await call(client, 'get_live_flow', { ...ids, actionName: root.name });
    assert.equal(part.path, root.definitionPath);
    assert.equal(part.part.inputs, "@div(variables('Total'), 0)");

    const whole = await call(client, 'get_live_flow', ids);
    const fixed = JSON.parse(
      JSON.stringify(whole.definition).replace(
        "@div(variables('Total'), 0)",
        "@div(variables('Total'), max(1, outputs('Compose_line_count')))",
      ),
    );
    const check = await call(client, 'validate_live_flow', { ...ids, definition: fixed });
    assert.equal(check.valid, true, JSON.stringify(check.errors));
    const saved = await call(client, 'update_live_flow', { ...ids, definition: fixed });
    assert.equal(saved.changed, true);
    assert.deepEqual(saved.changes.actions, { changed: ['Calculate_unit_price'] });

    const resubmitted = await call(client, 'resubmit_live_flow_run', { ...ids, runName });
    assert.ok(resubmitted.runName, 'the new run is named');
    assert.equal(resubmitted.triggerName, 'manual');

    let latest;
    for (let i = 0; i < 100; i++) {
      const page = await call(client, 'get_live_flow_runs', { ...ids, pageSize: 5 });
      latest = page.runs.find((r) => r.name === resubmitted.runName);
      if (latest && latest.status !== 'Running') break;
      await sleep(100);
    }
    assert.ok(latest, 'the resubmitted run is listed');
    assert.equal(latest.status, 'Succeeded', JSON.stringify(latest));
    assert.equal(latest.resubmitted, true);
  } finally {
    await client.close();
  }
});

test('an upstream refusal is a tool error with our message, the code and a next step', async () => {
  const client = await connect();
  try {
    const { environments } = await call(client, 'list_live_environments', {});
    const environmentName = environments.find((e) => e.isDefault).name;
    // Bob's private flow in the seeded tenant: this user may not see it.
    const r = await client.callTool({
      name: 'get_live_flow',
      arguments: { environmentName, flowName: '7cb8b0fb-8b2c-460a-99e5-de927c71dc8b' },
    });
    assert.equal(r.isError, true);
    assert.match(r.content[0].text, /upstream status 403 code ConnectionAuthorizationFailed/);
    assert.match(r.content[0].text, /Next: /);
    assert.doesNotMatch(r.content[0].text, /does not have permission/);
  } finally {
    await client.close();
  }
});
