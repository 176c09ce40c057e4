/* Unit tests for trusted proxy ranges and the RFC 9440 Client-Cert header
 * (src/gw/peer.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "gw/peer.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdlib.h>
#include <string.h>

static struct sockaddr_storage v4(const char *ip)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *a = (struct sockaddr_in *)&ss;
    a->sin_family = AF_INET;
    assert_int_equal(inet_pton(AF_INET, ip, &a->sin_addr), 1);
    return ss;
}

static struct sockaddr_storage v6(const char *ip)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
    a->sin6_family = AF_INET6;
    assert_int_equal(inet_pton(AF_INET6, ip, &a->sin6_addr), 1);
    return ss;
}

static bool in(const char *cidr, struct sockaddr_storage ss)
{
    pc_gw_cidr c;
    if (!pc_ok(pc_gw_cidr_parse(cidr, &c))) fail_msg("refused %s", cidr);
    return pc_gw_cidr_match(&c, 1, (const struct sockaddr *)&ss);
}

static void test_cidr_match(void **state)
{
    (void)state;
    assert_true(in("127.0.0.1/32", v4("127.0.0.1")));
    assert_false(in("127.0.0.1/32", v4("127.0.0.2")));
    assert_true(in("127.0.0.1", v4("127.0.0.1")));
    assert_true(in("10.0.0.0/8", v4("10.255.1.2")));
    assert_false(in("10.0.0.0/8", v4("11.0.0.1")));
    assert_true(in("192.168.1.128/25", v4("192.168.1.200")));
    assert_false(in("192.168.1.128/25", v4("192.168.1.127")));
    assert_true(in("0.0.0.0/0", v4("8.8.8.8")));
    assert_true(in("::1", v6("::1")));
    assert_false(in("::1", v6("::2")));
    assert_true(in("2001:db8::/32", v6("2001:db8:1::5")));
    assert_false(in("2001:db8::/32", v6("2001:db9::5")));
    /* an IPv4-mapped peer on a dual-stack listener matches IPv4 ranges */
    assert_true(in("127.0.0.0/8", v6("::ffff:127.0.0.9")));
    assert_false(in("::1", v4("127.0.0.1")));
    pc_gw_cidr set[2];
    assert_true(pc_ok(pc_gw_cidr_parse("10.0.0.0/8", &set[0])));
    assert_true(pc_ok(pc_gw_cidr_parse("::1", &set[1])));
    struct sockaddr_storage a = v6("::1"), b = v4("9.9.9.9");
    assert_true(pc_gw_cidr_match(set, 2, (const struct sockaddr *)&a));
    assert_false(pc_gw_cidr_match(set, 2, (const struct sockaddr *)&b));
    assert_false(pc_gw_cidr_match(set, 0, (const struct sockaddr *)&a));
    struct sockaddr_storage unix_sa;
    memset(&unix_sa, 0, sizeof unix_sa);
    unix_sa.ss_family = AF_UNIX;
    assert_false(pc_gw_cidr_match(set, 2, (const struct sockaddr *)&unix_sa));
}

static void test_cidr_refused(void **state)
{
    (void)state;
    const char *bad[] = {"", "/8", "10.0.0.0/33", "::/129", "10.0.0.0/", "10.0.0.0/-1",
                         "10.0.0.0/8x", "proxy.local", "10.0.0", "1.2.3.4/ 8"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        pc_gw_cidr c;
        if (pc_ok(pc_gw_cidr_parse(bad[i], &c))) fail_msg("accepted %s", bad[i]);
    }
}

/* A throwaway self-signed certificate, DER. */
static unsigned char *make_cert(int *len)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    assert_non_null(k);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, k);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *)"proxy-test", -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    assert_true(X509_sign(x, k, EVP_sha256()) > 0);
    unsigned char *der = NULL;
    *len = i2d_X509(x, &der);
    assert_true(*len > 0);
    X509_free(x);
    EVP_PKEY_free(k);
    return der;
}

static char *sf_binary(const unsigned char *der, int len, const char *suffix)
{
    size_t cap = 4 * ((size_t)len / 3 + 2) + 8 + strlen(suffix);
    char *v = malloc(cap);
    v[0] = ':';
    int n = EVP_EncodeBlock((unsigned char *)v + 1, der, len);
    strcpy(v + 1 + n, ":");
    strcat(v, suffix);
    return v;
}

static void test_client_cert_header(void **state)
{
    (void)state;
    int len = 0;
    unsigned char *der = make_cert(&len);
    const unsigned char *p = der;
    X509 *x = d2i_X509(NULL, &p, len);
    char want[PC_X5T_S256_BUF], got[PC_X5T_S256_BUF];
    assert_true(pc_ok(pc_x5t_s256(x, want)));
    X509_free(x);

    char *v = sf_binary(der, len, "");
    assert_true(pc_gw_client_cert_x5t(pc_str_c(v), got));
    assert_string_equal(got, want);
    free(v);

    /* trailing parameters or bytes, missing colons, bad base64 */
    v = sf_binary(der, len, ";a=1");
    assert_false(pc_gw_client_cert_x5t(pc_str_c(v), got));
    v[strlen(v) - 4] = '\0'; /* back to the good value */
    assert_true(pc_gw_client_cert_x5t(pc_str_c(v), got));
    v[3] = '!';
    assert_false(pc_gw_client_cert_x5t(pc_str_c(v), got));
    free(v);
    assert_false(pc_gw_client_cert_x5t(PC_STR(""), got));
    assert_false(pc_gw_client_cert_x5t(PC_STR("::"), got));
    assert_false(pc_gw_client_cert_x5t(PC_STR(":AAAA:"), got));
    assert_false(pc_gw_client_cert_x5t(PC_STR("AAAA"), got));
    assert_false(pc_gw_client_cert_x5t(PC_STR(":AAA:"), got));

    /* a certificate followed by extra DER bytes is refused */
    unsigned char *more = malloc((size_t)len + 3);
    memcpy(more, der, (size_t)len);
    memcpy(more + len, "\x05\x00\x00", 3);
    v = sf_binary(more, len + 3, "");
    assert_false(pc_gw_client_cert_x5t(pc_str_c(v), got));
    free(v);
    free(more);

    /* oversize */
    char *big = malloc(PC_GW_MAX_CERT_HEADER + 8);
    memset(big, 'A', PC_GW_MAX_CERT_HEADER + 4);
    big[0] = ':';
    big[PC_GW_MAX_CERT_HEADER + 3] = ':';
    assert_false(pc_gw_client_cert_x5t((pc_str){big, PC_GW_MAX_CERT_HEADER + 4}, got));
    free(big);
    OPENSSL_free(der);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cidr_match),
        cmocka_unit_test(test_cidr_refused),
        cmocka_unit_test(test_client_cert_header),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
