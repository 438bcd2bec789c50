/* kernels/cuda/attention.cu: paged causal attention with online softmax on
 * CUDA cores (decode rows and short chunks), the dispatch entry
 * kern_attention and its tile plan. Prefill tiles (chunks of at least
 * KERN_ATTN_PF_MIN tokens) go to the tensor-core kernel in
 * attention_prefill.cu; for head dims it does not run they come here, cut
 * into pieces of QT by grid z.
 *
 * Grid (ntiles*Hq, nsplit, pieces), 4 warps per block. A block takes one query tile
 * (up to QT = 8 consecutive tokens of one sequence) and one head; the keys
 * (positions 0..last query's position) are cut into tiles of 32; key tile i
 * goes to split i % nsplit and, inside it, to warp (i / nsplit) % 4. In a key
 * tile, lane j loads key j once (16-byte loads) and scores it against all
 * the tile's queries (held in shared memory, broadcast reads; decode steps,
 * whose tiles are all single rows, run a one-row instance); per query the
 * warp takes max and sum with shuffles; in P.V each lane owns D/32 output
 * dims and each value row is loaded once for all queries. Sharing K/V rows
 * across the query tile cuts the L2 traffic of long prefills by up to 8x.
 * Warps merge through shared memory; splits (small decode batches) merge in
 * a second small kernel. fp32 throughout; masked scores are never
 * exponentiated (select, not multiply). Engine thread launches it. */
#include <math.h>

#include "kernels/cuda/attention.h"
#include "kernels/cuda/kern_util.h"

#define ATT_WARPS 4
#define ATT_MAXD 256

static __device__ __forceinline__ const uint16_t *kv_row(const uint16_t *c, const int32_t *bt,
                                                         int p, int kvh, int Hkv, int bs, int D)
{
    int blk = bt[p / bs], off = p % bs;
    return c + (((size_t)blk * Hkv + kvh) * bs + off) * D;
}

#define QT KERN_ATTN_QT

/* Q: query rows per block, KERN_ATTN_QT, or 1 for decode steps (every tile
 * one row: no work on the seven empty rows). DPL = ceil(D / 32) value dims
 * per lane. The key row's 16-byte loads are issued together (ATT_KG at a
 * time) and value rows come ATT_VG at a time, so a key tile waits out a few
 * memory round trips rather than one per load. */
#define ATT_KG 16 /* key-row uint4 loads in flight per lane */
#define ATT_VG 8  /* value rows in flight per warp */
template <int DPL, int Q>
static __global__ void __launch_bounds__(ATT_WARPS * 32)
attention_kernel(struct kern_attn_args a)
{
    constexpr int NL = DPL * 4; /* uint4 loads covering DPL * 32 dims */
    constexpr int KG = NL < ATT_KG ? NL : ATT_KG;
    __shared__ float sq[Q][DPL * 32];
    __shared__ float sm_m[ATT_WARPS][Q], sm_l[ATT_WARPS][Q];
    __shared__ float sacc[ATT_WARPS][Q][DPL * 32];
    int D = a.D, th = threadIdx.x, lane = th & 31, w = th >> 5;
    int tile = blockIdx.x / a.Hq, h = blockIdx.x - tile * a.Hq;
    int split = blockIdx.y;
    int kvh = h / (a.Hq / a.Hkv);
    /* blockIdx.z: which Q-row piece of a longer (prefill) tile */
    int t0 = a.tiles[2 * tile] + Q * (int)blockIdx.z;
    int cnt = a.tiles[2 * tile + 1] - Q * (int)blockIdx.z;
    if (cnt <= 0)
        return;
    cnt = cnt < Q ? cnt : Q;
    int sq_ = a.tok_seq[t0];
    const int32_t *bt = a.block_table + (size_t)sq_ * a.max_blocks;
    int qpos[Q];
#pragma unroll
    for (int i = 0; i < Q; i++)
        qpos[i] = i < cnt ? a.positions[t0 + i] : -1; /* -1: no key is visible */
    int maxpos = a.positions[t0 + cnt - 1];
    for (int j = th; j < Q * DPL * 32; j += blockDim.x) {
        int i = j / (DPL * 32), d = j - i * (DPL * 32);
        sq[i][d] = i < cnt && d < D
                       ? a.q[(size_t)(t0 + i) * a.q_stride + (size_t)h * D + d] * a.scale
                       : 0.0f;
    }
    __syncthreads();

    float acc[Q][DPL], m[Q], l[Q];
#pragma unroll
    for (int i = 0; i < Q; i++) {
        m[i] = -INFINITY;
        l[i] = 0.0f;
#pragma unroll
        for (int e = 0; e < DPL; e++)
            acc[i][e] = 0.0f;
    }
    int nkt = maxpos / 32 + 1;
    for (int kt = split + a.nsplit * w; kt < nkt; kt += a.nsplit * ATT_WARPS) {
        int p = kt * 32 + lane;
        float s[Q];
#pragma unroll
        for (int i = 0; i < Q; i++)
            s[i] = 0.0f;
        size_t koff = 0;
        if (p <= maxpos) {
            const uint16_t *kr = kv_row(a.kc, bt, p, kvh, a.Hkv, a.bs, D);
            koff = (size_t)(kr - a.kc);
#pragma unroll
            for (int g0 = 0; g0 < NL; g0 += KG) {
                uint4 u[KG];
#pragma unroll
                for (int gi = 0; gi < KG; gi++) {
                    int d = (g0 + gi) * 8;
                    u[gi] = d < D ? *(const uint4 *)(kr + d) : make_uint4(0, 0, 0, 0);
                }
#pragma unroll
                for (int gi = 0; gi < KG; gi++) {
                    int d = (g0 + gi) * 8;
                    /* 8 bf16 in four words, element 2c in the low half of word c */
                    unsigned wd[4] = {u[gi].x, u[gi].y, u[gi].z, u[gi].w};
                    float kf[8];
#pragma unroll
                    for (int c = 0; c < 4; c++) {
                        kf[2 * c] = __uint_as_float(wd[c] << 16);
                        kf[2 * c + 1] = __uint_as_float(wd[c] & 0xffff0000u);
                    }
#pragma unroll
                    for (int i = 0; i < Q; i++) {
                        const float *qv = &sq[i][d];
                        float x = s[i];
#pragma unroll
                        for (int c = 0; c < 8; c++)
                            x = fmaf(kf[c], qv[c], x);
                        s[i] = x;
                    }
                }
            }
        }
        float pj[Q];
#pragma unroll
        for (int i = 0; i < Q; i++) {
            bool ok = p <= qpos[i];
            float sc = ok ? s[i] : -INFINITY;
            float mn = fmaxf(m[i], ku_warp_max(sc));
            float corr = (m[i] == -INFINITY) ? 0.0f : expf(m[i] - mn);
            pj[i] = ok ? expf(sc - mn) : 0.0f;
            l[i] = l[i] * corr + ku_warp_sum(pj[i]);
            m[i] = mn;
#pragma unroll
            for (int e = 0; e < DPL; e++)
                acc[i][e] *= corr;
        }
        int nvalid = min(32, maxpos - kt * 32 + 1);
        for (int j0 = 0; j0 < nvalid; j0 += ATT_VG) {
            float vv[ATT_VG][DPL];
#pragma unroll
            for (int jj = 0; jj < ATT_VG; jj++) {
                size_t vo = (size_t)__shfl_sync(0xffffffffu, (unsigned long long)koff,
                                                (j0 + jj) & 31);
                const uint16_t *vr = a.vc + vo;
#pragma unroll
                for (int e = 0; e < DPL; e++) {
                    int d = lane + 32 * e;
                    vv[jj][e] = j0 + jj < nvalid && d < D ? ku_bf(vr[d]) : 0.0f;
                }
            }
#pragma unroll
            for (int jj = 0; jj < ATT_VG; jj++)
#pragma unroll
                for (int i = 0; i < Q; i++) {
                    /* rows past nvalid have pj = 0 (masked) and vv = 0 */
                    float pv = __shfl_sync(0xffffffffu, pj[i], (j0 + jj) & 31);
#pragma unroll
                    for (int e = 0; e < DPL; e++)
                        acc[i][e] = fmaf(pv, vv[jj][e], acc[i][e]);
                }
        }
    }
    /* merge the warps */
#pragma unroll
    for (int i = 0; i < Q; i++) {
        if (lane == 0) {
            sm_m[w][i] = m[i];
            sm_l[w][i] = l[i];
        }
#pragma unroll
        for (int e = 0; e < DPL; e++)
            sacc[w][i][lane + 32 * e] = acc[i][e];
    }
    __syncthreads();
    for (int j = th; j < cnt * D; j += blockDim.x) {
        int i = j / D, d = j - i * D;
        float M = -INFINITY;
        for (int ww = 0; ww < ATT_WARPS; ww++)
            M = fmaxf(M, sm_m[ww][i]);
        float L = 0.0f, v = 0.0f;
        for (int ww = 0; ww < ATT_WARPS; ww++) {
            float f = sm_m[ww][i] == -INFINITY ? 0.0f : expf(sm_m[ww][i] - M);
            L += sm_l[ww][i] * f;
            v += sacc[ww][i][d] * f;
        }
        int t = t0 + i;
        if (a.nsplit == 1) {
            a.out[(size_t)t * a.Hq * D + (size_t)h * D + d] = ku_to_bf(v / L);
        } else {
            float *wp = a.work + (((size_t)t * a.Hq + h) * a.nsplit + split) * (D + 2);
            wp[2 + d] = v;
            if (d == 0) {
                wp[0] = M;
                wp[1] = L;
            }
        }
    }
}

static __global__ void attention_merge_kernel(const float *work, int nsplit, int D, int Hq,
                                              uint16_t *out)
{
    int bh = blockIdx.x;
    const float *wp = work + (size_t)bh * nsplit * (D + 2);
    float M = -INFINITY;
    for (int s = 0; s < nsplit; s++)
        M = fmaxf(M, wp[(size_t)s * (D + 2)]);
    float L = 0.0f;
    for (int s = 0; s < nsplit; s++) {
        float ms = wp[(size_t)s * (D + 2)];
        if (ms != -INFINITY)
            L += wp[(size_t)s * (D + 2) + 1] * expf(ms - M);
    }
    for (int d = threadIdx.x; d < D; d += blockDim.x) {
        float v = 0.0f;
        for (int s = 0; s < nsplit; s++) {
            float ms = wp[(size_t)s * (D + 2)];
            if (ms != -INFINITY)
                v += wp[(size_t)s * (D + 2) + 2 + d] * expf(ms - M);
        }
        out[(size_t)bh * D + d] = ku_to_bf(v / L);
    }
}

extern "C" int kern_attention_tiles(const int32_t *qs, int N, int32_t *tiles)
{
    int n = 0;
    for (int i = 0; i < N; i++)
        for (int t = qs[i]; t < qs[i + 1]; t += QT) {
            tiles[2 * n] = t;
            tiles[2 * n + 1] = qs[i + 1] - t < QT ? qs[i + 1] - t : QT;
            n++;
        }
    return n;
}

extern "C" int kern_attention_plan(const int32_t *qs, const int32_t *positions, int N,
                                   int32_t *tiles, int *nptiles)
{
    int n = 0;
    for (int i = 0; i < N; i++) {
        if (qs[i + 1] - qs[i] < KERN_ATTN_PF_MIN)
            continue;
        for (int t = qs[i]; t < qs[i + 1]; t += KERN_ATTN_PT) {
            int c = qs[i + 1] - t < KERN_ATTN_PT ? qs[i + 1] - t : KERN_ATTN_PT;
            /* insertion by decreasing last position: the longest tiles start
             * first and the short ones fill the tail of the grid */
            int k = n++;
            if (positions)
                for (; k > 0 && positions[tiles[2 * (k - 1)] + tiles[2 * (k - 1) + 1] - 1] <
                                    positions[t + c - 1];
                     k--) {
                    tiles[2 * k] = tiles[2 * (k - 1)];
                    tiles[2 * k + 1] = tiles[2 * (k - 1) + 1];
                }
            tiles[2 * k] = t;
            tiles[2 * k + 1] = c;
        }
    }
    *nptiles = n;
    for (int i = 0; i < N; i++) {
        if (qs[i + 1] - qs[i] >= KERN_ATTN_PF_MIN)
            continue;
        for (int t = qs[i]; t < qs[i + 1]; t += QT) {
            tiles[2 * n] = t;
            tiles[2 * n + 1] = qs[i + 1] - t < QT ? qs[i + 1] - t : QT;
            n++;
        }
    }
    return n;
}

extern "C" int kern_attention_tiles_single(const int32_t *tiles, int nptiles, int ntiles)
{
    for (int k = nptiles; k < ntiles; k++)
        if (tiles[2 * k + 1] != 1)
            return 0;
    return 1;
}

extern "C" size_t kern_attention_work_floats(int T, int Hq, int D, int nsplit)
{
    return nsplit > 1 ? (size_t)T * Hq * nsplit * (D + 2) : 0;
}

/* the CUDA-core kernel over a->tiles, pieces (grid z) of Q rows per tile;
 * q1: every tile has one row (the one-row kernel) */
template <int Q> static int launch_q(const struct kern_attn_args *a, int pieces, cudaStream_t s)
{
    dim3 grid(a->ntiles * a->Hq, a->nsplit, pieces);
    if (a->D <= 32)
        attention_kernel<1, Q><<<grid, ATT_WARPS * 32, 0, s>>>(*a);
    else if (a->D <= 64)
        attention_kernel<2, Q><<<grid, ATT_WARPS * 32, 0, s>>>(*a);
    else if (a->D <= 128)
        attention_kernel<4, Q><<<grid, ATT_WARPS * 32, 0, s>>>(*a);
    else
        attention_kernel<8, Q><<<grid, ATT_WARPS * 32, 0, s>>>(*a);
    return KU_LAUNCH_RESULT();
}

static int launch_tiles(const struct kern_attn_args *a, int pieces, int q1, cudaStream_t s)
{
    return q1 ? launch_q<1>(a, 1, s) : launch_q<QT>(a, pieces, s);
}

extern "C" int kern_attention(const struct kern_attn_args *a, cudaStream_t s)
{
    if (a->T <= 0)
        return 0;
    if (a->D % 8 || a->D > ATT_MAXD || a->D <= 0 || a->Hkv <= 0 || a->Hq % a->Hkv ||
        a->nsplit < 1 || a->nsplit > 65535 || (a->nsplit > 1 && !a->work))
        return (int)cudaErrorInvalidValue;
    if (a->ntiles <= 0 || !a->tiles || a->nptiles < 0 || a->nptiles > a->ntiles)
        return (int)cudaErrorInvalidValue;
    int rc = 0;
    struct kern_attn_args b = *a;
    if (a->nptiles > 0) {
        if (kern_attention_prefill_supported(a->D)) {
            rc = kern_attention_prefill(a, s);
        } else {
            /* other head dims: the CUDA-core kernel, KERN_ATTN_QT rows per block */
            b.ntiles = a->nptiles;
            b.nsplit = 1;
            rc = launch_tiles(&b, KERN_ATTN_PT / QT, 0, s);
        }
        if (rc)
            return rc;
        /* the merge kernel would overwrite every row: no split beside prefill */
        b.nsplit = 1;
    }
    b.tiles = a->tiles + 2 * a->nptiles;
    b.ntiles = a->ntiles - a->nptiles;
    if (b.ntiles == 0)
        return 0;
    if ((rc = launch_tiles(&b, 1, a->decode_tiles_single, s)) || b.nsplit == 1)
        return rc;
    attention_merge_kernel<<<b.T * b.Hq, 128, 0, s>>>(b.work, b.nsplit, b.D, b.Hq, b.out);
    return KU_LAUNCH_RESULT();
}
