/* Per-key detector state and each detector's update function (internal to
 * src/detect). Each update function is pure: it reads and writes only its
 * slice of one key's state, takes the clock as an argument and reports
 * whether its rule holds now (writing the evidence). The table in detect.c
 * owns locking, key lifetime and cooldowns. */
#ifndef PC_DETECT_DET_INTERNAL_H
#define PC_DETECT_DET_INTERNAL_H

#include "detect/detect.h"
#include "detect/hll.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* EWMA weight of the newest window in the enumeration baseline (about ten
 * windows of memory: 50 min at the default 5 min window). */
#define PC_DET_BASELINE_ALPHA 0.1
/* Windows folded into the baseline before the baseline rule may fire. */
#define PC_DET_BASELINE_MIN_WINDOWS 2u
/* Recently seen certificate thumbprints and client addresses per key. */
#define PC_DET_CERTS 8u
#define PC_DET_IPS 16u

typedef struct det_enum_slot {
    pc_hll hll;          /* distinct identifiers in the current window */
    uint32_t requests;   /* identifier requests in the current window */
    uint32_t windows;    /* windows folded into the baseline */
    double baseline;     /* EWMA of distinct per window (windows that did not fire) */
    uint32_t seq_run;    /* length of the current sequential walk */
    uint32_t ord_run;    /* length of the current strictly ordered walk */
    int8_t seq_dir;      /* +1 ascending, -1 descending, 0 none yet */
    int8_t ord_dir;
    bool fired;          /* a rule held in this window: keep it out of the baseline */
    bool last_num_ok;    /* last identifier read as a base-36 number */
    uint8_t last_len;    /* 0: no last identifier */
    uint64_t last_num;
    char last[PC_DET_MAX_ID];
} det_enum_slot;

typedef struct det_enum {
    bool started;
    int64_t win_start;
    det_enum_slot slot[PC_DET_ID_SLOTS];
} det_enum;

typedef struct det_probe {
    bool started;
    int64_t win_start;
    uint32_t total, bad;
} det_probe;

typedef struct det_volume {
    bool started, fired;   /* fired: this interval stays out of the baseline */
    int64_t start;         /* current interval's start */
    uint32_t count;        /* requests in the current interval */
    uint32_t intervals;    /* intervals folded into mean/var */
    double mean, var;
} det_volume;

enum { DET_CR_AUTH = 0, DET_CR_REPLAY, DET_CR_MISMATCH, DET_CR_NEW_CERT, DET_CR_NEW_IP, DET_CR_N };

typedef struct det_seen {
    uint64_t h;   /* keyed hash of the thumbprint or address */
    int64_t at;   /* last seen (for replacing the least recently seen) */
} det_seen;

typedef struct det_cred {
    bool started;
    uint8_t ncert, nip;
    int64_t win_start;
    uint32_t n[DET_CR_N];
    det_seen cert[PC_DET_CERTS];
    det_seen ip[PC_DET_IPS];
} det_cred;

typedef struct det_state {
    int64_t first_us; /* first seen: the key's age decides learning */
    int64_t quiet_until[PC_DET_KINDS];
    det_enum en;
    det_probe pr;
    det_volume vo;
    det_cred cr;
} det_state;

/* Advance a tumbling window starting at *start of len_us to the one holding
 * now. Returns how many windows ended (0: still the same one). A clock that
 * went backwards stays in the current window. */
static inline int64_t pc_det_roll(int64_t *start, int64_t len_us, int64_t now)
{
    if (len_us <= 0 || now - *start < len_us) return 0;
    int64_t k = (now - *start) / len_us;
    *start += k * len_us;
    return k;
}

/* Each returns whether its rule holds at this event, writing the evidence
 * (a JSON object) to ev unless ev is NULL (the key is in that detector's
 * cooldown: an ongoing attack must not cost a snprintf per request). */
bool pc_det_enum_update(det_enum *e, const pc_det_config *c, const uint64_t seed[2], int64_t now,
                        int64_t age_us, const pc_det_request *rq, char *ev, size_t evcap);
bool pc_det_probe_update(det_probe *p, const pc_det_config *c, int64_t now, int status, char *ev,
                         size_t evcap);
bool pc_det_volume_update(det_volume *v, const pc_det_config *c, int64_t now, int64_t age_us,
                          char *ev, size_t evcap);
bool pc_det_cred_update(det_cred *cr, const pc_det_config *c, const uint64_t seed[2], int64_t now,
                        int64_t age_us, pc_det_cred_event what, pc_str value, char *ev,
                        size_t evcap);

#endif
