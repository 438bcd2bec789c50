/* kernels/cuda/sample.h: token sampling on the GPU, one CTA per sampled row,
 * with exactly the semantics and the order of operations of the CPU sampler
 * (engine/sampling.h: raw log-probs, logit_bias, bans, repetition /
 * frequency / presence penalties, greedy argmax, temperature, top_k, top_p,
 * min_p, the seeded inverse-CDF draw in id order).
 *
 * defines: struct kern_samp_job, kern_sample, kern_samp_work_floats
 *
 * Called from the engine thread (engine/cuda/cuda_sample.c) or the GPU tests;
 * asynchronous on the given stream, returns the launch status (0 = ok).
 */
#ifndef DS_KERNELS_CUDA_SAMPLE_H
#define DS_KERNELS_CUDA_SAMPLE_H
#include <stdint.h>
#include <cuda_runtime_api.h>

#include "engine/sampling.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One row to sample, prepared on the host (cuda_sample.c) and uploaded with
 * the pool in one copy. The penalty history arrives already reduced to its
 * distinct tokens (the host does the O(history) dedup, the kernel O(distinct)). */
struct kern_samp_job {
    int32_t row;           /* logits row [0, num_rows) this job reads */
    int32_t num_logprobs;  /* -1: none; 0..SAMP_MAX_LOGPROBS alternatives */
    int32_t greedy;        /* samp_is_greedy */
    int32_t top_k;         /* 0: off; else 0 < top_k < vocab */
    float invt;            /* 1 / temperature, computed on the host as the CPU does */
    float top_p, min_p;
    float rep, freq, pres; /* repetition, frequency, presence penalties */
    int32_t bias_off, nbias; /* pool: nbias (token, float bits of bias) pairs, in request order */
    int32_t ban_off, nban;   /* pool: nban token ids */
    int32_t pen_off, npen;   /* pool: npen (token, output count) pairs, distinct tokens:
                              * prompt u output when rep != 1, else output only */
    uint64_t seed, stream, counter; /* samp_rng_uniform key */
};

/* Floats of device scratch per job (work must hold njobs times this). */
static inline size_t kern_samp_work_floats(int vocab) { return (size_t)2 * (size_t)vocab; }

/* For each job j: samples from logits[jobs[j].row * vocab + v] (fp32, never
 * written) into out[j] (struct samp_result, as samp_sample fills it).
 * jobs, pool, work, out: device memory. margin (device, may be NULL): per
 * job, the smallest relative distance of a float decision of the draw to its
 * threshold (u against the CDF, the top_p cut, min_p), 1 when there was none:
 * a mismatch with the CPU can only come from a decision closer than the
 * float / summation-order error (used by the tests to show near-ties). */
int kern_sample(const float *logits, int vocab, const struct kern_samp_job *jobs,
                const int32_t *pool, int njobs, float *work, struct samp_result *out,
                float *margin, cudaStream_t s);

/* Device version of samp_rng_uniform over n keys (for the tests):
 * out[i] = samp_rng_uniform(seed[i], stream[i], counter[i]). */
int kern_samp_uniform(const uint64_t *keys /* [n][3] */, int n, double *out, cudaStream_t s);

#ifdef __cplusplus
}
#endif
#endif
