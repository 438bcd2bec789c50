/* engine/cuda/cuda_backend.c: the CUDA backend's lifetime and memory: the
 * eng_backend_cuda vtable, options, device queries, the state-slot and paged
 * KV pools, the step workspace (allocated once at init: no cudaMalloc in the
 * step loop), slot/block copies and RoPE tables. The step itself is in
 * cuda_forward.c.
 *
 * Memory layout per GDN layer: conv state fp32 (slots+1, K-1, CD) and SSM
 * state (slots+1, Hv, Dk, Dv) in fp32 (default) or bf16; per attention layer
 * K and V bf16 (blocks+1, Hkv, bs, D). The extra slot and block are scratch
 * targets for the padding rows of CUDA-graph buckets.
 *
 * Threads: init/destroy on the main thread; everything else on the engine
 * thread.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/cuda/cuda_internal.h"
#include "kernels/cuda/attention.h"
#include "kernels/cuda/cast.h"
#include "kernels/cuda/gdn_chunk.h"
#include "kernels/cpu/rope.h"

static struct eng_cuda_options g_opt;
static int g_opt_set;

void eng_cuda_default_options(struct eng_cuda_options *o)
{
    memset(o, 0, sizeof *o);
    o->max_tokens = 8192;
    o->max_seqs = 256;
    o->max_blocks_per_seq = 4096;
    o->max_logits = 1024;
    o->use_graphs = 1;
}

void eng_cuda_set_options(const struct eng_cuda_options *o)
{
    g_opt = *o;
    g_opt_set = 1;
}

int eng_cuda_available(char *desc, size_t len)
{
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n <= 0) {
        if (desc && len)
            snprintf(desc, len, "no CUDA device (%s)",
                     e != cudaSuccess ? cudaGetErrorString(e) : "device count 0");
        cudaGetLastError();
        return 0;
    }
    int dev = g_opt_set ? g_opt.device : 0;
    struct cudaDeviceProp p;
    if (dev < 0 || dev >= n || cudaGetDeviceProperties(&p, dev) != cudaSuccess) {
        if (desc && len)
            snprintf(desc, len, "CUDA device %d not usable (%d present)", dev, n);
        return 0;
    }
    if (p.major < 8) {
        if (desc && len)
            snprintf(desc, len, "%s is sm_%d%d; deltaserve needs sm_80 or newer", p.name,
                     p.major, p.minor);
        return 0;
    }
    if (desc && len)
        snprintf(desc, len, "%s, sm_%d%d, %.1f GiB, %d SMs", p.name, p.major, p.minor,
                 (double)p.totalGlobalMem / (1 << 30), p.multiProcessorCount);
    return 1;
}

int eng_cuda_mem_info(size_t *free_bytes, size_t *total_bytes)
{
    char d[8];
    if (!eng_cuda_available(d, sizeof d))
        return -1;
    if (cudaSetDevice(g_opt_set ? g_opt.device : 0) != cudaSuccess)
        return -1;
    return cudaMemGetInfo(free_bytes, total_bytes) == cudaSuccess ? 0 : -1;
}

size_t eng_cuda_weight_bytes(const struct cfg_model *c)
{
    size_t C = c->hidden_size, F = c->intermediate_size, V = c->vocab_size;
    size_t KD = cfg_gdn_key_dim(c), VD = cfg_gdn_value_dim(c), CD = cfg_gdn_conv_dim(c);
    size_t Hv = c->linear_num_value_heads, Hq = c->num_attention_heads,
           Hkv = c->num_key_value_heads, D = c->head_dim;
    (void)KD;
    size_t b = V * C * 2 * (c->tie_word_embeddings ? 1 : 2) + C * 4;
    for (int l = 0; l < c->num_hidden_layers; l++) {
        b += (3 * C * F) * 2 + 2 * C * 4;
        if (c->layer_types[l] == CFG_LAYER_FULL)
            b += ((Hq + 2 * Hkv) * D * C + C * Hq * D) * 2 + (Hq + Hkv) * D * 4;
        else
            b += ((CD + VD + 2 * Hv) * C + C * VD) * 2 +
                 (CD * c->linear_conv_kernel_dim + 2 * Hv + c->linear_value_head_dim) * 4;
    }
    return b;
}

/* Rows of the fused GDN in-projection [q;k;v;g;a;b], padded (zero rows) to
 * a multiple of CU_IN_ROWS_ALIGN. */
static int gdn_in_rows(const struct cfg_model *c)
{
    int a = cfg_gdn_conv_dim(c) + cfg_gdn_value_dim(c) + 2 * c->linear_num_value_heads;
    return (a + CU_IN_ROWS_ALIGN - 1) / CU_IN_ROWS_ALIGN * CU_IN_ROWS_ALIGN;
}

static size_t proj_cols(const struct cfg_model *c)
{
    size_t a = (size_t)gdn_in_rows(c);
    size_t b = (size_t)(c->num_attention_heads + 2 * c->num_key_value_heads) * c->head_dim;
    size_t f = 2 * (size_t)c->intermediate_size;
    return a > b ? (a > f ? a : f) : (b > f ? b : f);
}

static size_t meta_ints(const struct eng_cuda_options *o)
{
    /* 7 per token, per-sequence arrays, block tables, then the verify
     * rows' per-token snapshot slots and the GDN chunk plan (cuda_forward.c
     * meta_layout) */
    int nch = kern_gdn_chunk_count_max(o->max_tokens, o->max_seqs);
    return (size_t)o->max_tokens * 8 + (size_t)(o->max_seqs + 1) * 3 +
           (size_t)o->max_seqs * o->max_blocks_per_seq + 64 +
           kern_gdn_chunk_plan_ints(o->max_seqs, nch);
}

/* Chunked GDN prefill scratch for this model and these options (0 when the
 * head dims are outside the chunk kernel's limits): the fused variant's for
 * the most chunks max_tokens/max_seqs can make, or the split variant's for
 * the most chunks of the batches (at most kern_gdn_chunk_split_seqs_max
 * sequences) that kern_gdn_chunk would split, whichever is larger. */
static size_t gdn_chunk_bytes(const struct cfg_model *c, const struct eng_cuda_options *o)
{
    int Hv = c->linear_num_value_heads, Dk = c->linear_key_head_dim,
        Dv = c->linear_value_head_dim;
    int nch = kern_gdn_chunk_count_max(o->max_tokens, o->max_seqs);
    size_t b = kern_gdn_chunk_work_bytes(nch, Hv, Dk, Dv);
    int ns = kern_gdn_chunk_split_seqs_max(Hv, Dv);
    if (ns > o->max_seqs)
        ns = o->max_seqs;
    if (b > 0 && ns > 0) {
        size_t sb = kern_gdn_chunk_split_work_bytes(kern_gdn_chunk_count_max(o->max_tokens, ns),
                                                    Hv, Dk, Dv);
        if (sb > b)
            b = sb;
    }
    return b;
}

size_t eng_cuda_workspace_bytes(const struct cfg_model *c, const struct eng_cuda_options *o)
{
    size_t T = o->max_tokens, C = c->hidden_size, F = c->intermediate_size;
    size_t VD = cfg_gdn_value_dim(c), CD = cfg_gdn_conv_dim(c), Hv = c->linear_num_value_heads;
    size_t QD = (size_t)c->num_attention_heads * c->head_dim;
    size_t ob = VD > QD ? VD : QD;
    size_t b = T * C * 4 * 2 + T * C * 2 + T * proj_cols(c) * 4 + T * CD * 4 + T * Hv * 8 +
               T * VD * 4 + T * ob * 2 + T * F * 2 + (size_t)o->max_logits * c->vocab_size * 4 +
               1024 * (c->head_dim + 2) * 4 + meta_ints(o) * 4 + ((size_t)64 << 20);
    return b + gdn_chunk_bytes(c, o) + cu_sample_workspace_bytes(c, o);
}

size_t eng_cuda_slot_bytes(const struct cfg_model *c, int ssm_state_bf16)
{
    size_t conv = (size_t)(c->linear_conv_kernel_dim - 1) * cfg_gdn_conv_dim(c) * 4;
    size_t ssm = (size_t)c->linear_num_value_heads * c->linear_key_head_dim *
                 c->linear_value_head_dim * (ssm_state_bf16 ? 2 : 4);
    return (conv + ssm) * c->num_gdn_layers;
}

size_t eng_cuda_kv_block_bytes(const struct cfg_model *c, int block_size)
{
    return (size_t)2 * c->num_key_value_heads * c->head_dim * block_size * 2 * c->num_attn_layers;
}

/* The table comes from the CPU reference's kern_cpu_rope_freqs, so both
 * backends share one implementation of HF's rope rules (fp32 semantics). */
void cu_rope_inv_freq(const struct cfg_model *c, int max_pos, float *inv, float *mscale)
{
    *mscale = 1.0f;
    if (kern_cpu_rope_freqs(&c->rope, c->head_dim, c->max_position_embeddings, max_pos, inv,
                            mscale) != 0) {
        for (int i = 0; i < c->head_dim / 2; i++)
            inv[i] = 0.0f;
        *mscale = 1.0f;
    }
}

static void impl_free(struct cu_impl *m)
{
    if (!m)
        return;
    for (int i = 0; i < m->nbuckets; i++)
        if (m->graphs[i].exec)
            cudaGraphExecDestroy(m->graphs[i].exec);
    cu_gemm_fini(&m->gemm);
    cu_sample_backend_fini(m);
    for (int i = 0; i < m->nallocs; i++)
        cudaFree(m->allocs[i]);
    free(m->allocs);
    if (m->meta_h)
        cudaFreeHost(m->meta_h);
    if (m->stream)
        cudaStreamDestroy(m->stream);
    free(m->layers);
    free(m->conv_state);
    free(m->ssm_state);
    free(m->kc);
    free(m->vc);
    free(m->inv_freq_host);
    free(m);
}

static int cuda_init(struct engine *e)
{
    const struct cfg_model *c = e->cfg;
    char desc[256];
    if (!eng_cuda_available(desc, sizeof desc)) {
        LOG_ERROR("cuda backend: %s", desc);
        return -ENODEV;
    }
    struct cu_impl *m = calloc(1, sizeof *m);
    if (!m)
        return -ENOMEM;
    if (g_opt_set)
        m->opt = g_opt;
    else
        eng_cuda_default_options(&m->opt);
    struct eng_cuda_options *o = &m->opt;
    int rc = -EIO;
    if (o->max_tokens < 1 || o->max_seqs < 1 || o->max_blocks_per_seq < 1 || o->max_logits < 1) {
        rc = -EINVAL;
        goto fail;
    }
    if (o->max_seqs > o->max_tokens)
        o->max_seqs = o->max_tokens;
    m->dev = o->device;
    if (cudaSetDevice(m->dev) != cudaSuccess ||
        cudaStreamCreateWithFlags(&m->stream, cudaStreamNonBlocking) != cudaSuccess)
        goto fail;
    m->C = c->hidden_size;
    m->F = c->intermediate_size;
    m->V = c->vocab_size;
    m->L = c->num_hidden_layers;
    m->Hq = c->num_attention_heads;
    m->Hkv = c->num_key_value_heads;
    m->D = c->head_dim;
    m->Hk = c->linear_num_key_heads;
    m->Hv = c->linear_num_value_heads;
    m->Dk = c->linear_key_head_dim;
    m->Dv = c->linear_value_head_dim;
    m->KD = cfg_gdn_key_dim(c);
    m->VD = cfg_gdn_value_dim(c);
    m->CD = cfg_gdn_conv_dim(c);
    m->K = c->linear_conv_kernel_dim;
    m->gdn_in_rows = gdn_in_rows(c);
    m->attn_in_rows = (m->Hq + 2 * m->Hkv) * m->D;
    m->num_gdn = c->num_gdn_layers;
    m->num_attn = c->num_attn_layers;
    if (m->Dk > 128 || m->K > 8 || m->D % 8 || m->D > 256 || m->Hv % m->Hk || m->Hq % m->Hkv) {
        LOG_ERROR("cuda backend: unsupported shapes (Dk %d <= 128, conv %d <= 8, head_dim %d "
                  "multiple of 8 and <= 256)", m->Dk, m->K, m->D);
        rc = -ENOTSUP;
        goto fail;
    }
    if ((rc = cu_gemm_init(&m->gemm, (size_t)32 << 20)))
        goto fail;
    rc = -ENOMEM;
    if ((rc = cu_weights_init(m, c, e->w)))
        goto fail;
    rc = -ENOMEM;
    /* rope */
    m->rope_on = c->rope.mode != CFG_ROPE_NONE;
    m->inv_freq_host = calloc((size_t)m->D / 2 + 1, sizeof(float));
    m->inv_freq = cu_alloc(m, ((size_t)m->D / 2 + 1) * sizeof(float));
    if (!m->inv_freq_host || !m->inv_freq)
        goto fail;
    cu_rope_inv_freq(c, 0, m->inv_freq_host, &m->rope_mscale);
    if (cudaMemcpy(m->inv_freq, m->inv_freq_host, (size_t)m->D / 2 * sizeof(float),
                   cudaMemcpyHostToDevice) != cudaSuccess)
        goto fail;
    /* state slots and KV pool */
    m->nslots = e->mem.num_state_slots;
    m->nblocks = e->mem.num_kv_blocks;
    m->bs = e->mem.block_size > 0 ? e->mem.block_size : 16;
    m->conv_slot_elems = (size_t)(m->K - 1) * m->CD;
    m->ssm_slot_elems = (size_t)m->Hv * m->Dk * m->Dv;
    m->conv_state = calloc((size_t)m->num_gdn + 1, sizeof *m->conv_state);
    m->ssm_state = calloc((size_t)m->num_gdn + 1, sizeof *m->ssm_state);
    m->kc = calloc((size_t)m->num_attn + 1, sizeof *m->kc);
    m->vc = calloc((size_t)m->num_attn + 1, sizeof *m->vc);
    if (!m->conv_state || !m->ssm_state || !m->kc || !m->vc)
        goto fail;
    size_t esz = o->ssm_state_bf16 ? 2 : 4;
    for (int i = 0; i < m->num_gdn; i++) {
        m->conv_state[i] = cu_alloc(m, (m->nslots + 1) * m->conv_slot_elems * 4);
        m->ssm_state[i] = cu_alloc(m, (m->nslots + 1) * m->ssm_slot_elems * esz);
        if (!m->conv_state[i] || !m->ssm_state[i])
            goto fail;
        cudaMemsetAsync(m->conv_state[i], 0, (m->nslots + 1) * m->conv_slot_elems * 4, m->stream);
        cudaMemsetAsync(m->ssm_state[i], 0, (m->nslots + 1) * m->ssm_slot_elems * esz, m->stream);
    }
    size_t kvb = (size_t)(m->nblocks + 1) * m->Hkv * m->bs * m->D * 2;
    for (int i = 0; i < m->num_attn; i++) {
        m->kc[i] = cu_alloc(m, kvb);
        m->vc[i] = cu_alloc(m, kvb);
        if (!m->kc[i] || !m->vc[i])
            goto fail;
    }
    /* workspace */
    size_t T = o->max_tokens, QD = (size_t)m->Hq * m->D;
    size_t obc = (size_t)m->VD > QD ? (size_t)m->VD : QD;
    m->x = cu_alloc(m, T * m->C * 4);
    m->xb = cu_alloc(m, T * m->C * 2);
    m->proj = cu_alloc(m, T * proj_cols(c) * 4);
    m->y = cu_alloc(m, T * m->CD * 4);
    m->g = cu_alloc(m, T * m->Hv * 4);
    m->beta = cu_alloc(m, T * m->Hv * 4);
    m->o = cu_alloc(m, T * m->VD * 4);
    m->ob = cu_alloc(m, T * obc * 2);
    m->act = cu_alloc(m, T * m->F * 2);
    m->tmp = cu_alloc(m, T * m->C * 4);
    m->attn_max_split = 16;
    m->attn_work = cu_alloc(m, 1024 * ((size_t)m->D + 2) * 4);
    m->logits = cu_alloc(m, (size_t)o->max_logits * m->V * 4);
    if ((m->gdn_work_bytes = gdn_chunk_bytes(c, o)) > 0) {
        m->gdn_chunk_max = kern_gdn_chunk_count_max(o->max_tokens, o->max_seqs);
        if (!(m->gdn_work = cu_alloc(m, m->gdn_work_bytes)))
            goto fail;
    }
    m->meta_ints = meta_ints(o);
    m->meta_d = cu_alloc(m, m->meta_ints * 4);
    if (!m->x || !m->xb || !m->proj || !m->y || !m->g || !m->beta || !m->o || !m->ob ||
        !m->act || !m->tmp || !m->attn_work || !m->logits || !m->meta_d)
        goto fail;
    if (cudaMallocHost((void **)&m->meta_h, m->meta_ints * 4) != cudaSuccess)
        goto fail;
    if ((rc = cu_sample_backend_init(e, m))) /* device sampler (cuda_sample.c) */
        goto fail;
    rc = -ENOMEM;
    /* decode graph buckets */
    int lim = o->max_tokens < o->max_seqs ? o->max_tokens : o->max_seqs;
    if (lim > o->max_logits)
        lim = o->max_logits;
    if (lim > m->nslots + 1)
        lim = m->nslots + 1;
    for (int b = 1; b <= lim && m->nbuckets < CU_MAX_BUCKETS; b *= 2)
        m->graphs[m->nbuckets++].B = b;
    if (cudaStreamSynchronize(m->stream) != cudaSuccess) {
        rc = -EIO;
        goto fail;
    }
    e->impl = m;
    size_t fr = 0, tot = 0;
    cudaMemGetInfo(&fr, &tot);
    LOG_INFO("cuda backend: %s; weights %.2f GiB (%s), %d state slots (%s SSM state), %d KV "
             "blocks x %d tokens, workspace for %d tokens; %.1f GiB free",
             desc, (double)m->weight_bytes / (1 << 30),
             o->random_weights_seed ? "random" : "uploaded", m->nslots,
             o->ssm_state_bf16 ? "bf16" : "fp32", m->nblocks, m->bs, o->max_tokens,
             (double)fr / (1 << 30));
    return 0;
fail:
    LOG_ERROR("cuda backend: init failed (%d)", rc);
    impl_free(m);
    return rc < 0 ? rc : -EIO;
}

static void cuda_destroy(struct engine *e)
{
    struct cu_impl *m = e->impl;
    if (m) {
        cudaStreamSynchronize(m->stream);
        impl_free(m);
    }
    e->impl = NULL;
}

static int cuda_copy_slot(struct engine *e, int src, int dst)
{
    struct cu_impl *m = e->impl;
    if (src < 0 || dst < 0 || src >= m->nslots || dst >= m->nslots)
        return -EINVAL;
    if (src == dst)
        return 0;
    size_t esz = m->opt.ssm_state_bf16 ? 2 : 4;
    for (int i = 0; i < m->num_gdn; i++) {
        CU_CHECK(cudaMemcpyAsync(m->conv_state[i] + dst * m->conv_slot_elems,
                                 m->conv_state[i] + src * m->conv_slot_elems,
                                 m->conv_slot_elems * 4, cudaMemcpyDeviceToDevice, m->stream));
        char *s = m->ssm_state[i];
        CU_CHECK(cudaMemcpyAsync(s + dst * m->ssm_slot_elems * esz,
                                 s + src * m->ssm_slot_elems * esz, m->ssm_slot_elems * esz,
                                 cudaMemcpyDeviceToDevice, m->stream));
    }
    CU_CHECK(cudaStreamSynchronize(m->stream));
    return 0;
}

/* Downloads slot's conv and SSM state, layer by layer (eng_read_slot). */
static int cuda_read_slot(struct engine *e, int slot, float *out)
{
    struct cu_impl *m = e->impl;
    if (slot < 0 || slot >= m->nslots)
        return -EINVAL;
    CU_CHECK(cudaStreamSynchronize(m->stream));
    uint16_t *tmp = NULL;
    if (m->opt.ssm_state_bf16 && !(tmp = malloc(m->ssm_slot_elems * 2)))
        return -ENOMEM;
    int rc = 0;
    for (int i = 0; i < m->num_gdn && !rc; i++) {
        float *conv = out, *ssm = out + m->conv_slot_elems;
        out += m->conv_slot_elems + m->ssm_slot_elems;
        if (cudaMemcpy(conv, m->conv_state[i] + (size_t)slot * m->conv_slot_elems,
                       m->conv_slot_elems * 4, cudaMemcpyDeviceToHost) != cudaSuccess) {
            rc = -EIO;
            break;
        }
        if (!tmp) {
            if (cudaMemcpy(ssm, (float *)m->ssm_state[i] + (size_t)slot * m->ssm_slot_elems,
                           m->ssm_slot_elems * 4, cudaMemcpyDeviceToHost) != cudaSuccess)
                rc = -EIO;
            continue;
        }
        if (cudaMemcpy(tmp, (uint16_t *)m->ssm_state[i] + (size_t)slot * m->ssm_slot_elems,
                       m->ssm_slot_elems * 2, cudaMemcpyDeviceToHost) != cudaSuccess) {
            rc = -EIO;
            break;
        }
        for (size_t j = 0; j < m->ssm_slot_elems; j++) {
            uint32_t u = (uint32_t)tmp[j] << 16;
            memcpy(&ssm[j], &u, 4);
        }
    }
    free(tmp);
    return rc;
}

static int cuda_copy_block(struct engine *e, int src, int dst)
{
    struct cu_impl *m = e->impl;
    if (src < 0 || dst < 0 || src >= m->nblocks || dst >= m->nblocks)
        return -EINVAL;
    if (src == dst)
        return 0;
    size_t n = (size_t)m->Hkv * m->bs * m->D;
    for (int i = 0; i < m->num_attn; i++) {
        CU_CHECK(cudaMemcpyAsync(m->kc[i] + dst * n, m->kc[i] + src * n, n * 2,
                                 cudaMemcpyDeviceToDevice, m->stream));
        CU_CHECK(cudaMemcpyAsync(m->vc[i] + dst * n, m->vc[i] + src * n, n * 2,
                                 cudaMemcpyDeviceToDevice, m->stream));
    }
    CU_CHECK(cudaStreamSynchronize(m->stream));
    return 0;
}

int eng_cuda_randomize_state(struct engine *e, uint64_t seed)
{
    struct cu_impl *m = e->impl;
    size_t ns = (size_t)m->nslots + 1;
    for (int i = 0; i < m->num_gdn; i++) {
        if (kern_fill_uniform_f32(m->conv_state[i], ns * m->conv_slot_elems, seed++, -1, 1,
                                  m->stream))
            return -EIO;
        int r = m->opt.ssm_state_bf16
                    ? kern_fill_uniform_bf16(m->ssm_state[i], ns * m->ssm_slot_elems, seed++,
                                             -0.1f, 0.1f, m->stream)
                    : kern_fill_uniform_f32(m->ssm_state[i], ns * m->ssm_slot_elems, seed++,
                                            -0.1f, 0.1f, m->stream);
        if (r)
            return -EIO;
    }
    size_t n = (size_t)(m->nblocks + 1) * m->Hkv * m->bs * m->D;
    for (int i = 0; i < m->num_attn; i++)
        if (kern_fill_uniform_bf16(m->kc[i], n, seed++, -1, 1, m->stream) ||
            kern_fill_uniform_bf16(m->vc[i], n, seed++, -1, 1, m->stream))
            return -EIO;
    return eng_cuda_sync(e);
}

int eng_cuda_sync(struct engine *e)
{
    struct cu_impl *m = e->impl;
    CU_CHECK(cudaStreamSynchronize(m->stream));
    return 0;
}

/* A failed step is either transient (a bad launch configuration, cleared by
 * cudaGetLastError) or sticky (an illegal address or a lost device: the
 * context is unusable and every later call fails). cudaDeviceSynchronize
 * still failing tells them apart; sticky is -ENODEV, which makes the
 * scheduler fail everything and the server exit non-zero for a restart. */
static int cuda_forward_checked(struct engine *e, const struct eng_batch *b, float *logits)
{
    int rc = cu_forward(e, b, logits);
    if (rc == -EIO) {
        (void)cudaGetLastError();
        cudaError_t st = cudaDeviceSynchronize();
        if (st != cudaSuccess) {
            LOG_ERROR("cuda: device unusable after a failed step: %s", cudaGetErrorString(st));
            return -ENODEV;
        }
    }
    return rc;
}

const struct eng_backend_ops eng_backend_cuda = {
    .name = "cuda",
    .init = cuda_init,
    .destroy = cuda_destroy,
    .forward = cuda_forward_checked,
    .copy_slot = cuda_copy_slot,
    .copy_block = cuda_copy_block,
    .read_slot = cuda_read_slot,
    .sample = cu_sample_op,
    .fetch_logits = cu_fetch_logits_op,
};
