// Black-box test of the `par_server` example, driven by a real OAuth client library
// (oauth4webapi), against the contracts of issues 4, 5 and 7. Start it through
// `scripts/client-test`, which builds the example, starts servers with `--inner redirect`,
// `--inner echo`, `--inner login --consume completion` and `--inner login --consume strict`,
// and passes their URLs in PAR_SERVER_URL, PAR_ECHO_URL, PAR_LOGIN_URL and
// PAR_LOGIN_STRICT_URL.
//
// All servers load the clients file gen-clients.mjs writes: the demo clients of
// examples/clients.json (the ids, secrets and redirect URIs below are that file's) plus JWT
// clients whose private key and secret are generated per run and passed in the JSON file named
// by PAR_CLIENT_KEYS. Requirement IDs refer to ../shared/docs/spec-checklist.md.
//
// par_server has no token endpoint (it demonstrates PAR only), so the test uses the parts of
// oauth4webapi that do not need one: discovery, the PAR request/response, client
// authentication and authorization-response validation. oauth4webapi's discovery does not
// require `token_endpoint`; only the token-endpoint functions would.

import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import * as oauth from 'oauth4webapi';

import { demoClients, importClientKey, requiredEnv as required } from './demo-clients.mjs';

const SERVER_URL = requiredEnv('PAR_SERVER_URL');
const ECHO_URL = requiredEnv('PAR_ECHO_URL');
const LOGIN_URL = requiredEnv('PAR_LOGIN_URL');
const LOGIN_STRICT_URL = requiredEnv('PAR_LOGIN_STRICT_URL');
const CLIENT_KEYS = JSON.parse(await readFile(requiredEnv('PAR_CLIENT_KEYS'), 'utf8'));
// par_server's default issuer is `http://<listen address>`, which is also the URL it prints.
const ISSUER = new URL(process.env.PAR_SERVER_ISSUER ?? SERVER_URL);
const ECHO_ISSUER = new URL(process.env.PAR_ECHO_ISSUER ?? ECHO_URL);
const LOGIN_ISSUER = new URL(LOGIN_URL);
const LOGIN_STRICT_ISSUER = new URL(LOGIN_STRICT_URL);

// The servers listen on plain-HTTP loopback; oauth4webapi refuses http:// unless told.
const INSECURE = { [oauth.allowInsecureRequests]: true };
const TEST_TIMEOUT_MS = 20_000;

const CLIENT_KEY = await importClientKey(CLIENT_KEYS);
const {
  WEB_APP, POST_APP, SPA, SHORT_LIVED, PAR_REQUIRED, WORKER, JWT_APP, HMAC_APP, SIGNED_APP,
} = demoClients(oauth, CLIENT_KEY, CLIENT_KEYS.hmacSecret);

/** Authorization server metadata of the redirect, echo and login servers. */
let as;
let echoAs;
let loginAs;
let loginStrictAs;

before(async () => {
  as = await discover(ISSUER, 'oauth2');
  echoAs = await discover(ECHO_ISSUER, 'oauth2');
  loginAs = await discover(LOGIN_ISSUER, 'oauth2');
  loginStrictAs = await discover(LOGIN_STRICT_ISSUER, 'oauth2');
});

function requiredEnv(name) {
  return required(name, 'scripts/client-test, which starts par_server');
}

async function discover(issuer, algorithm) {
  const response = await oauth.discoveryRequest(issuer, { algorithm, ...INSECURE });
  return oauth.processDiscoveryResponse(issuer, response);
}

/**
 * Pushes `params` with oauth4webapi and returns the processed 201 body. The raw body is
 * checked too, because oauth4webapi would accept `"expires_in": "60"` (OK-02 wants a number).
 */
async function push(server, who, params, options = {}) {
  const response = await oauth.pushedAuthorizationRequest(
    server,
    who.client,
    who.auth(),
    params,
    { ...INSECURE, ...options },
  );
  if (response.status === 201) {
    const raw = await response.clone().json();
    assert.equal(typeof raw.expires_in, 'number', 'OK-02: expires_in is a JSON number');
    assert.ok(Number.isInteger(raw.expires_in) && raw.expires_in > 0, 'OK-02: positive integer');
    assert.ok(raw.request_uri.length < 512, 'RFC 9101 §5.2: request_uri under 512 chars');
  }
  return oauth.processPushedAuthorizationResponse(server, who.client, response);
}

/** Pushes an authorization-code request with a fresh state; returns the state and the 201 body. */
async function pushCode(server, who, extra = {}, options = {}) {
  const state = oauth.generateRandomState();
  const pushed = await push(server, who, {
    response_type: 'code',
    redirect_uri: who.redirectUri,
    scope: 'openid profile',
    state,
    ...extra,
  }, options);
  return { state, ...pushed };
}

/** Calls the authorization endpoint the way a browser would, without following redirects. */
async function authorize(server, params, method = 'GET') {
  const url = new URL(server.authorization_endpoint);
  if (method === 'GET') {
    for (const [name, value] of Object.entries(params)) url.searchParams.set(name, value);
    return fetch(url, { redirect: 'manual' });
  }
  return fetch(url, {
    method: 'POST',
    redirect: 'manual',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(params),
  });
}

/**
 * Checks a 303 authorization response with oauth4webapi: it goes to the registered
 * `redirectUri`, carries `code`, the expected `state` and `iss` equal to the issuer (RFC 9207).
 */
function assertCodeRedirect(response, who, state, server = as) {
  assert.equal(response.status, 303, 'authorization redirect is a 303');
  const location = response.headers.get('location');
  assert.ok(location, '303 carries a Location');
  const url = new URL(location);
  assert.equal(`${url.origin}${url.pathname}`, who.redirectUri, 'redirects to the pushed URI');
  assert.equal(url.hash, '', 'response_type=code answers in the query, not the fragment');
  // Telling oauth4webapi that the server sends `iss` makes it reject a response without one.
  const strict = { ...server, authorization_response_iss_parameter_supported: true };
  const params = oauth.validateAuthResponse(strict, who.client, url, state);
  assert.equal(params.get('iss'), server.issuer);
  assert.equal(params.get('state'), state);
  const code = params.get('code');
  assert.ok(code && code.length >= 16, `a random code, got ${JSON.stringify(code)}`);
  return code;
}

/** Checks an OAuth JSON error that must not be a redirect (AZ-05). */
async function assertErrorPage(response, status, error) {
  assert.equal(response.status, status);
  assert.equal(response.headers.get('location'), null, 'an error page, never a redirect');
  assert.match(response.headers.get('content-type') ?? '', /^application\/json/);
  const body = await response.json();
  assert.equal(body.error, error, `error body: ${JSON.stringify(body)}`);
  return body;
}

/** Asserts that oauth4webapi rejected a push with the given OAuth error (RFC 6749 §5.2). */
async function assertPushRejected(promise, status, error) {
  await assert.rejects(promise, (err) => {
    assert.ok(err instanceof oauth.ResponseBodyError, `ResponseBodyError, got ${err}`);
    assert.equal(err.status, status);
    assert.equal(err.error, error);
    return true;
  });
}

/**
 * Reads the echo server's answer, `{"params": [[name, value], ...], "pushed": bool, ...}`,
 * as `{ pushed, params }` where `params` maps each name to its value (an array of values if
 * the name was repeated).
 */
async function readEcho(response) {
  assert.equal(response.status, 200, 'echo mode answers 200');
  assert.match(response.headers.get('content-type') ?? '', /^application\/json/);
  const body = await response.json();
  const shown = JSON.stringify(body);
  assert.equal(typeof body?.pushed, 'boolean', `echo body has a boolean "pushed": ${shown}`);
  assert.ok(Array.isArray(body.params), `echo body has a "params" array: ${shown}`);
  const params = {};
  for (const pair of body.params) {
    assert.ok(
      Array.isArray(pair) && pair.length === 2 && pair.every((x) => typeof x === 'string'),
      `echo parameter is a [name, value] pair: ${JSON.stringify(pair)}`,
    );
    const [name, value] = pair;
    params[name] = name in params ? [].concat(params[name], value) : value;
  }
  return { pushed: body.pushed, params };
}

test('discovery: both well-known documents describe the PAR endpoints (MD-01, MD-02, MD-03)', { timeout: TEST_TIMEOUT_MS }, async () => {
  for (const algorithm of ['oauth2', 'oidc']) {
    const meta = await discover(ISSUER, algorithm);
    const where = `(${algorithm} discovery)`;
    assert.equal(new URL(meta.issuer).href, ISSUER.href, where);
    assert.equal(new URL(meta.pushed_authorization_request_endpoint).href, new URL('/as/par', ISSUER).href, where);
    assert.equal(new URL(meta.authorization_endpoint).href, new URL('/as/authorize', ISSUER).href, where);
    // The demo registry requires PAR per client (par-required), not globally.
    assert.equal(meta.require_pushed_authorization_requests, false, where);
    assert.ok(meta.response_types_supported.includes('code'), where);
    for (const method of ['client_secret_basic', 'client_secret_post', 'none']) {
      assert.ok(meta.token_endpoint_auth_methods_supported.includes(method), `${method} ${where}`);
    }
    assert.ok(meta.code_challenge_methods_supported.includes('S256'), where);
  }
});

test('client_secret_basic push, then authorize with only client_id + request_uri → 303 with code, state, iss (AUTH-03, OK-01, AZ-01, AZ-03)', { timeout: TEST_TIMEOUT_MS }, async () => {
  const { state, request_uri, expires_in } = await pushCode(as, WEB_APP);
  assert.ok(expires_in > 0);
  const response = await authorize(as, { client_id: WEB_APP.client.client_id, request_uri });
  assertCodeRedirect(response, WEB_APP, state);
});

test('client_secret_post push, then authorize → 303 with code, state, iss (AUTH-04)', { timeout: TEST_TIMEOUT_MS }, async () => {
  const { state, request_uri } = await pushCode(as, POST_APP);
  const response = await authorize(as, { client_id: POST_APP.client.client_id, request_uri });
  assertCodeRedirect(response, POST_APP, state);
});

test('public client push with PKCE S256, then authorize → 303; the challenge reaches the inner service (AUTH-10)', { timeout: TEST_TIMEOUT_MS }, async () => {
  const verifier = oauth.generateRandomCodeVerifier();
  const challenge = await oauth.calculatePKCECodeChallenge(verifier);
  const pkce = { code_challenge: challenge, code_challenge_method: 'S256' };

  const { state, request_uri } = await pushCode(as, SPA, pkce);
  const response = await authorize(as, { client_id: SPA.client.client_id, request_uri });
  assertCodeRedirect(response, SPA, state);

  const echoed = await pushCode(echoAs, SPA, pkce);
  const echo = await readEcho(
    await authorize(echoAs, { client_id: SPA.client.client_id, request_uri: echoed.request_uri }),
  );
  assert.equal(echo.pushed, true);
  assert.equal(echo.params.code_challenge, challenge);
  assert.equal(echo.params.code_challenge_method, 'S256');
});

test('authorize by POST with client_id + request_uri → 303 (AZ-01)', { timeout: TEST_TIMEOUT_MS }, async () => {
  const { state, request_uri } = await pushCode(as, WEB_APP);
  const response = await authorize(as, { client_id: WEB_APP.client.client_id, request_uri }, 'POST');
  assertCodeRedirect(response, WEB_APP, state);
});

test('single use: a second authorize with the same request_uri → 400 invalid_request_uri, no redirect (URI-03)', { timeout: TEST_TIMEOUT_MS }, async () => {
  const { state, request_uri } = await pushCode(as, WEB_APP);
  const params = { client_id: WEB_APP.client.client_id, request_uri };
  assertCodeRedirect(await authorize(as, params), WEB_APP, state);
  await assertErrorPage(await authorize(as, params), 400, 'invalid_request_uri');
});

test('unknown request_uri → 400 invalid_request_uri, no redirect (AZ-05)', { timeout: TEST_TIMEOUT_MS }, async () => {
  const { request_uri } = await pushCode(as, WEB_APP);
  // Same prefix and length as a real handle, but a value the server never issued.
  const tail = request_uri.endsWith('AAAAAAAA') ? 'BBBBBBBB' : 'AAAAAAAA';
  const forged = `${request_uri.slice(0, -tail.length)}${tail}`;
  await assertErrorPage(
    await authorize(as, { client_id: WEB_APP.client.client_id, request_uri: forged }),
    400,
    'invalid_request_uri',
  );
});

test('wrong client: another client_id cannot redeem the handle and does not burn it (URI-01)', { timeout: TEST_TIMEOUT_MS }, async () => {
  const { state, request_uri } = await pushCode(as, WEB_APP);
  await assertErrorPage(
    await authorize(as, { client_id: POST_APP.client.client_id, request_uri }),
    400,
    'invalid_request_uri',
  );
  const response = await authorize(as, { client_id: WEB_APP.client.client_id, request_uri });
  assertCodeRedirect(response, WEB_APP, state);
});

test('expired handle: a 2-s client\'s request_uri is rejected after 2 s (URI-02)', { timeout: TEST_TIMEOUT_MS }, async () => {
  const fresh = await pushCode(as, SHORT_LIVED);
  const stale = await pushCode(as, SHORT_LIVED);
  assert.equal(fresh.expires_in, SHORT_LIVED.lifetimeSecs, 'per-client lifetime is advertised');
  const client_id = SHORT_LIVED.client.client_id;
  // The same client's handle still works before expiry, so the later 400 is due to time.
  assertCodeRedirect(await authorize(as, { client_id, request_uri: fresh.request_uri }), SHORT_LIVED, fresh.state);
  // expires_in counts from before the 201 was sent; no grace period is allowed beyond it.
  await new Promise((resolve) => setTimeout(resolve, stale.expires_in * 1000 + 250));
  await assertErrorPage(
    await authorize(as, { client_id, request_uri: stale.request_uri }),
    400,
    'invalid_request_uri',
  );
});

test('require_par client: plain authorize → 400 invalid_request; with a push → 303 (AZ-07)', { timeout: TEST_TIMEOUT_MS }, async () => {
  const client_id = PAR_REQUIRED.client.client_id;
  const state = oauth.generateRandomState();
  await assertErrorPage(
    await authorize(as, {
      client_id,
      response_type: 'code',
      redirect_uri: PAR_REQUIRED.redirectUri,
      scope: 'openid',
      state,
    }),
    400,
    'invalid_request',
  );
  const pushed = await pushCode(as, PAR_REQUIRED);
  assertCodeRedirect(await authorize(as, { client_id, request_uri: pushed.request_uri }), PAR_REQUIRED, pushed.state);
});

test('client without the authorization_code grant: push → 400 unauthorized_client', { timeout: TEST_TIMEOUT_MS }, async () => {
  await assertPushRejected(
    push(as, WORKER, { response_type: 'code', scope: 'openid', state: oauth.generateRandomState() }),
    400,
    'unauthorized_client',
  );
});

/** Returns the error a promise rejects with, failing the test if it fulfils. */
async function rejection(promise) {
  try {
    const value = await promise;
    assert.fail(`expected a rejection, got ${JSON.stringify(value)}`);
  } catch (err) {
    if (err instanceof assert.AssertionError) throw err;
    return err;
  }
}

test('wrong client_secret_basic secret → 401 invalid_client with WWW-Authenticate: Basic (AUTH-01, AUTH-02)', { timeout: TEST_TIMEOUT_MS }, async () => {
  const impostor = { ...WEB_APP, auth: () => oauth.ClientSecretBasic('not-the-secret') };
  const err = await rejection(pushCode(as, impostor));
  // oauth4webapi reports a 401 with a challenge as a WWWAuthenticateChallengeError.
  assert.ok(err instanceof oauth.WWWAuthenticateChallengeError, `challenge error, got ${err}`);
  assert.equal(err.status, 401);
  assert.ok(err.cause.some((c) => c.scheme === 'basic'), `Basic challenge: ${JSON.stringify(err.cause)}`);
  assert.match(err.response.headers.get('content-type') ?? '', /^application\/json/);
  assert.equal((await err.response.json()).error, 'invalid_client');
});

test('wrong client_secret_post secret → 400/401 invalid_client (AUTH-01, AUTH-02)', { timeout: TEST_TIMEOUT_MS }, async () => {
  const impostor = { ...POST_APP, auth: () => oauth.ClientSecretPost('not-the-secret') };
  const err = await rejection(pushCode(as, impostor));
  let error;
  if (err instanceof oauth.WWWAuthenticateChallengeError) {
    error = (await err.response.json()).error;
  } else {
    assert.ok(err instanceof oauth.ResponseBodyError, `OAuth error, got ${err}`);
    error = err.error;
  }
  assert.ok([400, 401].includes(err.status), `status ${err.status}`);
  assert.equal(error, 'invalid_client');
});

test('echo: the inner service sees exactly the pushed parameters, pushed=true (AZ-01, AZ-03, PAR-03)', { timeout: TEST_TIMEOUT_MS }, async () => {
  const state = oauth.generateRandomState();
  const pushedParams = {
    response_type: 'code',
    redirect_uri: WEB_APP.redirectUri,
    scope: 'openid profile email',
    state,
    // An extension parameter, spaces (sent as `+` by oauth4webapi), reserved characters and
    // non-ASCII UTF-8 must all survive the store and the rebuilt request unchanged.
    ui_locales: 'de-CH fr-CH',
    x_tenant: 'Zürich & Genève = 100% "Ω" / 東京 + more',
  };
  const { request_uri } = await push(echoAs, WEB_APP, pushedParams);
  // Parameters outside the request object are ignored, not merged (AZ-03).
  const response = await authorize(echoAs, {
    client_id: WEB_APP.client.client_id,
    request_uri,
    scope: 'admin',
    redirect_uri: 'https://evil.example.com/cb',
  });
  const echo = await readEcho(response);
  assert.equal(echo.pushed, true);
  // oauth4webapi sends client_id in the body for every auth method, so it is pushed too.
  assert.deepEqual(echo.params, { client_id: WEB_APP.client.client_id, ...pushedParams });
});

test('echo: client_secret_post credentials are not passed to the inner service (URI-05)', { timeout: TEST_TIMEOUT_MS }, async () => {
  const { state, request_uri } = await pushCode(echoAs, POST_APP);
  const echo = await readEcho(
    await authorize(echoAs, { client_id: POST_APP.client.client_id, request_uri }),
  );
  assert.equal(echo.pushed, true);
  assert.equal(echo.params.state, state);
  assert.equal(echo.params.client_id, POST_APP.client.client_id);
  assert.ok(!('client_secret' in echo.params), `no client_secret downstream: ${JSON.stringify(echo.params)}`);
});

test('echo: a plain (not pushed) authorize request passes through with pushed=false', { timeout: TEST_TIMEOUT_MS }, async () => {
  const params = {
    client_id: WEB_APP.client.client_id,
    response_type: 'code',
    redirect_uri: WEB_APP.redirectUri,
    scope: 'openid',
    state: oauth.generateRandomState(),
  };
  const echo = await readEcho(await authorize(echoAs, params));
  assert.equal(echo.pushed, false);
  assert.deepEqual(echo.params, params);
});

// ---------------------------------------------------------------------------------------------
// Signed JWTs (issue 5): client assertions, request objects, DPoP.
// ---------------------------------------------------------------------------------------------

test('discovery: the JWT client authentication methods and signing algorithms are advertised (MD-xx)', { timeout: TEST_TIMEOUT_MS }, async () => {
  for (const method of ['private_key_jwt', 'client_secret_jwt']) {
    assert.ok(as.token_endpoint_auth_methods_supported.includes(method), method);
  }
  assert.ok(as.token_endpoint_auth_signing_alg_values_supported.includes('ES256'));
  assert.ok(as.token_endpoint_auth_signing_alg_values_supported.includes('HS256'));
  assert.ok(as.request_object_signing_alg_values_supported.includes('ES256'));
  assert.ok(as.dpop_signing_alg_values_supported.includes('ES256'));
  for (const member of [
    'token_endpoint_auth_signing_alg_values_supported',
    'request_object_signing_alg_values_supported',
    'dpop_signing_alg_values_supported',
  ]) {
    assert.ok(!as[member].includes('none'), `${member} never lists none`);
  }
});

test('private_key_jwt push (ES256 assertion), then authorize → 303 with code, state, iss (AUTH-06, AUTH-07)', { timeout: TEST_TIMEOUT_MS }, async () => {
  const { state, request_uri } = await pushCode(as, JWT_APP);
  const response = await authorize(as, { client_id: JWT_APP.client.client_id, request_uri });
  assertCodeRedirect(response, JWT_APP, state);
});

test('private_key_jwt: the assertion is not passed to the inner service (VAL-08)', { timeout: TEST_TIMEOUT_MS }, async () => {
  const { state, request_uri } = await pushCode(echoAs, JWT_APP);
  const echo = await readEcho(await authorize(echoAs, { client_id: JWT_APP.client.client_id, request_uri }));
  assert.equal(echo.pushed, true);
  assert.equal(echo.params.state, state);
  for (const name of ['client_assertion', 'client_assertion_type']) {
    assert.ok(!(name in echo.params), `no ${name} downstream: ${JSON.stringify(echo.params)}`);
  }
});

test('private_key_jwt: an assertion signed by another key → 401 invalid_client (AUTH-06)', { timeout: TEST_TIMEOUT_MS }, async () => {
  const { privateKey } = await oauth.generateKeyPair('ES256');
  const impostor = { ...JWT_APP, auth: () => oauth.PrivateKeyJwt({ key: privateKey, kid: CLIENT_KEY.kid }) };
  const err = await rejection(pushCode(as, impostor));
  assert.equal(err.status, 401);
  assert.equal(err.error, 'invalid_client', `${err}`);
});

test('client_secret_jwt push (HS256 assertion), then authorize → 303 with code, state, iss', { timeout: TEST_TIMEOUT_MS }, async () => {
  const { state, request_uri } = await pushCode(as, HMAC_APP);
  const response = await authorize(as, { client_id: HMAC_APP.client.client_id, request_uri });
  assertCodeRedirect(response, HMAC_APP, state);

  const impostor = { ...HMAC_APP, auth: () => oauth.ClientSecretJwt(`${CLIENT_KEYS.hmacSecret}-wrong`) };
  const err = await rejection(pushCode(as, impostor));
  assert.equal(err.status, 401);
  assert.equal(err.error, 'invalid_client', `${err}`);
});

test('pushed request object (issueRequestObject), then authorize → 303; the object alone counts (JAR-02)', { timeout: TEST_TIMEOUT_MS }, async () => {
  const state = oauth.generateRandomState();
  const inner = {
    response_type: 'code',
    redirect_uri: SIGNED_APP.redirectUri,
    scope: 'openid profile',
    state,
  };
  // Redirect server: a full flow.
  const request = await oauth.issueRequestObject(as, SIGNED_APP.client, inner, CLIENT_KEY);
  const { request_uri, expires_in } = await push(as, SIGNED_APP, { request });
  assert.ok(expires_in > 0 && expires_in <= 60, `expires_in ${expires_in} within the object's exp`);
  assertCodeRedirect(
    await authorize(as, { client_id: SIGNED_APP.client.client_id, request_uri }),
    SIGNED_APP,
    state,
  );

  // Echo server: the inner service sees the object's parameters, not the outer ones.
  const echoRequest = await oauth.issueRequestObject(echoAs, SIGNED_APP.client, inner, CLIENT_KEY);
  const echoed = await push(echoAs, SIGNED_APP, { request: echoRequest, state: 'outer', scope: 'admin' });
  const echo = await readEcho(
    await authorize(echoAs, { client_id: SIGNED_APP.client.client_id, request_uri: echoed.request_uri }),
  );
  assert.equal(echo.pushed, true);
  assert.deepEqual(echo.params, { client_id: SIGNED_APP.client.client_id, ...inner });
});

test('require_signed_request_object client: a plain push → 400 invalid_request (VAL-11)', { timeout: TEST_TIMEOUT_MS }, async () => {
  await assertPushRejected(pushCode(as, SIGNED_APP), 400, 'invalid_request');
});

test('request object signed by another key → 400 invalid_request_object', { timeout: TEST_TIMEOUT_MS }, async () => {
  const { privateKey } = await oauth.generateKeyPair('ES256');
  const request = await oauth.issueRequestObject(
    as,
    SIGNED_APP.client,
    { response_type: 'code', redirect_uri: SIGNED_APP.redirectUri },
    { key: privateKey, kid: CLIENT_KEY.kid },
  );
  await assertPushRejected(push(as, SIGNED_APP, { request }), 400, 'invalid_request_object');
});

/** RFC 7638 SHA-256 thumbprint of an EC public key, computed here with WebCrypto. */
async function ecThumbprint(publicKey) {
  const { crv, kty, x, y } = await crypto.subtle.exportKey('jwk', publicKey);
  const canonical = JSON.stringify({ crv, kty, x, y });
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(canonical));
  return Buffer.from(digest).toString('base64url');
}

test('DPoP proof at PAR: the inner service sees dpop_jkt = the key\'s thumbprint (DPOP-02)', { timeout: TEST_TIMEOUT_MS }, async () => {
  const keyPair = await oauth.generateKeyPair('ES256', { extractable: true });
  const expected = await ecThumbprint(keyPair.publicKey);

  const dpop = oauth.DPoP(WEB_APP.client, keyPair);
  assert.equal(await dpop.calculateThumbprint(), expected, 'oauth4webapi agrees on the thumbprint');
  const { state, request_uri } = await pushCode(echoAs, WEB_APP, {}, { DPoP: dpop });
  const echo = await readEcho(await authorize(echoAs, { client_id: WEB_APP.client.client_id, request_uri }));
  assert.equal(echo.pushed, true);
  assert.equal(echo.params.state, state);
  assert.equal(echo.params.dpop_jkt, expected);

  // With dpop_jkt sent as well it must match; the full flow then completes.
  const bound = await pushCode(as, JWT_APP, { dpop_jkt: expected }, { DPoP: oauth.DPoP(JWT_APP.client, keyPair) });
  assertCodeRedirect(
    await authorize(as, { client_id: JWT_APP.client.client_id, request_uri: bound.request_uri }),
    JWT_APP,
    bound.state,
  );
});

test('DPoP proof whose key does not match dpop_jkt → 400 invalid_dpop_proof (DPOP-03)', { timeout: TEST_TIMEOUT_MS }, async () => {
  const proofKey = await oauth.generateKeyPair('ES256');
  const otherKey = await oauth.generateKeyPair('ES256', { extractable: true });
  await assertPushRejected(
    pushCode(as, WEB_APP, { dpop_jkt: await ecThumbprint(otherKey.publicKey) }, { DPoP: oauth.DPoP(WEB_APP.client, proofKey) }),
    400,
    'invalid_dpop_proof',
  );
});

// ---------------------------------------------------------------------------------------------
// Consumption policy (issue 7): a login round-trip comes back to /authorize.
// ---------------------------------------------------------------------------------------------

/** A browser GET without following redirects, with an optional cookie. */
function browserGet(url, cookie) {
  return fetch(url, { redirect: 'manual', headers: cookie ? { cookie } : {} });
}

/** Asserts a 303 to the login page and returns its absolute URL. */
function assertLoginRedirect(response, server) {
  assert.equal(response.status, 303, 'the login handler redirects to /login');
  const location = response.headers.get('location');
  assert.ok(location?.startsWith('/login?return='), `to /login, got ${location}`);
  return new URL(location, server.issuer);
}

/**
 * Follows /login: it sets the `session` cookie and redirects back to the authorize URL it was
 * given. Returns the cookie and the absolute URL to go back to.
 */
async function logIn(loginUrl, server) {
  const response = await browserGet(loginUrl);
  assert.equal(response.status, 303, '/login redirects back');
  const setCookie = response.headers.get('set-cookie') ?? '';
  const cookie = setCookie.split(';')[0];
  assert.match(cookie, /^session=/, `a session cookie, got ${setCookie}`);
  const back = new URL(response.headers.get('location'), server.issuer);
  assert.equal(back.pathname, new URL(server.authorization_endpoint).pathname, 'back to /as/authorize');
  return { cookie, back };
}

test('completion mode: reload, then login round-trip, then complete → 303 with code; then the handle is used up (URI-04, C-3)', { timeout: TEST_TIMEOUT_MS }, async () => {
  const { state, request_uri } = await pushCode(loginAs, WEB_APP);
  const params = { client_id: WEB_APP.client.client_id, request_uri };
  const first = await authorize(loginAs, params);
  const loginUrl = assertLoginRedirect(first, loginAs);
  // A reload of the authorize URL before the login completes still works.
  assertLoginRedirect(await authorize(loginAs, params), loginAs);

  const { cookie, back } = await logIn(loginUrl, loginAs);
  assert.equal(back.searchParams.get('request_uri'), request_uri, 'the return URL carries the request_uri');
  const completed = await browserGet(back, cookie);
  assertCodeRedirect(completed, WEB_APP, state, loginAs);

  // The authorization response consumed it: neither the same URL nor a fresh GET works again.
  await assertErrorPage(await browserGet(back, cookie), 400, 'invalid_request_uri');
  await assertErrorPage(await authorize(loginAs, params), 400, 'invalid_request_uri');
});

test('completion mode: a wrong client_id neither redeems nor burns the handle (URI-01)', { timeout: TEST_TIMEOUT_MS }, async () => {
  const { state, request_uri } = await pushCode(loginAs, WEB_APP);
  await assertErrorPage(
    await authorize(loginAs, { client_id: POST_APP.client.client_id, request_uri }),
    400,
    'invalid_request_uri',
  );
  const loginUrl = assertLoginRedirect(
    await authorize(loginAs, { client_id: WEB_APP.client.client_id, request_uri }),
    loginAs,
  );
  const { cookie, back } = await logIn(loginUrl, loginAs);
  assertCodeRedirect(await browserGet(back, cookie), WEB_APP, state, loginAs);
});

test('strict mode: the same login round-trip fails, the first hit used the handle up (URI-03)', { timeout: TEST_TIMEOUT_MS }, async () => {
  const { request_uri } = await pushCode(loginStrictAs, WEB_APP);
  const loginUrl = assertLoginRedirect(
    await authorize(loginStrictAs, { client_id: WEB_APP.client.client_id, request_uri }),
    loginStrictAs,
  );
  const { cookie, back } = await logIn(loginUrl, loginStrictAs);
  await assertErrorPage(await browserGet(back, cookie), 400, 'invalid_request_uri');
});

test('request object with two resource values (oauth4webapi sends an array) → both reach the inner service, as with a plain push (VAL-06)', { timeout: TEST_TIMEOUT_MS }, async () => {
  const resources = ['https://rs1.example.com/', 'https://rs2.example.com/'];
  const params = new URLSearchParams({ response_type: 'code', redirect_uri: SIGNED_APP.redirectUri });
  for (const resource of resources) params.append('resource', resource);
  const request = await oauth.issueRequestObject(echoAs, SIGNED_APP.client, params, CLIENT_KEY);
  const { request_uri } = await push(echoAs, SIGNED_APP, { request });
  const echo = await readEcho(await authorize(echoAs, { client_id: SIGNED_APP.client.client_id, request_uri }));
  assert.deepEqual(echo.params.resource, resources);
});
