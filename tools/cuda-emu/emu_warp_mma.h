/* tools/cuda-emu/emu_warp_mma.h: the CPU emulator's version of the warp-level
 * tensor-core PTX the prefill attention kernel uses (test tool; included by a
 * .cu file only under DS_CUDA_EMU, after emu_device.h):
 *   ldmatrix.sync.aligned.m8n8.x4[.trans].shared.b16
 *   mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32
 *   cp.async.cg.shared.global 16 bytes (with src-size 0 = zero fill)
 * Each lane keeps exactly the registers the PTX ISA gives it (fragment
 * layouts of "Matrix fragments for mma.m16n8k16" and "ldmatrix"), so a kernel
 * that picks the wrong element from a fragment fails here as on the GPU. Lanes
 * exchange their registers through a per-warp buffer between two warp
 * barriers (the emulator's __syncwarp), like the hardware's crossbar.
 * cp.async copies synchronously; commit/wait are no-ops (the kernel's own
 * __syncthreads still orders the copies against the readers). */
#ifndef EMU_WARP_MMA_H
#define EMU_WARP_MMA_H
#include <stdint.h>
#include <string.h>

#include "emu_device.h"

struct emu_warp_xchg {
    const void *ptr[32];
    uint32_t reg[32][6];
};
/* one per warp of a block (at most 32 warps); blocks run one at a time */
static emu_warp_xchg emu_xchg[32];

/* r[j] = the lane's part of 8x8 matrix j, whose rows lanes 8j..8j+7 address:
 * row lane/4, elements 2*(lane%4), +1 (low half = lower column); with trans
 * the matrix is read transposed: rows 2*(lane%4), +1 of column lane/4. */
static inline void emu_ldmatrix_x4(uint32_t r[4], const void *p, int trans)
{
    int lane = threadIdx.x & 31;
    emu_warp_xchg *x = &emu_xchg[threadIdx.x >> 5];
    x->ptr[lane] = p;
    __syncwarp();
    for (int j = 0; j < 4; j++) {
        if (!trans) {
            const uint16_t *row = (const uint16_t *)x->ptr[j * 8 + lane / 4];
            r[j] = (uint32_t)row[2 * (lane % 4)] | ((uint32_t)row[2 * (lane % 4) + 1] << 16);
        } else {
            const uint16_t *ra = (const uint16_t *)x->ptr[j * 8 + 2 * (lane % 4)];
            const uint16_t *rb = (const uint16_t *)x->ptr[j * 8 + 2 * (lane % 4) + 1];
            r[j] = (uint32_t)ra[lane / 4] | ((uint32_t)rb[lane / 4] << 16);
        }
    }
    __syncwarp();
}

static inline float emu_bf_half(uint32_t u, int hi)
{
    uint32_t b = hi ? (u & 0xffff0000u) : (u << 16);
    float f;
    memcpy(&f, &b, 4);
    return f;
}

/* c += A (16x16, row) * B (16x8, col), fp32 accumulate. Lane l (g = l/4,
 * t = l%4) holds a[0] = A[g][2t..], a[1] = A[g+8][2t..], a[2] = A[g][2t+8..],
 * a[3] = A[g+8][2t+8..]; b0 = B[2t..][g], b1 = B[2t+8..][g];
 * c[0..1] = C[g][2t..2t+1], c[2..3] = C[g+8][2t..2t+1]. */
static inline void emu_mma_16816(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1)
{
    int lane = threadIdx.x & 31;
    emu_warp_xchg *x = &emu_xchg[threadIdx.x >> 5];
    for (int i = 0; i < 4; i++)
        x->reg[lane][i] = a[i];
    x->reg[lane][4] = b0;
    x->reg[lane][5] = b1;
    __syncwarp();
    int g = lane >> 2, t = lane & 3;
    for (int e = 0; e < 4; e++) {
        int row = g + (e >= 2 ? 8 : 0), col = 2 * t + (e & 1);
        float acc = c[e];
        for (int k = 0; k < 16; k++) {
            int la = (row % 8) * 4 + (k % 8) / 2, ra = (row >= 8) + 2 * (k >= 8);
            int lb = col * 4 + (k % 8) / 2, rb = 4 + (k >= 8);
            acc = fmaf(emu_bf_half(x->reg[la][ra], k & 1), emu_bf_half(x->reg[lb][rb], k & 1),
                       acc);
        }
        c[e] = acc;
    }
    __syncwarp();
}

/* the integer intrinsic the same kernel uses (1-based lowest set bit) */
static inline int __ffs(int x) { return __builtin_ffs(x); }

static inline void emu_cp_async16(void *dst, const void *src, int valid)
{
    if (valid)
        memcpy(dst, src, 16);
    else
        memset(dst, 0, 16);
}
#endif
