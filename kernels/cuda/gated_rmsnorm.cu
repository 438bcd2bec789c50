/* kernels/cuda/gated_rmsnorm.cu: gated RMSNorm (norm before gate, SiLU gate),
 * one warp per (token, value head), fp32. Heads up to 32 * GR_MAXV wide are
 * held in registers, every load (o, z, w) issued before the first use: one
 * memory round trip a warp, which is what the few-warp decode launches wait
 * on. Wider heads take a strided two-pass loop (GR_ANY). Lane j sums its
 * elements j, j+32, ... in order either way (the same bits). Engine thread
 * launches it. */
#include "kernels/cuda/gated_rmsnorm.h"
#include "kernels/cuda/kern_util.h"

#define GR_MAXV 8
#define GR_ANY 0

template <int VPL>
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
    uint16_t *dst = out + (size_t)t * Hv * Dv + (size_t)h * Dv;
    if (VPL == GR_ANY) {
        float ss = 0.0f;
        for (int i = lane; i < Dv; i += 32)
            ss += op[i] * op[i];
        ss = ku_warp_sum(ss);
        float inv = rsqrtf(ss / (float)Dv + eps);
        for (int i = lane; i < Dv; i += 32)
            dst[i] = ku_to_bf(w[i] * (op[i] * inv) * ku_silu(zp[i]));
        return;
    }
    float ov[VPL > 0 ? VPL : 1], zv[VPL > 0 ? VPL : 1], wv[VPL > 0 ? VPL : 1];
#pragma unroll
    for (int k = 0; k < VPL; k++) {
        int i = lane + 32 * k;
        ov[k] = i < Dv ? op[i] : 0.0f;
        zv[k] = i < Dv ? zp[i] : 0.0f;
        wv[k] = i < Dv ? w[i] : 0.0f;
    }
    float ss = 0.0f;
#pragma unroll
    for (int k = 0; k < VPL; k++)
        ss += ov[k] * ov[k];
    ss = ku_warp_sum(ss);
    float inv = rsqrtf(ss / (float)Dv + eps);
#pragma unroll
    for (int k = 0; k < VPL; k++)
        if (lane + 32 * k < Dv)
            dst[lane + 32 * k] = ku_to_bf(wv[k] * (ov[k] * inv) * ku_silu(zv[k]));
}

extern "C" int kern_gated_rmsnorm(const float *o, const float *z, int z_stride, const float *w,
                                  int T, int Hv, int Dv, float eps, uint16_t *out,
                                  cudaStream_t s)
{
    long long warps = (long long)T * Hv;
    if (warps <= 0)
        return 0;
    int blocks = (int)((warps + 7) / 8), vpl = (Dv + 31) / 32;
    if (vpl <= 2)
        gated_rmsnorm_kernel<2><<<blocks, 256, 0, s>>>(o, z, z_stride, w, T, Hv, Dv, eps, out);
    else if (vpl <= 4)
        gated_rmsnorm_kernel<4><<<blocks, 256, 0, s>>>(o, z, z_stride, w, T, Hv, Dv, eps, out);
    else if (vpl <= GR_MAXV)
        gated_rmsnorm_kernel<GR_MAXV><<<blocks, 256, 0, s>>>(o, z, z_stride, w, T, Hv, Dv, eps,
                                                             out);
    else
        gated_rmsnorm_kernel<GR_ANY><<<blocks, 256, 0, s>>>(o, z, z_stride, w, T, Hv, Dv, eps,
                                                            out);
    return KU_LAUNCH_RESULT();
}
