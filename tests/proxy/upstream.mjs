// node-oidc-provider 9 as the "existing" authorization server behind par-proxy (issue 13): its
// own PAR is off, its issuer is the proxy's public URL, and devInteractions (its real login and
// consent forms) are on. It knows the same clients as the proxy (read from the clients file the
// proxy loads), because the token endpoint, which the proxy passes through, authenticates them.
//
// Usage: node upstream.mjs --listen 127.0.0.1:PORT --issuer http://127.0.0.1:PROXY_PORT
//          --clients CLIENTS_JSON
// Prints `listening on http://ADDR` once it accepts connections.
import { createServer } from 'node:http';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';

import Provider from 'oidc-provider';

function flag(name) {
  const i = process.argv.indexOf(name);
  if (i === -1 || !process.argv[i + 1]) {
    console.error(`upstream.mjs: ${name} is required`);
    process.exit(2);
  }
  return process.argv[i + 1];
}

const listen = flag('--listen');
const issuer = flag('--issuer');
const clientsFile = JSON.parse(readFileSync(flag('--clients'), 'utf8'));
const [host, port] = [listen.slice(0, listen.lastIndexOf(':')), Number(listen.slice(listen.lastIndexOf(':') + 1))];

// The proxy's clients in node-oidc-provider's metadata. `signed-app` requires signed request
// objects here too: the proxy must pass the pushed JWT on (RFC 9101 §6.3).
const USED = ['web-app', 'post-app', 'spa', 'short-lived', 'par-required', 'jwt-app', 'signed-app'];
const clients = clientsFile.clients
  .filter((c) => USED.includes(c.client_id))
  .map((c) => ({
    client_id: c.client_id,
    ...(c.client_secret ? { client_secret: c.client_secret } : {}),
    token_endpoint_auth_method: c.auth_method,
    redirect_uris: c.redirect_uris,
    grant_types: ['authorization_code'],
    response_types: ['code'],
    ...(c.jwks ? { jwks: c.jwks } : {}),
    ...(c.require_signed_request_object ? { require_signed_request_object: true } : {}),
  }));

const signingKey = {
  ...generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' }),
  kid: 'upstream',
  use: 'sig',
  alg: 'RS256',
};

const provider = new Provider(issuer, {
  clients,
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  features: {
    devInteractions: { enabled: true },
    pushedAuthorizationRequests: { enabled: false },
    requestObjects: { enabled: true },
    dPoP: { enabled: true },
  },
  jwks: { keys: [signingKey] },
  pkce: { required: () => true },
  // Accounts are whoever signs in on the devInteractions form.
  findAccount: (ctx, sub) => ({ accountId: sub, claims: () => ({ sub }) }),
});
provider.on('server_error', (ctx, err) => console.error('server_error', err));

const server = createServer(provider.callback());
server.listen(port, host, () => {
  const { address, port: bound } = server.address();
  console.log(`listening on http://${address}:${bound}`);
});
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => server.close(() => process.exit(0)));
  // Keep-alive connections would hold close() open; the test is over anyway.
  process.on(signal, () => setTimeout(() => process.exit(0), 500).unref());
}
