/* kernels/cpu/l2norm.c: x / sqrt(sum x^2 + eps), as the FLA/HF l2norm
 * (x * rsqrt(sum + eps)), optionally scaled. Engine thread. */
#include "kernels/cpu/l2norm.h"

#include <math.h>
#include <stdint.h>

void kern_cpu_l2norm(float *x, int nvec, int d, float eps, float scale)
{
    for (int j = 0; j < nvec; j++) {
        float *v = x + (int64_t)j * d;
        double ss = 0.0;
        for (int i = 0; i < d; i++) ss += (double)v[i] * v[i];
        float inv = (float)(1.0 / sqrt(ss + (double)eps));
        /* HF: l2norm first (x * inv), then q * scale as a separate multiply. */
        for (int i = 0; i < d; i++) v[i] = (v[i] * inv) * scale;
    }
}
