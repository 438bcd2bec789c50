/* kernels/cuda/gated_rmsnorm.cu: gated RMSNorm (norm before gate, SiLU gate),
 * one warp per (token, value head), fp32. Engine thread launches it. */
#include "kernels/cuda/gated_rmsnorm.h"
#include "kernels/cuda/kern_util.h"

static __global__ void gated_rmsnorm_kernel(const float *o, const float *z, int z_stride,
                                            const float *w, int T, int Hv, int Dv, float eps,
                                            uint16_t *out)
{
    int wid = (blockIdx.x * blockDim.x + threadIdx.x) >> 5, lane = threadIdx.x & 31;
    if (wid >= T * Hv)
        return;
    int t = wid / Hv, h = wid - t * Hv;
    const float *op = o + (size_t)t * Hv * Dv + (size_t)h * Dv;
    const float *zp = z + (size_t)t * z_stride + (size_t)h * Dv;
    float ss = 0.0f;
    for (int i = lane; i < Dv; i += 32)
        ss += op[i] * op[i];
    ss = ku_warp_sum(ss);
    float inv = rsqrtf(ss / (float)Dv + eps);
    uint16_t *dst = out + (size_t)t * Hv * Dv + (size_t)h * Dv;
    for (int i = lane; i < Dv; i += 32)
        dst[i] = ku_to_bf(w[i] * (op[i] * inv) * ku_silu(zp[i]));
}

extern "C" int kern_gated_rmsnorm(const float *o, const float *z, int z_stride, const float *w,
                                  int T, int Hv, int Dv, float eps, uint16_t *out,
                                  cudaStream_t s)
{
    long long warps = (long long)T * Hv;
    if (warps <= 0)
        return 0;
    gated_rmsnorm_kernel<<<(int)((warps + 7) / 8), 256, 0, s>>>(o, z, z_stride, w, T, Hv, Dv,
                                                                 eps, out);
    return KU_LAUNCH_RESULT();
}
