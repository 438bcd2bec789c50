/* kernels/cuda/rope.h: rotate-half rotary position embedding, in place.
 * Called from the engine thread; asynchronous on the stream. */
#ifndef DS_KERNELS_CUDA_ROPE_H
#define DS_KERNELS_CUDA_ROPE_H
#include <stdint.h>
#include <cuda_runtime_api.h>
#ifdef __cplusplus
extern "C" {
#endif
/* For every token t < T and head h < nheads, the D values at
 * p + t*stride + h*D are rotated (rotate-half form over the whole head):
 *   ang = positions[t] * inv_freq[i]   (fp32, i < D/2)
 *   (x_i, x_{i+D/2}) <- mscale * (x_i cos - x_{i+D/2} sin, x_{i+D/2} cos + x_i sin)
 * inv_freq: device fp32 [D/2], already holding any scaling (linear, llama3,
 * yarn); mscale: yarn attention factor, else 1. q and k heads are adjacent in
 * the fused projection, so one call covers both. */
int kern_rope(float *p, int stride, int nheads, int D, const int32_t *positions,
              const float *inv_freq, float mscale, int T, cudaStream_t s);
#ifdef __cplusplus
}
#endif
#endif
