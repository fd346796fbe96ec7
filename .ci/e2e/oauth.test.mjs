// /mcp/oauth with the official TypeScript SDK's OAuth client (an OAuthClientProvider) against
// the real binary in embedded mode, with headless Chromium doing the person's part: the
// simulated Microsoft sign-in and consent, then FlowStudio's consent page. Once with
// Dynamic Client Registration, once with a Client ID Metadata Document this test serves
// over https. Then it lists tools and calls one. MCP_URL, E2E_TLS_CERT, E2E_TLS_KEY and
// CHROMIUM come from run.sh.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import https from 'node:https';
import fs from 'node:fs';
import path from 'node:path';
import puppeteer from 'puppeteer-core';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';

const mcpURL = new URL(process.env.MCP_URL.replace(/\/mcp$/, '/mcp/oauth'));
const base = mcpURL.origin;
const artifacts = process.env.E2E_RESULTS || '';
let browser;

before(async () => {
  browser = await puppeteer.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});
after(async () => { await browser?.close(); });

// listen starts a server on a free loopback port and returns its base URL.
function listen(server) {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server.address().port)));
}

// A redirect URI on loopback that hands the authorization response to the test.
async function callbackServer() {
  let deliver;
  const received = new Promise((resolve) => { deliver = resolve; });
  const server = http.createServer((req, res) => {
    const u = new URL(req.url, 'http://127.0.0.1');
    if (u.pathname !== '/callback') { res.writeHead(404).end(); return; }
    res.writeHead(200, { 'content-type': 'text/plain' }).end('You can close this window.');
    deliver(u.searchParams);
  });
  const port = await listen(server);
  return { uri: `http://127.0.0.1:${port}/callback`, received, close: () => server.close() };
}

// The person's part, in Chromium: sign in on the simulator when asked, accept its
// permissions, then read and allow FlowStudio's consent page.
async function personConsents(authorizationURL, email, shot) {
  const page = await browser.newPage();
  try {
    await page.goto(authorizationURL.href, { waitUntil: 'load' });
    if (page.url().includes('/sim/entra/')) {
      await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), page.click(`button[name="login_email"][value="${email}"]`)]);
      await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), page.click('#accept')]);
    }
    assert.equal(new URL(page.url()).pathname, '/oauth/consent', `expected our consent page, got ${page.url()}`);
    const consent = {
      client: await page.$eval('#client-name', (e) => e.textContent.trim()),
      redirectHost: await page.$eval('#redirect-host', (e) => e.textContent.trim()),
      scope: await page.$eval('#scope', (e) => e.textContent.trim()),
    };
    if (artifacts && shot) await page.screenshot({ path: path.join(artifacts, shot), fullPage: true });
    await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), page.click('#allow')]);
    return consent;
  } finally {
    await page.close();
  }
}

// An in-memory OAuthClientProvider, as a desktop client would keep it.
class Provider {
  constructor({ redirectUrl, clientMetadataUrl, name, onRedirect }) {
    this.redirect = redirectUrl;
    this.clientMetadataUrl = clientMetadataUrl;
    this.name = name;
    this.onRedirect = onRedirect;
    this.info = undefined;
    this.saved = undefined;
    this.verifier = undefined;
  }
  get redirectUrl() { return this.redirect; }
  get clientMetadata() {
    return { client_name: this.name, redirect_uris: [this.redirect], grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'], token_endpoint_auth_method: 'none' };
  }
  clientInformation() { return this.info; }
  saveClientInformation(info) { this.info = info; }
  tokens() { return this.saved; }
  saveTokens(t) { this.saved = t; }
  redirectToAuthorization(url) { this.onRedirect(url); }
  saveCodeVerifier(v) { this.verifier = v; }
  codeVerifier() { return this.verifier; }
}

// connectWithOAuth runs the SDK's flow: connect (401 → discovery → registration or
// metadata document → authorization in the browser), finishAuth with the code, connect
// again with the token.
async function connectWithOAuth({ name, clientMetadataUrl, shot, cb }) {
  cb ??= await callbackServer();
  let authURL;
  const provider = new Provider({ redirectUrl: cb.uri, clientMetadataUrl, name, onRedirect: (u) => { authURL = u; } });
  try {
    const first = new Client({ name: 'flowstudio-e2e-oauth', version: '1.0.0' });
    const transport = new StreamableHTTPClientTransport(mcpURL, { authProvider: provider });
    await assert.rejects(first.connect(transport), UnauthorizedError);
    assert.ok(authURL, 'the SDK asked to open the authorization URL');
    assert.equal(authURL.origin + authURL.pathname, `${base}/oauth/authorize`);
    assert.equal(authURL.searchParams.get('code_challenge_method'), 'S256');
    assert.equal(authURL.searchParams.get('resource'), mcpURL.href);
    if (clientMetadataUrl) assert.equal(authURL.searchParams.get('client_id'), clientMetadataUrl, 'the client id is the document URL');
    const consent = await personConsents(authURL, 'alice@contoso.com', shot);
    const response = await cb.received;
    assert.equal(response.get('iss'), `${base}/oauth`, 'iss in the authorization response (RFC 9207)');
    assert.equal(response.get('state'), authURL.searchParams.get('state'));
    await transport.finishAuth(response.get('code'));
    assert.equal(provider.saved.token_type.toLowerCase(), 'bearer');
    assert.ok(provider.saved.expires_in <= 3600);
    assert.ok(provider.saved.refresh_token);

    const client = new Client({ name: 'flowstudio-e2e-oauth', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(mcpURL, { authProvider: provider }));
    return { client, provider, consent };
  } finally {
    cb.close();
  }
}

async function listAndCall(client) {
  const names = [];
  let cursor;
  do {
    const page = await client.listTools(cursor ? { cursor } : {});
    names.push(...page.tools.map((t) => t.name));
    cursor = page.nextCursor;
  } while (cursor);
  assert.ok(names.includes('list_live_flows'), names.join(','));
  const envs = await client.callTool({ name: 'list_live_environments', arguments: {} });
  assert.equal(envs.isError, false, JSON.stringify(envs.content));
  assert.ok(envs.structuredContent.environments.length > 0);
}

test('the SDK OAuth client connects to /mcp/oauth with dynamic client registration', async () => {
  const { client, provider, consent } = await connectWithOAuth({ name: 'E2E DCR client', shot: 'oauth-consent-dcr.png' });
  try {
    assert.match(provider.info.client_id, /^fsc_/, 'registered dynamically');
    assert.equal(consent.client, 'E2E DCR client');
    assert.match(consent.redirectHost, /^127\.0\.0\.1:\d+$/);
    assert.match(consent.scope, /mcp:full/);
    await listAndCall(client);
    // The API key endpoint does not take the token.
    const r = await fetch(`${base}/mcp`, { method: 'POST', headers: { authorization: `Bearer ${provider.saved.access_token}`,
      'content-type': 'application/json', accept: 'application/json, text/event-stream' }, body: '{"jsonrpc":"2.0","id":1,"method":"ping"}' });
    assert.equal(r.status, 401);
  } finally {
    await client.close();
  }
});

test('the SDK OAuth client connects to /mcp/oauth with a client ID metadata document', async () => {
  const server = https.createServer({ cert: fs.readFileSync(process.env.E2E_TLS_CERT), key: fs.readFileSync(process.env.E2E_TLS_KEY) });
  const port = await listen(server);
  const docURL = `https://127.0.0.1:${port}/clients/e2e.json`;
  let fetched = 0;
  let redirect;
  server.on('request', (req, res) => {
    if (req.url !== '/clients/e2e.json') { res.writeHead(404).end(); return; }
    fetched++;
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({
      client_id: docURL, client_name: 'E2E CIMD client', redirect_uris: [redirect],
      grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'], token_endpoint_auth_method: 'none',
    }));
  });
  const cb = await callbackServer();
  redirect = cb.uri; // listed in the document the server fetches
  try {
    const { client, provider, consent } = await connectWithOAuth({ name: 'E2E CIMD client', clientMetadataUrl: docURL, shot: 'oauth-consent-cimd.png', cb });
    try {
      assert.equal(provider.info.client_id, docURL, 'the document URL is the client id: no dynamic registration');
      assert.ok(fetched >= 1, 'the server fetched the metadata document');
      assert.equal(consent.client, 'E2E CIMD client');
      await listAndCall(client);
    } finally {
      await client.close();
    }
  } finally {
    server.close();
  }
});
