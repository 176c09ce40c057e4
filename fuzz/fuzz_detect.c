/* Fuzz the detectors with what a client controls: identifiers (path
 * parameters, fed to the HyperLogLog and to the base-36 and byte-order walk
 * rules), statuses and credential values, in any order, on a clock the input
 * also drives. Every finding's evidence must be a terminated JSON object. */
#include "detect/detect.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static pc_detector *det;

static void check(const pc_det_finding *f, size_t n)
{
    if (n > PC_DET_KINDS) abort();
    for (size_t i = 0; i < n; i++) {
        size_t len = strnlen(f[i].evidence, sizeof f[i].evidence);
        if (len == sizeof f[i].evidence || (len && (f[i].evidence[0] != '{' ||
                                                    f[i].evidence[len - 1] != '}')))
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (det == NULL) {
        pc_det_config c;
        pc_det_config_defaults(&c);
        c.learning_ms = 1000;
        c.max_keys = 64;
        c.enumeration.max_distinct = 20;
        c.enumeration.sequential_run = 4;
        c.enumeration.ordered_run = 5;
        c.probing.min_requests = 3;
        c.volume.min_count = 3;
        c.volume.interval_ms = 100;
        if (!pc_ok(pc_det_new(&c, &det))) abort();
    }
    /* Records: op(1) key(1) dt(1) len(1) bytes(len). */
    int64_t now = 1700000000000000;
    pc_det_finding f[PC_DET_KINDS];
    size_t i = 0;
    while (i + 4 <= size) {
        uint8_t op = data[i], key = data[i + 1], dt = data[i + 2], len = data[i + 3];
        i += 4;
        if (len > size - i) len = (uint8_t)(size - i);
        pc_str v = {(const char *)data + i, len};
        i += len;
        now += (int64_t)dt * 50000;
        char kb[8] = {'c', ':', (char)('a' + key % 16), 0};
        pc_str k = {kb, 3};
        switch (op % 4) {
        case 0: {
            pc_det_request rq = {.route_slot = key, .identifier = v, .max_distinct = dt % 3 ? 0 : dt};
            check(f, pc_det_on_request(det, k, &rq, now, f));
            break;
        }
        case 1: check(f, pc_det_on_response(det, k, 200 + (int)(dt % 4) * 100 + (len % 5), now, f)); break;
        case 2: check(f, pc_det_on_credential(det, k, (pc_det_cred_event)(len % 5), v, now, f)); break;
        default: pc_det_forget(det, k); break;
        }
    }
    return 0;
}
