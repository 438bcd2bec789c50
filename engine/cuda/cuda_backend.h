/* engine/cuda/cuda_backend.h: the CUDA backend's public extras beyond the
 * eng_backend_cuda vtable (engine/engine.h): availability and memory
 * queries for the startup memory plan, backend options, and the benchmark's
 * random-weight mode.
 *
 * Threads: everything here is called on the main thread at startup (before
 * eng_create) or by the benchmark; nothing is thread-safe.
 */
#ifndef DS_ENGINE_CUDA_CUDA_BACKEND_H
#define DS_ENGINE_CUDA_CUDA_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "engine/config.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Options read by eng_backend_cuda.init; set them before eng_create. */
struct eng_cuda_options {
    int device;              /* CUDA device ordinal (default 0) */
    int ssm_state_bf16;      /* 1: GDN SSM state in bf16 (--ssm-state-dtype bf16); 0: fp32 */
    int max_tokens;          /* T per step at most (default 8192); sizes the workspace */
    int max_seqs;            /* N per step at most (default 256) */
    int max_blocks_per_seq;  /* block-table width the device keeps (default 4096) */
    int max_logits;          /* lm_head rows per chunk (default 1024; more rows run in chunks) */
    int use_graphs;          /* CUDA graphs for decode-only steps (default 1) */
    int no_device_sampling;  /* 1: no ops->sample (the scheduler samples on the host) */
    uint64_t random_weights_seed; /* non-zero: generate random bf16 weights on the GPU
                                     instead of uploading (benchmark; e->w may be NULL) */
};

/* The defaults above. */
void eng_cuda_default_options(struct eng_cuda_options *o);
/* Copies *o; later eng_create calls with eng_backend_cuda use it. */
void eng_cuda_set_options(const struct eng_cuda_options *o);

/* 1 when a usable CUDA device is present (desc gets e.g. "NVIDIA H100 80GB
 * HBM3, sm_90, 79.1 GiB"), else 0 (desc gets the reason). Never fails hard:
 * a CPU-only machine with the CUDA build just answers 0. */
int eng_cuda_available(char *desc, size_t len);

/* Free and total device memory in bytes on the configured device; -1 if no
 * device. */
int eng_cuda_mem_info(size_t *free_bytes, size_t *total_bytes);

/* Device bytes the backend takes besides KV blocks and state slots, for the
 * memory plan: weights (bf16) plus the step workspace for the options. */
size_t eng_cuda_weight_bytes(const struct cfg_model *c);
size_t eng_cuda_workspace_bytes(const struct cfg_model *c, const struct eng_cuda_options *o);
/* Bytes of one state slot / one KV block (all layers) as this backend stores them. */
size_t eng_cuda_slot_bytes(const struct cfg_model *c, int ssm_state_bf16);
size_t eng_cuda_kv_block_bytes(const struct cfg_model *c, int block_size);

/* Benchmark / test hooks on an engine running eng_backend_cuda. */
struct engine;
/* Fill every KV block and state slot with random data (timing on zeros lies). */
int eng_cuda_randomize_state(struct engine *e, uint64_t seed);
/* Synchronize the engine's stream; returns 0 or -EIO. */
int eng_cuda_sync(struct engine *e);

#ifdef __cplusplus
}
#endif
#endif
