/* tests/unit/check_sched.c: scheduler policy tests against the fake engine
 * (tests/unit/util_fake_engine.c): greedy equivalence alone vs batched,
 * preemption, n>1 forks, seeded sampling across batch compositions, stop
 * conditions, prompt log-probs, cancellation, admission errors, the engine
 * thread, and the memory plan. The randomized simulation is check_sched_sim.c.
 */
#include <check.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/sampling.h"
#include "scheduler/sched.h"
#include "scheduler/sched_internal.h"
#include "tests/unit/util_fake_engine.h"
#include "tests/unit/util_sched.h"

#define VOCAB 97
#define EOS 3

struct rig {
    struct engine *e;
    struct sched *s;
};

static void rig_init(struct rig *g, int blocks, int bs, int slots, int max_seqs, int max_tokens,
                     int max_len)
{
    int eos = EOS;
    g->e = fake_engine_create(VOCAB, &eos, 1, max_len, blocks, bs, slots);
    ck_assert_ptr_nonnull(g->e);
    struct sched_config c;
    sched_config_init(&c);
    c.eng = g->e;
    c.max_num_seqs = max_seqs;
    c.max_num_batched_tokens = max_tokens;
    c.max_model_len = max_len;
    c.default_seed = 1;
    c.log_requests = false;
    char err[256];
    g->s = sched_create(&c, err, sizeof err);
    ck_assert_msg(g->s != NULL, "%s", err);
}

static void rig_fini(struct rig *g)
{
    sched_destroy(g->s);
    fake_engine_destroy(g->e);
}

/* The expected greedy output of a prompt run alone (no eos stop when
 * ignore_eos). Returns the count. */
static int ref_greedy(const int32_t *prompt, int plen, int max_tokens, bool ignore_eos, int32_t *out)
{
    int32_t hist[512];
    float lg[VOCAB];
    memcpy(hist, prompt, sizeof(int32_t) * (size_t)plen);
    int n = 0;
    while (n < max_tokens) {
        fake_engine_logits(VOCAB, hist, plen + n, lg);
        int best = 0;
        for (int v = 1; v < VOCAB; v++)
            if (lg[v] > lg[best]) best = v;
        hist[plen + n] = best;
        out[n++] = best;
        if (!ignore_eos && best == EOS) break;
    }
    return n;
}

static void make_prompt(int32_t *p, int len, unsigned seed)
{
    for (int i = 0; i < len; i++) {
        seed = seed * 1103515245u + 12345u;
        p[i] = (int32_t)((seed >> 8) % VOCAB);
    }
}

static struct sched_request *submit(struct sched *s, const struct sched_params *p)
{
    struct sched_request *r = sched_request_create(p);
    ck_assert_ptr_nonnull(r);
    char err[256];
    int rc = sched_submit(s, r, err, sizeof err);
    ck_assert_msg(rc == 0, "submit: %d %s", rc, err);
    return r;
}

/* --- greedy equivalence ---------------------------------------------------------- */

static void run_greedy_batch(int nreq, int blocks, int max_tokens_step, int expect_preempt)
{
    struct rig g;
    rig_init(&g, blocks, 4, 64, 64, max_tokens_step, 256);
    struct sched_request *rs[64];
    struct ts_out outs[64];
    int32_t prompts[64][64];
    int plen[64], mt[64];
    memset(outs, 0, sizeof outs);
    for (int i = 0; i < nreq; i++) {
        plen[i] = 1 + (i * 7) % 40;
        mt[i] = 5 + (i * 11) % 30;
        make_prompt(prompts[i], plen[i], 100u + (unsigned)i);
        struct sched_params p;
        ts_params(&p, prompts[i], plen[i], mt[i]);
        p.ignore_eos = i % 2 == 0;
        rs[i] = submit(g.s, &p);
    }
    ts_run_sync(g.s, g.e, rs, outs, nreq, 20000);
    for (int i = 0; i < nreq; i++) {
        int32_t ref[64];
        int nref = ref_greedy(prompts[i], plen[i], mt[i], i % 2 == 0, ref);
        ck_assert_int_eq(outs[i].ntok[0], nref);
        for (int k = 0; k < nref; k++) ck_assert_int_eq(outs[i].tokens[0][k], ref[k]);
        ck_assert_int_eq(outs[i].finish_count[0], 1);
        ck_assert_int_eq(outs[i].finish[0],
                         (nref < mt[i]) ? SCHED_FINISH_STOP : SCHED_FINISH_LENGTH);
        ck_assert_int_eq(outs[i].done_deltas, 0);
        sched_request_release(rs[i]);
        ts_out_fini(&outs[i]);
    }
    struct sched_stats st;
    sched_get_stats(g.s, &st);
    if (expect_preempt) ck_assert_uint_gt(st.preemptions_total, 0);
    ck_assert_int_eq(st.kv_blocks_used, 0);
    ck_assert_int_eq(st.slots_used, 0);
    ck_assert_int_eq(st.num_running + st.num_waiting, 0);
    rig_fini(&g);
}

START_TEST(test_greedy_32_equal_alone)
{
    run_greedy_batch(32, 2048, 512, 0);
}
END_TEST

START_TEST(test_greedy_small_budget_chunked)
{
    /* 64-token steps: long prompts are chunked across steps */
    run_greedy_batch(32, 2048, 64, 0);
}
END_TEST

START_TEST(test_preemption_same_output)
{
    /* 4-token blocks, 80 blocks: one max-length sequence fits, 32 do not */
    run_greedy_batch(32, 80, 256, 1);
}
END_TEST

/* --- seeded sampling --------------------------------------------------------------- */

static void sampled_params(struct sched_params *p, const int32_t *prompt, int plen, int mt)
{
    ts_params(p, prompt, plen, mt);
    p->sampling.temperature = 0.9f;
    p->sampling.top_p = 0.95f;
    p->sampling.top_k = 40;
    p->has_seed = true;
    p->seed = 1234;
    p->ignore_eos = true;
    p->logprobs = 2;
}

START_TEST(test_seed_independent_of_batch)
{
    int32_t prompt[20];
    make_prompt(prompt, 20, 7);
    struct sched_params p;
    /* alone */
    struct rig g;
    rig_init(&g, 4096, 4, 64, 64, 256, 256);
    sampled_params(&p, prompt, 20, 40);
    struct sched_request *r = submit(g.s, &p);
    struct ts_out alone = {0};
    ts_run_sync(g.s, g.e, &r, &alone, 1, 1000);
    sched_request_release(r);
    rig_fini(&g);
    /* with 20 others (different seeds and prompts), under KV pressure */
    rig_init(&g, 70, 4, 64, 32, 48, 256);
    g.s->par_min_logits = 0; /* sample rows on every worker even at this tiny vocab */
    struct sched_request *rs[21];
    struct ts_out outs[21];
    memset(outs, 0, sizeof outs);
    int32_t others[20][30];
    for (int i = 0; i < 20; i++) {
        make_prompt(others[i], 30, 50u + (unsigned)i);
        struct sched_params q;
        sampled_params(&q, others[i], 30, 30);
        q.seed = (uint64_t)i;
        rs[i] = submit(g.s, &q);
    }
    rs[20] = submit(g.s, &p);
    ts_run_sync(g.s, g.e, rs, outs, 21, 20000);
    ck_assert_int_eq(outs[20].ntok[0], alone.ntok[0]);
    for (int k = 0; k < alone.ntok[0]; k++) {
        ck_assert_int_eq(outs[20].tokens[0][k], alone.tokens[0][k]);
        ck_assert(fabsf(outs[20].lps[0][k] - alone.lps[0][k]) < 1e-6f);
    }
    struct sched_stats st;
    sched_get_stats(g.s, &st);
    ck_assert_uint_gt(st.preemptions_total, 0);
    /* a different seed gives a different output */
    int same = 0;
    for (int k = 0; k < 30; k++) same += outs[0].tokens[0][k] == outs[1].tokens[0][k];
    ck_assert_int_lt(same, 30);
    for (int i = 0; i < 21; i++) {
        sched_request_release(rs[i]);
        ts_out_fini(&outs[i]);
    }
    ts_out_fini(&alone);
    rig_fini(&g);
}
END_TEST

/* --- n > 1 -------------------------------------------------------------------------- */

START_TEST(test_fork_greedy_equal)
{
    struct rig g;
    rig_init(&g, 512, 4, 16, 16, 128, 128);
    int32_t prompt[13];
    make_prompt(prompt, 13, 3); /* 13 tokens: a partial last block is shared */
    struct sched_params p;
    ts_params(&p, prompt, 13, 20);
    p.ignore_eos = true;
    p.n = 3;
    struct sched_request *r = submit(g.s, &p);
    struct ts_out o = {0};
    ts_run_sync(g.s, g.e, &r, &o, 1, 1000);
    int32_t ref[32];
    int nref = ref_greedy(prompt, 13, 20, true, ref);
    for (int c = 0; c < 3; c++) {
        ck_assert_int_eq(o.ntok[c], nref);
        for (int k = 0; k < nref; k++) ck_assert_int_eq(o.tokens[c][k], ref[k]);
        ck_assert_int_eq(o.finish_count[c], 1);
        ck_assert_int_eq(o.finish[c], SCHED_FINISH_LENGTH);
    }
    struct sched_stats st;
    sched_get_stats(g.s, &st);
    ck_assert_int_eq(st.kv_blocks_used, 0);
    ck_assert_int_eq(st.slots_used, 0);
    /* the prompt was prefilled once: 13 prompt tokens + 19 decode steps x 3 */
    ck_assert_uint_eq(st.batched_tokens_total, 13 + 19 * 3);
    sched_request_release(r);
    ts_out_fini(&o);
    rig_fini(&g);
}
END_TEST

START_TEST(test_fork_sampled_distinct_and_stable)
{
    int32_t prompt[9];
    make_prompt(prompt, 9, 4);
    struct sched_params p;
    sampled_params(&p, prompt, 9, 25);
    p.n = 4;
    struct ts_out a = {0}, b = {0};
    for (int pass = 0; pass < 2; pass++) {
        struct rig g;
        /* pass 1: tight KV so children get preempted and recomputed */
        rig_init(&g, pass ? 40 : 1024, 4, 16, 8, pass ? 8 : 128, 128);
        struct sched_request *rs[6];
        struct ts_out outs[6];
        memset(outs, 0, sizeof outs);
        int nr = 1;
        rs[0] = submit(g.s, &p);
        int32_t other[5][20];
        if (pass) {
            for (int i = 0; i < 5; i++) {
                make_prompt(other[i], 20, 900u + (unsigned)i);
                struct sched_params q;
                sampled_params(&q, other[i], 20, 20);
                rs[nr++] = submit(g.s, &q);
            }
        }
        ts_run_sync(g.s, g.e, rs, outs, nr, 20000);
        *(pass ? &b : &a) = outs[0];
        for (int i = 1; i < nr; i++) ts_out_fini(&outs[i]);
        for (int i = 0; i < nr; i++) sched_request_release(rs[i]);
        rig_fini(&g);
    }
    for (int c = 0; c < 4; c++) {
        ck_assert_int_eq(a.ntok[c], 25);
        ck_assert_int_eq(b.ntok[c], 25);
        for (int k = 0; k < 25; k++) ck_assert_int_eq(a.tokens[c][k], b.tokens[c][k]);
    }
    int same01 = 0;
    for (int k = 0; k < 25; k++) same01 += a.tokens[0][k] == a.tokens[1][k];
    ck_assert_int_lt(same01, 25); /* choices use different RNG streams */
    ts_out_fini(&a);
    ts_out_fini(&b);
}
END_TEST

/* --- stops ---------------------------------------------------------------------------- */

START_TEST(test_stop_ids_min_tokens_eos)
{
    struct rig g;
    rig_init(&g, 512, 4, 16, 16, 128, 128);
    int32_t prompt[5] = {10, 20, 30, 40, 50};
    int32_t ref[64];
    int nref = ref_greedy(prompt, 5, 40, true, ref);
    ck_assert_int_eq(nref, 40);
    /* stop on the 6th generated token's id (first occurrence) */
    int32_t sid = ref[5];
    int first = 0;
    while (ref[first] != sid) first++;
    struct sched_params p;
    ts_params(&p, prompt, 5, 40);
    p.ignore_eos = true;
    p.stop_token_ids = &sid;
    p.num_stop_token_ids = 1;
    struct sched_request *r1 = submit(g.s, &p);
    /* min_tokens past the first occurrence: the id is banned until then */
    p.min_tokens = first + 2;
    struct sched_request *r2 = submit(g.s, &p);
    /* eos in the output list: greedy ends at eos unless ignore_eos */
    struct sched_params pe;
    ts_params(&pe, prompt, 5, 40);
    struct sched_request *r3 = submit(g.s, &pe);
    struct sched_request *rs[3] = {r1, r2, r3};
    struct ts_out o[3];
    memset(o, 0, sizeof o);
    ts_run_sync(g.s, g.e, rs, o, 3, 1000);
    ck_assert_int_eq(o[0].ntok[0], first + 1);
    ck_assert_int_eq(o[0].finish[0], SCHED_FINISH_STOP);
    ck_assert_int_eq(o[0].stop_token[0], sid);
    ck_assert_int_ge(o[1].ntok[0], p.min_tokens);
    for (int k = 0; k < p.min_tokens - 1; k++) ck_assert_int_ne(o[1].tokens[0][k], sid);
    int32_t ref_eos[64];
    int ne = ref_greedy(prompt, 5, 40, false, ref_eos);
    ck_assert_int_eq(o[2].ntok[0], ne);
    ck_assert_int_eq(o[2].finish[0], ne < 40 ? SCHED_FINISH_STOP : SCHED_FINISH_LENGTH);
    for (int i = 0; i < 3; i++) {
        sched_request_release(rs[i]);
        ts_out_fini(&o[i]);
    }
    rig_fini(&g);
}
END_TEST

START_TEST(test_max_model_len_and_errors)
{
    struct rig g;
    rig_init(&g, 64, 4, 4, 4, 64, 32);
    int32_t prompt[40];
    make_prompt(prompt, 40, 5);
    char err[256];
    struct sched_params p;
    /* prompt + max_tokens over the limit */
    ts_params(&p, prompt, 30, 5);
    struct sched_request *r = sched_request_create(&p);
    ck_assert_int_eq(sched_submit(g.s, r, err, sizeof err), -E2BIG);
    ck_assert(strstr(err, "maximum context length is 32") != NULL);
    sched_request_release(r);
    /* prompt alone at the limit with max_tokens unset */
    ts_params(&p, prompt, 32, -1);
    r = sched_request_create(&p);
    ck_assert_int_eq(sched_submit(g.s, r, err, sizeof err), -E2BIG);
    sched_request_release(r);
    /* bad values */
    ts_params(&p, prompt, 0, 1);
    r = sched_request_create(&p);
    ck_assert_int_eq(sched_submit(g.s, r, err, sizeof err), -EINVAL);
    sched_request_release(r);
    int32_t badtok = VOCAB;
    ts_params(&p, &badtok, 1, 1);
    r = sched_request_create(&p);
    ck_assert_int_eq(sched_submit(g.s, r, err, sizeof err), -EINVAL);
    ck_assert(strstr(err, "out of range") != NULL);
    sched_request_release(r);
    ts_params(&p, prompt, 4, 4);
    p.n = 5; /* more than the 4 slots */
    r = sched_request_create(&p);
    ck_assert_int_eq(sched_submit(g.s, r, err, sizeof err), -EINVAL);
    ck_assert(strstr(err, "n must be") != NULL);
    sched_request_release(r);
    ts_params(&p, prompt, 4, 4);
    p.sampling.top_p = 2.0f;
    r = sched_request_create(&p);
    ck_assert_int_eq(sched_submit(g.s, r, err, sizeof err), -EINVAL);
    ck_assert(strstr(err, "top_p") != NULL);
    sched_request_release(r);
    const char *stop[] = {"x"};
    ts_params(&p, prompt, 4, 4);
    p.stop = stop;
    p.num_stop = 1;
    r = sched_request_create(&p);
    ck_assert_int_eq(sched_submit(g.s, r, err, sizeof err), -EINVAL); /* no tokenizer */
    sched_request_release(r);
    /* max_tokens unset runs to the model length */
    ts_params(&p, prompt, 20, -1);
    p.ignore_eos = true;
    r = sched_request_create(&p);
    ck_assert_int_eq(sched_submit(g.s, r, err, sizeof err), 0);
    ck_assert_int_eq(sched_submit(g.s, r, err, sizeof err), -EALREADY);
    struct ts_out o = {0};
    ts_run_sync(g.s, g.e, &r, &o, 1, 1000);
    ck_assert_int_eq(o.ntok[0], 12);
    ck_assert_int_eq(o.finish[0], SCHED_FINISH_LENGTH);
    sched_request_release(r);
    ts_out_fini(&o);
    rig_fini(&g);
}
END_TEST

START_TEST(test_queue_full_and_drain)
{
    int eos = EOS;
    struct engine *e = fake_engine_create(VOCAB, &eos, 1, 64, 64, 4, 8);
    struct sched_config c;
    sched_config_init(&c);
    c.eng = e;
    c.max_num_seqs = 4;
    c.max_num_batched_tokens = 64;
    c.max_model_len = 64;
    c.max_queued = 3;
    c.log_requests = false;
    char err[256];
    struct sched *s = sched_create(&c, err, sizeof err);
    ck_assert_ptr_nonnull(s);
    int32_t prompt[4] = {1, 2, 4, 5};
    struct sched_params p;
    ts_params(&p, prompt, 4, 3);
    struct sched_request *rs[4];
    for (int i = 0; i < 3; i++) {
        rs[i] = sched_request_create(&p);
        ck_assert_int_eq(sched_submit(s, rs[i], err, sizeof err), 0);
    }
    rs[3] = sched_request_create(&p);
    ck_assert_int_eq(sched_submit(s, rs[3], err, sizeof err), -EAGAIN);
    sched_drain_begin(s);
    ck_assert(sched_is_draining(s));
    ck_assert_int_eq(sched_submit(s, rs[3], err, sizeof err), -ESHUTDOWN);
    /* the queued ones still finish */
    struct ts_out o[3];
    memset(o, 0, sizeof o);
    ts_run_sync(s, e, rs, o, 3, 1000);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(o[i].finish_count[0], 1);
        ck_assert_int_ne(o[i].finish[0], SCHED_FINISH_ABORT);
        ts_out_fini(&o[i]);
    }
    for (int i = 0; i < 4; i++) sched_request_release(rs[i]);
    sched_destroy(s);
    fake_engine_destroy(e);
}
END_TEST

/* --- cancellation ---------------------------------------------------------------------- */

START_TEST(test_cancel_frees_next_step)
{
    struct rig g;
    rig_init(&g, 256, 4, 8, 8, 64, 128);
    int32_t prompt[10];
    make_prompt(prompt, 10, 8);
    struct sched_params p;
    ts_params(&p, prompt, 10, 100);
    p.ignore_eos = true;
    p.n = 2;
    struct sched_request *r = submit(g.s, &p);
    struct sched_request *w = submit(g.s, &p); /* stays waiting or running */
    for (int i = 0; i < 5; i++) ck_assert_int_ge(sched_step_sync(g.s), 0);
    struct sched_stats st;
    sched_get_stats(g.s, &st);
    ck_assert_int_gt(st.kv_blocks_used, 0);
    sched_cancel(g.s, r);
    sched_cancel(g.s, w);
    ck_assert_int_ge(sched_step_sync(g.s), 0);
    sched_get_stats(g.s, &st);
    ck_assert_int_eq(st.kv_blocks_used, 0);
    ck_assert_int_eq(st.slots_used, 0);
    ck_assert_int_eq(st.num_running + st.num_waiting, 0);
    ck_assert_uint_eq(st.requests_finished[SCHED_FINISH_ABORT], 2);
    struct ts_out o = {0};
    ts_out_collect(&o, r);
    ck_assert(o.done);
    for (int c = 0; c < 2; c++) {
        ck_assert_int_eq(o.finish[c], SCHED_FINISH_ABORT);
        ck_assert_int_eq(o.finish_count[c], 1);
    }
    /* cancelling again, or a finished request, changes nothing */
    sched_cancel(g.s, r);
    ck_assert_int_eq(sched_step_sync(g.s), 0);
    ck_assert_int_eq(ts_out_collect(&o, r), 0);
    sched_request_release(r);
    sched_request_release(w);
    ts_out_fini(&o);
    rig_fini(&g);
}
END_TEST

/* --- prompt log-probs ------------------------------------------------------------------- */

START_TEST(test_prompt_logprobs)
{
    /* chunked (16-token steps) and preempted: each prompt log-prob exactly once */
    struct rig g;
    rig_init(&g, 40, 4, 8, 8, 16, 128);
    int32_t prompt[50];
    make_prompt(prompt, 50, 9);
    struct sched_params p;
    ts_params(&p, prompt, 50, 0); /* echo scoring: no generation */
    p.prompt_logprobs = 3;
    struct sched_request *rs[3];
    rs[0] = submit(g.s, &p);
    p.max_tokens = 4;
    p.n = 2;
    rs[1] = submit(g.s, &p);
    int32_t other[60];
    make_prompt(other, 60, 10);
    struct sched_params q;
    ts_params(&q, other, 60, 20);
    q.ignore_eos = true;
    rs[2] = submit(g.s, &q);
    struct ts_out o[3];
    memset(o, 0, sizeof o);
    ts_run_sync(g.s, g.e, rs, o, 3, 5000);
    struct samp_ctx *sc = samp_ctx_create(VOCAB);
    float lg[VOCAB];
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(o[i].plp_count, 1);
        ck_assert_int_eq(o[i].nplp, 50);
        ck_assert_int_eq(o[i].plp[0].token, prompt[0]);
        ck_assert(isnan(o[i].plp[0].logprob));
        for (int k = 1; k < 50; k++) {
            fake_engine_logits(VOCAB, prompt, k, lg);
            struct samp_result res;
            ck_assert_int_eq(samp_logprobs(sc, lg, prompt[k], 3, &res), 0);
            ck_assert_int_eq(o[i].plp[k].token, prompt[k]);
            ck_assert(fabsf(o[i].plp[k].logprob - res.logprob) < 1e-6f);
            ck_assert_int_eq(o[i].plp[k].num_top, 3);
            ck_assert_int_eq(o[i].plp[k].top[0].token, res.top[0].token);
        }
    }
    ck_assert_int_eq(o[0].ntok[0], 0);
    ck_assert_int_eq(o[0].finish[0], SCHED_FINISH_LENGTH);
    ck_assert_int_eq(o[1].ntok[0], 4);
    ck_assert_int_eq(o[1].ntok[1], 4);
    samp_ctx_destroy(sc);
    for (int i = 0; i < 3; i++) {
        sched_request_release(rs[i]);
        ts_out_fini(&o[i]);
    }
    rig_fini(&g);
}
END_TEST

/* --- engine thread ----------------------------------------------------------------------- */

struct notify_count {
    atomic_int n;
};
static void count_notify(void *u) { atomic_fetch_add(&((struct notify_count *)u)->n, 1); }

struct client_arg {
    struct sched *s;
    int id;
    int ok;
};

static void *client(void *arg)
{
    struct client_arg *a = arg;
    int32_t prompt[12];
    make_prompt(prompt, 12, 300u + (unsigned)a->id);
    struct sched_params p;
    ts_params(&p, prompt, 12, 16);
    p.ignore_eos = true;
    struct sched_request *r = sched_request_create(&p);
    struct notify_count nc;
    atomic_init(&nc.n, 0);
    sched_request_set_notify(r, count_notify, &nc);
    char err[256];
    if (sched_submit(a->s, r, err, sizeof err) != 0) {
        sched_request_release(r);
        return NULL;
    }
    struct ts_out o = {0};
    while (!o.done) {
        sched_request_wait(r, 1000);
        ts_out_collect(&o, r);
    }
    sched_request_detach(r);
    int32_t ref[16];
    ref_greedy(prompt, 12, 16, true, ref);
    a->ok = o.ntok[0] == 16 && memcmp(o.tokens[0], ref, sizeof ref) == 0 &&
            atomic_load(&nc.n) > 0 && o.finish[0] == SCHED_FINISH_LENGTH;
    ts_out_fini(&o);
    sched_request_release(r);
    return NULL;
}

START_TEST(test_engine_thread_clients)
{
    struct rig g;
    rig_init(&g, 1024, 4, 32, 32, 256, 128);
    ck_assert_int_eq(sched_start(g.s), 0);
    enum { NC = 16 };
    pthread_t th[NC];
    struct client_arg args[NC];
    for (int i = 0; i < NC; i++) {
        args[i] = (struct client_arg){g.s, i, 0};
        pthread_create(&th[i], NULL, client, &args[i]);
    }
    for (int i = 0; i < NC; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < NC; i++) ck_assert_msg(args[i].ok, "client %d", i);
    ck_assert_int_eq(sched_wait_idle(g.s, 5000), 0);
    /* graceful drain with a request in flight, then stop aborts the rest */
    int32_t prompt[4] = {5, 6, 7, 8};
    struct sched_params p;
    ts_params(&p, prompt, 4, 100);
    p.ignore_eos = true;
    struct sched_request *r = submit(g.s, &p);
    sched_drain_begin(g.s);
    ck_assert_int_eq(sched_wait_idle(g.s, 10000), 0);
    struct ts_out o = {0};
    ts_out_collect(&o, r);
    ck_assert(o.done);
    ck_assert_int_eq(o.ntok[0], 100);
    sched_stop(g.s);
    ck_assert_int_eq(fake_engine_errors(g.e), 0);
    sched_request_release(r);
    ts_out_fini(&o);
    rig_fini(&g);
}
END_TEST

START_TEST(test_stop_aborts_running)
{
    struct rig g;
    rig_init(&g, 1024, 4, 8, 8, 64, 512);
    ck_assert_int_eq(sched_start(g.s), 0);
    int32_t prompt[4] = {5, 6, 7, 8};
    struct sched_params p;
    ts_params(&p, prompt, 4, 500);
    p.ignore_eos = true;
    struct sched_request *r = submit(g.s, &p);
    ck_assert_int_eq(sched_request_wait(r, 5000), 1); /* running: something came out */
    sched_stop(g.s);
    struct ts_out o = {0};
    ts_out_collect(&o, r);
    ck_assert(o.done);
    ck_assert_int_eq(o.finish_count[0], 1);
    if (o.ntok[0] < 500) ck_assert_int_eq(o.finish[0], SCHED_FINISH_ABORT);
    else ck_assert_int_eq(o.finish[0], SCHED_FINISH_LENGTH);
    struct sched_stats st;
    sched_get_stats(g.s, &st);
    ck_assert_int_eq(st.kv_blocks_used, 0);
    ck_assert_int_eq(st.slots_used, 0);
    char err[128];
    struct sched_request *r2 = sched_request_create(&p);
    ck_assert_int_eq(sched_submit(g.s, r2, err, sizeof err), -ESHUTDOWN);
    sched_request_release(r2);
    sched_request_release(r);
    ts_out_fini(&o);
    rig_fini(&g);
}
END_TEST

/* --- memory plan --------------------------------------------------------------------------- */

START_TEST(test_memplan)
{
    struct cfg_model c;
    memset(&c, 0, sizeof c);
    c.num_hidden_layers = 4;
    c.num_attn_layers = 1;
    c.num_gdn_layers = 3;
    c.num_key_value_heads = 2;
    c.head_dim = 16;
    c.linear_num_key_heads = 2;
    c.linear_num_value_heads = 2;
    c.linear_key_head_dim = 16;
    c.linear_value_head_dim = 16;
    c.linear_conv_kernel_dim = 4;
    size_t kvb = eng_kv_block_bytes(&c, 16, 4), slb = eng_slot_bytes(&c, 4);
    ck_assert_uint_gt(kvb, 0);
    ck_assert_uint_gt(slb, 0);
    struct sched_memplan mp;
    char err[256], line[256];
    ck_assert_int_eq(sched_memplan_compute(&c, (size_t)64 << 20, 16, 4096, 256, 4, 4, &mp, err, sizeof err), 0);
    ck_assert_int_ge(mp.num_kv_blocks, 256);
    ck_assert_int_ge(mp.num_state_slots, 1);
    ck_assert_int_le(mp.num_state_slots, 256);
    ck_assert_uint_le(mp.used_bytes, mp.budget_bytes);
    ck_assert_int_ge(mp.max_seqs_at_max_len, 1);
    sched_memplan_describe(&mp, line, sizeof line);
    ck_assert(strstr(line, "KV blocks") != NULL);
    /* a huge budget is capped by what max_num_seqs can use */
    ck_assert_int_eq(sched_memplan_compute(&c, (size_t)1 << 34, 16, 4096, 8, 4, 4, &mp, err, sizeof err), 0);
    ck_assert_int_eq(mp.num_state_slots, 8);
    ck_assert_int_eq(mp.num_kv_blocks, 8 * 256);
    ck_assert_int_eq(mp.max_seqs_at_max_len, 8);
    /* too small for one sequence */
    ck_assert_int_eq(sched_memplan_compute(&c, 1000, 16, 4096, 8, 4, 4, &mp, err, sizeof err), -ENOMEM);
    ck_assert(strstr(err, "--max-model-len") != NULL);
    ck_assert_uint_eq(sched_memplan_gpu_budget(1000, 300, 0.9), 600);
    ck_assert_uint_eq(sched_memplan_gpu_budget(1000, 950, 0.9), 0);
}
END_TEST

Suite *sched_suite(void)
{
    Suite *s = suite_create("sched");
    TCase *tc = tcase_create("policy");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_greedy_32_equal_alone);
    tcase_add_test(tc, test_greedy_small_budget_chunked);
    tcase_add_test(tc, test_preemption_same_output);
    tcase_add_test(tc, test_seed_independent_of_batch);
    tcase_add_test(tc, test_fork_greedy_equal);
    tcase_add_test(tc, test_fork_sampled_distinct_and_stable);
    tcase_add_test(tc, test_stop_ids_min_tokens_eos);
    tcase_add_test(tc, test_max_model_len_and_errors);
    tcase_add_test(tc, test_queue_full_and_drain);
    tcase_add_test(tc, test_cancel_frees_next_step);
    tcase_add_test(tc, test_prompt_logprobs);
    tcase_add_test(tc, test_engine_thread_clients);
    tcase_add_test(tc, test_stop_aborts_running);
    tcase_add_test(tc, test_memplan);
    suite_add_tcase(s, tc);
    return s;
}
