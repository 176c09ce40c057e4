/* Trusted proxy ranges and the RFC 9440 Client-Cert header. */
#include "gw/peer.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdlib.h>
#include <string.h>

pc_result pc_gw_cidr_parse(const char *s, pc_gw_cidr *c)
{
    char addr[64];
    const char *slash = strchr(s, '/');
    size_t alen = slash ? (size_t)(slash - s) : strlen(s);
    memset(c, 0, sizeof *c);
    PC_ENSURE(alen > 0 && alen < sizeof addr, PC_ERR_USAGE, "not an address or CIDR: %s", s);
    memcpy(addr, s, alen);
    addr[alen] = '\0';
    if (inet_pton(AF_INET, addr, c->addr) == 1) {
        c->family = AF_INET;
        c->bits = 32;
    } else if (inet_pton(AF_INET6, addr, c->addr) == 1) {
        c->family = AF_INET6;
        c->bits = 128;
    } else {
        return pc_fail(PC_ERR_USAGE, "not an address or CIDR: %s", s);
    }
    if (slash == NULL) return PC_OK;
    char *end = NULL;
    unsigned long bits = strtoul(slash + 1, &end, 10);
    PC_ENSURE(slash[1] >= '0' && slash[1] <= '9' && *end == '\0' && bits <= c->bits, PC_ERR_USAGE,
              "not an address or CIDR: %s", s);
    c->bits = (unsigned)bits;
    return PC_OK;
}

bool pc_gw_cidr_match(const pc_gw_cidr *set, size_t n, const struct sockaddr *sa)
{
    uint8_t addr[16];
    int family = sa->sa_family;
    if (family == AF_INET) {
        memcpy(addr, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
    } else if (family == AF_INET6) {
        const uint8_t *a6 = ((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr.s6_addr;
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (memcmp(a6, mapped, 12) == 0) {
            family = AF_INET;
            memcpy(addr, a6 + 12, 4);
        } else {
            memcpy(addr, a6, 16);
        }
    } else {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        const pc_gw_cidr *c = &set[i];
        if (c->family != family) continue;
        unsigned full = c->bits / 8, rest = c->bits % 8;
        if (memcmp(addr, c->addr, full) != 0) continue;
        if (rest == 0) return true;
        uint8_t mask = (uint8_t)(0xff << (8 - rest));
        if ((addr[full] & mask) == (c->addr[full] & mask)) return true;
    }
    return false;
}

bool pc_gw_client_cert_x5t(pc_str v, char out[PC_X5T_S256_BUF])
{
    if (v.len < 3 || v.len > PC_GW_MAX_CERT_HEADER || v.ptr[0] != ':' || v.ptr[v.len - 1] != ':')
        return false;
    size_t b64 = v.len - 2;
    if (b64 % 4 != 0) return false;
    unsigned char *der = malloc(b64);
    if (der == NULL) return false;
    int n = EVP_DecodeBlock(der, (const unsigned char *)v.ptr + 1, (int)b64);
    bool ok = false;
    if (n > 0) {
        /* EVP_DecodeBlock counts the padding as zero bytes. */
        size_t len = (size_t)n;
        if (v.ptr[v.len - 2] == '=') len--;
        if (v.ptr[v.len - 3] == '=') len--;
        const unsigned char *p = der;
        X509 *cert = d2i_X509(NULL, &p, (long)len);
        ok = cert != NULL && p == der + len && pc_ok(pc_x5t_s256(cert, out));
        X509_free(cert);
    }
    free(der);
    return ok;
}
