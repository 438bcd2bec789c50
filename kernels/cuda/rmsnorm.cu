/* kernels/cuda/rmsnorm.cu: RMSNorm kernels, fp32 accumulation, one block of
 * 256 threads per row.
 *
 * Rows up to RN_THREADS * RN_MAXV wide (every supported model) are held in
 * registers: each thread issues all its loads (row, weight, residual) before
 * the first use, so a row costs one memory round trip. The decode steps run
 * these with one row per launch, one block on one SM: the earlier form (a
 * strided loop, load then use, then a second pass) waited out ~15 dependent
 * load latencies per pass and took 10-13 us a call on the H100, about 1 ms of
 * the 6.6 ms batch-1 step over its ~90 norms. Wider rows take the strided
 * two-pass form (RN_ANY). Thread k sums its elements k, k+256, ... in order
 * in both forms, so both give the same bits. Engine thread launches them. */
#include "kernels/cuda/rmsnorm.h"
#include "kernels/cuda/kern_util.h"

#define RN_THREADS 256
#define RN_MAXV 32
#define RN_ANY 0 /* VPT for rows wider than RN_THREADS * RN_MAXV */

/* VPT values per thread: element c = threadIdx.x + i * RN_THREADS of a row. */
template <int VPT> struct rn_row {
    float v[VPT > 0 ? VPT : 1];
    static __device__ __forceinline__ bool in(int i, int n)
    {
        return threadIdx.x + i * RN_THREADS < n;
    }
    __device__ __forceinline__ void load(const float *p, int n)
    {
#pragma unroll
        for (int i = 0; i < VPT; i++)
            v[i] = in(i, n) ? p[threadIdx.x + i * RN_THREADS] : 0.0f;
    }
    __device__ __forceinline__ float sumsq() const
    {
        float ss = 0.0f;
#pragma unroll
        for (int i = 0; i < VPT; i++)
            ss += v[i] * v[i];
        return ss;
    }
};

template <int VPT>
static __global__ void __launch_bounds__(RN_THREADS)
add_rmsnorm_kernel(float *x, const float *add, const float *w, const int32_t *rows, int C,
                   float eps, uint16_t *out)
{
    __shared__ float red[32];
    int r = blockIdx.x;
    int i = rows ? rows[r] : r;
    float *xr = x + (size_t)i * C;
    const float *ar = add ? add + (size_t)i * C : nullptr;
    uint16_t *o = out + (size_t)r * C;
    if (VPT == RN_ANY) {
        float ss = 0.0f;
        for (int c = threadIdx.x; c < C; c += RN_THREADS) {
            float v = xr[c];
            if (ar) {
                v += ar[c];
                xr[c] = v;
            }
            ss += v * v;
        }
        ss = ku_block_sum(ss, red);
        float inv = rsqrtf(ss / (float)C + eps);
        for (int c = threadIdx.x; c < C; c += RN_THREADS)
            o[c] = ku_to_bf(w[c] * (xr[c] * inv));
        return;
    }
    rn_row<VPT> xv, wv, av;
    xv.load(xr, C);
    wv.load(w, C);
    if (ar) {
        av.load(ar, C);
#pragma unroll
        for (int k = 0; k < VPT; k++)
            if (xv.in(k, C)) {
                xv.v[k] += av.v[k];
                xr[threadIdx.x + k * RN_THREADS] = xv.v[k];
            }
    }
    float ss = ku_block_sum(xv.sumsq(), red);
    float inv = rsqrtf(ss / (float)C + eps);
#pragma unroll
    for (int k = 0; k < VPT; k++)
        if (xv.in(k, C))
            o[threadIdx.x + k * RN_THREADS] = ku_to_bf(wv.v[k] * (xv.v[k] * inv));
}

template <int VPT>
static __global__ void __launch_bounds__(RN_THREADS)
rmsnorm_add_kernel(float *x, const float *a, int a_stride, const float *w, int C, float eps,
                   uint16_t *xb)
{
    __shared__ float red[32];
    int t = blockIdx.x;
    const float *ar = a + (size_t)t * a_stride;
    float *xr = x + (size_t)t * C;
    uint16_t *xo = xb ? xb + (size_t)t * C : nullptr;
    if (VPT == RN_ANY) {
        float ss = 0.0f;
        for (int c = threadIdx.x; c < C; c += RN_THREADS) {
            float v = ar[c];
            ss += v * v;
        }
        ss = ku_block_sum(ss, red);
        float inv = rsqrtf(ss / (float)C + eps);
        for (int c = threadIdx.x; c < C; c += RN_THREADS) {
            float v = xr[c] + w[c] * (ar[c] * inv);
            xr[c] = v;
            if (xo)
                xo[c] = ku_to_bf(v);
        }
        return;
    }
    rn_row<VPT> av, xv, wv;
    av.load(ar, C);
    xv.load(xr, C);
    wv.load(w, C);
    float ss = ku_block_sum(av.sumsq(), red);
    float inv = rsqrtf(ss / (float)C + eps);
#pragma unroll
    for (int k = 0; k < VPT; k++)
        if (av.in(k, C)) {
            int c = threadIdx.x + k * RN_THREADS;
            float v = xv.v[k] + wv.v[k] * (av.v[k] * inv);
            xr[c] = v;
            if (xo)
                xo[c] = ku_to_bf(v);
        }
}

template <int VPT>
static __global__ void __launch_bounds__(RN_THREADS)
rmsnorm_inplace_kernel(float *p, int stride, const float *w, int n, float eps)
{
    __shared__ float red[32];
    float *v = p + (size_t)blockIdx.x * stride;
    if (VPT == RN_ANY) {
        float ss = 0.0f;
        for (int c = threadIdx.x; c < n; c += RN_THREADS)
            ss += v[c] * v[c];
        ss = ku_block_sum(ss, red);
        float inv = rsqrtf(ss / (float)n + eps);
        for (int c = threadIdx.x; c < n; c += RN_THREADS)
            v[c] = w[c] * (v[c] * inv);
        return;
    }
    rn_row<VPT> xv, wv;
    xv.load(v, n);
    wv.load(w, n);
    float ss = ku_block_sum(xv.sumsq(), red);
    float inv = rsqrtf(ss / (float)n + eps);
#pragma unroll
    for (int k = 0; k < VPT; k++)
        if (xv.in(k, n))
            v[threadIdx.x + k * RN_THREADS] = wv.v[k] * (xv.v[k] * inv);
}

/* Instantiate KERNEL<VPT> for the narrowest register form that holds n
 * values, or the strided form, and launch it on grid g. */
#define RN_LAUNCH(KERNEL, n, g, s, ...)                                                   \
    do {                                                                                  \
        int vpt_ = ((n) + RN_THREADS - 1) / RN_THREADS;                                   \
        if (vpt_ <= 4)                                                                    \
            KERNEL<4><<<(g), RN_THREADS, 0, (s)>>>(__VA_ARGS__);                          \
        else if (vpt_ <= 8)                                                               \
            KERNEL<8><<<(g), RN_THREADS, 0, (s)>>>(__VA_ARGS__);                          \
        else if (vpt_ <= 16)                                                              \
            KERNEL<16><<<(g), RN_THREADS, 0, (s)>>>(__VA_ARGS__);                         \
        else if (vpt_ <= RN_MAXV)                                                         \
            KERNEL<RN_MAXV><<<(g), RN_THREADS, 0, (s)>>>(__VA_ARGS__);                    \
        else                                                                              \
            KERNEL<RN_ANY><<<(g), RN_THREADS, 0, (s)>>>(__VA_ARGS__);                     \
    } while (0)

extern "C" int kern_add_rmsnorm(float *x, const float *add, const float *w, const int32_t *rows,
                                int R, int C, float eps, uint16_t *out, cudaStream_t s)
{
    if (R <= 0)
        return 0;
    if (rows && add)
        return (int)cudaErrorInvalidValue;
    RN_LAUNCH(add_rmsnorm_kernel, C, R, s, x, add, w, rows, C, eps, out);
    return KU_LAUNCH_RESULT();
}

extern "C" int kern_rmsnorm_add(float *x, const float *a, int a_stride, const float *w, int T,
                                int C, float eps, uint16_t *xb, cudaStream_t s)
{
    if (T <= 0)
        return 0;
    RN_LAUNCH(rmsnorm_add_kernel, C, T, s, x, a, a_stride, w, C, eps, xb);
    return KU_LAUNCH_RESULT();
}

extern "C" int kern_rmsnorm_inplace(float *p, int stride, const float *w, int T, int n,
                                    float eps, cudaStream_t s)
{
    if (T <= 0)
        return 0;
    RN_LAUNCH(rmsnorm_inplace_kernel, n, T, s, p, stride, w, n, eps);
    return KU_LAUNCH_RESULT();
}
