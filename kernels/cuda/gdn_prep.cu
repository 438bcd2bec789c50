/* kernels/cuda/gdn_prep.cu: conv1d + state update + gating for short
 * sequences in one launch; contract and reasons in gdn_prep.h.
 * Engine thread launches it. */
#include "kernels/cuda/gdn_gate.h"
#include "kernels/cuda/gdn_prep.h"
#include "kernels/cuda/kern_util.h"

#define GP_MAXK 8
#define GP_THREADS 256

/* The K-1 window (oldest first) into dst (K-1, CD) at column c. */
static __device__ __forceinline__ void gp_window_store(const float *win, int K, int CD, int c,
                                                       float *dst)
{
#pragma unroll
    for (int m = 0; m < GP_MAXK - 1; m++)
        if (m < K - 1)
            dst[(size_t)m * CD + c] = win[m];
}

/* grid (ceil(CD / GP_THREADS), N): thread (c, sequence). Block x = 0 also
 * gates the sequence's tokens (threads h < Hv, strided). */
static __global__ void __launch_bounds__(GP_THREADS)
gdn_prep_kernel(const float *__restrict__ u, int u_stride, const float *__restrict__ w, int CD,
                int K, const int32_t *qs, const int32_t *slot, const int32_t *has_init,
                const int32_t *tok_spec, float *state, size_t slot_stride, float *y, int a_off,
                int b_off, const float *A_log, const float *dt_bias, int neg_eig, int Hv,
                float *g, float *beta)
{
    int sq = blockIdx.y, c = blockIdx.x * GP_THREADS + threadIdx.x;
    int bos = qs[sq], L = qs[sq + 1] - bos;
    if (blockIdx.x == 0)
        for (int h = threadIdx.x; h < Hv; h += GP_THREADS)
            for (int t = bos; t < bos + L; t++) {
                const float *row = u + (size_t)t * u_stride;
                kern_gdn_gate_one(row[a_off + h], row[b_off + h], A_log[h], dt_bias[h], neg_eig,
                                  &g[(size_t)t * Hv + h], &beta[(size_t)t * Hv + h]);
            }
    if (c >= CD)
        return;
    int sl = slot[sq];
    int init = has_init[sq] && sl >= 0;
    float *st = sl >= 0 ? state + (size_t)sl * slot_stride : nullptr;
    float win[GP_MAXK - 1], wc[GP_MAXK];
#pragma unroll
    for (int m = 0; m < GP_MAXK - 1; m++)
        win[m] = (m < K - 1 && init) ? st[(size_t)m * CD + c] : 0.0f;
#pragma unroll
    for (int m = 0; m < GP_MAXK; m++)
        wc[m] = m < K ? w[c * K + m] : 0.0f;
    for (int t = 0; t < L; t++) {
        float x = u[(size_t)(bos + t) * u_stride + c];
        /* taps oldest first, the token itself last: conv1d_fwd's order */
        float acc = 0.0f;
#pragma unroll
        for (int m = 0; m < GP_MAXK - 1; m++)
            if (m < K - 1)
                acc = fmaf(wc[m], win[m], acc);
#pragma unroll
        for (int m = 0; m < GP_MAXK; m++)
            if (m == K - 1)
                acc = fmaf(wc[m], x, acc);
        y[(size_t)(bos + t) * CD + c] = ku_silu(acc);
#pragma unroll
        for (int m = 0; m < GP_MAXK - 1; m++) {
            if (m < K - 2)
                win[m] = win[m + 1];
            else if (m == K - 2)
                win[m] = x;
        }
        if (tok_spec && st) { /* no state (slot < 0): nothing written at all */
            int ss = tok_spec[bos + t];
            if (ss >= 0)
                gp_window_store(win, K, CD, c, state + (size_t)ss * slot_stride);
        }
    }
    if (st)
        gp_window_store(win, K, CD, c, st);
}

extern "C" int kern_gdn_prep_short(const float *u, int u_stride, const float *w, int CD, int K,
                                   int N, const int32_t *qs, const int32_t *slot,
                                   const int32_t *has_init, const int32_t *tok_spec,
                                   float *state, size_t slot_stride, float *y, int a_off,
                                   int b_off, const float *A_log, const float *dt_bias,
                                   int neg_eig, int Hv, float *g, float *beta, cudaStream_t s)
{
    if (N <= 0)
        return 0;
    if (K < 1 || K > GP_MAXK || N > 65535 || CD < 1)
        return (int)cudaErrorInvalidValue;
    dim3 grid((CD + GP_THREADS - 1) / GP_THREADS, N);
    gdn_prep_kernel<<<grid, GP_THREADS, 0, s>>>(u, u_stride, w, CD, K, qs, slot, has_init,
                                                tok_spec, state, slot_stride, y, a_off, b_off,
                                                A_log, dt_bias, neg_eig, Hv, g, beta);
    return KU_LAUNCH_RESULT();
}
