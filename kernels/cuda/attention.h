/* kernels/cuda/attention.h: causal attention over the paged bf16 KV cache for
 * a varlen batch (decode rows and prefill chunks alike: each query attends to
 * its sequence's keys at positions 0..pos, which kern_kv_write has already
 * stored), with an optional split over the keys (split-KV) for small batches.
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

struct kern_attn_args {
    const float *q;           /* row t at q + t*q_stride: Hq*D fp32 (normed, rotated) */
    int q_stride;
    const uint16_t *kc, *vc;  /* bf16 [block][Hkv][bs][D] */
    const int32_t *block_table; /* [N * max_blocks] */
    int max_blocks;
    const int32_t *tok_seq;   /* [T] sequence of token t */
    const int32_t *positions; /* [T] */
    const int32_t *tiles;     /* [ntiles * 2]: (first token, count <= KERN_ATTN_QT) */
    int ntiles;
    int T, Hq, Hkv, D, bs;    /* D % 8 == 0, D <= 256 */
    float scale;              /* 1/sqrt(D) */
    int nsplit;               /* key splits (1 = none); > 1 needs the workspace */
    float *work;              /* fp32 [T*Hq*nsplit*(D+2)] when nsplit > 1 */
    uint16_t *out;            /* bf16 (T, Hq*D) */
};
/* Returns 0 or a cudaError_t (cudaErrorInvalidValue for unsupported D). */
int kern_attention(const struct kern_attn_args *a, cudaStream_t s);
/* Host helper: cut each sequence's tokens [qs[i], qs[i+1]) into query tiles
 * of at most KERN_ATTN_QT; writes tiles[2*k] = first token, tiles[2*k+1] =
 * count, returns the number of tiles (<= T). */
int kern_attention_tiles(const int32_t *qs, int N, int32_t *tiles);
/* Workspace floats kern_attention needs for T tokens and nsplit splits. */
size_t kern_attention_work_floats(int T, int Hq, int D, int nsplit);
#ifdef __cplusplus
}
#endif
#endif
