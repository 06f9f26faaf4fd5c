// The SPA of spa.test.mjs, run by a real browser. Served at `/` it discovers the authorization
// server named by `?issuer=`, pushes an authorization request as the public client `?client_id=`
// (PKCE S256, a DPoP proof from a fresh WebCrypto key unless `?dpop=0`), reads the request_uri
// and sends the browser to the authorization endpoint. Served at `/callback` it validates the
// authorization response (state, iss). Either way it reports one result on the console as
// `SPA_RESULT {json}` and in the page.
//
// oauth4webapi is the pinned npm package, served as an ES module from node_modules.

import * as oauth from '/oauth4webapi.js';

// The servers are plain-HTTP loopback; oauth4webapi refuses http:// unless told.
const INSECURE = { [oauth.allowInsecureRequests]: true };
const FLOW = 'tower-par-flow';

function report(result) {
  document.getElementById('result').textContent = JSON.stringify(result, null, 2);
  console.log(`SPA_RESULT ${JSON.stringify(result)}`);
}

async function discover(issuer) {
  const response = await oauth.discoveryRequest(issuer, INSECURE);
  return oauth.processDiscoveryResponse(issuer, response);
}

async function start() {
  const query = new URLSearchParams(location.search);
  const issuer = new URL(query.get('issuer'));
  const client = { client_id: query.get('client_id'), token_endpoint_auth_method: 'none' };
  const as = await discover(issuer);

  const verifier = oauth.generateRandomCodeVerifier();
  const state = oauth.generateRandomState();
  const keyPair = query.get('dpop') === '0' ? undefined : await oauth.generateKeyPair('ES256');
  const options = keyPair ? { ...INSECURE, DPoP: oauth.DPoP(client, keyPair) } : INSECURE;
  let response;
  try {
    response = await oauth.pushedAuthorizationRequest(
      as,
      client,
      oauth.None(),
      {
        response_type: 'code',
        redirect_uri: new URL('/callback', location.origin).href,
        scope: 'openid',
        state,
        code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
        code_challenge_method: 'S256',
      },
      options,
    );
  } catch (err) {
    // A CORS refusal: fetch rejects with a TypeError and the page learns nothing else.
    return report({ phase: 'push', discovered: as.issuer, error: err.name, message: err.message });
  }
  const { request_uri, expires_in } = await oauth.processPushedAuthorizationResponse(as, client, response);
  sessionStorage.setItem(FLOW, JSON.stringify({ issuer: issuer.href, client, state, request_uri, expires_in }));
  const authorize = new URL(as.authorization_endpoint);
  authorize.searchParams.set('client_id', client.client_id);
  authorize.searchParams.set('request_uri', request_uri);
  location.assign(authorize.href);
}

async function callback() {
  const flow = JSON.parse(sessionStorage.getItem(FLOW));
  const as = await discover(new URL(flow.issuer));
  const params = oauth.validateAuthResponse(as, flow.client, new URL(location.href), flow.state);
  report({
    phase: 'callback',
    code: params.get('code'),
    state: params.get('state'),
    expected_state: flow.state,
    iss: params.get('iss'),
    request_uri: flow.request_uri,
    expires_in: flow.expires_in,
  });
}

(location.pathname === '/callback' ? callback() : start()).catch((err) =>
  report({ phase: 'error', error: err.name, message: err.message, code: err.code }),
);
