/* kernels/cuda/kv_write.cu: scatter new K/V rows (fp32, after norm and RoPE)
 * into the paged bf16 cache. One block per token. Engine thread launches it. */
#include "kernels/cuda/kv_write.h"
#include "kernels/cuda/kern_util.h"

static __global__ void kv_write_kernel(const float *qkv, int stride, int k_off, int v_off,
                                       int Hkv, int D, int bs, const int32_t *slot_map,
                                       uint16_t *kc, uint16_t *vc)
{
    int t = blockIdx.x;
    int sm = slot_map[t];
    if (sm < 0)
        return;
    int blk = sm / bs, off = sm - blk * bs;
    const float *row = qkv + (size_t)t * stride;
    for (int j = threadIdx.x; j < Hkv * D; j += blockDim.x) {
        int h = j / D, d = j - h * D;
        size_t dst = (((size_t)blk * Hkv + h) * bs + off) * D + d;
        kc[dst] = ku_to_bf(row[k_off + j]);
        vc[dst] = ku_to_bf(row[v_off + j]);
    }
}

extern "C" int kern_kv_write(const float *qkv, int stride, int k_off, int v_off, int T, int Hkv,
                             int D, int bs, const int32_t *slot_map, uint16_t *kc, uint16_t *vc,
                             cudaStream_t s)
{
    if (T <= 0)
        return 0;
    kv_write_kernel<<<T, 256, 0, s>>>(qkv, stride, k_off, v_off, Hkv, D, bs, slot_map, kc, vc);
    return KU_LAUNCH_RESULT();
}
