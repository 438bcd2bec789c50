/* kernels/cpu/gdn_recurrent.h: the gated delta rule, token by token (MODEL.md
 * GDN step 6). Engine thread; value heads run in parallel.
 *
 * defines: kern_cpu_gdn_recurrent
 */
#ifndef DS_KERNELS_CPU_GDN_RECURRENT_H
#define DS_KERNELS_CPU_GDN_RECURRENT_H

#ifdef __cplusplus
extern "C" {
#endif

/* One sequence, T tokens. Per token t and value head h (key head
 * kh = h / (Hv/Hk)), with q, k already L2-normalised (q also scaled):
 *   S_h = exp(g[t,h]) * S_h
 *   delta = beta[t,h] * (v - S_h^T k)
 *   S_h = S_h + k delta^T
 *   o[t, h] = S_h^T q
 * q, k: row t at q + t*ldq, key head kh at + kh*Dk (same for k with ldk);
 * v: row t at v + t*ldv, head h at + h*Dv; g, beta (T, Hv); S (Hv, Dk, Dv)
 * fp32, updated in place; o (T, Hv*Dv) with row stride ldo.
 * snap: NULL, or T pointers; snap[t] (when non-NULL) receives a copy of S
 * (Hv*Dk*Dv floats) after token t (speculative verify). */
void kern_cpu_gdn_recurrent(float *o, int ldo, const float *q, int ldq, const float *k, int ldk,
                            const float *v, int ldv, const float *g, const float *beta, float *S,
                            int T, int Hk, int Hv, int Dk, int Dv, float *const *snap);

#ifdef __cplusplus
}
#endif
#endif
