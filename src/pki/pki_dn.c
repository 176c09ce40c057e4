/* Subject DNs from their RFC 4514 string form.
 *
 *   distinguishedName = [ relativeDistinguishedName
 *                         *( COMMA relativeDistinguishedName ) ]
 *   relativeDistinguishedName = attributeTypeAndValue
 *                               *( PLUS attributeTypeAndValue )
 *   attributeTypeAndValue = attributeType EQUALS attributeValue
 *   attributeValue = string / hexstring
 *   string = [ ( leadchar / pair ) [ *( stringchar / pair )
 *            ( trailchar / pair ) ] ]
 *   pair = ESC ( ESC / special / hexpair )
 *   special = escaped / SPACE / SHARP / EQUALS
 *   escaped = DQUOTE / PLUS / COMMA / SEMI / LANGLE / RANGLE
 *                                                      (RFC 4514 §3)
 *
 * This is a development tool, so two things are refused rather than
 * supported: multi-valued RDNs ('+') and hexstring values ('#04...'). Both
 * get a message saying so. Spaces around ',' and '=' are skipped, as
 * OpenSSL's one-line form ("CN = x, O = y") has them; a value's own leading
 * or trailing space must be escaped, as §2.4 says. */
#include "core/str.h"
#include "pki/pki_internal.h"

#include <openssl/objects.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

struct dn_type {
    const char *name;
    int nid;
};

static const struct dn_type dn_types[] = {
    {"CN", NID_commonName},
    {"O", NID_organizationName},
    {"OU", NID_organizationalUnitName},
    {"C", NID_countryName},
    {"L", NID_localityName},
    {"ST", NID_stateOrProvinceName},
    {"emailAddress", NID_pkcs9_emailAddress},
    {"serialNumber", NID_serialNumber},
    {"DC", NID_domainComponent},
    {"UID", NID_userId},
};
#define N_DN_TYPES (sizeof dn_types / sizeof dn_types[0])

struct dn_attr {
    const struct dn_type *type;
    char value[PC_PKI_MAX_DN_VALUE];
    size_t len;
};

/* The parse state: the whole string (for offsets in messages) and a
 * cursor into it. */
struct dn_cursor {
    const char *start;
    const char *p;
};

static size_t offset(const struct dn_cursor *c) { return (size_t)(c->p - c->start); }

static void skip_spaces(struct dn_cursor *c)
{
    while (*c->p == ' ') c->p++;
}

static const struct dn_type *find_type(const char *name, size_t len)
{
    /* Attribute type names are case-insensitive (RFC 4514 §3, RFC 4512
     * §1.4 "descr"). */
    for (size_t i = 0; i < N_DN_TYPES; i++)
        if (strlen(dn_types[i].name) == len && strncasecmp(dn_types[i].name, name, len) == 0)
            return &dn_types[i];
    return NULL;
}

static pc_result parse_type(struct dn_cursor *c, const struct dn_type **out)
{
    skip_spaces(c);
    const char *name = c->p;
    while (*c->p && *c->p != '=' && *c->p != ' ' && *c->p != ',') c->p++;
    size_t len = (size_t)(c->p - name);
    PC_ENSURE(len > 0, PC_ERR_USAGE, "subject: expected an attribute type at offset %zu",
              offset(c));
    *out = find_type(name, len);
    PC_ENSURE(*out != NULL, PC_ERR_USAGE,
              "subject: unknown attribute type '%.*s' (supported: CN, O, OU, C, L, ST, "
              "emailAddress, serialNumber, DC, UID)",
              (int)(len > 40 ? 40 : len), name);
    skip_spaces(c);
    PC_ENSURE(*c->p == '=', PC_ERR_USAGE, "subject: expected '=' after '%s' at offset %zu",
              (*out)->name, offset(c));
    c->p++;
    return PC_OK;
}

/* One "pair" (RFC 4514 §3): c->p is on the backslash. */
static pc_result parse_escape(struct dn_cursor *c, char *out)
{
    const char *esc = c->p++;
    int hi = pc_hexval((unsigned char)c->p[0]);
    int lo = hi < 0 ? -1 : pc_hexval((unsigned char)c->p[1]);
    if (lo >= 0) {
        /* A hexpair is one byte of the UTF-8 value, e.g. "\C3\A9". */
        PC_ENSURE(hi != 0 || lo != 0, PC_ERR_USAGE, "subject: '\\00' (NUL) at offset %zu",
                  (size_t)(esc - c->start));
        *out = (char)(hi << 4 | lo);
        c->p += 2;
        return PC_OK;
    }
    PC_ENSURE(*c->p != '\0' && strchr("\\\"+,;<> #=", *c->p) != NULL, PC_ERR_USAGE,
              "subject: bad escape at offset %zu (escape one of \\ \" + , ; < > space # = "
              "or write two hex digits)",
              (size_t)(esc - c->start));
    *out = *c->p++;
    return PC_OK;
}

/* Characters that end or break an unescaped value. */
static pc_result check_plain(const struct dn_cursor *c)
{
    switch (*c->p) {
    case '+':
        return pc_fail(PC_ERR_USAGE,
                       "subject: multi-valued RDNs are not supported ('+' at offset %zu; "
                       "write '\\+' for a literal plus)",
                       offset(c));
    case '"':
    case ';':
    case '<':
    case '>':
        return pc_fail(PC_ERR_USAGE, "subject: '%c' at offset %zu must be escaped as '\\%c'",
                       *c->p, offset(c), *c->p);
    default: return PC_OK;
    }
}

static pc_result parse_value(struct dn_cursor *c, struct dn_attr *attr)
{
    skip_spaces(c);
    PC_ENSURE(*c->p != '#', PC_ERR_USAGE,
              "subject: hex-encoded values ('#...') are not supported (offset %zu)", offset(c));
    size_t keep = 0; /* length without unescaped trailing spaces */
    attr->len = 0;
    while (*c->p != '\0' && *c->p != ',') {
        PC_ENSURE(attr->len < sizeof attr->value, PC_ERR_USAGE,
                  "subject: value of %s longer than %d bytes", attr->type->name,
                  PC_PKI_MAX_DN_VALUE);
        bool escaped = *c->p == '\\';
        if (escaped) {
            PC_GUARD(parse_escape(c, &attr->value[attr->len]));
        } else {
            PC_GUARD(check_plain(c));
            attr->value[attr->len] = *c->p++;
        }
        attr->len++;
        if (escaped || attr->value[attr->len - 1] != ' ') keep = attr->len;
    }
    attr->len = keep;
    PC_ENSURE(attr->len > 0, PC_ERR_USAGE, "subject: empty value for %s", attr->type->name);
    return PC_OK;
}

/* RFC 5280 §4.1.2.4 / X.520: countryName is a two-letter ISO 3166 code.
 * OpenSSL would refuse other lengths too, but with a less helpful message. */
static pc_result check_value(const struct dn_attr *attr)
{
    if (attr->type->nid != NID_countryName) return PC_OK;
    bool ok = attr->len == 2;
    for (size_t i = 0; ok && i < 2; i++)
        ok = (attr->value[i] >= 'A' && attr->value[i] <= 'Z') ||
             (attr->value[i] >= 'a' && attr->value[i] <= 'z');
    PC_ENSURE(ok, PC_ERR_USAGE, "subject: C must be a two-letter country code, not '%.*s'",
              (int)attr->len, attr->value);
    return PC_OK;
}

static pc_result parse_attrs(const char *dn, struct dn_attr *attrs, size_t *n)
{
    struct dn_cursor c = {dn, dn};
    *n = 0;
    skip_spaces(&c);
    PC_ENSURE(*c.p != '\0', PC_ERR_USAGE, "subject: empty DN");
    for (;;) {
        PC_ENSURE(*n < PC_PKI_MAX_DN_ATTRS, PC_ERR_USAGE, "subject: more than %d attributes",
                  PC_PKI_MAX_DN_ATTRS);
        struct dn_attr *attr = &attrs[*n];
        PC_GUARD(parse_type(&c, &attr->type));
        PC_GUARD(parse_value(&c, attr));
        PC_GUARD(check_value(attr));
        (*n)++;
        if (*c.p == '\0') return PC_OK;
        c.p++; /* the ',' that ended the value */
        skip_spaces(&c);
        PC_ENSURE(*c.p != '\0', PC_ERR_USAGE, "subject: trailing ',' at offset %zu",
                  offset(&c) - 1);
    }
}

/* Add the attributes, last first: RFC 4514 §2.1 writes the RDNSequence
 * from its last element to its first, so "CN=x,O=y,C=GB" is C, O, CN in
 * the certificate, and OpenSSL's RFC 2253 printer gives the string back. */
static pc_result build_name(const struct dn_attr *attrs, size_t n, X509_NAME *name)
{
    for (size_t i = n; i-- > 0;) {
        const struct dn_attr *a = &attrs[i];
        if (X509_NAME_add_entry_by_NID(name, a->type->nid, MBSTRING_UTF8,
                                       (const unsigned char *)a->value, (int)a->len, -1, 0) != 1) {
            char what[64];
            snprintf(what, sizeof what, "subject: value of %s", a->type->name);
            return pc_fail_ossl(what);
        }
    }
    return PC_OK;
}

pc_result pc_pki_parse_dn(const char *dn, X509_NAME **out)
{
    PC_ENSURE(dn != NULL, PC_ERR_USAGE, "subject: no DN given");
    struct dn_attr attrs[PC_PKI_MAX_DN_ATTRS];
    size_t n = 0;
    PC_GUARD(parse_attrs(dn, attrs, &n));

    X509_NAME *name = X509_NAME_new();
    if (name == NULL) return pc_fail_ossl("subject: X509_NAME_new");
    pc_result r = build_name(attrs, n, name);
    if (!pc_ok(r)) {
        X509_NAME_free(name);
        return r;
    }
    *out = name;
    return PC_OK;
}
