/* kernels/cuda/warp_mma.cuh: the warp-level tensor-core PTX our kernels share
 * (sm_80+): ldmatrix.x4 (plain and .trans), mma.sync m16n8k16 bf16 with fp32
 * accumulate, 16-byte cp.async (plain and zero-filling) with its group
 * commit and wait, and the bf16x2 pack of two floats. Under tools/cuda-emu
 * each is replaced by emu_warp_mma.h, which keeps the PTX ISA's per-lane
 * fragment layouts, so a kernel that takes the wrong element of a fragment
 * fails there as on the GPU. Included only from .cu files (after
 * kern_util.h); everything here is static inline device code. */
#ifndef DS_KERNELS_CUDA_WARP_MMA_CUH
#define DS_KERNELS_CUDA_WARP_MMA_CUH
#include <stdint.h>

#include "kernels/cuda/kern_util.h"
#ifdef DS_CUDA_EMU
#include "emu_warp_mma.h"
#endif

/* four 8x8 b16 matrices: lanes 8j..8j+7 give the row addresses of matrix j;
 * r[j] is the lane's part of it (row lane/4, elements 2(lane%4), +1) */
static __device__ __forceinline__ void ku_ldsm_x4(uint32_t r[4], const void *p)
{
#ifdef DS_CUDA_EMU
    emu_ldmatrix_x4(r, p, 0);
#else
    unsigned a = (unsigned)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(a));
#endif
}

/* the same, each matrix read transposed (rows 2(lane%4), +1 of column lane/4) */
static __device__ __forceinline__ void ku_ldsm_x4_t(uint32_t r[4], const void *p)
{
#ifdef DS_CUDA_EMU
    emu_ldmatrix_x4(r, p, 1);
#else
    unsigned a = (unsigned)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(a));
#endif
}

/* c += A (16x16, row) B (16x8, col), bf16 operands, fp32 accumulate */
static __device__ __forceinline__ void ku_mma_bf16(float c[4], const uint32_t a[4], uint32_t b0,
                                                   uint32_t b1)
{
#ifdef DS_CUDA_EMU
    emu_mma_16816(c, a, b0, b1);
#else
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
                 "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#endif
}

/* 16 bytes global -> shared, asynchronous (the emulator copies at once; the
 * kernel's waits and barriers still order it) */
static __device__ __forceinline__ void ku_cp_async16(void *dst, const void *src)
{
#ifdef DS_CUDA_EMU
    emu_cp_async16(dst, src, 1);
#else
    unsigned d = (unsigned)__cvta_generic_to_shared(dst);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(d), "l"(src) : "memory");
#endif
}

/* the same; valid == 0 zero-fills dst (src is not read) */
static __device__ __forceinline__ void ku_cp_async16_zfill(void *dst, const void *src, bool valid)
{
#ifdef DS_CUDA_EMU
    emu_cp_async16(dst, src, valid);
#else
    unsigned d = (unsigned)__cvta_generic_to_shared(dst);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(d), "l"(src),
                 "r"(valid ? 16 : 0)
                 : "memory");
#endif
}

static __device__ __forceinline__ void ku_cp_commit(void)
{
#ifndef DS_CUDA_EMU
    asm volatile("cp.async.commit_group;\n" ::: "memory");
#endif
}

/* wait until at most N of this thread's committed groups are pending */
template <int N> static __device__ __forceinline__ void ku_cp_wait(void)
{
#ifndef DS_CUDA_EMU
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
#endif
}

/* two floats as one bf16x2 register (lo in the low half), round to nearest even */
static __device__ __forceinline__ uint32_t ku_pack_bf2(float lo, float hi)
{
#ifdef DS_CUDA_EMU
    return (uint32_t)ku_to_bf(lo) | ((uint32_t)ku_to_bf(hi) << 16);
#else
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi); /* one F2FP.BF16.PACK_AB */
    return *(const uint32_t *)&v;
#endif
}
#endif
