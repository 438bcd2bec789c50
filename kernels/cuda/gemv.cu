/* kernels/cuda/gemv.cu: few-token bf16 GEMV; contract and reasons in gemv.h. */
#include "kernels/cuda/gemv.h"
#include "kernels/cuda/kern_util.h"

#define GV_WARPS 8 /* warps per block */
/* Weight rows per warp R and 16-byte loads per lane per row in flight U:
 * R = 2, U = 4 for T <= 2; R = 4, U = 2 beyond, where the X reads (T per W
 * load, shared by the R rows) rather than W's stream limit the kernel. The
 * T = 3..8 choice is unmeasured (the H100 run timed R = 2 at T = 8: slower
 * than cuBLASLt); the bench's GEMV-vs-cuBLASLt rows at T = 4, 8 decide. */
template <int T> struct gv_shape {
    enum { R = T <= 2 ? 2 : 4, U = T <= 2 ? 4 : 2 };
};

/* dot of 8 bf16 pairs packed in two uint4s, added to acc */
static __device__ __forceinline__ float gv_dot8(uint4 a, uint4 b, float acc)
{
    const uint32_t *x = (const uint32_t *)&a, *y = (const uint32_t *)&b;
#pragma unroll
    for (int i = 0; i < 4; i++) {
        acc = fmaf(__uint_as_float(x[i] << 16), __uint_as_float(y[i] << 16), acc);
        acc = fmaf(__uint_as_float(x[i] & 0xffff0000u), __uint_as_float(y[i] & 0xffff0000u), acc);
    }
    return acc;
}

/* The weight stream both forms share: R rows m0.. (clamped to M - 1, a
 * duplicate row whose result is never stored), 16-byte loads k0, k0 + NT,
 * ... with U of them per row in flight, dot products with the T rows of X
 * into acc (zeroed here), then the xor-shuffle warp sum (every lane ends
 * with every total). NT: threads striding one row (32, or the block). */
template <int T, int NT>
static __device__ __forceinline__ void gv_stream(const uint4 *__restrict__ W,
                                                 const uint4 *__restrict__ X, int M, int K8,
                                                 int m0, int k0,
                                                 float (&acc)[gv_shape<T>::R][T])
{
    constexpr int GV_R = gv_shape<T>::R, GV_U = gv_shape<T>::U;
    const uint4 *w[GV_R];
#pragma unroll
    for (int r = 0; r < GV_R; r++)
        w[r] = W + (size_t)(m0 + r < M ? m0 + r : M - 1) * K8;
#pragma unroll
    for (int r = 0; r < GV_R; r++)
#pragma unroll
        for (int t = 0; t < T; t++)
            acc[r][t] = 0.0f;
    for (int k = k0; k < K8; k += NT * GV_U) {
        uint4 wv[GV_U][GV_R];
#pragma unroll
        for (int u = 0; u < GV_U; u++)
#pragma unroll
            for (int r = 0; r < GV_R; r++)
                if (k + NT * u < K8)
                    wv[u][r] = __ldcs(w[r] + k + NT * u); /* streamed once: evict first */
#pragma unroll
        for (int u = 0; u < GV_U; u++)
            if (k + NT * u < K8) {
#pragma unroll
                for (int t = 0; t < T; t++) {
                    uint4 xv = __ldg(X + (size_t)t * K8 + k + NT * u);
#pragma unroll
                    for (int r = 0; r < GV_R; r++)
                        acc[r][t] = gv_dot8(wv[u][r], xv, acc[r][t]);
                }
            }
    }
#pragma unroll
    for (int r = 0; r < GV_R; r++)
#pragma unroll
        for (int t = 0; t < T; t++) {
            float v = acc[r][t];
#pragma unroll
            for (int o = 16; o > 0; o >>= 1)
                v += __shfl_xor_sync(0xffffffffu, v, o);
            acc[r][t] = v;
        }
}

/* SW: the SwiGLU epilogue (kern_gemv_swiglu): rows 2f, 2f+1 are gate f and
 * up f, both owned by one warp (R even, m0 even), which stores
 * bf16(silu(gate) * up) to act (T, M/2) instead of Y. */
template <int T, bool SW>
static __global__ void __launch_bounds__(GV_WARPS * 32)
gemv_kernel(const uint4 *__restrict__ W, const uint4 *__restrict__ X, float *__restrict__ Y,
            uint16_t *__restrict__ act, int M, int K8, int accumulate)
{
    constexpr int GV_R = gv_shape<T>::R;
    const int lane = threadIdx.x & 31;
    const int m0 = (blockIdx.x * GV_WARPS + (threadIdx.x >> 5)) * GV_R;
    if (m0 >= M)
        return;
    float acc[GV_R][T];
    gv_stream<T, 32>(W, X, M, K8, m0, lane, acc);
    if (SW) { /* lane p*T + t stores act (t, m0/2 + p); the xor reduction left every
               * lane with every sum */
        const int F = M / 2;
#pragma unroll
        for (int p = 0; p < GV_R / 2; p++)
#pragma unroll
            for (int t = 0; t < T; t++)
                if (lane == p * T + t && m0 + 2 * p < M)
                    act[(size_t)t * F + m0 / 2 + p] =
                        ku_to_bf(ku_silu(acc[2 * p][t]) * acc[2 * p + 1][t]);
    } else {
        /* lane r*T + t stores output (t, m0 + r); R * T <= 32 */
#pragma unroll
        for (int r = 0; r < GV_R; r++)
#pragma unroll
            for (int t = 0; t < T; t++)
                if (lane == r * T + t && m0 + r < M) {
                    float *yp = Y + (size_t)t * M + m0 + r;
                    *yp = accumulate ? *yp + acc[r][t] : acc[r][t];
                }
    }
}

extern "C" int kern_gemv_ok(const void *W, const void *X, int M, int T, int K)
{
    return M > 0 && T >= 1 && T <= KERN_GEMV_MAX_T && K > 0 && K % 8 == 0 &&
           ((uintptr_t)W & 15) == 0 && ((uintptr_t)X & 15) == 0;
}

/* The K-split form: one block per R rows, its 8 warps (256 threads) striding
 * the row's K together, then a fixed-order block reduction (deterministic,
 * no atomics). For narrow outputs with long rows (MLP down 3840 x 11008,
 * GDN out 3840 x 5760) the warp form has only M / R warps, ~15 per SM on
 * the H100, too few loads in flight; here every SM gets many small blocks
 * and the tail is one short block. */
template <int T, bool SW>
static __global__ void __launch_bounds__(GV_WARPS * 32)
gemv_ks_kernel(const uint4 *__restrict__ W, const uint4 *__restrict__ X, float *__restrict__ Y,
               uint16_t *__restrict__ act, int M, int K8, int accumulate)
{
    constexpr int GV_R = gv_shape<T>::R, NT = GV_WARPS * 32;
    __shared__ float red[GV_WARPS][GV_R * T];
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int m0 = blockIdx.x * GV_R;
    float acc[GV_R][T];
    gv_stream<T, NT>(W, X, M, K8, m0, tid, acc);
#pragma unroll
    for (int r = 0; r < GV_R; r++)
#pragma unroll
        for (int t = 0; t < T; t++)
            if (lane == 0)
                red[warp][r * T + t] = acc[r][t];
    __syncthreads();
    if (tid >= GV_R * T)
        return;
    const int r = tid / T, t = tid - r * T;
    float v = 0.0f;
#pragma unroll
    for (int q = 0; q < GV_WARPS; q++)
        v += red[q][tid];
    if (SW) { /* thread (2p, t) pairs gate 2p with up 2p+1 */
        if ((r & 1) == 0 && m0 + r < M) {
            float up = 0.0f;
#pragma unroll
            for (int q = 0; q < GV_WARPS; q++)
                up += red[q][(r + 1) * T + t];
            act[(size_t)t * (M / 2) + (m0 + r) / 2] = ku_to_bf(ku_silu(v) * up);
        }
        return;
    }
    if (m0 + r < M) {
        float *yp = Y + (size_t)t * M + m0 + r;
        *yp = accumulate ? *yp + v : v;
    }
}

/* form: KERN_GEMV_AUTO, KERN_GEMV_WARP_ROWS or KERN_GEMV_KSPLIT */
template <bool SW>
static int gemv_launch(const uint16_t *W, const uint16_t *X, float *Y, uint16_t *act, int M,
                       int T, int K, int accumulate, int form, cudaStream_t s)
{
    const uint4 *w = (const uint4 *)W, *x = (const uint4 *)X;
    int K8 = K / 8;
    if (form == KERN_GEMV_AUTO)
        form = T <= KERN_GEMV_KSPLIT_MAX_T ? KERN_GEMV_KSPLIT : KERN_GEMV_WARP_ROWS;
    int ks = form == KERN_GEMV_KSPLIT;
    switch (T) {
#define GV_CASE(n)                                                                            \
    case n: {                                                                                 \
        int rpb = ks ? gv_shape<n>::R : GV_WARPS * gv_shape<n>::R;                            \
        if (ks)                                                                               \
            gemv_ks_kernel<n, SW><<<(M + rpb - 1) / rpb, GV_WARPS * 32, 0, s>>>(w, x, Y, act, \
                                                                               M, K8,         \
                                                                               accumulate);   \
        else                                                                                  \
            gemv_kernel<n, SW><<<(M + rpb - 1) / rpb, GV_WARPS * 32, 0, s>>>(w, x, Y, act, M, \
                                                                            K8, accumulate);  \
        break;                                                                                \
    }
        GV_CASE(1);
        GV_CASE(2);
        GV_CASE(3);
        GV_CASE(4);
        GV_CASE(5);
        GV_CASE(6);
        GV_CASE(7);
        GV_CASE(8);
#undef GV_CASE
    }
    return KU_LAUNCH_RESULT();
}

extern "C" int kern_gemv(const uint16_t *W, const uint16_t *X, float *Y, int M, int T, int K,
                         int accumulate, cudaStream_t s)
{
    if (!kern_gemv_ok(W, X, M, T, K))
        return (int)cudaErrorInvalidValue;
    return gemv_launch<false>(W, X, Y, NULL, M, T, K, accumulate, KERN_GEMV_AUTO, s);
}

extern "C" int kern_gemv_form(const uint16_t *W, const uint16_t *X, float *Y, int M, int T,
                              int K, int accumulate, int form, cudaStream_t s)
{
    if (!kern_gemv_ok(W, X, M, T, K) || form < KERN_GEMV_AUTO || form > KERN_GEMV_KSPLIT)
        return (int)cudaErrorInvalidValue;
    return gemv_launch<false>(W, X, Y, NULL, M, T, K, accumulate, form, s);
}

extern "C" int kern_gemv_swiglu(const uint16_t *W, const uint16_t *X, uint16_t *act, int M,
                                int T, int K, cudaStream_t s)
{
    if (!kern_gemv_ok(W, X, M, T, K) || M % 2)
        return (int)cudaErrorInvalidValue;
    return gemv_launch<true>(W, X, NULL, act, M, T, K, 0, KERN_GEMV_AUTO, s);
}
