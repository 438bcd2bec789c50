/* kernels/cuda/embed.h: token embedding gather on the GPU.
 * Called from the engine thread; asynchronous on the stream. */
#ifndef DS_KERNELS_CUDA_EMBED_H
#define DS_KERNELS_CUDA_EMBED_H
#include <stdint.h>
#include <cuda_runtime_api.h>
#ifdef __cplusplus
extern "C" {
#endif
/* x[t*C + c] = float(table[tokens[t]*C + c]) for t < T.
 * table: bf16 (V, C); tokens: device int32 [T], each in [0, V) (the engine
 * validates on the host). Returns 0 or a cudaError_t. */
int kern_embed(const uint16_t *table, const int32_t *tokens, int T, int C, float *x,
               cudaStream_t s);
#ifdef __cplusplus
}
#endif
#endif
