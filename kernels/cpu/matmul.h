/* kernels/cpu/matmul.h: fp32 matrix product y = x W^T, the CPU reference GEMM.
 * Called from the engine thread; parallel inside with OpenMP.
 *
 * defines: kern_cpu_matmul
 */
#ifndef DS_KERNELS_CPU_MATMUL_H
#define DS_KERNELS_CPU_MATMUL_H

#ifdef __cplusplus
extern "C" {
#endif

/* y[t*ldy + o] = sum_i x[t*ldx + i] * w[o*n_in + i] for t < T, o < n_out.
 * x (T, n_in) with row stride ldx; w (n_out, n_in) row-major (a torch Linear
 * weight); y (T, n_out) with row stride ldy; y must not alias x or w.
 * Every output element is summed in the same fixed order whatever T, the
 * tiling or the thread count, so one token gives bit-identical results alone
 * or inside any batch (chunked prefill equals one shot exactly).
 * nthreads <= 0: OpenMP's default. */
void kern_cpu_matmul(float *y, int ldy, const float *x, int ldx, const float *w,
                     int T, int n_in, int n_out, int nthreads);

#ifdef __cplusplus
}
#endif
#endif
