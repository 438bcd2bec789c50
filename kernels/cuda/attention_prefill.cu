/* kernels/cuda/attention_prefill.cu: causal attention for prefill tiles on
 * tensor cores (FlashAttention-2 forward over the paged bf16 KV cache).
 *
 * Grid (nptiles * pieces, Hq), NW warps per block. A block takes BM rows of
 * one prefill tile (KERN_ATTN_PT consecutive query tokens of one sequence at
 * most, cut into pieces of BM = 16*NW*MT rows) and one query head h (kv head
 * h / (Hq/Hkv)); warp w owns MT row tiles of 16 (rows 16*(w + NW*mt)). The
 * default shape is FlashAttention-2's: BM = 128, 4 warps, 2 row tiles each,
 * Q in shared memory; the keys
 * 0..(last query position) are walked in blocks of BN = 64 from block 0 up:
 *   S = Q K^T      mma.sync m16n8k16 bf16 -> fp32, Q and K fragments by
 *                  ldmatrix (Q stays in registers in the MT = 1 shapes)
 *   online softmax in fp32 on the accumulator registers (exp2 with the scale
 *                  folded in; a row's max and sum reduce over the 4 lanes
 *                  that share it); masked keys are -inf, never multiplied
 *   O += P V       P re-packed from the S accumulators straight into A
 *                  fragments (the C and A layouts line up), V fragments by
 *                  ldmatrix.trans
 * K and V tiles are staged by cp.async into one buffer each: V of block j is
 * loaded while S = Q K_j runs, K of block j+1 while softmax and P V_j run.
 * Shared rows are D bf16 in 16-byte chunks stored at chunk ^ (row & 7), so
 * the 8 row addresses of every ldmatrix hit 8 different bank groups.
 * Keys past the last query position are zero-filled (never read from the
 * cache: that memory may hold anything) and masked. Block 0 comes first, so
 * every row has seen key 0 before any fully masked block: the running max is
 * finite from the first block on and no NaN guard is needed.
 *
 * Precision: Q is rounded to bf16 (unscaled), P to bf16 for P V, everything
 * else (scores, max, sum, output accumulator) fp32; output bf16.
 * Under tools/cuda-emu the PTX is replaced by emu_warp_mma.h, which keeps the
 * PTX per-lane fragment layouts. Engine thread launches it (kern_attention).
 */
#include <math.h>
#include <stdint.h>

#include "kernels/cuda/attention.h"
#include "kernels/cuda/kern_util.h"
#include "kernels/cuda/warp_mma.cuh"

#define PF_BN 64
/* variant 1: 64-row blocks of 4 warps, Q in registers (2-3 blocks per SM);
 * 2: 128-row blocks of 8 warps, Q in registers (half the K/V traffic from L2,
 * one block per SM); 3: 128-row blocks of 4 warps with two row tiles each and
 * Q in shared memory (FlashAttention-2's shape; 64 KB shared at D = 128) */
#define KERN_ATTN_PF_DEFAULT 3

/* warp-level PTX: kernels/cuda/warp_mma.cuh */

/* 2^x (ex2.approx: 2 ulp, 2^-inf = 0) */
static __device__ __forceinline__ float fast_exp2(float x)
{
#ifdef DS_CUDA_EMU
    return exp2f(x);
#else
    float r;
    asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(r) : "f"(x));
    return r;
#endif
}

/* element offset of 16-byte chunk c of row r in a swizzled [rows][D] tile */
template <int D>
static __device__ __forceinline__ int sw_off(int r, int c)
{
    return r * D + ((c ^ (r & 7)) << 3);
}

/* Stage key block kb (rows kb*BN .. +BN-1 of kv head kvh) of cache c into
 * dst; rows past maxpos are zero-filled. Thread th handles chunk th % CH of
 * rows th / CH + k * (NT / CH). */
template <int D, int NT>
static __device__ __forceinline__ void load_kv_block(uint16_t *dst, const uint16_t *c,
                                                     const int32_t *bt, int kb, int maxpos,
                                                     int kvh, int Hkv, int bs, int th)
{
    constexpr int CH = D / 8, RSTEP = NT / CH;
    int ch = th % CH;
    /* block sizes are powers of two in practice: shifts, not divisions, in
     * this per-row address math (the kernel is issue-bound, not load-bound) */
    bool pow2 = (bs & (bs - 1)) == 0;
    int lg = __ffs(bs) - 1;
#pragma unroll
    for (int r = th / CH; r < PF_BN; r += RSTEP) {
        int p = kb * PF_BN + r;
        bool ok = p <= maxpos;
        const uint16_t *src = c;
        if (ok) {
            int blk = pow2 ? p >> lg : p / bs, off = pow2 ? p & (bs - 1) : p % bs;
            src = c + (((size_t)bt[blk] * Hkv + kvh) * bs + off) * D + ch * 8;
        }
        ku_cp_async16_zfill(dst + sw_off<D>(r, ch), src, ok);
    }
}

/* shared bytes: K and V tiles, plus the Q tile when it stays in shared */
template <int D, int NW, int MT>
static constexpr int pf_smem_bytes()
{
    return (2 * PF_BN * D + (MT == 1 ? 0 : 16 * NW * MT * D)) * 2;
}

/* NW warps; each warp owns MT row tiles of 16 (rows 16*(w + NW*mt) + ...).
 * MT == 1 keeps the Q fragments in registers for the whole loop (staged
 * through the K/V buffers); MT > 1 keeps Q in shared memory and reloads the
 * A fragments per k-step, and every K/V fragment feeds MT row tiles (half
 * the shared traffic per mma at MT = 2: the FlashAttention-2 shape). */
template <int D, int NW, int MT>
static __global__ void __launch_bounds__(NW * 32)
attn_prefill_kernel(struct kern_attn_args a)
{
    constexpr int BM = 16 * NW * MT, BN = PF_BN, CH = D / 8, NT = NW * 32;
    constexpr int KD = D / 16;  /* k-steps of Q K^T, n-tile pairs of P V */
    constexpr int NS = BN / 8;  /* n-tiles of S */
    constexpr bool QREG = MT == 1;
    static_assert(!QREG || BM <= 2 * BN, "the Q tile is staged in the K/V buffers");
    static_assert(KERN_ATTN_PT % BM == 0, "prefill tiles are whole blocks of BM rows");
    /* [0, BN*D): K tile, [BN*D, 2*BN*D): V tile, then the Q tile (MT > 1);
     * with QREG the Q tile is staged in the V (or K and V) tile first */
#ifdef DS_CUDA_EMU
    static uint4 smem4[pf_smem_bytes<D, NW, MT>() / 16];
#else
    extern __shared__ uint4 smem4[]; /* uint4: 16-byte aligned */
#endif
    uint16_t *smem = (uint16_t *)smem4;
    uint16_t *sK = smem, *sV = smem + BN * D;
    uint16_t *sQ = !QREG ? smem + 2 * BN * D : BM <= BN ? sV : smem;

    int th = threadIdx.x, lane = th & 31, w = th >> 5, g = lane >> 2, tq = lane & 3;
    /* a prefill tile (KERN_ATTN_PT tokens at most) is PIECES blocks of BM
     * rows; the later piece (more keys) is launched first */
    constexpr int PIECES = KERN_ATTN_PT / BM;
    int tile = blockIdx.x / PIECES, piece = PIECES - 1 - (int)(blockIdx.x % PIECES);
    int h = blockIdx.y;
    int t0 = a.tiles[2 * tile] + piece * BM, cnt = a.tiles[2 * tile + 1] - piece * BM;
    if (cnt <= 0)
        return; /* the whole block: before any barrier */
    cnt = cnt < BM ? cnt : BM;
    int kvh = h / (a.Hq / a.Hkv);
    const int32_t *bt = a.block_table + (size_t)a.tok_seq[t0] * a.max_blocks;
    int minpos = 0x7fffffff, maxpos = -1;
    for (int i = 0; i < cnt; i++) {
        int p = a.positions[t0 + i];
        minpos = p < minpos ? p : minpos;
        maxpos = p > maxpos ? p : maxpos;
    }
    /* the lane's rows (two per row tile); padding rows (past cnt) see every
     * key, read zero queries and are never stored */
    int qp[MT][2];
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int hf = 0; hf < 2; hf++) {
            int r = 16 * (w + NW * mt) + g + 8 * hf;
            qp[mt][hf] = r < cnt ? a.positions[t0 + r] : maxpos;
        }
    /* the last key each of the warp's row tiles sees (warp-uniform; -1 for
     * a tile of padding rows only): key blocks past it are skipped for that
     * tile (their scores would all be masked: the tail of the diagonal in
     * the upper row tiles), which leaves its rows finite garbage, unstored */
    int qlast[MT];
#pragma unroll
    for (int mt = 0; mt < MT; mt++) {
        int r = 16 * (w + NW * mt) + g;
        int v = max(r < cnt ? qp[mt][0] : -1, r + 8 < cnt ? qp[mt][1] : -1);
#pragma unroll
        for (int sh = 1; sh < 32; sh <<= 1)
            v = max(v, __shfl_xor_sync(0xffffffffu, v, sh));
        qlast[mt] = v;
    }

    constexpr bool EARLY_K = !QREG || BM <= BN; /* K_0 loads while Q is staged */
    if (EARLY_K) {
        load_kv_block<D, NT>(sK, a.kc, bt, 0, maxpos, kvh, a.Hkv, a.bs, th);
        ku_cp_commit();
    }
    /* Q tile: fp32 rows -> bf16, swizzled */
    for (int i = th; i < BM * CH; i += NT) {
        int r = i / CH, c = i % CH;
        uint32_t u[4] = {0u, 0u, 0u, 0u};
        if (r < cnt) {
            const float *src = a.q + (size_t)(t0 + r) * a.q_stride + (size_t)h * D + c * 8;
#pragma unroll
            for (int j = 0; j < 4; j++)
                u[j] = ku_pack_bf2(src[2 * j], src[2 * j + 1]);
        }
        uint32_t *d = (uint32_t *)(sQ + sw_off<D>(r, c));
#pragma unroll
        for (int j = 0; j < 4; j++)
            d[j] = u[j];
    }
    __syncthreads();
    uint32_t qf[QREG ? KD : 1][4];
    if (QREG) {
        int row = 16 * w + (lane & 15);
#pragma unroll
        for (int kk = 0; kk < KD; kk++)
            ku_ldsm_x4(qf[QREG ? kk : 0], sQ + sw_off<D>(row, 2 * kk + (lane >> 4)));
    }
    if (!EARLY_K) {
        __syncthreads(); /* Q read out of the K/V buffers */
        load_kv_block<D, NT>(sK, a.kc, bt, 0, maxpos, kvh, a.Hkv, a.bs, th);
        ku_cp_commit();
    }

    float o[MT][KD * 2][4];
    float m[MT][2], l[MT][2]; /* m in log2 units; l lane-partial */
#pragma unroll
    for (int mt = 0; mt < MT; mt++) {
#pragma unroll
        for (int j = 0; j < KD * 2; j++)
            o[mt][j][0] = o[mt][j][1] = o[mt][j][2] = o[mt][j][3] = 0.0f;
        m[mt][0] = m[mt][1] = -INFINITY;
        l[mt][0] = l[mt][1] = 0.0f;
    }
    const float sl = a.scale * 1.4426950408889634f;
    int nkb = maxpos / BN + 1;
    for (int kb = 0; kb < nkb; kb++) {
        ku_cp_wait<0>();
        __syncthreads(); /* K_kb landed; every warp is done with sV */
        load_kv_block<D, NT>(sV, a.vc, bt, kb, maxpos, kvh, a.Hkv, a.bs, th);
        ku_cp_commit();

        float s[MT][NS][4];
#pragma unroll
        for (int mt = 0; mt < MT; mt++)
#pragma unroll
            for (int j = 0; j < NS; j++)
                s[mt][j][0] = s[mt][j][1] = s[mt][j][2] = s[mt][j][3] = 0.0f;
#pragma unroll
        for (int kk = 0; kk < KD; kk++) {
            uint32_t qa[MT][4];
            if (!QREG) {
#pragma unroll
                for (int mt = 0; mt < MT; mt++)
                    ku_ldsm_x4(qa[mt], sQ + sw_off<D>(16 * (w + NW * mt) + (lane & 15),
                                                   2 * kk + (lane >> 4)));
            }
#pragma unroll
            for (int jp = 0; jp < NS / 2; jp++) {
                uint32_t b[4];
                int row = 16 * jp + (lane & 7) + ((lane >> 4) << 3);
                ku_ldsm_x4(b, sK + sw_off<D>(row, 2 * kk + ((lane >> 3) & 1)));
#pragma unroll
                for (int mt = 0; mt < MT; mt++) {
                    if (kb * BN > qlast[mt])
                        continue; /* stays 0, then fully masked: p = 0 */
                    const uint32_t *A = QREG ? qf[QREG ? kk : 0] : qa[mt];
                    ku_mma_bf16(s[mt][2 * jp], A, b[0], b[1]);
                    ku_mma_bf16(s[mt][2 * jp + 1], A, b[2], b[3]);
                }
            }
        }
        ku_cp_wait<0>();
        __syncthreads(); /* V_kb landed; every warp is done with sK */
        if (kb + 1 < nkb) {
            load_kv_block<D, NT>(sK, a.kc, bt, kb + 1, maxpos, kvh, a.Hkv, a.bs, th);
            ku_cp_commit();
        }

        /* online softmax over this block's scores; c[0..1] row g, c[2..3] g+8 */
        bool need_mask = kb * BN + BN - 1 > minpos;
#pragma unroll
        for (int mt = 0; mt < MT; mt++) {
            float mx0 = -INFINITY, mx1 = -INFINITY;
#pragma unroll
            for (int j = 0; j < NS; j++) {
                if (need_mask) {
#pragma unroll
                    for (int e = 0; e < 4; e++) {
                        int key = kb * BN + 8 * j + 2 * tq + (e & 1);
                        if (key > qp[mt][e >> 1])
                            s[mt][j][e] = -INFINITY;
                    }
                }
                mx0 = fmaxf(mx0, fmaxf(s[mt][j][0], s[mt][j][1]));
                mx1 = fmaxf(mx1, fmaxf(s[mt][j][2], s[mt][j][3]));
            }
            mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
            mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
            mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
            mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
            /* raw scores until here; the scale (> 0) keeps the max, and
             * s*sl - m is one fma below */
            float mn0 = fmaxf(m[mt][0], mx0 * sl), mn1 = fmaxf(m[mt][1], mx1 * sl); /* finite */
            float c0 = fast_exp2(m[mt][0] - mn0), c1 = fast_exp2(m[mt][1] - mn1);
            m[mt][0] = mn0;
            m[mt][1] = mn1;
            float ps0 = 0.0f, ps1 = 0.0f;
#pragma unroll
            for (int j = 0; j < NS; j++) {
                s[mt][j][0] = fast_exp2(fmaf(s[mt][j][0], sl, -mn0));
                s[mt][j][1] = fast_exp2(fmaf(s[mt][j][1], sl, -mn0));
                s[mt][j][2] = fast_exp2(fmaf(s[mt][j][2], sl, -mn1));
                s[mt][j][3] = fast_exp2(fmaf(s[mt][j][3], sl, -mn1));
                ps0 += s[mt][j][0] + s[mt][j][1];
                ps1 += s[mt][j][2] + s[mt][j][3];
            }
            l[mt][0] = l[mt][0] * c0 + ps0;
            l[mt][1] = l[mt][1] * c1 + ps1;
            /* once a row's max settles (most blocks of a long row) c is
             * exactly 1: the warp skips the rescale when all its lanes do */
            if (c0 != 1.0f || c1 != 1.0f) {
#pragma unroll
                for (int j = 0; j < KD * 2; j++) {
                    o[mt][j][0] *= c0;
                    o[mt][j][1] *= c0;
                    o[mt][j][2] *= c1;
                    o[mt][j][3] *= c1;
                }
            }
        }

        /* O += P V: P's accumulators are already in A-fragment order */
#pragma unroll
        for (int kk = 0; kk < BN / 16; kk++) {
            uint32_t pa[MT][4];
#pragma unroll
            for (int mt = 0; mt < MT; mt++) {
                pa[mt][0] = ku_pack_bf2(s[mt][2 * kk][0], s[mt][2 * kk][1]);
                pa[mt][1] = ku_pack_bf2(s[mt][2 * kk][2], s[mt][2 * kk][3]);
                pa[mt][2] = ku_pack_bf2(s[mt][2 * kk + 1][0], s[mt][2 * kk + 1][1]);
                pa[mt][3] = ku_pack_bf2(s[mt][2 * kk + 1][2], s[mt][2 * kk + 1][3]);
            }
            int row = 16 * kk + (lane & 7) + (((lane >> 3) & 1) << 3);
#pragma unroll
            for (int dp = 0; dp < KD; dp++) {
                uint32_t b[4];
                ku_ldsm_x4_t(b, sV + sw_off<D>(row, 2 * dp + (lane >> 4)));
#pragma unroll
                for (int mt = 0; mt < MT; mt++) {
                    if (kb * BN > qlast[mt])
                        continue; /* p = 0 */
                    ku_mma_bf16(o[mt][2 * dp], pa[mt], b[0], b[1]);
                    ku_mma_bf16(o[mt][2 * dp + 1], pa[mt], b[2], b[3]);
                }
            }
        }
    }

    size_t ld = (size_t)a.Hq * D;
    uint16_t *ob = a.out + (size_t)h * D + 2 * tq;
#pragma unroll
    for (int mt = 0; mt < MT; mt++) {
        float l0 = l[mt][0], l1 = l[mt][1];
        l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
        l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
        l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
        l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
        float i0 = 1.0f / l0, i1 = 1.0f / l1;
        int r0 = 16 * (w + NW * mt) + g, r1 = r0 + 8;
#pragma unroll
        for (int j = 0; j < KD * 2; j++) {
            if (r0 < cnt)
                *(uint32_t *)(ob + (size_t)(t0 + r0) * ld + 8 * j) =
                    ku_pack_bf2(o[mt][j][0] * i0, o[mt][j][1] * i0);
            if (r1 < cnt)
                *(uint32_t *)(ob + (size_t)(t0 + r1) * ld + 8 * j) =
                    ku_pack_bf2(o[mt][j][2] * i1, o[mt][j][3] * i1);
        }
    }
}

extern "C" int kern_attention_prefill_supported(int D)
{
    return D == 64 || D == 128;
}

template <int D, int NW, int MT>
static int launch_prefill(const struct kern_attn_args *a, cudaStream_t s)
{
    constexpr int smem = pf_smem_bytes<D, NW, MT>();
#ifndef DS_CUDA_EMU
    if (smem > 48 * 1024) { /* opt in to more than 48 KB, once per kernel */
        static int opted;
        if (!opted) {
            cudaError_t e = cudaFuncSetAttribute(attn_prefill_kernel<D, NW, MT>,
                                                 cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
            if (e != cudaSuccess)
                return (int)e;
            opted = 1;
        }
    }
#endif
    dim3 grid(a->nptiles * (KERN_ATTN_PT / (16 * NW * MT)), a->Hq);
    attn_prefill_kernel<D, NW, MT><<<grid, NW * 32, smem, s>>>(*a);
    return KU_LAUNCH_RESULT();
}

template <int D>
static int launch_variant(const struct kern_attn_args *a, int variant, cudaStream_t s)
{
    switch (variant) {
    case 1: return launch_prefill<D, 4, 1>(a, s);
    case 2: return launch_prefill<D, 8, 1>(a, s);
    default: return launch_prefill<D, 4, 2>(a, s);
    }
}

extern "C" int kern_attention_prefill_variant(const struct kern_attn_args *a, int variant,
                                              cudaStream_t s)
{
    if (a->nptiles <= 0)
        return 0;
    if (!kern_attention_prefill_supported(a->D) || a->Hkv <= 0 || a->Hq % a->Hkv || !a->tiles ||
        a->nptiles > a->ntiles || a->Hq > 65535 || a->nptiles > (1 << 24) || variant < 0 ||
        variant > KERN_ATTN_PF_VARIANTS)
        return (int)cudaErrorInvalidValue;
    if (variant == 0)
        variant = KERN_ATTN_PF_DEFAULT;
    return a->D == 64 ? launch_variant<64>(a, variant, s) : launch_variant<128>(a, variant, s);
}

extern "C" int kern_attention_prefill(const struct kern_attn_args *a, cudaStream_t s)
{
    return kern_attention_prefill_variant(a, 0, s);
}
