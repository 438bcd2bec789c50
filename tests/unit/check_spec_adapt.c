/* tests/unit/check_spec_adapt.c: adaptive draft length (scheduler/spec.h
 * struct spec_adapt). The estimator alone: it switches drafting off when
 * drafts keep failing (with growing off periods up to the probe interval),
 * back on when they succeed again, and picks a length that follows the
 * acceptance rate. Then through the scheduler on the fake engine: output
 * that never repeats costs almost no draft tokens (and stays identical to
 * plain decoding), and output that starts repeating half way gets drafting
 * back (far fewer steps than plain decoding), again with identical tokens.
 * Also the memory plan's share for speculation (sched_memplan_add_spec).
 */
#include <check.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scheduler/sched.h"
#include "scheduler/spec.h"
#include "server/args.h"
#include "tests/unit/util_fake_engine.h"
#include "tests/unit/util_sched.h"

/* --- the estimator alone ---------------------------------------------------------- */

/* Runs `steps` decode steps; each step that drafts d > 0 gets accept(d)
 * accepted. Returns the draft tokens verified; *verifies the verify count,
 * *max_gap the longest run of non-drafting steps. */
static long sim(struct spec_adapt *a, int k, double mina, int probe, int steps, int (*accept)(int, unsigned *),
                unsigned *rng, int *verifies, int *max_gap)
{
    long drafts = 0;
    int gap = 0;
    *verifies = 0;
    *max_gap = 0;
    for (int i = 0; i < steps; i++) {
        int d = spec_adapt_limit(a, k, mina, probe);
        ck_assert_int_ge(d, 0);
        ck_assert_int_le(d, k);
        if (d == 0) {
            if (++gap > *max_gap) *max_gap = gap;
            continue;
        }
        gap = 0;
        int acc = accept(d, rng);
        spec_adapt_update(a, d, acc, mina, probe);
        drafts += d;
        (*verifies)++;
    }
    return drafts;
}

static int acc_none(int d, unsigned *r) { (void)d; (void)r; return 0; }
static int acc_all(int d, unsigned *r) { (void)r; return d; }
static double urand(unsigned *r)
{
    *r = *r * 1103515245u + 12345u;
    return (double)((*r >> 8) & 0xffffff) / 16777216.0;
}
static int acc_half(int d, unsigned *r) /* each draft accepted with probability 1/2, in order */
{
    int a = 0;
    while (a < d && urand(r) < 0.5) a++;
    return a;
}

START_TEST(test_adapt_switches_off)
{
    struct spec_adapt a;
    memset(&a, 0, sizeof a);
    unsigned r = 1;
    int verifies, gap;
    long drafts = sim(&a, 5, 0.1, 64, 2000, acc_none, &r, &verifies, &gap);
    /* without adaptation: 10000 draft tokens. With it: a few verifies to
     * learn, then one probe per off period (4, 8, ..., 64 steps) */
    fprintf(stderr, "adapt, nothing accepted: %ld draft tokens in %d verifies over 2000 steps, longest off %d\n",
            drafts, verifies, gap);
    ck_assert_int_le(verifies, 6 + 5 + 2000 / 64 + 1);
    ck_assert_int_lt(drafts, 2000 / 10);
    ck_assert_int_eq(gap, 64);     /* the off period grew to the probe interval and no further */
    ck_assert(spec_adapt_rate(&a) < 0.7);
    /* the first verifies come quickly: it switches off within a handful of steps */
    memset(&a, 0, sizeof a);
    int first_off = -1;
    for (int i = 0; i < 20 && first_off < 0; i++) {
        int d = spec_adapt_limit(&a, 5, 0.1, 64);
        if (d == 0) first_off = i;
        else spec_adapt_update(&a, d, 0, 0.1, 64);
    }
    ck_assert_int_ge(first_off, 2);
    ck_assert_int_le(first_off, 8);
}
END_TEST

START_TEST(test_adapt_full_acceptance_keeps_k)
{
    struct spec_adapt a;
    memset(&a, 0, sizeof a);
    unsigned r = 1;
    int verifies, gap;
    long drafts = sim(&a, 7, 0.1, 64, 500, acc_all, &r, &verifies, &gap);
    ck_assert_int_eq(verifies, 500);
    ck_assert_int_ge(drafts, 500L * 7 - 10); /* k from the second step on */
    ck_assert_int_eq(gap, 0);
    ck_assert_int_eq(spec_adapt_limit(&a, 7, 0.1, 64), 7);
}
END_TEST

START_TEST(test_adapt_comes_back_on)
{
    struct spec_adapt a;
    memset(&a, 0, sizeof a);
    unsigned r = 1;
    int verifies, gap;
    (void)sim(&a, 5, 0.1, 64, 1000, acc_none, &r, &verifies, &gap); /* off, backoff at 64 */
    /* repeats appear: within one probe interval drafting is back at k */
    int back = -1;
    for (int i = 0; i < 200; i++) {
        int d = spec_adapt_limit(&a, 5, 0.1, 64);
        if (d > 0) spec_adapt_update(&a, d, d, 0.1, 64);
        if (d == 5 && back < 0) back = i;
        if (back >= 0 && i > back + 2) ck_assert_int_eq(d, 5); /* and stays there */
    }
    ck_assert_int_ge(back, 0);
    ck_assert_int_le(back, 64 + 2);
    /* a successful probe resets the backoff: failing again goes off for 4 steps only */
    memset(&a, 0, sizeof a);
    (void)sim(&a, 5, 0.1, 64, 1000, acc_none, &r, &verifies, &gap);
    int i = 0, d = 0;
    while ((d = spec_adapt_limit(&a, 5, 0.1, 64)) == 0) ck_assert_int_lt(++i, 100);
    spec_adapt_update(&a, d, 1, 0.1, 64); /* the probe accepted one */
    int off = 0;
    for (int j = 0; j < 100; j++) {
        d = spec_adapt_limit(&a, 5, 0.1, 64);
        if (d == 0) {
            off++;
            continue;
        }
        if (off) break;
        spec_adapt_update(&a, d, 0, 0.1, 64);
    }
    ck_assert_int_eq(off, 4);
}
END_TEST

START_TEST(test_adapt_length_follows_rate)
{
    /* per-draft acceptance 1/2: the best length is about log(0.1)/log(0.5) = 3.3 */
    struct spec_adapt a;
    memset(&a, 0, sizeof a);
    unsigned r = 12345;
    int verifies, gap;
    long drafts = sim(&a, 8, 0.1, 64, 4000, acc_half, &r, &verifies, &gap);
    double mean = (double)drafts / verifies;
    fprintf(stderr, "adapt, acceptance 1/2: mean draft length %.2f over %d verifies, rate %.2f\n", mean,
            verifies, spec_adapt_rate(&a));
    ck_assert(mean > 1.5 && mean < 4.5);
    ck_assert_int_gt(verifies, 3000); /* rarely off at this rate */
    /* a cheaper draft price (0.01) drafts longer at the same rate */
    memset(&a, 0, sizeof a);
    long drafts2 = sim(&a, 8, 0.01, 64, 4000, acc_half, &r, &verifies, &gap);
    ck_assert(drafts2 > drafts * 3 / 2);
}
END_TEST

START_TEST(test_adapt_disabled)
{
    struct spec_adapt a;
    memset(&a, 0, sizeof a);
    for (int i = 0; i < 100; i++) {
        ck_assert_int_eq(spec_adapt_limit(&a, 4, 0.0, 64), 4);
        spec_adapt_update(&a, 4, 0, 0.0, 64);
    }
    ck_assert_int_eq(spec_adapt_limit(&a, 0, 0.1, 64), 0);
    /* probe_interval 0 = the default */
    memset(&a, 0, sizeof a);
    unsigned r = 1;
    int verifies, gap;
    (void)sim(&a, 5, 0.1, 0, 3000, acc_none, &r, &verifies, &gap);
    ck_assert_int_eq(gap, SPEC_PROBE_INTERVAL_DEFAULT);
}
END_TEST

/* --- through the scheduler (fake engine) ------------------------------------------- */

#define VOCAB 64
#define PLEN 16
#define MAXT 400

struct arun {
    int k;                  /* 0: speculation off */
    double mina;            /* spec_min_acceptance */
    int markov_from;        /* fake engine: output repeats from this position; < 0 never */
    int steps;
    struct sched_stats st;
    int32_t out[MAXT];
    int nout;
};

static void arun(struct arun *a)
{
    int eos = VOCAB - 1;
    struct engine *e = fake_engine_create(VOCAB, &eos, 1, 1024, 64, 16, 12);
    ck_assert_ptr_nonnull(e);
    if (a->markov_from >= 0) fake_engine_set_markov_from(e, a->markov_from);
    struct sched_config c;
    sched_config_init(&c);
    c.eng = e;
    c.max_num_seqs = 4;
    c.max_num_batched_tokens = 64;
    c.max_model_len = 1024;
    c.default_seed = 1;
    c.log_requests = false;
    c.num_speculative_tokens = a->k;
    c.ngram_min = 1;
    c.ngram_max = 1; /* 1-grams match almost always: drafting on text that never repeats */
    c.spec_min_acceptance = a->mina;
    c.spec_probe_interval = 32;
    char err[256];
    struct sched *s = sched_create(&c, err, sizeof err);
    ck_assert_msg(s != NULL, "%s", err);
    int32_t prompt[PLEN];
    unsigned r = 99;
    for (int i = 0; i < PLEN; i++) prompt[i] = (int32_t)((r = r * 1103515245u + 12345u) >> 8) % (VOCAB - 1);
    struct sched_params p;
    ts_params(&p, prompt, PLEN, MAXT);
    p.ignore_eos = true;
    struct sched_request *rq = sched_request_create(&p);
    ck_assert_msg(sched_submit(s, rq, err, sizeof err) == 0, "%s", err);
    struct ts_out o;
    memset(&o, 0, sizeof o);
    a->steps = ts_run_sync(s, e, &rq, &o, 1, 10000);
    sched_get_stats(s, &a->st);
    ck_assert_int_eq(o.ntok[0], MAXT);
    memcpy(a->out, o.tokens[0], sizeof(int32_t) * MAXT);
    a->nout = o.ntok[0];
    ck_assert_int_eq(a->st.slots_used, 0);
    ts_out_fini(&o);
    sched_request_release(rq);
    sched_destroy(s);
    fake_engine_destroy(e);
}

static void same_tokens(const struct arun *a, const struct arun *b)
{
    ck_assert_int_eq(a->nout, b->nout);
    for (int i = 0; i < a->nout; i++)
        ck_assert_msg(a->out[i] == b->out[i], "token %d differs: %d vs %d", i, a->out[i], b->out[i]);
}

static void report(const char *what, const struct arun *a)
{
    fprintf(stderr, "%s: k=%d min_acceptance=%.2f: %d steps, %llu verify rows, %llu drafts, %llu accepted\n",
            what, a->k, a->mina, a->steps, (unsigned long long)a->st.spec_drafts_total,
            (unsigned long long)a->st.spec_draft_tokens_total,
            (unsigned long long)a->st.spec_accepted_tokens_total);
}

START_TEST(test_sched_adapt_nonrepetitive)
{
    struct arun plain = {.k = 0, .markov_from = -1}, fixed = {.k = 4, .mina = 0.0, .markov_from = -1},
                adapt = {.k = 4, .mina = 0.1, .markov_from = -1};
    arun(&plain);
    arun(&fixed);
    arun(&adapt);
    report("never repeats, fixed", &fixed);
    report("never repeats, adaptive", &adapt);
    same_tokens(&fixed, &plain);
    same_tokens(&adapt, &plain);
    /* fixed length drafts on almost every step and almost nothing is accepted */
    ck_assert_uint_gt(fixed.st.spec_draft_tokens_total, 4u * MAXT / 2);
    ck_assert_uint_lt(fixed.st.spec_accepted_tokens_total * 10, fixed.st.spec_draft_tokens_total);
    /* adaptive: drafting is off nearly all the time */
    ck_assert_uint_lt(adapt.st.spec_draft_tokens_total * 10, fixed.st.spec_draft_tokens_total);
    ck_assert_uint_lt(adapt.st.spec_drafts_total, MAXT / 8);
}
END_TEST

START_TEST(test_sched_adapt_repeats_appear)
{
    /* 100 tokens that never repeat, then a short cycle */
    int from = PLEN + 100;
    struct arun plain = {.k = 0, .markov_from = from}, fixed = {.k = 4, .mina = 0.0, .markov_from = from},
                adapt = {.k = 4, .mina = 0.1, .markov_from = from};
    arun(&plain);
    arun(&fixed);
    arun(&adapt);
    report("repeats after 100, fixed", &fixed);
    report("repeats after 100, adaptive", &adapt);
    same_tokens(&fixed, &plain);
    same_tokens(&adapt, &plain);
    ck_assert_int_eq(plain.steps, MAXT); /* one token per step (the prefill samples the first) */
    /* the cyclic 300 tokens come several per step once drafting is on (a
     * cycle of length L gives L-1 drafts); adaptive pays at most one probe
     * interval (32 steps) plus relearning for having been off */
    ck_assert_int_lt(fixed.steps * 4, plain.steps * 3);
    ck_assert_int_lt(adapt.steps * 5, plain.steps * 4);
    ck_assert_int_le(adapt.steps, fixed.steps + 32 + 8);
    ck_assert_uint_gt(adapt.st.spec_accepted_tokens_total, fixed.st.spec_accepted_tokens_total * 3 / 4);
    /* and it was off during the first part: far fewer draft tokens than fixed */
    ck_assert_uint_lt(adapt.st.spec_draft_tokens_total - adapt.st.spec_accepted_tokens_total,
                      (fixed.st.spec_draft_tokens_total - fixed.st.spec_accepted_tokens_total) / 4);
}
END_TEST

/* --- the memory plan's share for speculation (scheduler/memplan_spec.c) ------------ */

static void memplan_cfg(struct cfg_model *c)
{
    memset(c, 0, sizeof *c);
    c->num_hidden_layers = 4;
    c->num_attn_layers = 1;
    c->num_gdn_layers = 3;
    c->num_key_value_heads = 2;
    c->head_dim = 16;
    c->linear_num_key_heads = 2;
    c->linear_num_value_heads = 2;
    c->linear_key_head_dim = 16;
    c->linear_value_head_dim = 16;
    c->linear_conv_kernel_dim = 4;
}

START_TEST(test_memplan_spec)
{
    struct cfg_model c;
    memplan_cfg(&c);
    struct sched_memplan mp, base;
    char err[256], line[512];
    /* a generous budget: (1+k) slots for every sequence, from unused bytes */
    ck_assert_int_eq(sched_memplan_compute(&c, (size_t)1 << 34, 16, 4096, 8, 4, 4, &base, err, sizeof err), 0);
    mp = base;
    ck_assert_int_eq(base.num_spec_slots, 0);
    ck_assert_int_eq(sched_memplan_add_spec(&mp, 5, 8, err, sizeof err), 8);
    ck_assert_int_eq(mp.num_state_slots, base.num_state_slots + 8 * 6);
    ck_assert_int_eq(mp.num_spec_slots, 48);
    ck_assert_int_eq(mp.num_kv_blocks, base.num_kv_blocks); /* paid from unused bytes */
    ck_assert_uint_le(mp.used_bytes, mp.budget_bytes);
    ck_assert_uint_eq(mp.used_bytes, (size_t)mp.num_kv_blocks * mp.kv_block_bytes +
                                         (size_t)mp.num_state_slots * mp.slot_bytes);
    sched_memplan_describe(&mp, line, sizeof line);
    ck_assert_msg(strstr(line, "48 of the slots for speculation (6 per verifying sequence, 8 at once)"), "%s", line);
    sched_memplan_describe(&base, line, sizeof line);
    ck_assert(strstr(line, "speculation") == NULL);
    /* off: unchanged */
    mp = base;
    ck_assert_int_eq(sched_memplan_add_spec(&mp, 0, 8, err, sizeof err), 0);
    ck_assert_int_eq(memcmp(&mp, &base, sizeof mp), 0);
    /* a tight budget: blocks pay, at most half of them, one max-length sequence stays */
    size_t slb = eng_slot_bytes(&c, 4), kvb = eng_kv_block_bytes(&c, 16, 4);
    size_t budget = 4 * slb + 3 * 256 * kvb; /* about 3 full-length sequences of KV */
    ck_assert_int_eq(sched_memplan_compute(&c, budget, 16, 4096, 64, 4, 4, &base, err, sizeof err), 0);
    mp = base;
    int n = sched_memplan_add_spec(&mp, 4, 64, err, sizeof err);
    ck_assert_int_gt(n, 0);
    ck_assert_int_le(n, base.num_state_slots);
    ck_assert_int_eq(mp.num_spec_slots, n * 5);
    ck_assert_int_ge(mp.num_kv_blocks, base.num_kv_blocks - base.num_kv_blocks / 2);
    ck_assert_int_ge(mp.num_kv_blocks, 256);
    ck_assert_uint_le(mp.used_bytes, mp.budget_bytes);
    ck_assert_int_ge(mp.max_seqs_at_max_len, 1);
    /* no room at all: -ENOSPC, plan unchanged */
    ck_assert_int_eq(sched_memplan_compute(&c, slb + 256 * kvb, 16, 4096, 4, 4, 4, &base, err, sizeof err), 0);
    mp = base;
    ck_assert_int_eq(sched_memplan_add_spec(&mp, 4, 4, err, sizeof err), -ENOSPC);
    ck_assert(strstr(err, "speculation") != NULL);
    ck_assert_int_eq(memcmp(&mp, &base, sizeof mp), 0);
}
END_TEST

/* --- the flags (server/args.c) --------------------------------------------------- */

static int parse_flags(struct srv_args *a, char *err, int argc, char **argv)
{
    char *env[] = {"DELTASERVE_SPEC_PROBE_INTERVAL=20", NULL};
    return srv_args_parse(a, argc, argv, env, NULL, 0, NULL, true, err, 256);
}

START_TEST(test_adapt_flags)
{
    struct srv_args a;
    char err[256];
    char *f0[] = {"--model", "m"};
    char *env0[] = {NULL};
    ck_assert_int_eq(srv_args_parse(&a, 2, f0, env0, NULL, 0, NULL, true, err, sizeof err), 0);
    ck_assert(a.spec_min_acceptance == SPEC_MIN_ACCEPT_DEFAULT);
    ck_assert_int_eq(a.spec_probe_interval, SPEC_PROBE_INTERVAL_DEFAULT);
    ck_assert_int_eq(a.spec_disable_by_batch_size, 0);
    /* the scheduler's default is the same */
    struct sched_config c;
    sched_config_init(&c);
    ck_assert(c.spec_min_acceptance == SPEC_MIN_ACCEPT_DEFAULT);
    char *f1[] = {"--model", "m", "--spec-min-acceptance", "0.25", "--speculative-disable-by-batch-size", "4"};
    ck_assert_int_eq(parse_flags(&a, err, 6, f1), 0);
    ck_assert(a.spec_min_acceptance == 0.25);
    ck_assert_int_eq(a.spec_disable_by_batch_size, 4);
    ck_assert_int_eq(a.spec_probe_interval, 20); /* from the environment */
    char *f2[] = {"--model", "m", "--spec-min-acceptance", "1.5"};
    ck_assert_int_ne(parse_flags(&a, err, 4, f2), 0);
    ck_assert_msg(strstr(err, "spec-min-acceptance") != NULL, "%s", err);
    char *f3[] = {"--model", "m", "--spec-probe-interval", "0"};
    ck_assert_int_ne(parse_flags(&a, err, 4, f3), 0);
    char *f4[] = {"--model", "m", "--spec-min-acceptance", "0"}; /* 0 = fixed length */
    ck_assert_int_eq(parse_flags(&a, err, 4, f4), 0);
    ck_assert(a.spec_min_acceptance == 0.0);
}
END_TEST

Suite *spec_adapt_suite(void)
{
    Suite *s = suite_create("spec_adapt");
    TCase *tc = tcase_create("adapt");
    tcase_add_test(tc, test_adapt_switches_off);
    tcase_add_test(tc, test_adapt_full_acceptance_keeps_k);
    tcase_add_test(tc, test_adapt_comes_back_on);
    tcase_add_test(tc, test_adapt_length_follows_rate);
    tcase_add_test(tc, test_adapt_disabled);
    tcase_add_test(tc, test_sched_adapt_nonrepetitive);
    tcase_add_test(tc, test_sched_adapt_repeats_appear);
    tcase_add_test(tc, test_memplan_spec);
    tcase_add_test(tc, test_adapt_flags);
    suite_add_tcase(s, tc);
    return s;
}
