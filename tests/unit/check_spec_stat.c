/* tests/unit/check_spec_stat.c: with sampling, speculative decoding leaves
 * the token distribution unchanged (issue 9, item 4): a chi-square test over
 * many seeds.
 *
 * The fake engine runs in its "markov" mode, where the logits after a token
 * depend on that token only, so the exact next-token distribution
 * p(. | c) = softmax(logits(c) / T) is known to the test for every context c.
 * 800 seeded requests at temperature 0.4 run through the scheduler with n-gram
 * speculation always on (1-gram drafts, 4 per step, no adaptation): most
 * tokens come out of verify rows, both accepted drafts and the first
 * rejected position. Every emitted transition c -> x is counted and the
 * counts are tested against p(. | c) (Pearson chi-square, bins pooled to an
 * expected count >= 5, critical value at p = 1e-4). The same statistic is
 * shown to have power: samples from a biased acceptance rule (the draft
 * accepted with probability min(1, 1.3 p(x))) over the same contexts must
 * fail it, and samples from the rule (spec_sample_verify: accept
 * x with probability p(x), else sample p with x removed) must pass. Seeds
 * are fixed, so the outcome is deterministic.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scheduler/sched.h"
#include "scheduler/spec.h"
#include "tests/unit/util_fake_engine.h"
#include "tests/unit/util_sched.h"

#define V 32
#define NREQ 800
#define MT 24
#define PL V /* the prompt holds every token once: the 1-gram drafter always finds a match */
#define BATCH 64
#define TEMP 0.4 /* peaked enough that drafts are often right */

static double g_p[V][V]; /* g_p[c][x] = p(x | c) at temperature TEMP */

static void exact_p(void)
{
    float lg[V];
    for (int c = 0; c < V; c++) {
        fake_engine_markov_logits(V, c, lg);
        double mx = lg[0], z = 0;
        for (int x = 1; x < V; x++) mx = lg[x] > mx ? lg[x] : mx;
        for (int x = 0; x < V; x++) z += exp(((double)lg[x] - mx) / TEMP);
        for (int x = 0; x < V; x++) g_p[c][x] = exp(((double)lg[x] - mx) / TEMP) / z;
    }
}

/* Pearson chi-square of counts[c][x] against g_p[c][x] summed over contexts;
 * per context, bins with expected < 5 are pooled (and the pool merged into
 * the smallest kept bin when it is itself below 5). Returns the statistic,
 * *df its degrees of freedom. */
static double chi2(const long counts[V][V], int *df)
{
    double stat = 0;
    *df = 0;
    for (int c = 0; c < V; c++) {
        long n = 0;
        for (int x = 0; x < V; x++) n += counts[c][x];
        if (n < 50) continue;
        double eo[V + 1][2]; /* expected, observed per bin */
        int nb = 0;
        double pe = 0, po = 0;
        for (int x = 0; x < V; x++) {
            double e = (double)n * g_p[c][x];
            if (e >= 5) {
                eo[nb][0] = e;
                eo[nb][1] = (double)counts[c][x];
                nb++;
            } else {
                pe += e;
                po += (double)counts[c][x];
            }
        }
        if (pe >= 5 || nb == 0) {
            eo[nb][0] = pe;
            eo[nb][1] = po;
            nb++;
        } else if (pe > 0 || po > 0) {
            int m = 0;
            for (int b = 1; b < nb; b++) m = eo[b][0] < eo[m][0] ? b : m;
            eo[m][0] += pe;
            eo[m][1] += po;
        }
        if (nb < 2) continue;
        for (int b = 0; b < nb; b++) stat += (eo[b][1] - eo[b][0]) * (eo[b][1] - eo[b][0]) / eo[b][0];
        *df += nb - 1;
    }
    return stat;
}

/* Wilson-Hilferty: the chi-square quantile for df at standard normal z. */
static double chi2_crit(int df, double z)
{
    double a = 2.0 / (9.0 * df);
    double t = 1.0 - a + z * sqrt(a);
    return df * t * t * t;
}
#define Z_1E4 3.719 /* one-sided p = 1e-4 */

static long g_counts[V][V];
static struct ts_out g_out[NREQ];
static int32_t g_prompt[NREQ][PL];

/* Runs NREQ seeded requests (k drafts per step, 0 = plain) and counts every
 * emitted transition. Returns the scheduler's stats. */
static void run(int k, struct sched_stats *st)
{
    int eos = V - 1;
    struct engine *e = fake_engine_create(V, &eos, 1, 256, 512, 16, BATCH * 7);
    ck_assert_ptr_nonnull(e);
    fake_engine_set_markov_from(e, 0);
    struct sched_config c;
    sched_config_init(&c);
    c.eng = e;
    c.max_num_seqs = BATCH;
    c.max_num_batched_tokens = 1024;
    c.max_model_len = 256;
    c.default_seed = 1;
    c.log_requests = false;
    c.num_speculative_tokens = k;
    c.ngram_min = 1;
    c.ngram_max = 1;
    c.spec_min_acceptance = 0.0; /* always draft: the test is about acceptance */
    char err[256];
    struct sched *s = sched_create(&c, err, sizeof err);
    ck_assert_msg(s != NULL, "%s", err);
    memset(g_counts, 0, sizeof g_counts);
    for (int b0 = 0; b0 < NREQ; b0 += BATCH) {
        struct sched_request *rq[BATCH];
        int nb = NREQ - b0 < BATCH ? NREQ - b0 : BATCH;
        for (int i = 0; i < nb; i++) {
            int id = b0 + i;
            for (int t = 0; t < PL; t++) g_prompt[id][t] = (int32_t)((id * 7 + t * 5) % V);
            struct sched_params p;
            ts_params(&p, g_prompt[id], PL, MT);
            p.ignore_eos = true;
            p.sampling.temperature = (float)TEMP;
            p.has_seed = true;
            p.seed = 1000u + (uint64_t)id;
            rq[i] = sched_request_create(&p);
            ck_assert_msg(sched_submit(s, rq[i], err, sizeof err) == 0, "%s", err);
            memset(&g_out[id], 0, sizeof g_out[id]);
        }
        ts_run_sync(s, e, rq, g_out + b0, nb, 100000);
        for (int i = 0; i < nb; i++) {
            const struct ts_out *o = &g_out[b0 + i];
            ck_assert_int_eq(o->ntok[0], MT);
            int32_t prev = g_prompt[b0 + i][PL - 1];
            for (int t = 0; t < MT; t++) {
                g_counts[prev][o->tokens[0][t]]++;
                prev = o->tokens[0][t];
            }
            sched_request_release(rq[i]);
        }
    }
    sched_get_stats(s, st);
    sched_destroy(s);
    fake_engine_destroy(e);
}

START_TEST(test_spec_sampling_distribution)
{
    exact_p();
    struct sched_stats st;
    run(4, &st);
    int df;
    double x2 = chi2((const long(*)[V])g_counts, &df);
    double crit = chi2_crit(df, Z_1E4);
    double from_verify = (double)(st.spec_accepted_tokens_total + st.spec_drafts_total) / (double)(NREQ * MT);
    fprintf(stderr,
            "spec sampling: %d tokens, %llu verify rows, %llu drafts, %llu accepted (%.0f%% of tokens from "
            "verify rows); chi2 %.1f, df %d, critical (p=1e-4) %.1f\n",
            NREQ * MT, (unsigned long long)st.spec_drafts_total, (unsigned long long)st.spec_draft_tokens_total,
            (unsigned long long)st.spec_accepted_tokens_total, 100.0 * from_verify, x2, df, crit);
    /* the test only means something if speculation did most of the work */
    ck_assert(from_verify > 0.6);
    ck_assert_uint_gt(st.spec_accepted_tokens_total, (uint64_t)(NREQ * MT) / 10);
    ck_assert_int_gt(df, 100);
    ck_assert_msg(x2 < crit, "speculative sampling distribution differs: chi2 %.1f >= %.1f (df %d)", x2, crit, df);
    /* the same seeds without speculation give the same tokens (lossless) */
    static struct ts_out spec_out[NREQ];
    memcpy(spec_out, g_out, sizeof spec_out);
    run(0, &st);
    ck_assert_uint_eq(st.spec_drafts_total, 0);
    for (int i = 0; i < NREQ; i++) {
        for (int t = 0; t < MT; t++)
            ck_assert_msg(spec_out[i].tokens[0][t] == g_out[i].tokens[0][t], "request %d token %d", i, t);
        ts_out_fini(&spec_out[i]);
        ts_out_fini(&g_out[i]);
    }
}
END_TEST

static double urand(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(*s >> 11) / 9007199254740992.0;
}

static int32_t sample_p(const double *p, double u)
{
    double acc = 0;
    for (int x = 0; x < V; x++) {
        acc += p[x];
        if (u < acc) return x;
    }
    return V - 1;
}

/* The statistic has power: a biased acceptance rule fails it; the issue's
 * rule (spec_sample_verify) passes it, on as many samples per context as a
 * run of the scheduler produces. */
START_TEST(test_chi2_detects_biased_acceptance)
{
    exact_p();
    static long biased[V][V], exact[V][V];
    memset(biased, 0, sizeof biased);
    memset(exact, 0, sizeof exact);
    uint64_t rng = 42;
    float pf[V];
    const long per_ctx = NREQ * MT / V;
    for (int c = 0; c < V; c++) {
        for (int x = 0; x < V; x++) pf[x] = (float)g_p[c][x];
        int32_t draft = 0; /* the drafter's guess: the most likely token */
        for (int x = 1; x < V; x++) draft = g_p[c][x] > g_p[c][draft] ? x : draft;
        for (long i = 0; i < per_ctx; i++) {
            /* biased: accepts the draft 30% more often than p says */
            double u = urand(&rng);
            int32_t tok;
            if (u < fmin(1.0, 1.3 * g_p[c][draft])) {
                tok = draft;
            } else {
                double rest[V], z = 0;
                for (int x = 0; x < V; x++) z += (rest[x] = x == draft ? 0 : g_p[c][x]);
                for (int x = 0; x < V; x++) rest[x] /= z;
                tok = sample_p(rest, urand(&rng));
            }
            biased[c][tok]++;
            /* the rule */
            int32_t out;
            ck_assert_int_ge(spec_sample_verify(pf, V, draft, urand(&rng), urand(&rng), &out), 0);
            exact[c][out]++;
        }
    }
    int df_b, df_e;
    double xb = chi2((const long(*)[V])biased, &df_b), xe = chi2((const long(*)[V])exact, &df_e);
    fprintf(stderr, "chi2 power: biased acceptance %.1f (critical %.1f), spec_sample_verify %.1f (critical %.1f)\n",
            xb, chi2_crit(df_b, Z_1E4), xe, chi2_crit(df_e, Z_1E4));
    ck_assert(xb > chi2_crit(df_b, Z_1E4));
    ck_assert(xe < chi2_crit(df_e, Z_1E4));
}
END_TEST

Suite *spec_stat_suite(void)
{
    Suite *s = suite_create("spec_stat");
    TCase *tc = tcase_create("chi2");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_spec_sampling_distribution);
    tcase_add_test(tc, test_chi2_detects_biased_acceptance);
    suite_add_tcase(s, tc);
    return s;
}
