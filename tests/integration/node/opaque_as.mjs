// An independent authorization server that issues OPAQUE access tokens, for
// the gateway's integration tests (tests/integration/gw/opaque_as.py drives
// it). The gateway must learn about these tokens by calling the RFC 7662
// introspection endpoint, so this is oidc-provider configured for:
//
//   - the client_credentials grant, with tls_client_auth or private_key_jwt
//     (ES256, aud = the issuer) client authentication;
//   - opaque access tokens for one resource (cfg.resource), bound to the
//     client certificate (cnf.x5t#S256) or to a DPoP key (cnf.jkt);
//   - token introspection (RFC 7662) and revocation (RFC 7009).
//
// Served by node's own https server, asking for (not requiring) a client
// certificate from the test CA; clients are checked per registration.
// One process, tokens in oidc-provider's in-memory adapter: a restart
// forgets every token.
//
//   node opaque_as.mjs CONFIG.json
//
// CONFIG.json (written by opaque_as.py):
//   { "port": 8443, "host": "127.0.0.1", "issuer": "https://localhost:8443",
//     "cert": "server.pem", "key": "server.key", "ca": "ca.pem",
//     "resource": "https://api.example", "scope": "accounts payments",
//     "token_ttl": 300,                 // optional, seconds
//     "introspectors": ["gateway"],     // optional: who may introspect any token
//     "fapi": true,                     // optional: FAPI 2.0 profile (default on)
//     "clients": [ { client metadata, passed to oidc-provider as is }, ... ] }
//
// Prints "ready <port>" on stdout once listening; errors go to stderr.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as https from 'node:https';

import Provider from 'oidc-provider';

const cfg = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const scopes = cfg.scope.split(' ').filter(Boolean);
const introspectors = new Set(cfg.introspectors ?? ['gateway']);

// ---- client certificates ------------------------------------------------------
// The peer certificate of a TLS connection does not change, so it is read
// once per connection and kept with the socket.
const peers = new WeakMap();

function peer(ctx) {
  const sock = ctx.socket;
  if (peers.has(sock)) return peers.get(sock);
  let info = null;
  const p = typeof sock.getPeerCertificate === 'function' ? sock.getPeerCertificate(false) : null;
  if (p && p.raw) info = { cert: new crypto.X509Certificate(p.raw), subject: p.subject || {} };
  peers.set(sock, info);
  return info;
}

// A registered RFC 4514 DN ("CN=alice,O=Acme Ltd,C=GB", with \, \+ \\ or
// \XX escapes) -> list of [TYPE, value] pairs. Multi-valued RDNs ("+") are
// flattened: the comparison below is of attribute multisets, not of order.
function parseDn(dn) {
  const pairs = [];
  let type = '';
  let value = '';
  let inValue = false;
  const push = () => {
    if (type.trim()) pairs.push([type.trim().toUpperCase(), value.trim()]);
    type = '';
    value = '';
    inValue = false;
  };
  for (let i = 0; i < dn.length; i += 1) {
    const c = dn[i];
    if (c === '\\' && i + 1 < dn.length) {
      const hex = dn.slice(i + 1, i + 3);
      let ch;
      if (/^[0-9a-fA-F]{2}$/.test(hex)) {
        ch = String.fromCharCode(parseInt(hex, 16));
        i += 2;
      } else {
        ch = dn[i + 1];
        i += 1;
      }
      if (inValue) value += ch; else type += ch;
    } else if (!inValue && c === '=') {
      inValue = true;
    } else if (c === ',' || c === '+' || c === ';') {
      push();
    } else if (inValue) {
      value += c;
    } else {
      type += c;
    }
  }
  push();
  return pairs;
}

// The certificate's subject as node parsed it ({ C: 'GB', O: 'Acme Ltd',
// CN: 'alice' }, an array for a repeated attribute) -> [TYPE, value] pairs.
function certPairs(subject) {
  const pairs = [];
  for (const [k, v] of Object.entries(subject)) {
    for (const one of Array.isArray(v) ? v : [v]) pairs.push([k.toUpperCase(), String(one)]);
  }
  return pairs;
}

const ALIASES = { EMAILADDRESS: 'E', EMAIL: 'E', S: 'ST' };
const norm = ([t, v]) => `${ALIASES[t] ?? t}=${v}`;

function sameDn(expected, subject) {
  const x = parseDn(expected).map(norm).sort();
  const y = certPairs(subject).map(norm).sort();
  return x.length > 0 && x.length === y.length && x.every((v, i) => v === y[i]);
}

// ---- the provider -------------------------------------------------------------
const { privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
const signingJwk = {
  ...privateKey.export({ format: 'jwk' }), kid: 'opaque-as-1', alg: 'ES256', use: 'sig',
};

const configuration = {
  clients: cfg.clients,
  clientAuthMethods: ['private_key_jwt', 'tls_client_auth'],
  clientDefaults: {
    grant_types: ['client_credentials'],
    response_types: [],
    id_token_signed_response_alg: 'ES256',
    token_endpoint_auth_method: 'private_key_jwt',
  },
  enabledJWA: {
    clientAuthSigningAlgValues: ['ES256'],
    dPoPSigningAlgValues: ['ES256'],
    idTokenSigningAlgValues: ['ES256'],
  },
  jwks: { keys: [signingJwk] },
  scopes,
  features: {
    clientCredentials: { enabled: true },
    devInteractions: { enabled: false },
    dPoP: { enabled: true },
    fapi: { enabled: cfg.fapi ?? true, profile: '2.0' },
    introspection: {
      enabled: true,
      // the owner of a token, and the resource servers named in the config
      allowedPolicy: (ctx, client, token) => client.clientId === token.clientId
        || introspectors.has(client.clientId),
    },
    revocation: {
      enabled: true,
      // only the owner (oidc-provider's default, stated so it does not warn)
      allowedPolicy: (ctx, client, token) => client.clientId === token.clientId,
    },
    mTLS: {
      enabled: true,
      certificateBoundAccessTokens: true,
      tlsClientAuth: true,
      getCertificate: (ctx) => peer(ctx)?.cert,
      certificateAuthorized: (ctx) => ctx.socket.authorized === true,
      certificateSubjectMatches: (ctx, property, expected) => {
        if (property !== 'tls_client_auth_subject_dn') return false;
        const p = peer(ctx);
        return !!p && sameDn(expected, p.subject);
      },
    },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => cfg.resource,
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, resource) => {
        if (resource !== cfg.resource) throw new Provider.errors.InvalidTarget();
        return {
          scope: cfg.scope,
          audience: cfg.resource,
          accessTokenTTL: cfg.token_ttl ?? 300,
          accessTokenFormat: 'opaque',
        };
      },
    },
  },
};

const provider = new Provider(cfg.issuer, configuration);
// One stdout line per answered request ("served POST /token/introspection
// 200"): the tests count how often the gateway asked (its cache).
provider.use(async (ctx, next) => {
  await next();
  console.log(`served ${ctx.method} ${ctx.path} ${ctx.status}`);
});
const detail = (err) => `${err.message}${err.error_detail ? ` (${err.error_detail})` : ''}`;
provider.on('server_error', (ctx, err) => console.error('server_error', err));
for (const ev of ['grant.error', 'introspection.error', 'revocation.error']) {
  provider.on(ev, (ctx, err) => console.error(ev, detail(err)));
}

const server = https.createServer(
  {
    cert: fs.readFileSync(cfg.cert),
    key: fs.readFileSync(cfg.key),
    ca: fs.readFileSync(cfg.ca),
    requestCert: true,
    rejectUnauthorized: false, // optional client certificate; checked per client above
    minVersion: 'TLSv1.2',
  },
  provider.callback(),
);
server.listen(cfg.port, cfg.host || '127.0.0.1', () => {
  console.log(`ready ${cfg.port}`);
});

const stop = () => {
  server.close();
  server.closeAllConnections?.();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
