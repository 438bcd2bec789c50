/* kernels/cpu/conv1d.h: the GDN short convolution: depthwise, causal, no bias,
 * followed by SiLU, with a rolling conv state. Engine thread.
 *
 * defines: kern_cpu_conv1d_silu
 */
#ifndef DS_KERNELS_CPU_CONV1D_H
#define DS_KERNELS_CPU_CONV1D_H

#ifdef __cplusplus
extern "C" {
#endif

/* One sequence's T new rows of u (T, CD) with row stride ldu:
 *   out[t][c] = silu(sum_j w[c*K + j] * u_{t-K+1+j}[c])
 * where rows before t = 0 come from state (K-1, CD): state[r] holds
 * u_{r-(K-1)}, oldest first (zeros for a fresh sequence: the caller clears
 * the state when cache_len is 0). Afterwards state holds the last K-1 inputs
 * (from the old state when T < K-1). out (T, CD) with stride ldo must not
 * alias u. w (CD, K) is the fused q|k|v depthwise kernel. */
void kern_cpu_conv1d_silu(float *out, int ldo, const float *u, int ldu, float *state,
                          const float *w, int T, int CD, int K);

#ifdef __cplusplus
}
#endif
#endif
