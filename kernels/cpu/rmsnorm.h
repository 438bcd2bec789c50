/* kernels/cpu/rmsnorm.h: RMSNorm over rows, fp32. Engine thread.
 *
 * defines: kern_cpu_rmsnorm
 */
#ifndef DS_KERNELS_CPU_RMSNORM_H
#define DS_KERNELS_CPU_RMSNORM_H

#ifdef __cplusplus
extern "C" {
#endif

/* For t < T: y[t*ld + i] = w[i] * x[t*ld + i] / sqrt(mean_i(x^2) + eps), i < n.
 * y may equal x (in place). w (n). The mean is accumulated in double. */
void kern_cpu_rmsnorm(float *y, const float *x, int ld, const float *w, int T, int n, float eps);

#ifdef __cplusplus
}
#endif
#endif
