/* kernels/cpu/matmul.c: the CPU reference GEMM, y = x W^T in fp32.
 * Runs on the engine thread; fans out over OpenMP threads.
 *
 * Blocking: the output is cut into tiles of TT tokens x TO output rows. A tile
 * keeps TO weight rows (TO * n_in floats: 32 x 11008 x 4 B = 1.4 MiB at most
 * for the 7B; a few KiB for the tiny models) hot in cache while the TT token
 * rows stream past, so each weight row is read from memory once per TT tokens
 * instead of once per token. Inside a tile, 2 tokens x 4 outputs are computed
 * together (8 vector accumulators of 8 partial sums each: each x load serves 4
 * outputs, each w load 2 tokens), 16 GFLOP/s on one core of the dev box vs 7
 * for one dot at a time. No -ffast-math is needed: the order is explicit.
 * The order of the additions depends only on n_in, never on T, tiling or
 * threads: that is what makes batching exact.
 */
#include "kernels/cpu/matmul.h"
#include "kernels/cpu/par.h"

#include <omp.h>
#include <stdint.h>
#include <string.h>

enum { TT = 8, TO = 32, LANES = 8 };

/* 8 fp32 lanes (one AVX register; two SSE ones on older targets). GNU vector
 * extension: lane-wise mul then add, exactly the scalar operations. */
typedef float v8f __attribute__((vector_size(32)));

/* Vectors are passed by pointer, never by value: builds without AVX
 * (MODE=asan, generic x86-64) would otherwise change the ABI (-Wpsabi). */
static inline void ld8(v8f *v, const float *p) { memcpy(v, p, sizeof *v); }

/* Lanes summed pairwise, then the tail: the fixed reference order. */
static inline float finish(const v8f *accp, const float *restrict a, const float *restrict b, int i,
                           int n)
{
    const v8f acc = *accp;
    float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

/* One dot product of length n in the fixed reference order: 8 lanes of
 * partial sums over full groups of 8, lanes summed pairwise, then the tail. */
static inline float dot_fixed(const float *restrict a, const float *restrict b, int n)
{
    v8f acc = {0};
    int i = 0;
    for (; i + LANES <= n; i += LANES) {
        v8f p, q;
        ld8(&p, a + i);
        ld8(&q, b + i);
        acc += p * q;
    }
    return finish(&acc, a, b, i, n);
}

/* 2 tokens x 4 outputs at once: 8 accumulators in registers, each x load
 * reused 4 times and each w load twice. Every output keeps dot_fixed's
 * order, so the result is bit-identical to computing it alone. */
static inline void dot_2x4(float *restrict y0, float *restrict y1, const float *restrict x0,
                           const float *restrict x1, const float *restrict w, int64_t ldw, int n)
{
    const float *w0 = w, *w1 = w + ldw, *w2 = w + 2 * ldw, *w3 = w + 3 * ldw;
    v8f a00 = {0}, a01 = {0}, a02 = {0}, a03 = {0}, a10 = {0}, a11 = {0}, a12 = {0}, a13 = {0};
    int i = 0;
    for (; i + LANES <= n; i += LANES) {
        v8f p, q, v;
        ld8(&p, x0 + i);
        ld8(&q, x1 + i);
        ld8(&v, w0 + i), a00 += p * v, a10 += q * v;
        ld8(&v, w1 + i), a01 += p * v, a11 += q * v;
        ld8(&v, w2 + i), a02 += p * v, a12 += q * v;
        ld8(&v, w3 + i), a03 += p * v, a13 += q * v;
    }
    y0[0] = finish(&a00, x0, w0, i, n), y1[0] = finish(&a10, x1, w0, i, n);
    y0[1] = finish(&a01, x0, w1, i, n), y1[1] = finish(&a11, x1, w1, i, n);
    y0[2] = finish(&a02, x0, w2, i, n), y1[2] = finish(&a12, x1, w2, i, n);
    y0[3] = finish(&a03, x0, w3, i, n), y1[3] = finish(&a13, x1, w3, i, n);
}

void kern_cpu_matmul(float *y, int ldy, const float *x, int ldx, const float *w,
                     int T, int n_in, int n_out, int nthreads)
{
    if (T <= 0 || n_out <= 0) return;
    int nt_tiles = (T + TT - 1) / TT;
    int no_tiles = (n_out + TO - 1) / TO;
    int64_t ntiles = (int64_t)nt_tiles * no_tiles;
    /* Small products are not worth waking the thread team. */
    int64_t work = (int64_t)T * n_in * n_out;
    int par = work >= KERN_CPU_PAR_WORK && ntiles > 1;
    int nth = nthreads > 0 ? nthreads : omp_get_max_threads();
#pragma omp parallel for schedule(static) if (par) num_threads(nth)
    for (int64_t tile = 0; tile < ntiles; tile++) {
        /* Output-row tiles vary fastest: neighbouring threads share the same
         * token rows and split the weights. */
        int to = (int)(tile % no_tiles), tt = (int)(tile / no_tiles);
        int o0 = to * TO, o1 = o0 + TO < n_out ? o0 + TO : n_out;
        int t0 = tt * TT, t1 = t0 + TT < T ? t0 + TT : T;
        int t = t0;
        for (; t + 2 <= t1; t += 2) {
            const float *x0 = x + (int64_t)t * ldx, *x1 = x0 + ldx;
            float *y0 = y + (int64_t)t * ldy, *y1 = y0 + ldy;
            int o = o0;
            for (; o + 4 <= o1; o += 4) dot_2x4(y0 + o, y1 + o, x0, x1, w + (int64_t)o * n_in, n_in, n_in);
            for (; o < o1; o++) {
                y0[o] = dot_fixed(x0, w + (int64_t)o * n_in, n_in);
                y1[o] = dot_fixed(x1, w + (int64_t)o * n_in, n_in);
            }
        }
        for (; t < t1; t++) { /* odd token left (decode: the only one) */
            const float *xr = x + (int64_t)t * ldx;
            float *yr = y + (int64_t)t * ldy;
            for (int o = o0; o < o1; o++) yr[o] = dot_fixed(xr, w + (int64_t)o * n_in, n_in);
        }
    }
}
