/* kernels/cuda/gemv.h: bf16 weight-streaming GEMV for the few-token case
 * (decode steps): Y (T, M) [+]= X (T, K) . W (M, K)^T with T <= 8, fp32
 * accumulation and fp32 output, the same contract as cu_gemm_run's fp32
 * path (engine/cuda/cuda_gemm.c), which sends such shapes here.
 *
 * Why: at T = 1 the step is a pass over every weight byte, and cuBLASLt's
 * choices reached 1.4-2.8 TB/s on the H100 depending on the shape (1.37 TB/s
 * for the 17340-row GDN in-projection), against ~3 TB/s a plain stream gets.
 * Here each warp owns two weight rows (four for T > 2, so that each X read
 * serves more rows) and streams them in 16-byte loads, eight per lane in
 * flight, the X rows coming from L1/L2; dot
 * products in fp32, a warp shuffle reduction, one store per output.
 * Bytes: M*K*2 (W) + T*K*2 (X) + T*M*4 (Y); FLOPs 2*M*K*T: bandwidth-bound
 * far beyond T = 8 on Hopper, but X's L1 traffic grows with T, hence the cap.
 *
 * Requires K % 8 == 0 and W, X 16-byte aligned (every projection of the
 * supported models; kern_gemv_ok says whether a call qualifies). Called from
 * the engine thread; asynchronous on the stream; capturable in a graph. */
#ifndef DS_KERNELS_CUDA_GEMV_H
#define DS_KERNELS_CUDA_GEMV_H
#include <stdint.h>
#include <cuda_runtime_api.h>
#ifdef __cplusplus
extern "C" {
#endif
#define KERN_GEMV_MAX_T 8

/* 1 when kern_gemv can run this shape and these pointers. */
int kern_gemv_ok(const void *W, const void *X, int M, int T, int K);
/* W bf16 (M, K) row-major, X bf16 (T, K), Y fp32 (T, M); accumulate: Y +=.
 * Returns 0 or a cudaError_t value (cudaErrorInvalidValue if !kern_gemv_ok). */
int kern_gemv(const uint16_t *W, const uint16_t *X, float *Y, int M, int T, int K,
              int accumulate, cudaStream_t s);
/* Two forms: warp rows, each warp streaming R whole rows, and K-split, each
 * 8-warp block one R-row group with the warps splitting K and a fixed-order
 * reduction. Auto takes K-split up to KERN_GEMV_KSPLIT_MAX_T tokens: on the
 * H100 (run E, docs/benchmarks.md) it matched or beat warp rows on every 7B
 * projection at T = 1 and 4 (T=1: GDN in-proj 44.9 vs 47.0 us, MLP down 31.1
 * vs 35.6, GDN out 15.6 vs 18.2; narrow outputs leave the warp form too few
 * warps, wide ones a tail past two waves), and lost at T = 8 where X's reads
 * dominate (lm_head 343 vs 277 us). Same results up to fp32 summation order;
 * deterministic either way. kern_gemv_form picks one (the bench times both). */
#define KERN_GEMV_AUTO 0
#define KERN_GEMV_WARP_ROWS 1
#define KERN_GEMV_KSPLIT 2
#define KERN_GEMV_KSPLIT_MAX_T 4
int kern_gemv_form(const uint16_t *W, const uint16_t *X, float *Y, int M, int T, int K,
                   int accumulate, int form, cudaStream_t s);
/* The gate|up projection with the SwiGLU fused into the store: W bf16
 * (M, K) with rows interleaved (row 2f = gate f, row 2f+1 = up f, M even),
 * act bf16 (T, M/2) = bf16(silu(gate) * up), the same bits as kern_gemv
 * followed by kern_swiglu; saves the fp32 (T, M) round trip and a launch.
 * Returns as kern_gemv (cudaErrorInvalidValue also for odd M). */
int kern_gemv_swiglu(const uint16_t *W, const uint16_t *X, uint16_t *act, int M, int T, int K,
                     cudaStream_t s);
#ifdef __cplusplus
}
#endif
#endif
