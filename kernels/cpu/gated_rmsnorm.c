/* kernels/cpu/gated_rmsnorm.c: o * rsqrt(mean(o^2) + eps) * w * silu(z), per
 * value head, in HF's order (normalise, weight, then gate). Engine thread. */
#include "kernels/cpu/gated_rmsnorm.h"
#include "kernels/cpu/par.h"

#include <math.h>
#include <stdint.h>

#include "kernels/cpu/act.h"

void kern_cpu_gated_rmsnorm(float *o, int ldo, const float *z, int ldz, const float *w, int T,
                            int H, int Dv, float eps)
{
#pragma omp parallel for schedule(static) if ((int64_t)T * H * Dv >= KERN_CPU_PAR_WORK)
    for (int t = 0; t < T; t++)
        for (int h = 0; h < H; h++) {
            float *oh = o + (int64_t)t * ldo + (int64_t)h * Dv;
            const float *zh = z + (int64_t)t * ldz + (int64_t)h * Dv;
            double ss = 0.0;
            for (int i = 0; i < Dv; i++) ss += (double)oh[i] * oh[i];
            float inv = (float)(1.0 / sqrt(ss / Dv + (double)eps));
            for (int i = 0; i < Dv; i++) oh[i] = (w[i] * (oh[i] * inv)) * kern_cpu_silu(zh[i]);
        }
}
