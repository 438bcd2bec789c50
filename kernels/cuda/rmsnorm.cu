/* kernels/cuda/rmsnorm.cu: RMSNorm kernels (fp32 accumulation, one block of
 * 256 threads per row; rows are up to a few thousand wide, so two passes over
 * an L1-resident row are cheaper than staging). Engine thread launches them. */
#include "kernels/cuda/rmsnorm.h"
#include "kernels/cuda/kern_util.h"

static __global__ void add_rmsnorm_kernel(float *x, const float *add, const float *w,
                                          const int32_t *rows, int C, float eps,
                                          uint16_t *out)
{
    __shared__ float red[32];
    int r = blockIdx.x;
    int i = rows ? rows[r] : r;
    float *xr = x + (size_t)i * C;
    const float *ar = add ? add + (size_t)i * C : nullptr;
    float ss = 0.0f;
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        float v = xr[c];
        if (ar) {
            v += ar[c];
            xr[c] = v;
        }
        ss += v * v;
    }
    ss = ku_block_sum(ss, red);
    float inv = rsqrtf(ss / (float)C + eps);
    uint16_t *o = out + (size_t)r * C;
    for (int c = threadIdx.x; c < C; c += blockDim.x)
        o[c] = ku_to_bf(w[c] * (xr[c] * inv));
}

static __global__ void rmsnorm_add_kernel(float *x, const float *a, int a_stride,
                                          const float *w, int C, float eps, uint16_t *xb)
{
    __shared__ float red[32];
    int t = blockIdx.x;
    const float *ar = a + (size_t)t * a_stride;
    float ss = 0.0f;
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        float v = ar[c];
        ss += v * v;
    }
    ss = ku_block_sum(ss, red);
    float inv = rsqrtf(ss / (float)C + eps);
    float *xr = x + (size_t)t * C;
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        float v = xr[c] + w[c] * (ar[c] * inv);
        xr[c] = v;
        if (xb)
            xb[(size_t)t * C + c] = ku_to_bf(v);
    }
}

static __global__ void rmsnorm_inplace_kernel(float *p, int stride, const float *w, int n,
                                              float eps)
{
    __shared__ float red[32];
    float *v = p + (size_t)blockIdx.x * stride;
    float ss = 0.0f;
    for (int c = threadIdx.x; c < n; c += blockDim.x)
        ss += v[c] * v[c];
    ss = ku_block_sum(ss, red);
    float inv = rsqrtf(ss / (float)n + eps);
    for (int c = threadIdx.x; c < n; c += blockDim.x)
        v[c] = w[c] * (v[c] * inv);
}

extern "C" int kern_add_rmsnorm(float *x, const float *add, const float *w, const int32_t *rows,
                                int R, int C, float eps, uint16_t *out, cudaStream_t s)
{
    if (R <= 0)
        return 0;
    if (rows && add)
        return (int)cudaErrorInvalidValue;
    add_rmsnorm_kernel<<<R, 256, 0, s>>>(x, add, w, rows, C, eps, out);
    return KU_LAUNCH_RESULT();
}

extern "C" int kern_rmsnorm_add(float *x, const float *a, int a_stride, const float *w, int T,
                                int C, float eps, uint16_t *xb, cudaStream_t s)
{
    if (T <= 0)
        return 0;
    rmsnorm_add_kernel<<<T, 256, 0, s>>>(x, a, a_stride, w, C, eps, xb);
    return KU_LAUNCH_RESULT();
}

extern "C" int kern_rmsnorm_inplace(float *p, int stride, const float *w, int T, int n,
                                    float eps, cudaStream_t s)
{
    if (T <= 0)
        return 0;
    rmsnorm_inplace_kernel<<<T, 256, 0, s>>>(p, stride, w, n, eps);
    return KU_LAUNCH_RESULT();
}
