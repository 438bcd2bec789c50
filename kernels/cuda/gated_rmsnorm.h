/* kernels/cuda/gated_rmsnorm.h: the GDN output norm, per value head:
 * out = w * o / sqrt(mean(o^2) + eps) * silu(z). Called from the engine
 * thread; asynchronous on the stream. */
#ifndef DS_KERNELS_CUDA_GATED_RMSNORM_H
#define DS_KERNELS_CUDA_GATED_RMSNORM_H
#include <stdint.h>
#include <cuda_runtime_api.h>
#ifdef __cplusplus
extern "C" {
#endif
/* o fp32 (T, Hv*Dv); z fp32 row t at z + t*z_stride (Hv*Dv values);
 * w fp32 (Dv) shared by all heads; out bf16 (T, Hv*Dv). */
int kern_gated_rmsnorm(const float *o, const float *z, int z_stride, const float *w, int T,
                       int Hv, int Dv, float eps, uint16_t *out, cudaStream_t s);
#ifdef __cplusplus
}
#endif
#endif
