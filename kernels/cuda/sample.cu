/* kernels/cuda/sample.cu: GPU token sampling, one CTA per sampled row
 * (contract in sample.h; semantics are engine/sampling.c's, step by step).
 * Launched from the engine thread.
 *
 * Per row: raw argmax and log-sum-exp (double sum of expf terms), top-k
 * log-prob alternatives by a 4-pass 8-bit radix select of the k-th largest
 * key plus an id-ordered gather; then, into the row's scratch, logit_bias
 * (sequential, as the CPU adds duplicates in order), bans, penalties over the
 * distinct history tokens; argmax; for sampling: top_k by radix select,
 * probabilities expf((w - max) * invt) in place, top_p exactly as
 * sampling.c's top_p_mask (shrinking candidate threshold; <= 4096 candidates
 * sorted in shared memory by (p desc, id asc) and cut where the cumulative
 * mass reaches top_p; more: the same 24-step bisection with the same 16
 * float lanes over the candidates in id order), min_p, and the inverse-CDF
 * draw in id order (per-thread contiguous chunks, so the walk is in id
 * order; only the association of the double sums differs from the CPU).
 *
 * Float operations the CPU performs one by one use __f*_rn so nvcc does not
 * contract them into FMAs (which would change roundings).
 */
#include <limits.h>
#include <math.h>

#include "kernels/cuda/kern_util.h"
#include "kernels/cuda/sample.h"
#include "engine/philox.h"

#ifdef DS_CUDA_EMU
/* The CPU emulator (tools/cuda-emu) lacks these intrinsics. Its fibers
 * switch only at barriers, so a plain read-modify-write is atomic there. */
static inline unsigned __float_as_uint(float f)
{
    unsigned u;
    memcpy(&u, &f, 4);
    return u;
}
static inline float __int_as_float(int i)
{
    float f;
    memcpy(&f, &i, 4);
    return f;
}
static inline float __fadd_rn(float a, float b) { return a + b; }
static inline float __fsub_rn(float a, float b) { return a - b; }
static inline float __fmul_rn(float a, float b) { return a * b; }
static inline float __fdiv_rn(float a, float b) { return a / b; }
static inline unsigned atomicAdd(unsigned *p, unsigned v)
{
    unsigned o = *p;
    *p = o + v;
    return o;
}
#define SAMP_NT 256 /* fewer fibers per block: the emulator pays per thread switch */
#else
#define SAMP_NT 1024
#endif

#define FULLM 0xffffffffu
#define SORT_CAP 4096 /* sampling.c sorts at most 4096 top_p candidates */

/* --- the counter-based uniform (samp_rng_uniform, bit for bit) ------------- */

static __device__ __forceinline__ double ks_uniform(uint64_t seed, uint64_t stream,
                                                    uint64_t counter)
{
    return philox_uniform(seed, stream, counter); /* engine/philox.h, shared */
}

/* --- block primitives (blockDim.x a multiple of 32, <= 1024) ---------------- */

/* Order-preserving key of a float (descending value = descending key); -0 is
 * folded into +0 because the CPU compares floats, where they are equal. */
static __device__ __forceinline__ unsigned ks_key(float x)
{
    unsigned u = __float_as_uint(x + 0.0f);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

/* (v, i) beats (bv, bi): larger value, then lower id (the CPU's first max). */
static __device__ __forceinline__ bool ks_better(float v, int i, float bv, int bi)
{
    return v > bv || (v == bv && i < bi);
}

/* Every thread gets the block's best (v, i). */
static __device__ void ks_block_argmax(float *v, int *i, float *shf, int *shi)
{
    int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
    float a = *v;
    int ai = *i;
    for (int o = 16; o > 0; o >>= 1) {
        float b = __shfl_xor_sync(FULLM, a, o);
        int bi = __shfl_xor_sync(FULLM, ai, o);
        if (ks_better(b, bi, a, ai)) {
            a = b;
            ai = bi;
        }
    }
    __syncthreads();
    if (lane == 0) {
        shf[wid] = a;
        shi[wid] = ai;
    }
    __syncthreads();
    a = lane < nw ? shf[lane] : -INFINITY;
    ai = lane < nw ? shi[lane] : INT_MAX;
    for (int o = 16; o > 0; o >>= 1) {
        float b = __shfl_xor_sync(FULLM, a, o);
        int bi = __shfl_xor_sync(FULLM, ai, o);
        if (ks_better(b, bi, a, ai)) {
            a = b;
            ai = bi;
        }
    }
    *v = a;
    *i = ai;
}

/* Block-wide argmax of x[0..V) (lowest index on a tie): every thread gets it. */
static __device__ void ks_argmax(const float *x, int V, float *mx, int *arg, float *shf,
                                 int *shi)
{
    float m = -INFINITY;
    int a = INT_MAX;
    for (int i = threadIdx.x; i < V; i += blockDim.x) {
        float v = x[i];
        if (ks_better(v, i, m, a)) {
            m = v;
            a = i;
        }
    }
    ks_block_argmax(&m, &a, shf, shi);
    *mx = m;
    *arg = a;
}

struct ks_add {
    template <class T> __device__ T operator()(T a, T b) const { return a + b; }
};
struct ks_min {
    template <class T> __device__ T operator()(T a, T b) const { return b < a ? b : a; }
};
struct ks_max {
    template <class T> __device__ T operator()(T a, T b) const { return b > a ? b : a; }
};

/* Reduction over the block; every thread gets the result (xor butterflies
 * leave every lane with the same value, so all threads agree bit for bit). */
template <class T, class Op> static __device__ T ks_block_reduce(T v, T ident, Op op, T *sh)
{
    int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
    for (int o = 16; o > 0; o >>= 1)
        v = op(v, __shfl_xor_sync(FULLM, v, o));
    __syncthreads();
    if (lane == 0)
        sh[wid] = v;
    __syncthreads();
    v = lane < nw ? sh[lane] : ident;
    for (int o = 16; o > 0; o >>= 1)
        v = op(v, __shfl_xor_sync(FULLM, v, o));
    return v;
}

/* Exclusive prefix sum over the block in thread order; *total gets the sum. */
template <class T> static __device__ T ks_block_excl_scan(T v, T *sh, T *total)
{
    int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
    T x = v;
    for (int d = 1; d < 32; d <<= 1) {
        T y = __shfl_sync(FULLM, x, lane >= d ? lane - d : 0);
        if (lane >= d)
            x += y;
    }
    T ex = __shfl_sync(FULLM, x, lane > 0 ? lane - 1 : 0);
    if (lane == 0)
        ex = (T)0;
    __syncthreads();
    if (lane == 31)
        sh[wid] = x;
    __syncthreads();
    if (wid == 0) {
        T w = lane < nw ? sh[lane] : (T)0;
        for (int d = 1; d < 32; d <<= 1) {
            T y = __shfl_sync(FULLM, w, lane >= d ? lane - d : 0);
            if (lane >= d)
                w += y;
        }
        sh[lane] = w;
    }
    __syncthreads();
    *total = sh[nw - 1];
    return (wid > 0 ? sh[wid - 1] : (T)0) + ex;
}

/* Gathers x[i] (and i) for every i in [0, n) with pred(x[i], i), in id order,
 * the first cap of them into ov / oi (oi may be NULL). Each thread owns a
 * contiguous chunk, so thread order is id order. Returns the full count. */
template <class P>
static __device__ int ks_block_compact(const float *x, int n, P pred, float *ov, int *oi, int cap,
                                       int *shi)
{
    int chunk = (n + (int)blockDim.x - 1) / (int)blockDim.x;
    int b0 = (int)threadIdx.x * chunk, b1 = min(n, b0 + chunk);
    int c = 0;
    for (int i = b0; i < b1; i++)
        c += pred(x[i], i) ? 1 : 0;
    int total;
    int pos = ks_block_excl_scan<int>(c, shi, &total);
    for (int i = b0; i < b1 && pos < cap; i++)
        if (pred(x[i], i)) {
            ov[pos] = x[i];
            if (oi)
                oi[pos] = i;
            pos++;
        }
    __syncthreads();
    return total;
}

/* Key of the k-th largest (1 <= k <= n) of x[n]: 4 passes of 8-bit digits,
 * a 256-bin shared histogram per pass; warp 0 finds the digit. */
static __device__ unsigned ks_kth_key(const float *x, int n, int k, unsigned *hist, int *sh2)
{
    unsigned prefix = 0, mask = 0;
    for (int shift = 24; shift >= 0; shift -= 8) {
        for (int i = threadIdx.x; i < 256; i += blockDim.x)
            hist[i] = 0;
        __syncthreads();
        for (int i = threadIdx.x; i < n; i += blockDim.x) {
            unsigned key = ks_key(x[i]);
            if ((key & mask) == prefix)
                atomicAdd(&hist[(key >> shift) & 255u], 1u);
        }
        __syncthreads();
        if (threadIdx.x < 32) {
            int lane = threadIdx.x;
            unsigned c = 0;
            for (int j = 0; j < 8; j++)
                c += hist[255 - 8 * lane - j];
            unsigned inc = c;
            for (int d = 1; d < 32; d <<= 1) {
                unsigned y = __shfl_sync(FULLM, inc, lane >= d ? lane - d : 0);
                if (lane >= d)
                    inc += y;
            }
            unsigned before = inc - c;
            if (before < (unsigned)k && (unsigned)k <= inc) {
                unsigned cc = before;
                for (int j = 0; j < 8; j++) {
                    int dg = 255 - 8 * lane - j;
                    if (cc + hist[dg] >= (unsigned)k) {
                        sh2[0] = dg;
                        sh2[1] = k - (int)cc;
                        break;
                    }
                    cc += hist[dg];
                }
            }
        }
        __syncthreads();
        prefix |= (unsigned)sh2[0] << shift;
        mask |= 255u << shift;
        k = sh2[1];
    }
    return prefix;
}

/* --- the sampler ------------------------------------------------------------ */

static __global__ void __launch_bounds__(SAMP_NT)
sample_kernel(const float *logits, int V, const struct kern_samp_job *jobs,
              const int32_t *pool, float *work, struct samp_result *out, float *margin)
{
    __shared__ double shd[32];
    __shared__ float shf[32];
    __shared__ int shi[32];
    __shared__ unsigned hist[256];
    __shared__ int sh2[2];
    __shared__ float shlo[2];
    __shared__ float lane_acc[16];
    __shared__ float sv[SORT_CAP];
    __shared__ int si[SORT_CAP];
    __shared__ float tv[SAMP_MAX_LOGPROBS];
    __shared__ int ti[SAMP_MAX_LOGPROBS];

    const int tid = threadIdx.x, nt = blockDim.x;
    const struct kern_samp_job J = jobs[blockIdx.x];
    const float *raw = logits + (size_t)J.row * V;
    float *A = work + (size_t)blockIdx.x * 2 * V; /* processed logits, then probabilities */
    float *B = A + V;                             /* bisection candidates */
    float mg = 1.0f;                              /* this thread's smallest decision margin */

    /* raw argmax: the all-banned fallback, and the max for the log-probs */
    float rmax;
    int rarg;
    ks_argmax(raw, V, &rmax, &rarg, shf, shi);

    /* raw log-probs (logsumexp of sampling.c) and the top alternatives */
    double lse = 0.0;
    int ntop = 0;
    if (J.num_logprobs >= 0) {
        if (!isfinite(rmax)) {
            lse = rmax;
        } else {
            double s = 0.0;
            for (int i = tid; i < V; i += nt)
                s += expf(raw[i] - rmax);
            s = ks_block_reduce<double>(s, 0.0, ks_add(), shd);
            lse = rmax + log(s);
        }
        int k = min(J.num_logprobs, V);
        if (k > 0) {
            unsigned kk = ks_kth_key(raw, V, k, hist, sh2);
            int g = ks_block_compact(
                raw, V, [=](float v, int) { return ks_key(v) > kk; }, tv, ti, k, shi);
            ks_block_compact(
                raw, V, [=](float v, int) { return ks_key(v) == kk; }, tv + g, ti + g,
                k - g, shi);
            if (tid == 0) /* insertion sort: value descending, ties by id (gathered in id order) */
                for (int a = 1; a < k; a++) {
                    float v = tv[a];
                    int vi = ti[a], b = a;
                    while (b > 0 && ks_better(v, vi, tv[b - 1], ti[b - 1])) {
                        tv[b] = tv[b - 1];
                        ti[b] = ti[b - 1];
                        b--;
                    }
                    tv[b] = v;
                    ti[b] = vi;
                }
            ntop = k;
        }
    }

    /* processed logits: bias, bans, penalties (each phase after the last) */
    const bool mods = J.nbias > 0 || J.nban > 0 || J.npen > 0;
    const float *w = raw;
    float wmax = rmax;
    int warg = rarg;
    if (mods) {
        for (int i = tid; i < V; i += nt)
            A[i] = raw[i];
        __syncthreads();
        if (tid == 0)
            for (int b = 0; b < J.nbias; b++) {
                int t = pool[J.bias_off + 2 * b];
                if (t >= 0 && t < V)
                    A[t] = __fadd_rn(A[t], __int_as_float(pool[J.bias_off + 2 * b + 1]));
            }
        __syncthreads();
        for (int b = tid; b < J.nban; b += nt) {
            int t = pool[J.ban_off + b];
            if (t >= 0 && t < V)
                A[t] = -INFINITY;
        }
        __syncthreads();
        const bool rep = J.rep != 1.0f, fp = J.freq != 0.0f || J.pres != 0.0f;
        for (int e = tid; e < J.npen; e += nt) { /* distinct tokens: no write conflicts */
            int t = pool[J.pen_off + 2 * e], cnt = pool[J.pen_off + 2 * e + 1];
            if (t < 0 || t >= V)
                continue;
            float x = A[t];
            if (rep)
                x = x > 0.0f ? __fdiv_rn(x, J.rep) : __fmul_rn(x, J.rep);
            if (fp && cnt > 0)
                x = __fsub_rn(x, __fadd_rn(__fmul_rn(J.freq, (float)cnt), J.pres));
            A[t] = x;
        }
        __syncthreads();
        w = A;
        ks_argmax(A, V, &wmax, &warg, shf, shi);
    }

    int chosen;
    if (!(wmax > -INFINITY)) {
        chosen = rarg; /* everything banned: the raw argmax */
    } else if (J.greedy) {
        chosen = warg;
    } else {
        /* top_k: every w below the k-th largest drops out */
        unsigned kkey = 0u;
        if (J.top_k > 0)
            kkey = ks_kth_key(w, V, J.top_k, hist, sh2);
        /* probabilities in place (the max maps to exactly 1), unnormalised total */
        double tot = 0.0;
        for (int i = tid; i < V; i += nt) {
            float x = w[i];
            float p = ks_key(x) < kkey ? 0.0f : expf(__fmul_rn(__fsub_rn(x, wmax), J.invt));
            A[i] = p;
            tot += p;
        }
        double total = ks_block_reduce<double>(tot, 0.0, ks_add(), shd);

        if (J.top_p < 1.0f) {
            const double need = (double)J.top_p * total;
            float thr = 1.0f / 64.0f;
            int m;
            for (;;) {
                double ms = 0.0;
                int c = 0;
                for (int i = tid; i < V; i += nt) {
                    float p = A[i];
                    if (p > 0.0f && p >= thr) {
                        c++;
                        ms += p;
                    }
                }
                ms = ks_block_reduce<double>(ms, 0.0, ks_add(), shd);
                m = ks_block_reduce<int>(c, 0, ks_add(), shi);
                double lim = need * (1.0 - 1e-9);
                if (ms >= lim || thr == 0.0f) {
                    if (thr != 0.0f)
                        mg = fminf(mg, (float)(fabs(ms - lim) / total));
                    break;
                }
                mg = fminf(mg, (float)(fabs(ms - lim) / total));
                thr = thr > 1e-30f ? thr / 4096.0f : 0.0f;
            }
            if (m > SORT_CAP) {
                /* flat distribution: sampling.c's bisection, same lanes, same order */
                const float th = thr;
                ks_block_compact(
                    A, V, [=](float p, int) { return p > 0.0f && p >= th; }, B,
                    (int *)0, V, shi);
                float lo = 0.0f, hi = 1.0f;
                const int full = (m / 16) * 16;
                for (int it = 0; it < 24; it++) {
                    float mid = __fmul_rn(0.5f, __fadd_rn(lo, hi));
                    if (tid < 16) {
                        float acc = 0.0f;
                        for (int i = tid; i < full; i += 16) {
                            float v = B[i];
                            acc = __fadd_rn(acc, v >= mid ? v : 0.0f);
                        }
                        lane_acc[tid] = acc;
                    }
                    __syncthreads();
                    if (tid == 0) {
                        double ms = 0.0;
                        for (int l = 0; l < 16; l++)
                            ms += lane_acc[l];
                        for (int i = full; i < m; i++)
                            ms += B[i] >= mid ? B[i] : 0.0f;
                        bool up = ms >= need;
                        shlo[0] = up ? mid : lo;
                        shlo[1] = up ? hi : mid;
                        mg = fminf(mg, (float)(fabs(ms - need) / total));
                    }
                    __syncthreads();
                    lo = shlo[0];
                    hi = shlo[1];
                }
                for (int i = tid; i < V; i += nt)
                    if (A[i] < lo)
                        A[i] = 0.0f;
            } else {
                const float th = thr;
                ks_block_compact(
                    A, V, [=](float p, int) { return p > 0.0f && p >= th; }, sv, si,
                    SORT_CAP, shi);
                int P = 1;
                while (P < m)
                    P <<= 1;
                for (int i = m + tid; i < P; i += nt) {
                    sv[i] = -1.0f;
                    si[i] = INT_MAX;
                }
                __syncthreads();
                /* bitonic sort into (p desc, id asc) */
                for (int k = 2; k <= P; k <<= 1)
                    for (int j = k >> 1; j > 0; j >>= 1) {
                        for (int i = tid; i < P; i += nt) {
                            int l = i ^ j;
                            if (l <= i)
                                continue;
                            bool first = ks_better(sv[i], si[i], sv[l], si[l]);
                            if (((i & k) == 0) ? !first : first) {
                                float tvv = sv[i];
                                sv[i] = sv[l];
                                sv[l] = tvv;
                                int tii = si[i];
                                si[i] = si[l];
                                si[l] = tii;
                            }
                        }
                        __syncthreads();
                    }
                /* the first sorted index whose cumulative mass reaches need */
                int chunk = (m + nt - 1) / nt, b0 = tid * chunk, b1 = min(m, b0 + chunk);
                double cs = 0.0;
                for (int i = b0; i < b1; i++)
                    cs += sv[i];
                double tsum;
                double c = ks_block_excl_scan<double>(cs, shd, &tsum);
                int first = INT_MAX;
                float mloc = 1.0f;
                for (int i = b0; i < b1; i++) {
                    double prev = c;
                    c += sv[i];
                    if (c >= need) {
                        first = i;
                        mloc = (float)(fmin(c - need, need - prev) / total);
                        break;
                    }
                }
                int gfirst = ks_block_reduce<int>(first, INT_MAX, ks_min(), shi);
                if (first == gfirst && gfirst != INT_MAX)
                    mg = fminf(mg, mloc);
                int keep = gfirst == INT_MAX ? m : gfirst + 1;
                const float pv = sv[keep - 1];
                const int pi = si[keep - 1];
                for (int i = tid; i < V; i += nt) {
                    float p = A[i];
                    if (!(p > pv || (p == pv && i <= pi)))
                        A[i] = 0.0f;
                }
            }
            double t2 = 0.0;
            for (int i = tid; i < V; i += nt)
                t2 += A[i];
            total = ks_block_reduce<double>(t2, 0.0, ks_add(), shd);
        }
        if (J.min_p > 0.0f) {
            const float thr = J.min_p; /* min_p * pmax, pmax = 1 */
            double t2 = 0.0;
            for (int i = tid; i < V; i += nt) {
                float p = A[i];
                if (p > 0.0f)
                    mg = fminf(mg, fabsf(p - thr) / thr);
                if (p < thr) {
                    p = 0.0f;
                    A[i] = 0.0f;
                }
                t2 += p;
            }
            total = ks_block_reduce<double>(t2, 0.0, ks_add(), shd);
        }

        /* inverse-CDF draw in id order */
        const double u = ks_uniform(J.seed, J.stream, J.counter) * total;
        int chunk = (V + nt - 1) / nt, b0 = tid * chunk, b1 = min(V, b0 + chunk);
        double cs = 0.0;
        for (int i = b0; i < b1; i++) {
            float p = A[i];
            if (p > 0.0f)
                cs += p;
        }
        double tsum;
        double c = ks_block_excl_scan<double>(cs, shd, &tsum);
        int found = INT_MAX, lastpos = -1;
        float mloc = 1.0f;
        for (int i = b0; i < b1; i++) {
            float p = A[i];
            if (!(p > 0.0f))
                continue;
            lastpos = i;
            double prev = c;
            c += p;
            if (u < c) {
                found = i;
                mloc = (float)(fmin(u - prev, c - u) / total);
                break;
            }
        }
        int gfound = ks_block_reduce<int>(found, INT_MAX, ks_min(), shi);
        if (gfound != INT_MAX) {
            if (found == gfound)
                mg = fminf(mg, mloc);
            chosen = gfound;
        } else {
            int last = ks_block_reduce<int>(lastpos, -1, ks_max(), shi);
            chosen = last >= 0 ? last : rarg;
        }
    }

    if (margin) {
        float gm = ks_block_reduce<float>(mg, 1.0f, ks_min(), shf);
        if (tid == 0)
            margin[blockIdx.x] = gm;
    }
    if (tid == 0) {
        struct samp_result *o = &out[blockIdx.x];
        o->token = chosen;
        o->logprob = 0.0f;
        o->num_top = 0;
        if (J.num_logprobs >= 0) {
            o->logprob = (float)((double)raw[chosen] - lse);
            o->num_top = ntop;
            for (int j = 0; j < ntop; j++) {
                o->top[j].token = ti[j];
                o->top[j].logprob = (float)((double)tv[j] - lse);
            }
        }
    }
}

static __global__ void uniform_kernel(const uint64_t *keys, int n, double *out)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n)
        out[i] = ks_uniform(keys[3 * i], keys[3 * i + 1], keys[3 * i + 2]);
}

extern "C" int kern_sample(const float *logits, int vocab, const struct kern_samp_job *jobs,
                           const int32_t *pool, int njobs, float *work, struct samp_result *out,
                           float *margin, cudaStream_t s)
{
    if (njobs <= 0)
        return 0;
    if (vocab <= 0)
        return (int)cudaErrorInvalidValue;
    sample_kernel<<<njobs, SAMP_NT, 0, s>>>(logits, vocab, jobs, pool, work, out, margin);
    return (int)cudaGetLastError();
}

extern "C" int kern_samp_uniform(const uint64_t *keys, int n, double *out, cudaStream_t s)
{
    if (n <= 0)
        return 0;
    uniform_kernel<<<(n + 127) / 128, 128, 0, s>>>(keys, n, out);
    return (int)cudaGetLastError();
}
