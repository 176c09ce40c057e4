/* TLS for the listeners: OpenSSL 3 server contexts built from config, and
 * what a handler may learn about the peer's certificate.
 *
 * Versions: TLS 1.2 and 1.3 only (FAPI 2.0 §5.2.1, BCP 195). TLS 1.2 is
 * limited to the FAPI 2.0 / BCP 195 suites: ECDHE with AES-GCM
 * (FAPI 2.0 §5.2.2-2). The server's preference order wins. */
#ifndef PC_NET_TLS_H
#define PC_NET_TLS_H

#include "core/config.h"
#include "jose/thumbprint.h"

#include <openssl/ssl.h>
#include <stdbool.h>

/* TLS 1.2 suites (OpenSSL names) allowed by FAPI 2.0 §5.2.2 / BCP 195. */
#define PC_TLS12_CIPHERS                                                                           \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                                   \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384"
#define PC_TLS13_SUITES "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
#define PC_TLS_GROUPS "X25519:P-256:P-384"
/* Client certificate chain depth: leaf, intermediates, root. */
#define PC_TLS_MAX_VERIFY_DEPTH 4

/* What we know of the peer's certificate, filled once per connection right
 * after the handshake. Strings are owned by the struct. */
typedef struct pc_tls_peer {
    bool present;            /* the client sent a certificate */
    bool ca_verified;        /* it chains to a configured client CA */
    char x5t_s256[PC_X5T_S256_BUF]; /* RFC 8705 thumbprint, "" if none */
    char *subject;           /* RFC 4514 string, NULL if none */
    char *issuer;
    X509 *cert;              /* the certificate, owned (up-ref'd) */
} pc_tls_peer;

/* Build a server SSL_CTX from config; on failure the message names the
 * file and the OpenSSL reason. */
PC_MUST_USE pc_result pc_tls_server_ctx(const pc_tls_config *cfg, SSL_CTX **out);
/* Fill peer from a connection whose handshake completed. */
PC_MUST_USE pc_result pc_tls_peer_load(SSL *ssl, pc_tls_peer *peer);
void pc_tls_peer_clear(pc_tls_peer *peer);
/* RFC 4514 string of a name into a malloc'd string (NULL on failure). */
char *pc_tls_name_string(const X509_NAME *name);

#endif
