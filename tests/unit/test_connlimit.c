/* Connection accounting: overall and per-IP limits, shared by threads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "net/connlimit.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <string.h>

static pc_ip_key ip4(const char *s)
{
    struct sockaddr_in in = {0};
    in.sin_family = AF_INET;
    inet_pton(AF_INET, s, &in.sin_addr);
    pc_ip_key k;
    pc_ip_key_from_sockaddr((struct sockaddr *)&in, &k);
    return k;
}

static void test_per_ip_and_total(void **state)
{
    (void)state;
    pc_connlimit *cl = NULL;
    assert_true(pc_ok(pc_connlimit_new(&cl)));
    pc_ip_key a = ip4("10.0.0.1"), b = ip4("10.0.0.2");
    assert_int_equal(pc_connlimit_acquire(cl, &a, 5, 2), PC_CONN_ADMIT);
    assert_int_equal(pc_connlimit_acquire(cl, &a, 5, 2), PC_CONN_ADMIT);
    assert_int_equal(pc_connlimit_acquire(cl, &a, 5, 2), PC_CONN_OVER_IP);
    assert_int_equal(pc_connlimit_of_ip(cl, &a), 2);
    assert_int_equal(pc_connlimit_acquire(cl, &b, 3, 2), PC_CONN_ADMIT);
    /* Total is 3 now: a fourth is over the total whatever the IP. */
    assert_int_equal(pc_connlimit_acquire(cl, &b, 3, 2), PC_CONN_OVER_TOTAL);
    assert_int_equal(pc_connlimit_total(cl), 3);
    pc_connlimit_release(cl, &a);
    assert_int_equal(pc_connlimit_of_ip(cl, &a), 1);
    assert_int_equal(pc_connlimit_acquire(cl, &a, 5, 2), PC_CONN_ADMIT);
    pc_connlimit_release(cl, &a);
    pc_connlimit_release(cl, &a);
    pc_connlimit_release(cl, &b);
    assert_int_equal(pc_connlimit_total(cl), 0);
    assert_int_equal(pc_connlimit_of_ip(cl, &a), 0);
    pc_connlimit_free(cl);
}

static void test_ipv6_and_mapped_keys(void **state)
{
    (void)state;
    struct sockaddr_in6 in6 = {0};
    in6.sin6_family = AF_INET6;
    inet_pton(AF_INET6, "::ffff:10.0.0.1", &in6.sin6_addr);
    pc_ip_key k6;
    pc_ip_key_from_sockaddr((struct sockaddr *)&in6, &k6);
    pc_ip_key k4 = ip4("10.0.0.1");
    /* The same client over v4 and v4-mapped v6 counts once. */
    assert_memory_equal(&k4, &k6, sizeof k4);
}

typedef struct {
    pc_connlimit *cl;
    int admitted;
} worker_arg;

static void *hammer(void *p)
{
    worker_arg *a = p;
    pc_ip_key k = ip4("192.0.2.7");
    for (int i = 0; i < 1000; i++) {
        if (pc_connlimit_acquire(a->cl, &k, 100000, 50) == PC_CONN_ADMIT) a->admitted++;
    }
    return NULL;
}

static void test_threads_share_the_limit(void **state)
{
    (void)state;
    /* A client spreading connections over workers still gets only its
     * per-IP share. */
    pc_connlimit *cl = NULL;
    assert_true(pc_ok(pc_connlimit_new(&cl)));
    pthread_t t[4];
    worker_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (worker_arg){cl, 0};
        pthread_create(&t[i], NULL, hammer, &args[i]);
    }
    int total = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        total += args[i].admitted;
    }
    assert_int_equal(total, 50);
    assert_int_equal(pc_connlimit_total(cl), 50);
    pc_connlimit_free(cl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_per_ip_and_total),
        cmocka_unit_test(test_ipv6_and_mapped_keys),
        cmocka_unit_test(test_threads_share_the_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
