/* Replay cache: single use, namespaces, expiry, bound, threads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/replay.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

static void test_single_use_and_namespaces(void **state)
{
    (void)state;
    pc_replay *rp = NULL;
    assert_true(pc_ok(pc_replay_new(1024, &rp)));
    assert_int_equal(pc_replay_check(rp, "c1", 2, "j1", 2, 200, 100), PC_REPLAY_FRESH);
    assert_int_equal(pc_replay_check(rp, "c1", 2, "j1", 2, 200, 150), PC_REPLAY_SEEN);
    /* Another client's identical jti is its own. */
    assert_int_equal(pc_replay_check(rp, "c2", 2, "j1", 2, 200, 150), PC_REPLAY_FRESH);
    /* ns/id boundaries cannot be shifted to collide: "c1"+"j1" vs "c"+"1j1". */
    assert_int_equal(pc_replay_check(rp, "c", 1, "1j1", 3, 200, 150), PC_REPLAY_FRESH);
    /* After expiry the identifier may be used again. */
    assert_int_equal(pc_replay_check(rp, "c1", 2, "j1", 2, 400, 200), PC_REPLAY_FRESH);
    assert_int_equal(pc_replay_check(rp, "c1", 2, "j1", 2, 400, 300), PC_REPLAY_SEEN);
    assert_int_equal(pc_replay_count(rp, 150), 3);
    /* peek reports without recording. */
    assert_true(pc_replay_peek(rp, "c2", 2, "j1", 2, 150));
    assert_false(pc_replay_peek(rp, "c3", 2, "j1", 2, 150));
    assert_false(pc_replay_peek(rp, "c3", 2, "j1", 2, 150));
    assert_false(pc_replay_peek(rp, "c2", 2, "j1", 2, 250)); /* expired */
    pc_replay_free(rp);
}

static void test_bounded_fails_closed(void **state)
{
    (void)state;
    pc_replay *rp = NULL;
    assert_true(pc_ok(pc_replay_new(64 * 64, &rp))); /* 64 shards x 64 slots */
    char id[32];
    size_t fresh = 0, full = 0;
    for (int i = 0; i < 64 * 64; i++) {
        snprintf(id, sizeof id, "id-%d", i);
        pc_replay_verdict v = pc_replay_check(rp, "ns", 2, id, strlen(id), 1000, 10);
        if (v == PC_REPLAY_FRESH) fresh++;
        if (v == PC_REPLAY_FULL) full++;
    }
    /* Live entries are never evicted: past 3/4 load new ids are refused. */
    assert_true(full > 0);
    assert_true(fresh <= 64 * 48);
    /* Every recorded id is still refused as a replay. */
    for (int i = 0; i < 64; i++) {
        snprintf(id, sizeof id, "id-%d", i);
        assert_int_not_equal(pc_replay_check(rp, "ns", 2, id, strlen(id), 1000, 11), PC_REPLAY_FRESH);
    }
    /* Once they expire, room comes back (purge runs at most once a second). */
    assert_int_equal(pc_replay_check(rp, "ns", 2, "late", 4, 5000, 2000), PC_REPLAY_FRESH);
    /* Too long a key is refused, never silently truncated. */
    char big[PC_REPLAY_MAX_KEY + 1];
    memset(big, 'a', sizeof big);
    assert_int_equal(pc_replay_check(rp, "", 0, big, sizeof big, 10, 1), PC_REPLAY_FULL);
    pc_replay_free(rp);
}

typedef struct {
    pc_replay *rp;
    int fresh;
} targ;

static void *race(void *p)
{
    targ *a = p;
    char id[32];
    for (int i = 0; i < 2000; i++) {
        snprintf(id, sizeof id, "shared-%d", i);
        if (pc_replay_check(a->rp, "k", 1, id, strlen(id), 100, 1) == PC_REPLAY_FRESH) a->fresh++;
    }
    return NULL;
}

static void test_replay_across_threads(void **state)
{
    (void)state;
    /* The same 2000 ids presented by 4 threads (workers) at once: exactly
     * one use of each succeeds. */
    pc_replay *rp = NULL;
    assert_true(pc_ok(pc_replay_new(1u << 16, &rp)));
    pthread_t t[4];
    targ a[4];
    for (int i = 0; i < 4; i++) {
        a[i] = (targ){rp, 0};
        pthread_create(&t[i], NULL, race, &a[i]);
    }
    int total = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        total += a[i].fresh;
    }
    assert_int_equal(total, 2000);
    pc_replay_free(rp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single_use_and_namespaces),
        cmocka_unit_test(test_bounded_fails_closed),
        cmocka_unit_test(test_replay_across_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
