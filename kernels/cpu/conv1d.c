/* kernels/cpu/conv1d.c: depthwise causal conv + SiLU with conv state (MODEL.md
 * GDN step 2). Engine thread. Channels are independent, so OpenMP splits them. */
#include "kernels/cpu/conv1d.h"
#include "kernels/cpu/par.h"

#include <stdint.h>

#include "kernels/cpu/act.h"

void kern_cpu_conv1d_silu(float *out, int ldo, const float *u, int ldu, float *state,
                          const float *w, int T, int CD, int K)
{
    int H = K - 1; /* history rows */
#pragma omp parallel for schedule(static) if ((int64_t)T * CD * K >= KERN_CPU_PAR_WORK)
    for (int c = 0; c < CD; c++) {
        const float *wc = w + (int64_t)c * K;
        for (int t = 0; t < T; t++) {
            float acc = 0.0f;
            for (int j = 0; j < K; j++) {
                int src = t - H + j; /* input row; < 0 reads the state */
                float x = src >= 0 ? u[(int64_t)src * ldu + c] : state[(int64_t)(H + src) * CD + c];
                acc += wc[j] * x;
            }
            out[(int64_t)t * ldo + c] = kern_cpu_silu(acc);
        }
        /* new state: the last H rows of [state; u] */
        if (T >= H) {
            for (int r = 0; r < H; r++) state[(int64_t)r * CD + c] = u[(int64_t)(T - H + r) * ldu + c];
        } else {
            for (int r = 0; r < H - T; r++) state[(int64_t)r * CD + c] = state[(int64_t)(r + T) * CD + c];
            for (int r = 0; r < T; r++) state[(int64_t)(H - T + r) * CD + c] = u[(int64_t)r * ldu + c];
        }
    }
}
