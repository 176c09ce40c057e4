/* Development PKI: a CA, server certificates and client certificates with
 * their keys, made with the OpenSSL API (no shelling out to openssl).
 *
 * Not for production: keys are written unencrypted (mode 0600). Production
 * deployments bring their own CA; `portcullis pki` exists so that `make run`
 * and the tests have real certificates with zero set-up. */
#ifndef PC_PKI_PKI_H
#define PC_PKI_PKI_H

#include "core/result.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <openssl/x509.h>

typedef enum pc_key_type {
    PC_KEY_EC_P256 = 0, /* default */
    PC_KEY_EC_P384,
    PC_KEY_RSA_2048,
    PC_KEY_RSA_3072,
    PC_KEY_ED25519,
} pc_key_type;

/* Parse an RFC 4514 DN string ("CN=acme,O=Acme Ltd,C=GB") into an
 * X509_NAME the caller frees. PC_ERR_USAGE on a malformed DN. Used also to
 * compare a registered tls_client_auth_subject_dn with a certificate. */
PC_MUST_USE pc_result pc_pki_parse_dn(const char *dn, X509_NAME **out);

/* Parse "p256" | "p384" | "rsa2048" | "rsa3072" | "ed25519". */
PC_MUST_USE pc_result pc_key_type_parse(const char *s, pc_key_type *out);

typedef struct pc_pki_issue {
    const char *dir;        /* PKI directory holding ca.pem and ca.key */
    const char *name;       /* file stem: <dir>/<name>.pem and <name>.key */
    const char *subject;    /* RFC 4514 DN string, e.g. "CN=acme,O=Acme Ltd,C=GB";
                               NULL -> "CN=<name>" */
    const char **sans;      /* "DNS:x", "IP:1.2.3.4", "URI:https://..",
                               "email:a@b" */
    size_t n_sans;
    pc_key_type key_type;
    uint32_t days;          /* validity; 0 -> 365 (CA: 3650) */
    bool overwrite;         /* replace existing files; otherwise refuse */
} pc_pki_issue;

/* Create <dir>/ca.pem and <dir>/ca.key (a self-signed CA, basicConstraints
 * CA:TRUE, keyUsage keyCertSign+cRLSign). Refuses to overwrite unless
 * opts->overwrite. opts->name is ignored (always "ca"). */
PC_MUST_USE pc_result pc_pki_init(const pc_pki_issue *opts);
/* Issue a server certificate signed by the CA in opts->dir: EKU serverAuth,
 * SANs as given (default DNS:localhost, IP:127.0.0.1, IP:::1). */
PC_MUST_USE pc_result pc_pki_issue_server(const pc_pki_issue *opts);
/* Issue a client certificate signed by the CA: EKU clientAuth, subject DN
 * and SANs as given. */
PC_MUST_USE pc_result pc_pki_issue_client(const pc_pki_issue *opts);
/* A self-signed client certificate (no CA), for self_signed_tls_client_auth. */
PC_MUST_USE pc_result pc_pki_issue_self_signed(const pc_pki_issue *opts);

#endif
