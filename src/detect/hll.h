/* Distinct counting in constant space: a HyperLogLog sketch with an exact
 * small-set mode, and the keyed 64-bit hash that feeds it.
 *
 * Two modes in the same 256 bytes (as HLL++ does with its sparse form):
 *   - exact: up to PC_HLL_EXACT distinct 32-bit fingerprints of the hash
 *     (the count is exact but for fingerprint collisions, about n^2/2^33);
 *   - dense: PC_HLL_M one-byte registers (standard error 1.04/sqrt(256),
 *     6.5%; linear counting below 2.5 m, where it is far better).
 * Exactness for small counts matters: thresholds such as "more than 50
 * distinct identifiers" sit where a benign client's true count can be 50,
 * and a 6.5% error there would be false alerts.
 *
 * The estimate is cached and recomputed only when a register (or the
 * exact set) changes: detectors read it on every request. The register
 * sum is kept as an exact integer (sum of 2^(55 - r)) updated by the
 * difference, so a recompute is one division and, below 2.5 m, one log. */
#ifndef PC_DETECT_HLL_H
#define PC_DETECT_HLL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PC_HLL_P 8u
#define PC_HLL_M (1u << PC_HLL_P) /* 256 registers */
#define PC_HLL_EXACT 64u          /* fingerprints held in exact mode */

typedef struct pc_hll {
    uint32_t est;   /* cached estimate */
    uint16_t n;     /* exact mode: fingerprints held; PC_HLL_DENSE: dense */
    uint16_t zeros; /* dense: registers still zero */
    uint64_t sum;   /* dense: sum over registers of 2^(55 - r) */
    union {
        uint32_t fp[PC_HLL_EXACT];
        uint8_t reg[PC_HLL_M];
    } u;
} pc_hll;

#define PC_HLL_DENSE 0xffffu

void pc_hll_clear(pc_hll *h);
/* Add an element by its 64-bit hash. Returns whether the estimate may
 * have changed (a new fingerprint or a raised register). */
bool pc_hll_add(pc_hll *h, uint64_t hash);
/* The distinct count (cached: O(1)). */
static inline uint32_t pc_hll_count(const pc_hll *h) { return h->est; }

/* SipHash with c compression and d finalisation rounds over p[0..n) under
 * the 128-bit key k (written here from the SipHash paper's description). */
uint64_t pc_siphash(const uint64_t k[2], const void *p, size_t n, int c, int d);
/* The keyed hash the detectors use: SipHash-1-3. Keys are secret and
 * random per process, so neither the shard of a key nor the register of an
 * identifier can be chosen by a client. */
static inline uint64_t pc_hash64(const uint64_t k[2], const void *p, size_t n)
{
    return pc_siphash(k, p, n, 1, 3);
}

#endif
