/* kernels/cpu/gdn_gate.h: GDN gating: log decay g and beta from the a and b
 * projections (MODEL.md GDN step 5). Engine thread.
 *
 * defines: kern_cpu_gdn_gate
 */
#ifndef DS_KERNELS_CPU_GDN_GATE_H
#define DS_KERNELS_CPU_GDN_GATE_H

#ifdef __cplusplus
extern "C" {
#endif

/* For t < T, h < Hv, with a = a_in[t*ld + h], b = b_in[t*ld + h]:
 *   g[t*Hv + h]    = -exp(A_log[h]) * softplus(a + dt_bias[h])   (<= 0)
 *   beta[t*Hv + h] = sigmoid(b), times 2 when neg_eig (allow_neg_eigval). */
void kern_cpu_gdn_gate(float *g, float *beta, const float *a_in, const float *b_in, int ld,
                       const float *A_log, const float *dt_bias, int neg_eig, int T, int Hv);

#ifdef __cplusplus
}
#endif
#endif
