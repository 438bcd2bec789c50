/* kernels/cpu/gdn_gate.c: g = -exp(A_log) * softplus(a + dt_bias),
 * beta = sigmoid(b) (x2 with allow_neg_eigval), in fp32 as HF. Engine thread. */
#include "kernels/cpu/gdn_gate.h"

#include <math.h>
#include <stdint.h>

#include "kernels/cpu/act.h"

void kern_cpu_gdn_gate(float *g, float *beta, const float *a_in, const float *b_in, int ld,
                       const float *A_log, const float *dt_bias, int neg_eig, int T, int Hv)
{
    for (int t = 0; t < T; t++)
        for (int h = 0; h < Hv; h++) {
            float a = a_in[(int64_t)t * ld + h], b = b_in[(int64_t)t * ld + h];
            g[(int64_t)t * Hv + h] = -expf(A_log[h]) * kern_cpu_softplus(a + dt_bias[h]);
            float be = kern_cpu_sigmoid(b);
            beta[(int64_t)t * Hv + h] = neg_eig ? be * 2.0f : be;
        }
}
