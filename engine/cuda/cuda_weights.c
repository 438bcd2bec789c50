/* engine/cuda/cuda_weights.c: device weights for the CUDA backend.
 *
 * Matrices are uploaded as bf16 through two pinned staging buffers: the host
 * converts (or copies) chunk i+1 while the copy engine moves chunk i, with an
 * event per buffer guarding reuse. Fused projections are built by uploading
 * their parts back to back into one (rows, C) matrix: GDN [q;k;v;g;a;b],
 * attention [q;k;v], MLP [gate;up]. Small vectors (norm weights, A_log,
 * dt_bias, conv) are kept in fp32 on the device.
 * With opt.random_weights_seed set, the same layout is filled on the GPU with
 * scaled uniform noise instead (the benchmark: 7B shapes, no download).
 *
 * Threads: main thread at startup (eng_backend_cuda.init).
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/cuda/cuda_internal.h"
#include "kernels/cuda/cast.h"

#define STAGE_BYTES ((size_t)32 << 20)

struct stage {
    uint16_t *buf[2];
    cudaEvent_t ev[2];
    int cur;
    cudaStream_t s;
};

static uint16_t f32_to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

static float bf16_to_f32(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static float f16_to_f32(uint16_t h)
{
    uint32_t s = (uint32_t)(h >> 15) << 31, e = (h >> 10) & 0x1f, m = h & 0x3ff, u;
    if (e == 0) {
        if (!m) {
            u = s;
        } else {
            e = 127 - 15 + 1;
            while (!(m & 0x400)) {
                m <<= 1;
                e--;
            }
            u = s | (e << 23) | ((m & 0x3ff) << 13);
        }
    } else if (e == 31) {
        u = s | 0x7f800000u | (m << 13);
    } else {
        u = s | ((e + 127 - 15) << 23) | (m << 13);
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static float tensor_get(const struct eng_tensor *t, int64_t i)
{
    switch (t->dtype) {
    case ST_F32: return ((const float *)t->data)[i];
    case ST_F16: return f16_to_f32(((const uint16_t *)t->data)[i]);
    default: return bf16_to_f32(((const uint16_t *)t->data)[i]);
    }
}

void *cu_alloc(struct cu_impl *m, size_t bytes)
{
    if (m->nallocs == m->cap_allocs) {
        int nc = m->cap_allocs ? 2 * m->cap_allocs : 256;
        void **na = realloc(m->allocs, (size_t)nc * sizeof *na);
        if (!na)
            return NULL;
        m->allocs = na;
        m->cap_allocs = nc;
    }
    void *p = NULL;
    if (cudaMalloc(&p, bytes ? bytes : 16) != cudaSuccess) {
        LOG_ERROR("cuda: cudaMalloc(%zu) failed", bytes);
        return NULL;
    }
    m->allocs[m->nallocs++] = p;
    return p;
}

/* The staging ring: wait for buffer cur's previous copy to finish, hand it
 * out for filling (stage_take), then copy n bf16 values from it to dst and
 * move on (stage_send). Two buffers, so filling one overlaps the other's
 * copy. */
static int stage_take(struct stage *st, uint16_t **h)
{
    CU_CHECK(cudaEventSynchronize(st->ev[st->cur]));
    *h = st->buf[st->cur];
    return 0;
}

static int stage_send(struct stage *st, uint16_t *dst, size_t n)
{
    int b = st->cur;
    CU_CHECK(cudaMemcpyAsync(dst, st->buf[b], n * 2, cudaMemcpyHostToDevice, st->s));
    CU_CHECK(cudaEventRecord(st->ev[b], st->s));
    st->cur ^= 1;
    return 0;
}

/* n elements of t from element off, as bf16, into h. */
static void stage_fill(uint16_t *h, const struct eng_tensor *t, int64_t off, size_t n)
{
    if (t->dtype == ST_BF16) {
        memcpy(h, (const uint16_t *)t->data + off, n * 2);
        return;
    }
    for (size_t i = 0; i < n; i++)
        h[i] = f32_to_bf16(tensor_get(t, off + (int64_t)i));
}

/* Upload tensor t (any dtype) as bf16 to dst. */
static int upload_bf16(struct stage *st, uint16_t *dst, const struct eng_tensor *t)
{
    size_t per = STAGE_BYTES / 2;
    for (int64_t off = 0; off < t->numel; off += (int64_t)per) {
        size_t n = (size_t)(t->numel - off) < per ? (size_t)(t->numel - off) : per;
        uint16_t *h;
        int rc;
        if ((rc = stage_take(st, &h)))
            return rc;
        stage_fill(h, t, off, n);
        if ((rc = stage_send(st, dst + off, n)))
            return rc;
    }
    return 0;
}

static float *upload_f32(struct cu_impl *m, const struct eng_tensor *t)
{
    float *h = malloc((size_t)t->numel * sizeof *h);
    float *d = cu_alloc(m, (size_t)t->numel * sizeof *d);
    if (!h || !d) {
        free(h);
        return NULL;
    }
    for (int64_t i = 0; i < t->numel; i++)
        h[i] = tensor_get(t, i);
    cudaError_t e = cudaMemcpy(d, h, (size_t)t->numel * sizeof *h, cudaMemcpyHostToDevice);
    free(h);
    m->weight_bytes += (size_t)t->numel * 4;
    return e == cudaSuccess ? d : NULL;
}

static uint16_t *alloc_mat(struct cu_impl *m, size_t rows, size_t cols)
{
    m->weight_bytes += rows * cols * 2;
    return cu_alloc(m, rows * cols * 2);
}

static int upload_parts(struct stage *st, uint16_t *dst, const struct eng_tensor *const *parts,
                        int n)
{
    for (int i = 0; i < n; i++) {
        int rc = upload_bf16(st, dst, parts[i]);
        if (rc)
            return rc;
        dst += parts[i]->numel;
    }
    return 0;
}

/* Upload gate (F, C) and up (F, C) as one (2F, C) bf16 matrix with their
 * rows interleaved (row 2f = gate f, row 2f+1 = up f): the layout
 * kern_gemv_swiglu and kern_swiglu read (gemv.h). */
static int upload_interleaved(struct stage *st, uint16_t *dst, const struct eng_tensor *gate,
                              const struct eng_tensor *up, int64_t F, int64_t C)
{
    if (gate->numel != F * C || up->numel != F * C)
        return -EINVAL;
    int64_t per = (int64_t)(STAGE_BYTES / 2) / (2 * C); /* row pairs per staging buffer */
    for (int64_t f0 = 0; f0 < F; f0 += per) {
        int64_t n = F - f0 < per ? F - f0 : per;
        uint16_t *h;
        int rc;
        if ((rc = stage_take(st, &h)))
            return rc;
        for (int64_t f = 0; f < n; f++) {
            stage_fill(h + 2 * f * C, gate, (f0 + f) * C, (size_t)C);
            stage_fill(h + (2 * f + 1) * C, up, (f0 + f) * C, (size_t)C);
        }
        if ((rc = stage_send(st, dst + 2 * f0 * C, (size_t)(2 * n * C))))
            return rc;
    }
    return 0;
}

/* ---- random weights (benchmark) ---- */
static uint64_t g_seed;
static int rnd_mat(struct cu_impl *m, uint16_t *d, size_t rows, size_t cols)
{
    float a = sqrtf(3.0f / (float)cols);
    return kern_fill_uniform_bf16(d, rows * cols, g_seed++ * 0x9e37ull, -a, a, m->stream) ? -EIO
                                                                                          : 0;
}
static float *rnd_vec(struct cu_impl *m, size_t n, float lo, float hi)
{
    float *d = cu_alloc(m, n * 4);
    m->weight_bytes += n * 4;
    if (!d || kern_fill_uniform_f32(d, n, g_seed++ * 0x9e37ull, lo, hi, m->stream))
        return NULL;
    return d;
}

static int layer_random(struct cu_impl *m, struct cu_layer *ly)
{
    int rows = ly->is_attn ? m->attn_in_rows : m->gdn_in_rows;
    int odim = ly->is_attn ? m->Hq * m->D : m->VD;
    ly->w_in = alloc_mat(m, rows, m->C);
    ly->w_o = alloc_mat(m, m->C, odim);
    ly->w_gu = alloc_mat(m, 2 * (size_t)m->F, m->C);
    ly->w_down = alloc_mat(m, m->C, m->F);
    if (!ly->w_in || !ly->w_o || !ly->w_gu || !ly->w_down)
        return -ENOMEM;
    if (rnd_mat(m, ly->w_in, rows, m->C) || rnd_mat(m, ly->w_o, m->C, odim) ||
        rnd_mat(m, ly->w_gu, 2 * (size_t)m->F, m->C) || rnd_mat(m, ly->w_down, m->C, m->F))
        return -EIO;
    ly->norm1 = rnd_vec(m, m->C, 0.9f, 1.1f);
    ly->norm2 = rnd_vec(m, m->C, 0.9f, 1.1f);
    if (!ly->norm1 || !ly->norm2)
        return -ENOMEM;
    if (ly->is_attn) {
        ly->q_norm = rnd_vec(m, (size_t)m->Hq * m->D, 0.9f, 1.1f);
        ly->k_norm = rnd_vec(m, (size_t)m->Hkv * m->D, 0.9f, 1.1f);
        return ly->q_norm && ly->k_norm ? 0 : -ENOMEM;
    }
    ly->conv = rnd_vec(m, (size_t)m->CD * m->K, -0.5f, 0.5f);
    ly->A_log = rnd_vec(m, m->Hv, 0.0f, 2.7f);
    ly->dt_bias = rnd_vec(m, m->Hv, -1.0f, 1.0f);
    ly->o_norm = rnd_vec(m, m->Dv, 0.9f, 1.1f);
    return ly->conv && ly->A_log && ly->dt_bias && ly->o_norm ? 0 : -ENOMEM;
}

static int layer_upload(struct cu_impl *m, struct stage *st, struct cu_layer *ly,
                        const struct eng_layer_weights *lw)
{
    int rc;
    int rows = ly->is_attn ? m->attn_in_rows : m->gdn_in_rows;
    int odim = ly->is_attn ? m->Hq * m->D : m->VD;
    ly->w_in = alloc_mat(m, rows, m->C);
    ly->w_o = alloc_mat(m, m->C, odim);
    ly->w_gu = alloc_mat(m, 2 * (size_t)m->F, m->C);
    ly->w_down = alloc_mat(m, m->C, m->F);
    if (!ly->w_in || !ly->w_o || !ly->w_gu || !ly->w_down)
        return -ENOMEM;
    if ((rc = upload_interleaved(st, ly->w_gu, &lw->w_gate, &lw->w_up, m->F, m->C)) ||
        (rc = upload_bf16(st, ly->w_down, &lw->w_down)))
        return rc;
    if (ly->is_attn) {
        const struct eng_tensor *in[3] = {&lw->wq, &lw->wk, &lw->wv};
        if ((rc = upload_parts(st, ly->w_in, in, 3)) || (rc = upload_bf16(st, ly->w_o, &lw->wo)))
            return rc;
        ly->norm1 = upload_f32(m, &lw->post_attn_norm);
        ly->norm2 = upload_f32(m, &lw->post_ffn_norm);
        ly->q_norm = upload_f32(m, &lw->q_norm);
        ly->k_norm = upload_f32(m, &lw->k_norm);
        return ly->norm1 && ly->norm2 && ly->q_norm && ly->k_norm ? 0 : -EIO;
    }
    const struct eng_tensor *in[6] = {&lw->gq, &lw->gk, &lw->gv, &lw->gg, &lw->ga, &lw->gb};
    if ((rc = upload_parts(st, ly->w_in, in, 6)) || (rc = upload_bf16(st, ly->w_o, &lw->go)))
        return rc;
    /* the alignment padding rows (CU_IN_ROWS_ALIGN): zeros, not leftovers */
    size_t used = (size_t)m->CD + m->VD + 2 * (size_t)m->Hv;
    if (rows > (int)used)
        CU_CHECK(cudaMemset(ly->w_in + used * m->C, 0, (rows - used) * (size_t)m->C * 2));
    ly->norm1 = upload_f32(m, &lw->in_norm);
    ly->norm2 = upload_f32(m, &lw->post_attn_norm);
    ly->conv = upload_f32(m, &lw->conv);
    ly->A_log = upload_f32(m, &lw->A_log);
    ly->dt_bias = upload_f32(m, &lw->dt_bias);
    ly->o_norm = upload_f32(m, &lw->o_norm);
    return ly->norm1 && ly->norm2 && ly->conv && ly->A_log && ly->dt_bias && ly->o_norm ? 0
                                                                                         : -EIO;
}

int cu_weights_init(struct cu_impl *m, const struct cfg_model *c, const struct eng_weights *w)
{
    int rc = 0;
    int tied = c->tie_word_embeddings || (w && w->lm_head.data == w->embed.data);
    m->layers = calloc((size_t)m->L, sizeof *m->layers);
    if (!m->layers)
        return -ENOMEM;
    int gi = 0, ai = 0;
    for (int l = 0; l < m->L; l++) {
        struct cu_layer *ly = &m->layers[l];
        ly->is_attn = c->layer_types[l] == CFG_LAYER_FULL;
        ly->gdn_index = ly->is_attn ? -1 : gi++;
        ly->attn_index = ly->is_attn ? ai++ : -1;
    }
    m->embed = alloc_mat(m, m->V, m->C);
    m->lm_head = tied ? m->embed : alloc_mat(m, m->V, m->C);
    if (!m->embed || !m->lm_head)
        return -ENOMEM;

    if (m->opt.random_weights_seed) {
        g_seed = m->opt.random_weights_seed;
        float a = 1.0f;
        if (kern_fill_uniform_bf16(m->embed, (size_t)m->V * m->C, g_seed++, -a, a, m->stream))
            return -EIO;
        if (!tied && rnd_mat(m, m->lm_head, m->V, m->C))
            return -EIO;
        m->final_norm = rnd_vec(m, m->C, 0.9f, 1.1f);
        if (!m->final_norm)
            return -ENOMEM;
        for (int l = 0; l < m->L && !rc; l++)
            rc = layer_random(m, &m->layers[l]);
        if (!rc)
            CU_CHECK(cudaStreamSynchronize(m->stream));
        return rc;
    }
    if (!w)
        return -EINVAL;

    struct stage st = {.s = m->stream};
    for (int b = 0; b < 2; b++) {
        CU_CHECK(cudaMallocHost((void **)&st.buf[b], STAGE_BYTES / 2 * 2));
        CU_CHECK(cudaEventCreateWithFlags(&st.ev[b], cudaEventDisableTiming));
        CU_CHECK(cudaEventRecord(st.ev[b], m->stream));
    }
    rc = upload_bf16(&st, m->embed, &w->embed);
    if (!rc && !tied)
        rc = upload_bf16(&st, m->lm_head, &w->lm_head);
    if (!rc) {
        m->final_norm = upload_f32(m, &w->final_norm);
        if (!m->final_norm)
            rc = -EIO;
    }
    for (int l = 0; l < m->L && !rc; l++)
        rc = layer_upload(m, &st, &m->layers[l], &w->layers[l]);
    cudaError_t e = cudaStreamSynchronize(m->stream);
    for (int b = 0; b < 2; b++) {
        cudaEventDestroy(st.ev[b]);
        cudaFreeHost(st.buf[b]);
    }
    if (!rc && e != cudaSuccess)
        rc = -EIO;
    return rc;
}
