/* kernels/cuda/attention.cu: paged causal attention with online softmax.
 *
 * Grid (T*Hq, nsplit), 4 warps per block. The keys of query t (positions
 * 0..pos[t]) are cut into tiles of 32; tile i goes to split i % nsplit and,
 * inside it, to warp (i / nsplit) % 4. In a tile, lane j scores key j against
 * q (held in shared memory, broadcast reads; 16-byte key loads), the warp
 * takes the tile max and sum with shuffles, and P.V is accumulated with each
 * lane owning D/32 output dims (coalesced value rows). Warps merge through
 * shared memory; splits merge in a second small kernel. fp32 throughout;
 * masked scores are never exponentiated (select, not multiply).
 * Engine thread launches it. */
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

static __global__ void __launch_bounds__(ATT_WARPS * 32)
attention_kernel(struct kern_attn_args a)
{
    __shared__ float sq[ATT_MAXD];
    __shared__ float sm_m[ATT_WARPS], sm_l[ATT_WARPS];
    __shared__ float sacc[ATT_WARPS][ATT_MAXD];
    int D = a.D, th = threadIdx.x, lane = th & 31, w = th >> 5;
    int t = blockIdx.x / a.Hq, h = blockIdx.x - t * a.Hq;
    int split = blockIdx.y;
    int kvh = h / (a.Hq / a.Hkv);
    int sq_ = a.tok_seq[t];
    int pos = a.positions[t];
    const int32_t *bt = a.block_table + (size_t)sq_ * a.max_blocks;
    const float *qp = a.q + (size_t)t * a.q_stride + (size_t)h * D;
    for (int d = th; d < D; d += blockDim.x)
        sq[d] = qp[d] * a.scale;
    __syncthreads();

    const int DPL = ATT_MAXD / 32; /* output dims per lane (upper bound) */
    float acc[DPL];
#pragma unroll
    for (int i = 0; i < DPL; i++)
        acc[i] = 0.0f;
    float m = -INFINITY, l = 0.0f;
    int ntiles = pos / 32 + 1;
    for (int tile = split + a.nsplit * w; tile < ntiles; tile += a.nsplit * ATT_WARPS) {
        int p = tile * 32 + lane;
        bool ok = p <= pos;
        float sc = -INFINITY;
        size_t koff = 0;
        if (ok) {
            const uint16_t *kr = kv_row(a.kc, bt, p, kvh, a.Hkv, a.bs, D);
            koff = (size_t)(kr - a.kc);
            float s0 = 0.f, s1 = 0.f;
            for (int d = 0; d < D; d += 8) {
                uint4 u = *(const uint4 *)(kr + d);
                const uint16_t *e = (const uint16_t *)&u;
                s0 = fmaf(ku_bf(e[0]), sq[d + 0], s0);
                s1 = fmaf(ku_bf(e[1]), sq[d + 1], s1);
                s0 = fmaf(ku_bf(e[2]), sq[d + 2], s0);
                s1 = fmaf(ku_bf(e[3]), sq[d + 3], s1);
                s0 = fmaf(ku_bf(e[4]), sq[d + 4], s0);
                s1 = fmaf(ku_bf(e[5]), sq[d + 5], s1);
                s0 = fmaf(ku_bf(e[6]), sq[d + 6], s0);
                s1 = fmaf(ku_bf(e[7]), sq[d + 7], s1);
            }
            sc = s0 + s1;
        }
        float tm = ku_warp_max(sc);
        float mn = fmaxf(m, tm);
        float corr = (m == -INFINITY) ? 0.0f : expf(m - mn);
        float pj = ok ? expf(sc - mn) : 0.0f;
        l = l * corr + ku_warp_sum(pj);
        m = mn;
#pragma unroll
        for (int i = 0; i < DPL; i++)
            acc[i] *= corr;
        int nvalid = min(32, pos - tile * 32 + 1);
        for (int j = 0; j < nvalid; j++) {
            float pv = __shfl_sync(0xffffffffu, pj, j);
            size_t vo = (size_t)__shfl_sync(0xffffffffu, (unsigned long long)koff, j);
            const uint16_t *vr = a.vc + vo;
#pragma unroll
            for (int i = 0; i < DPL; i++) {
                int d = lane + 32 * i;
                if (d < D)
                    acc[i] = fmaf(pv, ku_bf(vr[d]), acc[i]);
            }
        }
    }
    /* merge the warps */
    if (lane == 0) {
        sm_m[w] = m;
        sm_l[w] = l;
    }
#pragma unroll
    for (int i = 0; i < DPL; i++) {
        int d = lane + 32 * i;
        if (d < D)
            sacc[w][d] = acc[i];
    }
    __syncthreads();
    float M = -INFINITY;
    for (int i = 0; i < ATT_WARPS; i++)
        M = fmaxf(M, sm_m[i]);
    float L = 0.0f, f[ATT_WARPS];
    for (int i = 0; i < ATT_WARPS; i++) {
        f[i] = sm_m[i] == -INFINITY ? 0.0f : expf(sm_m[i] - M);
        L += sm_l[i] * f[i];
    }
    if (a.nsplit == 1) {
        uint16_t *op = a.out + (size_t)t * a.Hq * D + (size_t)h * D;
        for (int d = th; d < D; d += blockDim.x) {
            float v = 0.0f;
            for (int i = 0; i < ATT_WARPS; i++)
                v += sacc[i][d] * f[i];
            op[d] = ku_to_bf(v / L);
        }
    } else {
        float *wp = a.work + ((size_t)blockIdx.x * a.nsplit + split) * (D + 2);
        for (int d = th; d < D; d += blockDim.x) {
            float v = 0.0f;
            for (int i = 0; i < ATT_WARPS; i++)
                v += sacc[i][d] * f[i];
            wp[2 + d] = v;
        }
        if (th == 0) {
            wp[0] = M;
            wp[1] = L;
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

extern "C" size_t kern_attention_work_floats(int T, int Hq, int D, int nsplit)
{
    return nsplit > 1 ? (size_t)T * Hq * nsplit * (D + 2) : 0;
}

extern "C" int kern_attention(const struct kern_attn_args *a, cudaStream_t s)
{
    if (a->T <= 0)
        return 0;
    if (a->D % 8 || a->D > ATT_MAXD || a->D <= 0 || a->Hkv <= 0 || a->Hq % a->Hkv ||
        a->nsplit < 1 || a->nsplit > 65535 || (a->nsplit > 1 && !a->work))
        return (int)cudaErrorInvalidValue;
    dim3 grid(a->T * a->Hq, a->nsplit);
    attention_kernel<<<grid, ATT_WARPS * 32, 0, s>>>(*a);
    int rc = KU_LAUNCH_RESULT();
    if (rc || a->nsplit == 1)
        return rc;
    attention_merge_kernel<<<a->T * a->Hq, 128, 0, s>>>(a->work, a->nsplit, a->D, a->Hq, a->out);
    return KU_LAUNCH_RESULT();
}
