/* kernels/cuda/gdn_chunk_split.cu: the output kernel of the chunked GDN's
 * split ("long sequence") variant; contract and selection rule in
 * gdn_chunk.h, the states-only scan that feeds it in gdn_chunk.cu.
 *
 * The fused scan computes each chunk's O^T = S^T Q~^T + Delta^T P^T on the
 * sequence's serial chain. The split variant's scan only stores the two A
 * operands of those products (S^T at chunk start and Delta^T, bf16, in
 * mma-fragment register order) and this kernel computes all chunks' O at
 * once: one CTA of 4 warps per (V-slice of 64, chunk, value head), warp w
 * owning value rows 16w..16w+15 of the slice like the scan's warps, with the
 * same m16n8k16 products in the same order (gc_out_tile), so o matches the
 * fused variant's bit for bit. Q~ and P of the chunk (bf16, from the prep
 * workspace) are staged in shared memory, shared by the 4 warps; the 3
 * V-slices of a (chunk, head) are adjacent in the grid so they share them
 * through L2. Engine thread launches it (asynchronous on the stream). */
#include "kernels/cuda/gdn_chunk_dev.cuh"

template <int DK>
static __global__ void __launch_bounds__(GC_THREADS)
gdn_chunk_out_kernel(const int32_t *__restrict__ plan, int N, int Hv, int Dv, int nvs,
                     float *__restrict__ o, const kbf16 *__restrict__ work,
                     const uint4 *__restrict__ split)
{
    typedef gc_stage<DK> L;
    constexpr int C = GC_C, NK = DK / 16, RU = DK / 8;
    __shared__ __align__(16) kbf16 qs[C * L::LDK]; /* Q~ (64 x Dk), rows padded */
    __shared__ __align__(16) kbf16 ps[C * L::LDT]; /* P (64 x 64), rows padded */

    const int vs = blockIdx.x % nvs, c = blockIdx.x / nvs, h = blockIdx.y, tid = threadIdx.x;
    const int lane = tid & 31, warp = tid >> 5, g = lane >> 2, t = lane & 3;
    const int vw = vs * GC_BV + warp * 16;
    const bool act = vw < Dv; /* Dv % 16 == 0: a warp's rows are all in or all out */
    const int tok0 = plan[N + 1 + 2 * c], len = plan[N + 2 + 2 * c];
    const kbf16 *wp = work + ((size_t)c * Hv + h) * gc_per(DK);
    const uint4 *Qg = (const uint4 *)(wp + C * DK), *Pg = (const uint4 *)(wp + 3 * C * DK + C * C);

    /* this warp's A fragments first, so their loads overlap the staging */
    uint32_t sa[NK][4], da[4][4];
    if (act) {
        const uint4 *sp = split + ((size_t)c * Hv + h) * gc_split_per(DK, Dv) +
                          (size_t)(vw >> 4) * (NK + 4) * 32 + lane;
#pragma unroll
        for (int kk = 0; kk < NK; kk++) {
            uint4 u = sp[kk * 32];
            sa[kk][0] = u.x, sa[kk][1] = u.y, sa[kk][2] = u.z, sa[kk][3] = u.w;
        }
#pragma unroll
        for (int kk = 0; kk < 4; kk++) {
            uint4 u = sp[(NK + kk) * 32];
            da[kk][0] = u.x, da[kk][1] = u.y, da[kk][2] = u.z, da[kk][3] = u.w;
        }
    }
    /* Q~ and P rows past len are zero in the workspace and never read for
     * output rows >= len anyway; stage all 64 */
    static_assert(C * RU % GC_THREADS == 0 && C * (C / 8) % GC_THREADS == 0, "even split");
    uint4 qv[C * RU / GC_THREADS], pv[C * (C / 8) / GC_THREADS];
#pragma unroll
    for (int i = 0; i < C * RU / GC_THREADS; i++) /* all loads in flight first */
        qv[i] = Qg[tid + i * GC_THREADS];
#pragma unroll
    for (int i = 0; i < C * (C / 8) / GC_THREADS; i++)
        pv[i] = Pg[tid + i * GC_THREADS];
#pragma unroll
    for (int i = 0; i < C * RU / GC_THREADS; i++) {
        int u = tid + i * GC_THREADS, r = u / RU, k = (u % RU) * 8;
        *(uint4 *)(qs + r * L::LDK + k) = qv[i];
    }
#pragma unroll
    for (int i = 0; i < C * (C / 8) / GC_THREADS; i++) {
        int u = tid + i * GC_THREADS, r = u >> 3, k = (u & 7) * 8;
        *(uint4 *)(ps + r * L::LDT + k) = pv[i];
    }
    __syncthreads();
    if (act)
        gc_out_tile<NK>(sa, da, qs, L::LDK, ps, L::LDT,
                        o + (size_t)tok0 * Hv * Dv + (size_t)h * Dv + vw + g, (size_t)Hv * Dv, len,
                        g, t);
}

template <int DK>
static int gc_out_launch(const int32_t *plan, int N, int nchunks, int Hv, int Dv, float *o,
                         const kbf16 *wk, const uint4 *split, cudaStream_t s)
{
    const int nvs = (Dv + GC_BV - 1) / GC_BV;
    dim3 grid((unsigned)nchunks * nvs, Hv);
    gdn_chunk_out_kernel<DK><<<grid, GC_THREADS, 0, s>>>(plan, N, Hv, Dv, nvs, o, wk, split);
    return KU_LAUNCH_RESULT();
}

int gc_out_run(int Dk, const int32_t *plan, int N, int nchunks, int Hv, int Dv, float *o,
               const kbf16 *wk, const uint4 *split, cudaStream_t s)
{
    if ((long long)nchunks * ((Dv + GC_BV - 1) / GC_BV) > 0x7fffffffLL)
        return (int)cudaErrorInvalidValue; /* grid.x */
#define GC_CASE(D) \
    case D:        \
        return gc_out_launch<D>(plan, N, nchunks, Hv, Dv, o, wk, split, s);
    switch (Dk) { GC_FOR_DK(GC_CASE) }
#undef GC_CASE
    return (int)cudaErrorInvalidValue;
}
