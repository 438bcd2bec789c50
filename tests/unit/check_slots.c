/* tests/unit/check_slots.c: scheduler/slots.c GDN state-slot pool. */
#include <check.h>
#include <errno.h>
#include <stdlib.h>

#include "scheduler/slots.h"

START_TEST(test_slots_basic)
{
    struct slot_pool p;
    char err[128];
    ck_assert_int_eq(slot_pool_init(&p, -1), -EINVAL);
    ck_assert_int_eq(slot_pool_init(&p, 3), 0);
    int a = slot_alloc(&p), b = slot_alloc(&p), c = slot_alloc(&p);
    ck_assert(a >= 0 && b >= 0 && c >= 0 && a != b && b != c && a != c);
    ck_assert_int_eq(slot_alloc(&p), -1);
    ck_assert(slot_is_used(&p, b));
    ck_assert(!slot_is_used(&p, 7));
    ck_assert_int_eq(slot_num_used(&p), 3);
    slot_free(&p, b);
    ck_assert(!slot_is_used(&p, b));
    ck_assert_int_eq(slot_alloc(&p), b);
    slot_free(&p, a);
    slot_free(&p, b);
    slot_free(&p, c);
    ck_assert_int_eq(slot_num_free(&p), 3);
    ck_assert_int_eq(slot_pool_check(&p, err, sizeof err), 0);
    slot_pool_fini(&p);
}
END_TEST

START_TEST(test_slots_random)
{
    enum { NS = 13 };
    struct slot_pool p;
    char err[128];
    ck_assert_int_eq(slot_pool_init(&p, NS), 0);
    int held[NS], nheld = 0;
    unsigned s = 99;
    for (int it = 0; it < 10000; it++) {
        s = s * 1664525u + 1013904223u;
        if ((s >> 16) & 1) {
            int x = slot_alloc(&p);
            if (nheld == NS) ck_assert_int_eq(x, -1);
            else {
                ck_assert_int_ge(x, 0);
                for (int i = 0; i < nheld; i++) ck_assert_int_ne(held[i], x);
                held[nheld++] = x;
            }
        } else if (nheld) {
            int i = (int)((s >> 8) % (unsigned)nheld);
            slot_free(&p, held[i]);
            held[i] = held[--nheld];
        }
        ck_assert_int_eq(slot_num_used(&p), nheld);
        if (it % 101 == 0) ck_assert_msg(slot_pool_check(&p, err, sizeof err) == 0, "%s", err);
    }
    slot_pool_fini(&p);
}
END_TEST

Suite *slots_suite(void)
{
    Suite *s = suite_create("slots");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_slots_basic);
    tcase_add_test(tc, test_slots_random);
    suite_add_tcase(s, tc);
    return s;
}
