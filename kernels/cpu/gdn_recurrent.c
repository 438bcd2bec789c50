/* kernels/cpu/gdn_recurrent.c: the delta-rule recurrence, the reference for
 * both prefill and decode (the chunked WY form on the GPU is the same
 * function; here one code path for every case makes chunked prefill and
 * decode bit-identical to one shot). Engine thread; parallel over heads.
 *
 * Cost per token and head: ~4*Dk*Dv flops (2.2 MFLOP per 7B layer token),
 * small next to the projections, so no blocking is needed.
 */
#include "kernels/cpu/gdn_recurrent.h"
#include "kernels/cpu/par.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

void kern_cpu_gdn_recurrent(float *o, int ldo, const float *q, int ldq, const float *k, int ldk,
                            const float *v, int ldv, const float *g, const float *beta, float *S,
                            int T, int Hk, int Hv, int Dk, int Dv, float *const *snap)
{
    int ratio = Hv / Hk;
    int64_t hsz = (int64_t)Dk * Dv;
#pragma omp parallel if ((int64_t)T * Hv * hsz >= KERN_CPU_PAR_WORK)
    {
        float tmp[Dv]; /* delta (Dv is 192 at 7B shapes: 768 B of stack) */
#pragma omp for schedule(static)
        for (int h = 0; h < Hv; h++) {
            float *Sh = S + h * hsz;
            int kh = h / ratio;
            for (int t = 0; t < T; t++) {
                const float *qt = q + (int64_t)t * ldq + (int64_t)kh * Dk;
                const float *kt = k + (int64_t)t * ldk + (int64_t)kh * Dk;
                const float *vt = v + (int64_t)t * ldv + (int64_t)h * Dv;
                float decay = expf(g[(int64_t)t * Hv + h]);
                float bt = beta[(int64_t)t * Hv + h];
                /* decay, then kv_mem = S^T k (over the decayed S) */
                for (int j = 0; j < Dv; j++) tmp[j] = 0.0f;
                for (int i = 0; i < Dk; i++) {
                    float *row = Sh + (int64_t)i * Dv;
                    float ki = kt[i];
                    for (int j = 0; j < Dv; j++) {
                        row[j] *= decay;
                        tmp[j] += row[j] * ki;
                    }
                }
                for (int j = 0; j < Dv; j++) tmp[j] = (vt[j] - tmp[j]) * bt;
                /* rank-1 update, then o = S^T q over the updated S */
                float *ot = o + (int64_t)t * ldo + (int64_t)h * Dv;
                for (int j = 0; j < Dv; j++) ot[j] = 0.0f;
                for (int i = 0; i < Dk; i++) {
                    float *row = Sh + (int64_t)i * Dv;
                    float ki = kt[i], qi = qt[i];
                    for (int j = 0; j < Dv; j++) {
                        row[j] += ki * tmp[j];
                        ot[j] += row[j] * qi;
                    }
                }
                if (snap && snap[t]) memcpy(snap[t] + h * hsz, Sh, sizeof(float) * (size_t)hsz);
            }
        }
    }
}
