/* Sanctions: quarantine and throttle with expiry, extension rules, release,
 * the bound (the entry ending soonest goes), sorted listing, threads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "detect/sanctions.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define SEC 1000000LL
#define T0 (1700000000LL * SEC)

static void test_quarantine_expires_and_extends(void **state)
{
    (void)state;
    pc_sanctions *s = NULL;
    assert_true(pc_ok(pc_sanctions_new(16, &s)));
    int64_t until = 0;
    assert_false(pc_sanctions_quarantined(s, PC_STR("p1"), T0, &until));
    pc_sanctions_quarantine(s, PC_STR("p1"), "enumeration", T0, 3600 * SEC);
    assert_true(pc_sanctions_quarantined(s, PC_STR("p1"), T0 + 1, &until));
    assert_true(until == T0 + 3600 * SEC);
    assert_false(pc_sanctions_quarantined(s, PC_STR("p2"), T0 + 1, NULL));
    /* A shorter one does not shorten it; a longer one extends it and
     * keeps the first reason and start. */
    pc_sanctions_quarantine(s, PC_STR("p1"), "probing", T0 + 10 * SEC, 60 * SEC);
    assert_true(pc_sanctions_quarantined(s, PC_STR("p1"), T0 + 3599 * SEC, &until));
    assert_true(until == T0 + 3600 * SEC);
    pc_sanctions_quarantine(s, PC_STR("p1"), "probing", T0 + 20 * SEC, 7200 * SEC);
    assert_true(pc_sanctions_quarantined(s, PC_STR("p1"), T0 + 3601 * SEC, &until));
    assert_true(until == T0 + 7220 * SEC);
    pc_sanction l[4];
    assert_int_equal(pc_sanctions_list(s, T0 + 30 * SEC, l, 4), 1);
    assert_string_equal(l[0].client_id, "p1");
    assert_string_equal(l[0].reason, "enumeration");
    assert_true(l[0].quarantined_at_us == T0);
    /* Expired: no longer quarantined, not listed. */
    assert_false(pc_sanctions_quarantined(s, PC_STR("p1"), T0 + 7220 * SEC, NULL));
    assert_int_equal(pc_sanctions_list(s, T0 + 7220 * SEC, l, 4), 0);
    /* A new quarantine after expiry records its own start and reason. */
    pc_sanctions_quarantine(s, PC_STR("p1"), "volume", T0 + 8000 * SEC, 10 * SEC);
    assert_int_equal(pc_sanctions_list(s, T0 + 8000 * SEC, l, 4), 1);
    assert_string_equal(l[0].reason, "volume");
    assert_true(l[0].quarantined_at_us == T0 + 8000 * SEC);
    pc_sanctions_free(s);
}

static void test_throttle_factor(void **state)
{
    (void)state;
    pc_sanctions *s = NULL;
    assert_true(pc_ok(pc_sanctions_new(16, &s)));
    assert_true(pc_sanctions_factor(s, PC_STR("p"), T0) == 1.0);
    pc_sanctions_throttle(s, PC_STR("p"), 0.5, T0, 100 * SEC);
    assert_true(pc_sanctions_factor(s, PC_STR("p"), T0 + SEC) == 0.5);
    /* The lower factor and the later end win. */
    pc_sanctions_throttle(s, PC_STR("p"), 0.8, T0, 200 * SEC);
    assert_true(pc_sanctions_factor(s, PC_STR("p"), T0 + 150 * SEC) == 0.5);
    pc_sanctions_throttle(s, PC_STR("p"), 0.25, T0, 10 * SEC);
    assert_true(pc_sanctions_factor(s, PC_STR("p"), T0 + SEC) == 0.25);
    assert_true(pc_sanctions_factor(s, PC_STR("p"), T0 + 200 * SEC) == 1.0);
    /* Throttled is not quarantined. */
    assert_false(pc_sanctions_quarantined(s, PC_STR("p"), T0 + SEC, NULL));
    /* Factors outside (0, 1] are clamped. */
    pc_sanctions_throttle(s, PC_STR("q"), 7.0, T0, 10 * SEC);
    assert_true(pc_sanctions_factor(s, PC_STR("q"), T0) == 1.0);
    pc_sanctions_throttle(s, PC_STR("r"), 0.0, T0, 10 * SEC);
    double f = pc_sanctions_factor(s, PC_STR("r"), T0);
    assert_true(f > 0 && f < 0.01);
    pc_sanctions_free(s);
}

static void test_release(void **state)
{
    (void)state;
    pc_sanctions *s = NULL;
    assert_true(pc_ok(pc_sanctions_new(16, &s)));
    pc_sanctions_quarantine(s, PC_STR("p"), "enumeration", T0, 3600 * SEC);
    pc_sanctions_throttle(s, PC_STR("p"), 0.5, T0, 3600 * SEC);
    assert_true(pc_sanctions_release(s, PC_STR("p"), T0 + SEC));
    assert_false(pc_sanctions_quarantined(s, PC_STR("p"), T0 + SEC, NULL));
    assert_true(pc_sanctions_factor(s, PC_STR("p"), T0 + SEC) == 1.0);
    assert_false(pc_sanctions_release(s, PC_STR("p"), T0 + SEC));
    assert_false(pc_sanctions_release(s, PC_STR("never"), T0));
    pc_sanctions_free(s);
}

static void test_bound_drops_soonest_ending(void **state)
{
    (void)state;
    pc_sanctions *s = NULL;
    assert_true(pc_ok(pc_sanctions_new(4, &s)));
    pc_sanctions_quarantine(s, PC_STR("long"), "x", T0, 1000 * SEC);
    pc_sanctions_quarantine(s, PC_STR("short"), "x", T0, 10 * SEC);
    pc_sanctions_quarantine(s, PC_STR("mid1"), "x", T0, 500 * SEC);
    pc_sanctions_quarantine(s, PC_STR("mid2"), "x", T0, 600 * SEC);
    /* Full: a fifth is taken, the one ending soonest dropped. */
    pc_sanctions_quarantine(s, PC_STR("new"), "x", T0 + SEC, 5 * SEC);
    assert_true(pc_sanctions_quarantined(s, PC_STR("new"), T0 + 2 * SEC, NULL));
    assert_false(pc_sanctions_quarantined(s, PC_STR("short"), T0 + 2 * SEC, NULL));
    assert_true(pc_sanctions_quarantined(s, PC_STR("long"), T0 + 2 * SEC, NULL));
    /* Flooding keeps the table at its bound. */
    char id[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(id, sizeof id, "flood-%d", i);
        pc_sanctions_quarantine(s, pc_str_c(id), "x", T0, 1 * SEC);
    }
    pc_sanction l[8];
    assert_true(pc_sanctions_list(s, T0, l, 8) <= 4);
    pc_sanctions_free(s);
}

static void test_list_sorted_and_capped(void **state)
{
    (void)state;
    pc_sanctions *s = NULL;
    assert_true(pc_ok(pc_sanctions_new(64, &s)));
    const char *ids[] = {"delta", "alpha", "charlie", "bravo", "al", "echo"};
    for (int i = 0; i < 6; i++)
        pc_sanctions_quarantine(s, pc_str_c(ids[i]), "enumeration", T0, 60 * SEC);
    pc_sanctions_throttle(s, PC_STR("foxtrot"), 0.5, T0, 60 * SEC);
    pc_sanction l[10];
    size_t n = pc_sanctions_list(s, T0 + SEC, l, 10);
    assert_int_equal(n, 7);
    const char *want[] = {"al", "alpha", "bravo", "charlie", "delta", "echo", "foxtrot"};
    for (size_t i = 0; i < n; i++) assert_string_equal(l[i].client_id, want[i]);
    assert_true(l[6].quarantine_until_us == 0 && l[6].throttle_factor == 0.5);
    assert_int_equal(pc_sanctions_list(s, T0 + SEC, l, 3), 3);
    assert_string_equal(l[2].client_id, "bravo");
    /* A client_id longer than the bound is kept by its prefix. */
    char big[PC_SANCTION_MAX_CLIENT + 20];
    memset(big, 'z', sizeof big);
    pc_sanctions_quarantine(s, (pc_str){big, sizeof big}, "x", T0, 60 * SEC);
    assert_true(pc_sanctions_quarantined(s, (pc_str){big, sizeof big}, T0, NULL));
    assert_true(pc_sanctions_quarantined(s, (pc_str){big, PC_SANCTION_MAX_CLIENT}, T0, NULL));
    pc_sanctions_free(s);
}

static void *hammer(void *a)
{
    pc_sanctions *s = a;
    char id[16];
    for (int i = 0; i < 5000; i++) {
        snprintf(id, sizeof id, "c%d", i % 50);
        pc_sanctions_quarantine(s, pc_str_c(id), "x", T0 + i, 100 * SEC);
        (void)pc_sanctions_quarantined(s, pc_str_c(id), T0 + i, NULL);
        (void)pc_sanctions_factor(s, pc_str_c(id), T0 + i);
        if (i % 7 == 0) (void)pc_sanctions_release(s, pc_str_c(id), T0 + i);
    }
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    pc_sanctions *s = NULL;
    assert_true(pc_ok(pc_sanctions_new(32, &s)));
    pthread_t th[2];
    for (int i = 0; i < 2; i++) pthread_create(&th[i], NULL, hammer, s);
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    pc_sanction l[64];
    assert_true(pc_sanctions_list(s, T0, l, 64) <= 32);
    pc_sanctions_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quarantine_expires_and_extends),
        cmocka_unit_test(test_throttle_factor),
        cmocka_unit_test(test_release),
        cmocka_unit_test(test_bound_drops_soonest_ending),
        cmocka_unit_test(test_list_sorted_and_capped),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
