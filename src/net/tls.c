#include "net/tls.h"

#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>

/* For optional_no_ca: accept whatever chain the client sends. The outcome
 * of normal verification is still recorded (SSL_get_verify_result), so a
 * handler can tell CA-verified from self-signed and pin the latter by
 * thumbprint (RFC 8705 §2.2, self_signed_tls_client_auth). */
static int accept_any_cert(int preverify_ok, X509_STORE_CTX *ctx)
{
    (void)preverify_ok;
    (void)ctx;
    return 1;
}

/* "file:line:col: server.tls.KEY: what: why", or without the location
 * when the config came from memory. */
static pc_result file_fail(const pc_tls_config *cfg, int line, int col, const char *key,
                           const char *file, const char *what)
{
    char detail[256] = "unknown error";
    /* Walk the queue: a system error (errno) says most ("No such file or
     * directory"); otherwise the last reason ("key values mismatch"). */
    unsigned long e;
    const char *reason = NULL;
    bool sys = false;
    while ((e = ERR_get_error()) != 0) {
        if (ERR_SYSTEM_ERROR(e)) {
            snprintf(detail, sizeof detail, "%s", strerror(ERR_GET_REASON(e)));
            sys = true;
        } else if (ERR_reason_error_string(e)) {
            reason = ERR_reason_error_string(e);
        }
    }
    if (!sys && reason) snprintf(detail, sizeof detail, "%s", reason);
    ERR_clear_error();
    if (cfg->source && line > 0)
        return pc_fail(PC_ERR_USAGE, "%s:%d:%d: server.tls.%s: %s: %s (%s)", cfg->source, line,
                       col, key, file, what, detail);
    return pc_fail(PC_ERR_USAGE, "server.tls.%s: %s: %s (%s)", key, file, what, detail);
}

static pc_result load_client_cas(SSL_CTX *ctx, const pc_tls_config *cfg)
{
    STACK_OF(X509_NAME) *names = sk_X509_NAME_new_null();
    PC_ENSURE(names != NULL, PC_ERR_INTERNAL, "out of memory");
    for (size_t i = 0; i < cfg->n_client_ca_files; i++) {
        const char *f = cfg->client_ca_files[i];
        if (SSL_CTX_load_verify_locations(ctx, f, NULL) != 1 ||
            SSL_add_file_cert_subjects_to_stack(names, f) != 1) {
            sk_X509_NAME_pop_free(names, X509_NAME_free);
            return file_fail(cfg, cfg->ca_line, cfg->ca_col, "client_ca", f,
                             "cannot load CA certificates");
        }
    }
    /* The CA names we send in CertificateRequest let clients with several
     * certificates pick the right one. */
    SSL_CTX_set_client_CA_list(ctx, names);
    X509_STORE *store = SSL_CTX_get_cert_store(ctx);
    X509_STORE_set_flags(store, X509_V_FLAG_X509_STRICT);
    return PC_OK;
}

static pc_result configure(SSL_CTX *ctx, const pc_tls_config *cfg)
{
    int min = cfg->min_version == 13 ? TLS1_3_VERSION : TLS1_2_VERSION;
    PC_GUARD_OSSL(SSL_CTX_set_min_proto_version(ctx, min), "set min TLS version");
    PC_GUARD_OSSL(SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION), "set max TLS version");
    PC_GUARD_OSSL(SSL_CTX_set_cipher_list(ctx, PC_TLS12_CIPHERS), "TLS 1.2 cipher list");
    PC_GUARD_OSSL(SSL_CTX_set_ciphersuites(ctx, PC_TLS13_SUITES), "TLS 1.3 cipher suites");
    PC_GUARD_OSSL(SSL_CTX_set1_groups_list(ctx, PC_TLS_GROUPS), "TLS groups");
    SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_NO_COMPRESSION);
    /* NO_AUTO_CHAIN: send the chain from the cert file as given. Without it
     * OpenSSL rebuilds the server chain from the client-CA store on every
     * handshake when that store holds our issuer (measured: +240 us per
     * handshake, bench/README.md), as nginx also avoids. */
    /* RELEASE_BUFFERS: OpenSSL frees a connection's record buffers while
     * it is idle, as nginx has it (idle keep-alive memory, bench/gw). */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_NO_AUTO_CHAIN | SSL_MODE_RELEASE_BUFFERS);
    /* Read whole TLS records in one read(2) (PERF-NOTES: 5.8 -> 5.5 us). */
    SSL_CTX_set_read_ahead(ctx, 1);

    if (SSL_CTX_use_certificate_chain_file(ctx, cfg->cert_file) != 1)
        return file_fail(cfg, cfg->cert_line, cfg->cert_col, "cert", cfg->cert_file,
                         "cannot load a certificate chain");
    if (SSL_CTX_use_PrivateKey_file(ctx, cfg->key_file, SSL_FILETYPE_PEM) != 1) {
        /* OpenSSL checks the key against the certificate while loading
         * it: say which case this is. */
        unsigned long e = ERR_peek_last_error();
        if (ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH ||
            ERR_GET_REASON(e) == X509_R_KEY_TYPE_MISMATCH)
            return file_fail(cfg, cfg->key_line, cfg->key_col, "key", cfg->key_file,
                             "does not match server.tls.cert");
        return file_fail(cfg, cfg->key_line, cfg->key_col, "key", cfg->key_file,
                         "cannot load a private key");
    }
    if (SSL_CTX_check_private_key(ctx) != 1)
        return file_fail(cfg, cfg->key_line, cfg->key_col, "key", cfg->key_file,
                         "does not match server.tls.cert");

    /* Resumed sessions keep the client certificate, so they need a
     * session id context or OpenSSL refuses to resume them. */
    static const unsigned char sid_ctx[] = "portcullis";
    PC_GUARD_OSSL(SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof sid_ctx - 1),
                  "session id context");

    switch (cfg->client_cert) {
    case PC_CLIENT_CERT_OFF:
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
        break;
    case PC_CLIENT_CERT_OPTIONAL:
        PC_GUARD(load_client_cas(ctx, cfg));
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        break;
    case PC_CLIENT_CERT_REQUIRED:
        PC_GUARD(load_client_cas(ctx, cfg));
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
        break;
    case PC_CLIENT_CERT_OPTIONAL_NO_CA:
        if (cfg->n_client_ca_files > 0) PC_GUARD(load_client_cas(ctx, cfg));
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, accept_any_cert);
        break;
    default:
        return pc_fail(PC_ERR_INTERNAL, "unknown client_cert mode %d", (int)cfg->client_cert);
    }
    SSL_CTX_set_verify_depth(ctx, PC_TLS_MAX_VERIFY_DEPTH);
    return PC_OK;
}

pc_result pc_tls_server_ctx(const pc_tls_config *cfg, SSL_CTX **out)
{
    *out = NULL;
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) return pc_fail_ossl("SSL_CTX_new");
    pc_result r = configure(ctx, cfg);
    if (!pc_ok(r)) {
        SSL_CTX_free(ctx);
        return r;
    }
    *out = ctx;
    return PC_OK;
}

char *pc_tls_name_string(const X509_NAME *name)
{
    BIO *b = BIO_new(BIO_s_mem());
    if (b == NULL) return NULL;
    char *s = NULL;
    if (X509_NAME_print_ex(b, name, 0, XN_FLAG_RFC2253) >= 0) {
        char *data;
        long n = BIO_get_mem_data(b, &data);
        if (n >= 0) s = strndup(data, (size_t)n);
    }
    BIO_free(b);
    return s;
}

pc_result pc_tls_peer_load(SSL *ssl, pc_tls_peer *peer)
{
    memset(peer, 0, sizeof *peer);
    X509 *cert = SSL_get0_peer_certificate(ssl);
    if (cert == NULL) return PC_OK;
    peer->present = true;
    peer->ca_verified = SSL_get_verify_result(ssl) == X509_V_OK;
    PC_GUARD(pc_x5t_s256(cert, peer->x5t_s256));
    peer->subject = pc_tls_name_string(X509_get_subject_name(cert));
    peer->issuer = pc_tls_name_string(X509_get_issuer_name(cert));
    X509_up_ref(cert);
    peer->cert = cert;
    return PC_OK;
}

void pc_tls_peer_clear(pc_tls_peer *peer)
{
    free(peer->subject);
    free(peer->issuer);
    X509_free(peer->cert);
    memset(peer, 0, sizeof *peer);
}
