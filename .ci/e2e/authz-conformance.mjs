// The official conformance suite's authorization-server scenarios against the built-in
// authorization server (issuer <base>/oauth): the metadata endpoint, and the
// authorization code grant, whose person's part (simulated Microsoft sign-in, our
// consent page) headless Chromium does when the suite prints the authorization URL.
//   usage: node authz-conformance.mjs BASE_URL RESULTS_DIR
import { spawn } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import puppeteer from 'puppeteer-core';

const [base, results] = process.argv.slice(2);
const here = path.dirname(fileURLToPath(import.meta.url));
const cli = path.join(here, 'node_modules/conformance-authz/dist/index.js');

function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

// run runs one scenario; onLine sees each line of its output.
function run(args, onLine = () => {}) {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [cli, 'authorization', ...args, '-o', results], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const feed = (chunk) => {
      out += chunk;
      for (const line of chunk.toString().split('\n')) onLine(line.trim());
    };
    p.stdout.on('data', feed);
    p.stderr.on('data', feed);
    p.on('close', (code) => resolve({ code, out }));
  });
}

async function consent(browser, url) {
  const page = await browser.newPage();
  try {
    await page.goto(url, { waitUntil: 'load' });
    if (page.url().includes('/sim/entra/')) {
      await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), page.click('button[name="login_email"][value="alice@contoso.com"]')]);
      await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), page.click('#accept')]);
    }
    await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), page.click('#allow')]);
  } finally {
    await page.close();
  }
}

let pass = 0;
let fail = 0;
// report reads the suite's summary line of a scenario: "✓ NAME: N passed, 0 failed".
const report = (name, out) => {
  const m = out.match(new RegExp(`([✓✗]) ${name}: (\\d+) passed, (\\d+) failed`));
  if (m && m[1] === '✓' && Number(m[2]) > 0 && m[3] === '0') { pass++; console.log(`conformance (authorization) PASS ${name}`); return; }
  fail++;
  console.log(`conformance (authorization) FAIL ${name}`);
};

const port = await freePort();
const reg = await fetch(`${base}/oauth/register`, { method: 'POST', headers: { 'content-type': 'application/json' },
  body: JSON.stringify({ client_name: 'MCP conformance suite', redirect_uris: [`http://127.0.0.1:${port}/callback`] }) });
const { client_id: clientId } = await reg.json();
const browser = await puppeteer.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'] });
try {
  let driving;
  // Without --scenario the suite runs every authorization-server scenario in order;
  // the code grant reads the metadata the first one fetched.
  const r = await run(['--url', `${base}/oauth`, '--client-id', clientId,
    '--resource', `${base}/mcp/oauth`, '-p', String(port)], (line) => {
    if (!driving && line.startsWith(`${base}/oauth/authorize?`)) driving = consent(browser, line).catch((e) => console.log(`browser: ${e}`));
  });
  await driving;
  if (r.code !== 0) console.log(r.out);
  for (const name of ['authorization-server-metadata-endpoint', 'authorization-code-grant']) report(name, r.out);
} finally {
  await browser.close();
}
console.log(`conformance (authorization): ${pass} passed, ${fail} failed`);
process.exit(fail === 0 && pass === 2 ? 0 : 1);
