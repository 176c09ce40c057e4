// client_credentials against a portcullis AS with oauth4webapi:
// discovery (RFC 8414), private_key_jwt client authentication with an
// ES256 key, and a DPoP-bound access token (RFC 9449).
//
//   NODE_EXTRA_CA_CERTS=ca.pem node cc_flow.mjs --issuer https://localhost:PORT \
//       --client-id ID --key-file client.jwk.json [--scope "a b"] [--resource URI]
//
// The key file holds the client's private EC P-256 JWK (with its kid).
// Prints one JSON object: the raw token response, what oauth4webapi made of
// it, and the DPoP public key with its RFC 7638 thumbprint.
import * as oauth from 'oauth4webapi'
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'

function parseArgs(argv) {
  const out = {}
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (!a.startsWith('--') || i + 1 >= argv.length) throw new Error(`bad argument ${a}`)
    out[a.slice(2)] = argv[++i]
  }
  for (const req of ['issuer', 'client-id', 'key-file']) {
    if (!out[req]) throw new Error(`--${req} is required`)
  }
  return out
}

// RFC 7638: the required members in lexicographic order, no whitespace.
function jwkThumbprint(jwk) {
  const members = {
    EC: ['crv', 'kty', 'x', 'y'],
    RSA: ['e', 'kty', 'n'],
    OKP: ['crv', 'kty', 'x'],
  }[jwk.kty]
  const canon = JSON.stringify(Object.fromEntries(members.map((m) => [m, jwk[m]])))
  return createHash('sha256').update(canon).digest('base64url')
}

async function main() {
  const args = parseArgs(process.argv.slice(2))
  const issuer = new URL(args.issuer)

  const as = await oauth.processDiscoveryResponse(
    issuer,
    await oauth.discoveryRequest(issuer, { algorithm: 'oauth2' }),
  )

  const jwk = JSON.parse(readFileSync(args['key-file'], 'utf8'))
  const privateKey = await crypto.subtle.importKey(
    'jwk',
    { kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y, d: jwk.d },
    { name: 'ECDSA', namedCurve: 'P-256' },
    false,
    ['sign'],
  )
  const client = { client_id: args['client-id'] }
  const clientAuth = oauth.PrivateKeyJwt({ key: privateKey, kid: jwk.kid })

  const dpopKeys = await oauth.generateKeyPair('ES256')
  const dpop = oauth.DPoP(client, dpopKeys)

  const params = new URLSearchParams()
  if (args.scope) params.set('scope', args.scope)
  if (args.resource) params.set('resource', args.resource)

  // RFC 9449 §8: a server that wants nonces answers use_dpop_nonce with a
  // DPoP-Nonce header; the DPoP handle remembers it, and we try once more.
  let attempts = 0
  let status, raw, result
  for (;;) {
    attempts++
    const response = await oauth.clientCredentialsGrantRequest(as, client, clientAuth, params, {
      DPoP: dpop,
    })
    status = response.status
    raw = await response.clone().json()
    try {
      result = await oauth.processClientCredentialsResponse(as, client, response)
      break
    } catch (err) {
      if (attempts < 2 && oauth.isDPoPNonceError(err)) continue
      throw err
    }
  }

  const publicJwk = await crypto.subtle.exportKey('jwk', dpopKeys.publicKey)
  process.stdout.write(
    JSON.stringify({
      issuer: as.issuer,
      token_endpoint: as.token_endpoint,
      status,
      attempts,
      raw_response: raw,
      processed: result,
      dpop_public_jwk: { kty: publicJwk.kty, crv: publicJwk.crv, x: publicJwk.x, y: publicJwk.y },
      dpop_jkt: jwkThumbprint(publicJwk),
    }) + '\n',
  )
}

main().catch((err) => {
  const detail = { name: err?.name, message: err?.message, code: err?.code, cause: err?.cause }
  try {
    process.stderr.write('cc_flow failed: ' + JSON.stringify(detail) + '\n')
  } catch {
    process.stderr.write('cc_flow failed: ' + String(err) + '\n')
  }
  process.exit(1)
})
