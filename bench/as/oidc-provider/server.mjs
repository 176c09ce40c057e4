// oidc-provider as the reference authorization server for bench/as/run.sh.
//
// Configured for the same work as portcullis' AS in the benchmark: the
// client_credentials grant; private_key_jwt (ES256, aud = the issuer, as
// FAPI 2.0 wants) and tls_client_auth client authentication; access tokens
// as ES256-signed JWTs for the resource https://api.example, bound to the
// client certificate (cnf.x5t#S256) or to a DPoP key (cnf.jkt). Served by
// Node's own https server asking for (not requiring) a client certificate
// from the same development CA.
//
//   node server.mjs CONFIG.json
//
// CONFIG.json (written by run.sh):
//   { "port": 8443, "host": "127.0.0.1", "issuer": "https://localhost:8443",
//     "cert": "server.pem", "key": "server.key", "ca": "ca.pem",
//     "client_jwks": "bench-jwt.jwks.json",
//     "subject_dn": "CN=bench client,O=portcullis bench",
//     "workers": 2 }           // 0: a single process, no cluster
//
// With workers > 0, node's cluster module runs that many worker processes
// (the primary only hands out connections). The token-signing key is made
// once by the primary and given to every worker, so all sign alike.
// Prints "ready <port>" on stdout once every process listens.
import cluster from 'node:cluster';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as https from 'node:https';

import Provider from 'oidc-provider';

const cfg = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const workers = cfg.workers ?? 0;

if (workers > 0 && cluster.isPrimary) {
  const jwk = makeSigningKey();
  let listening = 0;
  let shuttingDown = false;
  cluster.on('listening', () => {
    listening += 1;
    if (listening === workers) console.log(`ready ${cfg.port}`);
  });
  cluster.on('exit', (w, code, signal) => {
    if (!shuttingDown) {
      console.error(`oidc-provider worker ${w.process.pid} exited (${signal || code})`);
      process.exit(1);
    }
  });
  const stop = () => {
    shuttingDown = true;
    for (const w of Object.values(cluster.workers)) w.process.kill('SIGTERM');
    setTimeout(() => process.exit(0), 2000).unref();
    cluster.disconnect(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  for (let i = 0; i < workers; i += 1) {
    cluster.fork({ BENCH_SIGNING_JWK: JSON.stringify(jwk) });
  }
} else {
  const jwk = process.env.BENCH_SIGNING_JWK
    ? JSON.parse(process.env.BENCH_SIGNING_JWK)
    : makeSigningKey();
  serve(jwk);
}

function makeSigningKey() {
  const { privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = privateKey.export({ format: 'jwk' });
  return { ...jwk, kid: 'bench-as-1', alg: 'ES256', use: 'sig' };
}

// ---- client certificates ------------------------------------------------------
// The peer certificate of a TLS connection does not change, so it is parsed
// once per connection and kept with the socket (as a deployment would).
const peerCerts = new WeakMap();

function peerCertificate(ctx) {
  const sock = ctx.socket;
  if (peerCerts.has(sock)) return peerCerts.get(sock);
  let cert;
  const peer = typeof sock.getPeerCertificate === 'function' ? sock.getPeerCertificate(false) : null;
  if (peer && peer.raw) cert = new crypto.X509Certificate(peer.raw);
  peerCerts.set(sock, cert);
  return cert;
}

// "CN=bench client,O=portcullis bench" -> sorted "k=v" pairs. Enough for the
// benchmark's DNs (no escaped commas or multi-valued RDNs).
function dnPairs(dn, sep) {
  return dn.split(sep).map((s) => s.trim()).filter(Boolean).sort();
}

function sameDn(a, b) {
  const x = dnPairs(a, ',');
  const y = dnPairs(b, '\n');
  return x.length === y.length && x.every((v, i) => v === y[i]);
}

function serve(signingJwk) {
  const clientJwks = JSON.parse(fs.readFileSync(cfg.client_jwks, 'utf8'));
  const common = {
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    scope: 'accounts payments',
  };
  const configuration = {
    clients: [
      {
        ...common,
        client_id: 'bench-mtls',
        token_endpoint_auth_method: 'tls_client_auth',
        tls_client_auth_subject_dn: cfg.subject_dn,
        tls_client_certificate_bound_access_tokens: true,
      },
      {
        // private_key_jwt, tokens bound to the client certificate
        ...common,
        client_id: 'bench-jwt',
        token_endpoint_auth_method: 'private_key_jwt',
        token_endpoint_auth_signing_alg: 'ES256',
        jwks: clientJwks,
        tls_client_certificate_bound_access_tokens: true,
      },
      {
        // the same client for the DPoP case: tokens bound to the DPoP key
        // (oidc-provider binds per client registration, not per request)
        ...common,
        client_id: 'bench-jwt-dpop',
        token_endpoint_auth_method: 'private_key_jwt',
        token_endpoint_auth_signing_alg: 'ES256',
        jwks: clientJwks,
        dpop_bound_access_tokens: true,
      },
    ],
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
    scopes: ['accounts', 'payments'],
    ttl: { ClientCredentials: 600 },
    features: {
      clientCredentials: { enabled: true },
      devInteractions: { enabled: false },
      dPoP: { enabled: true },
      fapi: { enabled: true, profile: '2.0' },
      mTLS: {
        enabled: true,
        certificateBoundAccessTokens: true,
        tlsClientAuth: true,
        getCertificate: peerCertificate,
        certificateAuthorized: (ctx) => ctx.socket.authorized === true,
        certificateSubjectMatches: (ctx, property, expected) => {
          if (property !== 'tls_client_auth_subject_dn') return false;
          const cert = peerCertificate(ctx);
          return !!cert && sameDn(expected, cert.subject);
        },
      },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => 'https://api.example',
        useGrantedResource: () => true,
        getResourceServerInfo: (ctx, resource) => {
          if (resource !== 'https://api.example') throw new Provider.errors.InvalidTarget();
          return {
            scope: 'accounts payments',
            audience: 'https://api.example',
            accessTokenTTL: 600,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'ES256' } },
          };
        },
      },
    },
  };

  const provider = new Provider(cfg.issuer, configuration);
  if (cfg.debug) {
    provider.on('grant.error', (ctx, err) => console.error('grant.error', err.message, err.error_detail || ''));
    provider.on('server_error', (ctx, err) => console.error('server_error', err));
  }

  const server = https.createServer(
    {
      cert: fs.readFileSync(cfg.cert),
      key: fs.readFileSync(cfg.key),
      ca: fs.readFileSync(cfg.ca),
      requestCert: true,
      rejectUnauthorized: false, // optional client certificate; checked per client above
      minVersion: 'TLSv1.2',
      // the same preferences as portcullis (and bench/run.sh's nginx)
      ciphers: [
        'TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256',
        'ECDHE-ECDSA-AES128-GCM-SHA256', 'ECDHE-RSA-AES128-GCM-SHA256',
        'ECDHE-ECDSA-AES256-GCM-SHA384', 'ECDHE-RSA-AES256-GCM-SHA384',
      ].join(':'),
      honorCipherOrder: true,
      ecdhCurve: 'X25519:prime256v1:secp384r1',
    },
    provider.callback(),
  );
  server.keepAliveTimeout = 60_000;
  server.headersTimeout = 65_000;
  server.listen(cfg.port, cfg.host || '127.0.0.1', () => {
    if (!cluster.isWorker) console.log(`ready ${cfg.port}`);
  });
  process.on('SIGTERM', () => {
    server.close();
    server.closeAllConnections?.();
    process.exit(0);
  });
}
