/* tests/unit/check_sampling.c: engine/sampling.c filters, penalties,
 * logit_bias, seeded determinism and log-prob correctness. */
#include <check.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/philox.h"
#include "engine/sampling.h"

#define V 64

static void make_logits(float *l, int n, unsigned s)
{
    for (int i = 0; i < n; i++) {
        s = s * 1103515245u + 12345u;
        l[i] = (float)((s >> 8) % 1000) / 100.0f - 5.0f;
    }
}

static int sample1(struct samp_ctx *c, const float *l, const struct samp_params *p, uint64_t seed,
                   uint64_t ctr)
{
    struct samp_result r;
    ck_assert_int_eq(samp_sample(c, l, p, NULL, 0, NULL, 0, NULL, 0, seed, 0, ctr, 0, &r), 0);
    return r.token;
}

START_TEST(test_greedy_argmax_and_tie)
{
    struct samp_ctx *c = samp_ctx_create(V);
    float l[V];
    make_logits(l, V, 1);
    l[17] = 50.0f;
    struct samp_params p;
    samp_params_init(&p);
    p.temperature = 0.0f;
    ck_assert_int_eq(sample1(c, l, &p, 1, 0), 17);
    l[9] = 50.0f; /* tie: lowest id */
    ck_assert_int_eq(sample1(c, l, &p, 1, 0), 9);
    samp_ctx_destroy(c);
}
END_TEST

START_TEST(test_logprobs_raw)
{
    struct samp_ctx *c = samp_ctx_create(V);
    float l[V];
    make_logits(l, V, 2);
    double s = 0.0;
    for (int i = 0; i < V; i++) s += exp(l[i]);
    struct samp_params p;
    samp_params_init(&p);
    p.temperature = 0.0f;
    p.logit_bias = (struct samp_bias[]){{3, 100.0f}};
    p.num_logit_bias = 1;
    struct samp_result r;
    ck_assert_int_eq(samp_sample(c, l, &p, NULL, 0, NULL, 0, NULL, 0, 0, 0, 0, 5, &r), 0);
    ck_assert_int_eq(r.token, 3); /* bias decides the token ... */
    /* ... but the reported logprob is the raw model one */
    ck_assert(fabs(r.logprob - (l[3] - log(s))) < 1e-4);
    ck_assert_int_eq(r.num_top, 5);
    for (int i = 0; i < 5; i++) {
        ck_assert(fabs(r.top[i].logprob - (l[r.top[i].token] - log(s))) < 1e-4);
        if (i) ck_assert(r.top[i].logprob <= r.top[i - 1].logprob);
    }
    /* top[0] is the raw argmax */
    int am = 0;
    for (int i = 1; i < V; i++) if (l[i] > l[am]) am = i;
    ck_assert_int_eq(r.top[0].token, am);
    struct samp_result q;
    ck_assert_int_eq(samp_logprobs(c, l, 7, 2, &q), 0);
    ck_assert(fabs(q.logprob - (l[7] - log(s))) < 1e-4);
    ck_assert_int_eq(q.top[0].token, am);
    ck_assert_int_eq(samp_logprobs(c, l, V, 2, &q), -EINVAL);
    samp_ctx_destroy(c);
}
END_TEST

START_TEST(test_seed_determinism)
{
    struct samp_ctx *c = samp_ctx_create(V);
    float l[V];
    make_logits(l, V, 3);
    struct samp_params p;
    samp_params_init(&p);
    p.temperature = 1.5f;
    int a[32], b[32], diff = 0;
    for (int i = 0; i < 32; i++) a[i] = sample1(c, l, &p, 42, (uint64_t)i);
    /* interleave other work on the same context: must not matter */
    for (int i = 0; i < 32; i++) {
        (void)sample1(c, l, &p, 7, (uint64_t)i * 3);
        b[i] = sample1(c, l, &p, 42, (uint64_t)i);
    }
    for (int i = 0; i < 32; i++) ck_assert_int_eq(a[i], b[i]);
    for (int i = 0; i < 32; i++) diff += sample1(c, l, &p, 43, (uint64_t)i) != a[i];
    ck_assert_int_gt(diff, 0);
    /* stream separates choices */
    ck_assert(samp_rng_uniform(1, 0, 5) != samp_rng_uniform(1, 1, 5));
    samp_ctx_destroy(c);
}
END_TEST

/* Philox4x32-10 against Random123's known-answer vectors, and the uniform
 * built on it: in [0, 1), keyed by all three of seed, stream and counter,
 * and roughly uniform (mean and a 16-bin chi-square over 64k draws). */
START_TEST(test_philox_known_answers)
{
    static const uint32_t in[3][6] = {
        { 0, 0, 0, 0, 0, 0 },
        { 0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu },
        { 0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u, 0xa4093822u, 0x299f31d0u },
    };
    static const uint32_t out[3][4] = {
        { 0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u },
        { 0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu },
        { 0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u },
    };
    for (int v = 0; v < 3; v++) {
        uint32_t c[4] = { in[v][0], in[v][1], in[v][2], in[v][3] };
        philox4x32_10(c, in[v][4], in[v][5]);
        for (int i = 0; i < 4; i++) ck_assert_uint_eq(c[i], out[v][i]);
    }
    double u0 = samp_rng_uniform(7, 1, 9);
    ck_assert(u0 != samp_rng_uniform(8, 1, 9));
    ck_assert(u0 != samp_rng_uniform(7, 2, 9));
    ck_assert(u0 != samp_rng_uniform(7, 1, 10));
    ck_assert(u0 == samp_rng_uniform(7, 1, 9));
    int bins[16] = { 0 };
    double mean = 0;
    const int n = 65536;
    for (int i = 0; i < n; i++) {
        double u = samp_rng_uniform(12345, (uint64_t)i & 3, (uint64_t)i >> 2);
        ck_assert(u >= 0.0 && u < 1.0);
        mean += u / n;
        bins[(int)(u * 16)]++;
    }
    double chi2 = 0, e = n / 16.0;
    for (int b = 0; b < 16; b++) chi2 += (bins[b] - e) * (bins[b] - e) / e;
    ck_assert(fabs(mean - 0.5) < 0.01);
    ck_assert_msg(chi2 < 37.7, "chi2 %.1f over 15 dof (p 0.001 cut 37.7)", chi2);
}
END_TEST

START_TEST(test_top_k)
{
    struct samp_ctx *c = samp_ctx_create(V);
    float l[V];
    make_logits(l, V, 4);
    struct samp_params p;
    samp_params_init(&p);
    p.temperature = 5.0f; /* flat: without top_k anything would come */
    p.top_k = 3;
    /* the 3 largest ids */
    int top[3] = {-1, -1, -1};
    for (int k = 0; k < 3; k++) {
        int best = -1;
        for (int i = 0; i < V; i++) {
            if (i == top[0] || i == top[1]) continue;
            if (best < 0 || l[i] > l[best]) best = i;
        }
        top[k] = best;
    }
    int seen[3] = {0, 0, 0};
    for (int i = 0; i < 400; i++) {
        int t = sample1(c, l, &p, 9, (uint64_t)i);
        ck_assert(t == top[0] || t == top[1] || t == top[2]);
        seen[t == top[0] ? 0 : t == top[1] ? 1 : 2]++;
    }
    ck_assert(seen[0] && seen[1] && seen[2]);
    p.top_k = 1;
    for (int i = 0; i < 20; i++) ck_assert_int_eq(sample1(c, l, &p, 9, (uint64_t)i), top[0]);
    samp_ctx_destroy(c);
}
END_TEST

START_TEST(test_top_p_and_min_p)
{
    struct samp_ctx *c = samp_ctx_create(V);
    float l[V];
    for (int i = 0; i < V; i++) l[i] = -20.0f;
    /* probabilities ~ 0.5, 0.3, 0.2 among ids 10, 20, 30 */
    l[10] = logf(0.5f);
    l[20] = logf(0.3f);
    l[30] = logf(0.2f);
    struct samp_params p;
    samp_params_init(&p);
    p.top_p = 0.7f; /* keeps 10 and 20 (0.5 < 0.7 <= 0.8) */
    int n10 = 0, n20 = 0;
    for (int i = 0; i < 2000; i++) {
        int t = sample1(c, l, &p, 5, (uint64_t)i);
        ck_assert(t == 10 || t == 20);
        n10 += t == 10;
        n20 += t == 20;
    }
    /* renormalised 0.625 / 0.375 */
    ck_assert(n10 > 1100 && n10 < 1400);
    p.top_p = 0.45f; /* only the first */
    for (int i = 0; i < 50; i++) ck_assert_int_eq(sample1(c, l, &p, 5, (uint64_t)i), 10);
    p.top_p = 1.0f;
    p.min_p = 0.5f; /* keeps p >= 0.25: 10 and 20 */
    for (int i = 0; i < 500; i++) {
        int t = sample1(c, l, &p, 6, (uint64_t)i);
        ck_assert(t == 10 || t == 20);
    }
    /* a big vocabulary with a long tail: the thresholded collection must be exact */
    int big = 50000;
    struct samp_ctx *cb = samp_ctx_create(big);
    float *lb = malloc(sizeof(float) * (size_t)big);
    make_logits(lb, big, 11);
    p.min_p = 0.0f;
    p.top_p = 0.9f;
    double s = 0.0;
    for (int i = 0; i < big; i++) s += exp(lb[i]);
    /* reference: sort all probabilities */
    int *idx = malloc(sizeof(int) * (size_t)big);
    for (int i = 0; i < big; i++) idx[i] = i;
    for (int i = 0; i < 200; i++) {
        int t = sample1(cb, lb, &p, 77, (uint64_t)i);
        /* every token sampled must be within the top-p set: the mass of tokens
         * strictly more likely than t must be < 0.9 */
        double above = 0.0;
        for (int j = 0; j < big; j++)
            if (lb[j] > lb[t]) above += exp(lb[j]) / s;
        ck_assert(above < 0.9 + 1e-6);
    }
    free(idx);
    free(lb);
    samp_ctx_destroy(cb);
    samp_ctx_destroy(c);
}
END_TEST

START_TEST(test_penalties)
{
    struct samp_ctx *c = samp_ctx_create(V);
    float l[V];
    for (int i = 0; i < V; i++) l[i] = 0.0f;
    l[1] = 3.0f;
    l[2] = 2.5f;
    l[3] = -1.0f;
    struct samp_params p;
    samp_params_init(&p);
    p.temperature = 0.0f;
    struct samp_result r;
    int32_t out1[] = {1, 1};
    /* frequency: 3 - 2*0.5 = 2 < 2.5 -> 2 wins */
    p.frequency_penalty = 0.5f;
    ck_assert_int_eq(samp_sample(c, l, &p, NULL, 0, out1, 2, NULL, 0, 0, 0, 0, 0, &r), 0);
    ck_assert_int_eq(r.token, 2);
    /* one occurrence: 3 - 0.5 = 2.5 ties with id 2, the lower id (1) wins */
    ck_assert_int_eq(samp_sample(c, l, &p, NULL, 0, out1, 1, NULL, 0, 0, 0, 0, 0, &r), 0);
    ck_assert_int_eq(r.token, 1);
    /* presence: once per distinct id, 3 - 0.6 = 2.4 < 2.5 */
    p.frequency_penalty = 0.0f;
    p.presence_penalty = 0.6f;
    ck_assert_int_eq(samp_sample(c, l, &p, NULL, 0, out1, 2, NULL, 0, 0, 0, 0, 0, &r), 0);
    ck_assert_int_eq(r.token, 2);
    p.presence_penalty = 0.4f; /* 2.6 > 2.5 whatever the count */
    ck_assert_int_eq(samp_sample(c, l, &p, NULL, 0, out1, 2, NULL, 0, 0, 0, 0, 0, &r), 0);
    ck_assert_int_eq(r.token, 1);
    /* negative presence encourages */
    p.presence_penalty = -1.0f;
    int32_t out3[] = {3};
    l[3] = 2.2f;
    ck_assert_int_eq(samp_sample(c, l, &p, NULL, 0, out3, 1, NULL, 0, 0, 0, 0, 0, &r), 0);
    ck_assert_int_eq(r.token, 3);
    l[3] = -1.0f;
    p.presence_penalty = 0.0f;
    /* repetition: prompt tokens count too; 3/1.5 = 2 < 2.5, applied once
     * though the id repeats in prompt and output */
    p.repetition_penalty = 1.5f;
    int32_t prm[] = {1, 1};
    ck_assert_int_eq(samp_sample(c, l, &p, prm, 2, out1, 2, NULL, 0, 0, 0, 0, 0, &r), 0);
    ck_assert_int_eq(r.token, 2);
    p.repetition_penalty = 1.1f; /* 3/1.1 = 2.73 > 2.5 (twice would be 2.48) */
    ck_assert_int_eq(samp_sample(c, l, &p, prm, 2, out1, 2, NULL, 0, 0, 0, 0, 0, &r), 0);
    ck_assert_int_eq(r.token, 1);
    /* negative logits are multiplied: with everything else banned, -1*1.5 still
     * beats -inf, and the penalty must not flip the sign */
    samp_ctx_destroy(c);
}
END_TEST

START_TEST(test_bias_and_ban)
{
    struct samp_ctx *c = samp_ctx_create(V);
    float l[V];
    make_logits(l, V, 5);
    struct samp_params p;
    samp_params_init(&p);
    p.temperature = 1.0f;
    struct samp_bias b[] = {{40, 100.0f}};
    p.logit_bias = b;
    p.num_logit_bias = 1;
    for (int i = 0; i < 50; i++) ck_assert_int_eq(sample1(c, l, &p, 3, (uint64_t)i), 40);
    int32_t ban[] = {40};
    struct samp_result r;
    for (int i = 0; i < 50; i++) {
        ck_assert_int_eq(samp_sample(c, l, &p, NULL, 0, NULL, 0, ban, 1, 3, 0, (uint64_t)i, 0, &r), 0);
        ck_assert_int_ne(r.token, 40);
    }
    /* -100 on every id: sampling still returns a valid token */
    struct samp_bias all[V];
    for (int i = 0; i < V; i++) { all[i].token = i; all[i].bias = -100.0f; }
    p.logit_bias = all;
    p.num_logit_bias = V;
    int t = sample1(c, l, &p, 3, 0);
    ck_assert(t >= 0 && t < V);
    samp_ctx_destroy(c);
}
END_TEST

START_TEST(test_validate)
{
    struct samp_params p;
    char err[128];
    samp_params_init(&p);
    ck_assert_int_eq(samp_params_validate(&p, V, err, sizeof err), 0);
    p.temperature = -1.0f;
    ck_assert_int_eq(samp_params_validate(&p, V, err, sizeof err), -EINVAL);
    ck_assert(strstr(err, "temperature") != NULL);
    samp_params_init(&p);
    p.top_p = 0.0f;
    ck_assert_int_eq(samp_params_validate(&p, V, err, sizeof err), -EINVAL);
    ck_assert(strstr(err, "top_p") != NULL);
    samp_params_init(&p);
    p.logit_bias = (struct samp_bias[]){{V, 1.0f}};
    p.num_logit_bias = 1;
    ck_assert_int_eq(samp_params_validate(&p, V, err, sizeof err), -EINVAL);
    ck_assert(strstr(err, "logit_bias") != NULL);
    samp_params_init(&p);
    p.repetition_penalty = 0.0f;
    ck_assert_int_eq(samp_params_validate(&p, V, err, sizeof err), -EINVAL);
    samp_params_init(&p);
    p.top_k = -5;
    ck_assert_int_eq(samp_params_validate(&p, V, err, sizeof err), -EINVAL);
}
END_TEST

Suite *sampling_suite(void)
{
    Suite *s = suite_create("sampling");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_greedy_argmax_and_tie);
    tcase_add_test(tc, test_logprobs_raw);
    tcase_add_test(tc, test_seed_determinism);
    tcase_add_test(tc, test_philox_known_answers);
    tcase_add_test(tc, test_top_k);
    tcase_add_test(tc, test_top_p_and_min_p);
    tcase_add_test(tc, test_penalties);
    tcase_add_test(tc, test_bias_and_ban);
    tcase_add_test(tc, test_validate);
    suite_add_tcase(s, tc);
    return s;
}
