#include "core/str.h"

#include <openssl/crypto.h>

bool pc_str_eq(pc_str a, pc_str b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

static char lower(char c) { return (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c; }

bool pc_mem_eq_ci(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (lower(a[i]) != lower(b[i])) return false;
    return true;
}

static bool field_byte_ok(unsigned char c) { return c == '\t' || (c >= 0x20 && c != 0x7f); }

bool pc_field_value_ok(pc_str v)
{
    size_t i = 0;
    for (; i + 8 <= v.len; i += 8) {
        uint64_t w;
        memcpy(&w, v.ptr + i, sizeof w);
        if (!pc_word_has_less(w, 0x20) && !pc_word_has_byte(w, 0x7f)) continue;
        for (size_t j = i; j < i + 8; j++)
            if (!field_byte_ok((unsigned char)v.ptr[j])) return false;
    }
    for (; i < v.len; i++)
        if (!field_byte_ok((unsigned char)v.ptr[i])) return false;
    return true;
}

bool pc_ct_eq(const void *a, size_t alen, const void *b, size_t blen)
{
    /* Lengths of our secrets (hashes, nonces) are public; the contents are
     * not. CRYPTO_memcmp runs in time that depends only on the length. */
    if (alen != blen) return false;
    if (alen == 0) return true;
    return CRYPTO_memcmp(a, b, alen) == 0;
}

void pc_wipe(void *p, size_t n)
{
    if (p && n) OPENSSL_cleanse(p, n);
}
