/* kernels/cuda/conv1d.h: depthwise causal conv1d + SiLU over varlen batches,
 * reading and writing per-sequence conv state in GDN state slots.
 * Called from the engine thread; asynchronous on the stream.
 *
 * Layouts: u (the pre-conv q|k|v projection) fp32, row t at u + t*u_stride,
 * CD channels; w fp32 (CD, K); conv state of slot s at
 * state + s*slot_stride: fp32 (K-1, CD), position 0 oldest (pre-conv inputs).
 * Sequence i owns tokens [qs[i], qs[i+1]); tok_seq[t] is t's sequence.
 * has_init[i] = 0 means the history is zeros whatever the slot holds.
 * slot[i] < 0 means: no state (zeros in, nothing written). */
#ifndef DS_KERNELS_CUDA_CONV1D_H
#define DS_KERNELS_CUDA_CONV1D_H
#include <stddef.h>
#include <stdint.h>
#include <cuda_runtime_api.h>
#ifdef __cplusplus
extern "C" {
#endif
/* y[t*CD + c] = silu(sum_j w[c,j] * xx[t+j]) with xx = hist ++ u of t's
 * sequence. Every token in parallel; K <= 8. Does not modify the state. */
int kern_conv1d_fwd(const float *u, int u_stride, const float *w, int CD, int K, int T,
                    const int32_t *tok_seq, const int32_t *qs, const int32_t *slot,
                    const int32_t *has_init, const float *state, size_t slot_stride, float *y,
                    cudaStream_t s);
/* New state = last K-1 entries of hist ++ u for every sequence i < N.
 * Launch after kern_conv1d_fwd on the same stream (it overwrites the history
 * that kernel reads). */
int kern_conv1d_state_update(const float *u, int u_stride, int CD, int K, int N,
                             const int32_t *qs, const int32_t *slot, const int32_t *has_init,
                             float *state, size_t slot_stride, cudaStream_t s);
/* The same, plus speculative-verify snapshots: tok_spec (T ints, by token) is
 * NULL, or per token t of sequence i a slot (-1: none) that receives the
 * window after t (last K-1 entries of hist ++ u[qs[i]..t]). Snapshot slots
 * must differ from every sequence's own slot in the batch. */
int kern_conv1d_state_update_spec(const float *u, int u_stride, int CD, int K, int N,
                                  const int32_t *qs, const int32_t *slot,
                                  const int32_t *has_init, const int32_t *tok_spec,
                                  float *state, size_t slot_stride, cudaStream_t s);
#ifdef __cplusplus
}
#endif
#endif
