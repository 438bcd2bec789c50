/* kernels/cuda/gdn_chunk_dev.cuh: device pieces shared by the chunked GDN
 * kernels (gdn_chunk.cu: prep and scan; gdn_chunk_split.cu: the split
 * variant's output kernel): the workspace layout, the lane offsets of the
 * ldmatrix operand loads (the PTX itself is in warp_mma.cuh), and the scan's
 * shared-memory stage layout and loaders. Included only from those
 * .cu files (after kern_util.h); everything here is static. */
#ifndef DS_KERNELS_CUDA_GDN_CHUNK_DEV_CUH
#define DS_KERNELS_CUDA_GDN_CHUNK_DEV_CUH
#include "kernels/cuda/gdn_chunk.h"
#include "kernels/cuda/kern_util.h"
#include "kernels/cuda/warp_mma.cuh"
/* the key head dims the kernels are instantiated for (gc_shape_ok) */
#define GC_FOR_DK(X) X(16) X(32) X(48) X(64) X(80) X(96)
#define GC_C 64
#define GC_BV 64
#define GC_THREADS 128

/* bf16 elements per (chunk, head) in the workspace: Wn (64 x Dk), Q~ (64 x Dk),
 * K~^T (Dk x 64), Tu = T diag(beta) (64 x 64), P (64 x 64). */
static __host__ __device__ __forceinline__ size_t gc_per(int Dk)
{
    return (size_t)GC_C * (3 * Dk + 2 * GC_C);
}

/* Split variant (gdn_chunk.h): per (chunk, head), after the fused part of
 * the workspace, the chunk's initial state S^T and its Delta^T as bf16 mma A
 * fragments in register order: for value tile w (rows 16w..16w+15) and k16
 * block kk, lane l's four 32-bit registers at uint4 index (w*NB + kk)*32 + l;
 * NB = Dk/16 blocks of S^T, then 4 blocks (64 tokens) of Delta^T. A warp
 * stores and loads 512 contiguous bytes per block. uint4 units per (chunk,
 * head): */
static __host__ __device__ __forceinline__ size_t gc_split_per(int Dk, int Dv)
{
    return (size_t)(Dv / 16) * (Dk / 16 + 4) * 32;
}
/* Bytes of the fused variant's workspace (bf16 operands, then Gam_C per chunk
 * and head as fp32), and where the split variant's fragments start. */
static inline size_t gc_fused_bytes(int nchunks, int Hv, int Dk)
{
    return (size_t)nchunks * Hv * (gc_per(Dk) * 2 + 4);
}
static inline size_t gc_split_off(int nchunks, int Hv, int Dk)
{
    return (gc_fused_bytes(nchunks, Hv, Dk) + 255) & ~(size_t)255;
}


#ifdef DS_CUDA_EMU
#define GC_DSMEM_MAX (160 * 1024)
static unsigned char gc_emu_dsmem[GC_DSMEM_MAX];
#define GC_DSMEM(name) unsigned char *name = gc_emu_dsmem
#else
#define GC_DSMEM(name) extern __shared__ __align__(16) unsigned char name[]
#endif

/* The B operands of two adjacent n8 tiles with one ku_ldsm_x4: rows n0..n0+15
 * of a row-major [n][k] bf16 tile in shared memory, k block k0..k0+15, where
 * p = &tile[n0][k0] + gc_ldb_off(ld). b[0], b[1] are b0, b1 of rows n0..n0+7
 * (lane g = row n0 + g, k = k0 + 2t.. and k0 + 8 + 2t..), b[2], b[3] those of
 * rows n0+8..n0+15: what four 32-bit shared loads per lane would read, in one
 * instruction. Row strides of 104 and 72 bf16 keep the 8 row addresses of
 * each matrix on distinct bank groups. */
static __device__ __forceinline__ int gc_ldb_off(int ld)
{
    const int lane = threadIdx.x & 31;
    return ((lane & 7) + 8 * (lane >> 4)) * ld + 8 * ((lane >> 3) & 1);
}
/* The A operand of m16n8k16 (a 16x16 bf16 tile, row-major in shared memory
 * with row stride ld) with one ku_ldsm_x4: p = &tile[r0][k0] +
 * gc_lda_off(ld). The same offsets with ku_ldsm_x4_t load the B operands of
 * two adjacent n8 tiles from a [k][n] (n contiguous) tile, p = &tile[k0][n0]
 * + gc_lda_off(ld): b[0], b[1] for columns n0..n0+7, b[2], b[3] for
 * n0+8..n0+15 (the transposed load puts B[k = 2t, 2t+1][n = g] in a lane,
 * as the mma wants). */
static __device__ __forceinline__ int gc_lda_off(int ld)
{
    const int lane = threadIdx.x & 31;
    return ((lane & 7) + 8 * ((lane >> 3) & 1)) * ld + 8 * (lane >> 4);
}

/* Two n8 tiles' products from one B load: ku_ldsm_x4 at bp (gc_ldb_off
 * order), then c[0] += a b[0..1] and c[1] += a b[2..3]. */
static __device__ __forceinline__ void gc_mma_x2(float (*c)[4], const uint32_t a[4],
                                                 const kbf16 *bp)
{
    uint32_t b[4];
    ku_ldsm_x4(b, bp);
    ku_mma_bf16(c[0], a, b[0], b[1]);
    ku_mma_bf16(c[1], a, b[2], b[3]);
}

template <int DK> struct gc_stage {
    enum { LDK = DK + 8, LDT = GC_C + 8 };
    /* double-buffered part: Wn, Q~ (64 x LDK), K~^T (DK x LDT), P (64 x LDT) */
    enum { W = 0, Q = GC_C * LDK, KT = 2 * GC_C * LDK, P = 2 * GC_C * LDK + DK * LDT };
    enum { ELEMS = 2 * GC_C * LDK + DK * LDT + GC_C * LDT };
    /* single-buffered Tu (64 x LDT) after the two stages: needed by the
     * Delta products only, so the next chunk's copy starts after them */
    enum { TU = 2 * ELEMS, BYTES = (2 * ELEMS + GC_C * LDT) * 2 };
};

/* cp.async one chunk's Wn, Q~, K~^T and P into a stage (16-byte units);
 * WO = false (the split variant's states-only scan) skips Q~ and P, which
 * only the O products read. */
template <int DK, bool WO>
static __device__ __forceinline__ void gc_stage_load(kbf16 *st, const kbf16 *wp, int tid)
{
    typedef gc_stage<DK> L;
    constexpr int C = GC_C, RU = DK / 8, NW = C * RU, NKT = DK * (C / 8), NP = C * (C / 8);
    static_assert(NW % GC_THREADS == 0 && NKT % GC_THREADS == 0 && NP % GC_THREADS == 0,
                  "whole rounds");
    const kbf16 *Wn = wp, *Qg = wp + C * DK, *KtT = wp + 2 * C * DK, *Pg = wp + 3 * C * DK + C * C;
    /* fixed trip counts, constant divisors: no per-unit branch */
#pragma unroll
    for (int i = 0; i < NW / GC_THREADS; i++) { /* Wn then Q~: rows of Dk */
        int u = tid + i * GC_THREADS, r = u / RU, k = (u % RU) * 8;
        ku_cp_async16(st + L::W + r * L::LDK + k, Wn + (size_t)r * DK + k);
        if (WO)
            ku_cp_async16(st + L::Q + r * L::LDK + k, Qg + (size_t)r * DK + k);
    }
#pragma unroll
    for (int i = 0; i < NKT / GC_THREADS; i++) {
        int u = tid + i * GC_THREADS, d = u >> 3, k = (u & 7) * 8;
        ku_cp_async16(st + L::KT + d * L::LDT + k, KtT + d * C + k);
    }
    if (WO) {
#pragma unroll
        for (int i = 0; i < NP / GC_THREADS; i++) {
            int u = tid + i * GC_THREADS, r = u >> 3, k = (u & 7) * 8;
            ku_cp_async16(st + L::P + r * L::LDT + k, Pg + r * C + k);
        }
    }
}
/* cp.async one chunk's Tu into the Tu buffer */
template <int DK>
static __device__ __forceinline__ void gc_tu_load(kbf16 *smem, const kbf16 *wp, int tid)
{
    typedef gc_stage<DK> L;
    const kbf16 *Tu = wp + 3 * GC_C * DK;
#pragma unroll
    for (int i = 0; i < GC_C * (GC_C / 8) / GC_THREADS; i++) {
        int u = tid + i * GC_THREADS, r = u >> 3, k = (u & 7) * 8;
        ku_cp_async16(smem + L::TU + r * L::LDT + k, Tu + r * GC_C + k);
    }
}

/* O^T (16 value rows x the chunk's tokens) of one warp from its A fragments
 * sa (S^T at chunk start, NK = Dk/16 blocks) and da (Delta^T, 4 blocks) and
 * the B operands Q~ (64 x Dk, row stride ldq) and P (64 x 64, row stride ldp)
 * in shared memory: O^T = S^T Q~^T + Delta^T P^T, stored at ob[r * VD] and
 * ob[r * VD + 8] (ob = &o[tok0][h][vw + g]) for rows r < len. The fused scan
 * and the split variant's output kernel both run exactly this, so their o
 * agree bit for bit when given the same operands. */
template <int NK>
static __device__ __forceinline__ void gc_out_tile(const uint32_t (&sa)[NK][4],
                                                   const uint32_t (&da)[4][4], const kbf16 *Qs,
                                                   int ldq, const kbf16 *Ps, int ldp, float *ob,
                                                   size_t VD, int len, int g, int t)
{
    /* all 8 token tiles at once, k blocks outer: 8 independent accumulator
     * chains back to back keep the tensor pipe busy (one chain at a time
     * waits out the mma latency on every step). Q~ and P rows past len are
     * zero, so a short chunk needs no tile bounds, only the store guard. */
    float a[8][4];
#pragma unroll
    for (int j = 0; j < 8; j++)
        a[j][0] = a[j][1] = a[j][2] = a[j][3] = 0.0f;
    const kbf16 *qo = Qs + gc_ldb_off(ldq), *po = Ps + gc_ldb_off(ldp);
#pragma unroll
    for (int kk = 0; kk < NK; kk++)
#pragma unroll
        for (int jp = 0; jp < 4; jp++) /* token tiles 2jp, 2jp+1 */
            gc_mma_x2(&a[2 * jp], sa[kk], qo + 16 * jp * ldq + 16 * kk);
#pragma unroll
    for (int kk = 0; kk < 4; kk++) /* P lower triangular: tiles j >= 2 kk */
#pragma unroll
        for (int jp = kk; jp < 4; jp++)
            gc_mma_x2(&a[2 * jp], da[kk], po + 16 * jp * ldp + 16 * kk);
#pragma unroll
    for (int j = 0; j < 8; j++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
            int r = 8 * j + 2 * t + (e & 1);
            if (r < len)
                ob[(size_t)r * VD + 8 * (e >> 1)] = a[j][e];
        }
}

/* The split variant's output kernel over all chunks (gdn_chunk_split.cu),
 * reading Q~ and P of the prep workspace wk and the fragments at split that
 * the states-only scan stored. Returns the launch status. */
int gc_out_run(int Dk, const int32_t *plan, int N, int nchunks, int Hv, int Dv, float *o,
               const kbf16 *wk, const uint4 *split, cudaStream_t s);
#endif
