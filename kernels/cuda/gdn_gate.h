/* kernels/cuda/gdn_gate.h: GDN gating (log decay g and beta) from the a and b
 * projections. Called from the engine thread; asynchronous on the stream. */
#ifndef DS_KERNELS_CUDA_GDN_GATE_H
#define DS_KERNELS_CUDA_GDN_GATE_H
#include <stdint.h>
#include <cuda_runtime_api.h>
#ifdef __cplusplus
extern "C" {
#endif
/* For t < T, h < Hv (a = p[t*stride + a_off + h], b likewise at b_off), fp32:
 *   g[t*Hv+h]    = -exp(A_log[h]) * softplus(a + dt_bias[h])  (softplus(x) = x for x > 20)
 *   beta[t*Hv+h] = sigmoid(b) * (neg_eig ? 2 : 1) */
int kern_gdn_gate(const float *p, int stride, int a_off, int b_off, const float *A_log,
                  const float *dt_bias, int neg_eig, int T, int Hv, float *g, float *beta,
                  cudaStream_t s);
#ifdef __cplusplus
}
#endif
#endif
