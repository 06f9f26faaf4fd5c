// A real browser (issue 13): headless Chromium, Debian's, through tests/browser/launcher.mjs.
//
// 1. par-proxy in front of node-oidc-provider: after a push at the proxy, the browser opens the
//    authorization URL at the proxy, types into the upstream's login form, submits, consents, and
//    lands on the client's callback with code and state; the code is then exchanged at the
//    upstream's token endpoint through the proxy.
// 2. par_server --inner login --consume completion: the page is reloaded in the middle of the
//    login, and the flow still ends on the callback with code and state.
//
// Started by scripts/proxy-test (PROXY_URL, PAR_LOGIN_URL).

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as oauth from 'oauth4webapi';

import { launch } from '../browser/launcher.mjs';
import { requiredEnv as required } from '../client/demo-clients.mjs';

const INSECURE = { [oauth.allowInsecureRequests]: true };
const TIMEOUT = { timeout: 60_000 };
const WEB_APP = { client_id: 'web-app' };
const WEB_AUTH = () => oauth.ClientSecretBasic('web-app-secret');
const CALLBACK = 'https://client.example.org/cb';

const requiredEnv = (name) => required(name, 'scripts/proxy-test');

async function discover(url, algorithm) {
  const issuer = new URL(url);
  return oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, { algorithm, ...INSECURE }));
}

async function push(as, extra = {}) {
  const verifier = oauth.generateRandomCodeVerifier();
  const state = oauth.generateRandomState();
  const response = await oauth.pushedAuthorizationRequest(as, WEB_APP, WEB_AUTH(), {
    response_type: 'code',
    redirect_uri: CALLBACK,
    scope: 'openid',
    state,
    code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    ...extra,
  }, INSECURE);
  const { request_uri } = await oauth.processPushedAuthorizationResponse(as, WEB_APP, response);
  const url = new URL(as.authorization_endpoint);
  url.searchParams.set('client_id', WEB_APP.client_id);
  url.searchParams.set('request_uri', request_uri);
  return { url, state, verifier };
}

let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

test('Chromium through par-proxy: upstream login form, consent, callback with code and state, token', TIMEOUT, async () => {
  const as = await discover(requiredEnv('PROXY_URL'), 'oidc');
  const { url, state, verifier } = await push(as);
  const page = await browser.page({ fulfil: { [CALLBACK]: '<!doctype html><title>callback</title>' } });

  await page.goto(url.href);
  // node-oidc-provider's devInteractions login form, served through the proxy.
  assert.equal(new URL(page.url()).origin, new URL(as.issuer).origin, 'the login page is at the proxy');
  await page.locator('input[name="login"]').fill('alice');
  await page.locator('input[name="password"]').fill('correct horse');
  await Promise.all([page.waitForURL(/\/interaction\//), page.locator('button[type="submit"]').click()]);
  // The consent form.
  await page.locator('input[name="prompt"][value="consent"]').waitFor({ state: 'attached' });
  const callback = await browser.waitForCallback(page, CALLBACK, () => page.locator('button[type="submit"]').click());

  assert.equal(`${callback.origin}${callback.pathname}`, CALLBACK);
  assert.equal(callback.searchParams.get('state'), state);
  assert.ok(callback.searchParams.get('code'), 'a code');
  const params = oauth.validateAuthResponse(as, WEB_APP, callback, state);
  const tokens = await oauth.processAuthorizationCodeResponse(
    as, WEB_APP,
    await oauth.authorizationCodeGrantRequest(as, WEB_APP, WEB_AUTH(), params, CALLBACK, verifier, INSECURE),
  );
  assert.ok(tokens.access_token);
  assert.equal(oauth.getValidatedIdTokenClaims(tokens).sub, 'alice');
  await page.close();
});

test('Chromium through par_server --inner login --consume completion: a reload in the middle of the login still ends on the callback', TIMEOUT, async () => {
  const as = await discover(requiredEnv('PAR_LOGIN_URL'), 'oauth2');
  const { url, state } = await push(as);
  const page = await browser.page({ fulfil: { [CALLBACK]: '<!doctype html><title>callback</title>' } });
  // The first visit reaches par_server, which sends the browser to its login page; the browser
  // is held there (the redirect is shown as a link instead of followed: the user has not signed
  // in yet). Routes see navigations, not the redirects within them, hence this shape.
  let firstVisit = true;
  const authorizePath = new URL(as.authorization_endpoint).pathname;
  await page.route((u) => u.pathname === authorizePath, async (route) => {
    if (!firstVisit) return route.fallback();
    firstVisit = false;
    const response = await route.fetch({ maxRedirects: 0 });
    assert.equal(response.status(), 303, 'par_server sends the browser to its login page');
    const login = response.headers().location;
    assert.match(login, /^\/login\?return=/);
    return route.fulfill({ status: 200, contentType: 'text/html', body: `<a href="${login}">Sign in</a>` });
  });
  await page.goto(url.href);
  assert.equal(await page.locator('a').getAttribute('href').then((h) => h.startsWith('/login')), true);
  // The user reloads in the middle of the login: the authorization URL is loaded again (a second
  // hit on the same request_uri, which completion mode honours), the login completes, and the
  // browser comes back to /as/authorize once more before the callback.
  const callback = await browser.waitForCallback(page, CALLBACK, () => page.reload());

  assert.equal(`${callback.origin}${callback.pathname}`, CALLBACK);
  assert.equal(callback.searchParams.get('state'), state);
  assert.ok(callback.searchParams.get('code'));
  assert.equal(callback.searchParams.get('iss'), as.issuer);
  // The flow completed: the same authorization URL is now refused. (A fresh page: the first one
  // is still failing over to its error page for the callback, which the dead proxy refused.)
  const check = await browser.page();
  const again = await check.goto(url.href);
  assert.equal(again.status(), 400);
  assert.equal((await again.json()).error, 'invalid_request_uri');
  await check.close();
  await page.close();
});
