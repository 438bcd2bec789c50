/* engine/cpu_backend.c: the CPU reference backend (eng_backend_cpu): the whole
 * OLMo Hybrid forward pass in fp32, written to be read against MODEL.md. Every
 * other backend is tested against this one.
 *
 * Threads: init/destroy on the main thread (from eng_create/eng_destroy);
 * forward and the copies on the engine thread. The kernels fan out over
 * OpenMP threads inside each call (e->num_threads, 0 = all cores).
 *
 * Data flow of one batch of T tokens (N sequences, see engine/engine.h):
 *   x (T, C) = embed[tokens]
 *   per layer, GDN (pre-norm):
 *     xn = RMSNorm(x); p = xn W_in^T, W_in = [Wq; Wk; Wv; Wg; Wa; Wb]
 *     per sequence: conv+SiLU over p[:, :CD] with the slot's conv state,
 *       L2-norm q and k per key head (q *= Dk^-0.5), gating, recurrence with
 *       the slot's SSM state
 *     gated RMSNorm with z = p[:, CD:CD+VD]; x += o_proj
 *     x += MLP(RMSNorm(x))
 *   per layer, attention (post-norm):
 *     p = x [Wq; Wk; Wv]^T; q, k RMSNorm over the whole vector; RoPE
 *     per sequence: append k, v to its KV blocks; causal GQA attention
 *     x += RMSNorm(o_proj); x += RMSNorm(MLP(x))
 *   logits for logits_rows: lm_head(RMSNorm(x[row]))
 * Weights are converted to fp32 at init; the projections of one layer are
 * stacked so one GEMM computes them all (every output element is still its
 * own fixed-order dot product, so the result is the same as separate GEMMs).
 *
 * State, fp32: slot s holds, for GDN layer g in order, conv state (K-1, CD)
 * then SSM state (Hv, Dk, Dv). KV: per attention layer a K pool and a V pool,
 * each (num_blocks, block_size, Hkv, D).
 */
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "engine/log.h"
#include "kernels/cpu/attention.h"
#include "kernels/cpu/conv1d.h"
#include "kernels/cpu/embed.h"
#include "kernels/cpu/gated_rmsnorm.h"
#include "kernels/cpu/gdn_gate.h"
#include "kernels/cpu/gdn_recurrent.h"
#include "kernels/cpu/l2norm.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cpu/rmsnorm.h"
#include "kernels/cpu/rope.h"
#include "kernels/cpu/swiglu.h"

#define GDN_L2_EPS 1e-6f   /* MODEL.md step 4: inside the sqrt */
#define GDN_NORM_EPS 1e-5f /* MODEL.md step 7: fixed, not rms_norm_eps */

struct cpu_layer {
    int is_attn;
    int idx;                 /* index among GDN layers or among attention layers */
    float *norm1;            /* (C) GDN: input_layernorm; attn: post_attention_layernorm */
    float *norm2;            /* (C) GDN: post_attention_layernorm; attn: post_feedforward_layernorm */
    float *w_in;             /* GDN (CD+VD+2Hv, C) q|k|v|g|a|b; attn (QD+2KVD, C) q|k|v */
    float *w_out;            /* GDN (C, VD); attn (C, QD) */
    float *q_norm, *k_norm;  /* attn (QD), (KVD) */
    float *conv;             /* GDN (CD, K) */
    float *A_log, *dt_bias;  /* GDN (Hv) */
    float *o_norm;           /* GDN (Dv) */
    float *w_gate_up;        /* (2F, C) gate|up */
    float *w_down;           /* (C, F) */
};

struct cpu_impl {
    struct cpu_layer *layers;  /* owned [L] */
    float *embed;              /* owned (V, C) */
    float *lm_head;            /* owned (V, C), or == embed when tied */
    float *final_norm;         /* owned (C) */
    float *slots;              /* owned (num_state_slots, slot_floats) */
    size_t slot_floats;
    size_t gdn_floats;         /* per GDN layer inside a slot: (K-1)*CD + Hv*Dk*Dv */
    float *kv;                 /* owned: per attention layer K pool then V pool */
    size_t pool_floats;        /* one pool: num_blocks * block_size * Hkv * D */
    int rope_on;
    float *inv_freq;           /* owned (D/2) */
    float attn_scale;          /* yarn's cos/sin factor, else 1 */
    /* workspace, grown to the largest batch seen */
    float *ws;
    size_t ws_cap;
    /* sizes */
    int C, F, V, L, Hq, Hkv, D, QD, KVD, Hk, Hv, Dk, Dv, KD, VD, CD, K;
    int P_gdn, P_attn;
};

/* ------------------------------------------------------------ init / destroy */

static float *to_f32(const struct eng_tensor *t)
{
    float *p = malloc(sizeof(float) * (size_t)t->numel);
    if (p) eng_tensor_to_f32(t, p);
    return p;
}

/* Stack tensors' rows into one owned (sum of rows, C) matrix. */
static float *stack(const struct eng_tensor *const *ts, int n)
{
    int64_t total = 0;
    for (int i = 0; i < n; i++) total += ts[i]->numel;
    float *p = malloc(sizeof(float) * (size_t)total);
    if (!p) return NULL;
    int64_t off = 0;
    for (int i = 0; i < n; i++) {
        eng_tensor_to_f32(ts[i], p + off);
        off += ts[i]->numel;
    }
    return p;
}

static void free_layer(struct cpu_layer *l)
{
    free(l->norm1);
    free(l->norm2);
    free(l->w_in);
    free(l->w_out);
    free(l->q_norm);
    free(l->k_norm);
    free(l->conv);
    free(l->A_log);
    free(l->dt_bias);
    free(l->o_norm);
    free(l->w_gate_up);
    free(l->w_down);
}

static void cpu_destroy(struct engine *e)
{
    struct cpu_impl *m = e->impl;
    if (!m) return;
    if (m->layers)
        for (int i = 0; i < m->L; i++) free_layer(&m->layers[i]);
    free(m->layers);
    if (m->lm_head != m->embed) free(m->lm_head);
    free(m->embed);
    free(m->final_norm);
    free(m->slots);
    free(m->kv);
    free(m->inv_freq);
    free(m->ws);
    free(m);
    e->impl = NULL;
}

static int init_layer(struct cpu_impl *m, const struct eng_layer_weights *lw, struct cpu_layer *l)
{
    l->is_attn = lw->is_attn;
    const struct eng_tensor *gu[2] = {&lw->w_gate, &lw->w_up};
    l->w_gate_up = stack(gu, 2);
    l->w_down = to_f32(&lw->w_down);
    if (!l->w_gate_up || !l->w_down) return -1;
    if (lw->is_attn) {
        const struct eng_tensor *qkv[3] = {&lw->wq, &lw->wk, &lw->wv};
        l->w_in = stack(qkv, 3);
        l->w_out = to_f32(&lw->wo);
        l->q_norm = to_f32(&lw->q_norm);
        l->k_norm = to_f32(&lw->k_norm);
        l->norm1 = to_f32(&lw->post_attn_norm);
        l->norm2 = to_f32(&lw->post_ffn_norm);
        return l->w_in && l->w_out && l->q_norm && l->k_norm && l->norm1 && l->norm2 ? 0 : -1;
    }
    const struct eng_tensor *in[6] = {&lw->gq, &lw->gk, &lw->gv, &lw->gg, &lw->ga, &lw->gb};
    l->w_in = stack(in, 6);
    l->w_out = to_f32(&lw->go);
    l->conv = to_f32(&lw->conv);
    l->A_log = to_f32(&lw->A_log);
    l->dt_bias = to_f32(&lw->dt_bias);
    l->o_norm = to_f32(&lw->o_norm);
    l->norm1 = to_f32(&lw->in_norm);
    l->norm2 = to_f32(&lw->post_attn_norm);
    (void)m;
    return l->w_in && l->w_out && l->conv && l->A_log && l->dt_bias && l->o_norm && l->norm1 &&
                   l->norm2
               ? 0
               : -1;
}

static int cpu_init(struct engine *e)
{
    const struct cfg_model *c = e->cfg;
    const struct eng_weights *w = e->w;
    struct cpu_impl *m = calloc(1, sizeof(*m));
    if (!m) return -ENOMEM;
    e->impl = m;
    m->C = c->hidden_size;
    m->F = c->intermediate_size;
    m->V = c->vocab_size;
    m->L = c->num_hidden_layers;
    m->Hq = c->num_attention_heads;
    m->Hkv = c->num_key_value_heads;
    m->D = c->head_dim;
    m->QD = m->Hq * m->D;
    m->KVD = m->Hkv * m->D;
    m->Hk = c->linear_num_key_heads;
    m->Hv = c->linear_num_value_heads;
    m->Dk = c->linear_key_head_dim;
    m->Dv = c->linear_value_head_dim;
    m->KD = m->Hk * m->Dk;
    m->VD = m->Hv * m->Dv;
    m->CD = 2 * m->KD + m->VD;
    m->K = c->linear_conv_kernel_dim;
    m->P_gdn = m->CD + m->VD + 2 * m->Hv;
    m->P_attn = m->QD + 2 * m->KVD;
    if (w->num_layers != m->L) {
        LOG_ERROR("cpu backend: weights have %d layers, config %d", w->num_layers, m->L);
        goto fail;
    }

    m->layers = calloc((size_t)m->L, sizeof(*m->layers));
    if (!m->layers) goto fail;
    int ng = 0, na = 0;
    for (int i = 0; i < m->L; i++) {
        if (init_layer(m, &w->layers[i], &m->layers[i])) goto fail_mem;
        m->layers[i].idx = m->layers[i].is_attn ? na++ : ng++;
    }
    m->embed = to_f32(&w->embed);
    m->final_norm = to_f32(&w->final_norm);
    if (!m->embed || !m->final_norm) goto fail_mem;
    /* Tied: weights.c makes lm_head a view of the embedding. */
    m->lm_head = (w->lm_head.data == w->embed.data) ? m->embed : to_f32(&w->lm_head);
    if (!m->lm_head) goto fail_mem;

    m->gdn_floats = (size_t)(m->K - 1) * m->CD + (size_t)m->Hv * m->Dk * m->Dv;
    m->slot_floats = (size_t)ng * m->gdn_floats;
    m->slots = calloc((size_t)e->mem.num_state_slots * (m->slot_floats ? m->slot_floats : 1), sizeof(float));
    m->pool_floats = (size_t)e->mem.num_kv_blocks * e->mem.block_size * m->KVD;
    m->kv = calloc((size_t)na * 2 * (m->pool_floats ? m->pool_floats : 1) + 1, sizeof(float));
    if (!m->slots || !m->kv) goto fail_mem;

    m->attn_scale = 1.0f;
    if (c->rope.mode != CFG_ROPE_NONE) {
        m->inv_freq = malloc(sizeof(float) * (size_t)(m->D / 2 + 1));
        if (!m->inv_freq) goto fail_mem;
        if (kern_cpu_rope_freqs(&c->rope, m->D, c->max_position_embeddings, 0, m->inv_freq,
                                &m->attn_scale)) {
            LOG_ERROR("cpu backend: RoPE needs an even head_dim (got %d)", m->D);
            goto fail;
        }
        m->rope_on = 1;
    }
    LOG_INFO("cpu backend: %d layers (%d GDN, %d attention), %.1f MiB fp32 weights, "
             "%d state slots x %.2f MiB, %d KV blocks x %d tokens",
             m->L, ng, na,
             (double)(((size_t)m->V * m->C * (m->lm_head == m->embed ? 1 : 2)) * 4) / (1 << 20),
             e->mem.num_state_slots, (double)m->slot_floats * 4 / (1 << 20), e->mem.num_kv_blocks,
             e->mem.block_size);
    return 0;
fail_mem:
    LOG_ERROR("cpu backend: out of memory converting the weights / allocating state");
fail:
    cpu_destroy(e);
    return -ENOMEM;
}

/* ------------------------------------------------------------------ forward */

/* Workspace views for one batch of T tokens (and R logits rows). */
struct ws {
    float *x, *xn, *p, *conv, *core, *h, *tmp, *g, *beta;
};

static int ws_get(struct cpu_impl *m, int T, struct ws *s)
{
    int P = m->P_gdn > m->P_attn ? m->P_gdn : m->P_attn;
    if (2 * m->F > P) P = 2 * m->F;
    int core = m->VD > m->QD ? m->VD : m->QD;
    size_t need = (size_t)T * (3 * (size_t)m->C + P + m->CD + core + m->F + 2 * (size_t)m->Hv);
    if (need > m->ws_cap) {
        float *nw = realloc(m->ws, need * sizeof(float));
        if (!nw) return -ENOMEM;
        m->ws = nw;
        m->ws_cap = need;
    }
    float *q = m->ws;
    s->x = q, q += (size_t)T * m->C;
    s->xn = q, q += (size_t)T * m->C;
    s->tmp = q, q += (size_t)T * m->C;
    s->p = q, q += (size_t)T * P;
    s->conv = q, q += (size_t)T * m->CD;
    s->core = q, q += (size_t)T * core;
    s->h = q, q += (size_t)T * m->F;
    s->g = q, q += (size_t)T * m->Hv;
    s->beta = q;
    return 0;
}

static inline void add_into(float *x, const float *y, size_t n)
{
    for (size_t i = 0; i < n; i++) x[i] += y[i];
}

static inline float *slot_gdn(struct cpu_impl *m, int slot, int gdn_idx)
{
    return m->slots + (size_t)slot * m->slot_floats + (size_t)gdn_idx * m->gdn_floats;
}

/* MLP(in) = down(silu(gate in) * up in), into s->tmp. */
static void mlp(struct cpu_impl *m, const struct cpu_layer *l, const float *in, int T, struct ws *s,
                int nth)
{
    int F = m->F;
    kern_cpu_matmul(s->p, 2 * F, in, m->C, l->w_gate_up, T, m->C, 2 * F, nth);
    for (int t = 0; t < T; t++)
        kern_cpu_swiglu(s->h + (size_t)t * F, s->p + (size_t)t * 2 * F, s->p + (size_t)t * 2 * F + F, F);
    kern_cpu_matmul(s->tmp, m->C, s->h, F, l->w_down, T, F, m->C, nth);
}

/* Conv + norms + recurrence for tokens [q0, q0+n) of one sequence over its
 * slot's state (conv_state then SSM). snap_slots: NULL, or n slots that each
 * receive this layer's state after the corresponding token (spec verify). */
static void gdn_sequence(struct cpu_impl *m, const struct cpu_layer *l, struct ws *s, int q0, int n,
                         float *state, struct engine *e, const int32_t *snap_slots)
{
    int P = m->P_gdn, CD = m->CD, KD = m->KD, K = m->K;
    float *conv_state = state, *ssm = state + (size_t)(K - 1) * CD;
    float qscale = (float)(1.0 / sqrt((double)m->Dk));
    float *cv = s->conv + (size_t)q0 * CD;
    /* Speculative verify needs the state after every token: step one token at
     * a time and copy it out; otherwise run the whole chunk in one call. */
    int step = snap_slots ? 1 : n;
    for (int t0 = 0; t0 < n; t0 += step) {
        int len = step;
        kern_cpu_conv1d_silu(cv + (size_t)t0 * CD, CD, s->p + (size_t)(q0 + t0) * P, P, conv_state,
                             l->conv, len, CD, K);
        for (int t = t0; t < t0 + len; t++) {
            kern_cpu_l2norm(cv + (size_t)t * CD, m->Hk, m->Dk, GDN_L2_EPS, qscale);
            kern_cpu_l2norm(cv + (size_t)t * CD + KD, m->Hk, m->Dk, GDN_L2_EPS, 1.0f);
        }
        float *c0 = cv + (size_t)t0 * CD;
        kern_cpu_gdn_recurrent(s->core + (size_t)(q0 + t0) * m->VD, m->VD, c0, CD, c0 + KD, CD,
                               c0 + 2 * KD, CD, s->g + (size_t)(q0 + t0) * m->Hv,
                               s->beta + (size_t)(q0 + t0) * m->Hv, ssm, len, m->Hk, m->Hv, m->Dk,
                               m->Dv, NULL);
        if (snap_slots) {
            float *dst = slot_gdn(m, snap_slots[t0], l->idx);
            memcpy(dst, state, sizeof(float) * m->gdn_floats);
        }
    }
    (void)e;
}

static void gdn_layer(struct engine *e, const struct cpu_layer *l, const struct eng_batch *b,
                      struct ws *s, int nth)
{
    struct cpu_impl *m = e->impl;
    int T = b->num_tokens, C = m->C, P = m->P_gdn, CD = m->CD, VD = m->VD, Hv = m->Hv;
    float eps = (float)e->cfg->rms_norm_eps;

    kern_cpu_rmsnorm(s->xn, s->x, C, l->norm1, T, C, eps);
    kern_cpu_matmul(s->p, P, s->xn, C, l->w_in, T, C, P, nth);
    kern_cpu_gdn_gate(s->g, s->beta, s->p + CD + VD, s->p + CD + VD + Hv, P, l->A_log, l->dt_bias,
                      e->cfg->allow_neg_eigval, T, Hv);
    for (int i = 0; i < b->num_seqs; i++) {
        int q0 = b->query_start[i], n = b->query_start[i + 1] - q0;
        float *state = slot_gdn(m, b->state_slot[i], l->idx);
        /* has_initial_state = cache_len > 0: a fresh sequence reads zeros
         * whatever stale data the slot holds. */
        if (b->cache_len[i] == 0) memset(state, 0, sizeof(float) * m->gdn_floats);
        const int32_t *snap = NULL;
        if (i >= b->num_decode && i < b->num_decode + b->num_verify)
            snap = b->spec_slots + (size_t)(i - b->num_decode) * (b->max_spec + 1);
        gdn_sequence(m, l, s, q0, n, state, e, snap);
    }
    /* z = p[:, CD:CD+VD] gates the normalised output per value head */
    kern_cpu_gated_rmsnorm(s->core, VD, s->p + CD, P, l->o_norm, T, Hv, m->Dv, GDN_NORM_EPS);
    kern_cpu_matmul(s->tmp, C, s->core, VD, l->w_out, T, VD, C, nth);
    add_into(s->x, s->tmp, (size_t)T * C);

    kern_cpu_rmsnorm(s->xn, s->x, C, l->norm2, T, C, eps);
    mlp(m, l, s->xn, T, s, nth);
    add_into(s->x, s->tmp, (size_t)T * C);
}

static int attn_layer(struct engine *e, const struct cpu_layer *l, const struct eng_batch *b,
                       struct ws *s, int nth)
{
    struct cpu_impl *m = e->impl;
    int T = b->num_tokens, C = m->C, P = m->P_attn, QD = m->QD, KVD = m->KVD, D = m->D;
    float eps = (float)e->cfg->rms_norm_eps;
    float *kpool = m->kv + (size_t)l->idx * 2 * m->pool_floats, *vpool = kpool + m->pool_floats;

    kern_cpu_matmul(s->p, P, s->x, C, l->w_in, T, C, P, nth);
    /* q/k norm over the whole heads*head_dim vector, not per head */
    kern_cpu_rmsnorm(s->p, s->p, P, l->q_norm, T, QD, eps);
    kern_cpu_rmsnorm(s->p + QD, s->p + QD, P, l->k_norm, T, KVD, eps);
    if (m->rope_on) {
        if (e->cfg->rope.mode == CFG_ROPE_DYNAMIC) {
            /* dynamic NTK: frequencies follow each sequence's length once it
             * passes max_position_embeddings (below it: plain RoPE) */
            float f[512], sc;
            for (int i = 0; i < b->num_seqs; i++) {
                int q0 = b->query_start[i], n = b->query_start[i + 1] - q0;
                const float *inv = m->inv_freq;
                if (b->cache_len[i] + n > e->cfg->max_position_embeddings && D / 2 <= 512 &&
                    kern_cpu_rope_freqs(&e->cfg->rope, D, e->cfg->max_position_embeddings,
                                        b->cache_len[i] + n, f, &sc) == 0)
                    inv = f;
                kern_cpu_rope_apply(s->p + (size_t)q0 * P, P, m->Hq, D, n, b->positions + q0, inv, 1.0f);
                kern_cpu_rope_apply(s->p + (size_t)q0 * P + QD, P, m->Hkv, D, n, b->positions + q0, inv,
                                    1.0f);
            }
        } else {
            kern_cpu_rope_apply(s->p, P, m->Hq, D, T, b->positions, m->inv_freq, m->attn_scale);
            kern_cpu_rope_apply(s->p + QD, P, m->Hkv, D, T, b->positions, m->inv_freq, m->attn_scale);
        }
    }
    float scale = (float)(1.0 / sqrt((double)D));
    for (int i = 0; i < b->num_seqs; i++) {
        int q0 = b->query_start[i], n = b->query_start[i + 1] - q0, cl = b->cache_len[i];
        const int32_t *bt = b->block_table + (size_t)i * b->max_blocks;
        float *row = s->p + (size_t)q0 * P;
        kern_cpu_kv_write(kpool, vpool, row + QD, P, row + QD + KVD, P, bt, e->mem.block_size, m->Hkv,
                          D, cl, n);
        if (kern_cpu_attention(s->core + (size_t)q0 * QD, QD, row, P, kpool, vpool, bt,
                               e->mem.block_size, m->Hq, m->Hkv, D, cl, n, scale))
            return -ENOMEM;
    }
    kern_cpu_matmul(s->tmp, C, s->core, QD, l->w_out, T, QD, C, nth);
    kern_cpu_rmsnorm(s->tmp, s->tmp, C, l->norm1, T, C, eps);
    add_into(s->x, s->tmp, (size_t)T * C);

    mlp(m, l, s->x, T, s, nth);
    kern_cpu_rmsnorm(s->tmp, s->tmp, C, l->norm2, T, C, eps);
    add_into(s->x, s->tmp, (size_t)T * C);
    return 0;
}

static int cpu_forward(struct engine *e, const struct eng_batch *b, float *logits)
{
    struct cpu_impl *m = e->impl;
    int T = b->num_tokens, C = m->C;
    int nth = e->num_threads > 0 ? e->num_threads : 0;
    if (nth > 0) omp_set_num_threads(nth);
    struct ws s;
    if (ws_get(m, T, &s)) return -ENOMEM;

    kern_cpu_embed(s.x, m->embed, b->tokens, T, C);
    for (int li = 0; li < m->L; li++) {
        const struct cpu_layer *l = &m->layers[li];
        if (l->is_attn) {
            /* A failed step leaves this batch's KV/state partly advanced;
             * the scheduler fails the step's requests (their slots and
             * blocks are released, never reused as if valid). */
            int rc = attn_layer(e, l, b, &s, nth);
            if (rc) return rc;
        } else {
            gdn_layer(e, l, b, &s, nth);
        }
    }
    /* Final norm and lm_head only for the rows that want logits. */
    int R = b->num_logits;
    if (R > 0) {
        for (int r = 0; r < R; r++)
            memcpy(s.xn + (size_t)r * C, s.x + (size_t)b->logits_rows[r] * C, sizeof(float) * C);
        kern_cpu_rmsnorm(s.xn, s.xn, C, m->final_norm, R, C, (float)e->cfg->rms_norm_eps);
        kern_cpu_matmul(logits, m->V, s.xn, C, m->lm_head, R, C, m->V, nth);
    }
    return 0;
}

/* ------------------------------------------------------------------- copies */

static int cpu_copy_slot(struct engine *e, int src, int dst)
{
    struct cpu_impl *m = e->impl;
    memcpy(m->slots + (size_t)dst * m->slot_floats, m->slots + (size_t)src * m->slot_floats,
           sizeof(float) * m->slot_floats);
    return 0;
}

static int cpu_read_slot(struct engine *e, int slot, float *out)
{
    struct cpu_impl *m = e->impl;
    memcpy(out, m->slots + (size_t)slot * m->slot_floats, sizeof(float) * m->slot_floats);
    return 0;
}

static int cpu_copy_block(struct engine *e, int src, int dst)
{
    struct cpu_impl *m = e->impl;
    size_t blk = (size_t)e->mem.block_size * m->KVD;
    for (int a = 0; a < e->cfg->num_attn_layers; a++) {
        float *kp = m->kv + (size_t)a * 2 * m->pool_floats;
        for (int kv = 0; kv < 2; kv++) {
            float *pool = kp + (size_t)kv * m->pool_floats;
            memcpy(pool + (size_t)dst * blk, pool + (size_t)src * blk, sizeof(float) * blk);
        }
    }
    return 0;
}

const struct eng_backend_ops eng_backend_cpu = {
    .name = "cpu",
    .init = cpu_init,
    .destroy = cpu_destroy,
    .forward = cpu_forward,
    .copy_slot = cpu_copy_slot,
    .copy_block = cpu_copy_block,
    .read_slot = cpu_read_slot,
};
