/* Credential and token abuse per key and tumbling window: client
 * authentication failures, replayed DPoP proofs, binding mismatches, and
 * tokens presented with a certificate or from an address not among the
 * key's recently seen ones (PC_DET_CERTS thumbprints, PC_DET_IPS
 * addresses, as keyed hashes; the least recently seen is replaced). During
 * learning new values are only remembered; after it each counts as new.
 * Each maximum is what is allowed: one more fires. */
#include "detect/det_internal.h"

#include <stdio.h>

/* Is h among set[0..*n)? Remember it either way; returns whether it was. */
static bool seen(det_seen *set, uint8_t *n, unsigned cap, uint64_t h, int64_t now)
{
    unsigned oldest = 0;
    for (unsigned i = 0; i < *n; i++) {
        if (set[i].h == h) {
            set[i].at = now;
            return true;
        }
        if (set[i].at < set[oldest].at) oldest = i;
    }
    unsigned at = *n < cap ? (*n)++ : oldest;
    set[at] = (det_seen){h, now};
    return false;
}

static const char *const names[DET_CR_N] = {"auth_failures", "dpop_replays", "binding_mismatches",
                                            "new_certs", "new_ips"};

bool pc_det_cred_update(det_cred *cr, const pc_det_config *c, const uint64_t seed[2], int64_t now,
                        int64_t age_us, pc_det_cred_event what, pc_str value, char *ev,
                        size_t evcap)
{
    int64_t win = (int64_t)c->credentials.window_ms * 1000;
    if (!cr->started) {
        cr->started = true;
        cr->win_start = now;
    } else if (pc_det_roll(&cr->win_start, win, now) > 0) {
        for (unsigned i = 0; i < DET_CR_N; i++) cr->n[i] = 0;
    }
    bool learned = age_us >= (int64_t)c->learning_ms * 1000;
    unsigned which;
    uint32_t max;
    switch (what) {
    case PC_DET_AUTH_FAILURE:
        which = DET_CR_AUTH;
        max = c->credentials.max_auth_failures;
        break;
    case PC_DET_DPOP_REPLAY:
        which = DET_CR_REPLAY;
        max = c->credentials.max_dpop_replays;
        break;
    case PC_DET_BINDING_MISMATCH:
        which = DET_CR_MISMATCH;
        max = c->credentials.max_binding_mismatches;
        break;
    case PC_DET_CERT_SEEN:
    case PC_DET_IP_SEEN: {
        if (value.len == 0 || value.ptr == NULL) return false;
        bool cert = what == PC_DET_CERT_SEEN;
        uint64_t h = pc_hash64(seed, value.ptr, value.len);
        bool known = cert ? seen(cr->cert, &cr->ncert, PC_DET_CERTS, h, now)
                          : seen(cr->ip, &cr->nip, PC_DET_IPS, h, now);
        if (known || !learned) return false;
        which = cert ? DET_CR_NEW_CERT : DET_CR_NEW_IP;
        max = cert ? c->credentials.max_new_certs : c->credentials.max_new_ips;
        break;
    }
    default:
        return false;
    }
    if (cr->n[which] < UINT32_MAX) cr->n[which]++;
    if (cr->n[which] <= max) return false;
    if (ev != NULL)
        snprintf(ev, evcap, "{\"rule\":\"%s\",\"count\":%u,\"max\":%u,\"window_s\":%u}",
                 names[which], cr->n[which], max, c->credentials.window_ms / 1000);
    return true;
}
