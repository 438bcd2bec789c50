/* kernels/cuda/attn_prep.cu: q/k RMSNorm + RoPE + KV cache write, one block
 * of 256 threads per token (kern_attn_prep). Engine thread launches it.
 *
 * Each thread owns whole (i, i + D/2) pairs of a head. Up to AP_MAXP pairs
 * a thread (q or k up to 8192 wide) the pairs, their weights and the v
 * elements are loaded into registers, every load issued before the first
 * use: the decode step runs this as one block on one SM, and a strided
 * load-then-use loop would wait out one memory latency per iteration (the
 * unfused norms took 10-13 us a call that way). The sums of squares then run
 * in pair order, so the result can differ from the four-launch path by an
 * fp32 rounding of the norm. Wider rows take the strided form (AP_ANY),
 * whose sums use rmsnorm.cu's in-place stride and order. The norm and
 * rotation are the same expressions as rmsnorm.cu, rope.cu and kv_write.cu.
 * In the strided form, after the reductions each thread owns
 * whole (i, i + D/2) pairs of a head: it normalizes both elements, rotates
 * them and stores them, so no second barrier is needed. The barrier inside
 * the reduction also orders every thread's reads of q and k before any
 * write of q. With 256 threads and D/2 dividing 256 a thread keeps the same
 * i in every pair it owns, so its sincosf is computed once and reused. */
#include "kernels/cuda/attn_prep.h"
#include "kernels/cuda/kern_util.h"

#define AP_THREADS 256

/* Normalize (with weight w and inverse rms inv) and, with RoPE, rotate one
 * pair (x1 = element i, x2 = element i + D/2 of a head). cs/sn/ci cache the
 * pair's angle by frequency index. */
static __device__ __forceinline__ void ap_pair(float *x1, float *x2, float w1, float w2,
                                               float inv, int i, float pos,
                                               const float *inv_freq, float mscale, int *ci,
                                               float *cs, float *sn)
{
    float a = w1 * (*x1 * inv), b = w2 * (*x2 * inv);
    if (inv_freq) {
        if (i != *ci) {
            sincosf(pos * inv_freq[i], sn, cs);
            *cs *= mscale;
            *sn *= mscale;
            *ci = i;
        }
        float c = *cs, s = *sn;
        float r1 = a * c - b * s;
        float r2 = b * c + a * s;
        a = r1;
        b = r2;
    }
    *x1 = a;
    *x2 = b;
}

/* The register form: PPT pairs of q and of k per thread (pair j = tid +
 * r * AP_THREADS), 2 * PPT v elements. */
template <int PPT>
static __device__ __forceinline__ void attn_prep_regs(float *q, const float *k, const float *v,
                                                      int Hq, int Hkv, int D, const float *q_w,
                                                      const float *k_w, float eps, float pos,
                                                      const float *inv_freq, float mscale,
                                                      int bs, int sm, uint16_t *kc,
                                                      uint16_t *vc, float *red)
{
    int half = D / 2, QD = Hq * D, KVD = Hkv * D, np_q = Hq * half, np_k = Hkv * half;
    float q1[PPT], q2[PPT], wq1[PPT], wq2[PPT], k1[PPT], k2[PPT], wk1[PPT], wk2[PPT];
    float vv[2 * PPT];
    int qc[PPT], kcn[PPT];
#pragma unroll
    for (int r = 0; r < PPT; r++) {
        int j = threadIdx.x + r * AP_THREADS, h = j / half, c = h * D + (j - h * half);
        bool okq = j < np_q, okk = sm >= 0 && j < np_k;
        qc[r] = c;
        kcn[r] = c;
        q1[r] = okq ? q[c] : 0.0f;
        q2[r] = okq ? q[c + half] : 0.0f;
        wq1[r] = okq ? q_w[c] : 0.0f;
        wq2[r] = okq ? q_w[c + half] : 0.0f;
        k1[r] = okk ? k[c] : 0.0f;
        k2[r] = okk ? k[c + half] : 0.0f;
        wk1[r] = okk ? k_w[c] : 0.0f;
        wk2[r] = okk ? k_w[c + half] : 0.0f;
    }
#pragma unroll
    for (int r = 0; r < 2 * PPT; r++) {
        int e = threadIdx.x + r * AP_THREADS;
        vv[r] = sm >= 0 && e < KVD ? v[e] : 0.0f;
    }
    float ssq = 0.0f, ssk = 0.0f;
#pragma unroll
    for (int r = 0; r < PPT; r++) {
        ssq += q1[r] * q1[r] + q2[r] * q2[r];
        ssk += k1[r] * k1[r] + k2[r] * k2[r];
    }
    ssq = ku_block_sum(ssq, red);
    float iq = rsqrtf(ssq / (float)QD + eps), ik = 0.0f;
    if (sm >= 0) { /* block-uniform */
        ssk = ku_block_sum(ssk, red);
        ik = rsqrtf(ssk / (float)KVD + eps);
    }
    int ci = -1;
    float cs = 0.0f, sn = 0.0f;
#pragma unroll
    for (int r = 0; r < PPT; r++) {
        int j = threadIdx.x + r * AP_THREADS;
        if (j < np_q) {
            int i = j % half;
            ap_pair(&q1[r], &q2[r], wq1[r], wq2[r], iq, i, pos, inv_freq, mscale, &ci, &cs, &sn);
            q[qc[r]] = q1[r];
            q[qc[r] + half] = q2[r];
        }
    }
    if (sm < 0)
        return;
    int blk = sm / bs, off = sm - blk * bs;
#pragma unroll
    for (int r = 0; r < PPT; r++) {
        int j = threadIdx.x + r * AP_THREADS;
        if (j < np_k) {
            int h = j / half, i = j - h * half;
            ap_pair(&k1[r], &k2[r], wk1[r], wk2[r], ik, i, pos, inv_freq, mscale, &ci, &cs,
                    &sn);
            size_t dst = (((size_t)blk * Hkv + h) * bs + off) * D + i;
            kc[dst] = ku_to_bf(k1[r]);
            kc[dst + half] = ku_to_bf(k2[r]);
        }
    }
#pragma unroll
    for (int r = 0; r < 2 * PPT; r++) {
        int e = threadIdx.x + r * AP_THREADS;
        if (e < KVD) {
            int h = e / D, d = e - h * D;
            vc[(((size_t)blk * Hkv + h) * bs + off) * D + d] = ku_to_bf(vv[r]);
        }
    }
}

#define AP_MAXP 16
#define AP_ANY 0

template <int PPT>
static __global__ void __launch_bounds__(AP_THREADS)
attn_prep_kernel(float *qkv, int stride, int Hq, int Hkv, int D, const float *q_w,
                 const float *k_w, float eps, const int32_t *positions, const float *inv_freq,
                 float mscale, int bs, const int32_t *slot_map, uint16_t *kc, uint16_t *vc)
{
    __shared__ float red[32];
    int t = blockIdx.x, half = D / 2, QD = Hq * D, KVD = Hkv * D;
    float *q = qkv + (size_t)t * stride;
    const float *k = q + QD, *v = k + KVD;
    int sm = slot_map[t]; /* block-uniform: the k reduction below is too */
    if (PPT != AP_ANY) {
        attn_prep_regs<(PPT > 0 ? PPT : 1)>(q, k, v, Hq, Hkv, D, q_w, k_w, eps,
                                          inv_freq ? (float)positions[t] : 0.0f, inv_freq,
                                          mscale, bs, sm, kc, vc, red);
        return;
    }
    float ssq = 0.0f;
    for (int c = threadIdx.x; c < QD; c += blockDim.x)
        ssq += q[c] * q[c];
    ssq = ku_block_sum(ssq, red);
    float iq = rsqrtf(ssq / (float)QD + eps), ik = 0.0f;
    if (sm >= 0) {
        float ssk = 0.0f;
        for (int c = threadIdx.x; c < KVD; c += blockDim.x)
            ssk += k[c] * k[c];
        ssk = ku_block_sum(ssk, red);
        ik = rsqrtf(ssk / (float)KVD + eps);
    }
    float pos = inv_freq ? (float)positions[t] : 0.0f;
    int ci = -1;
    float cs = 0.0f, sn = 0.0f;
    for (int j = threadIdx.x; j < Hq * half; j += blockDim.x) {
        int h = j / half, i = j - h * half, c = h * D + i;
        float x1 = q[c], x2 = q[c + half];
        ap_pair(&x1, &x2, q_w[c], q_w[c + half], iq, i, pos, inv_freq, mscale, &ci, &cs, &sn);
        q[c] = x1;
        q[c + half] = x2;
    }
    if (sm < 0)
        return;
    int blk = sm / bs, off = sm - blk * bs;
    for (int j = threadIdx.x; j < Hkv * half; j += blockDim.x) {
        int h = j / half, i = j - h * half, c = h * D + i;
        float x1 = k[c], x2 = k[c + half];
        ap_pair(&x1, &x2, k_w[c], k_w[c + half], ik, i, pos, inv_freq, mscale, &ci, &cs, &sn);
        size_t dst = (((size_t)blk * Hkv + h) * bs + off) * D + i;
        kc[dst] = ku_to_bf(x1);
        kc[dst + half] = ku_to_bf(x2);
    }
    for (int j = threadIdx.x; j < KVD; j += blockDim.x) {
        int h = j / D, d = j - h * D;
        vc[(((size_t)blk * Hkv + h) * bs + off) * D + d] = ku_to_bf(v[j]);
    }
}

template <int P>
static void ap_launch(int T, cudaStream_t s, float *qkv, int stride, int Hq, int Hkv, int D,
                      const float *q_w, const float *k_w, float eps, const int32_t *positions,
                      const float *inv_freq, float mscale, int bs, const int32_t *slot_map,
                      uint16_t *kc, uint16_t *vc)
{
    attn_prep_kernel<P><<<T, AP_THREADS, 0, s>>>(qkv, stride, Hq, Hkv, D, q_w, k_w, eps,
                                                 positions, inv_freq, mscale, bs, slot_map, kc,
                                                 vc);
}

extern "C" int kern_attn_prep(float *qkv, int stride, int T, int Hq, int Hkv, int D,
                              const float *q_w, const float *k_w, float eps,
                              const int32_t *positions, const float *inv_freq, float mscale,
                              int bs, const int32_t *slot_map, uint16_t *kc, uint16_t *vc,
                              cudaStream_t s)
{
    if (D <= 0 || (D & 1))
        return (int)cudaErrorInvalidValue;
    if (T <= 0)
        return 0;
    int np = (Hq > Hkv ? Hq : Hkv) * (D / 2), ppt = (np + AP_THREADS - 1) / AP_THREADS;
    if (ppt <= 2)
        ap_launch<2>(T, s, qkv, stride, Hq, Hkv, D, q_w, k_w, eps, positions, inv_freq, mscale,
                     bs, slot_map, kc, vc);
    else if (ppt <= 4)
        ap_launch<4>(T, s, qkv, stride, Hq, Hkv, D, q_w, k_w, eps, positions, inv_freq, mscale,
                     bs, slot_map, kc, vc);
    else if (ppt <= 8)
        ap_launch<8>(T, s, qkv, stride, Hq, Hkv, D, q_w, k_w, eps, positions, inv_freq, mscale,
                     bs, slot_map, kc, vc);
    else if (ppt <= AP_MAXP)
        ap_launch<AP_MAXP>(T, s, qkv, stride, Hq, Hkv, D, q_w, k_w, eps, positions, inv_freq,
                           mscale, bs, slot_map, kc, vc);
    else
        ap_launch<AP_ANY>(T, s, qkv, stride, Hq, Hkv, D, q_w, k_w, eps, positions, inv_freq,
                          mscale, bs, slot_map, kc, vc);
    return KU_LAUNCH_RESULT();
}
