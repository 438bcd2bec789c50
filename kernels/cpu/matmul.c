/* kernels/cpu/matmul.c: the CPU reference GEMM, y = x W^T in fp32.
 * Runs on the engine thread; fans out over OpenMP threads.
 *
 * Blocking: the output is cut into tiles of TT tokens x TO output rows. A tile
 * keeps TO weight rows (TO * n_in floats, e.g. 64 x 4096 x 4 B = 1 MiB at
 * most for the 7B; a few KiB for the tiny models) hot in cache while the TT
 * token rows stream past, so each weight row is read from memory once per
 * TT tokens instead of once per token. Inside a tile, dot products run over
 * 8 independent partial sums, which the compiler turns into one vector
 * register of accumulators (no -ffast-math needed: the order is explicit).
 * The order of the additions depends only on n_in, never on T, tiling or
 * threads: that is what makes batching exact.
 */
#include "kernels/cpu/matmul.h"
#include "kernels/cpu/par.h"

#include <omp.h>
#include <stdint.h>

enum { TT = 8, TO = 32, LANES = 8 };

/* One dot product of length n in the fixed reference order: 8 lanes of
 * partial sums over full groups of 8, lanes summed pairwise, then the tail. */
static inline float dot_fixed(const float *restrict a, const float *restrict b, int n)
{
    float acc[LANES] = {0};
    int i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int l = 0; l < LANES; l++) acc[l] += a[i + l] * b[i + l];
    float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (; i < n; i++) s += a[i] * b[i];
    return s;
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
        for (int t = t0; t < t1; t++) {
            const float *xr = x + (int64_t)t * ldx;
            float *yr = y + (int64_t)t * ldy;
            for (int o = o0; o < o1; o++) yr[o] = dot_fixed(xr, w + (int64_t)o * n_in, n_in);
        }
    }
}
