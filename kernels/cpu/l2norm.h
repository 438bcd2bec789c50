/* kernels/cpu/l2norm.h: per-head L2 normalisation (the GDN q/k norm). Engine thread.
 *
 * defines: kern_cpu_l2norm
 */
#ifndef DS_KERNELS_CPU_L2NORM_H
#define DS_KERNELS_CPU_L2NORM_H

#ifdef __cplusplus
extern "C" {
#endif

/* For each of the nvec vectors of length d at x + j*d (contiguous):
 *   x <- scale * x / sqrt(sum x^2 + eps)
 * in place. MODEL.md: eps 1e-6 sits inside the square root; q then also
 * takes scale = Dk^-0.5 (k takes 1). */
void kern_cpu_l2norm(float *x, int nvec, int d, float eps, float scale);

#ifdef __cplusplus
}
#endif
#endif
