/* kernels/cuda/swiglu.cu: out = silu(gate) * up, elementwise over the fused
 * gate|up GEMM output (row-interleaved: gate f and up f adjacent, one 8-byte
 * load per output). Grid-stride; engine thread launches it. */
#include "kernels/cuda/swiglu.h"
#include "kernels/cuda/kern_util.h"

static __global__ void swiglu_kernel(const float *gu, long long n, int F, uint16_t *out)
{
    for (long long j = blockIdx.x * (long long)blockDim.x + threadIdx.x; j < n;
         j += (long long)gridDim.x * blockDim.x) {
        long long t = j / F;
        int f = (int)(j - t * F);
        float2 v = ((const float2 *)(gu + t * 2 * F))[f];
        out[j] = ku_to_bf(ku_silu(v.x) * v.y);
    }
}

extern "C" int kern_swiglu(const float *gu, int T, int F, uint16_t *out, cudaStream_t s)
{
    long long n = (long long)T * F;
    if (n <= 0)
        return 0;
    long long blocks = (n + 255) / 256;
    if (blocks > 65536)
        blocks = 65536;
    swiglu_kernel<<<(int)blocks, 256, 0, s>>>(gu, n, F, out);
    return KU_LAUNCH_RESULT();
}
