/* kernels/cuda/gdn_chunk.cu: chunked (WY/UT) gated delta rule for varlen
 * prefill; contract, algorithm and costs in gdn_chunk.h.
 *
 * prep kernel, one CTA of 4 warps per (chunk, value head): warp 0 scans g,
 * warp w L2-normalizes rows 16w..16w+15; the products (the 10 lower 16x16
 * tiles of Q K^T and K K^T, then W) are m16n8k16 mma.sync with ldmatrix
 * operands, their tiles dealt evenly over the warps; the solve is fp32 on
 * the CUDA cores. Everything goes through shared memory (static, < 48 KB;
 * layout above the kernel).
 *
 * scan kernel, one CTA of 4 warps per (V-slice of 64, value head, sequence),
 * V-first with raw mma.sync (see the comment above it): S^T and Delta^T stay
 * in registers, the chunk operands come through a cp.async double buffer.
 * Engine thread launches both. */
#include "kernels/cuda/gdn_chunk_dev.cuh"

static __device__ __forceinline__ kbf16 gc_bf(float f) { return __float2bfloat16_rn(f); }

/* ---------------- prep: per (chunk, head) ----------------
 * Shared memory (44.8 KB at Dk = 96): k (bf16, rows padded to Dk + 8 so the
 * fragment loads' 8 row addresses fall on distinct banks), rq = q (bf16,
 * same rows) for the Q K^T products, then the block merges' partial products
 * (fp32), then Tw (bf16, rows of 72); A (fp32, rows of 68, so two rows read
 * by the two half-warps sit on different banks): the k~^T staging, then K K^T
 * -> A -> T. Every phase gives the 4 warps equal work: the 10 lower 16x16
 * tiles of the 64x64 products go 3,3,2,2 and the Wn tiles in a snake order
 * by cost; each thread of a block merge computes two rows of one column. */
#define GC_PREP_CTAS 5 /* per SM: 5 x (44.8 + 1) KB of shared memory fits 228 KB */
template <int DK> struct gc_prep_smem {
    enum { C = GC_C, LK = DK + 8, LA = C + 4, LW = C + 8 };
    enum { RQ = C * LK > C * LW ? C * LK : C * LW }; /* bf16 elements */
    static_assert(3 * 256 * 4 <= RQ * 2, "merge partials fit in rq");
};

template <int DK>
static __global__ void __launch_bounds__(GC_THREADS, GC_PREP_CTAS)
gdn_chunk_prep_kernel(const float *__restrict__ y, const float *__restrict__ g,
                      const float *__restrict__ beta, const int32_t *__restrict__ plan, int N,
                      int Hk, int Hv, int Dv, float scale, kbf16 *__restrict__ work,
                      float *__restrict__ gcw)
{
    typedef gc_prep_smem<DK> M;
    constexpr int C = GC_C, KT = DK / 16, PL = (DK + 31) / 32, LK = M::LK, LA = M::LA,
                  LW = M::LW;
    __shared__ __align__(32) kbf16 kb[C * LK];  /* normalized k (bf16) */
    __shared__ __align__(32) kbf16 rq[M::RQ];   /* q*scale; merge partials; Tw */
    __shared__ __align__(32) float A[C * LA];   /* k~^T staging; K K^T -> A -> T */
    __shared__ float sg[C], sbt[C], sbg[C];     /* gamma, beta, beta*Gamma */

    const int c = blockIdx.x, h = blockIdx.y, tid = threadIdx.x;
    const int lane = tid & 31, warp = tid >> 5;
    const int tok0 = plan[N + 1 + 2 * c], len = plan[N + 2 + 2 * c];
    const int kh = h / (Hv / Hk), KD = Hk * DK, CD = 2 * KD + Hv * Dv;
    kbf16 *wp = work + ((size_t)c * Hv + h) * gc_per(DK);
    kbf16 *Wn = wp, *Qt = wp + C * DK, *KtT = wp + 2 * C * DK, *TuG = wp + 3 * C * DK,
          *Pg = TuG + C * C;
    kbf16 *qb = rq, *Tw = rq;
    float *X = (float *)rq;

    /* q, k rows of this warp's first group of 4 in flight before the gate
     * scan (they do not depend on it); the next group's loads are issued
     * before a group is processed, so each warp always has a group in flight */
    constexpr int LT = C + 2; /* padded row of the k~^T staging (conflict-free) */
    float qv[2][4][PL], kv[2][4][PL];
    auto load_rows = [&](int buf, int r0) {
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const int r = r0 + i;
            const bool ok = r < len;
            const float *row = y + (size_t)(tok0 + (ok ? r : 0)) * CD;
#pragma unroll
            for (int p = 0; p < PL; p++) {
                int d = lane + 32 * p;
                qv[buf][i][p] = ok && d < DK ? row[kh * DK + d] : 0.0f;
                kv[buf][i][p] = ok && d < DK ? row[KD + kh * DK + d] : 0.0f;
            }
        }
    };
    load_rows(0, warp * 16);

    /* local cumulative gate (inclusive scan over the chunk) */
    if (warp == 0) {
        float g0 = lane < len ? g[(size_t)(tok0 + lane) * Hv + h] : 0.0f;
        float g1 = lane + 32 < len ? g[(size_t)(tok0 + lane + 32) * Hv + h] : 0.0f;
#pragma unroll
        for (int off = 1; off < 32; off <<= 1) {
            int src = lane >= off ? lane - off : lane;
            float t0 = __shfl_sync(0xffffffffu, g0, src);
            float t1 = __shfl_sync(0xffffffffu, g1, src);
            if (lane >= off) {
                g0 += t0;
                g1 += t1;
            }
        }
        g1 += __shfl_sync(0xffffffffu, g0, 31);
        float b0 = lane < len ? beta[(size_t)(tok0 + lane) * Hv + h] : 0.0f;
        float b1 = lane + 32 < len ? beta[(size_t)(tok0 + lane + 32) * Hv + h] : 0.0f;
        sg[lane] = g0;
        sg[lane + 32] = g1;
        sbt[lane] = b0;
        sbt[lane + 32] = b1;
        sbg[lane] = b0 * expf(g0);
        sbg[lane + 32] = b1 * expf(g1);
    }
    __syncthreads();
    const float glast = sg[len - 1];
    if (tid == 0)
        gcw[(size_t)c * Hv + h] = expf(glast);

    /* l2norm q, k (fp32); q~ = Gamma q to the workspace, k~ = k Gamma_C / Gamma
     * transposed through shared memory (A is free until the products).
     * Warp w takes rows 16w..16w+15 in groups of 4. */
    {
        kbf16 *ktt = (kbf16 *)A;
#pragma unroll
        for (int grp = 0; grp < 4; grp++) {
            const int b = grp & 1, r0 = warp * 16 + 4 * grp;
            if (grp < 3)
                load_rows(b ^ 1, r0 + 4);
#pragma unroll
            for (int i = 0; i < 4; i++) {
                const int r = r0 + i;
                const bool ok = r < len;
                float qq = 0.0f, kk = 0.0f;
#pragma unroll
                for (int p = 0; p < PL; p++) {
                    qq += qv[b][i][p] * qv[b][i][p];
                    kk += kv[b][i][p] * kv[b][i][p];
                }
                qq = ku_warp_sum(qq);
                kk = ku_warp_sum(kk);
                float qs_ = scale * rsqrtf(qq + 1e-6f), ks_ = rsqrtf(kk + 1e-6f);
                float eq = ok ? expf(sg[r]) : 0.0f, ek = ok ? expf(glast - sg[r]) : 0.0f;
#pragma unroll
                for (int p = 0; p < PL; p++) {
                    int d = lane + 32 * p;
                    if (d < DK) {
                        float qn = qv[b][i][p] * qs_, kn = kv[b][i][p] * ks_;
                        qb[r * LK + d] = gc_bf(qn);
                        kb[r * LK + d] = gc_bf(kn);
                        Qt[r * DK + d] = gc_bf(qn * eq);
                        ktt[d * LT + r] = gc_bf(kn * ek);
                    }
                }
            }
        }
        __syncthreads();
        for (int u = tid; u < DK * (C / 2); u += GC_THREADS) {
            int d = u / (C / 2), r2 = (u % (C / 2)) * 2;
            *(uint32_t *)(KtT + d * C + r2) = *(const uint32_t *)(ktt + d * LT + r2);
        }
        static_assert(DK * LT * 2 <= C * LA * 4, "k~^T staging fits in A");
    }
    __syncthreads();

    /* P = mask_{i<=r}(Q K^T) * exp(gam_r - gam_i) and K K^T (-> A), the 10
     * lower 16x16 tiles, both products of a tile together (they share the k
     * fragments; four accumulator chains overlap), each scaled and masked as
     * it is stored (one exp per element for both). m16n8k16 mma.sync with
     * ldmatrix operands; the accumulators are stored from registers (lane
     * g, t holds rows g, g+8, columns 2t, 2t+1 of each n8 tile). */
    {
        const int g8 = lane >> 2, t2 = 2 * (lane & 3);
        const int oa = gc_lda_off(LK), ob = gc_ldb_off(LK);
        for (int idx = warp; idx < 10; idx += 4) {
            const int rt = idx < 1 ? 0 : idx < 3 ? 1 : idx < 6 ? 2 : 3,
                      ct = idx - rt * (rt + 1) / 2;
            float ap[2][4] = {}, ak[2][4] = {};
#pragma unroll
            for (int kt = 0; kt < KT; kt++) {
                uint32_t fq[4], fk[4], b[4];
                ku_ldsm_x4(fq, qb + rt * 16 * LK + kt * 16 + oa);
                ku_ldsm_x4(fk, kb + rt * 16 * LK + kt * 16 + oa);
                ku_ldsm_x4(b, kb + ct * 16 * LK + kt * 16 + ob);
                ku_mma_bf16(ap[0], fq, b[0], b[1]);
                ku_mma_bf16(ap[1], fq, b[2], b[3]);
                ku_mma_bf16(ak[0], fk, b[0], b[1]);
                ku_mma_bf16(ak[1], fk, b[2], b[3]);
            }
#pragma unroll
            for (int n = 0; n < 2; n++)
#pragma unroll
                for (int hh = 0; hh < 2; hh++) {
                    const int r = rt * 16 + g8 + 8 * hh, i = ct * 16 + 8 * n + t2;
                    const bool rin = r < len;
                    const float e0 = i <= r && rin ? expf(sg[r] - sg[i]) : 0.0f,
                                e1 = i + 1 <= r && rin ? expf(sg[r] - sg[i + 1]) : 0.0f;
                    /* A = strictly lower beta_r (k_r.k_i) exp(gam_r - gam_i),
                     * select-masked (the upper factors would overflow) */
                    *(float2 *)(A + r * LA + i) =
                        make_float2(i < r && rin ? sbt[r] * ak[n][2 * hh] * e0 : 0.0f,
                                    i + 1 < r && rin ? sbt[r] * ak[n][2 * hh + 1] * e1 : 0.0f);
                    *(uint32_t *)(Pg + r * C + i) =
                        ku_pack_bf2(i <= r && rin ? ap[n][2 * hh] * e0 : 0.0f,
                                i + 1 <= r && rin ? ap[n][2 * hh + 1] * e1 : 0.0f);
                }
        }
    }
    __syncthreads();
    /* diagonal 16x16 blocks: (I + L)^-1 by forward substitution; lane j keeps
     * column j in registers */
    {
        const int j = lane & 15;
        float *Ab = A + warp * 16 * LA + warp * 16;
        float t[16];
#pragma unroll
        for (int i = 0; i < 16; i++)
            t[i] = i == j ? 1.0f : 0.0f;
#pragma unroll
        for (int i = 1; i < 16; i++) {
            float s = 0.0f;
#pragma unroll
            for (int m = 0; m < i; m++)
                s = fmaf(Ab[i * LA + m], t[m], s);
            if (i > j)
                t[i] = -s;
        }
        __syncwarp();
        if (lane < 16) {
#pragma unroll
            for (int i = 0; i < 16; i++)
                Ab[i * LA + j] = t[i];
        }
    }
    __syncthreads();
    /* block rows bi = 1..3: T_{bi,jb} = -T_{bi,bi} sum_{u=jb}^{bi-1} A_{bi,u} T_{u,jb}.
     * Thread (rr = tid / 16, cc = tid % 16) computes rows rr and rr + 8 of
     * column cc in every column block: the column operand is one conflict-free
     * load for both rows, the two half-warps' row operands are on different
     * banks (row stride 68). */
    {
        const int cc = tid & 15, r0 = tid >> 4;
#pragma unroll
        for (int bi = 1; bi < 4; bi++) {
            const float *a0 = A + (bi * 16 + r0) * LA, *a1 = a0 + 8 * LA;
#pragma unroll
            for (int jb = 0; jb < bi; jb++) {
                float s0 = 0.0f, s1 = 0.0f;
#pragma unroll
                for (int u = jb * 16; u < bi * 16; u++) {
                    float tv = A[u * LA + jb * 16 + cc];
                    s0 = fmaf(a0[u], tv, s0);
                    s1 = fmaf(a1[u], tv, s1);
                }
                X[jb * 256 + r0 * 16 + cc] = s0;
                X[jb * 256 + (r0 + 8) * 16 + cc] = s1;
            }
            __syncthreads();
#pragma unroll
            for (int jb = 0; jb < bi; jb++) {
                float s0 = 0.0f, s1 = 0.0f;
#pragma unroll
                for (int u = 0; u < 16; u++) {
                    float xv = X[jb * 256 + u * 16 + cc];
                    s0 = fmaf(a0[bi * 16 + u], xv, s0);
                    s1 = fmaf(a1[bi * 16 + u], xv, s1);
                }
                A[(bi * 16 + r0) * LA + jb * 16 + cc] = -s0;
                A[(bi * 16 + r0 + 8) * LA + jb * 16 + cc] = -s1;
            }
            __syncthreads();
        }
    }
    /* Tu = T diag(beta) straight to the workspace (the scan forms U^T = V^T
     * Tu^T itself, reading V once); Tw = -T diag(beta Gamma) to shared (q and
     * the merge partials are dead) */
    for (int e = tid; e < C * C / 2; e += GC_THREADS) {
        int i = e >> 5, j = (e & 31) * 2;
        float2 t = *(const float2 *)(A + i * LA + j);
        t.x = j <= i ? t.x : 0.0f; /* T is lower triangular; A's upper tiles were never written */
        t.y = j + 1 <= i ? t.y : 0.0f;
        ((uint32_t *)TuG)[e] = ku_pack_bf2(t.x * sbt[j], t.y * sbt[j + 1]);
        *(uint32_t *)(Tw + i * LW + j) = ku_pack_bf2(-t.x * sbg[j], -t.y * sbg[j + 1]);
    }
    __syncthreads();
    /* Wn = -T diag(beta Gamma) K: 4 x KT output tiles of 16 x 16, tile (rt,
     * ct) costing rt + 1 k steps; dealt in rounds of 4, most expensive
     * first, the order reversed every other round, so every warp gets the
     * same cost. K is [token][d]: its B operands come by ldmatrix.trans. */
    {
        const int g8 = lane >> 2, t2 = 2 * (lane & 3);
        const int oa = gc_lda_off(LW), obt = gc_lda_off(LK);
        for (int rd = 0; rd < KT; rd++) {
            const int idx = 4 * rd + (rd & 1 ? 3 - warp : warp);
            const int rt = 3 - idx / KT, ct = idx % KT;
            float acc[2][4] = {};
            for (int kt = 0; kt <= rt; kt++) {
                uint32_t fa[4], b[4];
                ku_ldsm_x4(fa, Tw + rt * 16 * LW + kt * 16 + oa);
                ku_ldsm_x4_t(b, kb + kt * 16 * LK + ct * 16 + obt);
                ku_mma_bf16(acc[0], fa, b[0], b[1]);
                ku_mma_bf16(acc[1], fa, b[2], b[3]);
            }
#pragma unroll
            for (int n = 0; n < 2; n++)
#pragma unroll
                for (int hh = 0; hh < 2; hh++) {
                    const int r = rt * 16 + g8 + 8 * hh, d = ct * 16 + 8 * n + t2;
                    *(uint32_t *)(Wn + r * DK + d) = ku_pack_bf2(acc[n][2 * hh], acc[n][2 * hh + 1]);
                }
        }
    }
}


/* ---------------- scan: per (V-slice, head, sequence) ----------------
 * V-first: warp w owns value rows vw..vw+15 of the head (vw = v0 + 16 w) and
 * computes, per chunk, with m16n8k16 bf16 mma.sync (fp32 accumulate):
 *   Delta^T (16 x 64) = V^T Tu^T + S^T Wn^T     (K = tokens <= r; K = Dk)
 *   O^T     (16 x 64) = S^T Q~^T + Delta^T P^T  (K = Dk; K = tokens <= r)
 *   S^T     (16 x Dk) = Gam_C S^T + Delta^T K~  (K = tokens)
 * S^T and Delta^T live in registers: an fp32 accumulator tile of m16n8 has the
 * layout of the bf16 A operand of the next product (two adjacent n8 tiles =
 * one k16 block), so no shared-memory round trip. The B operands (Wn, Q~,
 * K~^T, P of the chunk) are shared by the CTA's warps: staged in shared
 * memory by cp.async one chunk ahead (double buffer, rows padded by 8 bf16 so
 * the 32-bit fragment loads hit 32 banks), Tu single-buffered (the next
 * one is loaded once every warp is past the Delta products); V (fp32, from y) is prefetched into
 * registers one chunk ahead. Three barriers per chunk. */

template <int DK, typename ST, bool SPLIT>
static __global__ void __launch_bounds__(GC_THREADS, 1)
gdn_chunk_scan_kernel(const float *__restrict__ y, const int32_t *__restrict__ plan, int N,
                      const int32_t *__restrict__ slot, const int32_t *__restrict__ has_init,
                      int Hk, int Hv, int Dv, ST *state, size_t slot_stride,
                      float *__restrict__ o, const kbf16 *__restrict__ work,
                      const float *__restrict__ gcw, uint4 *__restrict__ split)
{
    typedef gc_stage<DK> L;
    constexpr int NJ = DK / 8, NK = DK / 16;
    GC_DSMEM(smem_raw);
    kbf16 *stg = (kbf16 *)smem_raw;

    const int h = blockIdx.y, n = blockIdx.z, tid = threadIdx.x;
    const int lane = tid & 31, warp = tid >> 5, g = lane >> 2, t = lane & 3;
    const int vw = blockIdx.x * GC_BV + warp * 16;
    const bool act = vw < Dv; /* Dv % 16 == 0: a warp's 16 rows are all in or all out */
    const int c0 = plan[n], c1 = plan[n + 1];
    if (c1 <= c0)
        return;
    const int sl = slot[n];
    const bool init = sl >= 0 && has_init[n] != 0;
    ST *Sg = sl >= 0 ? state + (size_t)sl * slot_stride + (size_t)h * DK * Dv : nullptr;
    const size_t per = gc_per(DK), VD = (size_t)Hv * Dv;
    const int CD = 2 * Hk * DK + Hv * Dv;
    const float *vcol = y + 2 * (size_t)Hk * DK + (size_t)h * Dv + vw + g;
    const int lo_k = gc_ldb_off(L::LDK), lo_t = gc_ldb_off(L::LDT); /* ldmatrix lane rows */

    /* stage chunk c0 (group 1) and its Tu (group 2) */
    gc_stage_load<DK, !SPLIT>(stg, work + ((size_t)c0 * Hv + h) * per, tid);
    ku_cp_commit();
    gc_tu_load<DK>(stg, work + ((size_t)c0 * Hv + h) * per, tid);
    ku_cp_commit();
    /* V of the next chunk in registers: vn[kk][q] = V[token 16kk + 2t + (q&1) +
     * 8(q>>2)][v = vw + g + 8((q>>1)&1)], 0 past the chunk's end */
    float vn[4][8];
    int ntok0, nlen;
    float ngC;
    auto load_v = [&](int c) {
        ntok0 = plan[N + 1 + 2 * c];
        nlen = plan[N + 2 + 2 * c];
        ngC = gcw[(size_t)c * Hv + h];
        const float *vb = vcol + (size_t)(ntok0 + 2 * t) * CD; /* rows 2t + ... */
        if (act && nlen == GC_C) { /* a whole chunk: no bounds */
#pragma unroll
            for (int kk = 0; kk < 4; kk++)
#pragma unroll
                for (int q = 0; q < 8; q++)
                    vn[kk][q] = vb[(16 * kk + (q & 1) + 8 * (q >> 2)) * CD + 8 * ((q >> 1) & 1)];
        } else {
#pragma unroll
            for (int kk = 0; kk < 4; kk++)
#pragma unroll
                for (int q = 0; q < 8; q++) {
                    int r = 16 * kk + 2 * t + (q & 1) + 8 * (q >> 2);
                    vn[kk][q] = act && r < nlen
                                    ? vb[(r - 2 * t) * CD + 8 * ((q >> 1) & 1)]
                                    : 0.0f;
                }
        }
    };
    load_v(c0);

    /* S^T tile j (d = 8j..8j+7): s[j][e] = S[d = 8j + 2t + (e&1)][v = vw + g + 8(e>>1)] */
    float s[NJ][4];
#pragma unroll
    for (int j = 0; j < NJ; j++)
#pragma unroll
        for (int e = 0; e < 4; e++)
            s[j][e] = init && act ? ku_state<ST>::ld(Sg + (size_t)(8 * j + 2 * t + (e & 1)) * Dv +
                                                  vw + g + 8 * (e >> 1))
                                  : 0.0f;

    for (int c = c0; c < c1; c++) {
        const int tok0 = ntok0, len = nlen;
        const float gC = ngC;
        const kbf16 *sb = stg + (size_t)((c - c0) & 1) * L::ELEMS;
        /* V^T as the A operand (tokens = k) */
        uint32_t va[4][4];
#pragma unroll
        for (int kk = 0; kk < 4; kk++) {
            va[kk][0] = ku_pack_bf2(vn[kk][0], vn[kk][1]);
            va[kk][1] = ku_pack_bf2(vn[kk][2], vn[kk][3]);
            va[kk][2] = ku_pack_bf2(vn[kk][4], vn[kk][5]);
            va[kk][3] = ku_pack_bf2(vn[kk][6], vn[kk][7]);
        }
        /* prefetch chunk c+1 into the other stage (its readers finished at
         * the barrier ending chunk c-1); an empty group at the end */
        if (c + 1 < c1)
            gc_stage_load<DK, !SPLIT>(stg + (size_t)((c + 1 - c0) & 1) * L::ELEMS,
                                      work + ((size_t)(c + 1) * Hv + h) * per, tid);
        ku_cp_commit();
        if (c + 1 < c1)
            load_v(c + 1);
        ku_cp_wait<1>(); /* all but the newest group: chunk c's stage and Tu landed */
        __syncthreads(); /* ... for every thread */

        uint32_t sa[NK][4], da[4][4];
        /* split variant: this warp's fragments of chunk c (gc_split_per) */
        uint4 *sp = SPLIT ? split + ((size_t)c * Hv + h) * gc_split_per(DK, Dv) +
                                (size_t)(vw >> 4) * (NK + 4) * 32 + lane
                          : nullptr;
        if (act) {
#pragma unroll
            for (int kk = 0; kk < NK; kk++) {
                sa[kk][0] = ku_pack_bf2(s[2 * kk][0], s[2 * kk][1]);
                sa[kk][1] = ku_pack_bf2(s[2 * kk][2], s[2 * kk][3]);
                sa[kk][2] = ku_pack_bf2(s[2 * kk + 1][0], s[2 * kk + 1][1]);
                sa[kk][3] = ku_pack_bf2(s[2 * kk + 1][2], s[2 * kk + 1][3]);
                if (SPLIT)
                    sp[kk * 32] = uint4{sa[kk][0], sa[kk][1], sa[kk][2], sa[kk][3]};
            }
            /* Delta^T = V^T Tu^T + S^T Wn^T, k blocks outer so the 8 token
             * tiles' chains interleave (gc_out_tile); Tu lower triangular:
             * tiles j >= 2 kk. V, Tu and Wn are zero past len. */
            float d[8][4];
#pragma unroll
            for (int j = 0; j < 8; j++)
                d[j][0] = d[j][1] = d[j][2] = d[j][3] = 0.0f;
#pragma unroll
            for (int kk = 0; kk < 4; kk++)
#pragma unroll
                for (int jp = kk; jp < 4; jp++) /* tiles 2jp, 2jp+1 */
                    gc_mma_x2(&d[2 * jp], va[kk], stg + L::TU + lo_t + 16 * jp * L::LDT + 16 * kk);
#pragma unroll
            for (int kk = 0; kk < NK; kk++)
#pragma unroll
                for (int jp = 0; jp < 4; jp++)
                    gc_mma_x2(&d[2 * jp], sa[kk], sb + L::W + lo_k + 16 * jp * L::LDK + 16 * kk);
#pragma unroll
            for (int kk = 0; kk < 4; kk++) {
                da[kk][0] = ku_pack_bf2(d[2 * kk][0], d[2 * kk][1]);
                da[kk][1] = ku_pack_bf2(d[2 * kk][2], d[2 * kk][3]);
                da[kk][2] = ku_pack_bf2(d[2 * kk + 1][0], d[2 * kk + 1][1]);
                da[kk][3] = ku_pack_bf2(d[2 * kk + 1][2], d[2 * kk + 1][3]);
                if (SPLIT)
                    sp[(NK + kk) * 32] = uint4{da[kk][0], da[kk][1], da[kk][2], da[kk][3]};
            }
        }
        __syncthreads(); /* everyone is past the Tu products: load the next Tu */
        if (c + 1 < c1)
            gc_tu_load<DK>(stg, work + ((size_t)(c + 1) * Hv + h) * per, tid);
        ku_cp_commit();
        if (act) {
            /* O^T = S^T Q~^T + Delta^T P^T, stored as o[token][v] (the split
             * variant's output kernel does this from the stored sa, da) */
            if (!SPLIT)
                gc_out_tile<NK>(sa, da, sb + L::Q, L::LDK, sb + L::P, L::LDT,
                                o + (size_t)tok0 * VD + (size_t)h * Dv + vw + g, VD, len, g, t);
            /* S^T <- Gam_C S^T + Delta^T K~ (12 independent chains per k
             * block; Delta and K~ are zero past len) */
#pragma unroll
            for (int j = 0; j < NJ; j++)
#pragma unroll
                for (int e = 0; e < 4; e++)
                    s[j][e] *= gC;
#pragma unroll
            for (int kk = 0; kk < 4; kk++)
#pragma unroll
                for (int jp = 0; jp < NJ / 2; jp++) /* state tiles 2jp, 2jp+1 */
                    gc_mma_x2(&s[2 * jp], da[kk], sb + L::KT + lo_t + 16 * jp * L::LDT + 16 * kk);
        }
        __syncthreads(); /* stage (c - c0) & 1 may be overwritten next */
    }

    if (Sg && act) {
#pragma unroll
        for (int j = 0; j < NJ; j++)
#pragma unroll
            for (int e = 0; e < 4; e++)
                ku_state<ST>::st(Sg + (size_t)(8 * j + 2 * t + (e & 1)) * Dv + vw + g + 8 * (e >> 1),
                              s[j][e]);
    }
}

/* ---------------- host ---------------- */
extern "C" int kern_gdn_chunk_count_max(int T, int N)
{
    if (T <= 0 || N <= 0)
        return 0;
    long long b = ((long long)T + 63LL * N) / GC_C;
    return b < T ? (int)b : T;
}

extern "C" size_t kern_gdn_chunk_plan_ints(int N, int nchunks)
{
    return (size_t)(N + 1) + 2 * (size_t)(nchunks > 0 ? nchunks : 0);
}

extern "C" int kern_gdn_chunk_plan(const int32_t *qs, int N, int32_t *plan)
{
    int nc = 0;
    for (int i = 0; i < N; i++)
        if (qs[i + 1] < qs[i])
            return -1;
    for (int i = 0; i < N; i++)
        nc += (qs[i + 1] - qs[i] + GC_C - 1) / GC_C;
    int k = 0;
    for (int i = 0; i < N; i++) {
        plan[i] = k;
        for (int t = qs[i]; t < qs[i + 1]; t += GC_C, k++) {
            plan[N + 1 + 2 * k] = t;
            plan[N + 2 + 2 * k] = qs[i + 1] - t < GC_C ? qs[i + 1] - t : GC_C;
        }
    }
    plan[N] = k;
    return nc;
}

static int gc_shape_ok(int Hv, int Dk, int Dv)
{
    return Dk >= 16 && Dk <= 96 && Dk % 16 == 0 && Dv >= 16 && Dv % 16 == 0 && Hv >= 1 &&
           Hv <= 65535;
}

extern "C" size_t kern_gdn_chunk_work_bytes(int nchunks, int Hv, int Dk, int Dv)
{
    if (!gc_shape_ok(Hv, Dk, Dv) || nchunks < 0)
        return 0;
    return gc_fused_bytes(nchunks, Hv, Dk);
}

extern "C" size_t kern_gdn_chunk_split_work_bytes(int nchunks, int Hv, int Dk, int Dv)
{
    if (!gc_shape_ok(Hv, Dk, Dv) || nchunks < 0)
        return 0;
    return gc_split_off(nchunks, Hv, Dk) + (size_t)nchunks * Hv * gc_split_per(Dk, Dv) * 16;
}

/* SM count of the current device, queried once (the emulator: an H100's) */
static int gc_sm_count(void)
{
    static int sm;
    if (!sm) {
        int v = 132;
#ifndef DS_CUDA_EMU
        int dev = 0, q = 0;
        if (cudaGetDevice(&dev) == cudaSuccess &&
            cudaDeviceGetAttribute(&q, cudaDevAttrMultiProcessorCount, dev) == cudaSuccess &&
            q > 0)
            v = q;
        else
            (void)cudaGetLastError(); /* no device: keep the default, clear the error */
#endif
        sm = v;
    }
    return sm;
}

/* The auto rule's CTA condition (gdn_chunk.h) */
static int gc_few_ctas(int N, int Hv, int Dv)
{
    return (long long)((Dv + GC_BV - 1) / GC_BV) * Hv * N * KERN_GDN_CHUNK_SPLIT_SM_DIV <=
           (long long)gc_sm_count();
}

extern "C" int kern_gdn_chunk_split_seqs_max(int Hv, int Dv)
{
    if (Hv < 1 || Dv < 16)
        return 0;
    long long per = (long long)((Dv + GC_BV - 1) / GC_BV) * Hv;
    return (int)((long long)gc_sm_count() / (per * KERN_GDN_CHUNK_SPLIT_SM_DIV));
}

extern "C" int kern_gdn_chunk_auto_split(int N, int nchunks, int Hv, int Dv)
{
    return N > 0 && gc_few_ctas(N, Hv, Dv) && nchunks >= KERN_GDN_CHUNK_SPLIT_MIN_CHUNKS * N;
}

/* The scan stage's sequential kernel: the fused scan (SPLIT = false) or the
 * split variant's states-only scan. */
template <int DK, typename ST, bool SPLIT>
static int gc_scan(const float *y, int N, const int32_t *plan, const int32_t *slot,
                   const int32_t *has_init, int Hk, int Hv, int Dv, void *state,
                   size_t slot_stride, float *o, const kbf16 *wk, const float *gcw, uint4 *split,
                   cudaStream_t s)
{
    dim3 grid((Dv + GC_BV - 1) / GC_BV, Hv, N);
    const int smem = gc_stage<DK>::BYTES;
#ifndef DS_CUDA_EMU
    static int attr_set; /* one per instantiation */
    if (!attr_set) {
        cudaError_t e = cudaFuncSetAttribute(gdn_chunk_scan_kernel<DK, ST, SPLIT>,
                                             cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
        if (e != cudaSuccess)
            return (int)e;
        attr_set = 1;
    }
#else
    static_assert(gc_stage<DK>::BYTES <= GC_DSMEM_MAX, "emulator dynamic smem");
    (void)smem; /* translate.py drops the launch's smem argument */
#endif
    gdn_chunk_scan_kernel<DK, ST, SPLIT><<<grid, GC_THREADS, smem, s>>>(
        y, plan, N, slot, has_init, Hk, Hv, Dv, (ST *)state, slot_stride, o, wk, gcw, split);
    return KU_LAUNCH_RESULT();
}

/* flags: resolved (exactly one of FUSED, SPLIT) and validated */
template <int DK>
static int gc_launch(const float *y, const float *g, const float *beta, int N,
                     const int32_t *plan, int nchunks, const int32_t *slot,
                     const int32_t *has_init, int Hk, int Hv, int Dv, float scale, void *state,
                     int state_bf16, size_t slot_stride, float *o, void *work, int flags,
                     cudaStream_t s)
{
    kbf16 *wk = (kbf16 *)work;
    float *gcw = (float *)(wk + (size_t)nchunks * Hv * gc_per(DK));
    uint4 *split = (uint4 *)((char *)work + gc_split_off(nchunks, Hv, DK));
    int rc;
    if (!(flags & (KERN_GDN_CHUNK_SCAN_ONLY | KERN_GDN_CHUNK_STATES_ONLY |
                   KERN_GDN_CHUNK_OUT_ONLY))) {
        dim3 ga(nchunks, Hv);
#ifndef DS_CUDA_EMU
        static int carve_set; /* one per instantiation: GC_PREP_CTAS need the largest carveout */
        if (!carve_set) {
            cudaError_t e = cudaFuncSetAttribute(gdn_chunk_prep_kernel<DK>,
                                                 cudaFuncAttributePreferredSharedMemoryCarveout,
                                                 (int)cudaSharedmemCarveoutMaxShared);
            if (e != cudaSuccess)
                return (int)e;
            carve_set = 1;
        }
#endif
        gdn_chunk_prep_kernel<DK><<<ga, GC_THREADS, 0, s>>>(
            y, g, beta, plan, N, Hk, Hv, Dv, scale, wk, gcw);
        if ((rc = KU_LAUNCH_RESULT()))
            return rc;
    }
    if (flags & KERN_GDN_CHUNK_PREP_ONLY)
        return 0;
    if (flags & KERN_GDN_CHUNK_FUSED)
        return state_bf16 ? gc_scan<DK, uint16_t, false>(y, N, plan, slot, has_init, Hk, Hv, Dv,
                                                         state, slot_stride, o, wk, gcw, NULL, s)
                          : gc_scan<DK, float, false>(y, N, plan, slot, has_init, Hk, Hv, Dv,
                                                      state, slot_stride, o, wk, gcw, NULL, s);
    if (!(flags & KERN_GDN_CHUNK_OUT_ONLY)) {
        rc = state_bf16 ? gc_scan<DK, uint16_t, true>(y, N, plan, slot, has_init, Hk, Hv, Dv,
                                                      state, slot_stride, o, wk, gcw, split, s)
                        : gc_scan<DK, float, true>(y, N, plan, slot, has_init, Hk, Hv, Dv, state,
                                                   slot_stride, o, wk, gcw, split, s);
        if (rc)
            return rc;
    }
    if (flags & KERN_GDN_CHUNK_STATES_ONLY)
        return 0;
    return gc_out_run(DK, plan, N, nchunks, Hv, Dv, o, wk, split, s);
}

extern "C" int kern_gdn_chunk_ex(const float *y, const float *g, const float *beta, int N,
                                 const int32_t *plan, int nchunks, const int32_t *slot,
                                 const int32_t *has_init, int Hk, int Hv, int Dk, int Dv,
                                 float scale, void *state, int state_bf16, size_t slot_stride,
                                 float *o, void *work, size_t work_bytes, cudaStream_t s,
                                 int flags)
{
    const int stages = KERN_GDN_CHUNK_PREP_ONLY | KERN_GDN_CHUNK_SCAN_ONLY |
                       KERN_GDN_CHUNK_STATES_ONLY | KERN_GDN_CHUNK_OUT_ONLY,
              variants = KERN_GDN_CHUNK_FUSED | KERN_GDN_CHUNK_SPLIT;
    int st = flags & stages;
    if ((flags & ~(stages | variants)) || (flags & variants) == variants || (st & (st - 1)))
        return (int)cudaErrorInvalidValue; /* unknown bit, both variants, two stage bits */
    if (st & (KERN_GDN_CHUNK_STATES_ONLY | KERN_GDN_CHUNK_OUT_ONLY)) {
        if (flags & KERN_GDN_CHUNK_FUSED)
            return (int)cudaErrorInvalidValue;
        flags |= KERN_GDN_CHUNK_SPLIT;
    }
    if (N <= 0 || nchunks <= 0)
        return 0;
    if (!gc_shape_ok(Hv, Dk, Dv) || Hk < 1 || Hv % Hk || N > 65535 || !work ||
        ((uintptr_t)work & 255) || work_bytes < kern_gdn_chunk_work_bytes(nchunks, Hv, Dk, Dv))
        return (int)cudaErrorInvalidValue;
    const size_t split_bytes = kern_gdn_chunk_split_work_bytes(nchunks, Hv, Dk, Dv);
    if (!(flags & variants))
        flags |= kern_gdn_chunk_auto_split(N, nchunks, Hv, Dv) && work_bytes >= split_bytes
                     ? KERN_GDN_CHUNK_SPLIT
                     : KERN_GDN_CHUNK_FUSED;
    if ((flags & KERN_GDN_CHUNK_SPLIT) && work_bytes < split_bytes)
        return (int)cudaErrorInvalidValue;
#define GC_CASE(D)                                                                           \
    case D:                                                                                  \
        return gc_launch<D>(y, g, beta, N, plan, nchunks, slot, has_init, Hk, Hv, Dv, scale, \
                            state, state_bf16, slot_stride, o, work, flags, s);
    switch (Dk) { GC_FOR_DK(GC_CASE) }
#undef GC_CASE
    return (int)cudaErrorInvalidValue;
}

extern "C" int kern_gdn_chunk(const float *y, const float *g, const float *beta, int N,
                              const int32_t *plan, int nchunks, const int32_t *slot,
                              const int32_t *has_init, int Hk, int Hv, int Dk, int Dv,
                              float scale, void *state, int state_bf16, size_t slot_stride,
                              float *o, void *work, size_t work_bytes, cudaStream_t s)
{
    return kern_gdn_chunk_ex(y, g, beta, N, plan, nchunks, slot, has_init, Hk, Hv, Dk, Dv, scale,
                             state, state_bf16, slot_stride, o, work, work_bytes, s,
                             KERN_GDN_CHUNK_AUTO);
}
