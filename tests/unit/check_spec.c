/* tests/unit/check_spec.c: scheduler/spec.c: the prompt-lookup drafter
 * against a brute-force reference, greedy acceptance, and speculative
 * sampling's output distribution (it must equal the target's). */
#include <check.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "scheduler/spec.h"
#include "server/args.h"

START_TEST(test_spec_cfg)
{
    char err[160];
    ck_assert_int_eq(spec_cfg_check(0, 0, 0, err, sizeof err), 0);   /* off: ngram unused */
    ck_assert_int_eq(spec_cfg_check(4, 1, 5, err, sizeof err), 0);
    ck_assert_int_eq(spec_cfg_check(4, SPEC_NGRAM_MIN_DEFAULT, SPEC_NGRAM_MAX_DEFAULT, NULL, 0), 0);
    ck_assert_int_eq(spec_cfg_check(-1, 1, 5, err, sizeof err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "num_speculative_tokens"));
    ck_assert_int_eq(spec_cfg_check(SPEC_MAX_TOKENS + 1, 1, 5, err, sizeof err), -EINVAL);
    ck_assert_int_eq(spec_cfg_check(3, 0, 5, err, sizeof err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "ngram"));
    ck_assert_int_eq(spec_cfg_check(3, 4, 3, err, sizeof err), -EINVAL);
    ck_assert_int_eq(spec_cfg_check(3, 1, SPEC_MAX_NGRAM + 1, err, sizeof err), -EINVAL);
}
END_TEST

START_TEST(test_spec_propose_examples)
{
    int32_t d[8];
    int m;
    /* "a b c d a b c" -> suffix "a b c" was seen at 0, followed by "d a b c" */
    const int32_t t1[] = {1, 2, 3, 4, 1, 2, 3};
    ck_assert_int_eq(spec_ngram_propose(t1, 7, 1, 3, 3, d, &m), 3);
    ck_assert_int_eq(m, 3);
    ck_assert_int_eq(d[0], 4); ck_assert_int_eq(d[1], 1); ck_assert_int_eq(d[2], 2);
    /* drafts never run past the end of the history */
    ck_assert_int_eq(spec_ngram_propose(t1, 7, 1, 3, 8, d, &m), 4);
    ck_assert_int_eq(d[3], 3);
    /* the longest n wins over a more recent shorter match:
     * "5 6 7 | 9 7 | 8 5 6 7": n=3 "5 6 7" at 0 -> 9; n=1 "7" most recent at 4 -> 8 */
    const int32_t t2[] = {5, 6, 7, 9, 7, 8, 5, 6, 7};
    ck_assert_int_eq(spec_ngram_propose(t2, 9, 1, 3, 1, d, &m), 1);
    ck_assert_int_eq(m, 3);
    ck_assert_int_eq(d[0], 9);
    ck_assert_int_eq(spec_ngram_propose(t2, 9, 1, 1, 1, d, &m), 1);
    ck_assert_int_eq(m, 1);
    ck_assert_int_eq(d[0], 8);
    /* most recent of several equal-length matches */
    const int32_t t3[] = {1, 2, 1, 3, 1, 4, 1};
    ck_assert_int_eq(spec_ngram_propose(t3, 7, 1, 1, 2, d, &m), 2);
    ck_assert_int_eq(d[0], 4); ck_assert_int_eq(d[1], 1);
    /* a run: "7 7 7 7" with n=2 matches at 1 -> one draft (7) */
    const int32_t t4[] = {7, 7, 7, 7};
    ck_assert_int_eq(spec_ngram_propose(t4, 4, 2, 2, 4, d, &m), 1);
    ck_assert_int_eq(d[0], 7);
    /* no match below ngram_min, nothing for tiny or bad input */
    const int32_t t5[] = {1, 2, 3, 4, 5, 3};
    ck_assert_int_eq(spec_ngram_propose(t5, 6, 2, 3, 4, d, &m), 0);
    ck_assert_int_eq(m, 0);
    ck_assert_int_eq(spec_ngram_propose(t5, 6, 1, 3, 4, d, &m), 3);
    ck_assert_int_eq(d[0], 4);
    ck_assert_int_eq(spec_ngram_propose(t5, 1, 1, 3, 4, d, &m), 0);
    ck_assert_int_eq(spec_ngram_propose(t5, 6, 1, 3, 0, d, &m), 0);
    ck_assert_int_eq(spec_ngram_propose(t5, 6, 0, 3, 4, d, &m), 0);
    ck_assert_int_eq(spec_ngram_propose(t5, 6, 3, 2, 4, d, &m), 0);
    ck_assert_int_eq(spec_ngram_propose(NULL, 6, 1, 3, 4, d, &m), 0);
}
END_TEST

/* The definition, written the slow obvious way. */
static int ref_propose(const int32_t *t, int n, int lo, int hi, int k, int32_t *d, int *mm)
{
    for (int m = hi; m >= lo; m--) {
        if (m >= n) continue;
        int best = -1;
        for (int j = 0; j + m < n; j++) {
            int eq = 1;
            for (int i = 0; i < m; i++) eq &= t[j + i] == t[n - m + i];
            if (eq) best = j;
        }
        if (best >= 0) {
            int c = 0;
            while (c < k && best + m + c < n) { d[c] = t[best + m + c]; c++; }
            *mm = m;
            return c;
        }
    }
    *mm = 0;
    return 0;
}

START_TEST(test_spec_propose_random)
{
    unsigned s = 12345;
    int32_t t[200], d[16], rd[16];
    for (int it = 0; it < 3000; it++) {
        s = s * 1664525u + 1013904223u;
        int n = 1 + (int)((s >> 8) % 200u);
        int alpha = 2 + (int)((s >> 20) % 6u);   /* small alphabets so matches happen */
        for (int i = 0; i < n; i++) {
            s = s * 1664525u + 1013904223u;
            t[i] = (int32_t)((s >> 12) % (unsigned)alpha);
        }
        int lo = 1 + it % 4, hi = lo + (it / 4) % 4, k = 1 + (it / 16) % 8;
        int m, rm;
        int c = spec_ngram_propose(t, n, lo, hi, k, d, &m);
        int rc = ref_propose(t, n, lo, hi, k, rd, &rm);
        ck_assert_int_eq(c, rc);
        ck_assert_int_eq(m, rm);
        for (int i = 0; i < c; i++) ck_assert_int_eq(d[i], rd[i]);
    }
}
END_TEST

START_TEST(test_spec_accept_greedy)
{
    const int32_t dr[] = {4, 5, 6};
    const int32_t all[] = {4, 5, 6, 9};
    const int32_t two[] = {4, 5, 7, 9};
    const int32_t none[] = {3, 5, 6, 9};
    ck_assert_int_eq(spec_accept_greedy(dr, 3, all), 3);   /* then bonus all[3] */
    ck_assert_int_eq(spec_accept_greedy(dr, 3, two), 2);   /* bonus two[2] = 7 */
    ck_assert_int_eq(spec_accept_greedy(dr, 3, none), 0);  /* bonus 3: a plain decode */
    ck_assert_int_eq(spec_accept_greedy(dr, 0, none), 0);
}
END_TEST

/* Speculative sampling must leave the distribution unchanged: over many
 * uniforms, the histogram of outputs matches p whatever the draft. */
START_TEST(test_spec_sample_distribution)
{
    enum { V = 6, N = 200000 };
    const float p[V] = {0.05f, 0.30f, 0.0f, 0.15f, 0.40f, 0.10f};
    int32_t out;
    ck_assert_int_eq(spec_sample_verify(p, V, -1, 0.5, 0.5, &out), -EINVAL);
    ck_assert_int_eq(spec_sample_verify(p, V, V, 0.5, 0.5, &out), -EINVAL);
    for (int x = 0; x < V; x++) {
        unsigned long long s = 88172645463325252ull + (unsigned)x;
        int hist[V] = {0}, acc = 0, bad = 0;
        for (int i = 0; i < N; i++) {
            s ^= s << 13; s ^= s >> 7; s ^= s << 17;
            double u1 = (double)(s >> 11) / 9007199254740992.0;
            s ^= s << 13; s ^= s >> 7; s ^= s << 17;
            double u2 = (double)(s >> 11) / 9007199254740992.0;
            int r = spec_sample_verify(p, V, x, u1, u2, &out);
            /* plain checks in the loop: ck_assert per draw is slow in fork mode */
            if ((r != 0 && r != 1) || out < 0 || out >= V || (r == 1) != (out == x)) bad++;
            else { acc += r; hist[out]++; }
        }
        ck_assert_int_eq(bad, 0);
        /* acceptance rate is p[x]; each frequency within 5 sigma of p */
        double sd = sqrt(0.25 / N);
        ck_assert_msg(fabs((double)acc / N - p[x]) < 5 * sd, "x=%d acc=%d", x, acc);
        for (int v = 0; v < V; v++)
            ck_assert_msg(fabs((double)hist[v] / N - p[v]) < 5 * sd,
                          "x=%d v=%d freq=%f p=%f", x, v, (double)hist[v] / N, (double)p[v]);
        ck_assert_int_eq(hist[2], 0);   /* zero-probability tokens never come out */
    }
    /* a certain draft is always accepted */
    const float one[3] = {0.0f, 1.0f, 0.0f};
    ck_assert_int_eq(spec_sample_verify(one, 3, 1, 0.999999, 0.3, &out), 1);
    ck_assert_int_eq(out, 1);
}
END_TEST

/* The server flags (server/args.c): defaults, resolution of one n-gram
 * size from the other, and clear errors for impossible settings. */
static int parse_flags(struct srv_args *a, char *err, int argc, char **argv)
{
    char *env[] = {NULL};
    return srv_args_parse(a, argc, argv, env, NULL, 0, NULL, true, err, 256);
}

START_TEST(test_spec_flags)
{
    struct srv_args a;
    char err[256];
    char *f0[] = {"--model", "m"};
    ck_assert_int_eq(parse_flags(&a, err, 2, f0), 0);
    ck_assert_int_eq(a.num_speculative_tokens, 0);
    ck_assert_str_eq(a.speculative, "ngram");
    ck_assert_int_eq(a.ngram_min, SPEC_NGRAM_MIN_DEFAULT);
    ck_assert_int_eq(a.ngram_max, SPEC_NGRAM_MAX_DEFAULT);
    char *f1[] = {"--model", "m", "--speculative", "ngram", "--num-speculative-tokens", "4",
                  "--ngram-min", "2", "--ngram-max=3"};
    ck_assert_int_eq(parse_flags(&a, err, 9, f1), 0);
    ck_assert_int_eq(a.num_speculative_tokens, 4);
    ck_assert_int_eq(a.ngram_min, 2);
    ck_assert_int_eq(a.ngram_max, 3);
    char *f2[] = {"--model", "m", "--num-speculative-tokens", "4", "--ngram-max", "2"};
    ck_assert_int_eq(parse_flags(&a, err, 6, f2), 0);
    ck_assert_int_eq(a.ngram_min, 2);   /* the default 5 would not fit under 2 */
    ck_assert_int_eq(a.ngram_max, 2);
    char *f3[] = {"--model", "m", "--ngram-min", "8"};
    ck_assert_int_eq(parse_flags(&a, err, 4, f3), 0);
    ck_assert_int_eq(a.ngram_max, 8);
    char *f4[] = {"--model", "m", "--speculative", "off", "--num-speculative-tokens", "3"};
    ck_assert_int_eq(parse_flags(&a, err, 6, f4), 0);
    ck_assert_str_eq(a.speculative, "off");
    char *b1[] = {"--model", "m", "--num-speculative-tokens", "4", "--ngram-min", "4", "--ngram-max", "3"};
    ck_assert_int_eq(parse_flags(&a, err, 8, b1), -1);
    ck_assert_ptr_nonnull(strstr(err, "ngram"));
    char *b2[] = {"--model", "m", "--speculative", "eagle"};
    ck_assert_int_eq(parse_flags(&a, err, 4, b2), -1);
    char *b3[] = {"--model", "m", "--num-speculative-tokens", "17"};
    ck_assert_int_eq(parse_flags(&a, err, 4, b3), -1);
    char *b4[] = {"--model", "m", "--ngram-min", "0"};
    ck_assert_int_eq(parse_flags(&a, err, 4, b4), -1);
}
END_TEST

Suite *spec_suite(void)
{
    Suite *s = suite_create("spec");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_spec_cfg);
    tcase_add_test(tc, test_spec_propose_examples);
    tcase_add_test(tc, test_spec_propose_random);
    tcase_add_test(tc, test_spec_accept_greedy);
    tcase_add_test(tc, test_spec_sample_distribution);
    tcase_add_test(tc, test_spec_flags);
    suite_add_tcase(s, tc);
    return s;
}
