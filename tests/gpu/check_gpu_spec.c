/* tests/gpu/check_gpu_spec.c: speculative verify rows on the CUDA backend
 * against the CPU reference backend (issue 9 on the GPU).
 *
 * 1. Engine level: the same random bf16 checkpoint on both backends, batches
 *    that mix plain decodes, verify rows (last token + k drafts, k = 0..8) and
 *    prefill chunks. Every verify position's logits are compared, and every
 *    spec slot's whole GDN state (conv window and SSM state of every GDN
 *    layer, read with eng_read_slot) against the CPU's; the GPU spec slots are
 *    poisoned with NaN before each step so an unwritten one shows. The
 *    sequence then adopts the slot of a random accepted count, on both
 *    engines, so later steps check the adopted state too (as the scheduler
 *    does). Tiny shape, 7B GDN head dims (96/192), and bf16 SSM state.
 * 2. Scheduler level: greedy outputs with and without n-gram speculation on
 *    the CUDA backend are the same token for token; a divergence passes only
 *    where the model itself has a near-tie there (checked by re-running the
 *    common prefix), and most prompts must match exactly.
 *
 * Runs on the GPU machine (make test-gpu) and under tools/cuda-emu, CK_NOFORK.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/config.h"
#include "engine/cuda/cuda_internal.h"
#include "engine/engine.h"
#include "engine/weights.h"
#include "scheduler/sched.h"
#include "tests/gpu/gpu_util.h"

#define MAXB 32   /* blocks per sequence: 512 tokens at 16 */
#define NSEQ 6    /* sequences 0,1 decode, 2..4 verify, 5 prefill */
#define NVER 3
#define KMAX 8    /* drafts per verify row at most */
#define S1 (KMAX + 1)
#define NSLOTS (NSEQ + NVER * S1)

struct pair {
    struct gu_pair e;
    size_t slot_floats;
    double lp_tol, rel_tol, state_tol;
    /* stats */
    struct gu_row_stats st;
    int verify_rows, states;
    double max_state, min_neighbour;
};

static void pair_open(struct pair *p, uint64_t rng_seed, const char *json, uint32_t seed,
                      int ssm_bf16, int nslots, int nblocks, int max_tokens)
{
    memset(p, 0, sizeof *p);
    /* max_logits smaller than the verify steps' rows: chunked lm_head */
    gu_pair_open(&p->e, rng_seed, json, seed,
                 &(struct gu_pair_shape){.kv_blocks = nblocks, .state_slots = nslots,
                                         .max_tokens = max_tokens, .max_seqs = 32,
                                         .max_blocks_per_seq = MAXB, .max_logits = 24,
                                         .ssm_state_bf16 = ssm_bf16});
    p->slot_floats = eng_slot_floats(&p->e.cfg);
    p->lp_tol = ssm_bf16 ? 0.15 : 0.06;
    p->rel_tol = ssm_bf16 ? 0.06 : 0.03;
    p->state_tol = ssm_bf16 ? 0.05 : 0.04;
    p->min_neighbour = 1e30;
}

static void pair_close(struct pair *p, const char *name)
{
    if (p->st.rows)
        printf("  %-34s rows %4d (verify %4d) max |dlogp| %.4f max rel %.4f; spec states %4d "
               "max rel %.2e (neighbours >= %.2e)\n",
               name, p->st.rows, p->verify_rows, p->st.max_lp, p->st.max_rel, p->states,
               p->max_state, p->min_neighbour);
    gu_pair_close(&p->e);
}

/* Whole GDN state of a slot on both engines: the largest relative L2 error
 * over the GDN layers' conv windows and SSM states (each part separately);
 * *nan set when the GPU's has NaN (an unwritten, poisoned snapshot). */
static double state_err(struct pair *p, int slot_cpu, int slot_gpu, int *nan, int *worst_layer)
{
    float *a = malloc(p->slot_floats * 4), *b = malloc(p->slot_floats * 4);
    ck_assert_int_eq(eng_read_slot(p->e.cpu, slot_cpu, a), 0);
    ck_assert_int_eq(eng_read_slot(p->e.gpu, slot_gpu, b), 0);
    const struct cfg_model *c = &p->e.cfg;
    size_t conv = (size_t)(c->linear_conv_kernel_dim - 1) * cfg_gdn_conv_dim(c);
    size_t ssm = (size_t)c->linear_num_value_heads * c->linear_key_head_dim * c->linear_value_head_dim;
    double worst = 0;
    *nan = 0;
    *worst_layer = 0;
    for (int l = 0; l < c->num_gdn_layers; l++) {
        size_t off = (size_t)l * (conv + ssm);
        double e = fmax(gu_rel_err(b + off, a + off, conv, nan),
                        gu_rel_err(b + off + conv, a + off + conv, ssm, nan));
        if (e > worst)
            worst = e, *worst_layer = l;
    }
    free(a);
    free(b);
    return worst;
}

static void compare_state(struct pair *p, int slot_cpu, int slot_gpu, const char *what)
{
    int nan, l;
    double e = state_err(p, slot_cpu, slot_gpu, &nan, &l);
    ck_assert_msg(!nan, "%s: GDN state has NaN (a snapshot was not written)", what);
    ck_assert_msg(e <= p->state_tol, "%s: GDN layer %d state rel err %.3e > %.1e", what, l, e,
                  p->state_tol);
    p->max_state = fmax(p->max_state, e);
    p->states++;
}

/* NaN into every GDN layer's conv and SSM state of a GPU slot (white box:
 * the CUDA backend's pools), so a snapshot the kernels skip shows. */
static void poison_gpu_slot(struct pair *p, int slot)
{
    struct cu_impl *m = p->e.gpu->impl;
    size_t esz = m->opt.ssm_state_bf16 ? 2 : 4;
    for (int i = 0; i < m->num_gdn; i++) {
        ck_assert_int_eq(cudaMemset(m->conv_state[i] + (size_t)slot * m->conv_slot_elems, 0xFF,
                                    m->conv_slot_elems * 4), cudaSuccess);
        ck_assert_int_eq(cudaMemset((char *)m->ssm_state[i] + (size_t)slot * m->ssm_slot_elems * esz,
                                    0xFF, m->ssm_slot_elems * esz), cudaSuccess);
    }
    gu_sync();
}

struct sq {
    int slot, cache;
    int spec[S1]; /* verify rows: this row's spec slots (swapped on acceptance) */
};

struct batch {
    int N, ndec, nver, T, R;
    int n[NSEQ];
    int32_t tok[NSEQ * 64], pos[NSEQ * 64], qs[NSEQ + 1], cl[NSEQ], sl[NSEQ];
    int32_t bt[NSEQ * MAXB], rows[NSEQ * 64], spec[NVER * S1];
};

/* Runs b on both engines (sequences s[0..N)), compares every logits row,
 * returns the reference logits (caller frees). */
static float *run_both(struct pair *p, struct sq *s, struct batch *b)
{
    int t = 0;
    b->R = 0;
    for (int i = 0; i < b->N; i++) {
        b->qs[i] = t;
        b->cl[i] = s[i].cache;
        b->sl[i] = s[i].slot;
        for (int j = 0; j < MAXB; j++)
            b->bt[i * MAXB + j] = i * MAXB + j; /* block rows by sequence index */
        int verify = i >= b->ndec && i < b->ndec + b->nver;
        for (int j = 0; j < b->n[i]; j++, t++) {
            b->pos[t] = s[i].cache + j;
            if (verify || j == b->n[i] - 1)
                b->rows[b->R++] = t;
        }
        if (verify)
            for (int j = 0; j < S1; j++)
                b->spec[(i - b->ndec) * S1 + j] = s[i].spec[j];
    }
    b->qs[b->N] = t;
    b->T = t;
    struct eng_batch eb = {.num_seqs = b->N, .num_tokens = b->T, .num_decode = b->ndec,
                           .num_verify = b->nver, .tokens = b->tok, .positions = b->pos,
                           .query_start = b->qs, .cache_len = b->cl, .state_slot = b->sl,
                           .block_table = b->bt, .max_blocks = MAXB, .logits_rows = b->rows,
                           .num_logits = b->R, .max_spec = KMAX, .spec_slots = b->spec};
    float *la = malloc((size_t)b->R * p->e.V * 4), *lb = malloc((size_t)b->R * p->e.V * 4);
    for (int v = 0; v < b->nver; v++)
        for (int j = 0; j < S1; j++)
            poison_gpu_slot(p, s[b->ndec + v].spec[j]);
    ck_assert_int_eq(eng_forward(p->e.cpu, &eb, la), 0);
    for (size_t i = 0; i < (size_t)b->R * p->e.V; i++)
        lb[i] = NAN;
    ck_assert_int_eq(eng_forward(p->e.gpu, &eb, lb), 0);
    int r = 0;
    for (int i = 0; i < b->N; i++) {
        int verify = i >= b->ndec && i < b->ndec + b->nver;
        int nr = verify ? b->n[i] : 1;
        for (int j = 0; j < nr; j++, r++)
            gu_compare_logits(&p->st, la + (size_t)r * p->e.V, lb + (size_t)r * p->e.V, p->e.V,
                              p->lp_tol, p->rel_tol,
                              verify ? "verify" : i < b->ndec ? "decode" : "prefill", r);
        if (verify)
            p->verify_rows += nr;
    }
    free(lb);
    return la;
}

static void rand_tokens(int32_t *t, int n, int V)
{
    for (int i = 0; i < n; i++)
        t[i] = gu_int(2, V - 1);
}

/* Prefill all NSEQ sequences, then iters mixed steps: 2 decodes, 3 verify
 * rows (k drafts from a rotating list including 0 and KMAX), one prefill
 * chunk. After each step every verify row's spec slots are checked against
 * the CPU and a random accepted count is adopted on both engines. */
static void run_spec_mixed(struct pair *p, int iters)
{
    struct sq s[NSEQ];
    for (int i = 0; i < NSEQ; i++) {
        s[i] = (struct sq){.slot = i, .cache = 0};
        for (int j = 0; j < S1; j++)
            s[i].spec[j] = i >= 2 && i < 2 + NVER ? NSEQ + (i - 2) * S1 + j : -1;
    }
    int32_t next[NSEQ];
    struct batch *b = calloc(1, sizeof *b);
    /* prefill every sequence (no verify rows: graphs-free eager path) */
    b->N = NSEQ;
    int plen[NSEQ] = {9, 21, 33, 14, 40, 26};
    int t = 0;
    for (int i = 0; i < NSEQ; i++) {
        b->n[i] = plen[i];
        rand_tokens(b->tok + t, plen[i], p->e.V);
        t += plen[i];
    }
    float *lg = run_both(p, s, b);
    for (int i = 0; i < NSEQ; i++) {
        next[i] = gu_argmax(lg + (size_t)i * p->e.V, p->e.V);
        s[i].cache = plen[i];
    }
    free(lg);
    static const int ks[] = {1, 4, 8, 0, 3, 8, 2, 6, 5, 7};
    for (int it = 0; it < iters; it++) {
        memset(b, 0, sizeof *b);
        b->N = NSEQ;
        b->ndec = 2;
        b->nver = NVER;
        t = 0;
        for (int i = 0; i < NSEQ; i++) {
            if (i < 2) {
                b->n[i] = 1;
                b->tok[t++] = next[i];
            } else if (i < 2 + NVER) {
                int k = ks[(it * NVER + i - 2) % 10];
                b->n[i] = 1 + k;
                b->tok[t] = next[i];
                /* drafts: half of them repeat the fed token (a plausible
                 * n-gram), the rest random */
                for (int j = 1; j <= k; j++)
                    b->tok[t + j] = gu_int(0, 1) ? next[i] : gu_int(2, p->e.V - 1);
                t += 1 + k;
            } else {
                b->n[i] = 5 + 7 * it % 19;
                rand_tokens(b->tok + t, b->n[i], p->e.V);
                t += b->n[i];
            }
        }
        lg = run_both(p, s, b);
        int r = 0, tt = 0; /* logits row, first token of sequence i */
        for (int i = 0; i < NSEQ; i++, tt += b->n[i - 1]) {
            int verify = i >= 2 && i < 2 + NVER;
            if (!verify) {
                next[i] = gu_argmax(lg + (size_t)r * p->e.V, p->e.V);
                s[i].cache += b->n[i];
                r++;
                continue;
            }
            char what[64];
            for (int j = 0; j < b->n[i]; j++) {
                snprintf(what, sizeof what, "step %d verify seq %d spec slot %d", it, i, j);
                compare_state(p, s[i].spec[j], s[i].spec[j], what);
            }
            snprintf(what, sizeof what, "step %d verify seq %d own slot", it, i);
            compare_state(p, s[i].slot, s[i].slot, what);
            /* the tolerance tells neighbours apart: the snapshot after token
             * j is far from the reference's after token j+1. Not where token
             * j+1 repeats token j: feeding the same k, v again moves the
             * delta-rule state only a little (on the H100, 4.95e-2 against
             * twice the 4e-2 tolerance), so such a pair proves nothing either way. */
            for (int j = 0; j + 1 < b->n[i]; j++) {
                if (b->tok[tt + j + 1] == b->tok[tt + j])
                    continue;
                int nan, l;
                double e = state_err(p, s[i].spec[j + 1], s[i].spec[j], &nan, &l);
                ck_assert_msg(e > 2 * p->state_tol, "step %d seq %d: snapshots %d and %d only "
                              "%.3e apart", it, i, j, j + 1, e);
                p->min_neighbour = fmin(p->min_neighbour, e);
            }
            /* accept a random count a (1..n): the state after fed token a-1 */
            int a = gu_int(1, b->n[i]);
            int keep = s[i].spec[a - 1];
            s[i].spec[a - 1] = s[i].slot;
            s[i].slot = keep;
            s[i].cache += a;
            next[i] = gu_argmax(lg + (size_t)(r + a - 1) * p->e.V, p->e.V);
            r += b->n[i];
        }
        free(lg);
    }
    /* a final decode-only step from every adopted slot (graph path on the GPU) */
    memset(b, 0, sizeof *b);
    b->N = b->ndec = NSEQ;
    for (int i = 0; i < NSEQ; i++) {
        b->n[i] = 1;
        b->tok[i] = next[i];
    }
    free(run_both(p, s, b));
    free(b);
}

/* One engine-level case: a fresh pair (rng and checkpoint seeds, shape,
 * SSM state dtype) through run_spec_mixed for iters (emu_iters under the
 * emulator) mixed steps. */
static void verify_case(uint64_t rng_seed, const char *json, uint32_t seed, int ssm_bf16,
                        int emu_iters, int iters, const char *name)
{
    struct pair p;
    pair_open(&p, rng_seed, json, seed, ssm_bf16, NSLOTS, NSEQ * MAXB, 512);
    run_spec_mixed(&p, gu_emulated() ? emu_iters : iters);
    pair_close(&p, name);
}

START_TEST(test_spec_verify_tiny)
{
    verify_case(3100, GU_CFG_TINY, 31, 0, 3, 12, "tiny: decode + verify + prefill");
}
END_TEST

START_TEST(test_spec_verify_wide)
{
    verify_case(3101, GU_CFG_WIDE, 32, 0, 1, 8, "7B GDN head dims: verify");
}
END_TEST

START_TEST(test_spec_verify_bf16_state)
{
    verify_case(3102, GU_CFG_TINY, 33, 1, 2, 10, "tiny, bf16 SSM state: verify");
}
END_TEST

/* ---- scheduler: greedy identity with and without speculation ---------------- */

#define NR_MAX 24
#define MT_MAX 24

struct gen_out {
    int32_t tok[MT_MAX];
    int n;
};

/* Repetitive prompts (drafts hit) and random ones, varied lengths. */
static int prompt_for(int i, int32_t *pr, int V)
{
    unsigned s = 91u + (unsigned)i * 7919u;
    int len;
    if (i % 2 == 0) {
        int period = 3 + i % 5, reps = 3 + i % 4;
        int32_t phrase[8];
        for (int k = 0; k < period; k++) {
            s = s * 1103515245u + 12345u;
            phrase[k] = (int32_t)(2 + (s >> 8) % (unsigned)(V - 2));
        }
        len = period * reps;
        for (int k = 0; k < len; k++)
            pr[k] = phrase[k % period];
    } else {
        len = 5 + (i * 7) % 31;
        for (int k = 0; k < len; k++) {
            s = s * 1103515245u + 12345u;
            pr[k] = (int32_t)(2 + (s >> 8) % (unsigned)(V - 2));
        }
    }
    return len;
}

/* gu_sched_run's delta callback: request i's tokens (choice 0) into out[i]. */
static void gen_collect(void *ctx, int i, const struct sched_delta *d)
{
    struct gen_out *o = (struct gen_out *)ctx + i;
    const struct sched_choice_delta *cd = &d->choices[0];
    ck_assert_int_le(o->n + cd->num_tokens, MT_MAX);
    memcpy(o->tok + o->n, cd->tokens, 4 * (size_t)cd->num_tokens);
    o->n += cd->num_tokens;
}

/* All nr requests through a fresh scheduler on engine e (stepped on this
 * thread); returns the stats. */
static void sched_run(struct engine *e, int k, int nr, int mt, struct gen_out *out,
                      struct sched_stats *st)
{
    /* max_num_batched_tokens 48: prefill chunks, decodes and verify rows share steps */
    struct sched *s = gu_sched_create(e, k, nr < 16 ? nr : 16, 48, 256);
    struct sched_request *rs[NR_MAX];
    int32_t pr[64];
    for (int i = 0; i < nr; i++) {
        struct sched_params ps;
        sched_params_init(&ps);
        ps.prompt = pr;
        ps.prompt_len = prompt_for(i, pr, e->cfg->vocab_size);
        ps.max_tokens = mt - (i % 3) * 4;
        ps.ignore_eos = true;
        ps.sampling.temperature = 0.0f;
        /* odd requests: greedy over a 3-token alphabet (the prompt's first
         * tokens, +100 bias), so outputs repeat and drafts get accepted;
         * even ones: plain greedy over the whole vocabulary */
        struct samp_bias bias[3];
        if (i % 2) {
            for (int j = 0; j < 3; j++)
                bias[j] = (struct samp_bias){.token = pr[j], .bias = 100.0f};
            ps.sampling.logit_bias = bias;
            ps.sampling.num_logit_bias = pr[0] == pr[1] || pr[1] == pr[2] || pr[0] == pr[2] ? 1 : 3;
        }
        rs[i] = gu_sched_submit(s, &ps);
        memset(&out[i], 0, sizeof out[i]);
    }
    gu_sched_run(s, rs, nr, 5000, gen_collect, out);
    sched_get_stats(s, st);
    ck_assert_int_eq(st->kv_blocks_used, 0);
    ck_assert_int_eq(st->slots_used, 0);
    for (int i = 0; i < nr; i++)
        sched_request_release(rs[i]);
    sched_destroy(s);
}

/* Logit gap between tokens x and y after prompt + out[0..k) on e (a fresh
 * prefill in slot 0, blocks from 0). */
static double gap_after(struct engine *e, int i, const struct gen_out *o, int k, int x, int y)
{
    int32_t tok[64 + MT_MAX], pos[64 + MT_MAX], qs[2], cl[1] = {0}, sl[1] = {0}, bt[MAXB], row[1];
    int n = prompt_for(i, tok, e->cfg->vocab_size);
    memcpy(tok + n, o->tok, 4 * (size_t)k);
    n += k;
    for (int j = 0; j < n; j++)
        pos[j] = j;
    for (int j = 0; j < MAXB; j++)
        bt[j] = j;
    qs[0] = 0, qs[1] = n, row[0] = n - 1;
    struct eng_batch b = {.num_seqs = 1, .num_tokens = n, .tokens = tok, .positions = pos,
                          .query_start = qs, .cache_len = cl, .state_slot = sl,
                          .block_table = bt, .max_blocks = MAXB, .logits_rows = row,
                          .num_logits = 1};
    float *lg = malloc((size_t)e->cfg->vocab_size * 4);
    ck_assert_int_eq(eng_forward(e, &b, lg), 0);
    double g = fabs((double)lg[x] - lg[y]);
    free(lg);
    return g;
}

START_TEST(test_spec_sched_greedy_identity)
{
    struct pair p;
    int nr = gu_emulated() ? 6 : NR_MAX, mt = gu_emulated() ? 12 : MT_MAX;
    /* 16 sequences + 1+4 spec slots each, generous KV */
    pair_open(&p, 3103, GU_CFG_TINY, 34, 0, 16 * 6, 16 * 17, 512);
    static struct gen_out base[NR_MAX], spec[NR_MAX];
    struct sched_stats sb, ss;
    sched_run(p.e.gpu, 0, nr, mt, base, &sb);
    sched_run(p.e.gpu, 4, nr, mt, spec, &ss);
    ck_assert_uint_eq(sb.spec_draft_tokens_total, 0);
    ck_assert_uint_gt(ss.spec_draft_tokens_total, 0);
    ck_assert_uint_gt(ss.spec_accepted_tokens_total, 0);
    int same = 0, ties = 0;
    for (int i = 0; i < nr; i++) {
        ck_assert_int_eq(spec[i].n, base[i].n);
        int k = 0;
        while (k < base[i].n && spec[i].tok[k] == base[i].tok[k])
            k++;
        if (k == base[i].n) {
            same++;
            continue;
        }
        double g = gap_after(p.e.gpu, i, &base[i], k, base[i].tok[k], spec[i].tok[k]);
        printf("  request %d: differs at token %d (%d vs %d), logit gap there %.4f\n", i, k,
               base[i].tok[k], spec[i].tok[k], g);
        ck_assert_msg(g < 0.05, "request %d: greedy outputs differ at token %d (%d without, %d "
                      "with speculation) where the logit gap is %.4f (no near-tie)", i, k,
                      base[i].tok[k], spec[i].tok[k], g);
        ties++;
    }
    printf("  sched greedy: %d/%d requests identical (%d near-tie divergences); drafts %llu, "
           "accepted %llu (%.1f%%), steps %llu -> %llu\n",
           same, nr, ties, (unsigned long long)ss.spec_draft_tokens_total,
           (unsigned long long)ss.spec_accepted_tokens_total,
           100.0 * (double)ss.spec_accepted_tokens_total / (double)ss.spec_draft_tokens_total,
           (unsigned long long)sb.steps_total, (unsigned long long)ss.steps_total);
    ck_assert_int_ge(4 * same, 3 * nr);
    pair_close(&p, "sched greedy identity");
}
END_TEST

Suite *gpu_spec_suite(void)
{
    Suite *s = suite_create("gpu_spec");
    TCase *tc = tcase_create("spec");
    tcase_set_timeout(tc, 900);
    tcase_add_test(tc, test_spec_verify_tiny);
    tcase_add_test(tc, test_spec_verify_wide);
    tcase_add_test(tc, test_spec_verify_bf16_state);
    tcase_add_test(tc, test_spec_sched_greedy_identity);
    suite_add_tcase(s, tc);
    return s;
}
