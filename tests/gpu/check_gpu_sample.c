/* tests/gpu/check_gpu_sample.c: the device sampler (kernels/cuda/sample.cu
 * through engine/cuda/cuda_sample.c) against the CPU sampler samp_sample on
 * fresh random logits: vocab 100352 and small vocabularies, a grid of
 * parameter combinations (greedy, temperature, top_k, top_p on both of its
 * paths, min_p, each penalty, logit_bias, bans, 0..20 log-probs), many
 * seeds, several jobs sharing one logits row. Tokens must be identical and
 * log-probs within 1e-4. The only allowed token mismatch is a near-tie: the
 * kernel reports how close its closest float decision came to a threshold
 * (margin, relative to the total mass or to the min_p threshold), and a
 * mismatch counts as a tie only with margin < 2.5e-7, two float ulps: the
 * GPU's expf differs from glibc's by at most 2 ulps per term, and the
 * summation order only at double precision. (A flat 100k-vocabulary row has
 * CDF steps of ~1e-5, so a looser bound would excuse real bugs.) At most
 * 1 in 500 jobs may be such a tie; the emulator (glibc expf on both sides)
 * must match exactly.
 *
 * Also the device uniform against samp_rng_uniform, capacity errors, and
 * (check_gpu_sample_sched.c) whole scheduler runs on both backends.
 *
 * GPU test binary, CK_NOFORK, single-threaded.
 */
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/cuda/cuda_sample.h"
#include "engine/sampling.h"
#include "tests/gpu/gpu_util.h"

static uint64_t rng64(void) { return ((uint64_t)gu_int(0, 0x7fffffff) << 33) ^ (uint64_t)gu_int(0, 0x7fffffff) * 2654435761u; }

START_TEST(test_sample_uniform)
{
    enum { N = 4096 };
    uint64_t *keys = malloc(sizeof(uint64_t) * 3 * N);
    double *got = malloc(sizeof(double) * N);
    ck_assert(keys && got);
    gu_seed(77);
    for (int i = 0; i < N; i++) {
        keys[3 * i] = i < 16 ? (uint64_t)i : rng64();
        keys[3 * i + 1] = (uint64_t)(i % 5);
        keys[3 * i + 2] = i < 64 ? (uint64_t)i : rng64();
    }
    uint64_t *dk = gu_dev(sizeof(uint64_t) * 3 * N);
    double *dout = gu_dev(sizeof(double) * N);
    gu_up(dk, keys, sizeof(uint64_t) * 3 * N);
    ck_assert_int_eq(kern_samp_uniform(dk, N, dout, 0), 0);
    gu_sync();
    gu_down(got, dout, sizeof(double) * N);
    for (int i = 0; i < N; i++) {
        double ref = samp_rng_uniform(keys[3 * i], keys[3 * i + 1], keys[3 * i + 2]);
        ck_assert_msg(got[i] == ref, "key %d: device %.17g host %.17g", i, got[i], ref);
    }
    printf("  device uniform == samp_rng_uniform on %d keys\n", N);
    free(keys);
    free(got);
    gu_free_all();
}
END_TEST

/* --- the comparison grid ------------------------------------------------------- */

enum { DIST_SPREAD, DIST_FLAT, DIST_PEAKED, DIST_TIES, NDIST };

static void fill_row(float *x, int V, int dist)
{
    switch (dist) {
    case DIST_SPREAD: /* a realistic spread: most mass on a few hundred ids */
        for (int i = 0; i < V; i++)
            x[i] = gu_unif(-4, 4) + (gu_int(0, 99) == 0 ? gu_unif(2, 8) : 0.0f);
        break;
    case DIST_FLAT: /* top_p's bisection path (thousands of candidates) */
        gu_fill(x, (size_t)V, -1, 1);
        break;
    case DIST_PEAKED:
        for (int i = 0; i < V; i++)
            x[i] = gu_unif(-12, 0);
        for (int k = 0; k < 6; k++)
            x[gu_int(0, V - 1)] = gu_unif(2, 6);
        break;
    default: /* coarse values: ties everywhere (argmax, top_k, top_p sort) */
        for (int i = 0; i < V; i++)
            x[i] = (float)gu_int(-8, 4) * 0.5f;
        break;
    }
}

struct combo {
    const char *name;
    float temp, top_p, min_p, rep, freq, pres;
    int top_k, nbias, nban, hist;
};

static const struct combo COMBOS[] = {
    {"greedy", 0, 1, 0, 1, 0, 0, -1, 0, 0, 0},
    {"greedy+bias+ban", 0, 1, 0, 1, 0, 0, -1, 6, 3, 0},
    {"greedy+rep", 0, 1, 0, 1.3f, 0, 0, -1, 0, 0, 40},
    {"temp1", 1, 1, 0, 1, 0, 0, -1, 0, 0, 0},
    {"temp0.7", 0.7f, 1, 0, 1, 0, 0, -1, 0, 0, 0},
    {"temp2.5", 2.5f, 1, 0, 1, 0, 0, -1, 0, 0, 0},
    {"top_k1", 1, 1, 0, 1, 0, 0, 1, 0, 0, 0},
    {"top_k5", 0.9f, 1, 0, 1, 0, 0, 5, 0, 0, 0},
    {"top_k50", 1, 1, 0, 1, 0, 0, 50, 0, 0, 0},
    {"top_p0.9", 1, 0.9f, 0, 1, 0, 0, -1, 0, 0, 0},
    {"top_p0.5", 0.8f, 0.5f, 0, 1, 0, 0, -1, 0, 0, 0},
    {"top_p0.99", 1.3f, 0.99f, 0, 1, 0, 0, -1, 0, 0, 0},
    {"min_p0.05", 1, 1, 0.05f, 1, 0, 0, -1, 0, 0, 0},
    {"min_p0.3", 1.5f, 1, 0.3f, 1, 0, 0, -1, 0, 0, 0},
    {"rep1.3", 1, 1, 0, 1.3f, 0, 0, -1, 0, 0, 60},
    {"rep0.8", 1, 1, 0, 0.8f, 0, 0, -1, 0, 0, 60},
    {"freq", 1, 1, 0, 1, 0.6f, 0, -1, 0, 0, 60},
    {"pres", 1, 1, 0, 1, 0, -1.1f, -1, 0, 0, 60},
    {"all-penalties", 0.9f, 1, 0, 1.2f, 0.4f, 0.3f, -1, 0, 0, 200},
    {"bias", 1, 1, 0, 1, 0, 0, -1, 12, 0, 0},
    {"bans", 1, 1, 0, 1, 0, 0, -1, 0, 20, 0},
    {"k+p+min_p", 0.8f, 0.9f, 0.05f, 1, 0, 0, 40, 0, 0, 0},
    {"everything", 0.7f, 0.95f, 0.02f, 1.1f, 0.2f, 0.1f, 100, 8, 4, 120},
};
#define NCOMBO ((int)(sizeof COMBOS / sizeof COMBOS[0]))

struct grid_stats {
    int jobs, ties, tok_checked, lp_checked;
    double max_lp;
};

/* One batch: R logits rows of vocab V, J jobs (J >= R: the extra jobs share
 * rows, as n>1 choices do), every job a random combo and key. */
static void run_batch(struct cu_sampler *smp, int V, int R, int J, int dist, struct samp_ctx *ctx,
                      struct grid_stats *st)
{
    float *lg = malloc(sizeof(float) * (size_t)R * V);
    struct eng_sample_row *rows = calloc((size_t)J, sizeof *rows);
    struct samp_params *ps = calloc((size_t)J, sizeof *ps);
    struct samp_bias *bias = calloc((size_t)J * 16, sizeof *bias);
    int32_t *hist = malloc(sizeof(int32_t) * (size_t)J * 400);
    int32_t *ban = malloc(sizeof(int32_t) * (size_t)J * 24);
    struct samp_result *got = calloc((size_t)J, sizeof *got);
    float *marg = calloc((size_t)J, sizeof *marg);
    ck_assert(lg && rows && ps && bias && hist && ban && got && marg);
    for (int r = 0; r < R; r++)
        fill_row(lg + (size_t)r * V, V, dist);
    for (int j = 0; j < J; j++) {
        const struct combo *c = &COMBOS[gu_int(0, NCOMBO - 1)];
        struct samp_params *p = &ps[j];
        samp_params_init(p);
        p->temperature = c->temp;
        p->top_p = c->top_p;
        p->top_k = c->top_k > 0 && gu_int(0, 3) == 0 ? gu_int(1, 200) : c->top_k;
        p->min_p = c->min_p;
        p->repetition_penalty = c->rep;
        p->frequency_penalty = c->freq;
        p->presence_penalty = c->pres;
        int row = j < R ? j : gu_int(0, R - 1);
        const float *x = lg + (size_t)row * V;
        /* bias the current leaders and a few random ids (duplicates on purpose) */
        int nb = c->nbias < 16 ? c->nbias : 16;
        for (int b = 0; b < nb; b++) {
            int t = b % 3 == 0 ? gu_int(0, V - 1) : 0;
            if (b % 3 == 1) { /* a current top id */
                int best = 0;
                for (int i = 1; i < V; i++)
                    if (x[i] > x[best])
                        best = i;
                t = best;
            }
            if (b % 3 == 2)
                t = bias[(size_t)j * 16 + (b - 2)].token; /* duplicate */
            bias[(size_t)j * 16 + b].token = t;
            bias[(size_t)j * 16 + b].bias = b == 1 ? -100.0f : gu_unif(-5, 8);
        }
        p->logit_bias = nb ? &bias[(size_t)j * 16] : NULL;
        p->num_logit_bias = nb;
        int nban = c->nban;
        for (int b = 0; b < nban; b++)
            ban[(size_t)j * 24 + b] = gu_int(0, V - 1);
        int nh = c->hist ? gu_int(0, c->hist) : 0, npr = nh / 2, nout = nh - npr;
        int32_t *h = hist + (size_t)j * 400;
        for (int i = 0; i < nh; i++) /* small id range so tokens repeat (counts > 1) */
            h[i] = i % 4 == 0 ? gu_int(0, V - 1) : gu_int(0, V < 64 ? V - 1 : 63);
        if (nh > 2)
            h[nh - 1] = -1; /* out-of-range ids are skipped on both sides */
        rows[j].logits_row = row;
        rows[j].params = p;
        rows[j].prompt = h;
        rows[j].num_prompt = npr;
        rows[j].output = h + npr;
        rows[j].num_output = nout;
        rows[j].banned = nban ? &ban[(size_t)j * 24] : NULL;
        rows[j].num_banned = nban;
        rows[j].seed = gu_int(0, 3) == 0 ? (uint64_t)gu_int(0, 5) : rng64();
        rows[j].stream = (uint64_t)gu_int(0, 3);
        rows[j].counter = (uint64_t)gu_int(0, 5000);
        rows[j].num_logprobs = gu_int(-1, SAMP_MAX_LOGPROBS);
    }
    float *dl = gu_dev(sizeof(float) * (size_t)R * V);
    gu_up(dl, lg, sizeof(float) * (size_t)R * V);
    ck_assert_int_eq(cu_sampler_run(smp, dl, R, rows, J, got, marg), 0);
    for (int j = 0; j < J; j++) {
        const struct eng_sample_row *r = &rows[j];
        struct samp_result ref;
        ck_assert_int_eq(samp_sample(ctx, lg + (size_t)r->logits_row * V, r->params, r->prompt,
                                     r->num_prompt, r->output, r->num_output, r->banned,
                                     r->num_banned, r->seed, r->stream, r->counter,
                                     r->num_logprobs, &ref),
                         0);
        st->jobs++;
        if (got[j].token != ref.token) {
            int tie = !gu_emulated() && marg[j] < 2.5e-7f;
            printf("  mismatch V=%d dist=%d job %d: gpu %d cpu %d (margin %.3g)%s\n", V, dist, j,
                   got[j].token, ref.token, marg[j], tie ? " near-tie" : "");
            ck_assert_msg(tie, "token mismatch (V %d dist %d job %d: %d vs %d, margin %g)", V,
                          dist, j, got[j].token, ref.token, marg[j]);
            st->ties++;
            continue;
        }
        st->tok_checked++;
        ck_assert_int_eq(got[j].num_top, ref.num_top);
        if (r->num_logprobs >= 0) {
            double d = fabs((double)got[j].logprob - ref.logprob);
            ck_assert_msg(d <= 1e-4 || (isinf(got[j].logprob) && got[j].logprob == ref.logprob),
                          "logprob %g vs %g", got[j].logprob, ref.logprob);
            if (d > st->max_lp && isfinite(d))
                st->max_lp = d;
            for (int k = 0; k < ref.num_top; k++) {
                ck_assert_msg(got[j].top[k].token == ref.top[k].token,
                              "top %d: token %d vs %d", k, got[j].top[k].token,
                              ref.top[k].token);
                double dk = fabs((double)got[j].top[k].logprob - ref.top[k].logprob);
                ck_assert_msg(dk <= 1e-4, "top %d logprob %g vs %g", k, got[j].top[k].logprob,
                              ref.top[k].logprob);
                if (dk > st->max_lp)
                    st->max_lp = dk;
            }
            st->lp_checked++;
        } else {
            ck_assert(got[j].logprob == 0.0f);
        }
    }
    free(lg);
    free(rows);
    free(ps);
    free(bias);
    free(hist);
    free(ban);
    free(got);
    free(marg);
}

static const int VOCABS[] = {100352, 5003, 1000, 37, 2};
#define NVOCAB ((int)(sizeof VOCABS / sizeof VOCABS[0]))

START_TEST(test_sample_grid)
{
    const int V = VOCABS[_i];
    const int emu = gu_emulated();
    /* batches per distribution; the emulator runs every CUDA thread as a fiber */
    int batches = V >= 100000 ? (emu ? 1 : 8) : (emu ? 2 : 16);
    int R = V >= 100000 ? (emu ? 6 : 48) : 24, J = R + R / 2;
    struct cu_sampler smp;
    ck_assert_int_eq(cu_sampler_init(&smp, V, J, CU_SAMPLE_POOL_INTS, 0), 0);
    struct samp_ctx *ctx = samp_ctx_create(V);
    ck_assert(ctx != NULL);
    gu_seed(1000 + (uint64_t)V);
    struct grid_stats st = {0};
    for (int d = 0; d < NDIST; d++)
        for (int b = 0; b < batches; b++)
            run_batch(&smp, V, R, J, d, ctx, &st);
    printf("  vocab %6d: %5d jobs, %5d tokens identical, %d near-ties, %d with logprobs "
           "(max |d| %.2e)\n",
           V, st.jobs, st.tok_checked, st.ties, st.lp_checked, st.max_lp);
    ck_assert_msg(st.ties * 500 <= st.jobs, "too many near-ties: %d of %d", st.ties, st.jobs);
    samp_ctx_destroy(ctx);
    cu_sampler_fini(&smp);
    gu_free_all();
}
END_TEST

/* Capacity and argument errors are answered before anything runs. */
START_TEST(test_sample_limits)
{
    const int V = 64;
    struct cu_sampler smp;
    ck_assert_int_eq(cu_sampler_init(&smp, V, 2, 16, 0), 0);
    float *dl = gu_dev(sizeof(float) * V);
    float h[64];
    gu_fill(h, V, -1, 1);
    gu_up(dl, h, sizeof h);
    struct samp_params p;
    samp_params_init(&p);
    p.repetition_penalty = 1.5f;
    int32_t hist[40];
    for (int i = 0; i < 40; i++)
        hist[i] = i;
    struct eng_sample_row rows[3] = {{0}};
    for (int i = 0; i < 3; i++) {
        rows[i].params = &p;
        rows[i].num_logprobs = -1;
    }
    struct samp_result out[3];
    ck_assert_int_eq(cu_sampler_run(&smp, dl, 1, rows, 3, out, NULL), -E2BIG);
    ck_assert_int_eq(cu_sampler_run(&smp, dl, 1, rows, 2, out, NULL), 0);
    rows[0].prompt = hist;
    rows[0].num_prompt = 40; /* 40 distinct tokens: 80 ints > 16 */
    ck_assert_int_eq(cu_sampler_run(&smp, dl, 1, rows, 1, out, NULL), -E2BIG);
    rows[0].num_prompt = 8; /* 16 ints: fits exactly */
    ck_assert_int_eq(cu_sampler_run(&smp, dl, 1, rows, 1, out, NULL), 0);
    rows[1].logits_row = 1;
    ck_assert_int_eq(cu_sampler_run(&smp, dl, 1, rows, 2, out, NULL), -EINVAL);
    rows[1].logits_row = 0;
    rows[1].num_logprobs = SAMP_MAX_LOGPROBS + 1;
    ck_assert_int_eq(cu_sampler_run(&smp, dl, 1, rows, 2, out, NULL), -EINVAL);
    cu_sampler_fini(&smp);
    gu_free_all();
}
END_TEST

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Real GPU only: one step's sampling at batch B, vocab 100352 (typical chat
 * parameters, no log-probs, then with 5), device sampler vs what the host
 * path costs (download the rows + samp_sample over them on all cores, as
 * scheduler/step.c run_jobs does). Prints the numbers; asserts nothing
 * beyond the runs succeeding. */
START_TEST(test_sample_timing)
{
    if (gu_emulated()) {
        printf("  timing: skipped on the emulator\n");
        return;
    }
    const int V = 100352, B = 256, iters = 20;
    struct cu_sampler smp;
    ck_assert_int_eq(cu_sampler_init(&smp, V, B, CU_SAMPLE_POOL_INTS, 0), 0);
    float *lg = malloc(sizeof(float) * (size_t)B * V);
    ck_assert(lg != NULL);
    gu_seed(9);
    for (int r = 0; r < B; r++)
        fill_row(lg + (size_t)r * V, V, DIST_SPREAD);
    float *dl = gu_dev(sizeof(float) * (size_t)B * V);
    gu_up(dl, lg, sizeof(float) * (size_t)B * V);
    struct samp_params p;
    samp_params_init(&p);
    p.temperature = 0.8f;
    p.top_p = 0.95f;
    struct eng_sample_row *rows = calloc(B, sizeof *rows);
    struct samp_result *out = calloc(B, sizeof *out);
    ck_assert(rows && out);
    int nth = omp_get_max_threads();
    struct samp_ctx **ctx = calloc((size_t)nth, sizeof *ctx);
    for (int t = 0; t < nth; t++)
        ck_assert((ctx[t] = samp_ctx_create(V)) != NULL);
    for (int lp = 0; lp <= 5; lp += 5) {
        for (int b = 0; b < B; b++)
            rows[b] = (struct eng_sample_row){.logits_row = b, .params = &p, .seed = (uint64_t)b,
                                              .counter = 7, .num_logprobs = lp ? lp : -1};
        ck_assert_int_eq(cu_sampler_run(&smp, dl, B, rows, B, out, NULL), 0); /* warm-up */
        double t0 = now_s();
        for (int it = 0; it < iters; it++)
            ck_assert_int_eq(cu_sampler_run(&smp, dl, B, rows, B, out, NULL), 0);
        double dev = (now_s() - t0) / iters;
        t0 = now_s();
        for (int it = 0; it < 3; it++) {
            gu_down(lg, dl, sizeof(float) * (size_t)B * V);
#pragma omp parallel for schedule(dynamic, 1)
            for (int b = 0; b < B; b++)
                samp_sample(ctx[omp_get_thread_num()], lg + (size_t)b * V, &p, NULL, 0, NULL, 0,
                            NULL, 0, (uint64_t)b, 0, 7, lp ? lp : -1, &out[b]);
        }
        double host = (now_s() - t0) / 3;
        printf("  timing B=%d V=%d T=0.8 top_p=0.95 logprobs=%d: device %.3f ms/step, host path "
               "(D2H + %d CPU threads) %.3f ms/step\n",
               B, V, lp, dev * 1e3, nth, host * 1e3);
    }
    for (int t = 0; t < nth; t++)
        samp_ctx_destroy(ctx[t]);
    free(ctx);
    free(rows);
    free(out);
    free(lg);
    cu_sampler_fini(&smp);
    gu_free_all();
}
END_TEST

Suite *gpu_sample_suite(void)
{
    Suite *s = suite_create("gpu_sample");
    TCase *tc = tcase_create("sample");
    tcase_set_timeout(tc, 900);
    tcase_add_test(tc, test_sample_uniform);
    tcase_add_loop_test(tc, test_sample_grid, 0, NVOCAB);
    tcase_add_test(tc, test_sample_limits);
    tcase_add_test(tc, test_sample_timing);
    suite_add_tcase(s, tc);
    suite_add_tcase(s, gpu_sample_sched_tcase());
    return s;
}
