/* base64url without padding (RFC 4648 §5; JOSE's form, RFC 7515 §2).
 *
 * Both directions are table-driven and work on whole quanta (3 bytes <->
 * 4 characters) because tokens, DPoP proofs and JWK members are decoded on
 * every request. */
#include "jose/b64url.h"

#include "core/str.h"

#include <stdint.h>

static const char enc_alphabet[64] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Character -> 6-bit value. Every character outside the url alphabet,
 * including '=', '+', '/', whitespace and bytes >= 0x80, maps to BAD: the
 * decoder ORs the values of a whole string together and checks the BAD bit
 * once, so the loop has no per-character branch. */
#define BAD 0x80
static const uint8_t dec_table[256] = {
    0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
    0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
    0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x3e, 0x80, 0x80,
    0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x3b, 0x3c, 0x3d, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
    0x80, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e,
    0x0f, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x80, 0x80, 0x80, 0x80, 0x3f,
    0x80, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28,
    0x29, 0x2a, 0x2b, 0x2c, 0x2d, 0x2e, 0x2f, 0x30, 0x31, 0x32, 0x33, 0x80, 0x80, 0x80, 0x80, 0x80,
    0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
    0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
    0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
    0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
    0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
    0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
    0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
    0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
};

pc_result pc_b64url_encode(const uint8_t *in, size_t len, char *out, size_t cap,
                           size_t *out_len)
{
    /* The length formula multiplies by 4; refuse lengths where it would wrap. */
    PC_ENSURE(len <= (SIZE_MAX - 2) / 4, PC_ERR_INTERNAL, "base64url: input too long");
    size_t need = PC_B64URL_ENCODED_LEN(len);
    PC_ENSURE(out != NULL && cap > need, PC_ERR_INTERNAL,
              "base64url: output buffer too small (%zu bytes, need %zu)", cap, need + 1);

    size_t i = 0;
    char *o = out;
    for (; len - i >= 3; i += 3, o += 4) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        o[0] = enc_alphabet[v >> 18];
        o[1] = enc_alphabet[(v >> 12) & 63];
        o[2] = enc_alphabet[(v >> 6) & 63];
        o[3] = enc_alphabet[v & 63];
    }
    /* The final partial quantum: no '=' padding (RFC 7515 §2). */
    switch (len - i) {
    case 2: {
        uint32_t v = (uint32_t)in[i] << 8 | in[i + 1];
        *o++ = enc_alphabet[v >> 10];
        *o++ = enc_alphabet[(v >> 4) & 63];
        *o++ = enc_alphabet[(v << 2) & 63];
        break;
    }
    case 1:
        *o++ = enc_alphabet[in[i] >> 2];
        *o++ = enc_alphabet[(in[i] << 4) & 63];
        break;
    default: break;
    }
    *o = '\0';
    if (out_len) *out_len = (size_t)(o - out);
    return PC_OK;
}

/* Decoded size of a string of len characters, or SIZE_MAX if no string of
 * that length is valid (a lone trailing character carries only 6 bits, less
 * than a byte: RFC 4648 §3.5 calls such input invalid). */
static size_t decoded_len(size_t len)
{
    switch (len % 4) {
    case 0: return len / 4 * 3;
    case 2: return len / 4 * 3 + 1;
    case 3: return len / 4 * 3 + 2;
    default: return SIZE_MAX;
    }
}

/* Only reached on failure: find the first bad character for the message.
 * The character itself is not quoted, because the input may be a secret. */
static pc_result fail_bad_char(const char *in, size_t len)
{
    size_t at = 0;
    while (at < len && dec_table[(uint8_t)in[at]] != BAD) at++;
    return pc_fail(PC_ERR_PROTO, "base64url: invalid character at offset %zu", at);
}

/* Decode the final 2 or 3 characters. The bits below the last whole byte
 * must be zero (RFC 4648 §3.5): otherwise several strings would decode to
 * the same bytes, and a signature or thumbprint compared as text could be
 * varied without changing its meaning. */
static bool decode_tail(const uint8_t *p, size_t rem, uint8_t *o, uint32_t *bad)
{
    uint32_t a = dec_table[p[0]], b = dec_table[p[1]];
    if (rem == 2) {
        *bad |= a | b;
        o[0] = (uint8_t)(a << 2 | b >> 4);
        return (b & 0x0f) == 0;
    }
    uint32_t c = dec_table[p[2]];
    *bad |= a | b | c;
    uint32_t v = a << 12 | b << 6 | c;
    o[0] = (uint8_t)(v >> 10);
    o[1] = (uint8_t)(v >> 2);
    return (c & 0x03) == 0;
}

pc_result pc_b64url_decode(const char *in, size_t len, uint8_t *out, size_t cap,
                           size_t *out_len)
{
    if (out_len) *out_len = 0;
    size_t need = decoded_len(len);
    PC_ENSURE(need != SIZE_MAX, PC_ERR_PROTO, "base64url: invalid length %zu", len);
    /* The capacity is usually the size the protocol allows (a 32-byte hash,
     * a signature), so a longer value is the peer's fault, not ours. */
    PC_ENSURE(need <= cap, PC_ERR_PROTO,
              "base64url: decoded value too long (%zu bytes, at most %zu)", need, cap);

    const uint8_t *p = (const uint8_t *)in;
    uint8_t *o = out;
    uint32_t bad = 0;
    for (size_t n = len / 4; n > 0; n--, p += 4, o += 3) {
        uint32_t a = dec_table[p[0]], b = dec_table[p[1]], c = dec_table[p[2]],
                 d = dec_table[p[3]];
        bad |= a | b | c | d;
        uint32_t v = a << 18 | b << 12 | c << 6 | d;
        o[0] = (uint8_t)(v >> 16);
        o[1] = (uint8_t)(v >> 8);
        o[2] = (uint8_t)v;
    }
    bool canonical = len % 4 == 0 || decode_tail(p, len % 4, o, &bad);
    if (bad & BAD) {
        pc_wipe(out, need);
        return fail_bad_char(in, len);
    }
    if (!canonical) {
        pc_wipe(out, need);
        return pc_fail(PC_ERR_PROTO, "base64url: non-zero trailing bits in the last character");
    }
    if (out_len) *out_len = need;
    return PC_OK;
}
