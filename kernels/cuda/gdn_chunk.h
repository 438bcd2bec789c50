/* kernels/cuda/gdn_chunk.h: the gated delta rule over a varlen prefill batch
 * in chunked WY/UT form (chunk C = 64, bf16 tensor-core products, fp32 state
 * and solve), with initial and final state in GDN state slots. Same function
 * and layouts as kern_gdn_recurrent (kernels/cuda/gdn_recurrent.h); decode
 * stays on the recurrent kernel. Called from the engine thread; asynchronous
 * on the stream.
 *
 * Layouts (as kern_gdn_recurrent): y = conv output fp32 (T, CD), CD =
 * 2*Hk*Dk + Hv*Dv, split [q (Hk,Dk) | k (Hk,Dk) | v (Hv,Dv)]; value head h uses
 * key head h / (Hv/Hk). g, beta fp32 (T, Hv). State of slot s: state +
 * s*slot_stride elements, (Hv, Dk, Dv) row-major, fp32 or bf16. o fp32
 * (T, Hv*Dv). q, k are L2-normalized in fp32 (eps 1e-6) in the kernel, q *=
 * scale. has_init[i] = 0 starts from zeros; slot[i] < 0 starts from zeros and
 * writes nothing; a sequence with no tokens touches nothing.
 *
 * Algorithm (../shared/KERNELS.md section 2), per chunk of one value head,
 * rows r < len of the chunk, gam = local cumsum of g, Gam = exp(gam):
 *   A = strictly-lower beta_i (k_i.k_j) exp(gam_i - gam_j)   (select-masked)
 *   T = (I + A)^-1 (fp32: 16x16 diagonal blocks by forward substitution,
 *       then block merges), W = T diag(beta Gam) K, U = T diag(beta) V
 *   Delta = U - W S;  O = diag(Gam) Q S + (mask_{i<=r}(Q K^T) * Gam_r/Gam_i) Delta
 *   S <- Gam_C S + (K * Gam_C/Gam)^T Delta
 * Two kernels: (a) "prep", grid (nchunks, Hv), 128 threads, 44.8 KB static
 * shared memory at Dk = 96 (5 CTAs per SM): l2norm, cumsum, K K^T, Q K^T,
 * the solve and W (mma.sync m16n8k16 bf16 with ldmatrix operands, fp32
 * accumulate), written to the workspace as bf16 (per chunk and head: -W
 * (64 x Dk), Gam Q (64 x Dk), (K Gam_C/Gam)^T (Dk x 64), Tu = T diag(beta)
 * (64 x 64), P = mask(Q K^T) Gam_r/Gam_i (64 x 64));
 * (b) "scan", grid (ceil(Dv/64), Hv, N), 128 threads, (800 Dk + 31744) bytes
 * of dynamic shared memory (106 KB at Dk = 96: 2 CTAs/SM): walks its
 * sequence's chunks in order, V-first (each warp owns 16 value rows; S^T and
 * Delta^T stay in registers; mma.sync m16n8k16 bf16, B operands by
 * ldmatrix.x4, the k blocks outer so 8-12 independent accumulator chains
 * issue back to back), reads V from y itself (U^T = V^T Tu^T is formed
 * there, so U never goes through memory), the next chunk's operands staged
 * by cp.async meanwhile. The state, V and Delta are rounded to bf16 as mma
 * operands (as FLA does); the accumulation and the carried state stay fp32.
 *
 * Split ("long sequence") variant: the fused scan has only ceil(Dv/64) Hv N
 * CTAs (90 for one 7B sequence, fewer than an H100's 132 SMs), each walking
 * its sequence's chunks serially with the O products (~1/3 of its mma work)
 * on that chain. The split variant runs (b1) the same scan kernel without the
 * O products, storing per chunk and head the bf16 operands it would have fed
 * them (S^T at chunk start and Delta^T, exactly the fused kernel's values) in
 * an extra workspace (Dv (Dk + 64) 2 bytes per chunk and head: 61 KB at the
 * 7B shapes, 235 MB for 8192 tokens), then (b2) an output kernel, grid
 * (ceil(Dv/64) nchunks, Hv), 128 threads, 22.5 KB static shared memory, that
 * computes every chunk's O^T = S^T Q~^T + Delta^T P^T in parallel with the
 * same products in the same order: o and the state equal the fused
 * variant's. Extra HBM traffic: the operands written and read back (~2 x
 * 61 KB per chunk and head) against a shorter serial chain. sm_90 at Dk = 96:
 * fused scan 255 registers, states scan 242 (same dynamic shared memory;
 * it skips staging Q~ and P), output kernel 96; no spills.
 * Selection (kern_gdn_chunk, kern_gdn_chunk_auto_split): split only when the
 * fused scan would leave most SMs idle, KERN_GDN_CHUNK_SPLIT_SM_DIV x
 * ceil(Dv/64) Hv N <= the SM count, and the sequences are long enough for
 * the serial chain to matter, nchunks >= KERN_GDN_CHUNK_SPLIT_MIN_CHUNKS x N;
 * and only when the workspace is big enough (kern_gdn_chunk_split_work_bytes),
 * else fused. Measured on an H100 (docs/benchmarks.md): at the 7B shapes
 * the fused variant wins at N = 1, 4 and 16 (the states-only chain is ~80%
 * of the fused one and the output kernel adds ~22 ns/token), so the 7B
 * never splits on one GPU; the rule keeps the split for the few-head shapes
 * (tensor-parallel shards: Hv <= 14 at N = 1 on 132 SMs), where the output
 * kernel is cheap next to the chain. `deltaserve bench` times both
 * variants per shape (kern_gdn_chunk_ex).
 *
 * Cost at the 7B shapes (Hv = Hk = 30, Dk = 96, Dv = 192), per token, all
 * heads: prep 0.7 MFLOP (QK^T, KK^T lower blocks, W), scan 4.2 MFLOP (W S,
 * Q S, K~^T Delta; P Delta and V Tu over the lower triangle): ~4.9 MFLOP.
 * HBM bytes: prep reads q, k of y (23 KB) and writes the workspace (25 KB);
 * scan reads the workspace (25 KB once; the 3 V-slices of a head share it
 * through L2) and v of y (23 KB) and writes o (23 KB): ~119 KB/token, plus
 * 2 x 2.2 MB (fp32) of state per sequence. 1 x 8192 tokens: ~0.98 GB and
 * ~40 GFLOP, ~325 us at 3 TB/s: HBM-bound (y and o are fp32).
 *
 * Limits: Dk % 16 == 0 and 16 <= Dk <= 96 (the prep kernel's static shared
 * memory), Dv % 16 == 0, Hv % Hk == 0, N and Hv <= 65535. */
#ifndef DS_KERNELS_CUDA_GDN_CHUNK_H
#define DS_KERNELS_CUDA_GDN_CHUNK_H
#include <stddef.h>
#include <stdint.h>
#include <cuda_runtime_api.h>
#ifdef __cplusplus
extern "C" {
#endif
#define KERN_GDN_CHUNK 64

/* Upper bound on the chunk count of any batch of N sequences totalling T
 * tokens: min(T, (T + 63 N) / 64). */
int kern_gdn_chunk_count_max(int T, int N);
/* int32 elements of the plan for N sequences cut into nchunks chunks:
 * N + 1 + 2 * nchunks. */
size_t kern_gdn_chunk_plan_ints(int N, int nchunks);
/* Host helper: cut each sequence's tokens [qs[i], qs[i+1]) (host array,
 * absolute token indices, qs[0] need not be 0) into chunks of at most 64.
 * plan[0..N]: first chunk of sequence i is plan[i], its chunks end at
 * plan[i+1]; then per chunk c, plan[N+1+2c] = first token (absolute),
 * plan[N+2+2c] = length (1..64). Returns the chunk count (<=
 * kern_gdn_chunk_count_max), or -1 when some qs[i+1] < qs[i]. Upload the plan
 * (kern_gdn_chunk_plan_ints ints) to the device for kern_gdn_chunk. */
int kern_gdn_chunk_plan(const int32_t *qs, int N, int32_t *plan);
/* Workspace bytes the fused variant needs for nchunks chunks (allocate once for
 * kern_gdn_chunk_count_max(T_max, N_max)): nchunks * Hv * (128 * (3 Dk +
 * 128) + 4) bytes, ~53 KB per chunk and head at the 7B shapes (204 MB for
 * 8192 tokens in one sequence). 0 for unsupported shapes. */
size_t kern_gdn_chunk_work_bytes(int nchunks, int Hv, int Dk, int Dv);
/* Workspace bytes the split variant needs for nchunks chunks (>= the fused
 * size: the fused part rounded up to 256 bytes, then nchunks * Hv * Dv *
 * (Dk + 64) * 2 bytes; ~114 KB per chunk and head at the 7B shapes). 0 for
 * unsupported shapes. To let the auto selection split every batch it would,
 * size the workspace max(kern_gdn_chunk_work_bytes(count_max(T_max, N_max)),
 * kern_gdn_chunk_split_work_bytes(count_max(T_max, min(N_max,
 * kern_gdn_chunk_split_seqs_max(Hv, Dv))))). */
size_t kern_gdn_chunk_split_work_bytes(int nchunks, int Hv, int Dk, int Dv);
/* Thresholds of the auto rule (header comment above). */
#define KERN_GDN_CHUNK_SPLIT_SM_DIV 3
#define KERN_GDN_CHUNK_SPLIT_MIN_CHUNKS 4
/* The auto rule: 1 when kern_gdn_chunk would run the split variant for N
 * sequences in nchunks chunks (given a big enough workspace), else 0. The
 * SM count is queried once (cudaDeviceGetAttribute on the current device;
 * 132 when that fails and on the emulator) and cached. Any thread. */
int kern_gdn_chunk_auto_split(int N, int nchunks, int Hv, int Dv);
/* The largest N for which the auto rule can pick the split variant (0: never;
 * same SM count as above). */
int kern_gdn_chunk_split_seqs_max(int Hv, int Dv);
/* Run the chunked gated delta rule. plan: device copy of kern_gdn_chunk_plan's
 * output for these N sequences, nchunks its return value. slot, has_init:
 * device int32 [N]. work: device, 256-byte aligned, work_bytes >=
 * kern_gdn_chunk_work_bytes(nchunks, Hv, Dk, Dv); it is scratch (contents
 * need not survive between calls). Returns 0, cudaErrorInvalidValue for
 * unsupported shapes or a too small/misaligned workspace, or the launch
 * error. N <= 0 or nchunks <= 0 does nothing and returns 0. */
int kern_gdn_chunk(const float *y, const float *g, const float *beta, int N,
                   const int32_t *plan, int nchunks, const int32_t *slot,
                   const int32_t *has_init, int Hk, int Hv, int Dk, int Dv, float scale,
                   void *state, int state_bf16, size_t slot_stride, float *o, void *work,
                   size_t work_bytes, cudaStream_t s);

/* flags of kern_gdn_chunk_ex: a variant (none: the auto rule) ... */
#define KERN_GDN_CHUNK_AUTO 0
#define KERN_GDN_CHUNK_FUSED 1 /* the fused scan */
#define KERN_GDN_CHUNK_SPLIT 2 /* the split variant (needs the split workspace size) */
/* ... and at most one stage restriction (for timing the stages apart). A
 * stage run alone finds the workspace as an earlier call with the same
 * inputs, plan and variant left it; the scan stages read the state slots and
 * write them (and o) as a full call does. */
#define KERN_GDN_CHUNK_PREP_ONLY 4    /* the prep kernel only */
#define KERN_GDN_CHUNK_SCAN_ONLY 8    /* all but the prep kernel */
#define KERN_GDN_CHUNK_STATES_ONLY 16 /* split: the states-only scan only */
#define KERN_GDN_CHUNK_OUT_ONLY 32    /* split: the output kernel only */
/* kern_gdn_chunk with flags (kern_gdn_chunk is kern_gdn_chunk_ex(...,
 * KERN_GDN_CHUNK_AUTO)). STATES_ONLY and OUT_ONLY imply SPLIT. Returns as
 * kern_gdn_chunk; also cudaErrorInvalidValue for unknown or conflicting flags
 * (FUSED with SPLIT, STATES_ONLY or OUT_ONLY; two stage flags) and for SPLIT
 * with work_bytes < kern_gdn_chunk_split_work_bytes. */
int kern_gdn_chunk_ex(const float *y, const float *g, const float *beta, int N,
                      const int32_t *plan, int nchunks, const int32_t *slot,
                      const int32_t *has_init, int Hk, int Hv, int Dk, int Dv, float scale,
                      void *state, int state_bf16, size_t slot_stride, float *o, void *work,
                      size_t work_bytes, cudaStream_t s, int flags);
#ifdef __cplusplus
}
#endif
#endif
