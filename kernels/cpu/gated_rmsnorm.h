/* kernels/cpu/gated_rmsnorm.h: the GDN output norm: per value head RMSNorm
 * (eps 1e-5, one weight shared by all heads), then the silu(z) gate
 * (MODEL.md GDN step 7, norm before gate). Engine thread.
 *
 * defines: kern_cpu_gated_rmsnorm
 */
#ifndef DS_KERNELS_CPU_GATED_RMSNORM_H
#define DS_KERNELS_CPU_GATED_RMSNORM_H

#ifdef __cplusplus
extern "C" {
#endif

/* For t < T, h < H, the Dv values o_h at o + t*ldo + h*Dv, gate z_h likewise:
 *   o_h <- w * (o_h / sqrt(mean(o_h^2) + eps)) * silu(z_h)   in place. w (Dv). */
void kern_cpu_gated_rmsnorm(float *o, int ldo, const float *z, int ldz, const float *w, int T,
                            int H, int Dv, float eps);

#ifdef __cplusplus
}
#endif
#endif
