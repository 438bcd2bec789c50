/* engine/engine.h: the engine API and the varlen batch contract between the
 * scheduler and a backend (CPU reference or CUDA).
 *
 * defines: struct eng_batch, struct eng_backend_ops, struct engine,
 *          eng_create, eng_destroy, eng_forward, eng_copy_slot, eng_copy_block,
 *          eng_backend_cpu
 *
 * Threads: an engine is created on the main thread and afterwards used only by
 * the engine (scheduler) thread. Nothing here is thread-safe; nothing needs to be.
 *
 * The batch contract (docs/architecture.md has the long form):
 *   One step runs T new tokens from N sequences. Sequences are ordered: decode
 *   rows, then speculative-verify rows, then prefill chunks; each sequence's
 *   new tokens are contiguous, tokens [query_start[i], query_start[i+1]).
 *   For sequence i, cache_len[i] tokens are already in its KV blocks and GDN
 *   state slot; the step appends the new ones. has_initial_state[i] is
 *   cache_len[i] > 0 (a zero-length history means the slot is read as zeros,
 *   whatever stale data it holds). positions[t] is cache_len + offset and is
 *   given explicitly so the backend never recomputes it.
 *   block_table[i*max_blocks + j] is the KV block holding tokens
 *   [j*block_size, (j+1)*block_size) of sequence i, for every j the sequence's
 *   context (cache_len + new) touches. state_slot[i] is the sequence's GDN slot.
 *   The engine writes KV for the new tokens, advances each GDN slot past them,
 *   and returns logits for the rows listed in logits_rows (indices into
 *   [0,T), ascending) as logits[r*vocab + v], fp32.
 *   Speculative verify rows (num_verify > 0, docs and KERNELS.md): for a
 *   verify sequence, spec_slots[i*(max_spec+1) + t] receives the GDN state
 *   after its token t, so acceptance needs no recompute; conv state follows
 *   the accepted count. Both backends implement it (the CUDA one eagerly).
 *   The scheduler owns every index; no two sequences in one batch share a
 *   writable slot or block.
 */
#ifndef DS_ENGINE_ENGINE_H
#define DS_ENGINE_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "engine/config.h"
#include "engine/sampling.h"
#include "engine/weights.h"

#ifdef __cplusplus
extern "C" {
#endif

struct eng_batch {
    int num_seqs;                      /* N */
    int num_tokens;                    /* T */
    int num_decode;                    /* the first num_decode sequences are 1-token decodes */
    int num_verify;                    /* the next num_verify sequences are spec-verify rows */
    const int32_t *tokens;             /* [T] */
    const int32_t *positions;          /* [T] */
    const int32_t *query_start;        /* [N+1], query_start[0] = 0, query_start[N] = T */
    const int32_t *cache_len;          /* [N] tokens already cached before this step */
    const int32_t *state_slot;         /* [N] GDN state slot */
    const int32_t *block_table;        /* [N * max_blocks] */
    int max_blocks;                    /* row stride of block_table */
    const int32_t *logits_rows;        /* [num_logits] ascending token indices */
    int num_logits;
    /* speculative verify (only read when num_verify > 0) */
    int max_spec;                      /* k: drafts per verify row at most */
    const int32_t *spec_slots;         /* [num_verify * (max_spec+1)] per-position GDN slots */
    /* device sampling: 1 asks a backend with ops->sample to keep the logits
     * rows on the device for ops->sample / ops->fetch_logits instead of
     * writing them to the host (only when num_logits <= e->sample_max_logits);
     * backends without ops->sample ignore it and write the rows as always. */
    int logits_on_device;
};

/* One row for ops->sample: the arguments of samp_sample (engine/sampling.h),
 * with the logits row given by its index in the last forward's rows. All
 * pointers are borrowed for the duration of the call. */
struct eng_sample_row {
    int logits_row;                    /* [0, num_logits) of the last forward */
    const struct samp_params *params;
    const int32_t *prompt;             /* [num_prompt] repetition-penalty history */
    int num_prompt;
    const int32_t *output;             /* [num_output] generated tokens (all penalties) */
    int num_output;
    const int32_t *banned;             /* [num_banned] ids forced to -inf */
    int num_banned;
    uint64_t seed, stream, counter;    /* samp_rng_uniform key */
    int num_logprobs;                  /* -1..SAMP_MAX_LOGPROBS as in samp_sample */
};

/* Memory the backend was given; sizes are decided by the scheduler's plan. */
struct eng_memory {
    int num_kv_blocks;                 /* per attention layer */
    int block_size;                    /* tokens per block */
    int num_state_slots;               /* GDN slots (conv + SSM for every GDN layer) */
};

struct engine;

struct eng_backend_ops {
    const char *name;                                   /* "cpu", "cuda" */
    int (*init)(struct engine *e);                      /* allocate state, upload weights */
    void (*destroy)(struct engine *e);
    /* Run one batch; write num_logits x vocab fp32 logits into logits. */
    int (*forward)(struct engine *e, const struct eng_batch *b, float *logits);
    /* Copy GDN state (conv + SSM, every layer) from slot src to slot dst (n>1 forks). */
    int (*copy_slot)(struct engine *e, int src, int dst);
    /* Copy KV block src to dst in every attention layer (copy-on-write). */
    int (*copy_block)(struct engine *e, int src, int dst);
    /* Optional (NULL: -ENOTSUP): slot's whole GDN state as fp32, eng_read_slot. */
    int (*read_slot)(struct engine *e, int slot, float *out);
    /* Optional (NULL: the scheduler samples on the host). Samples n rows of
     * the logits kept by the last forward that ran with logits_on_device,
     * with samp_sample's semantics (engine/sampling.h says where the device
     * may differ), into out[n]. Returns 0; -E2BIG when the step exceeds the
     * backend's sampling capacity (rows or history: the caller fetches the
     * logits and samples on the host); -EINVAL; -EIO. The kept rows stay
     * valid until the next forward. */
    int (*sample)(struct engine *e, const struct eng_sample_row *rows, int n,
                  struct samp_result *out);
    /* With sample: copy the kept rows to the host, num_logits x vocab fp32. */
    int (*fetch_logits)(struct engine *e, float *logits);
};

struct engine {
    const struct cfg_model *cfg;       /* borrowed */
    const struct eng_weights *w;       /* borrowed */
    struct eng_memory mem;
    const struct eng_backend_ops *ops; /* borrowed, static */
    void *impl;                        /* owned by the backend */
    int num_threads;                   /* CPU backend: worker threads (0 = all cores) */
    int sample_max_logits;             /* set by a backend with ops->sample: most logits rows a
                                          forward can keep on the device (0: none) */
};

/* Bytes one GDN state slot and one KV block take on this backend (for the
 * memory plan), with elem bytes per stored SSM / KV value:
 *   slot  = num_gdn_layers * ((K-1)*CD * 4 + Hv*Dk*Dv * elem)  (fp32 conv + SSM state)
 *   block = num_attn_layers * 2 * block_size * Hkv * D * elem  (K and V)
 * The CPU backend stores both in fp32 (elem 4); CUDA: KV bf16 (2), SSM state
 * fp32 (4) or bf16 (2, --ssm-state-dtype bfloat16). Any thread; pure. */
size_t eng_slot_bytes(const struct cfg_model *c, int ssm_state_bytes_per_elem);
size_t eng_kv_block_bytes(const struct cfg_model *c, int block_size, int kv_bytes_per_elem);

/* Returns NULL and fills err on failure. */
struct engine *eng_create(const struct cfg_model *c, const struct eng_weights *w,
                          const struct eng_backend_ops *ops, const struct eng_memory *mem,
                          char *err, size_t errlen);
void eng_destroy(struct engine *e);

/* Validates the batch against the contract (bounds of every index) and runs it.
 * Returns 0, or a negative errno-style code: -EINVAL for a malformed batch,
 * -EIO for a failed step, -ENODEV when the device is unusable (the scheduler
 * then fails every request and the server exits non-zero). logits must hold num_logits * vocab floats.
 * Checked before the backend runs (engine.c; nothing is written on -EINVAL):
 * N, T > 0; query_start from 0, strictly increasing, ending at T; decode rows
 * of one token; positions[t] == cache_len + offset; token ids < vocab; slots
 * in range and not shared (spec slots included); every block the context
 * touches in range, blocks receiving new tokens not shared; the context
 * within max_blocks; logits_rows in [0, T), strictly ascending.
 * Speculative verify (CPU and CUDA backends): spec_slots[v*(max_spec+1) + t] receives
 * the whole GDN state (conv and SSM, every GDN layer) after the verify row's
 * token t; state_slot ends after all of its tokens as for any row. */
int eng_forward(struct engine *e, const struct eng_batch *b, float *logits);
int eng_copy_slot(struct engine *e, int src, int dst);
int eng_copy_block(struct engine *e, int src, int dst);
/* Reads the whole GDN state of slot into out (fp32, eng_slot_floats(cfg)
 * values): for each GDN layer in layer order, the conv state (K-1, CD)
 * (oldest input first) then the SSM state (Hv, Dk, Dv), bf16 storage widened.
 * For tests and debugging (slow: the CUDA backend synchronizes). Returns 0,
 * -EINVAL for a slot out of range, -ENOTSUP when the backend cannot. Engine
 * thread. */
int eng_read_slot(struct engine *e, int slot, float *out);
size_t eng_slot_floats(const struct cfg_model *c);

/* The CPU reference backend (kernels/cpu, engine/cpu_backend.c). */
extern const struct eng_backend_ops eng_backend_cpu;
#ifdef DS_HAVE_CUDA
extern const struct eng_backend_ops eng_backend_cuda;
#endif

#ifdef __cplusplus
}
#endif
#endif
