/* engine/cuda/cuda_forward.c: one step of the CUDA backend (the batch
 * contract of engine/engine.h): pack the batch's indices into one pinned
 * buffer, copy it to the device in one transfer, run every layer on the
 * backend's stream, and copy the requested logits rows back.
 *
 * Decode-only steps (every sequence one new token, logits for each) replay a
 * CUDA graph captured once per batch-size bucket (1, 2, 4, ...); the batch is
 * padded to the bucket with rows that read and write the scratch slot and
 * scratch KV block, so no real state is touched by padding.
 *
 * Speculative verify rows (num_verify > 0) run eagerly: a per-token list of
 * snapshot slots (tok_spec, -1 for tokens of other rows) goes to the conv
 * state update and the GDN recurrence, which store the state after each
 * verify token there. Steps without verify rows pass NULL (graphs unchanged).
 *
 * GDN core: decode and verify rows run the token-by-token kernel; the prefill
 * rows of a step with at least CU_GDN_CHUNK_MIN_TOKENS prefill tokens run the
 * chunked WY kernel (kernels/cuda/gdn_chunk.h), both reading and writing the
 * sequences' state slots in place. Steps whose sequences are all short
 * (decode-only, verify rows) run the GDN prologue (conv1d, its state, the
 * gating) as one launch (kernels/cuda/gdn_prep.h); every few-token step runs
 * the MLP's gate|up GEMV with SwiGLU in its store (cu_gemm_swiglu). Both cut
 * launches from the launch-bound batch-1 decode step.
 *
 * Threads: engine thread only.
 */
#include <errno.h>
#include <math.h>
#include <string.h>

#include "engine/cuda/cuda_internal.h"
#include "kernels/cuda/attention.h"
#include "kernels/cuda/attn_prep.h"
#include "kernels/cuda/cast.h"
#include "kernels/cuda/conv1d.h"
#include "kernels/cuda/embed.h"
#include "kernels/cuda/gated_rmsnorm.h"
#include "kernels/cuda/gdn_chunk.h"
#include "kernels/cuda/gdn_gate.h"
#include "kernels/cuda/gdn_prep.h"
#include "kernels/cuda/gdn_recurrent.h"
#include "kernels/cuda/rmsnorm.h"

/* Prefill tokens in a step below which its prefill rows stay on the
 * recurrent kernel (a chunk kernel launch pair costs more than a few tokens
 * of recurrence). */
#define CU_GDN_CHUNK_MIN_TOKENS 64

/* Fixed offsets into the packed metadata (ints), so graph pointers are stable. */
struct meta_ptrs {
    int32_t *tok, *pos, *tok_seq, *slot_map, *rows, *tiles, *qs, *slot, *has_init, *bt;
    int32_t *tok_spec; /* [T] verify snapshot slot per token; past bt, copied only when used */
    int32_t *plan;     /* GDN chunk plan of the prefill rows (kern_gdn_chunk_plan) */
};

static struct meta_ptrs meta_layout(const struct cu_impl *m, int32_t *base)
{
    size_t T = m->opt.max_tokens, N = m->opt.max_seqs;
    struct meta_ptrs p;
    p.tok = base;
    p.pos = p.tok + T;
    p.tok_seq = p.pos + T;
    p.slot_map = p.tok_seq + T;
    p.rows = p.slot_map + T;
    p.tiles = p.rows + T;  /* 2*T: attention query tiles */
    p.qs = p.tiles + 2 * T;
    p.slot = p.qs + N + 1;
    p.has_init = p.slot + N + 1;
    p.bt = p.has_init + N + 1;
    p.tok_spec = p.bt + N * m->opt.max_blocks_per_seq;
    p.plan = p.tok_spec + T;
    return p;
}

#define K_CHECK(expr)                                                                    \
    do {                                                                                 \
        int k_rc_ = (expr);                                                              \
        if (k_rc_) {                                                                     \
            LOG_ERROR("cuda: %s failed: %s", #expr, cudaGetErrorString((cudaError_t)k_rc_)); \
            return -EIO;                                                                 \
        }                                                                                \
    } while (0)

/* step profiler mark: an event after the op just enqueued (cu_prof) */
#define PROF(label_)                                                                     \
    do {                                                                                 \
        if (m->prof.on && m->prof.n < CU_PROF_MAX) {                                     \
            cudaEventRecord(m->prof.ev[m->prof.n], s);                                   \
            m->prof.what[m->prof.n++] = (label_);                                        \
        }                                                                                \
    } while (0)

static int attn_splits(const struct cu_impl *m, int T)
{
    int work = T * m->Hq;
    if (work >= 264)
        return 1;
    int s = 1024 / work;
    if (s > m->attn_max_split)
        s = m->attn_max_split;
    return s < 1 ? 1 : s;
}

/* Which GDN kernel runs which rows: sequences [0, nrec) token by token
 * (decodes, verify rows, short prefills), [nrec, N) through the chunked
 * kernel over the nchunks chunks of meta plan. */
struct gdn_split {
    int nrec, nchunks;
    int short_seqs; /* every sequence at most KERN_GDN_PREP_MAX_LEN tokens, none chunked */
};

/* Enqueue the whole model for T tokens of N sequences, final norm of R rows
 * (rows listed in meta rows) into xb. Does not run lm_head. spec: the step has
 * verify rows (meta tok_spec is valid). */
static int run_layers(struct engine *e, int T, int N, int R, int ntiles, int nptiles,
                      int single, int spec, struct gdn_split gs)
{
    struct cu_impl *m = e->impl;
    const struct cfg_model *c = e->cfg;
    cudaStream_t s = m->stream;
    struct meta_ptrs d = meta_layout(m, m->meta_d);
    const int32_t *tok_spec = spec ? d.tok_spec : NULL;
    float eps = (float)c->rms_norm_eps;
    int C = m->C;
    PROF("start");
    K_CHECK(kern_embed(m->embed, d.tok, T, C, m->x, s));
    PROF("embed");
    int xb_valid = 0;
    for (int l = 0; l < m->L; l++) {
        const struct cu_layer *ly = &m->layers[l];
        if (!ly->is_attn) {
            int gi = ly->gdn_index, P = m->gdn_in_rows;
            K_CHECK(kern_add_rmsnorm(m->x, NULL, ly->norm1, NULL, T, C, eps, m->xb, s));
            PROF("GDN: input rmsnorm");
            int rc = cu_gemm_run(&m->gemm, ly->w_in, m->xb, m->proj, 0, P, T, C, 0, s);
            if (rc)
                return rc;
            PROF("GDN: gemm in-proj");
            int a_off = m->CD + m->VD, b_off = a_off + m->Hv;
            if (gs.short_seqs) { /* decode, verify rows: one launch (gdn_prep.h) */
                K_CHECK(kern_gdn_prep_short(m->proj, P, ly->conv, m->CD, m->K, N, d.qs, d.slot,
                                            d.has_init, tok_spec, m->conv_state[gi],
                                            m->conv_slot_elems, m->y, a_off, b_off, ly->A_log,
                                            ly->dt_bias, c->allow_neg_eigval, m->Hv, m->g,
                                            m->beta, s));
                PROF("GDN: conv1d, conv state, gate");
            } else {
                K_CHECK(kern_conv1d_fwd(m->proj, P, ly->conv, m->CD, m->K, T, d.tok_seq, d.qs,
                                        d.slot, d.has_init, m->conv_state[gi],
                                        m->conv_slot_elems, m->y, s));
                PROF("GDN: conv1d");
                K_CHECK(kern_conv1d_state_update_spec(m->proj, P, m->CD, m->K, N, d.qs, d.slot,
                                                      d.has_init, tok_spec, m->conv_state[gi],
                                                      m->conv_slot_elems, s));
                PROF("GDN: conv state update");
                K_CHECK(kern_gdn_gate(m->proj, P, a_off, b_off, ly->A_log, ly->dt_bias,
                                      c->allow_neg_eigval, T, m->Hv, m->g, m->beta, s));
                PROF("GDN: gate");
            }
            float qscale = 1.0f / sqrtf((float)m->Dk);
            if (gs.nrec > 0) {
                K_CHECK(kern_gdn_recurrent_spec(m->y, m->g, m->beta, gs.nrec, d.qs, d.slot,
                                                d.has_init, tok_spec, m->Hk, m->Hv, m->Dk, m->Dv,
                                                qscale, m->ssm_state[gi], m->opt.ssm_state_bf16,
                                                m->ssm_slot_elems, m->o, s));
                PROF("GDN: recurrent");
            }
            if (gs.nrec < N) {
                K_CHECK(kern_gdn_chunk(m->y, m->g, m->beta, N - gs.nrec, d.plan, gs.nchunks,
                                       d.slot + gs.nrec, d.has_init + gs.nrec, m->Hk, m->Hv,
                                       m->Dk, m->Dv, qscale, m->ssm_state[gi],
                                       m->opt.ssm_state_bf16, m->ssm_slot_elems, m->o,
                                       m->gdn_work, m->gdn_work_bytes, s));
                PROF("GDN: chunked");
            }
            K_CHECK(kern_gated_rmsnorm(m->o, m->proj + m->CD, P, ly->o_norm, T, m->Hv, m->Dv,
                                       1e-5f, m->ob, s));
            PROF("GDN: gated rmsnorm");
            if ((rc = cu_gemm_run(&m->gemm, ly->w_o, m->ob, m->x, 0, C, T, m->VD, 1, s)))
                return rc;
            PROF("GDN: gemm out-proj");
            K_CHECK(kern_add_rmsnorm(m->x, NULL, ly->norm2, NULL, T, C, eps, m->xb, s));
            PROF("GDN: post rmsnorm");
            if ((rc = cu_gemm_swiglu(&m->gemm, ly->w_gu, m->xb, m->proj, m->act, 2 * m->F, T, C,
                                     s)))
                return rc;
            PROF("MLP: gemm gate+up, swiglu");
            if ((rc = cu_gemm_run(&m->gemm, ly->w_down, m->act, m->x, 0, C, T, m->F, 1, s)))
                return rc;
            PROF("MLP: gemm down");
            xb_valid = 0;
        } else {
            int ai = ly->attn_index, P = m->attn_in_rows, QD = m->Hq * m->D;
            int rc;
            if (!xb_valid) {
                K_CHECK(kern_f32_to_bf16(m->x, (size_t)T * C, m->xb, s));
                PROF("attn: cast");
            }
            if ((rc = cu_gemm_run(&m->gemm, ly->w_in, m->xb, m->proj, 0, P, T, C, 0, s)))
                return rc;
            PROF("attn: gemm q;k;v");
            /* q/k norm, RoPE and the KV cache write in one launch; q stays
             * in proj for the attention kernel, k and v only go to the cache */
            K_CHECK(kern_attn_prep(m->proj, P, T, m->Hq, m->Hkv, m->D, ly->q_norm, ly->k_norm,
                                   eps, d.pos, m->rope_on ? m->inv_freq : NULL, m->rope_mscale,
                                   m->bs, d.slot_map, m->kc[ai], m->vc[ai], s));
            PROF("attn: q/k norm + rope + kv write");
            struct kern_attn_args a = {
                .q = m->proj, .q_stride = P, .kc = m->kc[ai], .vc = m->vc[ai],
                .block_table = d.bt, .max_blocks = m->opt.max_blocks_per_seq,
                .tok_seq = d.tok_seq, .positions = d.pos, .tiles = d.tiles, .ntiles = ntiles,
                .nptiles = nptiles, .T = T, .Hq = m->Hq, .Hkv = m->Hkv,
                .D = m->D, .bs = m->bs, .scale = 1.0f / sqrtf((float)m->D),
                .nsplit = attn_splits(m, T), .work = m->attn_work, .out = m->ob,
                .decode_tiles_single = single};
            K_CHECK(kern_attention(&a, s));
            PROF("attn: attention");
            if ((rc = cu_gemm_run(&m->gemm, ly->w_o, m->ob, m->tmp, 0, C, T, QD, 0, s)))
                return rc;
            PROF("attn: gemm out-proj");
            K_CHECK(kern_rmsnorm_add(m->x, m->tmp, C, ly->norm1, T, C, eps, m->xb, s));
            PROF("attn: post rmsnorm + residual");
            if ((rc = cu_gemm_swiglu(&m->gemm, ly->w_gu, m->xb, m->proj, m->act, 2 * m->F, T, C,
                                     s)))
                return rc;
            PROF("MLP: gemm gate+up, swiglu");
            if ((rc = cu_gemm_run(&m->gemm, ly->w_down, m->act, m->tmp, 0, C, T, m->F, 0, s)))
                return rc;
            PROF("MLP: gemm down");
            K_CHECK(kern_rmsnorm_add(m->x, m->tmp, C, ly->norm2, T, C, eps, m->xb, s));
            PROF("MLP: post rmsnorm + residual");
            xb_valid = 1;
        }
    }
    K_CHECK(kern_add_rmsnorm(m->x, NULL, m->final_norm, d.rows, R, C, eps, m->xb, s));
    PROF("final norm");
    return 0;
}

/* lm_head over xb rows [r0, r0+n) into the device logits buffer. */
static int run_lm_head(struct cu_impl *m, int r0, int n)
{
    return cu_gemm_run(&m->gemm, m->lm_head, m->xb + (size_t)r0 * m->C, m->logits, 0, m->V, n,
                       m->C, 0, m->stream);
}

static int find_bucket(struct cu_impl *m, int n)
{
    for (int i = 0; i < m->nbuckets; i++)
        if (m->graphs[i].B >= n)
            return i;
    return -1;
}

int cu_forward(struct engine *e, const struct eng_batch *b, float *logits)
{
    struct cu_impl *m = e->impl;
    const struct cfg_model *c = e->cfg;
    int T = b->num_tokens, N = b->num_seqs, R = b->num_logits;
    int nver = b->num_verify > 0 ? b->num_verify : 0;
    if (T < 1 || N < 1 || T > m->opt.max_tokens || N > m->opt.max_seqs || R < 0 || R > T)
        return -E2BIG;
    int MB = m->opt.max_blocks_per_seq;
    struct meta_ptrs h = meta_layout(m, m->meta_h);
    /* device sampling: the rows stay in m->logits for cuda_sample.c */
    const int keep = b->logits_on_device && m->sampler;
    m->kept_rows = -1;
    if (keep && R > m->opt.max_logits)
        return -EINVAL;

    /* graph eligibility: decode only, one logits row per sequence in order */
    int gi = -1;
    if (m->opt.use_graphs && !m->prof.on && b->num_decode == N && T == N && R == N) {
        int ok = 1;
        for (int i = 0; i < R && ok; i++)
            ok = b->logits_rows[i] == i;
        if (ok)
            gi = find_bucket(m, N);
    }
    int Tp = gi >= 0 ? m->graphs[gi].B : T, Np = gi >= 0 ? Tp : N, Rp = gi >= 0 ? Tp : R;

    int max_pos = 0, max_len = 0;
    for (int i = 0; i < N; i++) {
        int q0 = b->query_start[i], q1 = b->query_start[i + 1];
        if (q1 - q0 > max_len)
            max_len = q1 - q0;
        int ctx = b->cache_len[i] + (q1 - q0);
        int nb = (ctx + m->bs - 1) / m->bs;
        if (nb > MB || nb > b->max_blocks)
            return -E2BIG;
        if (b->state_slot[i] < 0 || b->state_slot[i] >= m->nslots)
            return -EINVAL;
        h.qs[i] = q0;
        h.slot[i] = b->state_slot[i];
        h.has_init[i] = b->cache_len[i] > 0;
        const int32_t *btr = b->block_table + (size_t)i * b->max_blocks;
        for (int j = 0; j < nb; j++) {
            if (btr[j] < 0 || btr[j] >= m->nblocks)
                return -EINVAL;
            h.bt[(size_t)i * MB + j] = btr[j];
        }
        for (int t = q0; t < q1; t++) {
            int p = b->positions[t];
            if (p < 0 || p >= ctx)
                return -EINVAL;
            h.tok[t] = b->tokens[t];
            h.pos[t] = p;
            h.tok_seq[t] = i;
            h.slot_map[t] = btr[p / m->bs] * m->bs + p % m->bs;
            if (p + 1 > max_pos)
                max_pos = p + 1;
        }
    }
    h.qs[N] = T;
    if (nver > 0) { /* verify rows never take the graph path (num_decode < N) */
        for (int t = 0; t < T; t++)
            h.tok_spec[t] = -1;
        for (int v = 0; v < nver; v++) {
            int i = b->num_decode + v, q0 = b->query_start[i], q1 = b->query_start[i + 1];
            if (b->max_spec < 0 || q1 - q0 > b->max_spec + 1)
                return -EINVAL;
            for (int t = 0; t < q1 - q0; t++) {
                int ss = b->spec_slots[(size_t)v * (b->max_spec + 1) + t];
                if (ss < 0 || ss >= m->nslots)
                    return -EINVAL;
                h.tok_spec[q0 + t] = ss;
            }
        }
    }
    for (int r = 0; r < R; r++)
        h.rows[r] = b->logits_rows[r];
    for (int i = N; i < Np; i++) { /* graph padding rows */
        h.qs[i] = i;
        h.slot[i] = m->nslots;
        h.has_init[i] = 0;
        h.bt[(size_t)i * MB] = m->nblocks;
        h.tok[i] = 0;
        h.pos[i] = 0;
        h.tok_seq[i] = i;
        h.slot_map[i] = m->nblocks * m->bs;
        h.rows[i] = i;
    }
    h.qs[Np] = Tp;
    /* query tiles: the real sequences' first, then the padding rows' */
    int nptiles = 0; /* prefill tiles (tensor cores) come first */
    int ntiles = kern_attention_plan(h.qs, h.pos, Np, h.tiles, &nptiles), ntiles_real = 0;
    while (ntiles_real < ntiles && h.tiles[2 * ntiles_real] < T)
        ntiles_real++;
    /* decode rows only past the prefill tiles: the one-row attention kernel */
    int single = kern_attention_tiles_single(h.tiles, nptiles, ntiles);
    /* prefill rows (after decodes and verify rows) go through the chunked
     * GDN kernel when they bring enough tokens to fill chunks; the plan sits
     * at a fixed offset and is uploaded only when used */
    struct gdn_split gs = {N, 0, max_len <= KERN_GDN_PREP_MAX_LEN};
    int n0 = b->num_decode + nver;
    if (gi < 0 && m->gdn_work && n0 < N && T - b->query_start[n0] >= CU_GDN_CHUNK_MIN_TOKENS) {
        int nch = kern_gdn_chunk_plan(h.qs + n0, N - n0, h.plan);
        if (nch > 0 && nch <= m->gdn_chunk_max)
            gs = (struct gdn_split){n0, nch, 0};
    }
    size_t nints = (size_t)(h.bt - m->meta_h) + (size_t)Np * MB;
    cudaStream_t s = m->stream;
    CU_CHECK(cudaMemcpyAsync(m->meta_d, m->meta_h, nints * 4, cudaMemcpyHostToDevice, s));
    if (nver > 0)
        CU_CHECK(cudaMemcpyAsync(meta_layout(m, m->meta_d).tok_spec, h.tok_spec, (size_t)T * 4,
                                 cudaMemcpyHostToDevice, s));
    if (gs.nrec < N)
        CU_CHECK(cudaMemcpyAsync(meta_layout(m, m->meta_d).plan, h.plan,
                                 kern_gdn_chunk_plan_ints(N - n0, gs.nchunks) * 4,
                                 cudaMemcpyHostToDevice, s));
    if (c->rope.mode == CFG_ROPE_DYNAMIC && m->rope_on) {
        cu_rope_inv_freq(c, max_pos, m->inv_freq_host, &m->rope_mscale);
        CU_CHECK(cudaMemcpyAsync(m->inv_freq, m->inv_freq_host, (size_t)m->D / 2 * 4,
                                 cudaMemcpyHostToDevice, s));
    }

    int rc = 0;
    if (gi >= 0 && !m->graphs[gi].exec) {
        /* capture this bucket once; on any failure run eagerly from now on */
        struct cu_graph *g = &m->graphs[gi];
        cudaGraph_t graph = NULL;
        cudaError_t ce = cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal);
        if (ce == cudaSuccess) {
            rc = run_layers(e, Tp, Np, Rp, ntiles, nptiles, single, 0,
                            (struct gdn_split){Np, 0, 1});
            if (!rc)
                rc = run_lm_head(m, 0, Rp);
            ce = cudaStreamEndCapture(s, &graph);
        }
        if (!rc && ce == cudaSuccess)
            ce = cudaGraphInstantiate(&g->exec, graph, 0);
        if (graph)
            cudaGraphDestroy(graph);
        if (rc || ce != cudaSuccess) {
            LOG_WARN("cuda: graph capture for batch %d failed (%s, rc %d); decode runs without "
                     "graphs", Tp, cudaGetErrorString(ce), rc);
            cudaGetLastError();
            g->exec = NULL;
            m->opt.use_graphs = 0;
            gi = -1;
            rc = 0;
        }
    }
    if (gi >= 0) {
        CU_CHECK(cudaGraphLaunch(m->graphs[gi].exec, s));
        if (R > 0 && !keep)
            CU_CHECK(cudaMemcpyAsync(logits, m->logits, (size_t)R * m->V * 4,
                                     cudaMemcpyDeviceToHost, s));
    } else {
        /* eager: the metadata holds the padded rows only past N, which an
         * eager run of T tokens / N sequences never reads */
        if ((rc = run_layers(e, T, N, R, ntiles_real, nptiles, single, nver > 0, gs)))
            return rc;
        for (int r0 = 0; r0 < R; r0 += m->opt.max_logits) {
            int n = R - r0 < m->opt.max_logits ? R - r0 : m->opt.max_logits;
            if ((rc = run_lm_head(m, r0, n)))
                return rc;
            PROF("lm_head");
            if (!keep)
                CU_CHECK(cudaMemcpyAsync(logits + (size_t)r0 * m->V, m->logits,
                                     (size_t)n * m->V * 4, cudaMemcpyDeviceToHost, s));
        }
    }
    CU_CHECK(cudaStreamSynchronize(s));
    if (keep)
        m->kept_rows = R;
    return 0;
}
