/* tests/gpu/gpu_util.h: helpers for the GPU tests: poisoned device buffers,
 * uploads/downloads, random inputs, bf16 rounding, the relative-error
 * measure ||out - ref|| / ||ref|| that every check uses, the random GDN
 * varlen batch with its CPU reference (gpu_kernels, gpu_chunk), the
 * random test checkpoints, and the whole-model plumbing the model-level suites
 * share (gpu_model, gpu_spec, gpu_sample): one checkpoint on the CPU and the
 * CUDA backend, the logits-row comparison, and a scheduler driven to
 * completion on the test thread.
 *
 * Test-only, single-threaded (the GPU tests run in CK_NOFORK mode).
 */
#ifndef DS_TESTS_GPU_GPU_UTIL_H
#define DS_TESTS_GPU_GPU_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include <check.h>
#include <cuda_runtime_api.h>

#include "engine/config.h"
#include "engine/weights.h"

struct engine;
struct sched;
struct sched_delta;
struct sched_params;
struct sched_request;

/* cudaMalloc'd, filled with 0xFF bytes (NaN as fp32 and bf16) so an element
 * a kernel never writes shows as NaN; freed by gu_free_all. */
void *gu_dev(size_t bytes);
void gu_free_all(void);
void gu_up(void *dst, const void *src, size_t bytes);
void gu_down(void *dst, const void *src, size_t bytes);
/* cudaDeviceSynchronize + check the last error (fails the test otherwise). */
void gu_sync(void);

/* 1 when built against tools/cuda-emu (the CPU emulator, run in CI): tests
 * shrink their largest shape sweeps there, since the emulator runs every
 * CUDA thread as a fiber. The real-GPU run keeps the full sweeps, except
 * with DS_GPU_QUICK=1 (compute-sanitizer runs, which are as slow). */
int gu_emulated(void);

void gu_seed(uint64_t s);
float gu_unif(float lo, float hi);
int gu_int(int lo, int hi); /* inclusive */
void gu_fill(float *p, size_t n, float lo, float hi);
float gu_bf16_round(float f);
uint16_t gu_to_bf16(float f);
float gu_from_bf16(uint16_t h);
/* p[i] = bf16-rounded values; bf[i] the same as bf16 bits. */
void gu_fill_bf16(float *p, uint16_t *bf, size_t n, float lo, float hi);

/* ||a - ref|| / max(||ref||, 1e-30); sets *nan when a has NaN/Inf. */
double gu_rel_err(const float *a, const float *ref, size_t n, int *nan);
/* Same with a in bf16. */
double gu_rel_err_bf16(const uint16_t *a, const float *ref, size_t n, int *nan);
/* Strided comparison: n rows of w values, strides la and lr. */
double gu_rel_err_rows(const float *a, int la, const float *ref, int lr, int rows, int w, int *nan);

/* Assert err below tol and no NaN, printing the measured error. */
#define GU_EXPECT(name, err, nan, tol)                                                      \
    do {                                                                                    \
        double gu_e_ = (err); /* evaluated first: it sets nan */                            \
        int gu_n_ = (nan);                                                                  \
        printf("  %-48s rel err %.3e (tol %.1e)%s\n", name, gu_e_, (double)(tol),          \
               gu_n_ ? " NaN!" : "");                                                       \
        ck_assert_msg(!gu_n_ && gu_e_ <= (tol), "%s: rel err %.3e > %.1e or NaN (%d)", name, \
                      gu_e_, (double)(tol), gu_n_);                                         \
    } while (0)

/* Upload n fp32 state values to a fresh gu_dev buffer, as fp32 or (bf16 != 0)
 * as bf16 bits; the buffer is freed by gu_free_all. */
void *gu_state_up(const float *src, size_t n, int bf16);
/* Download n state values (fp32 or bf16 on the device) into dst as fp32. */
void gu_state_down(float *dst, const void *dev, size_t n, int bf16);

/* A random ragged varlen batch for the GDN kernels (kern_gdn_recurrent,
 * kern_gdn_chunk), with its CPU reference result (kern_cpu_gdn_recurrent over
 * the l2-normalized q/k, q scaled by 1/sqrt(Dk)).
 *   rows: T = pad + sum(lens); the first pad rows belong to no sequence
 *   (random inputs that no sequence reads). Sequence i owns rows
 *   qs[i]..qs[i+1] and state slot slot[i] = nslots - 1 - i (nslots = N + 2,
 *   so two slots are never used), except sequence neg_seq (when >= 0), whose
 *   slot is -1: zero initial state, final state not kept. hinit[i]: seq 0 starts
 *   from zero, seq 1 from its slot's state, the others at random.
 *   y [T][CD], CD = 2*Hk*Dk + Hv*Dv: q | k | v, as the conv output; g, bt
 *   [T][Hv]: log-decay (< 0) and beta in (0, 2). Hv must be a multiple of Hk.
 *   st [nslots][Hv][Dk][Dv]: initial states (bf16-rounded when bf16_state);
 *   st_ref: the expected final states (the slots no sequence uses = st);
 *   o_ref [T][VD]: expected outputs (pad rows 0).
 * The device copies (d*) are uploaded: dst holds st in the state dtype.
 * Same seed, same batch. Host arrays are owned by the batch and freed by
 * gu_gdn_batch_destroy; device buffers are gu_dev's (free with gu_free_all).
 * Fails the test on an allocation or copy error. */
struct gu_gdn_batch {
    int Hk, Hv, Dk, Dv, KD, VD, CD, N, T, pad, nslots, bf16_state;
    size_t se; /* Hv*Dk*Dv: one slot's state elements */
    int32_t qs[65], slot[64], hinit[64];
    float *y, *g, *bt, *st, *st_ref, *o_ref;
    float *dy, *dg, *db;
    int32_t *dq, *dsl, *dh;
    void *dst;
};
struct gu_gdn_batch *gu_gdn_batch_create(int Hk, int Hv, int Dk, int Dv, const int *lens, int N,
                                         int pad, int neg_seq, int bf16_state, uint64_t seed);
void gu_gdn_batch_destroy(struct gu_gdn_batch *b);

/* Random test checkpoints for the whole-model suites (gpu_model, gpu_spec):
 * an 8-layer tiny model with GQA and Hv = 2*Hk, and one with the 7B head dims
 * (GDN 96/192, attention head_dim 128), NoPE and tied embeddings. */
extern const char *const GU_CFG_TINY;
extern const char *const GU_CFG_WIDE;
/* Parses json into *cfg, writes a random bf16 checkpoint from seed (no
 * lm_head when the embeddings are tied) into a fresh temp dir (dir, cap bytes;
 * remove it with stw_rmtree) and loads it into *w through the real loader.
 * Fails the test on any error. */
void gu_random_model(const char *json, uint32_t seed, struct cfg_model *cfg,
                     struct eng_weights *w, char *dir, size_t cap);

/* One random checkpoint (gu_random_model) on both backends: the CPU
 * reference engine and the CUDA engine, over the same eng_memory (block size
 * 16). The pair owns the weights, both engines and the checkpoint's temp dir;
 * gu_pair_close frees them all. */
struct gu_pair {
    struct cfg_model cfg;
    struct eng_weights w;
    struct engine *cpu, *gpu;
    char dir[256];
    int V; /* cfg.vocab_size */
};
struct gu_pair_shape {
    int kv_blocks, state_slots; /* eng_memory of both engines */
    /* eng_cuda_options (the rest at their defaults) */
    int max_tokens, max_seqs, max_blocks_per_seq, max_logits, ssm_state_bf16;
};
/* gu_seed(rng_seed) (the tests' gu_* draws start there), then the checkpoint
 * from json and seed, then both engines (the CUDA options are set globally
 * with eng_cuda_set_options first). Fails the test on any error. */
void gu_pair_open(struct gu_pair *p, uint64_t rng_seed, const char *json, uint32_t seed,
                  const struct gu_pair_shape *sh);
void gu_pair_close(struct gu_pair *p);

/* First index of the largest of x[0..n). */
int gu_argmax(const float *x, int n);

/* Logits-row agreement, accumulated over rows. */
struct gu_row_stats {
    int rows, agree, ties;   /* top-1 the same / different at a near-tie */
    double max_lp, max_rel;  /* largest |dlogp| and relative L2 error seen */
};
/* One logits row b [V] (the GPU's) against the reference a [V]: every logit of
 * b finite, the log-softmax error at the reference's top token <= lp_tol, the
 * relative L2 error of the row <= rel_tol, and the same top-1 token unless the
 * reference's own gap between the two is < 2 * lp_tol (a near-tie). Updates
 * *st; fails the test otherwise, naming the row as "<what> row <r>". */
void gu_compare_logits(struct gu_row_stats *st, const float *a, const float *b, int V,
                       double lp_tol, double rel_tol, const char *what, int r);

/* A scheduler over e, stepped by the test thread (sched_step_sync): the given
 * max_num_seqs, max_num_batched_tokens and max_model_len, default seed 5, no
 * request log, k speculative tokens from n-gram drafts of 1..3 tokens. Fails
 * the test when creation fails; the caller sched_destroys it. */
struct sched *gu_sched_create(struct engine *e, int k, int max_seqs, int max_batched_tokens,
                              int max_model_len);
/* sched_request_create + sched_submit; fails the test on error. The caller
 * releases the returned reference (sched_request_release). */
struct sched_request *gu_sched_submit(struct sched *s, const struct sched_params *ps);
/* Steps s until every request rs[0..nr) is done, at most max_steps steps,
 * checking the scheduler's invariants after each. Every delta drained is
 * checked error-free, then handed to on_delta(ctx, i, d) (request i), then
 * finalized. Fails the test on a step error, a broken invariant, a failed
 * request or running out of steps. */
void gu_sched_run(struct sched *s, struct sched_request *const *rs, int nr, int max_steps,
                  void (*on_delta)(void *ctx, int i, const struct sched_delta *d), void *ctx);

Suite *gpu_kernels_suite(void);
Suite *gpu_attn_suite(void);
Suite *gpu_model_suite(void);
Suite *gpu_chunk_suite(void);
Suite *gpu_spec_suite(void);
Suite *gpu_sample_suite(void);
TCase *gpu_sample_sched_tcase(void); /* check_gpu_sample_sched.c, in gpu_sample */

#endif
