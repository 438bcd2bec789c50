/* kernels/cuda/rmsnorm.h: RMSNorm variants on the GPU (fp32 math):
 * fused residual add + norm (pre-norm layers), norm-then-add (post-norm
 * attention layers), and a strided in-place norm used for the whole-vector
 * q/k norm. Called from the engine thread; asynchronous on the stream. */
#ifndef DS_KERNELS_CUDA_RMSNORM_H
#define DS_KERNELS_CUDA_RMSNORM_H
#include <stdint.h>
#include <cuda_runtime_api.h>
#ifdef __cplusplus
extern "C" {
#endif
/* For each output row r < R with source row i = rows ? rows[r] : r:
 *   if add: x[i] += add[i]   (x, add fp32 (., C); add may be NULL)
 *   out[r] = bf16(w * x[i] / sqrt(mean(x[i]^2) + eps))      out bf16 (R, C)
 * When rows is given, add must be NULL (the gather is read-only). w fp32 (C). */
int kern_add_rmsnorm(float *x, const float *add, const float *w, const int32_t *rows, int R,
                     int C, float eps, uint16_t *out, cudaStream_t s);

/* Post-norm residual: x[t] += w * a[t] / sqrt(mean(a[t]^2) + eps); a is read
 * with row stride a_stride. If xb is not NULL it receives bf16(x[t]) (the next
 * GEMM's input). x fp32 (T, C). */
int kern_rmsnorm_add(float *x, const float *a, int a_stride, const float *w, int T, int C,
                     float eps, uint16_t *xb, cudaStream_t s);

/* In place over a strided fp32 slice: v = p + t*stride, n values:
 * v = w * v / sqrt(mean(v^2) + eps). The whole-vector q and k norms. */
int kern_rmsnorm_inplace(float *p, int stride, const float *w, int T, int n, float eps,
                         cudaStream_t s);
#ifdef __cplusplus
}
#endif
#endif
