/* Volume: requests per interval against an EWMA of past intervals' counts
 * and their EWMA variance (West's incremental form: d = x - mean;
 * mean += a d; var = (1 - a)(var + a d^2)).
 *
 * At each interval boundary the interval just ended is folded in unless it
 * fired (an attack must not become the baseline). Intervals that passed
 * with no request are folded as zeros in closed form, not one by one: k
 * zeros take mean m to (1-a)^k m and var v to (1-a)^k (v + m^2 (1 - (1-a)^k)).
 *
 * After learning_ms of key age (and one folded interval) the current,
 * partial interval's count fires when all of:
 *   count >= min_count,
 *   (count - mean) / sd > z_threshold, sd = max(sqrt(var), sqrt(mean), 1)
 *     (the Poisson floor: a perfectly steady client has var 0),
 *   count > min_factor x mean (real traffic is burstier than Poisson). */
#include "detect/det_internal.h"

#include <math.h>
#include <stdio.h>

static void fold(det_volume *v, double x, double a)
{
    if (v->intervals == 0) {
        v->mean = x;
        v->var = 0;
    } else {
        double d = x - v->mean;
        double inc = a * d;
        v->mean += inc;
        v->var = (1 - a) * (v->var + d * inc);
    }
    if (v->intervals < UINT32_MAX) v->intervals++;
}

static void fold_zeros(det_volume *v, int64_t k, double a)
{
    if (k <= 0 || v->intervals == 0) return;
    double bk = pow(1 - a, (double)k);
    v->var = bk * (v->var + v->mean * v->mean * (1 - bk));
    v->mean *= bk;
    uint64_t n = (uint64_t)v->intervals + (uint64_t)k;
    v->intervals = n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
}

bool pc_det_volume_update(det_volume *v, const pc_det_config *c, int64_t now, int64_t age_us,
                          char *ev, size_t evcap)
{
    int64_t len = (int64_t)c->volume.interval_ms * 1000;
    double a = c->volume.alpha;
    if (!v->started) {
        v->started = true;
        v->start = now;
    } else {
        int64_t k = pc_det_roll(&v->start, len, now);
        if (k > 0) {
            if (!v->fired) fold(v, v->count, a);
            fold_zeros(v, k - 1, a);
            v->count = 0;
            v->fired = false;
        }
    }
    if (v->count < UINT32_MAX) v->count++;
    if (age_us < (int64_t)c->learning_ms * 1000 || v->intervals == 0) return false;
    if (v->count < c->volume.min_count) return false;
    double sd = sqrt(v->var > 0 ? v->var : 0);
    double pois = sqrt(v->mean > 0 ? v->mean : 0);
    if (sd < pois) sd = pois;
    if (sd < 1) sd = 1;
    double z = ((double)v->count - v->mean) / sd;
    if (!(z > c->volume.z_threshold)) return false;
    if (!((double)v->count > c->volume.min_factor * v->mean)) return false;
    v->fired = true;
    if (ev != NULL) snprintf(ev, evcap,
             "{\"rule\":\"zscore\",\"count\":%u,\"mean\":%.2f,\"sd\":%.2f,\"z\":%.2f,"
             "\"interval_s\":%u}",
             v->count, v->mean, sd, z, c->volume.interval_ms / 1000);
    return true;
}
