// par-proxy in front of node-oidc-provider 9 (its own PAR off, its issuer the proxy's URL,
// devInteractions on), driven by oauth4webapi: push at the proxy → authorize at the proxy → the
// upstream's real login and consent forms → the callback → the token exchange at the upstream's
// token endpoint THROUGH the proxy. The code is real, and PKCE binds it to what was pushed.
// Started by scripts/proxy-test, which passes PROXY_URL and PROXY_CLIENT_KEYS (the keys
// tests/client/gen-clients.mjs made for the JWT clients). Requirement IDs refer to
// shared/docs/spec-checklist.md.

import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import * as oauth from 'oauth4webapi';

import { demoClients, importClientKey, requiredEnv as required } from '../client/demo-clients.mjs';
import { signInAndConsent, visit, CookieJar } from './flow.mjs';

const requiredEnv = (name) => required(name, 'scripts/proxy-test');

const PROXY_URL = requiredEnv('PROXY_URL');
const ISSUER = new URL(PROXY_URL);
const CLIENT_KEYS = JSON.parse(await readFile(requiredEnv('PROXY_CLIENT_KEYS'), 'utf8'));
const INSECURE = { [oauth.allowInsecureRequests]: true };
const TIMEOUT = { timeout: 30_000 };

const CLIENT_KEY = await importClientKey(CLIENT_KEYS);
const {
  WEB_APP, POST_APP, SPA, SHORT_LIVED, PAR_REQUIRED, JWT_APP, SIGNED_APP,
} = demoClients(oauth, CLIENT_KEY, CLIENT_KEYS.hmacSecret);

let as;

before(async () => {
  const response = await oauth.discoveryRequest(ISSUER, { algorithm: 'oidc', ...INSECURE });
  as = await oauth.processDiscoveryResponse(ISSUER, response);
});

/** Pushes a code request with PKCE and a fresh state (and nonce) at the proxy. */
async function pushCode(who, { extra = {}, options = {}, requestObject = false } = {}) {
  const verifier = oauth.generateRandomCodeVerifier();
  const state = oauth.generateRandomState();
  const nonce = oauth.generateRandomNonce();
  let params = {
    response_type: 'code',
    redirect_uri: who.redirectUri,
    scope: 'openid',
    state,
    nonce,
    code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    ...extra,
  };
  if (requestObject) {
    params = { request: await oauth.issueRequestObject(as, who.client, params, CLIENT_KEY) };
  }
  const response = await oauth.pushedAuthorizationRequest(as, who.client, who.auth(), params, { ...INSECURE, ...options });
  const pushed = await oauth.processPushedAuthorizationResponse(as, who.client, response);
  return { verifier, state, nonce, ...pushed };
}

function authorizationUrl(who, requestUri) {
  const url = new URL(as.authorization_endpoint);
  url.searchParams.set('client_id', who.client.client_id);
  url.searchParams.set('request_uri', requestUri);
  return url;
}

/** The whole flow: push, authorize, login, consent, callback, token exchange through the proxy. */
async function fullFlow(who, pushOptions = {}, tokenOptions = {}) {
  const pushed = await pushCode(who, pushOptions);
  const { callback, steps } = await signInAndConsent(authorizationUrl(who, pushed.request_uri), {
    origin: ISSUER.origin,
    redirectUri: who.redirectUri,
  });
  assert.ok(steps.includes('login form') && steps.includes('consent form'), steps.join(', '));
  const params = oauth.validateAuthResponse(as, who.client, callback, pushed.state);
  assert.equal(params.get('iss'), as.issuer, 'RFC 9207 iss is the proxy URL');
  const response = await oauth.authorizationCodeGrantRequest(
    as, who.client, who.auth(), params, who.redirectUri, pushed.verifier, { ...INSECURE, ...tokenOptions },
  );
  const tokens = await oauth.processAuthorizationCodeResponse(as, who.client, response, {
    expectedNonce: pushed.nonce,
    requireIdToken: true,
  });
  assert.ok(tokens.access_token, 'an access token');
  const claims = oauth.getValidatedIdTokenClaims(tokens);
  assert.equal(claims.sub, 'alice', 'the user who signed in on the upstream form');
  assert.equal(claims.iss, as.issuer);
  return { tokens, pushed };
}

test('discovery at the proxy: the upstream\'s document with the PAR members merged in (MD-01, MD-02, MD-03)', TIMEOUT, async () => {
  assert.equal(as.issuer, ISSUER.href.replace(/\/$/, ''));
  assert.equal(as.pushed_authorization_request_endpoint, new URL('/par', ISSUER).href);
  assert.equal(as.require_pushed_authorization_requests, false);
  // node-oidc-provider's own endpoints, at the proxy's origin (it builds them from the Host kept).
  assert.equal(new URL(as.authorization_endpoint).origin, ISSUER.origin);
  assert.equal(new URL(as.authorization_endpoint).pathname, '/auth');
  assert.equal(new URL(as.token_endpoint).pathname, '/token');
  for (const method of ['client_secret_basic', 'client_secret_post', 'private_key_jwt', 'none']) {
    assert.ok(as.token_endpoint_auth_methods_supported.includes(method), method);
  }
  assert.ok(as.dpop_signing_alg_values_supported.includes('ES256'));
  assert.equal(as.request_parameter_supported, true);
  // The OAuth path falls back to the OpenID document (node-oidc-provider serves only that one).
  const oauthMeta = await (await fetch(new URL('/.well-known/oauth-authorization-server', ISSUER))).json();
  assert.equal(oauthMeta.pushed_authorization_request_endpoint, as.pushed_authorization_request_endpoint);
});

test('client_secret_basic: push → authorize → login → consent → callback → token through the proxy (AUTH-03)', TIMEOUT, async () => {
  await fullFlow(WEB_APP);
});

test('client_secret_post: the whole flow (AUTH-04)', TIMEOUT, async () => {
  await fullFlow(POST_APP);
});

test('public client (none, PKCE S256): the whole flow (AUTH-10)', TIMEOUT, async () => {
  await fullFlow(SPA);
});

test('private_key_jwt at the proxy\'s PAR endpoint and at the upstream\'s token endpoint (AUTH-06)', TIMEOUT, async () => {
  await fullFlow(JWT_APP);
});

test('signed request object: the proxy verifies it at PAR and passes the JWT on; the whole flow (JAR-02, RFC 9101 §6.3)', TIMEOUT, async () => {
  await fullFlow(JWT_APP, { requestObject: true });
});

test('signed request object with an upstream that requires one for the client: the whole flow', TIMEOUT, async () => {
  await fullFlow(SIGNED_APP, { requestObject: true });
});

test('PKCE binds the real code: a wrong code_verifier at the upstream\'s token endpoint is invalid_grant', TIMEOUT, async () => {
  const pushed = await pushCode(WEB_APP);
  const { callback } = await signInAndConsent(authorizationUrl(WEB_APP, pushed.request_uri), {
    origin: ISSUER.origin, redirectUri: WEB_APP.redirectUri,
  });
  const params = oauth.validateAuthResponse(as, WEB_APP.client, callback, pushed.state);
  const response = await oauth.authorizationCodeGrantRequest(
    as, WEB_APP.client, WEB_APP.auth(), params, WEB_APP.redirectUri, oauth.generateRandomCodeVerifier(), INSECURE,
  );
  await assert.rejects(oauth.processAuthorizationCodeResponse(as, WEB_APP.client, response), (err) => {
    assert.equal(err.error, 'invalid_grant');
    return true;
  });
});

test('DPoP: a proof at the proxy\'s PAR endpoint binds the code; the token is DPoP-bound (RFC 9449 §10, DPOP-02)', TIMEOUT, async () => {
  const keyPair = await oauth.generateKeyPair('ES256');
  const { tokens } = await fullFlow(
    WEB_APP,
    { options: { DPoP: oauth.DPoP(WEB_APP.client, keyPair) } },
    { DPoP: oauth.DPoP(WEB_APP.client, keyPair) },
  );
  assert.equal(tokens.token_type.toLowerCase(), 'dpop');
  // Another key cannot redeem a code bound at PAR.
  const other = await oauth.generateKeyPair('ES256');
  const pushed = await pushCode(WEB_APP, { options: { DPoP: oauth.DPoP(WEB_APP.client, keyPair) } });
  const { callback } = await signInAndConsent(authorizationUrl(WEB_APP, pushed.request_uri), {
    origin: ISSUER.origin, redirectUri: WEB_APP.redirectUri,
  });
  const params = oauth.validateAuthResponse(as, WEB_APP.client, callback, pushed.state);
  const response = await oauth.authorizationCodeGrantRequest(
    as, WEB_APP.client, WEB_APP.auth(), params, WEB_APP.redirectUri, pushed.verifier,
    { ...INSECURE, DPoP: oauth.DPoP(WEB_APP.client, other) },
  );
  await assert.rejects(oauth.processAuthorizationCodeResponse(as, WEB_APP.client, response));
});

/** An OAuth JSON error from the proxy, never a redirect. */
async function assertProxyError(response, status, error) {
  assert.equal(response.status, status);
  assert.equal(response.headers.get('location'), null);
  assert.equal(response.headers.get('cache-control'), 'no-store');
  assert.equal((await response.json()).error, error);
}

test('single use: the second authorize with the same request_uri is the proxy\'s 400 invalid_request_uri (URI-03)', TIMEOUT, async () => {
  const pushed = await pushCode(WEB_APP);
  const url = authorizationUrl(WEB_APP, pushed.request_uri);
  const first = await visit(new CookieJar(), url);
  assert.equal(first.status, 303, 'the upstream took the swapped request (to its login page)');
  await assertProxyError(await visit(new CookieJar(), url), 400, 'invalid_request_uri');
});

test('wrong client: another client_id neither redeems nor burns the handle (URI-01)', TIMEOUT, async () => {
  const pushed = await pushCode(WEB_APP);
  await assertProxyError(await visit(new CookieJar(), authorizationUrl(POST_APP, pushed.request_uri)), 400, 'invalid_request_uri');
  const { callback } = await signInAndConsent(authorizationUrl(WEB_APP, pushed.request_uri), {
    origin: ISSUER.origin, redirectUri: WEB_APP.redirectUri,
  });
  oauth.validateAuthResponse(as, WEB_APP.client, callback, pushed.state);
});

test('expiry: a 2-s client\'s request_uri is refused after 2 s (URI-02)', TIMEOUT, async () => {
  const pushed = await pushCode(SHORT_LIVED);
  assert.equal(pushed.expires_in, 2);
  await new Promise((resolve) => setTimeout(resolve, 2_300));
  await assertProxyError(await visit(new CookieJar(), authorizationUrl(SHORT_LIVED, pushed.request_uri)), 400, 'invalid_request_uri');
});

test('require_par client: a plain authorization request is refused by the proxy, a pushed one works (AZ-07)', TIMEOUT, async () => {
  const url = new URL(as.authorization_endpoint);
  url.search = new URLSearchParams({
    client_id: 'par-required', response_type: 'code', redirect_uri: PAR_REQUIRED.redirectUri, scope: 'openid',
  }).toString();
  await assertProxyError(await visit(new CookieJar(), url), 400, 'invalid_request');
  await fullFlow(PAR_REQUIRED);
});

/**
 * POSTs a form of 1 MiB + 1 bytes to `url` with node:http and resolves with the answer. With
 * `declared`, the Content-Length says so and only the first bytes are sent: the proxy must answer
 * from the header alone. Without, the body is chunked (no length) and sent whole. (fetch fails
 * on the connection the proxy closes after answering early.)
 */
function postOversize(url, { declared }) {
  const size = 1024 * 1024 + 1;
  const start = 'response_type=code&x=';
  return new Promise((resolve, reject) => {
    const headers = {
      'content-type': 'application/x-www-form-urlencoded',
      authorization: `Basic ${Buffer.from('web-app:web-app-secret').toString('base64')}`,
    };
    if (declared) headers['content-length'] = String(size);
    let answered = false;
    const req = httpRequest(url, { method: 'POST', headers }, (res) => {
      answered = true;
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => { body += chunk; });
      res.on('end', () => {
        resolve({ status: res.statusCode, headers: res.headers, body: JSON.parse(body) });
        req.destroy();
      });
    });
    req.on('error', (err) => { if (!answered) reject(err); });
    req.write(start);
    if (declared) return;
    for (let left = size - start.length; left > 0; left -= 64 * 1024) {
      req.write('a'.repeat(Math.min(left, 64 * 1024)));
    }
    req.end();
  });
}

test('PAR endpoint: GET is 405 with Allow: POST; a body over 1 MiB is 413, declared or streamed (PAR-02, PAR-04)', TIMEOUT, async () => {
  const par = as.pushed_authorization_request_endpoint;
  const get = await fetch(par);
  assert.equal(get.headers.get('allow'), 'POST');
  await assertProxyError(get, 405, 'invalid_request');
  for (const declared of [true, false]) {
    const answer = await postOversize(par, { declared });
    assert.equal(answer.status, 413, `declared=${declared}`);
    assert.equal(answer.headers['cache-control'], 'no-store');
    assert.equal(answer.body.error, 'invalid_request');
  }
});

test('the upstream never sees a push: its own PAR endpoint path is not the proxy\'s', TIMEOUT, async () => {
  // node-oidc-provider's PAR route (/request) is off; the proxy forwards it like any other path.
  const response = await fetch(new URL('/request', ISSUER), {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: 'client_id=web-app&response_type=code',
  });
  assert.notEqual(response.status, 201);
});
