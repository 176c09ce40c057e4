/* Failure throttling for client authentication: counts failures per key
 * (client_id, client IP) in one-minute windows and says when a key is over
 * its limit. A count-min sketch (two rows of counters, hashed
 * independently, the smaller count wins): fixed memory whatever the number
 * of keys, shared by all workers, and collisions can only over-count, so it
 * fails towards refusing, never towards letting a brute force through.
 * The full rate limiter (issue: abuse resistance) will replace this. */
#ifndef PC_AS_THROTTLE_H
#define PC_AS_THROTTLE_H

#include "core/result.h"
#include "core/str.h"

#include <stdbool.h>
#include <stdint.h>

#define PC_THROTTLE_SLOTS 4096u /* per row; 2 rows of 16-byte slots = 128 KiB */
#define PC_THROTTLE_WINDOW_S 60

typedef struct pc_throttle pc_throttle;

PC_MUST_USE pc_result pc_throttle_new(pc_throttle **out);
void pc_throttle_free(pc_throttle *t);
/* Count one failure for key. */
void pc_throttle_hit(pc_throttle *t, pc_str key, int64_t now);
/* Failures for key in the current window (an over-estimate at worst). */
uint32_t pc_throttle_count(pc_throttle *t, pc_str key, int64_t now);
/* Seconds until the current window ends. */
int64_t pc_throttle_retry_after(int64_t now);

#endif
