/* Authorization header parsing, access_token parameters, scope checks. */
#include "core/str.h"
#include "gw/authz.h"

#include <string.h>
#include <strings.h>

/* RFC 7235 token68 characters (without the trailing '='), as a table: the
 * token is ~800 bytes on every request, and a table lookup per byte costs a
 * third of the chain of comparisons. */
static const bool token68[256] = {
    ['A' ... 'Z'] = true, ['a' ... 'z'] = true, ['0' ... '9'] = true,
    ['-'] = true, ['.'] = true, ['_'] = true, ['~'] = true, ['+'] = true, ['/'] = true,
};

static inline bool token68_char(char c) { return token68[(unsigned char)c]; }

pc_result pc_gw_parse_authorization(pc_str value, pc_gw_scheme *scheme, pc_str *token)
{
    *scheme = PC_GW_SCHEME_NONE;
    *token = PC_STR_NULL;
    size_t i = 0;
    while (i < value.len && value.ptr[i] != ' ') i++;
    pc_str name = {value.ptr, i};
    if (pc_str_eq_lit_ci(name, "bearer")) *scheme = PC_GW_SCHEME_BEARER;
    else if (pc_str_eq_lit_ci(name, "dpop")) *scheme = PC_GW_SCHEME_DPOP;
    else return pc_fail(PC_ERR_PROTO, "unsupported authorization scheme");
    size_t spaces = 0;
    while (i < value.len && value.ptr[i] == ' ') i++, spaces++;
    PC_ENSURE(spaces > 0 && i < value.len, PC_ERR_PROTO, "no access token after the scheme");
    size_t start = i;
    /* Four at a time first: the token is most of the header, and this
     * loop ran on every byte of every request. */
    const unsigned char *u = (const unsigned char *)value.ptr;
    while (i + 4 <= value.len && (token68[u[i]] & token68[u[i + 1]] & token68[u[i + 2]] & token68[u[i + 3]]))
        i += 4;
    while (i < value.len && token68_char(value.ptr[i])) i++;
    PC_ENSURE(i > start, PC_ERR_PROTO, "malformed access token");
    while (i < value.len && value.ptr[i] == '=') i++;
    /* Trailing whitespace was already trimmed by the HTTP layer; anything
     * left is a second parameter or a bad character. */
    PC_ENSURE(i == value.len, PC_ERR_PROTO, "malformed access token");
    PC_ENSURE(i - start <= PC_GW_MAX_TOKEN, PC_ERR_PROTO, "access token too long");
    *token = (pc_str){value.ptr + start, i - start};
    return PC_OK;
}

/* Percent-decode key into buf (cap bytes); false if it does not fit. */
static bool decode_key(pc_str key, char *buf, size_t cap, size_t *len)
{
    size_t o = 0;
    for (size_t k = 0; k < key.len; k++) {
        if (o == cap) return false;
        char c = key.ptr[k];
        if (c == '%' && key.len - k >= 3 && pc_hexval(key.ptr[k + 1]) >= 0 &&
            pc_hexval(key.ptr[k + 2]) >= 0) {
            c = (char)(pc_hexval(key.ptr[k + 1]) * 16 + pc_hexval(key.ptr[k + 2]));
            k += 2;
        } else if (c == '+') {
            c = ' ';
        }
        buf[o++] = c;
    }
    *len = o;
    return true;
}

bool pc_gw_has_access_token_param(pc_str q)
{
    static const char name[] = "access_token";
    size_t i = 0;
    while (i < q.len) {
        size_t start = i;
        while (i < q.len && q.ptr[i] != '&' && q.ptr[i] != ';') i++;
        /* "access_token" alone or "access_token=...", and percent-encoded
         * spellings of the name (a lenient upstream might decode them): a
         * client that tried is refused either way. */
        size_t eq = start;
        while (eq < i && q.ptr[eq] != '=') eq++;
        char dec[sizeof name];
        size_t dlen = 0;
        if (decode_key((pc_str){q.ptr + start, eq - start}, dec, sizeof dec, &dlen) &&
            dlen == sizeof name - 1 && pc_str_eq_lit_ci((pc_str){dec, dlen}, name))
            return true;
        i++;
    }
    return false;
}

bool pc_gw_scope_covers(pc_str scope, char *const *required, size_t n, const char **missing)
{
    *missing = NULL;
    for (size_t r = 0; r < n; r++) {
        pc_str want = pc_str_c(required[r]);
        bool found = false;
        size_t i = 0;
        /* scope = scope-token *( SP scope-token ), RFC 6749 §3.3; exact,
         * case-sensitive token comparison. */
        while (i < scope.len && !found) {
            size_t start = i;
            while (i < scope.len && scope.ptr[i] != ' ') i++;
            found = pc_str_eq((pc_str){scope.ptr + start, i - start}, want);
            i++;
        }
        if (!found) {
            *missing = required[r];
            return false;
        }
    }
    return true;
}

void pc_gw_challenge_text(const char *s, char *out, size_t cap)
{
    size_t o = 0;
    if (cap == 0) return;
    for (; s && *s && o + 1 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c >= 0x20 && c <= 0x7e && c != '"' && c != '\\') out[o++] = (char)c;
    }
    out[o] = '\0';
}

bool pc_gw_token_is_jwt(pc_str t)
{
    if (t.ptr == NULL) return false;
    size_t dots = 0;
    const char *p = t.ptr, *end = t.ptr + t.len;
    while (p < end && (p = memchr(p, '.', (size_t)(end - p))) != NULL) {
        dots++;
        p++;
    }
    return dots == 2;
}

const char *pc_gw_introspection_refusal(const json_t *answer, const char *issuer, int64_t now)
{
    if (answer == NULL) return "the access token is not active";
    const json_t *iss = json_object_get(answer, "iss");
    if (iss != NULL && (!json_is_string(iss) || strcmp(json_string_value(iss), issuer) != 0))
        return "the access token is not valid";
    const json_t *type = json_object_get(answer, "token_type");
    if (type != NULL && (!json_is_string(type) || (strcasecmp(json_string_value(type), "Bearer") != 0 &&
                                                   strcasecmp(json_string_value(type), "DPoP") != 0)))
        return "the access token is not valid";
    const json_t *exp = json_object_get(answer, "exp");
    if (exp != NULL && !json_is_integer(exp)) return "the access token is not valid";
    if (exp != NULL && json_integer_value(exp) <= now) return "the access token has expired";
    return NULL;
}
