/* kernels/cuda/rope.cu: rotary embedding (rotate-half), one block per token,
 * threads over (head, i < D/2). Engine thread launches it. */
#include "kernels/cuda/rope.h"
#include "kernels/cuda/kern_util.h"

static __global__ void rope_kernel(float *p, int stride, int nheads, int D,
                                   const int32_t *positions, const float *inv_freq,
                                   float mscale)
{
    int t = blockIdx.x, half = D / 2;
    float pos = (float)positions[t];
    float *row = p + (size_t)t * stride;
    for (int j = threadIdx.x; j < nheads * half; j += blockDim.x) {
        int h = j / half, i = j - h * half;
        float sn, cs;
        sincosf(pos * inv_freq[i], &sn, &cs);
        cs *= mscale;
        sn *= mscale;
        float *x = row + h * D;
        float x1 = x[i], x2 = x[i + half];
        x[i] = x1 * cs - x2 * sn;
        x[i + half] = x2 * cs + x1 * sn;
    }
}

extern "C" int kern_rope(float *p, int stride, int nheads, int D, const int32_t *positions,
                         const float *inv_freq, float mscale, int T, cudaStream_t s)
{
    if (T <= 0)
        return 0;
    rope_kernel<<<T, 256, 0, s>>>(p, stride, nheads, D, positions, inv_freq, mscale);
    return KU_LAUNCH_RESULT();
}
