/* Enumeration: distinct identifiers per route slot and window (cap, scan,
 * learned baseline) and identifier walks (sequential, dictionary-ordered).
 *
 * Windows tumble from the key's first identifier request. At a window's
 * end each slot that was used and did not fire folds its distinct count
 * into its baseline (EWMA, PC_DET_BASELINE_ALPHA); idle windows are not
 * folded (a partner idle at night must not come back to a zero baseline).
 *
 * Rules, checked in this order on every identifier request (the first that
 * holds is reported):
 *   cap        distinct > cap (the route's, else the config's), from the
 *              first window: a fresh fake partner has no baseline;
 *   scan       distinct > scan_fraction x cap and distinct >= scan_ratio x
 *              requests: nearly every request a new identifier (catches a
 *              slow walk over random valid ids before the cap);
 *   baseline   after learning_ms of key age and PC_DET_BASELINE_MIN_WINDOWS
 *              folded windows: distinct > max(min_distinct, factor x baseline);
 *   sequential sequential_run identifiers in a row, each read as a base-36
 *              number (0-9, A-Z, either case; up to 12 digits) and one
 *              step of 1..sequential_gap from the last, all steps the same
 *              direction (descending walks count too);
 *   ordered    ordered_run identifiers in a row, each strictly after (or
 *              all strictly before) the last in byte order.
 * An identifier equal to the last one neither breaks nor extends a run.
 * One longer than PC_DET_MAX_ID counts for the distinct count only and
 * ends both runs. */
#include "detect/det_internal.h"

#include <stdio.h>
#include <string.h>

static bool base36(pc_str id, uint64_t *out)
{
    if (id.len == 0 || id.len > 12) return false; /* 36^12 < 2^63 */
    uint64_t v = 0;
    for (size_t i = 0; i < id.len; i++) {
        unsigned char ch = (unsigned char)id.ptr[i];
        unsigned d;
        if (ch >= '0' && ch <= '9') d = ch - '0';
        else if (ch >= 'A' && ch <= 'Z') d = ch - 'A' + 10;
        else if (ch >= 'a' && ch <= 'z') d = ch - 'a' + 10;
        else return false;
        v = v * 36 + d;
    }
    *out = v;
    return true;
}

/* Client-chosen bytes into a JSON string body: unreserved characters as
 * they are, anything else \u00XX; cut to fit. */
static void json_id(char *out, size_t cap, const char *p, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)p[i];
        bool plain = (ch >= '0' && ch <= '9') || (ch >= 'A' && ch <= 'Z') ||
                     (ch >= 'a' && ch <= 'z') || ch == '-' || ch == '.' || ch == '_' || ch == '~';
        if (plain) {
            if (o + 1 >= cap) break;
            out[o++] = (char)ch;
        } else {
            if (o + 6 >= cap) break;
            snprintf(out + o, cap - o, "\\u%04x", ch);
            o += 6;
        }
    }
    out[o] = '\0';
}

static void fold(det_enum_slot *s)
{
    if (s->requests > 0 && !s->fired) {
        double d = pc_hll_count(&s->hll);
        if (s->windows == 0) s->baseline = d;
        else s->baseline += PC_DET_BASELINE_ALPHA * (d - s->baseline);
        if (s->windows < UINT32_MAX) s->windows++;
    }
    pc_hll_clear(&s->hll);
    s->requests = 0;
    s->fired = false;
}

static void walk(det_enum_slot *s, const pc_det_config *c, pc_str id)
{
    if (id.len > PC_DET_MAX_ID) {
        s->seq_run = s->ord_run = 0;
        s->seq_dir = s->ord_dir = 0;
        s->last_len = 0;
        s->last_num_ok = false;
        return;
    }
    if (s->last_len == id.len && memcmp(s->last, id.ptr, id.len) == 0) return; /* a repeat */
    uint64_t v = 0;
    bool num = base36(id, &v);
    uint64_t gap = c->enumeration.sequential_gap;
    int dir = 0;
    if (num && s->last_num_ok) {
        if (v > s->last_num && v - s->last_num <= gap) dir = 1;
        else if (v < s->last_num && s->last_num - v <= gap) dir = -1;
    }
    if (dir != 0 && dir == s->seq_dir) s->seq_run++;
    else if (dir != 0) s->seq_run = 2;
    else s->seq_run = num ? 1 : 0;
    s->seq_dir = (int8_t)dir;

    int odir = 0;
    if (s->last_len > 0) {
        size_t m = id.len < s->last_len ? id.len : s->last_len;
        int cmp = memcmp(id.ptr, s->last, m);
        if (cmp == 0) cmp = id.len < s->last_len ? -1 : 1; /* not equal: lengths differ */
        odir = cmp > 0 ? 1 : -1;
    }
    if (odir != 0 && odir == s->ord_dir) s->ord_run++;
    else if (odir != 0) s->ord_run = 2;
    else s->ord_run = 1;
    s->ord_dir = (int8_t)odir;

    memcpy(s->last, id.ptr, id.len);
    s->last_len = (uint8_t)id.len;
    s->last_num = v;
    s->last_num_ok = num;
}

bool pc_det_enum_update(det_enum *e, const pc_det_config *c, const uint64_t seed[2], int64_t now,
                        int64_t age_us, const pc_det_request *rq, char *ev, size_t evcap)
{
    if (rq == NULL || rq->identifier.len == 0 || rq->identifier.ptr == NULL) return false;
    int64_t win = (int64_t)c->enumeration.window_ms * 1000;
    if (!e->started) {
        e->started = true;
        e->win_start = now;
    } else if (pc_det_roll(&e->win_start, win, now) > 0) {
        for (unsigned i = 0; i < PC_DET_ID_SLOTS; i++) fold(&e->slot[i]);
    }
    det_enum_slot *s = &e->slot[rq->route_slot % PC_DET_ID_SLOTS];
    pc_str id = rq->identifier;
    (void)pc_hll_add(&s->hll, pc_hash64(seed, id.ptr, id.len));
    if (s->requests < UINT32_MAX) s->requests++;
    walk(s, c, id);

    uint32_t d = pc_hll_count(&s->hll);
    uint32_t cap = rq->max_distinct ? rq->max_distinct : c->enumeration.max_distinct;
    unsigned route = rq->route_slot;
    unsigned win_s = c->enumeration.window_ms / 1000;
    uint32_t scan_min = (uint32_t)(c->enumeration.scan_fraction * cap);
    char idj[PC_DET_MAX_ID + 1];

    if (d > cap) {
        if (ev != NULL) snprintf(ev, evcap,
                 "{\"rule\":\"cap\",\"route\":%u,\"distinct\":%u,\"cap\":%u,\"window_s\":%u}",
                 route, d, cap, win_s);
    } else if (d > scan_min && (double)d >= c->enumeration.scan_ratio * s->requests) {
        if (ev != NULL) snprintf(ev, evcap,
                 "{\"rule\":\"scan\",\"route\":%u,\"distinct\":%u,\"requests\":%u,"
                 "\"threshold\":%u,\"window_s\":%u}",
                 route, d, s->requests, scan_min, win_s);
    } else if (age_us >= (int64_t)c->learning_ms * 1000 &&
               s->windows >= PC_DET_BASELINE_MIN_WINDOWS &&
               d > c->enumeration.min_distinct &&
               d > c->enumeration.baseline_factor * s->baseline) {
        double thr = c->enumeration.baseline_factor * s->baseline;
        if (thr < c->enumeration.min_distinct) thr = c->enumeration.min_distinct;
        if (ev != NULL) snprintf(ev, evcap,
                 "{\"rule\":\"baseline\",\"route\":%u,\"distinct\":%u,\"baseline\":%.1f,"
                 "\"threshold\":%.1f,\"window_s\":%u}",
                 route, d, s->baseline, thr, win_s);
    } else if (c->enumeration.sequential_run > 0 && s->seq_run >= c->enumeration.sequential_run) {
        if (ev != NULL) json_id(idj, sizeof idj, id.ptr, id.len);
        if (ev != NULL) snprintf(ev, evcap,
                 "{\"rule\":\"sequential\",\"route\":%u,\"run\":%u,\"gap\":%u,\"last_id\":\"%s\"}",
                 route, s->seq_run, c->enumeration.sequential_gap, idj);
    } else if (c->enumeration.ordered_run > 0 && s->ord_run >= c->enumeration.ordered_run) {
        if (ev != NULL) json_id(idj, sizeof idj, id.ptr, id.len);
        if (ev != NULL)
            snprintf(ev, evcap,
                     "{\"rule\":\"ordered\",\"route\":%u,\"run\":%u,\"last_id\":\"%s\"}",
                     route, s->ord_run, idj);
    } else {
        return false;
    }
    s->fired = true;
    return true;
}
