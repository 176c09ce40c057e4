/* Private to src/pki/: the steps pki.c sequences. Callers outside the
 * layer use pki.h. */
#ifndef PC_PKI_INTERNAL_H
#define PC_PKI_INTERNAL_H

/* pki.h uses size_t without including <stddef.h>; include it first. */
#include <stddef.h>

#include "core/result.h"
#include "pki/pki.h"

#include <limits.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

/* Attributes in one subject DN. Real subjects have 3 to 6; 16 leaves room
 * for DC chains while keeping the parse table on the stack. */
#define PC_PKI_MAX_DN_ATTRS 16
/* Bytes of one decoded DN attribute value. X.520's largest upper bound for
 * the attributes we accept is 128 (ub-organizational-unit-name is 64,
 * ub-common-name 64; emailAddress 128 per PKCS #9); 256 catches typos with
 * a clear message before OpenSSL's per-type bound does. */
#define PC_PKI_MAX_DN_VALUE 256
/* subjectAltName entries in one certificate. */
#define PC_PKI_MAX_SANS 64
/* Validity: a century is far beyond any sane development certificate and
 * keeps the arithmetic of notAfter away from overflow. */
#define PC_PKI_MAX_DAYS 36500u
/* File stem length: <name>.pem inside the PKI directory. */
#define PC_PKI_MAX_NAME 64

/* pc_pki_parse_dn (pki.h) builds names in DER order: the string lists the
 * most specific RDN first (RFC 4514 §2.1). */

/* "DNS:x" | "IP:addr" | "URI:scheme:..." | "email:a@b" -> GENERAL_NAMES
 * owned by the caller. PC_ERR_USAGE on a malformed entry. */
PC_MUST_USE pc_result pc_pki_parse_sans(const char **sans, size_t n, GENERAL_NAMES **out);

PC_MUST_USE pc_result pc_pki_keygen(pc_key_type type, EVP_PKEY **out);
const char *pc_pki_key_type_name(pc_key_type type);

typedef enum pc_pki_role {
    PC_PKI_ROLE_CA,
    PC_PKI_ROLE_SERVER,
    PC_PKI_ROLE_CLIENT,
} pc_pki_role;

/* What one certificate needs. Everything is borrowed. */
typedef struct pc_pki_cert_req {
    pc_pki_role role;
    X509_NAME *subject;
    GENERAL_NAMES *sans; /* NULL: no subjectAltName extension */
    EVP_PKEY *key;       /* the subject's key pair */
    X509 *issuer;        /* NULL: self-signed with key */
    EVP_PKEY *issuer_key;
    uint32_t days;
} pc_pki_cert_req;

/* Build and sign a certificate; *out is owned by the caller. */
PC_MUST_USE pc_result pc_pki_make_cert(const pc_pki_cert_req *req, X509 **out);

typedef struct pc_pki_paths {
    char cert[PATH_MAX]; /* <dir>/<name>.pem */
    char key[PATH_MAX];  /* <dir>/<name>.key */
} pc_pki_paths;

PC_MUST_USE pc_result pc_pki_make_paths(const char *dir, const char *name, pc_pki_paths *out);
/* mkdir -p, the last component 0700. */
PC_MUST_USE pc_result pc_pki_make_dir(const char *dir);
/* Fail, naming the file, if either file exists. */
PC_MUST_USE pc_result pc_pki_refuse_existing(const pc_pki_paths *paths);
/* Write the certificate (PEM) and the key (PKCS #8 PEM, mode 0600), each
 * through a temporary file so that no reader sees half a file. */
PC_MUST_USE pc_result pc_pki_save(const pc_pki_paths *paths, X509 *cert, EVP_PKEY *key,
                                  bool overwrite);
/* Load <dir>/ca.pem and <dir>/ca.key and check they belong together. */
PC_MUST_USE pc_result pc_pki_load_ca(const char *dir, X509 **cert, EVP_PKEY **key);

#endif
