/* The rate limiter's memory bound, measured: the issue says rate-limit
 * state takes at most 64 bytes per key at 1,000,000 keys.
 *
 * Reads the resident set (/proc/self/statm) before making a limiter for
 * 1,000,000 keys, after 1,000,000 distinct keys have gone through
 * pc_rl_check, and after 1,000,000 more (every shard full and evicting),
 * and prints bytes per key by RSS growth and by pc_rl_bytes_per_key. Also
 * checks the eviction rule at that scale: a key refused before the flood,
 * certainly evicted by it, is still refused after it, while fresh keys are
 * not.
 *
 * Built on the release flavour and run by `make rl-memory` (part of
 * `make test`): the sanitizer build's shadow memory and allocator
 * redzones would measure ASan, not the limiter. Exits 1 if a figure is
 * above the bound or the eviction rule fails. */
#include "detect/ratelimit.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define KEYS 1000000u
#define BOUND 64.0
#define SEC 1000000LL

static long long rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long long size = 0, resident = -1;
    if (f == NULL) return -1;
    if (fscanf(f, "%lld %lld", &size, &resident) != 2) resident = -1;
    fclose(f);
    return resident < 0 ? -1 : resident * sysconf(_SC_PAGESIZE);
}

static double seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Distinct keys shaped like the real ones ("client|ip|route"). */
static void flood(pc_ratelimit *rl, const pc_rl_policy *p, unsigned from, unsigned n, int64_t t)
{
    char k[64];
    for (unsigned i = from; i < from + n; i++) {
        int len = snprintf(k, sizeof k, "client-%u|198.51.%u.%u|/token", i, (i >> 8) & 255, i & 255);
        (void)pc_rl_check(rl, (pc_str){k, (size_t)len}, p, t);
    }
}

int main(void)
{
    int fail = 0;
    double t0 = seconds();
    long long rss0 = rss_bytes();
    if (rss0 < 0) {
        fprintf(stderr, "rl_memory: cannot read /proc/self/statm\n");
        return 1;
    }
    pc_ratelimit *rl = NULL;
    if (!pc_ok(pc_rl_new(KEYS, &rl))) {
        fprintf(stderr, "rl_memory: pc_rl_new failed\n");
        return 1;
    }
    pc_rl_policy p = {"per-client", 10, 60, 0};
    int64_t t = 1000 * SEC;

    /* An abusive key, refused before the flood. */
    for (int i = 0; i < 10; i++) (void)pc_rl_check(rl, PC_STR("abuser|203.0.113.9|/token"), &p, t);
    if (pc_rl_check(rl, PC_STR("abuser|203.0.113.9|/token"), &p, t).allowed) {
        fprintf(stderr, "rl_memory: the abuser was not limited to begin with\n");
        fail = 1;
    }

    flood(rl, &p, 0, KEYS, t);
    long long rss1 = rss_bytes();
    size_t held1 = pc_rl_keys(rl);
    flood(rl, &p, KEYS, KEYS, t);
    long long rss2 = rss_bytes();
    size_t held2 = pc_rl_keys(rl);

    double by_rss1 = (double)(rss1 - rss0) / KEYS;
    double by_rss2 = (double)(rss2 - rss0) / KEYS;
    size_t computed = pc_rl_bytes_per_key(rl);
    printf("rate limiter, max_keys %u: keys held %zu after %u distinct keys, %zu after %u\n", KEYS,
           held1, KEYS, held2, 2 * KEYS);
    printf("  bytes/key by RSS growth: %.1f after the first million, %.1f after the second (evicting)\n",
           by_rss1, by_rss2);
    printf("  bytes/key computed (pc_rl_bytes_per_key): %zu\n", computed);
    printf("  bound: %.0f\n", BOUND);
    if (by_rss1 > BOUND || by_rss2 > BOUND || (double)computed > BOUND) {
        fprintf(stderr, "rl_memory: above the bound of %.0f bytes per key\n", BOUND);
        fail = 1;
    }

    /* Every shard has now taken about twice its capacity of fresh keys
     * since the abuser was last seen: it has been evicted. Within the
     * window it must still be refused, not handed a fresh bucket. */
    pc_rl_result r = pc_rl_check(rl, PC_STR("abuser|203.0.113.9|/token"), &p, t + SEC);
    printf("  abuser after the flood: %s (retry after %u s)\n", r.allowed ? "ALLOWED" : "refused",
           r.retry_after_s);
    if (r.allowed) {
        fprintf(stderr, "rl_memory: an evicted abusive key came back with a fresh bucket\n");
        fail = 1;
    }
    /* And the remembered state does not refuse everyone: fresh keys pass
     * (one could share the abuser's remembered slot: 1 in 262,144). */
    int fresh = 0;
    char k[32];
    for (int i = 0; i < 10; i++) {
        int len = snprintf(k, sizeof k, "newcomer-%d", i);
        fresh += pc_rl_check(rl, (pc_str){k, (size_t)len}, &p, t + SEC).allowed;
    }
    printf("  fresh keys after the flood allowed: %d of 10\n", fresh);
    if (fresh < 9) {
        fprintf(stderr, "rl_memory: fresh keys refused after the flood\n");
        fail = 1;
    }
    pc_rl_free(rl);
    printf("  %.2f s\n", seconds() - t0);
    return fail;
}
