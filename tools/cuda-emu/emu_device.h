/* tools/cuda-emu/emu_device.h: force-included into every translated .cu file
 * (see translate.py). Maps the CUDA C++ device subset our kernels use onto
 * the CPU emulator: each CUDA thread of a block is a fiber, blocks run one
 * after another (so __shared__ = static storage), __syncthreads/__syncwarp
 * and warp shuffles are cooperative barriers. 1-D blocks only. */
#ifndef EMU_DEVICE_H
#define EMU_DEVICE_H
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <functional>
#include "cuda_runtime.h"
#include "cuda_bf16.h"

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static
#define __align__(n) __attribute__((aligned(n)))

struct emu_thread_idx { unsigned x, y, z; };
extern emu_thread_idx emu_tid;
extern dim3 emu_bid, emu_bdim, emu_gdim;
#define threadIdx emu_tid
#define blockIdx emu_bid
#define blockDim emu_bdim
#define gridDim emu_gdim

void emu_syncthreads(void);
void emu_syncwarp(void);
uint64_t emu_shfl_u64(uint64_t v, int src_lane, int xor_mode);
/* The compiler barriers matter: __shared__ arrays are function-local statics
 * that other fibers write while this one is switched out, and an optimizing
 * compiler would otherwise keep their values in registers across the switch. */
#define EMU_FENCE() asm volatile("" ::: "memory")
static inline void __syncthreads(void) { EMU_FENCE(); emu_syncthreads(); EMU_FENCE(); }
static inline void __syncwarp(unsigned m = 0xffffffffu) { (void)m; EMU_FENCE(); emu_syncwarp(); EMU_FENCE(); }
/* read-only / streaming load hints: plain loads here */
template <class T> static inline T __ldg(const T *p) { return *p; }
template <class T> static inline T __ldcs(const T *p) { return *p; }
template <class T> static inline T __shfl_xor_sync(unsigned, T v, int o)
{
    uint64_t u = 0;
    memcpy(&u, &v, sizeof v);
    EMU_FENCE();
    u = emu_shfl_u64(u, o, 1);
    EMU_FENCE();
    T r;
    memcpy(&r, &u, sizeof r);
    return r;
}
template <class T> static inline T __shfl_sync(unsigned, T v, int src)
{
    uint64_t u = 0;
    memcpy(&u, &v, sizeof v);
    EMU_FENCE();
    u = emu_shfl_u64(u, src, 0);
    EMU_FENCE();
    T r;
    memcpy(&r, &u, sizeof r);
    return r;
}
static inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
static inline int min(int a, int b) { return a < b ? a : b; }
static inline int max(int a, int b) { return a > b ? a : b; }
void emu_launch(dim3 g, dim3 b, const std::function<void()> &f);
#endif
