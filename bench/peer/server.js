// node-oidc-provider 9.x configured like par_server's demo client, the peer for bench/load.sh.
//
// Usage: node server.js [--listen 127.0.0.1:PORT]   (or PORT=... in the environment)
// Prints `listening on http://ADDR` once it accepts connections.
import { createServer } from 'node:http';
import { generateKeyPairSync, randomBytes } from 'node:crypto';

import Provider from 'oidc-provider';

import MapAdapter from './map_adapter.js';

function listenAddress() {
  const i = process.argv.indexOf('--listen');
  if (i !== -1 && process.argv[i + 1]) return process.argv[i + 1];
  return `127.0.0.1:${process.env.PORT ?? 3001}`;
}

const listen = listenAddress();
const sep = listen.lastIndexOf(':');
const host = listen.slice(0, sep);
const port = Number(listen.slice(sep + 1));
if (host !== '127.0.0.1' || !Number.isInteger(port) || port <= 0 || port > 65535) {
  console.error(`bad --listen ${listen}: expected 127.0.0.1:PORT`);
  process.exit(2);
}

// A fresh RS256 key (the default client id_token alg) per run; the bench never verifies tokens, but the provider needs one and
// its built-in development key prints a warning.
const signingKey = {
  ...generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' }),
  kid: 'bench',
  use: 'sig',
  alg: 'RS256',
};

const provider = new Provider(`http://${listen}`, {
  adapter: MapAdapter,
  clients: [
    {
      client_id: 'web-app',
      client_secret: 'web-app-secret',
      token_endpoint_auth_method: 'client_secret_basic',
      redirect_uris: ['https://client.example.org/cb'],
      response_types: ['code'],
      grant_types: ['authorization_code'],
    },
  ],
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  features: {
    devInteractions: { enabled: false },
    pushedAuthorizationRequests: { enabled: true, requirePushedAuthorizationRequests: false },
  },
  jwks: { keys: [signingKey] },
  // Same rule as the bench body: PKCE S256 on every authorization request.
  pkce: { required: () => true },
  // Same paths as par_server, so the wrk scripts need no per-server variant.
  routes: {
    authorization: '/as/authorize',
    pushed_authorization_request: '/as/par',
  },
});

// Surface unexpected failures; expected client errors are counted by the wrk script instead.
provider.on('server_error', (ctx, err) => console.error('server_error', err));

const server = createServer(provider.callback());
server.listen(port, host, () => {
  const { address, port: bound } = server.address();
  console.log(`listening on http://${address}:${bound}`);
});

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
