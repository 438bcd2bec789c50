/* kernels/cuda/kern_util.h: device helpers shared by the CUDA kernels (bf16
 * conversion, warp and block reductions) and the launch-error convention.
 *
 * Included only from .cu files (device code). Every kern_* launcher in this
 * folder is asynchronous on the given stream and returns the launch status
 * (cudaGetLastError) as an int: 0 on success; it never synchronizes.
 */
#ifndef DS_KERNELS_CUDA_KERN_UTIL_H
#define DS_KERNELS_CUDA_KERN_UTIL_H

#ifdef __CUDACC__
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <stdint.h>

typedef __nv_bfloat16 kbf16;

static __device__ __forceinline__ float ku_bf(uint16_t h)
{
    return __uint_as_float(((unsigned)h) << 16);
}

static __device__ __forceinline__ uint16_t ku_to_bf(float f)
{
    return __bfloat16_as_ushort(__float2bfloat16_rn(f));
}

/* GDN state element I/O for an fp32 or bf16 state slot (--ssm-state-dtype):
 * ku_state<ST>::ld widens to fp32, ::st rounds to nearest even. */
template <typename ST> struct ku_state;
template <> struct ku_state<float> {
    static __device__ __forceinline__ float ld(const float *p) { return *p; }
    static __device__ __forceinline__ void st(float *p, float v) { *p = v; }
};
template <> struct ku_state<uint16_t> {
    static __device__ __forceinline__ float ld(const uint16_t *p) { return ku_bf(*p); }
    static __device__ __forceinline__ void st(uint16_t *p, float v) { *p = ku_to_bf(v); }
};

static __device__ __forceinline__ float ku_warp_sum(float v)
{
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

static __device__ __forceinline__ float ku_warp_max(float v)
{
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* Sum over the whole block (blockDim.x a multiple of 32, at most 1024).
 * scratch: 32 floats of shared memory. Every thread gets the total. */
static __device__ __forceinline__ float ku_block_sum(float v, float *scratch)
{
    int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = ku_warp_sum(v);
    __syncthreads();
    if (lane == 0)
        scratch[wid] = v;
    __syncthreads();
    float t = lane < nw ? scratch[lane] : 0.0f;
    return ku_warp_sum(t);
}

static __device__ __forceinline__ float ku_silu(float x)
{
    return x / (1.0f + expf(-x));
}

#define KU_LAUNCH_RESULT() ((int)cudaGetLastError())
#endif
#endif
