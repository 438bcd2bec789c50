/* kernels/cuda/swiglu.h: SwiGLU activation of the fused gate|up projection.
 * Called from the engine thread; asynchronous on the stream. */
#ifndef DS_KERNELS_CUDA_SWIGLU_H
#define DS_KERNELS_CUDA_SWIGLU_H
#include <stdint.h>
#include <cuda_runtime_api.h>
#ifdef __cplusplus
extern "C" {
#endif
/* gu: fp32 (T, 2F), 8-byte aligned, gate and up interleaved: element 2f of a
 * row is gate f, 2f+1 up f (the CUDA backend stores the fused weight's rows
 * that way so that the decode GEMV can apply SwiGLU itself, gemv.h);
 * out: bf16 (T, F), out = silu(gate) * up. */
int kern_swiglu(const float *gu, int T, int F, uint16_t *out, cudaStream_t s);
#ifdef __cplusplus
}
#endif
#endif
