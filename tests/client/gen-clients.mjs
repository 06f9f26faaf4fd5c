// Writes the clients file the par_server instances of scripts/client-test load, and the
// credentials par.test.mjs needs to act as the JWT clients in it (issue 5).
//
// Usage: node gen-clients.mjs DEMO_CLIENTS_JSON OUT_CLIENTS_JSON OUT_KEYS_JSON
//
// OUT_CLIENTS_JSON: the demo clients of DEMO_CLIENTS_JSON plus
//   - jwt-app     private_key_jwt, an ES256 public key generated now (jwks with kid);
//   - hmac-app    client_secret_jwt, a random 256-bit secret generated now;
//   - signed-app  private_key_jwt with the same key, require_signed_request_object.
// OUT_KEYS_JSON: { kid, privateJwk, publicJwk, hmacSecret } for the tests. Both files live in a
// temporary directory that the script removes; no key is ever committed.

import { readFile, writeFile } from 'node:fs/promises';

const [demoPath, clientsPath, keysPath] = process.argv.slice(2);
if (!demoPath || !clientsPath || !keysPath) {
  console.error('usage: node gen-clients.mjs DEMO_CLIENTS_JSON OUT_CLIENTS_JSON OUT_KEYS_JSON');
  process.exit(2);
}

const { subtle } = globalThis.crypto;
const pair = await subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify']);
const privateJwk = await subtle.exportKey('jwk', pair.privateKey);
const { kty, crv, x, y } = await subtle.exportKey('jwk', pair.publicKey);
const kid = `client-test-${Date.now().toString(36)}`;
// Only the public members: WebCrypto's export also carries `ext` and `key_ops`.
const publicJwk = { kty, crv, x, y, kid, alg: 'ES256', use: 'sig' };
const hmacSecret = Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString('base64url');

const demo = JSON.parse(await readFile(demoPath, 'utf8'));
const jwks = { keys: [publicJwk] };
const clients = [
  ...demo.clients,
  {
    client_id: 'jwt-app',
    auth_method: 'private_key_jwt',
    jwks,
    redirect_uris: ['https://jwt.example.org/cb'],
    grant_types: ['authorization_code'],
  },
  {
    client_id: 'hmac-app',
    auth_method: 'client_secret_jwt',
    client_secret: hmacSecret,
    redirect_uris: ['https://hmac.example.org/cb'],
    grant_types: ['authorization_code'],
  },
  {
    client_id: 'signed-app',
    auth_method: 'private_key_jwt',
    jwks,
    require_signed_request_object: true,
    redirect_uris: ['https://signed.example.org/cb'],
    grant_types: ['authorization_code'],
  },
];

await writeFile(clientsPath, `${JSON.stringify({ clients }, null, 2)}\n`, { mode: 0o600 });
await writeFile(keysPath, `${JSON.stringify({ kid, privateJwk, publicJwk, hmacSecret })}\n`, { mode: 0o600 });
