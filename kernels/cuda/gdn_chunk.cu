/* kernels/cuda/gdn_chunk.cu: chunked (WY/UT) gated delta rule for varlen
 * prefill; contract, algorithm and costs in gdn_chunk.h.
 *
 * prep kernel, one CTA of 4 warps per (chunk, value head): warp 0 scans g,
 * each warp L2-normalizes rows r = warp, warp+4, ...; warp w owns row tile w
 * (rows 16w..16w+15) of every 64-row product. WMMA bf16 m16n16k16 with fp32
 * accumulators; only the 10 lower-triangle tiles of the 64x64 products are
 * computed. Everything goes through shared memory (static, <= 48 KB).
 *
 * scan kernel, one CTA of 4 warps per (V-slice of 64, value head, sequence):
 * warp w owns row tile w of Delta and O and state column tile w (all Dk/16
 * row tiles, fp32 accumulators kept in registers across the whole sequence).
 * Workspace operands (W, Q~, K~, P) are loaded straight from global memory
 * (L2: the V-slices of one head share them); the state and Delta go through
 * shared memory as bf16 to become mma operands. Three barriers per chunk.
 * Engine thread launches both. */
#include <mma.h>

#include "kernels/cuda/gdn_chunk.h"
#include "kernels/cuda/kern_util.h"

using namespace nvcuda;

#define GC_C 64
#define GC_BV 64
#define GC_THREADS 128

typedef wmma::fragment<wmma::matrix_a, 16, 16, 16, kbf16, wmma::row_major> gc_fa;
typedef wmma::fragment<wmma::matrix_a, 16, 16, 16, kbf16, wmma::col_major> gc_fa_t;
typedef wmma::fragment<wmma::matrix_b, 16, 16, 16, kbf16, wmma::row_major> gc_fb;
typedef wmma::fragment<wmma::matrix_b, 16, 16, 16, kbf16, wmma::col_major> gc_fb_t;
typedef wmma::fragment<wmma::accumulator, 16, 16, 16, float> gc_acc;

static __device__ __forceinline__ kbf16 gc_bf(float f) { return __float2bfloat16_rn(f); }
static __device__ __forceinline__ float gc_f(kbf16 b) { return ku_bf(__bfloat16_as_ushort(b)); }

/* bf16 elements per (chunk, head) in the workspace: Wn, Q~, K~ (64 x Dk each),
 * U (64 x Dv), P (64 x 64). */
static __host__ __device__ __forceinline__ size_t gc_per(int Dk, int Dv)
{
    return (size_t)GC_C * (3 * Dk + Dv + GC_C);
}

/* Store an accumulator tile through the warp's 16x16 fp32 scratch, then let
 * fn(rr, cc, value) write it (lanes take elements lane, lane+32, ...). */
template <typename F>
static __device__ __forceinline__ void gc_spill(const gc_acc &a, float *scr, int lane, F fn)
{
    wmma::store_matrix_sync(scr, a, 16, wmma::mem_row_major);
    __syncwarp();
#pragma unroll
    for (int e = lane; e < 256; e += 32)
        fn(e >> 4, e & 15, scr[e]);
    __syncwarp();
}

/* ---------------- prep: per (chunk, head) ---------------- */
template <int DK>
static __global__ void __launch_bounds__(GC_THREADS)
gdn_chunk_prep_kernel(const float *__restrict__ y, const float *__restrict__ g,
                      const float *__restrict__ beta, const int32_t *__restrict__ plan, int N,
                      int Hk, int Hv, int Dv, float scale, kbf16 *__restrict__ work,
                      float *__restrict__ gcw)
{
    constexpr int C = GC_C, KT = DK / 16, PL = (DK + 31) / 32;
    constexpr int RQ = C * DK > 2 * C * C ? C * DK : 2 * C * C; /* bf16 elements */
    __shared__ __align__(32) kbf16 kb[C * DK];  /* normalized k (bf16) */
    __shared__ __align__(32) kbf16 rq[RQ];      /* q*scale (bf16), then Tu | Tw */
    __shared__ __align__(32) float A[C * C];    /* scratch; A -> T (fp32); scratch + V */
    __shared__ float X[3 * 256];                /* block-merge partial products */
    __shared__ float sg[C], sbt[C], sbg[C];     /* gamma, beta, beta*Gamma */

    const int c = blockIdx.x, h = blockIdx.y, tid = threadIdx.x;
    const int lane = tid & 31, warp = tid >> 5;
    const int tok0 = plan[N + 1 + 2 * c], len = plan[N + 2 + 2 * c];
    const int kh = h / (Hv / Hk), KD = Hk * DK, CD = 2 * KD + Hv * Dv;
    kbf16 *wp = work + ((size_t)c * Hv + h) * gc_per(DK, Dv);
    kbf16 *Wn = wp, *Qt = wp + C * DK, *Kt = wp + 2 * C * DK, *Ug = wp + 3 * C * DK,
          *Pg = Ug + (size_t)C * Dv;
    kbf16 *qb = rq, *Tu = rq, *Tw = rq + C * C;

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

    /* l2norm q, k (fp32); q~ = Gamma q, k~ = k Gamma_C / Gamma to the workspace */
    for (int r = warp; r < C; r += 4) {
        const bool ok = r < len;
        const float *row = y + (size_t)(tok0 + (ok ? r : 0)) * CD;
        float qv[PL], kv[PL], qq = 0.0f, kk = 0.0f;
#pragma unroll
        for (int i = 0; i < PL; i++) {
            int d = lane + 32 * i;
            qv[i] = ok && d < DK ? row[kh * DK + d] : 0.0f;
            kv[i] = ok && d < DK ? row[KD + kh * DK + d] : 0.0f;
            qq += qv[i] * qv[i];
            kk += kv[i] * kv[i];
        }
        qq = ku_warp_sum(qq);
        kk = ku_warp_sum(kk);
        float qs_ = scale / sqrtf(qq + 1e-6f), ks_ = 1.0f / sqrtf(kk + 1e-6f);
        float eq = ok ? expf(sg[r]) : 0.0f, ek = ok ? expf(glast - sg[r]) : 0.0f;
#pragma unroll
        for (int i = 0; i < PL; i++) {
            int d = lane + 32 * i;
            if (d < DK) {
                float qn = qv[i] * qs_, kn = kv[i] * ks_;
                qb[r * DK + d] = gc_bf(qn);
                kb[r * DK + d] = gc_bf(kn);
                Qt[r * DK + d] = gc_bf(qn * eq);
                Kt[r * DK + d] = gc_bf(kn * ek);
            }
        }
    }
    __syncthreads();

    const int rt = warp;
    float *scr = A + warp * 256;
    /* P = mask_{i<=r}(Q K^T) * exp(gam_r - gam_i), lower tiles only */
    {
        gc_fa fa[KT];
#pragma unroll
        for (int kt = 0; kt < KT; kt++)
            wmma::load_matrix_sync(fa[kt], qb + rt * 16 * DK + kt * 16, DK);
        for (int ct = 0; ct <= rt; ct++) {
            gc_acc acc;
            wmma::fill_fragment(acc, 0.0f);
#pragma unroll
            for (int kt = 0; kt < KT; kt++) {
                gc_fb_t fb;
                wmma::load_matrix_sync(fb, kb + ct * 16 * DK + kt * 16, DK);
                wmma::mma_sync(acc, fa[kt], fb, acc);
            }
            gc_spill(acc, scr, lane, [&](int rr, int cc, float v) {
                int r = rt * 16 + rr, i = ct * 16 + cc;
                float p = i <= r && r < len ? v * expf(sg[r] - sg[i]) : 0.0f;
                Pg[r * C + i] = gc_bf(p);
            });
        }
    }
    __syncthreads(); /* scratch (in A) free */
    /* A = K K^T, lower tiles, straight into A (fp32) */
    {
        gc_fa fa[KT];
#pragma unroll
        for (int kt = 0; kt < KT; kt++)
            wmma::load_matrix_sync(fa[kt], kb + rt * 16 * DK + kt * 16, DK);
        for (int ct = 0; ct <= rt; ct++) {
            gc_acc acc;
            wmma::fill_fragment(acc, 0.0f);
#pragma unroll
            for (int kt = 0; kt < KT; kt++) {
                gc_fb_t fb;
                wmma::load_matrix_sync(fb, kb + ct * 16 * DK + kt * 16, DK);
                wmma::mma_sync(acc, fa[kt], fb, acc);
            }
            wmma::store_matrix_sync(A + rt * 16 * C + ct * 16, acc, C, wmma::mem_row_major);
        }
    }
    __syncthreads();
    /* scale, mask strictly lower (select: the upper factors would overflow and
     * the upper tiles were never written) */
    for (int e = tid; e < C * C; e += GC_THREADS) {
        int i = e >> 6, j = e & 63;
        float a = A[e];
        A[e] = j < i && i < len ? sbt[i] * a * expf(sg[i] - sg[j]) : 0.0f;
    }
    __syncthreads();
    /* diagonal 16x16 blocks: (I + L)^-1 by forward substitution; lane j keeps
     * column j in registers */
    {
        const int j = lane & 15;
        float *Ab = A + warp * 16 * C + warp * 16;
        float t[16];
#pragma unroll
        for (int i = 0; i < 16; i++)
            t[i] = i == j ? 1.0f : 0.0f;
#pragma unroll
        for (int i = 1; i < 16; i++) {
            float s = 0.0f;
#pragma unroll
            for (int m = 0; m < i; m++)
                s = fmaf(Ab[i * C + m], t[m], s);
            if (i > j)
                t[i] = -s;
        }
        __syncwarp();
        if (lane < 16) {
#pragma unroll
            for (int i = 0; i < 16; i++)
                Ab[i * C + j] = t[i];
        }
    }
    __syncthreads();
    /* block rows bi = 1..3: T_{bi,j} = -T_{bi,bi} sum_{m=j}^{bi-1} A_{bi,m} T_{m,j} */
    for (int bi = 1; bi < 4; bi++) {
        for (int e = tid; e < bi * 256; e += GC_THREADS) {
            int jb = e >> 8, rr = (e >> 4) & 15, cc = e & 15;
            const float *ar = A + (bi * 16 + rr) * C;
            float s = 0.0f;
            for (int u = jb * 16; u < bi * 16; u++)
                s = fmaf(ar[u], A[u * C + jb * 16 + cc], s);
            X[e] = s;
        }
        __syncthreads();
        for (int e = tid; e < bi * 256; e += GC_THREADS) {
            int jb = e >> 8, rr = (e >> 4) & 15, cc = e & 15;
            const float *tr = A + (bi * 16 + rr) * C + bi * 16;
            float s = 0.0f;
#pragma unroll
            for (int u = 0; u < 16; u++)
                s = fmaf(tr[u], X[jb * 256 + u * 16 + cc], s);
            A[(bi * 16 + rr) * C + jb * 16 + cc] = -s;
        }
        __syncthreads();
    }
    /* Tu = T diag(beta), Tw = -T diag(beta Gamma), bf16 (q is dead) */
    for (int e = tid; e < C * C; e += GC_THREADS) {
        int j = e & 63;
        float t = A[e];
        Tu[e] = gc_bf(t * sbt[j]);
        Tw[e] = gc_bf(-t * sbg[j]);
    }
    __syncthreads(); /* A free: scratch + V staging */
    kbf16 *Vs = (kbf16 *)(A + 4 * 256);
    /* U = Tu V, in column slices of 64 (T is lower triangular: kt <= rt) */
    for (int v0 = 0; v0 < Dv; v0 += 64) {
        const int wv = min(64, Dv - v0), ntv = wv >> 4;
        const float *vrow = y + 2 * KD + (size_t)h * Dv + v0;
        for (int e = tid; e < C * 64; e += GC_THREADS) {
            int r = e >> 6, cc = e & 63;
            Vs[e] = gc_bf(r < len && cc < wv ? vrow[(size_t)(tok0 + r) * CD + cc] : 0.0f);
        }
        __syncthreads();
        for (int ct = 0; ct < ntv; ct++) {
            gc_acc acc;
            wmma::fill_fragment(acc, 0.0f);
            for (int kt = 0; kt <= rt; kt++) {
                gc_fa fa;
                gc_fb fb;
                wmma::load_matrix_sync(fa, Tu + rt * 16 * C + kt * 16, C);
                wmma::load_matrix_sync(fb, Vs + kt * 16 * 64 + ct * 16, 64);
                wmma::mma_sync(acc, fa, fb, acc);
            }
            gc_spill(acc, scr, lane, [&](int rr, int cc, float v) {
                Ug[(size_t)(rt * 16 + rr) * Dv + v0 + ct * 16 + cc] = gc_bf(v);
            });
        }
        __syncthreads();
    }
    /* Wn = -T diag(beta Gamma) K */
    for (int ct = 0; ct < KT; ct++) {
        gc_acc acc;
        wmma::fill_fragment(acc, 0.0f);
        for (int kt = 0; kt <= rt; kt++) {
            gc_fa fa;
            gc_fb fb;
            wmma::load_matrix_sync(fa, Tw + rt * 16 * C + kt * 16, C);
            wmma::load_matrix_sync(fb, kb + kt * 16 * DK + ct * 16, DK);
            wmma::mma_sync(acc, fa, fb, acc);
        }
        gc_spill(acc, scr, lane, [&](int rr, int cc, float v) {
            Wn[(rt * 16 + rr) * DK + ct * 16 + cc] = gc_bf(v);
        });
    }
}

/* ---------------- scan: per (V-slice, head, sequence) ---------------- */
template <typename ST> struct gc_io;
template <> struct gc_io<float> {
    static __device__ __forceinline__ float ld(const float *p) { return *p; }
    static __device__ __forceinline__ void st(float *p, float v) { *p = v; }
};
template <> struct gc_io<uint16_t> {
    static __device__ __forceinline__ float ld(const uint16_t *p) { return ku_bf(*p); }
    static __device__ __forceinline__ void st(uint16_t *p, float v) { *p = ku_to_bf(v); }
};

template <int DK, typename ST>
static __global__ void __launch_bounds__(GC_THREADS)
gdn_chunk_scan_kernel(const int32_t *__restrict__ plan, int N, const int32_t *__restrict__ slot,
                      const int32_t *__restrict__ has_init, int Hv, int Dv, ST *state,
                      size_t slot_stride, float *__restrict__ o, const kbf16 *__restrict__ work,
                      const float *__restrict__ gcw)
{
    constexpr int C = GC_C, BV = GC_BV, KT = DK / 16;
    __shared__ __align__(32) kbf16 Sb[DK * BV]; /* state slice, bf16 operand copy */
    __shared__ __align__(32) kbf16 Db[C * BV];  /* Delta, bf16 */
    __shared__ __align__(32) float scr_all[4 * 256];

    const int h = blockIdx.y, n = blockIdx.z, tid = threadIdx.x;
    const int lane = tid & 31, warp = tid >> 5;
    const int v0 = blockIdx.x * BV, ntv = min(BV, Dv - v0) >> 4;
    const int c0 = plan[n], c1 = plan[n + 1];
    if (c1 <= c0)
        return;
    const int sl = slot[n];
    const bool init = sl >= 0 && has_init[n] != 0;
    ST *Sg = sl >= 0 ? state + (size_t)sl * slot_stride + (size_t)h * DK * Dv + v0 : nullptr;
    float *scr = scr_all + warp * 256;
    const bool own = warp < ntv; /* owns state column tile `warp` */
    const size_t per = gc_per(DK, Dv), VD = (size_t)Hv * Dv;
    const int rt = warp;

    gc_acc S[KT];
#pragma unroll
    for (int t = 0; t < KT; t++) {
        if (own) {
#pragma unroll
            for (int e = lane; e < 256; e += 32)
                scr[e] = init ? gc_io<ST>::ld(Sg + (size_t)(t * 16 + (e >> 4)) * Dv +
                                              warp * 16 + (e & 15))
                              : 0.0f;
            __syncwarp();
            wmma::load_matrix_sync(S[t], scr, 16, wmma::mem_row_major);
#pragma unroll
            for (int e = lane; e < 256; e += 32)
                Sb[(t * 16 + (e >> 4)) * BV + warp * 16 + (e & 15)] = gc_bf(scr[e]);
            __syncwarp();
        } else {
            wmma::fill_fragment(S[t], 0.0f);
        }
    }
    __syncthreads();

    for (int c = c0; c < c1; c++) {
        const int tok0 = plan[N + 1 + 2 * c], len = plan[N + 2 + 2 * c];
        const kbf16 *wp = work + ((size_t)c * Hv + h) * per;
        const kbf16 *Wn = wp, *Qt = wp + C * DK, *Kt = wp + 2 * C * DK, *Ug = wp + 3 * C * DK,
                    *Pg = Ug + (size_t)C * Dv;
        const float gC = gcw[(size_t)c * Hv + h];
        const bool act = rt * 16 < len; /* this warp's rows hold tokens */

        /* Delta = U + Wn S (rows of this warp's tile) */
        if (act) {
            gc_fa fa[KT];
#pragma unroll
            for (int kt = 0; kt < KT; kt++)
                wmma::load_matrix_sync(fa[kt], Wn + rt * 16 * DK + kt * 16, DK);
            for (int ct = 0; ct < ntv; ct++) {
#pragma unroll
                for (int e = lane; e < 256; e += 32)
                    scr[e] = gc_f(Ug[(size_t)(rt * 16 + (e >> 4)) * Dv + v0 + ct * 16 + (e & 15)]);
                __syncwarp();
                gc_acc acc;
                wmma::load_matrix_sync(acc, scr, 16, wmma::mem_row_major);
                __syncwarp();
#pragma unroll
                for (int kt = 0; kt < KT; kt++) {
                    gc_fb fb;
                    wmma::load_matrix_sync(fb, Sb + kt * 16 * BV + ct * 16, BV);
                    wmma::mma_sync(acc, fa[kt], fb, acc);
                }
                gc_spill(acc, scr, lane, [&](int rr, int cc, float v) {
                    Db[(rt * 16 + rr) * BV + ct * 16 + cc] = gc_bf(v);
                });
            }
        } else {
            for (int e = lane; e < 16 * BV; e += 32)
                Db[rt * 16 * BV + e] = gc_bf(0.0f);
        }
        __syncthreads();

        /* O = Q~ S + P Delta */
        if (act) {
            gc_fa fa[KT];
#pragma unroll
            for (int kt = 0; kt < KT; kt++)
                wmma::load_matrix_sync(fa[kt], Qt + rt * 16 * DK + kt * 16, DK);
            for (int ct = 0; ct < ntv; ct++) {
                gc_acc acc;
                wmma::fill_fragment(acc, 0.0f);
#pragma unroll
                for (int kt = 0; kt < KT; kt++) {
                    gc_fb fb;
                    wmma::load_matrix_sync(fb, Sb + kt * 16 * BV + ct * 16, BV);
                    wmma::mma_sync(acc, fa[kt], fb, acc);
                }
                for (int kt = 0; kt <= rt; kt++) {
                    gc_fa pa;
                    gc_fb fb;
                    wmma::load_matrix_sync(pa, Pg + rt * 16 * C + kt * 16, C);
                    wmma::load_matrix_sync(fb, Db + kt * 16 * BV + ct * 16, BV);
                    wmma::mma_sync(acc, pa, fb, acc);
                }
                float *orow = o + (size_t)tok0 * VD + (size_t)h * Dv + v0 + ct * 16;
                gc_spill(acc, scr, lane, [&](int rr, int cc, float v) {
                    int r = rt * 16 + rr;
                    if (r < len)
                        orow[(size_t)r * VD + cc] = v;
                });
            }
        }

        /* S <- Gamma_C S + K~^T Delta (column tile `warp`) */
        if (own) {
            const int nkt = (len + 15) >> 4;
#pragma unroll
            for (int t = 0; t < KT; t++) {
#pragma unroll
                for (int i = 0; i < S[t].num_elements; i++)
                    S[t].x[i] *= gC;
                for (int kt = 0; kt < nkt; kt++) {
                    gc_fa_t ka;
                    gc_fb fb;
                    wmma::load_matrix_sync(ka, Kt + kt * 16 * DK + t * 16, DK);
                    wmma::load_matrix_sync(fb, Db + kt * 16 * BV + warp * 16, BV);
                    wmma::mma_sync(S[t], ka, fb, S[t]);
                }
            }
        }
        __syncthreads(); /* everyone is done reading Sb and Db */
        if (own) {
#pragma unroll
            for (int t = 0; t < KT; t++)
                gc_spill(S[t], scr, lane, [&](int rr, int cc, float v) {
                    Sb[(t * 16 + rr) * BV + warp * 16 + cc] = gc_bf(v);
                });
        }
        __syncthreads();
    }

    if (Sg && own) {
#pragma unroll
        for (int t = 0; t < KT; t++)
            gc_spill(S[t], scr, lane, [&](int rr, int cc, float v) {
                gc_io<ST>::st(Sg + (size_t)(t * 16 + rr) * Dv + warp * 16 + cc, v);
            });
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
    return (size_t)nchunks * Hv * (gc_per(Dk, Dv) * 2 + 4);
}

template <int DK>
static int gc_launch(const float *y, const float *g, const float *beta, int N,
                     const int32_t *plan, int nchunks, const int32_t *slot,
                     const int32_t *has_init, int Hk, int Hv, int Dv, float scale, void *state,
                     int state_bf16, size_t slot_stride, float *o, void *work, cudaStream_t s)
{
    kbf16 *wk = (kbf16 *)work;
    float *gcw = (float *)(wk + (size_t)nchunks * Hv * gc_per(DK, Dv));
    dim3 ga(nchunks, Hv);
    gdn_chunk_prep_kernel<DK><<<ga, GC_THREADS, 0, s>>>(
        y, g, beta, plan, N, Hk, Hv, Dv, scale, wk, gcw);
    dim3 grid((Dv + GC_BV - 1) / GC_BV, Hv, N);
    if (state_bf16)
        gdn_chunk_scan_kernel<DK, uint16_t><<<grid, GC_THREADS, 0, s>>>(
            plan, N, slot, has_init, Hv, Dv, (uint16_t *)state, slot_stride, o, wk, gcw);
    else
        gdn_chunk_scan_kernel<DK, float><<<grid, GC_THREADS, 0, s>>>(
            plan, N, slot, has_init, Hv, Dv, (float *)state, slot_stride, o, wk, gcw);
    return KU_LAUNCH_RESULT();
}

extern "C" int kern_gdn_chunk(const float *y, const float *g, const float *beta, int N,
                              const int32_t *plan, int nchunks, const int32_t *slot,
                              const int32_t *has_init, int Hk, int Hv, int Dk, int Dv,
                              float scale, void *state, int state_bf16, size_t slot_stride,
                              float *o, void *work, size_t work_bytes, cudaStream_t s)
{
    if (N <= 0 || nchunks <= 0)
        return 0;
    if (!gc_shape_ok(Hv, Dk, Dv) || Hk < 1 || Hv % Hk || N > 65535 || !work ||
        ((uintptr_t)work & 255) || work_bytes < kern_gdn_chunk_work_bytes(nchunks, Hv, Dk, Dv))
        return (int)cudaErrorInvalidValue;
#define GC_CASE(D)                                                                           \
    case D:                                                                                  \
        return gc_launch<D>(y, g, beta, N, plan, nchunks, slot, has_init, Hk, Hv, Dv, scale, \
                            state, state_bf16, slot_stride, o, work, s)
    switch (Dk) {
        GC_CASE(16);
        GC_CASE(32);
        GC_CASE(48);
        GC_CASE(64);
        GC_CASE(80);
        GC_CASE(96);
    }
#undef GC_CASE
    return (int)cudaErrorInvalidValue;
}
