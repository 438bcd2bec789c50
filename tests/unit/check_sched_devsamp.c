/* tests/unit/check_sched_devsamp.c: the scheduler's device-sampling path
 * (scheduler/step.c devsamp_*: eng_batch.logits_on_device, ops->sample,
 * ops->fetch_logits) on the CPU, through a backend that wraps the CPU
 * reference and offers ops->sample by running samp_sample over the logits it
 * kept (its host logits buffer is poisoned, so a scheduler that read it would
 * go wrong). The same requests (greedy, seeded sampling, penalties,
 * logit_bias, min_tokens with stop ids, log-probs, n = 3, prompt log-probs,
 * n-gram speculation) must give exactly the plain CPU backend's outputs,
 * also when the "device" holds fewer rows than a step has (-E2BIG: the
 * scheduler fetches the logits and samples on the host).
 */
#include <check.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/config.h"
#include "engine/engine.h"
#include "engine/sampling.h"
#include "engine/weights.h"
#include "scheduler/sched.h"
#include "tests/unit/util_sched.h"

/* --- the wrapping backend (one engine per test process: fork mode) --------- */

static struct {
    float *kept;            /* [rows * vocab] the last forward's logits */
    int kept_rows;          /* -1: none kept */
    size_t cap;
    int max_jobs;           /* ops->sample answers -E2BIG beyond this */
    struct samp_ctx *ctx;
    long calls, rows, refused, fetched, verify_rows;
} g_dev;

static int dev_init(struct engine *e)
{
    int rc = eng_backend_cpu.init(e);
    if (rc) return rc;
    e->sample_max_logits = 1 << 20;
    g_dev.kept_rows = -1;
    g_dev.ctx = samp_ctx_create(e->cfg->vocab_size);
    return g_dev.ctx ? 0 : -ENOMEM;
}

static void dev_destroy(struct engine *e)
{
    samp_ctx_destroy(g_dev.ctx);
    free(g_dev.kept);
    g_dev.kept = NULL;
    g_dev.cap = 0;
    eng_backend_cpu.destroy(e);
}

static int dev_forward(struct engine *e, const struct eng_batch *b, float *logits)
{
    size_t V = (size_t)e->cfg->vocab_size;
    g_dev.kept_rows = -1;
    if (b->num_verify > 0) g_dev.verify_rows += b->num_verify;
    if (!b->logits_on_device) return eng_backend_cpu.forward(e, b, logits);
    size_t need = (size_t)b->num_logits * V;
    if (need > g_dev.cap) {
        float *k = realloc(g_dev.kept, sizeof(float) * need);
        if (!k) return -ENOMEM;
        g_dev.kept = k;
        g_dev.cap = need;
    }
    for (size_t i = 0; i < need; i++) logits[i] = NAN; /* never written by a device backend */
    int rc = eng_backend_cpu.forward(e, b, g_dev.kept);
    if (rc == 0) g_dev.kept_rows = b->num_logits;
    return rc;
}

static int dev_sample(struct engine *e, const struct eng_sample_row *rows, int n,
                      struct samp_result *out)
{
    if (g_dev.kept_rows < 0) return -EINVAL;
    g_dev.calls++;
    if (n > g_dev.max_jobs) {
        g_dev.refused++;
        return -E2BIG;
    }
    size_t V = (size_t)e->cfg->vocab_size;
    for (int i = 0; i < n; i++) {
        const struct eng_sample_row *r = &rows[i];
        ck_assert(r->logits_row >= 0 && r->logits_row < g_dev.kept_rows);
        int rc = samp_sample(g_dev.ctx, g_dev.kept + (size_t)r->logits_row * V, r->params,
                             r->prompt, r->num_prompt, r->output, r->num_output, r->banned,
                             r->num_banned, r->seed, r->stream, r->counter, r->num_logprobs,
                             &out[i]);
        if (rc) return rc;
    }
    g_dev.rows += n;
    return 0;
}

static int dev_fetch(struct engine *e, float *logits)
{
    if (g_dev.kept_rows < 0) return -EINVAL;
    g_dev.fetched++;
    memcpy(logits, g_dev.kept, sizeof(float) * (size_t)g_dev.kept_rows * e->cfg->vocab_size);
    return 0;
}

static int dev_copy_slot(struct engine *e, int s, int d) { return eng_backend_cpu.copy_slot(e, s, d); }
static int dev_copy_block(struct engine *e, int s, int d) { return eng_backend_cpu.copy_block(e, s, d); }

static const struct eng_backend_ops dev_ops = {
    .name = "cpu-devsamp",
    .init = dev_init,
    .destroy = dev_destroy,
    .forward = dev_forward,
    .copy_slot = dev_copy_slot,
    .copy_block = dev_copy_block,
    .sample = dev_sample,
    .fetch_logits = dev_fetch,
};

/* --- runs -------------------------------------------------------------------- */

#define NR 14

static void make_model(void) { ts_model_make(4321u); }

struct req_store {
    int32_t prompt[NR][40];
    int32_t stops[NR][2];
    struct samp_bias bias[NR][3];
};

static void req_params(int i, int V, struct req_store *st, struct sched_params *ps)
{
    int32_t *pr = st->prompt[i];
    int len = 6 + (i * 7) % 30;
    unsigned s = 99u + (unsigned)i * 7919u;
    for (int k = 0; k < len; k++) { /* odd prompts repeat a phrase: n-gram drafts hit */
        s = s * 1103515245u + 12345u;
        pr[k] = i % 2 && k >= 4 ? pr[k % 4] : (int32_t)(2 + (s >> 8) % (unsigned)(V - 2));
    }
    ts_params(ps, pr, len, 14 - i % 4);
    ps->has_seed = true;
    ps->seed = 77 + (uint64_t)i;
    struct samp_params *p = &ps->sampling;
    switch (i) {
    case 0: break; /* greedy */
    case 1: p->temperature = 1.0f; ps->logprobs = 3; break;
    case 2: p->temperature = 0.8f; p->top_k = 12; break;
    case 3: p->temperature = 1.1f; p->top_p = 0.8f; ps->logprobs = 0; break;
    case 4: p->temperature = 1.0f; p->min_p = 0.05f; break;
    case 5: p->temperature = 1.0f; p->repetition_penalty = 1.4f; p->frequency_penalty = 0.7f;
            p->presence_penalty = 0.4f; break;
    case 6: p->temperature = 0.9f;
            for (int j = 0; j < 3; j++) st->bias[i][j] = (struct samp_bias){.token = pr[j], .bias = 4.0f};
            p->logit_bias = st->bias[i];
            p->num_logit_bias = 3;
            break;
    case 7: p->temperature = 1.0f; ps->min_tokens = 8; ps->ignore_eos = false;
            st->stops[i][0] = pr[0];
            st->stops[i][1] = pr[1];
            ps->stop_token_ids = st->stops[i];
            ps->num_stop_token_ids = 2;
            break;
    case 8: p->temperature = 1.0f; ps->n = 3; ps->logprobs = 2; break;
    case 9: p->temperature = 0.7f; ps->prompt_logprobs = 2; break;
    case 10: p->repetition_penalty = 1.6f; break; /* greedy with a penalty */
    case 12: /* sampling over a 3-token alphabet: outputs repeat, so n-gram drafts
              * get accepted several positions deep (counter, history, bans per t) */
    case 13:
        p->temperature = 1.0f;
        for (int j = 0; j < 3; j++) st->bias[i][j] = (struct samp_bias){.token = pr[j], .bias = 100.0f};
        p->logit_bias = st->bias[i];
        p->num_logit_bias = pr[0] == pr[1] || pr[1] == pr[2] || pr[0] == pr[2] ? 1 : 3;
        if (i == 13) {
            p->repetition_penalty = 1.2f;
            p->presence_penalty = 0.5f;
            ps->min_tokens = 6;
            ps->ignore_eos = false;
            st->stops[i][0] = pr[1];
            ps->stop_token_ids = st->stops[i];
            ps->num_stop_token_ids = 1;
        }
        ps->max_tokens = 24;
        break;
    case 11: p->temperature = 1.4f; p->top_k = 40; p->top_p = 0.95f; p->min_p = 0.02f;
             p->frequency_penalty = -0.3f; ps->logprobs = 5; break;
    }
}

/* All NR requests through one scheduler on a fresh engine (ops), k drafts. */
static void run_all(const struct eng_backend_ops *ops, int k, struct ts_out *outs)
{
    char err[256];
    struct cfg_model cfg;
    struct eng_weights w;
    ck_assert_msg(cfg_load_dir(&cfg, ts_model_dir, err, sizeof err) == 0, "%s", err);
    ck_assert_msg(eng_weights_load(&w, &cfg, ts_model_dir, err, sizeof err) == 0, "%s", err);
    struct eng_memory mem = {.num_kv_blocks = 160, .block_size = 16, .num_state_slots = 64};
    struct engine *e = eng_create(&cfg, &w, ops, &mem, err, sizeof err);
    ck_assert_msg(e != NULL, "%s", err);
    struct sched_config c;
    sched_config_init(&c);
    c.eng = e;
    c.max_num_seqs = 8;
    c.max_num_batched_tokens = 40;
    c.max_model_len = 128;
    c.default_seed = 5;
    c.log_requests = false;
    c.num_speculative_tokens = k;
    c.ngram_min = 1;
    c.ngram_max = 3;
    struct sched *s = sched_create(&c, err, sizeof err);
    ck_assert_msg(s != NULL, "%s", err);
    static struct req_store st;
    struct sched_request *rs[NR];
    for (int i = 0; i < NR; i++) {
        struct sched_params ps;
        req_params(i, cfg.vocab_size, &st, &ps);
        rs[i] = sched_request_create(&ps);
        ck_assert_ptr_nonnull(rs[i]);
        ck_assert_msg(sched_submit(s, rs[i], err, sizeof err) == 0, "%s", err);
        memset(&outs[i], 0, sizeof outs[i]);
    }
    ts_run_sync(s, NULL, rs, outs, NR, 100000);
    for (int i = 0; i < NR; i++) sched_request_release(rs[i]);
    sched_destroy(s);
    eng_destroy(e);
    eng_weights_free(&w);
}

static void expect_same(struct ts_out *a, struct ts_out *b)
{
    for (int i = 0; i < NR; i++) {
        ck_assert_int_eq(a[i].error, 0);
        ck_assert_int_eq(b[i].error, 0);
        ck_assert_int_eq(a[i].n, b[i].n);
        for (int c = 0; c < a[i].n; c++) {
            ck_assert_int_eq(a[i].ntok[c], b[i].ntok[c]);
            ck_assert_int_eq(a[i].finish[c], b[i].finish[c]);
            for (int t = 0; t < a[i].ntok[c]; t++) {
                ck_assert_msg(a[i].tokens[c][t] == b[i].tokens[c][t],
                              "request %d choice %d token %d: %d vs %d", i, c, t,
                              a[i].tokens[c][t], b[i].tokens[c][t]);
                ck_assert((a[i].lps[c] == NULL) == (b[i].lps[c] == NULL));
                if (a[i].lps[c]) ck_assert(a[i].lps[c][t] == b[i].lps[c][t]);
            }
        }
        ck_assert_int_eq(a[i].nplp, b[i].nplp);
        for (int t = 1; t < a[i].nplp; t++)
            ck_assert(a[i].plp[t].logprob == b[i].plp[t].logprob);
    }
}

static void outs_fini(struct ts_out *o)
{
    for (int i = 0; i < NR; i++) ts_out_fini(&o[i]);
}

START_TEST(test_devsamp_same_as_host)
{
    static struct ts_out ref[NR], dev[NR];
    const int k = 3 * _i; /* 0: plain decoding; 3: speculation with verify rows */
    run_all(&eng_backend_cpu, k, ref);
    memset(&g_dev, 0, sizeof g_dev);
    g_dev.max_jobs = 1 << 20;
    run_all(&dev_ops, k, dev);
    expect_same(ref, dev);
    ck_assert_int_gt(g_dev.calls, 10);
    ck_assert_int_gt(g_dev.rows, 50);
    ck_assert_int_eq(g_dev.refused, 0);
    if (k) ck_assert_int_gt(g_dev.verify_rows, 0);
    printf("  devsamp k=%d: %ld sample calls, %ld rows, %ld verify rows\n", k, g_dev.calls,
           g_dev.rows, g_dev.verify_rows);
    outs_fini(ref);
    outs_fini(dev);
}
END_TEST

/* A "device" smaller than the steps: refused steps fall back to the host. */
START_TEST(test_devsamp_fallback)
{
    static struct ts_out ref[NR], dev[NR];
    run_all(&eng_backend_cpu, 3, ref);
    memset(&g_dev, 0, sizeof g_dev);
    g_dev.max_jobs = 4;
    run_all(&dev_ops, 3, dev);
    expect_same(ref, dev);
    ck_assert_int_gt(g_dev.refused, 0);
    ck_assert_int_eq(g_dev.fetched, g_dev.refused);
    ck_assert_int_gt(g_dev.rows, 0);
    outs_fini(ref);
    outs_fini(dev);
}
END_TEST

Suite *sched_devsamp_suite(void)
{
    Suite *s = suite_create("sched_devsamp");
    TCase *tc = tcase_create("devsamp");
    tcase_add_unchecked_fixture(tc, make_model, ts_model_drop);
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_devsamp_same_as_host, 0, 2);
    tcase_add_test(tc, test_devsamp_fallback);
    suite_add_tcase(s, tc);
    return s;
}
