/* The development PKI: every file it writes is loaded back and checked
 * with OpenSSL, and every refusal is exercised. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "pki/pki.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- fixtures: a fresh directory per test ----------------------------- */

static void remove_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL) return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode))
            remove_tree(path);
        else
            unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

static int make_dir(void **state)
{
    char *dir = strdup("/tmp/pc_test_pki_XXXXXX");
    if (dir == NULL || mkdtemp(dir) == NULL) return -1;
    *state = dir;
    return 0;
}

static int drop_dir(void **state)
{
    remove_tree(*state);
    free(*state);
    return 0;
}

/* ---- loading and inspecting ------------------------------------------- */

static void file_path(char *out, size_t cap, const char *dir, const char *name, const char *ext)
{
    snprintf(out, cap, "%s/%s.%s", dir, name, ext);
}

static bool exists(const char *dir, const char *name, const char *ext)
{
    char path[4096];
    file_path(path, sizeof path, dir, name, ext);
    return access(path, F_OK) == 0;
}

static X509 *load_cert(const char *dir, const char *name)
{
    char path[4096];
    file_path(path, sizeof path, dir, name, "pem");
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    X509 *cert = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    assert_non_null(cert);
    return cert;
}

static EVP_PKEY *load_key(const char *dir, const char *name)
{
    char path[4096];
    file_path(path, sizeof path, dir, name, "key");
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char first[64] = "";
    assert_non_null(fgets(first, sizeof first, f));
    /* PKCS #8 (RFC 5958), not a traditional per-algorithm format. */
    assert_string_equal(first, "-----BEGIN PRIVATE KEY-----\n");
    rewind(f);
    EVP_PKEY *key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    assert_non_null(key);
    return key;
}

static void subject_of(X509 *cert, char *out, size_t cap)
{
    BIO *bio = BIO_new(BIO_s_mem());
    assert_non_null(bio);
    assert_true(X509_NAME_print_ex(bio, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253) >= 0);
    int n = BIO_read(bio, out, (int)cap - 1);
    out[n > 0 ? n : 0] = '\0';
    BIO_free(bio);
}

static void assert_subject(X509 *cert, const char *want)
{
    char got[1024];
    subject_of(cert, got, sizeof got);
    assert_string_equal(got, want);
}

static int file_mode(const char *dir, const char *name, const char *ext)
{
    char path[4096];
    file_path(path, sizeof path, dir, name, ext);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return (int)(st.st_mode & 07777);
}

static bool ext_critical(X509 *cert, int nid)
{
    int at = X509_get_ext_by_NID(cert, nid, -1);
    assert_true(at >= 0);
    return X509_EXTENSION_get_critical(X509_get_ext(cert, at)) == 1;
}

static void assert_ec_curve(EVP_PKEY *key, const char *curve)
{
    char group[64];
    size_t len = 0;
    assert_true(EVP_PKEY_is_a(key, "EC"));
    assert_int_equal(EVP_PKEY_get_group_name(key, group, sizeof group, &len), 1);
    assert_string_equal(group, curve);
}

/* A leaf verifies against the CA alone, for the TLS side it is meant for. */
static int verify(X509 *ca, X509 *leaf, int purpose)
{
    X509_STORE *store = X509_STORE_new();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    assert_non_null(store);
    assert_non_null(ctx);
    assert_int_equal(X509_STORE_add_cert(store, ca), 1);
    assert_int_equal(X509_STORE_CTX_init(ctx, store, leaf, NULL), 1);
    assert_int_equal(X509_STORE_CTX_set_purpose(ctx, purpose), 1);
    int ok = X509_verify_cert(ctx);
    int err = X509_STORE_CTX_get_error(ctx);
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    return ok == 1 ? X509_V_OK : (err ? err : -1);
}

/* The SANs as "DNS:x" / "IP:x" / "URI:x" / "email:x" strings, joined by
 * spaces, so a test compares one string. */
static void sans_of(X509 *cert, char *out, size_t cap)
{
    out[0] = '\0';
    GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    if (names == NULL) return;
    size_t used = 0;
    for (int i = 0; i < sk_GENERAL_NAME_num(names); i++) {
        GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, i);
        int type = 0;
        ASN1_STRING *v = GENERAL_NAME_get0_value(gn, &type);
        char text[256] = "";
        const char *prefix = "?";
        if (type == GEN_IPADD) {
            prefix = "IP";
            int len = ASN1_STRING_length(v);
            assert_true(len == 4 || len == 16);
            inet_ntop(len == 4 ? AF_INET : AF_INET6, ASN1_STRING_get0_data(v), text, sizeof text);
        } else {
            prefix = type == GEN_DNS     ? "DNS"
                     : type == GEN_URI   ? "URI"
                     : type == GEN_EMAIL ? "email"
                                         : "?";
            snprintf(text, sizeof text, "%.*s", ASN1_STRING_length(v),
                     (const char *)ASN1_STRING_get0_data(v));
        }
        int n = snprintf(out + used, cap - used, "%s%s:%s", used ? " " : "", prefix, text);
        assert_true(n > 0 && (size_t)n < cap - used);
        used += (size_t)n;
    }
    GENERAL_NAMES_free(names);
}

/* notAfter - notBefore is exactly the validity asked for, and notBefore
 * is five minutes in the past (give or take the test's own run time). */
static void assert_validity(X509 *cert, int days)
{
    int d = 0, s = 0;
    const ASN1_TIME *nb = X509_get0_notBefore(cert), *na = X509_get0_notAfter(cert);
    assert_int_equal(ASN1_TIME_diff(&d, &s, nb, na), 1);
    assert_int_equal(d, days);
    assert_int_equal(s, 0);
    ASN1_TIME *now = ASN1_TIME_set(NULL, time(NULL));
    assert_non_null(now);
    assert_int_equal(ASN1_TIME_diff(&d, &s, nb, now), 1);
    ASN1_TIME_free(now);
    assert_int_equal(d, 0);
    assert_true(s >= 300 && s <= 360);
}

/* RFC 5280 §4.1.2.2 and our choice: 128-bit random, top bit set. */
static void assert_serial(X509 *cert)
{
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL);
    assert_non_null(bn);
    assert_int_equal(BN_num_bits(bn), 128);
    assert_false(BN_is_negative(bn));
    BN_free(bn);
}

static void assert_refused(pc_result r, pc_err err, const char *needle)
{
    assert_false(pc_ok(r));
    assert_int_equal(r.err, err);
    if (strstr(pc_errmsg(), needle) == NULL)
        fail_msg("message '%s' does not mention '%s'", pc_errmsg(), needle);
}

static void init_ca(const char *dir, pc_key_type type)
{
    pc_pki_issue ca = {.dir = dir, .key_type = type};
    pc_result r = pc_pki_init(&ca);
    if (!pc_ok(r)) fail_msg("pc_pki_init: %s", pc_errmsg());
}

/* ---- the happy path: a CA, a server, a client, a self-signed client --- */

static void check_ca(const char *dir)
{
    X509 *ca = load_cert(dir, "ca");
    EVP_PKEY *key = load_key(dir, "ca");
    assert_ec_curve(key, "prime256v1");
    assert_int_equal(X509_check_private_key(ca, key), 1);
    assert_subject(ca, "CN=portcullis development CA,O=portcullis dev");
    assert_int_equal(X509_NAME_cmp(X509_get_subject_name(ca), X509_get_issuer_name(ca)), 0);
    assert_int_equal(X509_get_version(ca), X509_VERSION_3);
    assert_int_equal(X509_check_ca(ca), 1);
    assert_true(X509_get_extension_flags(ca) & EXFLAG_CA);
    assert_true(ext_critical(ca, NID_basic_constraints));
    assert_true(ext_critical(ca, NID_key_usage));
    assert_int_equal(X509_get_key_usage(ca), KU_KEY_CERT_SIGN | KU_CRL_SIGN);
    assert_non_null(X509_get0_subject_key_id(ca));
    assert_int_equal(X509_verify(ca, key), 1);
    assert_int_equal(X509_get_signature_nid(ca), NID_ecdsa_with_SHA256);
    assert_validity(ca, 3650);
    assert_serial(ca);
    assert_int_equal(file_mode(dir, "ca", "key"), 0600);
    X509_free(ca);
    EVP_PKEY_free(key);
}

static void check_server(const char *dir, X509 *ca)
{
    X509 *cert = load_cert(dir, "server");
    EVP_PKEY *key = load_key(dir, "server");
    char sans[512];
    assert_ec_curve(key, "prime256v1");
    assert_int_equal(X509_check_private_key(cert, key), 1);
    assert_subject(cert, "CN=server");
    assert_int_equal(X509_check_ca(cert), 0);
    assert_true(X509_get_extended_key_usage(cert) & XKU_SSL_SERVER);
    assert_false(X509_get_extended_key_usage(cert) & XKU_SSL_CLIENT);
    assert_int_equal(X509_get_key_usage(cert), KU_DIGITAL_SIGNATURE);
    sans_of(cert, sans, sizeof sans);
    assert_string_equal(sans, "DNS:localhost IP:127.0.0.1 IP:::1");
    assert_non_null(X509_get0_subject_key_id(cert));
    assert_int_equal(ASN1_OCTET_STRING_cmp(X509_get0_authority_key_id(cert),
                                           X509_get0_subject_key_id(ca)),
                     0);
    assert_int_equal(verify(ca, cert, X509_PURPOSE_SSL_SERVER), X509_V_OK);
    assert_int_not_equal(verify(ca, cert, X509_PURPOSE_SSL_CLIENT), X509_V_OK);
    assert_validity(cert, 365);
    assert_serial(cert);
    assert_int_equal(file_mode(dir, "server", "key"), 0600);
    X509_free(cert);
    EVP_PKEY_free(key);
}

static void check_client(const char *dir, X509 *ca)
{
    X509 *cert = load_cert(dir, "acme");
    EVP_PKEY *key = load_key(dir, "acme");
    char sans[512];
    assert_int_equal(X509_check_private_key(cert, key), 1);
    assert_subject(cert, "CN=acme client,O=Acme Ltd,C=GB");
    /* RFC 4514 §2.1: the string's last RDN is the first in the DER. */
    X509_NAME *name = X509_get_subject_name(cert);
    assert_int_equal(X509_NAME_entry_count(name), 3);
    assert_int_equal(OBJ_obj2nid(X509_NAME_ENTRY_get_object(X509_NAME_get_entry(name, 0))),
                     NID_countryName);
    assert_true(X509_get_extended_key_usage(cert) & XKU_SSL_CLIENT);
    assert_false(X509_get_extended_key_usage(cert) & XKU_SSL_SERVER);
    sans_of(cert, sans, sizeof sans);
    assert_string_equal(sans, "DNS:acme.example IP:10.1.2.3 IP:2001:db8::1 "
                              "URI:https://acme.example/clients/42 email:ops@acme.example");
    assert_int_equal(verify(ca, cert, X509_PURPOSE_SSL_CLIENT), X509_V_OK);
    assert_int_not_equal(verify(ca, cert, X509_PURPOSE_SSL_SERVER), X509_V_OK);
    assert_validity(cert, 30);
    assert_int_equal(file_mode(dir, "acme", "key"), 0600);
    X509_free(cert);
    EVP_PKEY_free(key);
}

static void check_self_signed(const char *dir, X509 *ca)
{
    X509 *cert = load_cert(dir, "selfie");
    EVP_PKEY *key = load_key(dir, "selfie");
    assert_subject(cert, "CN=self client,O=Acme Ltd");
    assert_int_equal(X509_NAME_cmp(X509_get_subject_name(cert), X509_get_issuer_name(cert)), 0);
    assert_int_equal(X509_verify(cert, key), 1);
    assert_int_equal(X509_check_ca(cert), 0);
    assert_true(X509_get_extended_key_usage(cert) & XKU_SSL_CLIENT);
    assert_null(X509_get0_authority_key_id(cert));
    /* Not signed by the CA, so the CA does not vouch for it. */
    assert_int_not_equal(verify(ca, cert, X509_PURPOSE_SSL_CLIENT), X509_V_OK);
    X509_free(cert);
    EVP_PKEY_free(key);
}

static void test_full_set(void **state)
{
    const char *dir = *state;
    const char *client_sans[] = {"DNS:acme.example", "IP:10.1.2.3", "IP:2001:db8::1",
                                 "URI:https://acme.example/clients/42", "email:ops@acme.example"};
    pc_pki_issue server = {.dir = dir, .name = "server"};
    pc_pki_issue client = {.dir = dir, .name = "acme", .subject = "CN=acme client,O=Acme Ltd,C=GB",
                           .sans = client_sans, .n_sans = 5, .days = 30};
    pc_pki_issue self = {.dir = dir, .name = "selfie", .subject = "CN=self client,O=Acme Ltd"};

    init_ca(dir, PC_KEY_EC_P256);
    assert_true(pc_ok(pc_pki_issue_server(&server)));
    assert_true(pc_ok(pc_pki_issue_client(&client)));
    assert_true(pc_ok(pc_pki_issue_self_signed(&self)));

    X509 *ca = load_cert(dir, "ca");
    check_ca(dir);
    check_server(dir, ca);
    check_client(dir, ca);
    check_self_signed(dir, ca);
    X509_free(ca);
}

/* A self-signed client needs no CA, and no CA appears. */
static void test_self_signed_without_ca(void **state)
{
    const char *dir = *state;
    pc_pki_issue self = {.dir = dir, .name = "lonely"};
    assert_true(pc_ok(pc_pki_issue_self_signed(&self)));
    assert_true(exists(dir, "lonely", "pem"));
    assert_false(exists(dir, "ca", "pem"));
    X509 *cert = load_cert(dir, "lonely");
    assert_subject(cert, "CN=lonely");
    X509_free(cert);
}

/* ---- key types --------------------------------------------------------- */

static void test_rsa(void **state)
{
    const char *dir = *state;
    init_ca(dir, PC_KEY_RSA_3072);
    pc_pki_issue server = {.dir = dir, .name = "server", .key_type = PC_KEY_RSA_2048};
    pc_pki_issue client = {.dir = dir, .name = "client", .key_type = PC_KEY_RSA_2048};
    assert_true(pc_ok(pc_pki_issue_server(&server)));
    assert_true(pc_ok(pc_pki_issue_client(&client)));

    X509 *ca = load_cert(dir, "ca");
    X509 *srv = load_cert(dir, "server");
    X509 *cli = load_cert(dir, "client");
    EVP_PKEY *ca_key = load_key(dir, "ca"), *srv_key = load_key(dir, "server");
    assert_true(EVP_PKEY_is_a(ca_key, "RSA"));
    assert_int_equal(EVP_PKEY_get_bits(ca_key), 3072);
    assert_true(EVP_PKEY_is_a(srv_key, "RSA"));
    assert_int_equal(EVP_PKEY_get_bits(srv_key), 2048);
    assert_int_equal(X509_get_signature_nid(srv), NID_sha256WithRSAEncryption);
    /* TLS 1.2 RSA key transport needs keyEncipherment on an RSA server. */
    assert_int_equal(X509_get_key_usage(srv), KU_DIGITAL_SIGNATURE | KU_KEY_ENCIPHERMENT);
    assert_int_equal(X509_get_key_usage(cli), KU_DIGITAL_SIGNATURE);
    assert_int_equal(verify(ca, srv, X509_PURPOSE_SSL_SERVER), X509_V_OK);
    assert_int_equal(verify(ca, cli, X509_PURPOSE_SSL_CLIENT), X509_V_OK);
    X509_free(ca);
    X509_free(srv);
    X509_free(cli);
    EVP_PKEY_free(ca_key);
    EVP_PKEY_free(srv_key);
}

static void test_ed25519(void **state)
{
    const char *dir = *state;
    init_ca(dir, PC_KEY_ED25519);
    pc_pki_issue client = {.dir = dir, .name = "client", .key_type = PC_KEY_ED25519};
    pc_pki_issue self = {.dir = dir, .name = "self", .key_type = PC_KEY_ED25519};
    assert_true(pc_ok(pc_pki_issue_client(&client)));
    assert_true(pc_ok(pc_pki_issue_self_signed(&self)));

    X509 *ca = load_cert(dir, "ca"), *cli = load_cert(dir, "client"), *ss = load_cert(dir, "self");
    EVP_PKEY *key = load_key(dir, "client");
    assert_true(EVP_PKEY_is_a(key, "ED25519"));
    assert_int_equal(X509_get_signature_nid(ca), NID_ED25519);
    assert_int_equal(X509_get_signature_nid(cli), NID_ED25519);
    assert_int_equal(X509_get_signature_nid(ss), NID_ED25519);
    assert_int_equal(verify(ca, cli, X509_PURPOSE_SSL_CLIENT), X509_V_OK);
    X509_free(ca);
    X509_free(cli);
    X509_free(ss);
    EVP_PKEY_free(key);
}

/* The signature digest follows the CA's key: SHA-384 under a P-384 CA,
 * whatever the leaf's own key. */
static void test_p384(void **state)
{
    const char *dir = *state;
    init_ca(dir, PC_KEY_EC_P384);
    pc_pki_issue server = {.dir = dir, .name = "server"};
    assert_true(pc_ok(pc_pki_issue_server(&server)));
    X509 *ca = load_cert(dir, "ca"), *srv = load_cert(dir, "server");
    EVP_PKEY *ca_key = load_key(dir, "ca"), *srv_key = load_key(dir, "server");
    assert_ec_curve(ca_key, "secp384r1");
    assert_ec_curve(srv_key, "prime256v1");
    assert_int_equal(X509_get_signature_nid(ca), NID_ecdsa_with_SHA384);
    assert_int_equal(X509_get_signature_nid(srv), NID_ecdsa_with_SHA384);
    assert_int_equal(verify(ca, srv, X509_PURPOSE_SSL_SERVER), X509_V_OK);
    X509_free(ca);
    X509_free(srv);
    EVP_PKEY_free(ca_key);
    EVP_PKEY_free(srv_key);
}

static void test_key_type_parse(void **state)
{
    (void)state;
    pc_key_type t = PC_KEY_ED25519;
    assert_true(pc_ok(pc_key_type_parse("p256", &t)));
    assert_int_equal(t, PC_KEY_EC_P256);
    assert_true(pc_ok(pc_key_type_parse("p384", &t)));
    assert_int_equal(t, PC_KEY_EC_P384);
    assert_true(pc_ok(pc_key_type_parse("rsa2048", &t)));
    assert_int_equal(t, PC_KEY_RSA_2048);
    assert_true(pc_ok(pc_key_type_parse("rsa3072", &t)));
    assert_int_equal(t, PC_KEY_RSA_3072);
    assert_true(pc_ok(pc_key_type_parse("ed25519", &t)));
    assert_int_equal(t, PC_KEY_ED25519);
    assert_refused(pc_key_type_parse("rsa1024", &t), PC_ERR_USAGE, "rsa1024");
    assert_refused(pc_key_type_parse("", &t), PC_ERR_USAGE, "key type");
    assert_refused(pc_key_type_parse(NULL, &t), PC_ERR_USAGE, "key type");
}

/* ---- files: modes, refusal to overwrite, --force ----------------------- */

static void test_directory_created_0700(void **state)
{
    const char *dir = *state;
    char sub[4096];
    snprintf(sub, sizeof sub, "%s/var/pki", dir);
    init_ca(sub, PC_KEY_EC_P256);
    struct stat st;
    assert_int_equal(stat(sub, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    assert_int_equal(file_mode(sub, "ca", "key"), 0600);
    /* Nothing but the two files: no temporary file is left behind. */
    DIR *d = opendir(sub);
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) n += e->d_name[0] != '.';
    closedir(d);
    assert_int_equal(n, 2);
}

static void read_file(const char *dir, const char *name, const char *ext, char *out, size_t cap)
{
    char path[4096];
    file_path(path, sizeof path, dir, name, ext);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(out, 1, cap - 1, f);
    out[n] = '\0';
    fclose(f);
}

static void test_refuses_overwrite(void **state)
{
    const char *dir = *state;
    char before[8192], after[8192];
    init_ca(dir, PC_KEY_EC_P256);
    read_file(dir, "ca", "pem", before, sizeof before);

    pc_pki_issue ca = {.dir = dir};
    assert_refused(pc_pki_init(&ca), PC_ERR_IO, "ca.pem");
    read_file(dir, "ca", "pem", after, sizeof after);
    assert_string_equal(before, after);

    pc_pki_issue server = {.dir = dir, .name = "server"};
    assert_true(pc_ok(pc_pki_issue_server(&server)));
    assert_refused(pc_pki_issue_server(&server), PC_ERR_IO, "server.pem");

    /* A lone key file is protected too, and named. */
    pc_pki_issue client = {.dir = dir, .name = "orphan"};
    char path[4096];
    file_path(path, sizeof path, dir, "orphan", "key");
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fclose(f);
    assert_refused(pc_pki_issue_client(&client), PC_ERR_IO, "orphan.key");
    assert_false(exists(dir, "orphan", "pem"));

    /* With overwrite the CA is replaced. */
    ca.overwrite = true;
    assert_true(pc_ok(pc_pki_init(&ca)));
    read_file(dir, "ca", "pem", after, sizeof after);
    assert_string_not_equal(before, after);
    assert_int_equal(file_mode(dir, "ca", "key"), 0600);
}

static void test_needs_ca(void **state)
{
    const char *dir = *state;
    pc_pki_issue server = {.dir = dir, .name = "server"};
    assert_refused(pc_pki_issue_server(&server), PC_ERR_IO, "ca.pem");
    pc_pki_issue client = {.dir = dir, .name = "client"};
    assert_refused(pc_pki_issue_client(&client), PC_ERR_IO, "ca.pem");
    assert_false(exists(dir, "server", "pem"));
    assert_false(exists(dir, "server", "key"));
    assert_false(exists(dir, "client", "key"));
}

/* A CA key that does not belong to ca.pem is caught before signing. */
static void test_mismatched_ca_key(void **state)
{
    const char *dir = *state;
    init_ca(dir, PC_KEY_EC_P256);
    pc_pki_issue other = {.dir = dir, .name = "other"};
    assert_true(pc_ok(pc_pki_issue_self_signed(&other)));
    char from[4096], to[4096];
    file_path(from, sizeof from, dir, "other", "key");
    file_path(to, sizeof to, dir, "ca", "key");
    assert_int_equal(rename(from, to), 0);
    pc_pki_issue server = {.dir = dir, .name = "server"};
    assert_refused(pc_pki_issue_server(&server), PC_ERR_USAGE, "does not belong");
    /* And a leaf is not accepted as a CA. */
    file_path(from, sizeof from, dir, "other", "pem");
    file_path(to, sizeof to, dir, "ca", "pem");
    assert_int_equal(rename(from, to), 0);
    assert_refused(pc_pki_issue_server(&server), PC_ERR_USAGE, "not a CA");
}

/* ---- subjects ------------------------------------------------------------ */

static void issue_with_subject(const char *dir, const char *dn, const char *want)
{
    pc_pki_issue self = {.dir = dir, .name = "dn", .subject = dn, .overwrite = true};
    pc_result r = pc_pki_issue_self_signed(&self);
    if (!pc_ok(r)) fail_msg("subject '%s': %s", dn, pc_errmsg());
    X509 *cert = load_cert(dir, "dn");
    assert_subject(cert, want);
    X509_free(cert);
}

static void test_subjects(void **state)
{
    const char *dir = *state;
    issue_with_subject(dir, "CN=acme client,O=Acme Ltd,C=GB", "CN=acme client,O=Acme Ltd,C=GB");
    issue_with_subject(dir, "CN=Acme\\, Inc.,O=Acme", "CN=Acme\\, Inc.,O=Acme");
    issue_with_subject(dir, "CN = a , O = b", "CN=a,O=b");
    issue_with_subject(dir, "cn=lower,ou=Types,o=Are,c=gb", "CN=lower,OU=Types,O=Are,C=gb");
    issue_with_subject(dir, "CN=\\ padded\\ ", "CN=\\ padded\\ ");
    issue_with_subject(dir, "CN=a\\+b\\;c\\<d\\>e\\\"f\\\\g\\=h\\#i",
                       "CN=a\\+b\\;c\\<d\\>e\\\"f\\\\g=h#i");
    issue_with_subject(dir, "CN=caf\\C3\\A9", "CN=caf\\C3\\A9");
    issue_with_subject(dir,
                       "UID=u1,emailAddress=a@b.example,serialNumber=42,L=Leeds,ST=West Yorkshire,"
                       "DC=example,DC=com",
                       "UID=u1,emailAddress=a@b.example,serialNumber=42,L=Leeds,ST=West Yorkshire,"
                       "DC=example,DC=com");
}

static void test_bad_subjects(void **state)
{
    const char *dir = *state;
    static const struct {
        const char *dn;
        const char *needle;
    } bad[] = {
        {"", "empty"},
        {"   ", "empty"},
        {"CN", "'='"},
        {"CN=", "empty value"},
        {"=x", "attribute type"},
        {"FOO=bar", "unknown attribute type 'FOO'"},
        {"CN=a,2.5.4.3=b", "unknown attribute type"},
        {"CN=a,", "trailing"},
        {"CN=a,,O=b", "attribute type"},
        {"CN=a+O=b", "multi-valued"},
        {"C=GBR", "two-letter"},
        {"C=1X", "two-letter"},
        {"CN=#04024869", "hex"},
        {"CN=a\\qb", "bad escape"},
        {"CN=a\\", "bad escape"},
        {"CN=a;b", "escaped"},
        {"CN=a\"b", "escaped"},
        {"CN=a\\00b", "NUL"},
        {"CN=\\FF", "CN"},             /* not UTF-8 */
        {"emailAddress=\\C3\\A9@x", "emailAddress"}, /* IA5String only */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        pc_pki_issue self = {.dir = dir, .name = "bad", .subject = bad[i].dn};
        pc_result r = pc_pki_issue_self_signed(&self);
        if (pc_ok(r)) fail_msg("subject '%s' was accepted", bad[i].dn);
        assert_true(r.err == PC_ERR_USAGE || r.err == PC_ERR_CRYPTO);
        if (strstr(pc_errmsg(), bad[i].needle) == NULL)
            fail_msg("subject '%s': message '%s' lacks '%s'", bad[i].dn, pc_errmsg(),
                     bad[i].needle);
        assert_false(exists(dir, "bad", "pem"));
        assert_false(exists(dir, "bad", "key"));
    }
}

static void test_subject_limits(void **state)
{
    const char *dir = *state;
    char dn[2048] = "CN=x";
    for (int i = 0; i < 16; i++) strcat(dn, ",OU=y");
    pc_pki_issue self = {.dir = dir, .name = "big", .subject = dn};
    assert_refused(pc_pki_issue_self_signed(&self), PC_ERR_USAGE, "more than");

    char longval[512];
    memset(longval, 'a', sizeof longval);
    memcpy(longval, "CN=", 3);
    longval[sizeof longval - 1] = '\0';
    self.subject = longval;
    assert_refused(pc_pki_issue_self_signed(&self), PC_ERR_USAGE, "longer than");
    /* Within our limit but over X.520's 64 for CN: OpenSSL refuses it. */
    longval[3 + 100] = '\0';
    pc_result r = pc_pki_issue_self_signed(&self);
    assert_false(pc_ok(r));
    assert_non_null(strstr(pc_errmsg(), "CN"));
}

/* ---- SANs ---------------------------------------------------------------- */

static void test_bad_sans(void **state)
{
    const char *dir = *state;
    static const char *bad[] = {
        "DNS:", "DNS:-bad.example", "DNS:bad-.example", "DNS:a b.example", "DNS:a..b",
        "DNS:a.", "DNS:*", "DNS:x.*.example", "DNS:\xc3\xa9.example",
        "IP:", "IP:300.1.1.1", "IP:1.2.3", "IP:zz", "IP:::1::2", "IP:localhost",
        "URI:", "URI:no-scheme", "URI:https://a b", "URI:1http://x", "URI:https:",
        "email:", "email:nobody", "email:@example.com", "email:a@", "email:a b@example.com",
        "FTP:x", "dns", "localhost", "",
    };
    pc_pki_issue client = {.dir = dir, .name = "bad"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *sans[] = {"DNS:ok.example", bad[i]};
        client.sans = sans;
        client.n_sans = 2;
        pc_result r = pc_pki_issue_self_signed(&client);
        if (pc_ok(r)) fail_msg("SAN '%s' was accepted", bad[i]);
        assert_int_equal(r.err, PC_ERR_USAGE);
        assert_non_null(strstr(pc_errmsg(), "SAN"));
        assert_false(exists(dir, "bad", "pem"));
    }
    const char *null_san[] = {NULL};
    client.sans = null_san;
    client.n_sans = 1;
    assert_refused(pc_pki_issue_self_signed(&client), PC_ERR_USAGE, "SAN");
}

static void test_good_sans(void **state)
{
    const char *dir = *state;
    const char *sans[] = {"dns:*.wild.example", "DNS:x-1.example", "ip:192.0.2.1",
                          "URI:spiffe://trust.example/ns/a", "EMAIL:a.b+c@example.com"};
    pc_pki_issue server = {.dir = dir, .name = "s", .sans = sans, .n_sans = 5};
    assert_true(pc_ok(pc_pki_issue_self_signed(&server)));
    X509 *cert = load_cert(dir, "s");
    char got[512];
    sans_of(cert, got, sizeof got);
    assert_string_equal(got, "DNS:*.wild.example DNS:x-1.example IP:192.0.2.1 "
                             "URI:spiffe://trust.example/ns/a email:a.b+c@example.com");
    X509_free(cert);
}

/* A client without SANs has no subjectAltName extension at all. */
static void test_client_without_sans(void **state)
{
    const char *dir = *state;
    init_ca(dir, PC_KEY_EC_P256);
    pc_pki_issue client = {.dir = dir, .name = "plain"};
    assert_true(pc_ok(pc_pki_issue_client(&client)));
    X509 *cert = load_cert(dir, "plain");
    assert_int_equal(X509_get_ext_by_NID(cert, NID_subject_alt_name, -1), -1);
    assert_subject(cert, "CN=plain");
    X509_free(cert);
}

/* ---- option checks -------------------------------------------------------- */

static void test_bad_options(void **state)
{
    const char *dir = *state;
    init_ca(dir, PC_KEY_EC_P256);
    pc_pki_issue o = {.dir = dir, .name = "ca"};
    assert_refused(pc_pki_issue_client(&o), PC_ERR_USAGE, "reserved");
    assert_refused(pc_pki_issue_server(&o), PC_ERR_USAGE, "reserved");
    o.name = "../escape";
    assert_refused(pc_pki_issue_client(&o), PC_ERR_USAGE, "name");
    o.name = "a/b";
    assert_refused(pc_pki_issue_client(&o), PC_ERR_USAGE, "name");
    o.name = ".hidden";
    assert_refused(pc_pki_issue_client(&o), PC_ERR_USAGE, "name");
    o.name = NULL;
    assert_refused(pc_pki_issue_client(&o), PC_ERR_USAGE, "name");
    o.name = "ok";
    o.days = 36501;
    assert_refused(pc_pki_issue_client(&o), PC_ERR_USAGE, "days");
    o.days = 0;
    o.key_type = (pc_key_type)99;
    assert_refused(pc_pki_issue_client(&o), PC_ERR_USAGE, "key type");
    o.key_type = PC_KEY_EC_P256;
    o.dir = NULL;
    assert_refused(pc_pki_issue_client(&o), PC_ERR_USAGE, "directory");
    assert_refused(pc_pki_init(NULL), PC_ERR_USAGE, "directory");
    assert_false(exists(dir, "ok", "pem"));
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, make_dir, drop_dir)
    const struct CMUnitTest tests[] = {
        T(test_full_set),
        T(test_self_signed_without_ca),
        T(test_rsa),
        T(test_ed25519),
        T(test_p384),
        cmocka_unit_test(test_key_type_parse),
        T(test_directory_created_0700),
        T(test_refuses_overwrite),
        T(test_needs_ca),
        T(test_mismatched_ca_key),
        T(test_subjects),
        T(test_bad_subjects),
        T(test_subject_limits),
        T(test_bad_sans),
        T(test_good_sans),
        T(test_client_without_sans),
        T(test_bad_options),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
