/* kernels/cuda/embed.cu: token embedding gather (bf16 table -> fp32 residual).
 * One block per token; engine thread launches it. */
#include "kernels/cuda/embed.h"
#include "kernels/cuda/kern_util.h"

static __global__ void embed_kernel(const uint16_t *table, const int32_t *tokens, int C,
                                    float *x)
{
    int t = blockIdx.x;
    const uint16_t *row = table + (size_t)tokens[t] * C;
    float *out = x + (size_t)t * C;
    for (int c = threadIdx.x; c < C; c += blockDim.x)
        out[c] = ku_bf(row[c]);
}

extern "C" int kern_embed(const uint16_t *table, const int32_t *tokens, int T, int C, float *x,
                          cudaStream_t s)
{
    if (T <= 0)
        return 0;
    embed_kernel<<<T, 256, 0, s>>>(table, tokens, C, x);
    return KU_LAUNCH_RESULT();
}
