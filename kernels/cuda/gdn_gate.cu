/* kernels/cuda/gdn_gate.cu: GDN gating, one thread per (token, value head),
 * all in fp32 (MODEL.md: careful precision here). Engine thread launches it. */
#include "kernels/cuda/gdn_gate.h"
#include "kernels/cuda/kern_util.h"

static __global__ void gdn_gate_kernel(const float *p, int stride, int a_off, int b_off,
                                       const float *A_log, const float *dt_bias, int neg_eig,
                                       int T, int Hv, float *g, float *beta)
{
    int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= T * Hv)
        return;
    int t = j / Hv, h = j - t * Hv;
    const float *row = p + (size_t)t * stride;
    kern_gdn_gate_one(row[a_off + h], row[b_off + h], A_log[h], dt_bias[h], neg_eig, &g[j],
                      &beta[j]);
}

extern "C" int kern_gdn_gate(const float *p, int stride, int a_off, int b_off,
                             const float *A_log, const float *dt_bias, int neg_eig, int T,
                             int Hv, float *g, float *beta, cudaStream_t s)
{
    int n = T * Hv;
    if (n <= 0)
        return 0;
    gdn_gate_kernel<<<(n + 255) / 256, 256, 0, s>>>(p, stride, a_off, b_off, A_log, dt_bias,
                                                    neg_eig, T, Hv, g, beta);
    return KU_LAUNCH_RESULT();
}
