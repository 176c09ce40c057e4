/* subjectAltName entries from "TYPE:value" strings (the prefixes OpenSSL's
 * configuration uses).
 *
 *   GeneralName ::= CHOICE {
 *        rfc822Name                      [1]     IA5String,
 *        dNSName                         [2]     IA5String,
 *        uniformResourceIdentifier       [6]     IA5String,
 *        iPAddress                       [7]     OCTET STRING, ... }
 *                                                    (RFC 5280 §4.2.1.6)
 *
 * Each value is checked against the form §4.2.1.6 requires, so that a
 * typo fails here instead of as a puzzling handshake failure later. */
#include "pki/pki_internal.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static bool is_alnum(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
}

/* Printable ASCII without space: IA5String allows more, but nothing else
 * belongs in a host name, an address or a URI. */
static bool is_graphic_ascii(const char *s)
{
    for (; *s; s++)
        if (*s <= ' ' || *s > '~') return false;
    return true;
}

/* A preferred-syntax host name (RFC 1034 §3.5, RFC 1123 §2.1): labels of
 * letters, digits and inner hyphens, 1 to 63 characters, at most 253 in
 * all. A leading "*." wildcard label is allowed (RFC 6125 §6.4.3). */
static bool is_dns_name(const char *s, bool allow_wildcard)
{
    size_t total = strlen(s);
    if (total == 0 || total > 253) return false;
    if (allow_wildcard && s[0] == '*' && s[1] == '.') s += 2;
    for (;;) {
        size_t len = 0;
        while (is_alnum(s[len]) || s[len] == '-') len++;
        if (len == 0 || len > 63 || s[0] == '-' || s[len - 1] == '-') return false;
        s += len;
        if (*s == '\0') return true;
        if (*s != '.') return false;
        s++;
    }
}

/* RFC 5280 §4.2.1.6: a URI must include a scheme and a scheme-specific
 * part (RFC 3986 §3.1: scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )). */
static bool is_uri(const char *s)
{
    if (!is_graphic_ascii(s) || !((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z')))
        return false;
    while (is_alnum(*s) || *s == '+' || *s == '-' || *s == '.') s++;
    return s[0] == ':' && s[1] != '\0';
}

/* RFC 5280 §4.2.1.6: an rfc822Name is a Mailbox, local-part "@" domain. */
static bool is_email(const char *s)
{
    const char *at = strrchr(s, '@');
    return is_graphic_ascii(s) && at != NULL && at != s && is_dns_name(at + 1, false);
}

static pc_result ia5_name(int type, const char *value, GENERAL_NAME *gn)
{
    ASN1_IA5STRING *ia5 = ASN1_IA5STRING_new();
    if (ia5 == NULL || ASN1_STRING_set(ia5, value, (int)strlen(value)) != 1) {
        ASN1_IA5STRING_free(ia5);
        return pc_fail_ossl("subjectAltName: ASN1_STRING_set");
    }
    GENERAL_NAME_set0_value(gn, type, ia5);
    return PC_OK;
}

static pc_result ip_name(const char *value, GENERAL_NAME *gn)
{
    /* RFC 5280 §4.2.1.6: four octets for IPv4, sixteen for IPv6, in
     * network byte order. */
    unsigned char addr[16];
    int len = 0;
    if (inet_pton(AF_INET, value, addr) == 1)
        len = 4;
    else if (inet_pton(AF_INET6, value, addr) == 1)
        len = 16;
    PC_ENSURE(len > 0, PC_ERR_USAGE, "SAN 'IP:%.100s': not an IPv4 or IPv6 address", value);
    ASN1_OCTET_STRING *os = ASN1_OCTET_STRING_new();
    if (os == NULL || ASN1_OCTET_STRING_set(os, addr, len) != 1) {
        ASN1_OCTET_STRING_free(os);
        return pc_fail_ossl("subjectAltName: ASN1_OCTET_STRING_set");
    }
    GENERAL_NAME_set0_value(gn, GEN_IPADD, os);
    return PC_OK;
}

static bool has_prefix(const char *s, const char *prefix, const char **rest)
{
    size_t n = strlen(prefix);
    if (strncasecmp(s, prefix, n) != 0) return false;
    *rest = s + n;
    return true;
}

/* Fill gn from one "TYPE:value" string. */
static pc_result fill_name(const char *san, GENERAL_NAME *gn)
{
    const char *v = NULL;
    if (has_prefix(san, "DNS:", &v)) {
        PC_ENSURE(is_dns_name(v, true), PC_ERR_USAGE, "SAN '%.100s': not a valid DNS name", san);
        return ia5_name(GEN_DNS, v, gn);
    }
    if (has_prefix(san, "IP:", &v)) return ip_name(v, gn);
    if (has_prefix(san, "URI:", &v)) {
        PC_ENSURE(is_uri(v), PC_ERR_USAGE,
                  "SAN '%.100s': not an absolute URI (scheme:rest, no spaces)", san);
        return ia5_name(GEN_URI, v, gn);
    }
    if (has_prefix(san, "email:", &v)) {
        PC_ENSURE(is_email(v), PC_ERR_USAGE, "SAN '%.100s': not an address like name@example.com",
                  san);
        return ia5_name(GEN_EMAIL, v, gn);
    }
    return pc_fail(PC_ERR_USAGE,
                   "SAN '%.100s': expected DNS:name, IP:address, URI:uri or email:address", san);
}

static pc_result add_name(const char *san, GENERAL_NAMES *names)
{
    PC_ENSURE(san != NULL, PC_ERR_USAGE, "SAN: empty entry");
    GENERAL_NAME *gn = GENERAL_NAME_new();
    if (gn == NULL) return pc_fail_ossl("subjectAltName: GENERAL_NAME_new");
    pc_result r = fill_name(san, gn);
    if (pc_ok(r) && sk_GENERAL_NAME_push(names, gn) <= 0)
        r = pc_fail_ossl("subjectAltName: sk_GENERAL_NAME_push");
    if (!pc_ok(r)) GENERAL_NAME_free(gn);
    return r;
}

pc_result pc_pki_parse_sans(const char **sans, size_t n, GENERAL_NAMES **out)
{
    PC_ENSURE(n <= PC_PKI_MAX_SANS, PC_ERR_USAGE, "more than %d SANs", PC_PKI_MAX_SANS);
    GENERAL_NAMES *names = sk_GENERAL_NAME_new_null();
    if (names == NULL) return pc_fail_ossl("subjectAltName: sk_GENERAL_NAME_new_null");
    for (size_t i = 0; i < n; i++) {
        pc_result r = add_name(sans[i], names);
        if (!pc_ok(r)) {
            GENERAL_NAMES_free(names);
            return r;
        }
    }
    *out = names;
    return PC_OK;
}
