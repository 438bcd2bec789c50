/* kernels/cuda/attention.h: causal attention over the paged bf16 KV cache for
 * a varlen batch (decode rows and prefill chunks alike: each query attends to
 * its sequence's keys at positions 0..pos, which kern_kv_write has already
 * stored), with an optional split over the keys (split-KV) for small batches.
 * Two kernels behind one entry: decode rows and short chunks run on CUDA
 * cores in query tiles of KERN_ATTN_QT (attention.cu); chunks of at least
 * KERN_ATTN_PF_MIN tokens run as prefill tiles of up to KERN_ATTN_PT tokens
 * on tensor cores (attention_prefill.cu, FlashAttention-2 style).
 * Called from the engine thread; asynchronous on the stream. */
#ifndef DS_KERNELS_CUDA_ATTENTION_H
#define DS_KERNELS_CUDA_ATTENTION_H
#include <stdint.h>
#include <cuda_runtime_api.h>
#ifdef __cplusplus
extern "C" {
#endif
/* Queries are processed in tiles of up to KERN_ATTN_QT consecutive tokens of
 * one sequence (they share every K/V row load). */
#define KERN_ATTN_QT 8
/* Prefill tiles: up to KERN_ATTN_PT tokens, for sequences with at least
 * KERN_ATTN_PF_MIN new tokens in the step (kern_attention_plan). */
#define KERN_ATTN_PT 128
#define KERN_ATTN_PF_MIN 16

struct kern_attn_args {
    const float *q;           /* row t at q + t*q_stride: Hq*D fp32 (normed, rotated) */
    int q_stride;
    const uint16_t *kc, *vc;  /* bf16 [block][Hkv][bs][D] */
    const int32_t *block_table; /* [N * max_blocks] */
    int max_blocks;
    const int32_t *tok_seq;   /* [T] sequence of token t */
    const int32_t *positions; /* [T] */
    const int32_t *tiles;     /* [ntiles * 2]: (first token, count); the first
                                 nptiles are prefill tiles (count <= KERN_ATTN_PT),
                                 the rest have count <= KERN_ATTN_QT */
    int ntiles;
    int T, Hq, Hkv, D, bs;    /* D % 8 == 0, D <= 256 */
    float scale;              /* 1/sqrt(D) */
    int nsplit;               /* key splits (1 = none); > 1 needs the workspace */
    float *work;              /* fp32 [T*Hq*nsplit*(D+2)] when nsplit > 1 */
    uint16_t *out;            /* bf16 (T, Hq*D) */
    int nptiles;              /* prefill tiles at the start of tiles (0: none) */
    int decode_tiles_single;  /* 1: every non-prefill tile has count 1 (decode
                                 rows only): runs a one-row kernel instead of
                                 one that computes KERN_ATTN_QT rows */
};
/* Returns 0 or a cudaError_t (cudaErrorInvalidValue for unsupported D).
 * Prefill tiles run on tensor cores for D = 64 or 128 and on the CUDA-core
 * kernel (in pieces of KERN_ATTN_QT) for any other D. With nptiles > 0 the
 * decode tiles run without split-KV (nsplit is ignored). Every token's
 * positions must be consecutive within a tile (a chunk of one sequence). */
int kern_attention(const struct kern_attn_args *a, cudaStream_t s);
/* Only the prefill tiles (tiles[0 .. nptiles)); D must be supported. */
int kern_attention_prefill(const struct kern_attn_args *a, cudaStream_t s);
/* Tuning/benchmark: variant 0 = the default, 1 = 64-row blocks of 4 warps,
 * 2 = 128-row blocks of 8 warps, 3 = 128-row blocks of 4 warps (two 16-row
 * tiles per warp, Q in shared). */
#define KERN_ATTN_PF_VARIANTS 3
int kern_attention_prefill_variant(const struct kern_attn_args *a, int variant, cudaStream_t s);
/* 1 when kern_attention_prefill runs head dim D (64, 128). */
int kern_attention_prefill_supported(int D);
/* Host helper: cut each sequence's tokens [qs[i], qs[i+1]) into query tiles
 * of at most KERN_ATTN_QT; writes tiles[2*k] = first token, tiles[2*k+1] =
 * count, returns the number of tiles (<= T). No prefill tiles (nptiles 0). */
int kern_attention_tiles(const int32_t *qs, int N, int32_t *tiles);
/* Host helper, the dispatch plan: sequences with >= KERN_ATTN_PF_MIN tokens
 * are cut into prefill tiles of KERN_ATTN_PT (written first, longest key range
 * first when positions, the host copy of the T token positions, is given),
 * the others into KERN_ATTN_QT tiles in sequence order after them. Returns
 * the number of tiles (<= T) and sets *nptiles. tiles holds 2*T ints. */
int kern_attention_plan(const int32_t *qs, const int32_t *positions, int N, int32_t *tiles,
                        int *nptiles);
/* Host helper: 1 when every non-prefill tile (tiles[nptiles .. ntiles)) has
 * one row, i.e. the step's decode_tiles_single. */
int kern_attention_tiles_single(const int32_t *tiles, int nptiles, int ntiles);
/* Workspace floats kern_attention needs for T tokens and nsplit splits. */
size_t kern_attention_work_floats(int T, int Hq, int D, int nsplit);
#ifdef __cplusplus
}
#endif
#endif
