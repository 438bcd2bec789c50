/* kernels/cuda/kv_write.h: append the step's new K and V rows into the paged
 * bf16 KV cache of one attention layer. Called from the engine thread;
 * asynchronous on the stream. */
#ifndef DS_KERNELS_CUDA_KV_WRITE_H
#define DS_KERNELS_CUDA_KV_WRITE_H
#include <stdint.h>
#include <cuda_runtime_api.h>
#ifdef __cplusplus
extern "C" {
#endif
/* Cache layout (per layer, K and V alike): bf16 [block][Hkv][bs][D].
 * slot_map[t] = block * bs + offset for token t (built from the block table
 * and position on the host; < 0 skips the token). Token t's k is at
 * qkv + t*stride + k_off (Hkv*D values), v at v_off. */
int kern_kv_write(const float *qkv, int stride, int k_off, int v_off, int T, int Hkv, int D,
                  int bs, const int32_t *slot_map, uint16_t *kc, uint16_t *vc, cudaStream_t s);
#ifdef __cplusplus
}
#endif
#endif
