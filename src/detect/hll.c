#include "detect/hll.h"

#include <math.h>
#include <string.h>

#define RHO_MAX 55u /* registers saturate here: counts near 2^60 do not occur */

void pc_hll_clear(pc_hll *h)
{
    memset(h, 0, sizeof *h);
}

static unsigned rho_of(uint64_t w, unsigned bits)
{
    /* Position of the first 1 bit in the top `bits` bits of w, from 1;
     * bits + 1 when they are all zero; at most RHO_MAX. */
    unsigned r = w == 0 ? bits + 1 : (unsigned)__builtin_clzll(w) + 1;
    if (r > bits + 1) r = bits + 1;
    return r > RHO_MAX ? RHO_MAX : r;
}

static void recompute(pc_hll *h)
{
    const double m = PC_HLL_M;
    uint32_t before = h->est;
    if (h->zeros > 0) {
        /* Linear counting while it is the better estimator (below 2.5 m,
         * as in the HyperLogLog paper's small-range correction). */
        double lc = m * log(m / (double)h->zeros);
        if (lc <= 2.5 * m) {
            h->est = (uint32_t)(lc + 0.5);
            goto floor;
        }
    }
    {
        const double alpha = 0.7213 / (1.0 + 1.079 / m);
        double z = (double)h->sum / (double)(1ull << RHO_MAX); /* sum of 2^-r */
        double e = alpha * m * m / z;
        h->est = e > 4e9 ? 4000000000u : (uint32_t)(e + 0.5);
    }
floor:
    /* Dense mode starts after PC_HLL_EXACT + 1 distinct were seen exactly:
     * never report fewer (the estimate must not drop when the mode
     * changes). */
    if (h->est < PC_HLL_EXACT + 1) h->est = PC_HLL_EXACT + 1;
    /* Registers only grow, so the count should too; the switch from linear
     * counting to the raw estimate at 2.5 m can step back a little. Keep
     * the larger: thresholds are crossed once, not back and forth. */
    if (h->est < before) h->est = before;
}

static bool dense_add(pc_hll *h, unsigned idx, unsigned r)
{
    uint8_t old = h->u.reg[idx];
    if (r <= old) return false;
    h->u.reg[idx] = (uint8_t)r;
    h->sum -= 1ull << (RHO_MAX - old);
    h->sum += 1ull << (RHO_MAX - r);
    if (old == 0) h->zeros--;
    return true;
}

static void to_dense(pc_hll *h)
{
    uint32_t fp[PC_HLL_EXACT];
    unsigned n = h->n;
    memcpy(fp, h->u.fp, sizeof fp);
    memset(h->u.reg, 0, sizeof h->u.reg);
    h->n = PC_HLL_DENSE;
    h->zeros = PC_HLL_M;
    h->sum = (uint64_t)PC_HLL_M << RHO_MAX;
    /* A fingerprint is the hash's top 32 bits: the register index and the
     * first 24 bits of the rest, enough for any rho below 25. */
    for (unsigned i = 0; i < n; i++)
        (void)dense_add(h, fp[i] >> (32 - PC_HLL_P),
                        rho_of((uint64_t)fp[i] << (32 + PC_HLL_P), 32 - PC_HLL_P));
}

bool pc_hll_add(pc_hll *h, uint64_t hash)
{
    if (h->n != PC_HLL_DENSE) {
        uint32_t f = (uint32_t)(hash >> 32);
        for (unsigned i = 0; i < h->n; i++)
            if (h->u.fp[i] == f) return false;
        if (h->n < PC_HLL_EXACT) {
            h->u.fp[h->n++] = f;
            h->est = h->n;
            return true;
        }
        to_dense(h);
    }
    bool changed = dense_add(h, (unsigned)(hash >> (64 - PC_HLL_P)),
                             rho_of(hash << PC_HLL_P, 64 - PC_HLL_P));
    if (changed || h->est <= PC_HLL_EXACT) recompute(h);
    return changed;
}

/* ---- SipHash ------------------------------------------------------------ */

static inline uint64_t rotl(uint64_t x, int b) { return (x << b) | (x >> (64 - b)); }

#define SIPROUND                                                                                   \
    do {                                                                                           \
        v0 += v1; v1 = rotl(v1, 13); v1 ^= v0; v0 = rotl(v0, 32);                                 \
        v2 += v3; v3 = rotl(v3, 16); v3 ^= v2;                                                    \
        v0 += v3; v3 = rotl(v3, 21); v3 ^= v0;                                                    \
        v2 += v1; v1 = rotl(v1, 17); v1 ^= v2; v2 = rotl(v2, 32);                                 \
    } while (0)

static inline uint64_t load_le64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

uint64_t pc_siphash(const uint64_t k[2], const void *p, size_t n, int c, int d)
{
    const unsigned char *in = p;
    uint64_t v0 = k[0] ^ 0x736f6d6570736575ull;
    uint64_t v1 = k[1] ^ 0x646f72616e646f6dull;
    uint64_t v2 = k[0] ^ 0x6c7967656e657261ull;
    uint64_t v3 = k[1] ^ 0x7465646279746573ull;
    size_t whole = n & ~(size_t)7;
    for (size_t i = 0; i < whole; i += 8) {
        uint64_t m = load_le64(in + i);
        v3 ^= m;
        for (int r = 0; r < c; r++) SIPROUND;
        v0 ^= m;
    }
    uint64_t b = (uint64_t)n << 56;
    for (size_t i = 0; i < (n & 7); i++) b |= (uint64_t)in[whole + i] << (8 * i);
    v3 ^= b;
    for (int r = 0; r < c; r++) SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    for (int r = 0; r < d; r++) SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}
