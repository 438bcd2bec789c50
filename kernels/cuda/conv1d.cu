/* kernels/cuda/conv1d.cu: causal depthwise conv1d (+SiLU) for GDN layers.
 * Token-parallel forward (each output reads its K-1 predecessors from u or
 * from the slot's history), then a per-(sequence, channel) state update.
 * Decode (L = 1) is the same two launches with one token per sequence.
 * Speculative verify rows also get the window after each of their tokens
 * written into that token's snapshot slot (tok_spec), from the same
 * registers, so a rejected draft never needs a recompute.
 * Engine thread launches them. */
#include "kernels/cuda/conv1d.h"
#include "kernels/cuda/kern_util.h"

#define CONV_MAXK 8

static __global__ void conv1d_fwd_kernel(const float *u, int u_stride, const float *w, int CD,
                                         int K, const int32_t *tok_seq, const int32_t *qs,
                                         const int32_t *slot, const int32_t *has_init,
                                         const float *state, size_t slot_stride, float *y)
{
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    int t = blockIdx.y;
    if (c >= CD)
        return;
    int sq = tok_seq[t];
    int bos = qs[sq], j = t - bos;
    int sl = slot[sq];
    int init = has_init[sq] && sl >= 0;
    const float *hist = init ? state + (size_t)sl * slot_stride : nullptr;
    float acc = 0.0f;
    for (int jj = 0; jj < K; jj++) {
        int idx = j - (K - 1) + jj;
        float v;
        if (idx >= 0)
            v = u[(size_t)(bos + idx) * u_stride + c];
        else
            v = hist ? hist[(size_t)(K - 1 + idx) * CD + c] : 0.0f;
        acc = fmaf(w[c * K + jj], v, acc);
    }
    y[(size_t)t * CD + c] = ku_silu(acc);
}

/* The window (last K-1 entries of hist ++ u[0..e)) of one channel into dst
 * (K-1, CD) at column c; old holds hist. */
static __device__ __forceinline__ void conv1d_window_store(const float *old, const float *u,
                                                           int u_stride, int bos, int e, int K,
                                                           int CD, int c, float *dst)
{
#pragma unroll
    for (int m = 0; m < CONV_MAXK - 1; m++) {
        if (m >= K - 1)
            break;
        int i = e + m; /* index into hist ++ u */
        float v;
        if (i < K - 1) {
            v = 0.0f;
#pragma unroll
            for (int q = 0; q < CONV_MAXK - 1; q++)
                if (q == i)
                    v = old[q];
        } else {
            v = u[(size_t)(bos + i - (K - 1)) * u_stride + c];
        }
        dst[(size_t)m * CD + c] = v;
    }
}

static __global__ void conv1d_state_kernel(const float *u, int u_stride, int CD, int K,
                                           const int32_t *qs, const int32_t *slot,
                                           const int32_t *has_init, const int32_t *tok_spec,
                                           float *state, size_t slot_stride)
{
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    int sq = blockIdx.y;
    int sl = slot[sq];
    if (c >= CD || sl < 0)
        return;
    int bos = qs[sq], L = qs[sq + 1] - bos;
    float *st = state + (size_t)sl * slot_stride;
    float old[CONV_MAXK];
#pragma unroll
    for (int m = 0; m < CONV_MAXK - 1; m++)
        old[m] = (m < K - 1 && has_init[sq]) ? st[(size_t)m * CD + c] : 0.0f;
    if (tok_spec) /* snapshot slots are never the sequence's own: old stays valid */
        for (int t = 0; t < L; t++) {
            int ss = tok_spec[bos + t];
            if (ss >= 0)
                conv1d_window_store(old, u, u_stride, bos, t + 1, K, CD, c,
                                    state + (size_t)ss * slot_stride);
        }
    conv1d_window_store(old, u, u_stride, bos, L, K, CD, c, st);
}

extern "C" int kern_conv1d_fwd(const float *u, int u_stride, const float *w, int CD, int K,
                               int T, const int32_t *tok_seq, const int32_t *qs,
                               const int32_t *slot, const int32_t *has_init, const float *state,
                               size_t slot_stride, float *y, cudaStream_t s)
{
    if (T <= 0)
        return 0;
    if (K < 1 || K > CONV_MAXK)
        return (int)cudaErrorInvalidValue;
    dim3 grid((CD + 255) / 256, T);
    conv1d_fwd_kernel<<<grid, 256, 0, s>>>(u, u_stride, w, CD, K, tok_seq, qs, slot, has_init,
                                           state, slot_stride, y);
    return KU_LAUNCH_RESULT();
}

extern "C" int kern_conv1d_state_update_spec(const float *u, int u_stride, int CD, int K, int N,
                                             const int32_t *qs, const int32_t *slot,
                                             const int32_t *has_init, const int32_t *tok_spec,
                                             float *state, size_t slot_stride, cudaStream_t s)
{
    if (N <= 0 || K <= 1)
        return 0;
    if (K > CONV_MAXK)
        return (int)cudaErrorInvalidValue;
    dim3 grid((CD + 255) / 256, N);
    conv1d_state_kernel<<<grid, 256, 0, s>>>(u, u_stride, CD, K, qs, slot, has_init, tok_spec,
                                             state, slot_stride);
    return KU_LAUNCH_RESULT();
}

extern "C" int kern_conv1d_state_update(const float *u, int u_stride, int CD, int K, int N,
                                        const int32_t *qs, const int32_t *slot,
                                        const int32_t *has_init, float *state,
                                        size_t slot_stride, cudaStream_t s)
{
    return kern_conv1d_state_update_spec(u, u_stride, CD, K, N, qs, slot, has_init, NULL, state,
                                         slot_stride, s);
}
