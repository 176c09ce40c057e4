#include "as/throttle.h"

#include <openssl/rand.h>
#include <pthread.h>
#include <stdlib.h>

#define ROWS 2
#define LOCKS 16u

typedef struct slot {
    int64_t window; /* start of the minute this count belongs to */
    uint32_t count;
} slot;

struct pc_throttle {
    pthread_mutex_t mu[LOCKS];
    uint64_t seed[ROWS]; /* random: keys cannot be aimed at a victim's slot */
    slot rows[ROWS][PC_THROTTLE_SLOTS];
};

pc_result pc_throttle_new(pc_throttle **out)
{
    pc_throttle *t = calloc(1, sizeof *t);
    PC_ENSURE(t != NULL, PC_ERR_INTERNAL, "out of memory");
    for (size_t i = 0; i < LOCKS; i++) pthread_mutex_init(&t->mu[i], NULL);
    if (RAND_bytes((unsigned char *)t->seed, sizeof t->seed) != 1) {
        pc_throttle_free(t);
        return pc_fail_ossl("RAND_bytes");
    }
    *out = t;
    return PC_OK;
}

void pc_throttle_free(pc_throttle *t)
{
    if (t == NULL) return;
    for (size_t i = 0; i < LOCKS; i++) pthread_mutex_destroy(&t->mu[i]);
    free(t);
}

static uint32_t slot_of(const pc_throttle *t, int row, pc_str key)
{
    /* FNV-1a with a secret seed; enough to spread keys, and the seed stops
     * an attacker from choosing keys that collide with a victim's. */
    uint64_t h = 1469598103934665603ull ^ t->seed[row];
    for (size_t i = 0; i < key.len; i++) h = (h ^ (uint8_t)key.ptr[i]) * 1099511628211ull;
    h ^= h >> 29;
    return (uint32_t)(h % PC_THROTTLE_SLOTS);
}

static int64_t window_of(int64_t now) { return now - now % PC_THROTTLE_WINDOW_S; }

int64_t pc_throttle_retry_after(int64_t now) { return window_of(now) + PC_THROTTLE_WINDOW_S - now; }

void pc_throttle_hit(pc_throttle *t, pc_str key, int64_t now)
{
    int64_t w = window_of(now);
    for (int r = 0; r < ROWS; r++) {
        uint32_t s = slot_of(t, r, key);
        pthread_mutex_lock(&t->mu[s % LOCKS]);
        slot *sl = &t->rows[r][s];
        if (sl->window != w) {
            sl->window = w;
            sl->count = 0;
        }
        if (sl->count < UINT32_MAX) sl->count++;
        pthread_mutex_unlock(&t->mu[s % LOCKS]);
    }
}

uint32_t pc_throttle_count(pc_throttle *t, pc_str key, int64_t now)
{
    int64_t w = window_of(now);
    uint32_t min = UINT32_MAX;
    for (int r = 0; r < ROWS; r++) {
        uint32_t s = slot_of(t, r, key);
        pthread_mutex_lock(&t->mu[s % LOCKS]);
        const slot *sl = &t->rows[r][s];
        uint32_t c = sl->window == w ? sl->count : 0;
        pthread_mutex_unlock(&t->mu[s % LOCKS]);
        if (c < min) min = c;
    }
    return min;
}
