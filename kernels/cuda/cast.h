/* kernels/cuda/cast.h: fp32 -> bf16 conversion (a GEMM input from the fp32
 * residual), random fills for the benchmark's generated weights, and a
 * timed spin for the benchmark's step profile.
 * Called from the engine thread; asynchronous on the stream. */
#ifndef DS_KERNELS_CUDA_CAST_H
#define DS_KERNELS_CUDA_CAST_H
#include <stddef.h>
#include <stdint.h>
#include <cuda_runtime_api.h>
#ifdef __cplusplus
extern "C" {
#endif
/* dst[i] = bf16(src[i]) for i < n (round to nearest even). */
int kern_f32_to_bf16(const float *src, size_t n, uint16_t *dst, cudaStream_t s);
/* dst[i] = bf16(lo + (hi-lo)*u_i), u_i uniform in [0,1) from a counter hash of
 * (seed, i): the same seed always gives the same tensor. */
int kern_fill_uniform_bf16(uint16_t *dst, size_t n, uint64_t seed, float lo, float hi,
                           cudaStream_t s);
int kern_fill_uniform_f32(float *dst, size_t n, uint64_t seed, float lo, float hi,
                          cudaStream_t s);
/* Occupy the stream for about us microseconds (one thread sleeping on the
 * global timer; returns at once on the emulator). The bench's step profile
 * queues a step behind it so that the GPU runs the step's kernels back to
 * back, as a graph replay would, instead of waiting on each launch. */
int kern_spin_us(int us, cudaStream_t s);
#ifdef __cplusplus
}
#endif
#endif
