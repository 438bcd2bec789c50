/* engine/cuda/cuda_internal.h: private structures of the CUDA backend, shared
 * by its files (cuda_backend.c: lifetime, slots, blocks; cuda_gemm.c: cuBLASLt;
 * cuda_weights.c: upload and random weights; cuda_forward.c: the step).
 *
 * Threads: created on the main thread, then used only by the engine thread.
 */
#ifndef DS_ENGINE_CUDA_CUDA_INTERNAL_H
#define DS_ENGINE_CUDA_CUDA_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include "engine/cuda/cuda_backend.h"
#include "engine/engine.h"
#include "engine/log.h"

/* Logs the failing expression and returns -EIO from the enclosing function. */
#define CU_CHECK(expr)                                                                   \
    do {                                                                                 \
        cudaError_t cu_e_ = (cudaError_t)(expr);                                         \
        if (cu_e_ != cudaSuccess) {                                                      \
            LOG_ERROR("cuda: %s failed: %s", #expr, cudaGetErrorString(cu_e_));          \
            return -EIO;                                                                 \
        }                                                                                \
    } while (0)

/* ---- cuBLASLt GEMMs: Y (N, M) = X (N, K) . W (M, K)^T [+ beta Y] ---- */
#define CU_PROF_MAX 1024 /* profiled ops per step */
#define CU_GEMM_PLANS 64
/* The fused GDN in-projection has CD + VD + 2 Hv rows (17340 at 7B), a
 * shape cuBLASLt handles badly (H100: 288 TFLOP/s at 8192 tokens against
 * 632-748 for the other projections, 1.37 TB/s at one token); its weight and
 * its output's row stride are padded with zero rows to a multiple of this
 * (17408). Nothing reads the padding's outputs. */
#define CU_IN_ROWS_ALIGN 256
/* Decode steps of up to this many tokens use kern_gemv: on the H100 the
 * GEMV took the batch-1 step from 8.20 to 6.68 ms, but the batch-8 step from
 * 8.99 to 10.39 ms (X's L1 traffic grows with T), so 8 is past the
 * crossover; 2 until the bench's side-by-side rows say where it lies. */
#define CU_GEMV_DEFAULT_T 2
struct cu_gemm_plan {
    int M, N, K, out_bf16, accumulate, valid;
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t a, b, c;
    cublasLtMatmulAlgo_t algo;
};
struct cu_gemm {
    cublasLtHandle_t h;
    void *ws;            /* device workspace, owned */
    size_t ws_bytes;
    struct cu_gemm_plan plans[CU_GEMM_PLANS];
    int next;            /* ring replacement */
    /* fp32-output calls with N <= gemv_max_t tokens go to kern_gemv
     * (kernels/cuda/gemv.h) instead of cuBLASLt; CU_GEMV_DEFAULT_T by
     * default, 0 sends everything to cuBLASLt (the bench times both) */
    int gemv_max_t;
};
int cu_gemm_init(struct cu_gemm *g, size_t ws_bytes);
void cu_gemm_fini(struct cu_gemm *g);
/* W bf16 (M, K) row-major; X bf16 (N, K); Y fp32 or bf16 (N, M).
 * accumulate: Y += result (fp32 Y only). Returns 0 or -EIO. Few-token fp32
 * calls run our GEMV (see gemv_max_t), the rest cuBLASLt. */
int cu_gemm_run(struct cu_gemm *g, const uint16_t *W, const uint16_t *X, void *Y, int out_bf16,
                int M, int N, int K, int accumulate, cudaStream_t s);
/* The MLP's gate|up projection and SwiGLU: W (M = 2F, K) with gate/up rows
 * interleaved, act bf16 (N, F). Few-token calls run kern_gemv_swiglu (one
 * launch, no fp32 intermediate); the rest cuBLASLt into gu, fp32 (N, M)
 * scratch, then kern_swiglu. Same bits either way as cu_gemm_run + kern_swiglu.
 * Returns 0, -EINVAL (odd M) or -EIO. */
int cu_gemm_swiglu(struct cu_gemm *g, const uint16_t *W, const uint16_t *X, float *gu,
                   uint16_t *act, int M, int N, int K, cudaStream_t s);

/* ---- device weights ---- */
struct cu_layer {
    int is_attn;
    int gdn_index, attn_index;   /* index among GDN / attention layers, else -1 */
    /* both */
    float *norm1, *norm2, *norm3; /* GDN: in, post_attn, -;  attn: post_attn, post_ffn, - */
    uint16_t *w_in;   /* GDN (CD+VD+2Hv, C) = [q;k;v;g;a;b]; attn ((Hq+2Hkv)D, C) = [q;k;v] */
    uint16_t *w_o;    /* (C, VD) or (C, Hq*D) */
    uint16_t *w_gu;   /* (2F, C): gate and up rows interleaved (gate f = row 2f) */
    uint16_t *w_down; /* (C, F) */
    /* GDN */
    float *conv;      /* (CD, K) */
    float *A_log, *dt_bias; /* (Hv) */
    float *o_norm;    /* (Dv) */
    /* attn */
    float *q_norm, *k_norm; /* (Hq*D), (Hkv*D) */
};

/* Per-step graph for one decode bucket. */
#define CU_MAX_BUCKETS 12
struct cu_graph {
    int B;                 /* bucket size (tokens = seqs) */
    cudaGraphExec_t exec;  /* NULL until captured */
};

struct cu_impl {
    struct eng_cuda_options opt;
    int dev;
    cudaStream_t stream;
    struct cu_gemm gemm;
    /* dims */
    int C, F, V, L, Hq, Hkv, D, Hk, Hv, Dk, Dv, KD, VD, CD, K;
    /* fused in-projection rows; the GDN one padded to CU_IN_ROWS_ALIGN */
    int gdn_in_rows, attn_in_rows;
    int num_gdn, num_attn;
    /* weights */
    uint16_t *embed, *lm_head;   /* lm_head == embed when tied */
    float *final_norm;
    struct cu_layer *layers;     /* [L] */
    /* all device allocations (weights and arena), freed at destroy */
    void **allocs;
    int nallocs, cap_allocs;
    size_t weight_bytes;
    /* rope */
    float *inv_freq;             /* device [D/2] */
    float *inv_freq_host;        /* host [D/2] for the current step */
    float rope_mscale;
    int rope_on;
    /* state: per GDN layer, slots+1 (the last is a scratch slot for padding) */
    int nslots;                  /* usable slots (mem.num_state_slots) */
    float **conv_state;          /* [num_gdn] -> fp32 (nslots+1, K-1, CD) */
    void **ssm_state;            /* [num_gdn] -> (nslots+1, Hv, Dk, Dv) fp32 or bf16 */
    size_t conv_slot_elems, ssm_slot_elems;
    /* paged KV: per attention layer, blocks+1 (the last is scratch) */
    int nblocks, bs;
    uint16_t **kc, **vc;         /* [num_attn] -> bf16 (nblocks+1, Hkv, bs, D) */
    /* step workspace (sized for opt.max_tokens) */
    float *x;                    /* (T, C) residual */
    uint16_t *xb;                /* (T, C) bf16 GEMM input */
    float *proj;                 /* (T, max in rows, 2F) */
    float *y;                    /* (T, CD) conv output */
    float *g, *beta;             /* (T, Hv) */
    float *o;                    /* (T, VD) */
    uint16_t *ob;                /* (T, max(VD, Hq*D)) */
    uint16_t *act;               /* (T, F) */
    float *tmp;                  /* (T, C) */
    float *attn_work;            /* split-KV partials */
    int attn_max_split;
    float *logits;               /* (max_logits, V) */
    /* step metadata: one packed int32 buffer, host pinned + device */
    int32_t *meta_h, *meta_d;
    size_t meta_ints;
    /* graphs */
    struct cu_graph graphs[CU_MAX_BUCKETS];
    int nbuckets;
    /* chunked GDN prefill (kernels/cuda/gdn_chunk.h): scratch sized for the
     * most chunks max_tokens/max_seqs can make; NULL when the model's head
     * dims are outside the kernel's limits (prefill then stays recurrent) */
    void *gdn_work;
    size_t gdn_work_bytes;
    int gdn_chunk_max;
    /* device sampling (cuda_sample.c) */
    struct cu_sampler *sampler;  /* owned; NULL with opt.no_device_sampling */
    int kept_rows;               /* logits rows the last forward kept on the device, -1: none */
    uint64_t sample_fallbacks;   /* steps ops->sample refused for capacity */
    /* step profiler (the bench's decode breakdown): while on, eager steps
     * record an event after every op of run_layers and the lm_head, with the
     * op's name; graphs are not used meanwhile. Engine thread only. */
    struct cu_prof {
        int on, n;
        cudaEvent_t ev[CU_PROF_MAX];
        const char *what[CU_PROF_MAX];
    } prof;
};

/* allocation helper: cudaMalloc recorded in impl->allocs; NULL on failure */
void *cu_alloc(struct cu_impl *m, size_t bytes);
/* weights: upload from e->w, or random when opt.random_weights_seed != 0 */
int cu_weights_init(struct cu_impl *m, const struct cfg_model *c, const struct eng_weights *w);
/* the step (cuda_forward.c) */
int cu_forward(struct engine *e, const struct eng_batch *b, float *logits);
/* device sampling (cuda_sample.c): setup/teardown and the backend ops */
int cu_sample_backend_init(struct engine *e, struct cu_impl *m);
void cu_sample_backend_fini(struct cu_impl *m);
size_t cu_sample_workspace_bytes(const struct cfg_model *c, const struct eng_cuda_options *o);
int cu_sample_op(struct engine *e, const struct eng_sample_row *rows, int n,
                 struct samp_result *out);
int cu_fetch_logits_op(struct engine *e, float *logits);
/* host rope tables */
void cu_rope_inv_freq(const struct cfg_model *c, int max_pos, float *inv_freq, float *mscale);

#endif
