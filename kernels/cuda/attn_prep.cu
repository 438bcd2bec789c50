/* kernels/cuda/attn_prep.cu: q/k RMSNorm + RoPE + KV cache write, one block
 * of 256 threads per token (kern_attn_prep). Engine thread launches it.
 *
 * The sums of squares are accumulated with the same per-thread stride and
 * block reduction as rmsnorm.cu's in-place kernel, and the norm and rotation
 * are the same expressions as rmsnorm.cu, rope.cu and kv_write.cu, so the
 * result matches the four-launch path. After the reductions each thread owns
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
    attn_prep_kernel<<<T, AP_THREADS, 0, s>>>(qkv, stride, Hq, Hkv, D, q_w, k_w, eps, positions,
                                              inv_freq, mscale, bs, slot_map, kc, vc);
    return KU_LAUNCH_RESULT();
}
