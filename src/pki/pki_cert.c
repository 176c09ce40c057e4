/* Key pairs and X.509 v3 certificates (RFC 5280) for the development PKI. */
#include "pki/pki_internal.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/rand.h>

const char *pc_pki_key_type_name(pc_key_type type)
{
    switch (type) {
    case PC_KEY_EC_P256: return "p256";
    case PC_KEY_EC_P384: return "p384";
    case PC_KEY_RSA_2048: return "rsa2048";
    case PC_KEY_RSA_3072: return "rsa3072";
    case PC_KEY_ED25519: return "ed25519";
    default: return "unknown";
    }
}

pc_result pc_pki_keygen(pc_key_type type, EVP_PKEY **out)
{
    EVP_PKEY *key = NULL;
    switch (type) {
    case PC_KEY_EC_P256: key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256"); break;
    case PC_KEY_EC_P384: key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384"); break;
    case PC_KEY_RSA_2048: key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048); break;
    case PC_KEY_RSA_3072: key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)3072); break;
    case PC_KEY_ED25519: key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519"); break;
    default: return pc_fail(PC_ERR_USAGE, "unknown key type %d", (int)type);
    }
    if (key == NULL) return pc_fail_ossl("generating the key pair");
    *out = key;
    return PC_OK;
}

/* The signature digest follows the signing key: SHA-384 for P-384 keeps the
 * hash as strong as the curve (RFC 5480 §4, CNSA), EdDSA hashes internally
 * and takes no digest (RFC 8410 §6), everything else uses SHA-256. */
static const EVP_MD *digest_for(EVP_PKEY *key)
{
    if (EVP_PKEY_is_a(key, "ED25519") || EVP_PKEY_is_a(key, "ED448")) return NULL;
    if (EVP_PKEY_is_a(key, "EC") && EVP_PKEY_get_bits(key) >= 384) return EVP_sha384();
    return EVP_sha256();
}

/* RFC 5280 §4.1.2.2: positive, at most 20 octets, unique per CA. 128
 * random bits with the top one set make a fixed-length, never-zero serial
 * with 127 bits of entropy, far above the CA/Browser Forum's 64. */
static pc_result set_serial(X509 *cert)
{
    BIGNUM *bn = BN_new();
    ASN1_INTEGER *serial = NULL;
    bool ok = bn != NULL && BN_rand(bn, 128, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ANY) == 1 &&
              (serial = BN_to_ASN1_INTEGER(bn, NULL)) != NULL &&
              X509_set_serialNumber(cert, serial) == 1;
    ASN1_INTEGER_free(serial);
    BN_free(bn);
    return ok ? PC_OK : pc_fail_ossl("setting the serial number");
}

/* Validity starts five minutes ago so that a peer whose clock is a little
 * behind ours does not reject a certificate made a moment before. */
static pc_result set_validity(X509 *cert, uint32_t days)
{
    const long skew = -5 * 60;
    if (X509_gmtime_adj(X509_getm_notBefore(cert), skew) == NULL ||
        X509_time_adj_ex(X509_getm_notAfter(cert), (int)days, skew, NULL) == NULL)
        return pc_fail_ossl("setting the validity period");
    return PC_OK;
}

static pc_result add_conf_ext(X509 *cert, X509V3_CTX *ctx, int nid, const char *value)
{
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
    int ok = ext != NULL && X509_add_ext(cert, ext, -1) == 1;
    X509_EXTENSION_free(ext);
    if (!ok) return pc_fail_ossl(OBJ_nid2sn(nid));
    return PC_OK;
}

/* RFC 5280 §4.2.1.9 and §4.2.1.3: a CA signs certificates and CRLs only. */
static pc_result add_ca_exts(X509 *cert, X509V3_CTX *ctx)
{
    PC_GUARD(add_conf_ext(cert, ctx, NID_basic_constraints, "critical,CA:TRUE"));
    PC_GUARD(add_conf_ext(cert, ctx, NID_key_usage, "critical,keyCertSign,cRLSign"));
    return add_conf_ext(cert, ctx, NID_subject_key_identifier, "hash");
}

/* End-entity certificates: digitalSignature for the handshake signature;
 * an RSA server also gets keyEncipherment for TLS 1.2 RSA key transport
 * (RFC 5246 §7.4.7.1). The EKU limits the certificate to its TLS side. */
static pc_result add_leaf_exts(X509 *cert, X509V3_CTX *ctx, const pc_pki_cert_req *req)
{
    bool server = req->role == PC_PKI_ROLE_SERVER;
    bool rsa_server = server && EVP_PKEY_is_a(req->key, "RSA");
    PC_GUARD(add_conf_ext(cert, ctx, NID_basic_constraints, "critical,CA:FALSE"));
    PC_GUARD(add_conf_ext(cert, ctx, NID_key_usage,
                          rsa_server ? "critical,digitalSignature,keyEncipherment"
                                     : "critical,digitalSignature"));
    PC_GUARD(add_conf_ext(cert, ctx, NID_ext_key_usage, server ? "serverAuth" : "clientAuth"));
    PC_GUARD(add_conf_ext(cert, ctx, NID_subject_key_identifier, "hash"));
    /* RFC 5280 §4.2.1.1: the AKI may be omitted only when self-signed. */
    if (req->issuer != NULL)
        PC_GUARD(add_conf_ext(cert, ctx, NID_authority_key_identifier, "keyid:always"));
    return PC_OK;
}

static pc_result add_sans(X509 *cert, GENERAL_NAMES *sans)
{
    if (sans == NULL || sk_GENERAL_NAME_num(sans) == 0) return PC_OK;
    /* RFC 5280 §4.2.1.6: critical only when the subject is empty, and our
     * subjects never are. */
    if (X509_add1_ext_i2d(cert, NID_subject_alt_name, sans, 0, X509V3_ADD_APPEND) != 1)
        return pc_fail_ossl("subjectAltName");
    return PC_OK;
}

static pc_result fill_cert(X509 *cert, const pc_pki_cert_req *req)
{
    X509 *issuer = req->issuer ? req->issuer : cert;
    EVP_PKEY *sign_key = req->issuer ? req->issuer_key : req->key;
    PC_GUARD_OSSL(X509_set_version(cert, X509_VERSION_3), "X509_set_version");
    PC_GUARD(set_serial(cert));
    PC_GUARD(set_validity(cert, req->days));
    PC_GUARD_OSSL(X509_set_subject_name(cert, req->subject), "X509_set_subject_name");
    PC_GUARD_OSSL(X509_set_issuer_name(cert, X509_get_subject_name(issuer)),
                  "X509_set_issuer_name");
    PC_GUARD_OSSL(X509_set_pubkey(cert, req->key), "X509_set_pubkey");

    /* The subject's public key must be set before this: the SKI "hash"
     * method hashes it (RFC 5280 §4.2.1.2 method 1). */
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
    if (req->role == PC_PKI_ROLE_CA)
        PC_GUARD(add_ca_exts(cert, &ctx));
    else
        PC_GUARD(add_leaf_exts(cert, &ctx, req));
    PC_GUARD(add_sans(cert, req->sans));

    /* X509_sign returns the signature's length, not 1. */
    if (X509_sign(cert, sign_key, digest_for(sign_key)) <= 0)
        return pc_fail_ossl("signing the certificate");
    return PC_OK;
}

pc_result pc_pki_make_cert(const pc_pki_cert_req *req, X509 **out)
{
    PC_ENSURE(req->issuer == NULL || req->issuer_key != NULL, PC_ERR_INTERNAL,
              "an issuer certificate without its key");
    X509 *cert = X509_new();
    if (cert == NULL) return pc_fail_ossl("X509_new");
    pc_result r = fill_cert(cert, req);
    if (!pc_ok(r)) {
        X509_free(cert);
        return r;
    }
    *out = cert;
    return PC_OK;
}
