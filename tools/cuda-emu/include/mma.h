/* tools/cuda-emu/include/mma.h: emulated nvcuda::wmma (test tool; see
 * emu_device.h). Every thread holds the WHOLE tile (num_elements = rows*cols),
 * so load/store are done redundantly per thread (stores write identical
 * values) and a kernel may only touch fragment elements uniformly (e.g. scale
 * all of them) or through load/store, which is what the real layout-agnostic
 * code must do anyway. mma_sync is warp-collective as on the GPU: lane 0
 * computes d = a*b + c (fp32 accumulation) and the warp copies its result, so
 * the emulator does not pay the product 32 times. Shapes: bf16 (and half-free)
 * m16n16k16, tf32 m16n16k8; fp32 accumulators. */
#ifndef EMU_MMA_H
#define EMU_MMA_H
#include <string.h>

#include <type_traits>

#include "cuda_bf16.h"

namespace nvcuda {
namespace wmma {
struct row_major {};
struct col_major {};
struct matrix_a {};
struct matrix_b {};
struct accumulator {};
namespace precision {
struct tf32 {};
}
enum layout_t { mem_row_major, mem_col_major };

template <class Use, int M, int N, int K> struct emu_shape;
template <int M, int N, int K> struct emu_shape<matrix_a, M, N, K> {
    enum { rows = M, cols = K };
};
template <int M, int N, int K> struct emu_shape<matrix_b, M, N, K> {
    enum { rows = K, cols = N };
};
template <int M, int N, int K> struct emu_shape<accumulator, M, N, K> {
    enum { rows = M, cols = N };
};

template <class Use, int M, int N, int K, class T, class Layout = void> struct fragment {
    enum { rows = emu_shape<Use, M, N, K>::rows, cols = emu_shape<Use, M, N, K>::cols };
    enum { num_elements = rows * cols };
    float x[num_elements]; /* row-major tile, fp32 whatever T is */
};

static inline float emu_el(const float *p, size_t i) { return p[i]; }
static inline float emu_el(const __nv_bfloat16 *p, size_t i)
{
    uint32_t u = (uint32_t)p[i].x << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
/* tf32: the source is fp32 memory; the operand keeps 10 mantissa bits
 * (the kernel rounds with __float_to_tf32, as CUDA requires). */
template <class Use, int M, int N, int K, class T, class L, class P>
static inline void load_matrix_sync(fragment<Use, M, N, K, T, L> &f, const P *p, unsigned ldm)
{
    typedef fragment<Use, M, N, K, T, L> F;
    const bool col = std::is_same<L, col_major>::value;
    for (int r = 0; r < F::rows; r++)
        for (int c = 0; c < F::cols; c++)
            f.x[r * F::cols + c] = emu_el(p, col ? (size_t)c * ldm + r : (size_t)r * ldm + c);
}
template <int M, int N, int K, class T>
static inline void load_matrix_sync(fragment<accumulator, M, N, K, T> &f, const float *p,
                                    unsigned ldm, layout_t l)
{
    for (int r = 0; r < M; r++)
        for (int c = 0; c < N; c++)
            f.x[r * N + c] = p[l == mem_col_major ? (size_t)c * ldm + r : (size_t)r * ldm + c];
}
template <int M, int N, int K, class T>
static inline void store_matrix_sync(float *p, const fragment<accumulator, M, N, K, T> &f,
                                     unsigned ldm, layout_t l)
{
    for (int r = 0; r < M; r++)
        for (int c = 0; c < N; c++)
            p[l == mem_col_major ? (size_t)c * ldm + r : (size_t)r * ldm + c] = f.x[r * N + c];
}
template <class Use, int M, int N, int K, class T, class L>
static inline void fill_fragment(fragment<Use, M, N, K, T, L> &f, float v)
{
    for (int i = 0; i < fragment<Use, M, N, K, T, L>::num_elements; i++)
        f.x[i] = v;
}

#define EMU_MMA_MAXW 32
template <int M, int N, int K, class TA, class LA, class LB, class TC>
static inline void mma_sync(fragment<accumulator, M, N, K, TC> &d,
                            const fragment<matrix_a, M, N, K, TA, LA> &a,
                            const fragment<matrix_b, M, N, K, TA, LB> &b,
                            const fragment<accumulator, M, N, K, TC> &c)
{
    static float buf[EMU_MMA_MAXW][M * N];
    float *r = buf[(emu_tid.x >> 5) % EMU_MMA_MAXW];
    EMU_FENCE();
    if ((emu_tid.x & 31) == 0) {
        for (int i = 0; i < M; i++) {
            float acc[N];
            for (int j = 0; j < N; j++)
                acc[j] = c.x[i * N + j];
            for (int k = 0; k < K; k++) {
                float av = a.x[i * K + k];
                for (int j = 0; j < N; j++)
                    acc[j] += av * b.x[k * N + j];
            }
            for (int j = 0; j < N; j++)
                r[i * N + j] = acc[j];
        }
    }
    EMU_FENCE();
    emu_syncwarp();
    EMU_FENCE();
    memcpy(d.x, r, sizeof d.x);
    EMU_FENCE();
    emu_syncwarp();
    EMU_FENCE();
}
} // namespace wmma
} // namespace nvcuda

static inline float __float_to_tf32(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7f800000u) != 0x7f800000u)
        u = (u + 0xfffu + ((u >> 13) & 1u)) & ~0x1fffu;
    memcpy(&f, &u, 4);
    return f;
}
#endif
