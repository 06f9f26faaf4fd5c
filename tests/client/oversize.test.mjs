// A 413 that every client sees (issue 11.2), with Node's own HTTP clients against `par_server`
// (started by scripts/client-test, URL in PAR_SERVER_URL).
//
// Before the fix, a 1.1 MB push sent by Node's `http` module the way this file sends it
// (keep-alive agent, body written in 64 KiB chunks that honour backpressure) got no HTTP answer
// at all: the layer answered 413 without reading the body, the connection was closed with
// unread bytes in the kernel's buffer, the kernel sent a TCP reset, and Node reported EPIPE.
// Now the layer reads and discards the body (up to 4 MiB within 5 s) before it answers, and past
// that bound the server's lingering close keeps the answer readable. curl and a Rust hyper
// client meet the same cases in tests/hostile_clients.rs.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';

const SERVER_URL = new URL(process.env.PAR_SERVER_URL ?? assert.fail('PAR_SERVER_URL is not set'));
const TEST_TIMEOUT_MS = 30_000;
const CHUNK = 64 * 1024;

function oversizeForm(size) {
  const body = Buffer.alloc(size, 'a');
  body.write('client_id=spa&response_type=code&state=');
  return body;
}

/**
 * POSTs `body` to the PAR endpoint with Node's `http` module in the shape that failed: a
 * keep-alive agent, the body written in 64 KiB chunks, waiting for 'drain' whenever `write`
 * says the buffer is full. With `chunked`, no Content-Length (Node then sends it chunked).
 */
function nodeHttpPost(agent, body, { chunked = false, headers = {} } = {}) {
  const allHeaders = { 'content-type': 'application/x-www-form-urlencoded', ...headers };
  if (!chunked) allHeaders['content-length'] = String(body.length);
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: SERVER_URL.hostname, port: SERVER_URL.port, path: '/as/par', method: 'POST', agent, headers: allHeaders },
      (res) => {
        const parts = [];
        res.on('data', (part) => parts.push(part));
        res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(parts).toString() }));
        res.on('error', reject);
      },
    );
    req.on('error', (err) => reject(Object.assign(new Error(`no HTTP answer: ${err.code ?? err.message}`), { cause: err })));
    let offset = 0;
    const writeSome = () => {
      while (offset < body.length) {
        const chunk = body.subarray(offset, offset + CHUNK);
        offset += chunk.length;
        if (!req.write(chunk)) {
          req.once('drain', writeSome);
          return;
        }
      }
      req.end();
    };
    writeSome();
  });
}

function assertTooLarge(reply) {
  assert.equal(reply.status, 413, reply.body);
  const json = JSON.parse(reply.body);
  assert.equal(json.error, 'invalid_request');
  assert.match(json.error_description, /larger than 1048576 bytes/);
}

async function pushWebApp(agent) {
  const body = Buffer.from('response_type=code&redirect_uri=https%3A%2F%2Fclient.example.org%2Fcb&state=after');
  const reply = await nodeHttpPost(agent, body, {
    headers: { authorization: `Basic ${Buffer.from('web-app:web-app-secret').toString('base64')}` },
  });
  assert.equal(reply.status, 201, reply.body);
  assert.match(JSON.parse(reply.body).request_uri, /^urn:ietf:params:oauth:request_uri:/);
}

for (const size of [1_100_000, 3_000_000]) {
  for (const chunked of [false, true]) {
    const shape = chunked ? 'chunked' : 'Content-Length';
    test(`node:http, keep-alive agent, 64 KiB writes with backpressure: ${size} bytes with ${shape} → 413 JSON, then the same agent pushes (PAR-04)`, { timeout: TEST_TIMEOUT_MS }, async () => {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      try {
        const reply = await nodeHttpPost(agent, oversizeForm(size), { chunked });
        assertTooLarge(reply);
        // Drained: the connection was kept open, and the agent uses it again.
        assert.notEqual(reply.headers.connection, 'close');
        await pushWebApp(agent);
      } finally {
        agent.destroy();
      }
    });

    test(`undici fetch: ${size} bytes with ${shape} → 413 JSON, then a push gets 201 (PAR-04)`, { timeout: TEST_TIMEOUT_MS }, async () => {
      const form = oversizeForm(size);
      const body = chunked
        ? new ReadableStream({
          start(controller) {
            for (let at = 0; at < form.length; at += CHUNK) controller.enqueue(form.subarray(at, at + CHUNK));
            controller.close();
          },
        })
        : form;
      const response = await fetch(new URL('/as/par', SERVER_URL), {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body,
        ...(chunked ? { duplex: 'half' } : {}),
      });
      assertTooLarge({ status: response.status, body: await response.text() });
      const pushed = await fetch(new URL('/as/par', SERVER_URL), {
        method: 'POST',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          authorization: `Basic ${Buffer.from('web-app:web-app-secret').toString('base64')}`,
        },
        body: 'response_type=code&redirect_uri=https%3A%2F%2Fclient.example.org%2Fcb&state=after',
      });
      assert.equal(pushed.status, 201);
    });
  }
}

for (const size of [6_000_000, 50_000_000]) {
  test(`node:http past the drain: ${size} bytes with Content-Length → 413 JSON with Connection: close (lingering close)`, { timeout: TEST_TIMEOUT_MS }, async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const reply = await nodeHttpPost(agent, oversizeForm(size));
      assertTooLarge(reply);
      assert.equal(reply.headers.connection, 'close');
      await pushWebApp(agent);
    } finally {
      agent.destroy();
    }
  });
}
