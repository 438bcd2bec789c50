/* engine/cuda/cuda_sample.h: the CUDA backend's device sampler (host side of
 * kernels/cuda/sample.cu): packs a step's rows (parameters, logit_bias, bans,
 * the penalty history reduced to distinct tokens) into one pinned buffer, one
 * upload, one kernel launch, one download of struct samp_result per row.
 *
 * defines: struct cu_sampler, cu_sampler_init, cu_sampler_fini,
 *          cu_sampler_device_bytes, cu_sampler_run
 *
 * Every buffer is allocated at init (no cudaMalloc per step). Usable on its
 * own (the GPU tests feed it random logits) and by the backend (ops->sample
 * in cuda_sample.c). Threads: one owner thread (the engine thread).
 */
#ifndef DS_ENGINE_CUDA_CUDA_SAMPLE_H
#define DS_ENGINE_CUDA_CUDA_SAMPLE_H

#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime_api.h>

#include "engine/engine.h"
#include "kernels/cuda/sample.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Penalty-history entries (ints) one step may upload by default. */
#define CU_SAMPLE_POOL_INTS ((size_t)4 << 20)

struct cu_sampler {
    int vocab;
    int max_jobs;                 /* rows per call at most */
    size_t pool_cap;              /* ints of bias / ban / penalty entries per call */
    cudaStream_t stream;          /* borrowed */
    char *h_stage;                /* pinned, owned: [n jobs][pool]: one upload */
    char *d_stage;                /* device copy of h_stage, owned */
    float *d_work;                /* (max_jobs, 2 * vocab) scratch, owned */
    struct samp_result *d_out;    /* (max_jobs), owned */
    struct samp_result *h_out;    /* pinned (max_jobs), owned */
    float *d_margin, *h_margin;   /* (max_jobs), owned */
    uint32_t *stamp;              /* host (vocab): penalty dedup, valid where == epoch */
    int32_t *cnt;                 /* host (vocab): output counts */
    uint32_t epoch;
};

/* Allocates everything for vocab and max_jobs rows of pool_ints history
 * entries on stream (borrowed). Returns 0, -EINVAL or -ENOMEM (nothing left
 * allocated). Main or engine thread. */
int cu_sampler_init(struct cu_sampler *s, int vocab, int max_jobs, size_t pool_ints,
                    cudaStream_t stream);
void cu_sampler_fini(struct cu_sampler *s);
/* Device bytes cu_sampler_init allocates (for the memory plan). */
size_t cu_sampler_device_bytes(int vocab, int max_jobs, size_t pool_ints);

/* Samples rows[n] from d_logits (device, num_rows x vocab fp32) into out[n]
 * and, when margin is not NULL, the kernel's decision margins (sample.h).
 * Synchronizes the stream. Returns 0; -EINVAL for bad arguments (a row
 * outside num_rows, num_logprobs out of range, no params); -E2BIG when n
 * exceeds max_jobs or the entries exceed pool_cap (nothing was launched);
 * -EIO on a CUDA error. Owner thread. */
int cu_sampler_run(struct cu_sampler *s, const float *d_logits, int num_rows,
                   const struct eng_sample_row *rows, int n, struct samp_result *out,
                   float *margin);

#ifdef __cplusplus
}
#endif
#endif
