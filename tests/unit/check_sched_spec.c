/* tests/unit/check_sched_spec.c: n-gram speculative decoding in the
 * scheduler over the real CPU engine (tiny random OLMo Hybrid checkpoint,
 * util_st_writer): outputs with speculation must equal those without, token
 * for token, in mixed batches (prefill chunks, plain decodes and verify rows
 * in one step), under preemption, with stop ids and with seeded sampling; no
 * slot or block may leak; drafts must actually be accepted (repetitive
 * prompts), and the acceptance rate is printed. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/config.h"
#include "engine/engine.h"
#include "engine/weights.h"
#include "scheduler/sched.h"
#include "tests/unit/util_sched.h"

#define BS 16

static void make_model(void) { ts_model_make(4321u); }

struct spec_run {
    int k, nmin, nmax;     /* speculation (k = 0: off) */
    int blocks, slots, max_seqs, max_batched;
    struct sched_stats st; /* after the run */
};

/* Runs the requests together on a fresh engine + scheduler; checks that
 * every block and slot came back. */
static void run_spec(struct spec_run *sr, struct sched_params *ps, int n, struct ts_out *outs)
{
    char err[256];
    struct cfg_model cfg;
    struct eng_weights w;
    ck_assert_msg(cfg_load_dir(&cfg, ts_model_dir, err, sizeof err) == 0, "%s", err);
    ck_assert_msg(eng_weights_load(&w, &cfg, ts_model_dir, err, sizeof err) == 0, "%s", err);
    struct eng_memory mem = {.num_kv_blocks = sr->blocks, .block_size = BS, .num_state_slots = sr->slots};
    struct engine *e = eng_create(&cfg, &w, &eng_backend_cpu, &mem, err, sizeof err);
    ck_assert_msg(e != NULL, "%s", err);
    struct sched_config c;
    sched_config_init(&c);
    c.eng = e;
    c.max_num_seqs = sr->max_seqs;
    c.max_num_batched_tokens = sr->max_batched;
    c.max_model_len = 256;
    c.default_seed = 5;
    c.log_requests = false;
    c.num_speculative_tokens = sr->k;
    c.ngram_min = sr->nmin;
    c.ngram_max = sr->nmax;
    struct sched *s = sched_create(&c, err, sizeof err);
    ck_assert_msg(s != NULL, "%s", err);
    struct sched_request *rs[64];
    ck_assert_int_le(n, 64);
    for (int i = 0; i < n; i++) {
        rs[i] = sched_request_create(&ps[i]);
        ck_assert_msg(sched_submit(s, rs[i], err, sizeof err) == 0, "%s", err);
        memset(&outs[i], 0, sizeof outs[i]);
    }
    ts_run_sync(s, NULL, rs, outs, n, 100000);
    sched_get_stats(s, &sr->st);
    ck_assert_int_eq(sr->st.kv_blocks_used, 0);
    ck_assert_int_eq(sr->st.slots_used, 0);
    for (int i = 0; i < n; i++) sched_request_release(rs[i]);
    sched_destroy(s);
    eng_destroy(e);
    eng_weights_free(&w);
}

static void assert_same_out(const struct ts_out *a, const struct ts_out *b, int id)
{
    ck_assert_msg(a->ntok[0] == b->ntok[0], "request %d: %d tokens with spec vs %d without", id,
                  a->ntok[0], b->ntok[0]);
    for (int k = 0; k < a->ntok[0]; k++)
        ck_assert_msg(a->tokens[0][k] == b->tokens[0][k], "request %d: token %d differs (%d vs %d)", id, k,
                      a->tokens[0][k], b->tokens[0][k]);
    ck_assert_int_eq(a->finish[0], b->finish[0]);
    ck_assert_int_eq(a->finish_count[0], 1);
}

/* Prompt i: even ones repeat a short random phrase (drafts hit), odd ones
 * are random (drafts rarely hit); lengths vary so prefill chunks and
 * decodes mix within steps. */
static void prompt_for(int i, int32_t *p, int *len)
{
    unsigned s = 77u + (unsigned)i * 7919u;
    if (i % 2 == 0) {
        int period = 3 + i % 5, reps = 3 + i % 4;
        int32_t phrase[8];
        for (int k = 0; k < period; k++) {
            s = s * 1103515245u + 12345u;
            phrase[k] = (int32_t)((s >> 8) % 250u);
        }
        *len = period * reps;
        for (int k = 0; k < *len; k++) p[k] = phrase[k % period];
    } else {
        *len = 5 + (i * 7) % 31;
        for (int k = 0; k < *len; k++) {
            s = s * 1103515245u + 12345u;
            p[k] = (int32_t)((s >> 8) % 250u);
        }
    }
}

enum { NR = 24, MT = 24 };
static int32_t g_prompts[NR][64];
static struct ts_out g_base[NR], g_spec[NR];

static void make_params(struct sched_params *ps, bool sampled)
{
    for (int i = 0; i < NR; i++) {
        int len;
        prompt_for(i, g_prompts[i], &len);
        ts_params(&ps[i], g_prompts[i], len, MT - (i % 3) * 5); /* varied max_tokens */
        ps[i].ignore_eos = true;
        if (sampled) {
            ps[i].sampling.temperature = 0.3f; /* low enough that some drafts are drawn */
            ps[i].sampling.top_p = 0.95f;
            ps[i].has_seed = true;
            ps[i].seed = 100u + (uint64_t)i;
        }
    }
}

static void compare_runs(struct sched_params *ps, struct spec_run *base, struct spec_run *spec,
                         const char *what)
{
    run_spec(base, ps, NR, g_base);
    run_spec(spec, ps, NR, g_spec);
    for (int i = 0; i < NR; i++) assert_same_out(&g_spec[i], &g_base[i], i);
    fprintf(stderr,
            "spec %s: k=%d n=%d..%d (0: default 5): %llu drafts, %llu accepted (%.1f%%), %llu tokens, steps %llu -> %llu\n",
            what, spec->k, spec->nmin, spec->nmax, (unsigned long long)spec->st.spec_draft_tokens_total,
            (unsigned long long)spec->st.spec_accepted_tokens_total,
            100.0 * (double)spec->st.spec_accepted_tokens_total / (double)spec->st.spec_draft_tokens_total,
            (unsigned long long)spec->st.generation_tokens_total, (unsigned long long)base->st.steps_total,
            (unsigned long long)spec->st.steps_total);
    ck_assert_uint_eq(base->st.spec_draft_tokens_total, 0);
    ck_assert_uint_eq(spec->st.generation_tokens_total, base->st.generation_tokens_total);
    ck_assert_uint_gt(spec->st.spec_draft_tokens_total, 0);
    ck_assert_uint_gt(spec->st.spec_accepted_tokens_total, 0);
    ck_assert_uint_le(spec->st.spec_accepted_tokens_total, spec->st.spec_draft_tokens_total);

    for (int i = 0; i < NR; i++) {
        ts_out_fini(&g_base[i]);
        ts_out_fini(&g_spec[i]);
    }
}

START_TEST(test_spec_greedy_mixed_batch)
{
    struct sched_params ps[NR];
    make_params(ps, false);
    /* a small token budget keeps prefill chunks, decodes and verifies in the same steps */
    struct spec_run base = {.k = 0, .blocks = 256, .slots = 200, .max_seqs = NR, .max_batched = 48};
    struct spec_run spec = {.k = 4, .nmin = 1, .nmax = 3, .blocks = 256, .slots = 200, .max_seqs = NR,
                            .max_batched = 48};
    compare_runs(ps, &base, &spec, "greedy mixed");
}
END_TEST

START_TEST(test_spec_greedy_defaults_one_at_a_time)
{
    struct sched_params ps[NR];
    make_params(ps, false);
    /* vLLM's default n-gram sizes (5..5), one sequence per step */
    struct spec_run base = {.k = 0, .blocks = 64, .slots = 8, .max_seqs = 1, .max_batched = 256};
    struct spec_run spec = {.k = 5, .blocks = 64, .slots = 8, .max_seqs = 1, .max_batched = 256};
    compare_runs(ps, &base, &spec, "greedy defaults batch 1");
}
END_TEST

START_TEST(test_spec_greedy_preempt_and_few_slots)
{
    struct sched_params ps[NR];
    make_params(ps, false);
    /* 18 blocks force preemption; 30 slots leave some steps without room for
     * every verify row (those fall back to plain decodes) */
    struct spec_run base = {.k = 0, .blocks = 18, .slots = 30, .max_seqs = NR, .max_batched = 64};
    struct spec_run spec = {.k = 6, .nmin = 2, .nmax = 4, .blocks = 18, .slots = 30, .max_seqs = NR,
                            .max_batched = 64};
    compare_runs(ps, &base, &spec, "greedy preempt");
    ck_assert_uint_gt(spec.st.preemptions_total, 0);
}
END_TEST

START_TEST(test_spec_seeded_sampling)
{
    struct sched_params ps[NR];
    make_params(ps, true);
    struct spec_run base = {.k = 0, .blocks = 256, .slots = 200, .max_seqs = NR, .max_batched = 48};
    struct spec_run spec = {.k = 3, .nmin = 1, .nmax = 2, .blocks = 256, .slots = 200, .max_seqs = NR,
                            .max_batched = 48};
    compare_runs(ps, &base, &spec, "seeded sampling");
}
END_TEST

START_TEST(test_spec_stop_ids)
{
    struct sched_params ps[NR];
    make_params(ps, false);
    struct spec_run base = {.k = 0, .blocks = 256, .slots = 200, .max_seqs = NR, .max_batched = 48};
    run_spec(&base, ps, NR, g_base);
    /* stop on the token each request produced 7th: with speculation the stop
     * must hit at the same place even when it sits inside accepted drafts */
    int32_t stops[NR];
    for (int i = 0; i < NR; i++) {
        ck_assert_int_gt(g_base[i].ntok[0], 7);
        stops[i] = g_base[i].tokens[0][6];
        ps[i].stop_token_ids = &stops[i];
        ps[i].num_stop_token_ids = 1;
        ts_out_fini(&g_base[i]);
    }
    struct spec_run spec = {.k = 4, .nmin = 1, .nmax = 3, .blocks = 256, .slots = 200, .max_seqs = NR,
                            .max_batched = 48};
    compare_runs(ps, &base, &spec, "stop ids");
    /* (compare_runs reran base with the stops) */
}
END_TEST

Suite *sched_spec_suite(void)
{
    Suite *s = suite_create("sched_spec");
    TCase *tc = tcase_create("cpu");
    tcase_set_timeout(tc, 300);
    tcase_add_checked_fixture(tc, make_model, ts_model_drop);
    tcase_add_test(tc, test_spec_greedy_mixed_batch);
    tcase_add_test(tc, test_spec_greedy_defaults_one_at_a_time);
    tcase_add_test(tc, test_spec_greedy_preempt_and_few_slots);
    tcase_add_test(tc, test_spec_seeded_sampling);
    tcase_add_test(tc, test_spec_stop_ids);
    suite_add_tcase(s, tc);
    return s;
}
