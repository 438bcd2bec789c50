/* kernels/cuda/attn_prep.h: the attention layer's per-token preparation in
 * one launch: whole-vector RMSNorm of q and k, optional rotate-half RoPE on
 * both, q written back in place and k, v appended to the paged bf16 KV cache.
 * It replaces kern_rmsnorm_inplace (q), kern_rmsnorm_inplace (k), kern_rope
 * and kern_kv_write in the forward (decode at batch 1 is launch-bound), with
 * the same math (the sums of squares may run in another order: within an
 * fp32 rounding of the norm, attn_prep.cu). Called from the engine
 * thread; asynchronous on the stream. */
#ifndef DS_KERNELS_CUDA_ATTN_PREP_H
#define DS_KERNELS_CUDA_ATTN_PREP_H
#include <stdint.h>
#include <cuda_runtime_api.h>
#ifdef __cplusplus
extern "C" {
#endif
/* Token t < T's fused projection row r = qkv + t*stride holds
 *   q = r[0 .. Hq*D), k = r[Hq*D .. (Hq+Hkv)*D), v = r[(Hq+Hkv)*D .. (Hq+2Hkv)*D)
 * (fp32). Per token (MODEL.md):
 *   q <- q_w * q / sqrt(mean(q^2) + eps)      over all Hq*D values (not per head)
 *   k <- k_w * k / sqrt(mean(k^2) + eps)      over all Hkv*D values
 *   when inv_freq != NULL, every head of q and k is rotated as kern_rope does:
 *     ang = positions[t] * inv_freq[i] (i < D/2), c = cos(ang)*mscale,
 *     s = sin(ang)*mscale, (x_i, x_{i+D/2}) <- (x_i c - x_{i+D/2} s, x_{i+D/2} c + x_i s)
 *   q is written back in place (the attention kernel reads it from the row);
 *   k and v go to the cache exactly as kern_kv_write stores them: layout bf16
 *   [block][Hkv][bs][D], slot slot_map[t] = block * bs + offset, rounded to
 *   nearest even; slot_map[t] < 0 skips the token's cache write (its q is
 *   still prepared).
 * The k and v values in qkv are left as they were (nothing reads them after
 * the cache write). q_w fp32 [Hq*D], k_w fp32 [Hkv*D], positions int32 [T]
 * (only read with RoPE), inv_freq fp32 [D/2] or NULL (RoPE off), slot_map
 * int32 [T]; all device pointers.
 * Returns 0, cudaErrorInvalidValue for an odd or non-positive D, or the
 * launch error. T <= 0 launches nothing. */
int kern_attn_prep(float *qkv, int stride, int T, int Hq, int Hkv, int D, const float *q_w,
                   const float *k_w, float eps, const int32_t *positions,
                   const float *inv_freq, float mscale, int bs, const int32_t *slot_map,
                   uint16_t *kc, uint16_t *vc, cudaStream_t s);
#ifdef __cplusplus
}
#endif
#endif
