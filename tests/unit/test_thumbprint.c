/* x5t#S256 (RFC 8705 §3.1): a known answer, agreement with an independent
 * computation over certificates the PKI code makes, and thread safety of
 * the once-only digest fetch. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "jose/b64url.h"
#include "jose/thumbprint.h"
#include "pki/pki.h"

#include <dirent.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* An Ed25519 self-signed certificate. Its thumbprint was computed apart
 * from this code: openssl x509 -outform DER | openssl dgst -sha256 -binary
 * | basenc --base64url, padding removed. */
static const char known_pem[] =
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBMDCB46ADAgECAhEA6y/z8X3AvYynxZPHNV3uAzAFBgMrZXAwDzENMAsGA1UE\n"
    "AwwEc2VsZjAeFw0yNjEyMDQxNjI5MDVaFw0yNzEyMDQxNjI5MDVaMA8xDTALBgNV\n"
    "BAMMBHNlbGYwKjAFBgMrZXADIQCR6fNNyD1yhk6wstQAtpnUk9ElVmT3GuXQOwpl\n"
    "L392LKNUMFIwDAYDVR0TAQH/BAIwADAOBgNVHQ8BAf8EBAMCB4AwEwYDVR0lBAww\n"
    "CgYIKwYBBQUHAwIwHQYDVR0OBBYEFNP6bTszX39EL+tFBO35RLdxrkUQMAUGAytl\n"
    "cANBAG/vyL4t+ZHmxsEaFKcMS6LBivz2sXbHO8qlCmU93Ts34jv6Bvu/rJchRYYy\n"
    "h2pKaQcpirTztKMeZ2PxuTrFngg=\n"
    "-----END CERTIFICATE-----\n";
static const char known_x5t[] = "E5X0CohuCm2d7XoyCo3CMEdrVW82JWMBfFv9ryrkniw";

static X509 *parse_pem(const char *pem)
{
    BIO *bio = BIO_new_mem_buf(pem, -1);
    assert_non_null(bio);
    X509 *cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    BIO_free(bio);
    assert_non_null(cert);
    return cert;
}

/* The reference computation: DER, SHA-256 through the one-shot EVP_Digest,
 * standard base64 via EVP_EncodeBlock, then the url alphabet without '='
 * (RFC 4648 §5). No code shared with pc_x5t_s256 or pc_b64url_encode. */
static void reference_x5t(X509 *cert, char out[PC_X5T_S256_BUF])
{
    unsigned char *der = NULL;
    int der_len = i2d_X509(cert, &der);
    assert_true(der_len > 0);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    assert_int_equal(EVP_Digest(der, (size_t)der_len, md, &md_len, EVP_sha256(), NULL), 1);
    OPENSSL_free(der);
    assert_int_equal(md_len, 32);
    unsigned char b64[64];
    int n = EVP_EncodeBlock(b64, md, (int)md_len);
    assert_int_equal(n, 44);
    assert_int_equal(b64[43], '=');
    for (int i = 0; i < 43; i++) {
        char c = (char)b64[i];
        out[i] = c == '+' ? '-' : c == '/' ? '_' : c;
    }
    out[43] = '\0';
}

static void test_known_answer(void **state)
{
    (void)state;
    X509 *cert = parse_pem(known_pem);
    char tp[PC_X5T_S256_BUF];
    assert_true(pc_ok(pc_x5t_s256(cert, tp)));
    assert_string_equal(tp, known_x5t);
    char ref[PC_X5T_S256_BUF];
    reference_x5t(cert, ref);
    assert_string_equal(ref, known_x5t);
    X509_free(cert);
}

static void test_shape(void **state)
{
    (void)state;
    X509 *cert = parse_pem(known_pem);
    char tp[PC_X5T_S256_BUF];
    memset(tp, 'x', sizeof tp);
    assert_true(pc_ok(pc_x5t_s256(cert, tp)));
    assert_int_equal(strlen(tp), PC_X5T_S256_LEN);
    uint8_t raw[33];
    size_t raw_len = 0;
    assert_true(pc_ok(pc_b64url_decode(tp, PC_X5T_S256_LEN, raw, sizeof raw, &raw_len)));
    assert_int_equal(raw_len, 32);
    X509_free(cert);
}

static void test_null_cert(void **state)
{
    (void)state;
    char tp[PC_X5T_S256_BUF];
    pc_result r = pc_x5t_s256(NULL, tp);
    assert_false(pc_ok(r));
    assert_int_equal(r.err, PC_ERR_INTERNAL);
}

/* ---- certificates made by the PKI code -------------------------------- */

static int remove_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL) return -1;
    struct dirent *e;
    char path[4096];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
    return rmdir(dir);
}

static int make_dir(void **state)
{
    char *dir = strdup("/tmp/pc_test_x5t_XXXXXX");
    if (dir == NULL || mkdtemp(dir) == NULL) return -1;
    *state = dir;
    return 0;
}

static int drop_dir(void **state)
{
    int r = remove_tree(*state);
    free(*state);
    return r;
}

static X509 *load_cert(const char *dir, const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.pem", dir, name);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    X509 *cert = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    assert_non_null(cert);
    return cert;
}

static void check_against_reference(const char *dir, const char *name, char tp[PC_X5T_S256_BUF])
{
    X509 *cert = load_cert(dir, name);
    char ref[PC_X5T_S256_BUF];
    assert_true(pc_ok(pc_x5t_s256(cert, tp)));
    reference_x5t(cert, ref);
    assert_string_equal(tp, ref);
    X509_free(cert);
}

static void test_pki_certificates(void **state)
{
    const char *dir = *state;
    const char *sans[] = {"DNS:client.example", "URI:https://client.example/id"};
    pc_pki_issue ca = {.dir = dir};
    pc_pki_issue client = {
        .dir = dir, .name = "client", .subject = "CN=acme client,O=Acme Ltd,C=GB",
        .sans = sans, .n_sans = 2,
    };
    pc_pki_issue self = {.dir = dir, .name = "self", .key_type = PC_KEY_ED25519};
    assert_true(pc_ok(pc_pki_init(&ca)));
    assert_true(pc_ok(pc_pki_issue_client(&client)));
    assert_true(pc_ok(pc_pki_issue_self_signed(&self)));

    char tp_ca[PC_X5T_S256_BUF], tp_client[PC_X5T_S256_BUF], tp_self[PC_X5T_S256_BUF];
    check_against_reference(dir, "ca", tp_ca);
    check_against_reference(dir, "client", tp_client);
    check_against_reference(dir, "self", tp_self);
    assert_string_not_equal(tp_ca, tp_client);
    assert_string_not_equal(tp_client, tp_self);
}

/* A reissued certificate for the same name and key type has a new
 * thumbprint (new key, new serial): a bound token stops matching. */
static void test_reissue_changes_thumbprint(void **state)
{
    const char *dir = *state;
    pc_pki_issue ca = {.dir = dir};
    pc_pki_issue client = {.dir = dir, .name = "client"};
    assert_true(pc_ok(pc_pki_init(&ca)));
    assert_true(pc_ok(pc_pki_issue_client(&client)));
    char first[PC_X5T_S256_BUF], second[PC_X5T_S256_BUF];
    check_against_reference(dir, "client", first);
    client.overwrite = true;
    assert_true(pc_ok(pc_pki_issue_client(&client)));
    check_against_reference(dir, "client", second);
    assert_string_not_equal(first, second);
}

/* ---- concurrency: the digest is fetched once, from any thread --------- */

#define N_THREADS 8
#define N_ROUNDS 200

static void *hash_many(void *arg)
{
    X509 *cert = arg;
    for (int i = 0; i < N_ROUNDS; i++) {
        char tp[PC_X5T_S256_BUF];
        if (!pc_ok(pc_x5t_s256(cert, tp)) || strcmp(tp, known_x5t) != 0) return (void *)1;
    }
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    X509 *cert = parse_pem(known_pem);
    pthread_t threads[N_THREADS];
    for (int i = 0; i < N_THREADS; i++)
        assert_int_equal(pthread_create(&threads[i], NULL, hash_many, cert), 0);
    int failures = 0;
    for (int i = 0; i < N_THREADS; i++) {
        void *ret = NULL;
        assert_int_equal(pthread_join(threads[i], &ret), 0);
        failures += ret != NULL;
    }
    assert_int_equal(failures, 0);
    X509_free(cert);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        /* First, so that the threads race to the first fetch. */
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_known_answer),
        cmocka_unit_test(test_shape),
        cmocka_unit_test(test_null_cert),
        cmocka_unit_test_setup_teardown(test_pki_certificates, make_dir, drop_dir),
        cmocka_unit_test_setup_teardown(test_reissue_changes_thumbprint, make_dir, drop_dir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
