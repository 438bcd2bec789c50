/* kernels/cuda/cast.cu: elementwise fp32->bf16 cast and counter-hash random
 * fills (splitmix64 of seed and index: stateless, so any grid shape gives the
 * same values), and a timed spin for the benchmark's step profile. Engine
 * thread (and the benchmark) launch them. */
#include "kernels/cuda/cast.h"
#include "kernels/cuda/kern_util.h"

static __global__ void f32_to_bf16_kernel(const float *src, size_t n, uint16_t *dst)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        dst[i] = ku_to_bf(src[i]);
}

static __device__ __forceinline__ float hash_unit(uint64_t seed, uint64_t i)
{
    uint64_t z = seed + 0x9e3779b97f4a7c15ull * (i + 1);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (float)(z >> 40) * (1.0f / 16777216.0f);
}

static __global__ void fill_bf16_kernel(uint16_t *dst, size_t n, uint64_t seed, float lo,
                                        float hi)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        dst[i] = ku_to_bf(lo + (hi - lo) * hash_unit(seed, i));
}

static __global__ void fill_f32_kernel(float *dst, size_t n, uint64_t seed, float lo, float hi)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        dst[i] = lo + (hi - lo) * hash_unit(seed, i);
}

static int grid_for(size_t n)
{
    size_t b = (n + 255) / 256;
    return b > 32768 ? 32768 : (int)(b ? b : 1);
}

extern "C" int kern_f32_to_bf16(const float *src, size_t n, uint16_t *dst, cudaStream_t s)
{
    if (!n)
        return 0;
    f32_to_bf16_kernel<<<grid_for(n), 256, 0, s>>>(src, n, dst);
    return KU_LAUNCH_RESULT();
}

extern "C" int kern_fill_uniform_bf16(uint16_t *dst, size_t n, uint64_t seed, float lo, float hi,
                                      cudaStream_t s)
{
    if (!n)
        return 0;
    fill_bf16_kernel<<<grid_for(n), 256, 0, s>>>(dst, n, seed, lo, hi);
    return KU_LAUNCH_RESULT();
}

extern "C" int kern_fill_uniform_f32(float *dst, size_t n, uint64_t seed, float lo, float hi,
                                     cudaStream_t s)
{
    if (!n)
        return 0;
    fill_f32_kernel<<<grid_for(n), 256, 0, s>>>(dst, n, seed, lo, hi);
    return KU_LAUNCH_RESULT();
}

/* one thread waits on the global nanosecond timer: keeps the stream busy so
 * that the host queues a whole step behind it */
static __global__ void spin_kernel(unsigned long long ns)
{
#ifndef DS_CUDA_EMU
    unsigned long long t0, t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t0));
    do {
        __nanosleep(1000);
        asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    } while (t - t0 < ns);
#else
    (void)ns;
#endif
}

extern "C" int kern_spin_us(int us, cudaStream_t s)
{
    spin_kernel<<<1, 1, 0, s>>>((unsigned long long)(us > 0 ? us : 0) * 1000ull);
    return KU_LAUNCH_RESULT();
}
