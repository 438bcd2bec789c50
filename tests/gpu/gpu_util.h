/* tests/gpu/gpu_util.h: helpers for the GPU tests: poisoned device buffers,
 * uploads/downloads, random inputs, bf16 rounding and the relative-error
 * measure ||out - ref|| / ||ref|| that every check uses.
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

Suite *gpu_kernels_suite(void);
Suite *gpu_attn_suite(void);
Suite *gpu_model_suite(void);
Suite *gpu_chunk_suite(void);
Suite *gpu_spec_suite(void);
Suite *gpu_sample_suite(void);
TCase *gpu_sample_sched_tcase(void); /* check_gpu_sample_sched.c, in gpu_sample */

#endif
