/* Behavioural detectors: enumeration, probing, volume and credential abuse,
 * per key (a client, "c:<client_id>", or a subject, "s:<sub>"; the caller
 * picks the key and calls once per key).
 *
 * Why: a raw rate limit does not stop a Dell-style breach (a valid partner
 * pulling one record per request, 83 a second, for three weeks). What gives
 * it away is the *shape* of the traffic: far more distinct identifiers than
 * that partner ever touches, walked in order, many of them missing.
 *
 * State is constant-size per key (at most PC_DET_MAX_STATE_BYTES, checked
 * by a static assertion), held in a table shared by all workers: sharded
 * by a keyed hash of the key, a mutex per shard, at most max_keys keys
 * with the least recently used evicted. Pure: no I/O, no clock of its own
 * (callers pass now_us), so unit tests run on a deterministic clock.
 *
 * A detector that fired for a key stays quiet for that key until its
 * cooldown passes (one finding per episode, not one per request).
 * The actions (log, alert, throttle, quarantine, revoke) are the caller's:
 * see detect/sanctions.h. */
#ifndef PC_DETECT_DETECT_H
#define PC_DETECT_DETECT_H

#include "core/result.h"
#include "core/str.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Upper bound on one key's state, all detectors together (issue: 4 KiB). */
#define PC_DET_MAX_STATE_BYTES 4096u
/* Identifier routes tracked separately per key; more share slots
 * (route_slot % PC_DET_ID_SLOTS), which can only raise the counts. */
#define PC_DET_ID_SLOTS 4u
/* Longest identifier compared for ordered walks (longer ones are hashed
 * for the distinct count only). */
#define PC_DET_MAX_ID 64u
/* Evidence text (a JSON object) of one finding. */
#define PC_DET_EVIDENCE_BYTES 256u
/* Longest key held; longer keys are refused by the caller (fail closed:
 * the caller treats them as one shared key). */
#define PC_DET_MAX_KEY 160u

typedef enum pc_det_kind {
    PC_DET_ENUMERATION = 0,
    PC_DET_PROBING,
    PC_DET_VOLUME,
    PC_DET_CREDENTIALS,
    PC_DET_KINDS
} pc_det_kind;

const char *pc_det_kind_name(pc_det_kind k); /* "enumeration", ... */

typedef struct pc_det_config {
    /* A key's age (since first seen) before baseline-based checks fire:
     * the enumeration baseline and the volume z-score. Absolute caps fire
     * from the first request. */
    uint32_t learning_ms;          /* default 10 min */
    size_t max_keys;               /* default 65536 */
    struct {
        bool enabled;
        uint32_t window_ms;        /* distinct identifiers counted per window; default 5 min */
        uint32_t max_distinct;     /* absolute cap per route per window; default 300 */
        double baseline_factor;    /* fire above factor x learned distinct/window; default 4 */
        uint32_t min_distinct;     /* the baseline check never fires below this; default 50 */
        uint32_t sequential_run;   /* consecutive ascending ids with small gaps; default 20 */
        uint32_t sequential_gap;   /* largest gap that counts as "next" (ids read as base-36 numbers); default 16 */
        uint32_t ordered_run;      /* consecutive strictly ascending distinct ids, any gap; default 60 */
        /* Scan: a window in which nearly every request names an identifier
         * not seen before in it, and more of them than scan_fraction of the
         * cap. Catches a fresh client walking random valid identifiers
         * slowly (1/s) before it reaches the cap; a client re-reading its
         * own records repeats them and stays silent. */
        double scan_fraction;      /* of the route's cap; default 0.5 */
        double scan_ratio;         /* distinct / requests in the window; default 0.9 */
    } enumeration;
    struct {
        bool enabled;
        uint32_t window_ms;        /* default 5 min */
        uint32_t min_requests;     /* responses in the window before the ratio counts; default 40 */
        double max_ratio;          /* 403+404 share that fires; default 0.5 */
    } probing;
    struct {
        bool enabled;
        uint32_t interval_ms;      /* requests counted per interval; default 10 s */
        double alpha;              /* EWMA weight of the newest interval; default 0.1 */
        double z_threshold;        /* fire when (count - mean) / sd exceeds this; default 6 */
        uint32_t min_count;        /* never fire below this many requests per interval; default 100 */
        /* ... nor below this multiple of the learned mean: real traffic is
         * overdispersed (a benign partner bursts 5x for seconds), which a
         * Poisson-floored z-score alone would flag; default 8 */
        double min_factor;
    } volume;
    struct {
        bool enabled;
        uint32_t window_ms;        /* default 5 min */
        uint32_t max_auth_failures;      /* default 10 */
        uint32_t max_dpop_replays;       /* default 3 */
        uint32_t max_binding_mismatches; /* default 3 */
        uint32_t max_new_certs;    /* certificates not seen before, after learning; default 3 */
        uint32_t max_new_ips;      /* addresses not seen before, after learning; default 20 */
    } credentials;
} pc_det_config;

/* The defaults above, every detector enabled. */
void pc_det_config_defaults(pc_det_config *c);

typedef struct pc_det_finding {
    pc_det_kind kind;
    /* JSON object text: what was measured against what, e.g.
     * {"route":1,"distinct":301,"cap":300,"window_s":300} or
     * {"sequential_run":20,"last_id":"ABC1234"} */
    char evidence[PC_DET_EVIDENCE_BYTES];
} pc_det_finding;

typedef struct pc_det_request {
    /* Identifier routes only (routes marked identifier: true): */
    uint32_t route_slot;   /* a small number per identifier route */
    pc_str identifier;     /* the path parameter value(s); empty: not an identifier route */
    uint32_t max_distinct; /* that route's cap; 0 = config's */
} pc_det_request;

typedef enum pc_det_cred_event {
    PC_DET_AUTH_FAILURE = 0, /* failed client authentication at the token endpoint */
    PC_DET_DPOP_REPLAY,      /* a DPoP proof jti seen before */
    PC_DET_BINDING_MISMATCH, /* a cert-bound token over another or no certificate, or a
                                DPoP-bound token with another key */
    PC_DET_CERT_SEEN,        /* value: the certificate thumbprint a token came with */
    PC_DET_IP_SEEN,          /* value: the client address a token came from */
} pc_det_cred_event;

typedef struct pc_detector pc_detector;

/* cfg is copied. */
PC_MUST_USE pc_result pc_det_new(const pc_det_config *cfg, pc_detector **out);
void pc_det_free(pc_detector *d);

/* One request by key: enumeration (when rq->identifier is set) and volume.
 * Writes the findings that fired (at most PC_DET_KINDS) to out and
 * returns how many. */
size_t pc_det_on_request(pc_detector *d, pc_str key, const pc_det_request *rq, int64_t now_us,
                         pc_det_finding out[PC_DET_KINDS]);
/* The status answered to key's request (upstream or gateway): probing. */
size_t pc_det_on_response(pc_detector *d, pc_str key, int status, int64_t now_us,
                          pc_det_finding out[PC_DET_KINDS]);
/* A credential event for key; value as the event says (may be empty). */
size_t pc_det_on_credential(pc_detector *d, pc_str key, pc_det_cred_event ev, pc_str value,
                            int64_t now_us, pc_det_finding out[PC_DET_KINDS]);

/* Forget key (an operator released it: start learning afresh). */
void pc_det_forget(pc_detector *d, pc_str key);
/* Keys held, and bytes of state per key (for the memory bound's test). */
size_t pc_det_keys(pc_detector *d);
size_t pc_det_state_bytes(void);

#endif
