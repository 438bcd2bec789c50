/* kernels/cuda/gdn_prep.h: the GDN layer's prologue for steps whose
 * sequences are all short (decodes, speculative verify rows, a few-token
 * prefill): causal conv1d + SiLU with the conv state update, and the gating,
 * in one launch instead of three (kern_conv1d_fwd, kern_conv1d_state_update_spec,
 * kern_gdn_gate). Same layouts, same arithmetic in the same order, so the
 * outputs are bit-identical to those three; only the schedule differs: one
 * thread per (sequence, channel) walks the sequence's tokens with the window
 * in registers, which is serial in the sequence length (the engine uses it
 * for lengths up to KERN_GDN_PREP_MAX_LEN; the token-parallel kernels stay
 * for prefill).
 * Called from the engine thread; asynchronous on the stream. */
#ifndef DS_KERNELS_CUDA_GDN_PREP_H
#define DS_KERNELS_CUDA_GDN_PREP_H
#include <stddef.h>
#include <stdint.h>
#include <cuda_runtime_api.h>
#ifdef __cplusplus
extern "C" {
#endif
#define KERN_GDN_PREP_MAX_LEN 16

/* u: the in-projection output fp32, row t at u + t*u_stride: channels
 * [0, CD) pre-conv q|k|v, a at a_off + h, b at b_off + h (h < Hv).
 * w fp32 (CD, K), K <= 8; conv state as in conv1d.h (slot s at
 * state + s*slot_stride, (K-1, CD), oldest first); qs/slot/has_init/tok_spec
 * as in kern_conv1d_state_update_spec (tok_spec NULL or per-token snapshot
 * slots). Writes y fp32 (T, CD), g and beta fp32 (T, Hv) as kern_gdn_gate,
 * and every sequence's new window into its slot (slot < 0: none).
 * Returns 0 or a cudaError_t value (cudaErrorInvalidValue for K > 8). */
int kern_gdn_prep_short(const float *u, int u_stride, const float *w, int CD, int K, int N,
                        const int32_t *qs, const int32_t *slot, const int32_t *has_init,
                        const int32_t *tok_spec, float *state, size_t slot_stride, float *y,
                        int a_off, int b_off, const float *A_log, const float *dt_bias,
                        int neg_eig, int Hv, float *g, float *beta, cudaStream_t s);
#ifdef __cplusplus
}
#endif
#endif
