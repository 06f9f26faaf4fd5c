// A single-page app in a real browser against par_server (issue 15): headless Chromium loads
// spa/ from a loopback origin other than the server's; the page runs oauth4webapi: discovery →
// PAR push as a public client with PKCE and a DPoP proof (a WebCrypto key) → the request_uri →
// the authorization endpoint (`par_server --inner redirect`) → its own callback with code and
// state. The same page from an origin no client registered cannot read the push's answer.
//
// Run through scripts/client-test, which builds par_server and passes PAR_SERVER_BIN; this file
// starts its own par_server, because the clients file must name the page's origin (a free
// port, known only now).

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { openPage } from './launcher.mjs';

const HERE = fileURLToPath(new URL('.', import.meta.url));
const TEST_TIMEOUT_MS = 60_000;
const RESULT_TIMEOUT_MS = 20_000;
const CLIENT_ID = 'browser-spa';

let registeredPage; // the SPA's origin: its client's redirect URI points here
let unregisteredPage; // the same SPA on another port: an origin no client registered
let parServer;
let work;

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'tower-par-browser-'));
  registeredPage = await servePages();
  unregisteredPage = await servePages();
  // A public client without web_origins: its redirect URI's origin is its web origin.
  const clients = {
    clients: [
      {
        client_id: CLIENT_ID,
        auth_method: 'none',
        redirect_uris: [`${registeredPage.origin}/callback`],
        grant_types: ['authorization_code'],
      },
    ],
  };
  const clientsFile = join(work, 'clients.json');
  await writeFile(clientsFile, JSON.stringify(clients));
  parServer = await startParServer(['--clients', clientsFile, '--inner', 'redirect']);
});

after(async () => {
  await parServer?.stop();
  registeredPage?.server.close();
  unregisteredPage?.server.close();
  if (work) await rm(work, { recursive: true, force: true });
});

test('the page pins the oauth4webapi that the Node client test uses', async () => {
  const pinned = async (dir) => JSON.parse(await readFile(join(HERE, '..', dir, 'package.json'), 'utf8')).dependencies.oauth4webapi;
  assert.equal(await pinned('browser'), await pinned('client'));
});

test('an SPA pushes with PKCE and DPoP from its registered origin and lands on its callback with code and state', { timeout: TEST_TIMEOUT_MS }, async () => {
  const { page, messages, close } = await openPage(spaUrl(registeredPage));
  try {
    const pushes = [];
    page.on('response', async (response) => {
      if (response.url() === `${parServer.url}/as/par` && response.request().method() === 'POST') {
        pushes.push({ status: response.status(), headers: await response.allHeaders(), dpop: await response.request().headerValue('dpop') });
      }
    });
    const result = await spaResult(messages);
    assert.equal(result.phase, 'callback', JSON.stringify({ result, messages }));
    assert.match(result.request_uri, /^urn:ietf:params:oauth:request_uri:[A-Za-z0-9_-]{43}$/, 'the page read the 201');
    assert.equal(result.expires_in, 60);
    assert.ok(result.code, 'code');
    assert.equal(result.state, result.expected_state, 'state');
    assert.equal(result.iss, parServer.url, 'iss (RFC 9207), checked by oauth4webapi too');
    assert.equal(new URL(page.url()).origin, registeredPage.origin, 'landed on the callback');
    assert.equal(new URL(page.url()).pathname, '/callback');

    assert.equal(pushes.length, 1, JSON.stringify(pushes));
    const [push] = pushes;
    assert.equal(push.status, 201);
    assert.ok(push.dpop?.split('.').length === 3, 'the push carried a DPoP proof, so the browser sent a preflight first');
    assert.equal(push.headers['access-control-allow-origin'], registeredPage.origin);
    assert.equal(push.headers.vary, 'Origin');
    assert.ok(!messages.some((m) => m.includes('CORS')), messages.join('\n'));
  } finally {
    await close();
  }
});

test('the same SPA from an unregistered origin cannot read the push answer: the preflight fails', { timeout: TEST_TIMEOUT_MS }, async () => {
  const { messages, close } = await openPage(spaUrl(unregisteredPage));
  try {
    const result = await spaResult(messages);
    assert.equal(result.phase, 'push', JSON.stringify({ result, messages }));
    assert.equal(result.discovered, parServer.url, 'discovery is public: readable from any origin');
    assert.equal(result.error, 'TypeError');
    assert.equal(result.message, 'Failed to fetch');
    assert.ok(
      messages.some((m) => m.includes(`from origin '${unregisteredPage.origin}' has been blocked by CORS policy`) && m.includes('preflight')),
      messages.join('\n'),
    );
  } finally {
    await close();
  }
});

test('without DPoP (no preflight) the push from an unregistered origin is sent but its answer is unreadable', { timeout: TEST_TIMEOUT_MS }, async () => {
  const { page, messages, close } = await openPage(spaUrl(unregisteredPage, { dpop: '0' }));
  try {
    // The browser hands a page no response it may not read: the push shows as a failed request.
    const failed = [];
    page.on('requestfailed', (request) => {
      if (request.url() === `${parServer.url}/as/par`) failed.push(request.method());
    });
    const result = await spaResult(messages);
    assert.equal(result.phase, 'push', JSON.stringify({ result, messages }));
    assert.equal(result.error, 'TypeError');
    assert.equal(result.message, 'Failed to fetch');
    assert.ok(
      messages.some((m) => m.includes('blocked by CORS policy') && m.includes("No 'Access-Control-Allow-Origin' header")),
      messages.join('\n'),
    );
    assert.deepEqual(failed, ['POST'], 'the push itself was sent (no preflight) and its answer withheld');
  } finally {
    await close();
  }
});

/** The page's URL with the server and client it should use. */
function spaUrl(pages, extra = {}) {
  const url = new URL('/', pages.origin);
  url.searchParams.set('issuer', parServer.url);
  url.searchParams.set('client_id', CLIENT_ID);
  for (const [name, value] of Object.entries(extra)) url.searchParams.set(name, value);
  return url.href;
}

/** Waits for the page's `SPA_RESULT {json}` console line. */
async function spaResult(messages) {
  const deadline = Date.now() + RESULT_TIMEOUT_MS;
  for (;;) {
    const line = messages.find((m) => m.startsWith('log: SPA_RESULT '));
    if (line) return JSON.parse(line.slice('log: SPA_RESULT '.length));
    if (Date.now() > deadline) {
      throw new Error(`the page reported nothing within ${RESULT_TIMEOUT_MS} ms:\n${messages.join('\n')}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Serves spa/ and oauth4webapi on a free loopback port. */
async function servePages() {
  const files = {
    '/': ['spa/index.html', 'text/html; charset=utf-8'],
    '/callback': ['spa/index.html', 'text/html; charset=utf-8'],
    '/app.mjs': ['spa/app.mjs', 'text/javascript; charset=utf-8'],
    '/oauth4webapi.js': ['node_modules/oauth4webapi/build/index.js', 'text/javascript; charset=utf-8'],
  };
  const server = createServer(async (req, res) => {
    const file = files[new URL(req.url, 'http://page').pathname];
    if (!file) {
      res.writeHead(404).end();
      return;
    }
    try {
      const body = await readFile(join(HERE, file[0]));
      res.writeHead(200, { 'content-type': file[1], 'cache-control': 'no-store' }).end(body);
    } catch (err) {
      res.writeHead(500, { 'content-type': 'text/plain' }).end(String(err));
    }
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, origin: `http://127.0.0.1:${server.address().port}` };
}

/** Starts PAR_SERVER_BIN on a free port and waits for its `listening on` line. */
async function startParServer(args) {
  const binary = process.env.PAR_SERVER_BIN;
  if (!binary) throw new Error('PAR_SERVER_BIN is not set; run scripts/client-test, which builds par_server');
  const child = spawn(binary, ['--listen', '127.0.0.1:0', ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout });
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('par_server did not print "listening on" within 20 s')), 20_000);
    child.once('exit', (code) => reject(new Error(`par_server exited with ${code} during start-up`)));
    lines.on('line', (line) => {
      const match = /^listening on (http:\/\/\S+)$/.exec(line);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    });
  });
  return {
    url,
    async stop() {
      if (child.exitCode !== null) return;
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
