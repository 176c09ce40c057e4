/* Probing: the share of 403 and 404 answers to a key in a tumbling window
 * (from the key's first response). Fires once the window holds at least
 * min_requests responses and denied / total >= max_ratio. A scan over
 * guessed identifiers shows up here even when too slow or too sparse for
 * the enumeration rules: most guesses miss. */
#include "detect/det_internal.h"

#include <stdio.h>

bool pc_det_probe_update(det_probe *p, const pc_det_config *c, int64_t now, int status, char *ev,
                         size_t evcap)
{
    int64_t win = (int64_t)c->probing.window_ms * 1000;
    if (!p->started) {
        p->started = true;
        p->win_start = now;
    } else if (pc_det_roll(&p->win_start, win, now) > 0) {
        p->total = p->bad = 0;
    }
    if (p->total < UINT32_MAX) p->total++;
    if ((status == 403 || status == 404) && p->bad < UINT32_MAX) p->bad++;
    if (p->total < c->probing.min_requests) return false;
    if ((double)p->bad < c->probing.max_ratio * (double)p->total) return false;
    if (ev != NULL) snprintf(ev, evcap,
             "{\"rule\":\"denied_ratio\",\"responses\":%u,\"denied\":%u,\"ratio\":%.3f,"
             "\"max_ratio\":%.3f,\"window_s\":%u}",
             p->total, p->bad, (double)p->bad / p->total, c->probing.max_ratio,
             c->probing.window_ms / 1000);
    return true;
}
