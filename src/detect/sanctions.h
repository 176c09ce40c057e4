/* Sanctions: which clients are quarantined or throttled, until when.
 *
 * The actions of the detectors that outlast one request. Shared by all
 * workers and by the gateway and the token endpoint (a quarantined client
 * is refused at both), kept across reloads (a SIGHUP must not release
 * anyone). Bounded: at most max_clients entries; when full, the entry
 * ending soonest is dropped, never a newer one refused (an attacker
 * filling the table can only shorten other sanctions, and each of those
 * was already logged and alerted). Keys are client_ids. Pure: callers
 * pass the clock (unix microseconds). */
#ifndef PC_DETECT_SANCTIONS_H
#define PC_DETECT_SANCTIONS_H

#include "core/result.h"
#include "core/str.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PC_SANCTION_MAX_CLIENT 128u  /* longest client_id kept */
#define PC_SANCTION_MAX_REASON 96u   /* e.g. "enumeration" or "operator" */

typedef struct pc_sanction {
    char client_id[PC_SANCTION_MAX_CLIENT + 1];
    char reason[PC_SANCTION_MAX_REASON + 1]; /* quarantine: the detector that caused it */
    int64_t quarantined_at_us, quarantine_until_us; /* 0: not quarantined */
    int64_t throttle_until_us;                      /* 0: not throttled */
    double throttle_factor;                          /* quota multiplier while throttled, (0,1] */
} pc_sanction;

typedef struct pc_sanctions pc_sanctions;

PC_MUST_USE pc_result pc_sanctions_new(size_t max_clients, pc_sanctions **out);
void pc_sanctions_free(pc_sanctions *s);

/* Quarantine client until now + period (extends, never shortens, an
 * existing quarantine). */
void pc_sanctions_quarantine(pc_sanctions *s, pc_str client_id, const char *reason,
                             int64_t now_us, int64_t period_us);
/* Throttle client: multiply its rate-limit quotas by factor until now +
 * period (the lower factor and the later end win). */
void pc_sanctions_throttle(pc_sanctions *s, pc_str client_id, double factor, int64_t now_us,
                           int64_t period_us);
/* Is client quarantined at now? If so and until_us is not NULL, when it ends. */
bool pc_sanctions_quarantined(pc_sanctions *s, pc_str client_id, int64_t now_us,
                              int64_t *until_us);
/* The quota factor for client at now: 1.0 unless throttled. */
double pc_sanctions_factor(pc_sanctions *s, pc_str client_id, int64_t now_us);
/* Lift quarantine and throttle. Returns whether client had an active one. */
bool pc_sanctions_release(pc_sanctions *s, pc_str client_id, int64_t now_us);
/* Active sanctions at now, at most cap of them, ordered by client_id.
 * Returns how many were written. */
size_t pc_sanctions_list(pc_sanctions *s, int64_t now_us, pc_sanction *out, size_t cap);

#endif
