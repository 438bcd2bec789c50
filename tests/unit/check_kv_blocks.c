/* tests/unit/check_kv_blocks.c: scheduler/kv_blocks.c allocator, refcounts,
 * exhaustion and a random alloc/share/release sweep against a shadow model. */
#include <check.h>
#include <errno.h>
#include <stdlib.h>

#include "scheduler/kv_blocks.h"

START_TEST(test_alloc_exhaust_free)
{
    struct kv_pool p;
    char err[128];
    ck_assert_int_eq(kv_pool_init(&p, 0), -EINVAL);
    ck_assert_int_eq(kv_pool_init(&p, 4), 0);
    int got[4];
    for (int i = 0; i < 4; i++) {
        got[i] = kv_alloc(&p);
        ck_assert_int_ge(got[i], 0);
        ck_assert_int_lt(got[i], 4);
        for (int j = 0; j < i; j++) ck_assert_int_ne(got[i], got[j]);
    }
    ck_assert_int_eq(got[0], 0); /* lowest first */
    ck_assert_int_eq(kv_alloc(&p), -1);
    ck_assert_int_eq(kv_num_free(&p), 0);
    ck_assert_int_eq(kv_pool_check(&p, NULL, err, sizeof err), 0);
    kv_release(&p, got[2]);
    ck_assert_int_eq(kv_num_free(&p), 1);
    ck_assert_int_eq(kv_alloc(&p), got[2]); /* LIFO reuse */
    for (int i = 0; i < 4; i++) kv_release(&p, got[i]);
    ck_assert_int_eq(kv_num_free(&p), 4);
    ck_assert_int_eq(kv_pool_check(&p, NULL, err, sizeof err), 0);
    kv_pool_fini(&p);
}
END_TEST

START_TEST(test_sharing)
{
    struct kv_pool p;
    char err[128];
    ck_assert_int_eq(kv_pool_init(&p, 3), 0);
    int b = kv_alloc(&p);
    kv_retain(&p, b);
    kv_retain(&p, b);
    ck_assert_int_eq(kv_refcount(&p, b), 3);
    kv_release(&p, b);
    kv_release(&p, b);
    ck_assert_int_eq(kv_num_free(&p), 2); /* still held once */
    ck_assert_int_eq(kv_refcount(&p, b), 1);
    kv_release(&p, b);
    ck_assert_int_eq(kv_num_free(&p), 3);
    ck_assert_int_eq(kv_refcount(&p, 99), -1);
    ck_assert_int_eq(kv_pool_check(&p, NULL, err, sizeof err), 0);
    kv_pool_fini(&p);
}
END_TEST

START_TEST(test_random_shadow)
{
    enum { NB = 37, NH = 200 };
    struct kv_pool p;
    char err[128];
    ck_assert_int_eq(kv_pool_init(&p, NB), 0);
    int32_t expect[NB] = {0};
    int holders[NH]; /* each holder holds one block reference or -1 */
    for (int i = 0; i < NH; i++) holders[i] = -1;
    unsigned s = 12345;
    for (int it = 0; it < 20000; it++) {
        s = s * 1664525u + 1013904223u;
        int h = (int)((s >> 8) % NH);
        int op = (int)((s >> 20) % 3);
        if (holders[h] >= 0) {
            kv_release(&p, holders[h]);
            expect[holders[h]]--;
            holders[h] = -1;
        } else if (op == 0) {
            int b = kv_alloc(&p);
            if (b < 0) {
                int used = 0;
                for (int i = 0; i < NB; i++) used += expect[i] > 0;
                ck_assert_int_eq(used, NB);
            } else {
                ck_assert_int_eq(expect[b], 0);
                expect[b] = 1;
                holders[h] = b;
            }
        } else {
            /* share someone else's block */
            int o = (int)((s >> 4) % NH);
            if (holders[o] >= 0) {
                kv_retain(&p, holders[o]);
                expect[holders[o]]++;
                holders[h] = holders[o];
            }
        }
        if (it % 97 == 0) ck_assert_msg(kv_pool_check(&p, expect, err, sizeof err) == 0, "%s", err);
    }
    for (int i = 0; i < NH; i++)
        if (holders[i] >= 0) kv_release(&p, holders[i]);
    ck_assert_int_eq(kv_num_free(&p), NB);
    ck_assert_int_eq(kv_pool_check(&p, NULL, err, sizeof err), 0);
    kv_pool_fini(&p);
}
END_TEST

Suite *kv_blocks_suite(void)
{
    Suite *s = suite_create("kv_blocks");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_alloc_exhaust_free);
    tcase_add_test(tc, test_sharing);
    tcase_add_test(tc, test_random_shadow);
    suite_add_tcase(s, tc);
    return s;
}
