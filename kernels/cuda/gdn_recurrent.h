/* kernels/cuda/gdn_recurrent.h: the gated delta rule, token by token, over a
 * varlen batch, with initial and final state in GDN state slots. Used for
 * decode (one token per sequence) and, until the chunked form lands, prefill.
 * Called from the engine thread; asynchronous on the stream.
 *
 * Layouts: y = conv output fp32 (T, CD) with CD = 2*Hk*Dk + Hv*Dv, split
 * [q (Hk,Dk) | k (Hk,Dk) | v (Hv,Dv)]; value head h uses key head
 * h / (Hv/Hk). g, beta fp32 (T, Hv). State of slot s: state + s*slot_stride,
 * (Hv, Dk, Dv) row-major (element (h,k,v) at (h*Dk + k)*Dv + v), fp32 or bf16.
 * o fp32 (T, Hv*Dv). Per token (fp32): q,k L2-normalized (eps 1e-6), q *= scale;
 *   S = exp(g) S; delta = beta (v - S^T k); S += k delta^T; o = S^T q.
 * has_init[i] = 0 starts from zeros; slot[i] < 0 starts from zeros and writes
 * nothing. Dk <= 128. */
#ifndef DS_KERNELS_CUDA_GDN_RECURRENT_H
#define DS_KERNELS_CUDA_GDN_RECURRENT_H
#include <stddef.h>
#include <stdint.h>
#include <cuda_runtime_api.h>
#ifdef __cplusplus
extern "C" {
#endif
int kern_gdn_recurrent(const float *y, const float *g, const float *beta, int N,
                       const int32_t *qs, const int32_t *slot, const int32_t *has_init,
                       int Hk, int Hv, int Dk, int Dv, float scale, void *state,
                       int state_bf16, size_t slot_stride, float *o, cudaStream_t s);
/* The same, plus speculative-verify snapshots: tok_spec (T ints, indexed by
 * token like y) is NULL, or per token a slot that receives the whole
 * (Hv, Dk, Dv) state after that token (-1: none). Snapshot slots must not be
 * any sequence's own slot in the batch (the engine validates that). */
int kern_gdn_recurrent_spec(const float *y, const float *g, const float *beta, int N,
                            const int32_t *qs, const int32_t *slot, const int32_t *has_init,
                            const int32_t *tok_spec, int Hk, int Hv, int Dk, int Dv,
                            float scale, void *state, int state_bf16, size_t slot_stride,
                            float *o, cudaStream_t s);
#ifdef __cplusplus
}
#endif
#endif
