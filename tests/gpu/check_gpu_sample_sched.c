/* tests/gpu/check_gpu_sample_sched.c: device sampling through the whole
 * scheduler (suite gpu_sample). The same requests (greedy, seeded sampling
 * with temperature / top_k / top_p / min_p, penalties, logit_bias, min_tokens
 * with stop ids, log-probs, n = 3 choices, prompt log-probs) run on the CUDA
 * backend with device sampling and again with device sampling switched off
 * (the scheduler samples the same device's logits on the host with
 * samp_sample): every token must be the same and every log-prob within 1e-4,
 * without and with n-gram speculation (verify positions sampled on the
 * device; steps with more rows than the device sampler holds fall back to the
 * host). The CPU backend runs them too: its logits differ from the GPU's by
 * bf16 rounding, so seeded draws may part at a near-boundary; most tokens
 * must agree.
 *
 * GPU test binary (and tools/cuda-emu), CK_NOFORK, single-threaded.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "scheduler/sched.h"
#include "tests/gpu/gpu_util.h"

static const char *CFG_SMALL =
    "{\"model_type\":\"olmo_hybrid\",\"vocab_size\":300,\"hidden_size\":64,"
    "\"intermediate_size\":160,\"num_hidden_layers\":4,\"num_attention_heads\":4,"
    "\"num_key_value_heads\":2,\"head_dim\":16,\"linear_num_key_heads\":2,"
    "\"linear_num_value_heads\":4,\"linear_key_head_dim\":16,\"linear_value_head_dim\":32,"
    "\"linear_conv_kernel_dim\":4,\"allow_neg_eigval\":true,\"rms_norm_eps\":1e-6,"
    "\"max_position_embeddings\":4096,\"tie_word_embeddings\":false,\"rope_theta\":10000,"
    "\"eos_token_id\":1,\"pad_token_id\":0}";

#define NR 12
#define NCH 3
#define MT 16

struct run_out {
    int32_t tok[NR][NCH][MT];
    float lp[NR][NCH][MT];
    int n[NR][NCH];
    int nplp[NR];
    float plp[NR][64];
};

/* The emulator runs fewer, shorter requests: these cases first. */
static const int EMU_CASES[] = {8, 9, 7, 5, 11, 6, 3};
#define EMU_NR ((int)(sizeof EMU_CASES / sizeof EMU_CASES[0]))

/* Request i's parameters: a cycle over the sampler's features. */
static void req_params(int i, struct sched_params *ps, int32_t *pr, int V, struct samp_bias *bias,
                       int32_t *stops)
{
    const int emu = gu_emulated();
    const int cs = emu ? EMU_CASES[i % EMU_NR] : i % NR;
    sched_params_init(ps);
    unsigned s = 17u + (unsigned)i * 2654435761u;
    int len = 6 + (i * 5) % 20;
    for (int k = 0; k < len; k++) {
        s = s * 1103515245u + 12345u;
        /* odd prompts repeat a 3-token phrase so n-gram drafts get proposed */
        pr[k] = i % 2 && k >= 3 ? pr[k % 3] : (int32_t)(2 + (s >> 8) % (unsigned)(V - 2));
    }
    ps->prompt = pr;
    ps->prompt_len = len;
    ps->max_tokens = (emu ? MT / 2 : MT) - (i % 3);
    ps->ignore_eos = true;
    ps->has_seed = true;
    ps->seed = 1000 + (uint64_t)i;
    struct samp_params *p = &ps->sampling;
    switch (cs) {
    case 0: p->temperature = 0.0f; break;
    case 1: p->temperature = 1.0f; ps->logprobs = 5; break;
    case 2: p->temperature = 0.8f; p->top_k = 20; break;
    case 3: p->temperature = 1.2f; p->top_p = 0.9f; ps->logprobs = 0; break;
    case 4: p->temperature = 1.0f; p->min_p = 0.1f; break;
    case 5: p->temperature = 1.0f; p->repetition_penalty = 1.3f; p->frequency_penalty = 0.5f;
            p->presence_penalty = 0.3f; break;
    case 6: p->temperature = 0.9f;
            for (int j = 0; j < 3; j++) bias[j] = (struct samp_bias){.token = pr[j], .bias = 3.0f};
            p->logit_bias = bias;
            p->num_logit_bias = 3;
            break;
    case 7: p->temperature = 1.0f; ps->min_tokens = 6; ps->ignore_eos = false;
            stops[0] = pr[0]; stops[1] = pr[1];
            ps->stop_token_ids = stops;
            ps->num_stop_token_ids = 2;
            break;
    case 8: p->temperature = 1.0f; ps->n = NCH; ps->logprobs = 2; break;
    case 9: p->temperature = 0.7f; ps->prompt_logprobs = 3; break; /* host-logits steps */
    case 10: p->temperature = 0.0f; p->repetition_penalty = 1.5f; break;
    default: p->temperature = 1.5f; p->top_k = 50; p->top_p = 0.95f; p->min_p = 0.02f;
             p->frequency_penalty = -0.5f; ps->logprobs = 20; break;
    }
}

/* gu_sched_run's delta callback: every choice's tokens and log-probs, and
 * the prompt log-probs, of request i into the run_out ctx. */
static void run_collect(void *ctx, int i, const struct sched_delta *d)
{
    struct run_out *o = ctx;
    for (int ch = 0; ch < d->n && ch < NCH; ch++) {
        const struct sched_choice_delta *cd = &d->choices[ch];
        for (int t = 0; t < cd->num_tokens; t++) {
            int at = o->n[i][ch]++;
            ck_assert_int_lt(at, MT);
            o->tok[i][ch][at] = cd->tokens[t];
            o->lp[i][ch][at] = cd->logprobs ? cd->logprobs[t].logprob : 0.0f;
        }
    }
    if (d->num_prompt_logprobs > 0) {
        o->nplp[i] = d->num_prompt_logprobs < 64 ? d->num_prompt_logprobs : 64;
        for (int t = 1; t < o->nplp[i]; t++)
            o->plp[i][t] = d->prompt_logprobs[t].logprob;
    }
}

static void run_sched(struct engine *e, int k, int nr, struct run_out *o)
{
    /* max_num_seqs 8: the device sampler holds 8 rows, so spec steps overflow it */
    struct sched *s = gu_sched_create(e, k, 8, 40, 128);
    struct sched_request *rs[NR];
    int32_t pr[NR][32], stops[NR][2];
    struct samp_bias bias[NR][3];
    memset(o, 0, sizeof *o);
    for (int i = 0; i < nr; i++) {
        struct sched_params ps;
        req_params(i, &ps, pr[i], e->cfg->vocab_size, bias[i], stops[i]);
        rs[i] = gu_sched_submit(s, &ps);
    }
    gu_sched_run(s, rs, nr, 3000, run_collect, o);
    for (int i = 0; i < nr; i++)
        sched_request_release(rs[i]);
    sched_destroy(s);
}

/* a and b must be the same run: tokens identical, log-probs within 1e-4. */
static void expect_same(const struct run_out *a, const struct run_out *b, int nr, const char *what)
{
    int toks = 0;
    for (int i = 0; i < nr; i++) {
        for (int ch = 0; ch < NCH; ch++) {
            ck_assert_msg(a->n[i][ch] == b->n[i][ch], "%s: request %d choice %d: %d vs %d tokens",
                          what, i, ch, a->n[i][ch], b->n[i][ch]);
            for (int t = 0; t < a->n[i][ch]; t++) {
                ck_assert_msg(a->tok[i][ch][t] == b->tok[i][ch][t],
                              "%s: request %d choice %d token %d: %d vs %d", what, i, ch, t,
                              a->tok[i][ch][t], b->tok[i][ch][t]);
                ck_assert_msg(fabsf(a->lp[i][ch][t] - b->lp[i][ch][t]) <= 1e-4f,
                              "%s: request %d token %d logprob %g vs %g", what, i, t,
                              a->lp[i][ch][t], b->lp[i][ch][t]);
                toks++;
            }
        }
        ck_assert_int_eq(a->nplp[i], b->nplp[i]);
        for (int t = 1; t < a->nplp[i]; t++)
            ck_assert(fabsf(a->plp[i][t] - b->plp[i][t]) <= 1e-4f);
    }
    printf("  %-44s %4d tokens identical\n", what, toks);
}

/* 1 when the backend runs speculative verify rows (a 2-token verify probe). */
static int verify_supported(struct engine *e)
{
    int32_t tok[2] = {2, 3}, pos[2] = {0, 1}, qs[2] = {0, 2}, cl[1] = {0}, sl[1] = {0},
            bt[1] = {0}, ss[2] = {1, 2}, rows[2] = {0, 1};
    struct eng_batch b = {.num_seqs = 1, .num_tokens = 2, .num_verify = 1, .tokens = tok,
                          .positions = pos, .query_start = qs, .cache_len = cl,
                          .state_slot = sl, .block_table = bt, .max_blocks = 1,
                          .logits_rows = rows, .num_logits = 2, .max_spec = 1,
                          .spec_slots = ss};
    float lg[2 * 300];
    return eng_forward(e, &b, lg) == 0;
}

START_TEST(test_sample_sched_identity)
{
    struct gu_pair p;
    /* 8 sequences with 1+3 spec slots each, n=3 children included (the rng
     * seed is moot: this test draws its prompts from its own LCG) */
    gu_pair_open(&p, 77, CFG_SMALL, 77,
                 &(struct gu_pair_shape){.kv_blocks = 8 * 12 + 16, .state_slots = 8 * 5 + 8,
                                         .max_tokens = 256, .max_seqs = 8,
                                         .max_blocks_per_seq = 16, .max_logits = 64});
    struct engine *gpu = p.gpu, *cpu = p.cpu;
    ck_assert_msg(gpu->ops->sample && gpu->sample_max_logits == 64,
                  "the CUDA backend offers device sampling");
    const int nr = gu_emulated() ? EMU_NR : NR;
    static struct run_out dev, host, ref;
    const int spec = verify_supported(gpu);
    if (!spec)
        printf("  (the CUDA backend runs no verify rows here: speculation part skipped)\n");
    for (int k = spec ? 3 : 0; k >= 0; k -= 3) {
        run_sched(gpu, k, nr, &dev);
        int cap = gpu->sample_max_logits;
        gpu->sample_max_logits = 0; /* the scheduler samples the device's logits on the host */
        run_sched(gpu, k, nr, &host);
        gpu->sample_max_logits = cap;
        expect_same(&dev, &host, nr, k ? "device vs host sampling, speculation k=3"
                                       : "device vs host sampling");
    }
    /* the CPU backend: same requests, fp32 logits (dev: the GPU run with k = 0) */
    run_sched(cpu, 0, nr, &ref);
    int agree = 0, total = 0;
    for (int i = 0; i < nr; i++)
        for (int ch = 0; ch < NCH; ch++) {
            int t = 0;
            while (t < dev.n[i][ch] && t < ref.n[i][ch] && dev.tok[i][ch][t] == ref.tok[i][ch][t])
                t++;
            agree += t;
            total += ref.n[i][ch];
        }
    printf("  %-44s %4d of %4d tokens before the first divergence\n",
           "CUDA (device sampling) vs CPU backend", agree, total);
    ck_assert_msg(agree * 2 >= total, "CUDA and CPU seeded outputs part too early (%d of %d)",
                  agree, total);
    gu_pair_close(&p);
}
END_TEST

TCase *gpu_sample_sched_tcase(void)
{
    TCase *tc = tcase_create("sample_sched");
    tcase_set_timeout(tc, 900);
    tcase_add_test(tc, test_sample_sched_identity);
    return tc;
}
