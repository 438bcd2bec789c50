/* kernels/cuda/gdn_recurrent.cu: recurrent gated delta rule.
 *
 * One warp per (value slice of 8, value head, sequence), four such warps
 * (32 adjacent values of one head) per 128-thread block: with one-warp
 * blocks the 32-blocks-per-SM limit capped occupancy at 32 warps, and the
 * batch-256 decode moved state at only 1.89 TB/s on the H100. The warps
 * share nothing and never synchronize with each other. Lanes v, v+8, v+16
 * and v+24 keep the four quarters of the state column S[:, v] (Dk values,
 * padded to MAXK) in fp32 registers for the whole sequence, so the per-token
 * GEMVs are per-lane dot products of MAXK/4 terms plus two shuffles (short
 * dependency chains: a long single-sequence prefill is latency-bound); the
 * only other cross-lane work is the q/k L2 norm. 720 warps per sequence at
 * the 7B shapes. The next token's q, k, v, g, beta
 * are loaded before the current token's arithmetic so the global loads
 * overlap it. State loads/stores are coalesced along v.
 * Speculative verify: when tok_spec is given, a token t with tok_spec[t] >= 0
 * also stores the state after it into that slot (the per-position snapshots
 * the scheduler adopts after acceptance); the final state still goes to the
 * sequence's own slot. Decode steps pass NULL and pay nothing for it.
 * Engine thread launches it. */
#include "kernels/cuda/gdn_recurrent.h"
#include "kernels/cuda/kern_util.h"

template <int MAXK, typename ST>
static __global__ void __launch_bounds__(128)
gdn_recurrent_kernel(const float *__restrict__ y, const float *__restrict__ g,
                     const float *__restrict__ beta, const int32_t *qs, const int32_t *slot,
                     const int32_t *has_init, const int32_t *tok_spec, int Hk, int Hv, int Dk,
                     int Dv, float scale, ST *state, size_t slot_stride, float *__restrict__ o)
{
    constexpr int KPL = MAXK / 32; /* k values per lane when loading q, k */
    constexpr int KH = MAXK / 4;   /* state rows per lane */
    __shared__ float sq_all[4][MAXK], sk_all[4][MAXK];
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    float *sq = sq_all[w], *sk = sk_all[w];
    int quarter = lane >> 3, kb = quarter * KH;
    int h = blockIdx.y, n = blockIdx.z;
    int v0 = blockIdx.x * 32 + w * 8, v = v0 + (lane & 7);
    if (v0 >= Dv)
        return; /* a whole warp past the last value column (Dv % 32 != 0) */
    bool vok = v < Dv;
    int bos = qs[n], L = qs[n + 1] - bos;
    if (L <= 0)
        return;
    int kh = h / (Hv / Hk);
    int KD = Hk * Dk, CD = 2 * KD + Hv * Dv;
    int sl = slot[n];
    ST *S_g = sl >= 0 ? state + (size_t)sl * slot_stride + (size_t)h * Dk * Dv : nullptr;
    bool init = sl >= 0 && has_init[n];

    float S[KH];
#pragma unroll
    for (int k = 0; k < KH; k++)
        S[k] = (init && vok && kb + k < Dk) ? ku_state<ST>::ld(S_g + (size_t)(kb + k) * Dv + v)
                                            : 0.0f;

    /* prefetch token 0 */
    float nq[KPL], nk[KPL], nv, ng, nb;
    auto load = [&](int t) {
        const float *row = y + (size_t)(bos + t) * CD;
#pragma unroll
        for (int i = 0; i < KPL; i++) {
            int k = lane + 32 * i;
            nq[i] = k < Dk ? row[kh * Dk + k] : 0.0f;
            nk[i] = k < Dk ? row[KD + kh * Dk + k] : 0.0f;
        }
        nv = vok ? row[2 * KD + h * Dv + v] : 0.0f;
        ng = g[(size_t)(bos + t) * Hv + h];
        nb = beta[(size_t)(bos + t) * Hv + h];
    };
    load(0);
    for (int t = 0; t < L; t++) {
        float cq[KPL], ck[KPL];
        float qq = 0.0f, kk = 0.0f;
#pragma unroll
        for (int i = 0; i < KPL; i++) {
            cq[i] = nq[i];
            ck[i] = nk[i];
            qq += cq[i] * cq[i];
            kk += ck[i] * ck[i];
        }
        float cv = nv, cg = ng, cb = nb;
        if (t + 1 < L)
            load(t + 1);
        qq = ku_warp_sum(qq);
        kk = ku_warp_sum(kk);
        float qs_ = scale / sqrtf(qq + 1e-6f), ks_ = 1.0f / sqrtf(kk + 1e-6f);
        __syncwarp();
#pragma unroll
        for (int i = 0; i < KPL; i++) {
            sq[lane + 32 * i] = cq[i] * qs_;
            sk[lane + 32 * i] = ck[i] * ks_;
        }
        __syncwarp();
        float decay = expf(cg);
        float p0 = 0.f, p1 = 0.f, p2 = 0.f, p3 = 0.f;
        const float *skh = sk + kb, *sqh = sq + kb;
#pragma unroll
        for (int k = 0; k < KH; k += 4) {
            S[k] *= decay;
            S[k + 1] *= decay;
            S[k + 2] *= decay;
            S[k + 3] *= decay;
            p0 = fmaf(S[k], skh[k], p0);
            p1 = fmaf(S[k + 1], skh[k + 1], p1);
            p2 = fmaf(S[k + 2], skh[k + 2], p2);
            p3 = fmaf(S[k + 3], skh[k + 3], p3);
        }
        float kv = (p0 + p1) + (p2 + p3);
        kv += __shfl_xor_sync(0xffffffffu, kv, 8);
        kv += __shfl_xor_sync(0xffffffffu, kv, 16);
        float delta = cb * (cv - kv);
        p0 = p1 = p2 = p3 = 0.f;
#pragma unroll
        for (int k = 0; k < KH; k += 4) {
            S[k] = fmaf(skh[k], delta, S[k]);
            S[k + 1] = fmaf(skh[k + 1], delta, S[k + 1]);
            S[k + 2] = fmaf(skh[k + 2], delta, S[k + 2]);
            S[k + 3] = fmaf(skh[k + 3], delta, S[k + 3]);
            p0 = fmaf(S[k], sqh[k], p0);
            p1 = fmaf(S[k + 1], sqh[k + 1], p1);
            p2 = fmaf(S[k + 2], sqh[k + 2], p2);
            p3 = fmaf(S[k + 3], sqh[k + 3], p3);
        }
        float ov = (p0 + p1) + (p2 + p3);
        ov += __shfl_xor_sync(0xffffffffu, ov, 8);
        ov += __shfl_xor_sync(0xffffffffu, ov, 16);
        if (vok && quarter == 0)
            o[(size_t)(bos + t) * (Hv * Dv) + h * Dv + v] = ov;
        if (tok_spec) {
            int ss = tok_spec[bos + t];
            if (ss >= 0 && vok) {
                ST *P = state + (size_t)ss * slot_stride + (size_t)h * Dk * Dv;
#pragma unroll
                for (int k = 0; k < KH; k++)
                    if (kb + k < Dk)
                        ku_state<ST>::st(P + (size_t)(kb + k) * Dv + v, S[k]);
            }
        }
    }
    if (S_g && vok) {
#pragma unroll
        for (int k = 0; k < KH; k++)
            if (kb + k < Dk)
                ku_state<ST>::st(S_g + (size_t)(kb + k) * Dv + v, S[k]);
    }
}

template <int MAXK>
static int launch(const float *y, const float *g, const float *beta, int N, const int32_t *qs,
                  const int32_t *slot, const int32_t *has_init, const int32_t *tok_spec, int Hk,
                  int Hv, int Dk, int Dv, float scale, void *state, int state_bf16,
                  size_t slot_stride, float *o, cudaStream_t s)
{
    dim3 grid((Dv + 31) / 32, Hv, N);
    if (state_bf16)
        gdn_recurrent_kernel<MAXK, uint16_t><<<grid, 128, 0, s>>>(
            y, g, beta, qs, slot, has_init, tok_spec, Hk, Hv, Dk, Dv, scale, (uint16_t *)state,
            slot_stride, o);
    else
        gdn_recurrent_kernel<MAXK, float><<<grid, 128, 0, s>>>(
            y, g, beta, qs, slot, has_init, tok_spec, Hk, Hv, Dk, Dv, scale, (float *)state,
            slot_stride, o);
    return KU_LAUNCH_RESULT();
}

extern "C" int kern_gdn_recurrent_spec(const float *y, const float *g, const float *beta, int N,
                                       const int32_t *qs, const int32_t *slot,
                                       const int32_t *has_init, const int32_t *tok_spec, int Hk,
                                       int Hv, int Dk, int Dv, float scale, void *state,
                                       int state_bf16, size_t slot_stride, float *o,
                                       cudaStream_t s)
{
    if (N <= 0)
        return 0;
    if (Dk < 1 || Dk > 128 || Hk < 1 || Hv % Hk || N > 65535 || Hv > 65535)
        return (int)cudaErrorInvalidValue;
    if (Dk <= 32)
        return launch<32>(y, g, beta, N, qs, slot, has_init, tok_spec, Hk, Hv, Dk, Dv, scale,
                          state, state_bf16, slot_stride, o, s);
    if (Dk <= 64)
        return launch<64>(y, g, beta, N, qs, slot, has_init, tok_spec, Hk, Hv, Dk, Dv, scale,
                          state, state_bf16, slot_stride, o, s);
    if (Dk <= 96)
        return launch<96>(y, g, beta, N, qs, slot, has_init, tok_spec, Hk, Hv, Dk, Dv, scale,
                          state, state_bf16, slot_stride, o, s);
    return launch<128>(y, g, beta, N, qs, slot, has_init, tok_spec, Hk, Hv, Dk, Dv, scale, state,
                       state_bf16, slot_stride, o, s);
}

extern "C" int kern_gdn_recurrent(const float *y, const float *g, const float *beta, int N,
                                  const int32_t *qs, const int32_t *slot,
                                  const int32_t *has_init, int Hk, int Hv, int Dk, int Dv,
                                  float scale, void *state, int state_bf16, size_t slot_stride,
                                  float *o, cudaStream_t s)
{
    return kern_gdn_recurrent_spec(y, g, beta, N, qs, slot, has_init, NULL, Hk, Hv, Dk, Dv,
                                   scale, state, state_bf16, slot_stride, o, s);
}
