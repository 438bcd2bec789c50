/* kernels/cpu/rmsnorm.c: RMSNorm (MODEL.md: w * x / sqrt(mean(x^2) + eps)).
 * Engine thread; rows are independent, so OpenMP splits big batches.
 *
 * torch computes x * rsqrt(var + eps) and then multiplies by w; we do the
 * same in that order (x * inv first, then w) so the rounding matches closely.
 */
#include "kernels/cpu/rmsnorm.h"
#include "kernels/cpu/par.h"

#include <math.h>
#include <stdint.h>

void kern_cpu_rmsnorm(float *y, const float *x, int ld, const float *w, int T, int n, float eps)
{
#pragma omp parallel for schedule(static) if ((int64_t)T * n >= KERN_CPU_PAR_WORK)
    for (int t = 0; t < T; t++) {
        const float *xr = x + (int64_t)t * ld;
        float *yr = y + (int64_t)t * ld;
        double ss = 0.0;
        for (int i = 0; i < n; i++) ss += (double)xr[i] * xr[i];
        float inv = (float)(1.0 / sqrt(ss / n + (double)eps));
        for (int i = 0; i < n; i++) yr[i] = w[i] * (xr[i] * inv);
    }
}
