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

#ifdef __CUDACC__
/* The gating of one (token, head), in device code: shared by gdn_gate.cu and
 * the fused short-sequence prologue (gdn_prep.cu) so both give the same bits. */
static __device__ __forceinline__ void kern_gdn_gate_one(float a, float b, float A_log,
                                                         float dt_bias, int neg_eig, float *g,
                                                         float *beta)
{
    float x = a + dt_bias;
    float sp = x > 20.0f ? x : log1pf(expf(x));
    *g = -expf(A_log) * sp;
    float bt = 1.0f / (1.0f + expf(-b));
    *beta = neg_eig ? 2.0f * bt : bt;
}
#endif
#endif
