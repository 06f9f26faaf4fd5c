// The clients of examples/clients.json, plus the JWT clients gen-clients.mjs adds, as
// oauth4webapi uses them: client metadata, authentication, redirect URI. Shared by the
// par_server test (tests/client) and the par-proxy test (tests/proxy), each passing its own
// oauth4webapi module (each directory installs its own copy).

/** An environment variable a runner script sets, or a clear failure. */
export function requiredEnv(name, runner) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set; run ${runner}`);
  return value;
}

/** The JWT clients' private key, from the keys file gen-clients.mjs wrote. */
export async function importClientKey(keys) {
  return {
    key: await crypto.subtle.importKey('jwk', keys.privateJwk, { name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign']),
    kid: keys.kid,
  };
}

/** The clients, for `oauth` (an oauth4webapi module), the JWT key and the HMAC secret. */
export function demoClients(oauth, clientKey, hmacSecret) {
  return {
    WEB_APP: {
      client: { client_id: 'web-app' },
      auth: () => oauth.ClientSecretBasic('web-app-secret'),
      redirectUri: 'https://client.example.org/cb',
    },
    POST_APP: {
      client: { client_id: 'post-app' },
      auth: () => oauth.ClientSecretPost('post-app-secret'),
      // The second of its two registered URIs, so an exact match is needed, not "the first one".
      redirectUri: 'https://post.example.org/cb2',
    },
    SPA: {
      client: { client_id: 'spa', token_endpoint_auth_method: 'none' },
      auth: () => oauth.None(),
      redirectUri: 'http://127.0.0.1:8080/callback',
    },
    SHORT_LIVED: {
      client: { client_id: 'short-lived' },
      auth: () => oauth.ClientSecretBasic('short-lived-secret'),
      redirectUri: 'https://short.example.org/cb',
      lifetimeSecs: 2,
    },
    PAR_REQUIRED: {
      client: { client_id: 'par-required' },
      auth: () => oauth.ClientSecretBasic('par-required-secret'),
      redirectUri: 'https://strict.example.org/cb',
    },
    WORKER: {
      client: { client_id: 'worker' },
      auth: () => oauth.ClientSecretBasic('worker-secret'),
    },
    JWT_APP: {
      client: { client_id: 'jwt-app' },
      auth: () => oauth.PrivateKeyJwt(clientKey),
      redirectUri: 'https://jwt.example.org/cb',
    },
    HMAC_APP: {
      client: { client_id: 'hmac-app' },
      auth: () => oauth.ClientSecretJwt(hmacSecret),
      redirectUri: 'https://hmac.example.org/cb',
    },
    /** Must push signed request objects (and, behind par-proxy, the upstream requires them too). */
    SIGNED_APP: {
      client: { client_id: 'signed-app' },
      auth: () => oauth.PrivateKeyJwt(clientKey),
      redirectUri: 'https://signed.example.org/cb',
    },
  };
}
