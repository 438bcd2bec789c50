/* scheduler/sched.h: the continuous-batching scheduler's public API: requests,
 * their outboxes, submission, cancellation, drain, stats, and the memory plan.
 *
 * defines: struct sched_config, struct sched_params, struct sched_request,
 *          struct sched_delta, struct sched_choice_delta, struct sched_tok_lp,
 *          struct sched_timing, struct sched_stats, struct sched_memplan,
 *          enum sched_finish, sched_notify_fn, sched_config_init,
 *          sched_params_init, sched_create, sched_destroy, sched_start,
 *          sched_stop, sched_submit, sched_cancel, sched_drain_begin,
 *          sched_wait_idle, sched_is_draining, sched_get_stats,
 *          sched_request_create, sched_request_retain, sched_request_release,
 *          sched_request_set_notify, sched_request_detach, sched_request_drain,
 *          sched_request_wait, sched_delta_fini, sched_finish_str,
 *          sched_memplan_compute, sched_memplan_describe,
 *          sched_memplan_gpu_budget, sched_memplan_add_spec, SCHED_DEFAULT_KV_CACHE_MEMORY
 *
 * Threads. Three kinds of caller:
 *   main thread:  sched_create / sched_start / sched_stop / sched_destroy,
 *                 the memory plan;
 *   HTTP threads: request create/release, submit, cancel, drain/wait on the
 *                 outbox, stats, drain_begin/wait_idle (any thread, any time
 *                 between start and stop);
 *   engine thread (owned by the scheduler, started by sched_start): the only
 *                 thread that touches the engine, the KV blocks and the slots.
 * The two sides meet only in the inbox (mutex + condition variable) and in
 * each request's outbox (mutex + condition variable + notify callback).
 *
 * Why a condition variable and not libuv for the engine thread's wake-up: the
 * engine thread has exactly one thing to wait for (work arriving while it is
 * idle); when it has work it never blocks, it drains the inbox without
 * waiting before each step. pthread_cond_wait/timedwait covers that and the
 * drain timeout with no event loop, no extra fds and nothing to integrate
 * with MHD's own internal polling thread.
 *
 * Request lifetime (refcounted, two owners): sched_request_create returns a
 * request holding one reference (the HTTP side). A successful sched_submit
 * takes a second one for the scheduler, dropped when the request finishes
 * (any reason) after its last outbox append. The HTTP side calls
 * sched_request_release when its connection is done (MHD's completion
 * callback); the last release frees. A disconnect calls sched_cancel first.
 *
 * Output: the engine thread appends to the request's outbox (per choice:
 * token ids, their log-probs, the text delta with stop strings handled, the
 * finish reason) and then calls the notify callback. The HTTP side takes
 * everything pending with sched_request_drain (non-blocking) or waits for it
 * with sched_request_wait. Lock order for servers that suspend connections:
 * the server's connection lock may be held while calling
 * sched_request_drain; the notify callback is called with no scheduler lock
 * held except the request's notify lock, so notify may take the server's
 * connection lock. Do not call sched_request_detach while holding a lock
 * that notify takes.
 */
#ifndef DS_SCHEDULER_SCHED_H
#define DS_SCHEDULER_SCHED_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/config.h"
#include "engine/engine.h"
#include "engine/sampling.h"
#include "engine/tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

/* CPU backend default for --kv-cache-memory: 1 GiB. Tiny fixture models need
 * kilobytes per block, so this admits max_num_seqs sequences at full length;
 * a 7B on CPU should be given more (docs/operations.md). */
#define SCHED_DEFAULT_KV_CACHE_MEMORY ((size_t)1 << 30)
#define SCHED_DEFAULT_BLOCK_SIZE 16
#define SCHED_MAX_LOGPROBS SAMP_MAX_LOGPROBS

/* --- configuration ------------------------------------------------------ */

struct sched_config {
    struct engine *eng;              /* borrowed; used only on the engine thread */
    const struct tokenizer *tok;     /* borrowed; detokenize + stop strings.
                                        NULL: no text is produced, stop strings
                                        are rejected at submit */
    int max_num_seqs;                /* running sequences per step (default 256) */
    int max_num_batched_tokens;      /* tokens per step (default 2048) */
    int max_model_len;               /* prompt + output limit (default: cfg max_position_embeddings) */
    int max_queued;                  /* waiting requests before -EAGAIN (default 1024) */
    /* KV blocks, block size and slots are read from eng->mem (the plan). */
    uint64_t default_seed;           /* --seed: seeds requests that give none (each gets
                                        its own stream); 0 = from the clock */
    bool log_requests;               /* one INFO line per finished request (default true) */
    /* An unusable device (ARCHITECTURE.md "Errors and lifetimes"): a step that
     * returns -ENODEV, or max_failed_steps failed steps in a row (default 8;
     * 0 = never), marks the scheduler fatal: every request is failed with a
     * clear error, new submits get -ESHUTDOWN, the engine thread exits, and
     * on_fatal(fatal_user, rc) is called once on the engine thread (the server
     * uses it to end the process with a non-zero status so the orchestrator
     * restarts it). A single failed step only fails its own requests. */
    int max_failed_steps;
    void (*on_fatal)(void *user, int rc);
    void *fatal_user;
    /* Speculative decoding by n-gram prompt lookup (scheduler/spec.h, issue 9):
     * up to num_speculative_tokens drafts per decoding sequence and step
     * (0 = off, the default; at most SPEC_MAX_TOKENS), verified in the same
     * batch. n-gram sizes are tried from ngram_max down to ngram_min; 0 means
     * vLLM's default (5). Lossless: a row emits exactly the tokens plain
     * decoding would (the target samples every position in order with the
     * same RNG key and accepts while its token equals the draft). */
    int num_speculative_tokens;
    int ngram_min, ngram_max;
    /* Adaptive draft length (scheduler/spec.h struct spec_adapt): a draft
     * token is proposed only while its estimated acceptance probability is
     * at least spec_min_acceptance (default SPEC_MIN_ACCEPT_DEFAULT = 0.1;
     * 0 = always num_speculative_tokens drafts); a sequence whose drafts keep
     * failing decodes plainly for up to spec_probe_interval steps (default
     * 64; 0 = default) between probes. */
    double spec_min_acceptance;
    int spec_probe_interval;
    /* vLLM's speculative_disable_by_batch_size: no drafts in a step that
     * starts with more than this many running sequences (0 = no limit). */
    int spec_disable_by_batch_size;
};

/* Defaults for the fields above; eng/tok are left NULL. */
void sched_config_init(struct sched_config *c);

/* --- request parameters ------------------------------------------------- */

struct sched_params {
    const char *id;                  /* "cmpl-..."/"chatcmpl-..." for logs; copied; may be NULL */
    const int32_t *prompt;           /* [prompt_len] token ids; copied */
    int prompt_len;                  /* >= 1 */
    int n;                           /* choices, >= 1 (default 1) */
    int max_tokens;                  /* >= 0; -1 = until max_model_len (default -1).
                                        0 is allowed (echo scoring: prompt log-probs only) */
    int min_tokens;                  /* eos / stop ids / stop strings ignored before (default 0) */
    bool ignore_eos;
    const char *const *stop;         /* [num_stop] NUL-terminated, non-empty; copied */
    int num_stop;
    const int32_t *stop_token_ids;   /* [num_stop_token_ids]; copied */
    int num_stop_token_ids;
    bool include_stop_str_in_output;
    bool skip_special_tokens;        /* default true */
    struct samp_params sampling;     /* logit_bias array copied */
    bool has_seed;
    uint64_t seed;
    int logprobs;                    /* -1 none (default); 0..20: logprob of each generated
                                        token plus that many top alternatives */
    int prompt_logprobs;             /* -1 none (default); 0..20: logprob of every prompt
                                        token after the first, plus alternatives (echo) */
};

/* Defaults (see each field). */
void sched_params_init(struct sched_params *p);

/* --- output ------------------------------------------------------------- */

enum sched_finish {
    SCHED_FINISH_NONE = 0,           /* still running */
    SCHED_FINISH_STOP,               /* eos, stop token id, stop string */
    SCHED_FINISH_LENGTH,             /* max_tokens or max_model_len */
    SCHED_FINISH_ABORT,              /* cancelled (disconnect) or shutdown */
    SCHED_FINISH_ERROR,              /* engine failure; see sched_delta.error */
};
/* "stop", "length", "abort", "error", or NULL for NONE. */
const char *sched_finish_str(enum sched_finish f);

/* One token's log-probability with its alternatives (raw model distribution). */
struct sched_tok_lp {
    int32_t token;
    float logprob;
    int num_top;
    struct samp_logprob top[SCHED_MAX_LOGPROBS];   /* descending */
};

/* CLOCK_MONOTONIC nanoseconds; 0 = not reached yet. */
struct sched_timing {
    int64_t arrival_ns;              /* sched_submit accepted it */
    int64_t first_scheduled_ns;      /* first step that ran any of its tokens */
    int64_t first_token_ns;          /* first generated token appended */
    int64_t last_token_ns;           /* latest generated token appended */
    int64_t finish_ns;               /* finished (any reason) */
};

/* What one choice produced since the previous drain. All arrays owned by the
 * delta (freed by sched_delta_fini). */
struct sched_choice_delta {
    int index;                       /* choice index 0..n-1 */
    int32_t *tokens;                 /* [num_tokens] new generated ids */
    int num_tokens;
    struct sched_tok_lp *logprobs;   /* [num_tokens] when logprobs >= 0, else NULL */
    char *text;                      /* new text, NUL-terminated ("" when none); stop
                                        strings removed unless include_stop_str_in_output;
                                        text that may begin a stop string is held back
                                        until it is decided */
    size_t text_len;
    enum sched_finish finish;        /* set once, in the delta that ends this choice */
    int completion_tokens;           /* total generated so far by this choice */
    /* For finish == STOP: the stop token id that ended it (-1 when a stop string or
       eos did), and which stop string matched (-1 when none). */
    int32_t stop_token;
    int stop_index;
};

struct sched_delta {
    int n;                           /* = params.n */
    struct sched_choice_delta *choices; /* [n], always all n (most empty) */
    /* Prompt log-probs (prompt_logprobs >= 0), delivered once when the prompt has
       been prefilled: entry 0 is the first prompt token with no logprob
       (num_top 0, logprob NAN); entries 1..prompt_len-1 follow. */
    struct sched_tok_lp *prompt_logprobs;
    int num_prompt_logprobs;
    bool done;                       /* every choice finished: nothing more will come */
    int error;                       /* 0, or a negative errno when finish == ERROR */
    char error_msg[160];
    int prompt_tokens;               /* usage */
    int completion_tokens;           /* usage: sum over choices so far */
    struct sched_timing timing;      /* copy at drain time */
};
void sched_delta_fini(struct sched_delta *d);

/* Called on the engine thread after new output was appended (and once more
 * when the request is done). Must be cheap and must not call into the
 * scheduler (no sched_* calls). */
typedef void (*sched_notify_fn)(void *user);

/* --- the request -------------------------------------------------------- */

struct sched_req_impl;                /* engine-side state, private */

struct sched_request {
    atomic_int refcount;             /* HTTP side + scheduler; last release frees */
    atomic_bool cancelled;           /* set by sched_cancel, read by the engine thread */
    struct sched_req_impl *impl;     /* owned */
};

/* Copies p (prompt, stop strings, stop ids, logit_bias, id). Does not validate
 * against the model (sched_submit does). Returns NULL on out of memory. The
 * result holds one reference (the caller's). Any thread. */
struct sched_request *sched_request_create(const struct sched_params *p);
void sched_request_retain(struct sched_request *r);
/* Drops one reference; frees at zero. Any thread. */
void sched_request_release(struct sched_request *r);

/* Sets (or replaces) the notify callback; user is borrowed until
 * sched_request_detach returns or the request is freed. Call before submit
 * to see every notification. Any thread. */
void sched_request_set_notify(struct sched_request *r, sched_notify_fn fn, void *user);
/* Clears the callback; when it returns, notify is not running and will never
 * be called again. Any thread (not from inside notify). */
void sched_request_detach(struct sched_request *r);

/* Moves everything pending in the outbox into *out (zeroed first). Returns 1
 * if anything was pending (or the done/finish state is new): the caller owns
 * *out and calls sched_delta_fini. Returns 0 when nothing changed and
 * -ENOMEM on allocation failure: *out is then left zeroed (n = 0, no arrays;
 * sched_delta_fini is allowed but not needed). Never blocks on the engine
 * (holds the outbox lock for pointer moves only). Any thread. */
int sched_request_drain(struct sched_request *r, struct sched_delta *out);

/* Waits until the outbox has something to drain or the request is done, at
 * most timeout_ms (< 0: forever). Returns 1 when there is something, 0 on
 * timeout. For the offline CLI and simple non-streaming handlers. */
int sched_request_wait(struct sched_request *r, int timeout_ms);

/* --- the scheduler ------------------------------------------------------ */

struct sched;

/* Validates the config against the engine (memory sizes from eng->mem) and
 * allocates the block and slot pools. Returns NULL with err on failure. Main
 * thread. */
struct sched *sched_create(const struct sched_config *c, char *err, size_t errlen);
/* Stops (as sched_stop) if still running, then frees. Requests still held by
 * HTTP threads stay valid until they are released. Main thread. */
void sched_destroy(struct sched *s);

/* Starts the engine thread. Returns 0 or a negative errno. Main thread. */
int sched_start(struct sched *s);
/* Aborts everything still queued or running (finish ABORT, delivered) and
 * joins the engine thread. Idempotent. Main thread. */
void sched_stop(struct sched *s);

/* Validates r against the model and limits and queues it. On success takes the
 * scheduler's reference and returns 0; r's timing.arrival_ns is set. Errors
 * (r is not queued, caller keeps its reference; err gets a one-line message):
 *   -EINVAL     bad parameters (n, ids out of vocab, logprobs > 20, stop
 *               strings without a tokenizer, sampling ranges), message names the field
 *   -E2BIG      prompt_len + max_tokens > max_model_len (or prompt_len >=
 *               max_model_len when max_tokens is -1): OpenAI's
 *               "maximum context length is N tokens" message
 *   -EAGAIN     queue full (max_queued waiting): 429/503 with Retry-After
 *   -ESHUTDOWN  draining or stopped: 503
 *   -EALREADY   r was already submitted
 * Any thread. */
int sched_submit(struct sched *s, struct sched_request *r, char *err, size_t errlen);

/* Marks r cancelled; the engine thread frees its blocks and slot at the next
 * step and finishes every unfinished choice with ABORT. Safe on a finished or
 * never-submitted request (no effect). Any thread, never blocks. */
void sched_cancel(struct sched *s, struct sched_request *r);

/* Graceful shutdown: from now on sched_submit returns -ESHUTDOWN; queued and
 * running requests continue. Any thread. */
void sched_drain_begin(struct sched *s);
bool sched_is_draining(const struct sched *s);
/* Nonzero (the engine error code) once the device was found unusable; any thread. */
int sched_fatal_error(const struct sched *s);
/* Waits until nothing is queued or running, at most timeout_ms (< 0: forever).
 * Returns 0 when idle, -ETIMEDOUT otherwise. Any thread. */
int sched_wait_idle(struct sched *s, int timeout_ms);

/* Snapshot for /metrics and the health check (updated after every step). */
struct sched_stats {
    int num_running;                 /* requests with a sequence in the running set */
    int num_waiting;                 /* queued (including preempted) requests */
    int kv_blocks_used, kv_blocks_total;
    double kv_usage;                 /* used / total, 0..1 */
    int slots_used, slots_total;     /* GDN state slots */
    uint64_t preemptions_total;
    uint64_t prompt_tokens_total;    /* prompt tokens of requests admitted */
    uint64_t generation_tokens_total;/* generated tokens delivered */
    uint64_t requests_finished[5];   /* indexed by enum sched_finish */
    uint64_t steps_total;
    uint64_t batched_tokens_total;   /* tokens run through the engine (incl. recompute) */
    uint64_t spec_draft_tokens_total;   /* drafts verified */
    uint64_t spec_accepted_tokens_total;/* drafts accepted (emitted as proposed) */
    uint64_t spec_drafts_total;         /* verify rows (sequences that drafted, per step) */
    int spec_num_positions;             /* num_speculative_tokens (0: speculation off) */
    uint64_t spec_accepted_per_pos[16]; /* [SPEC_MAX_TOKENS] drafts accepted at position i */
};
/* Any thread; never blocks on a step. */
void sched_get_stats(const struct sched *s, struct sched_stats *out);

/* --- memory plan (issue 4.2) -------------------------------------------- */

struct sched_memplan {
    int block_size;
    int num_kv_blocks;               /* per attention layer */
    int num_state_slots;
    int max_model_len;
    size_t kv_block_bytes;           /* one block, all attention layers */
    size_t slot_bytes;               /* one GDN slot, all GDN layers */
    size_t budget_bytes;             /* what the plan was given */
    size_t used_bytes;               /* blocks * kv_block_bytes + slots * slot_bytes */
    int max_seqs_at_max_len;         /* concurrent sequences of max_model_len tokens */
    /* speculation (sched_memplan_add_spec; 0 when off): num_spec_slots of
     * num_state_slots are for verify rows, 1+spec_tokens per verifying
     * sequence, spec_seqs of them at once */
    int num_spec_slots, spec_seqs, spec_tokens;
};

/* Splits budget_bytes between GDN state slots and KV blocks. Slots: one per
 * concurrent sequence, up to max_num_seqs, taking at most half the budget and
 * leaving KV for one max_model_len sequence; the rest goes to KV blocks.
 * Fails (-ENOMEM, err says which flag to change) when one sequence of
 * max_model_len does not fit. kv_bytes/ssm_bytes:
 * bytes per element on this backend (CPU 4/4). Main thread. */
int sched_memplan_compute(const struct cfg_model *c, size_t budget_bytes, int block_size,
                          int max_model_len, int max_num_seqs, int kv_bytes_per_elem,
                          int ssm_bytes_per_elem, struct sched_memplan *out, char *err,
                          size_t errlen);
/* Sequences of max_model_len tokens the plan runs at once, fractional (KV
 * tokens / max_model_len, at most the non-speculation slots): vLLM's
 * "Maximum concurrency for N tokens per request: X.XXx". Pure. */
double sched_memplan_max_concurrency(const struct sched_memplan *p);
/* One line for the startup banner. */
void sched_memplan_describe(const struct sched_memplan *p, char *buf, size_t len);
/* Speculative decoding (scheduler/memplan_spec.c): a verifying sequence
 * holds 1+k state slots for the step besides its own (the state after each
 * fed token). Adds (1+k) slots for each of up to spec_seqs sequences (at
 * most the plan's slots), paid from the plan's unused bytes and then from
 * KV blocks, never more than half of the blocks and always leaving one
 * max_model_len sequence; fewer sequences when that does not allow all.
 * Returns the number of sequences provided for (0 when k <= 0 or
 * spec_seqs <= 0: the plan is unchanged); -ENOSPC with err set when not
 * even one fits (the plan is unchanged; speculation then only uses slots
 * that happen to be free). Main thread. */
int sched_memplan_add_spec(struct sched_memplan *p, int k, int spec_seqs, char *err, size_t errlen);
/* GPU budget: utilization * total minus what is already used (weights,
 * workspace, graph pools, other processes), clamped at 0. */
size_t sched_memplan_gpu_budget(size_t total_bytes, size_t used_bytes, double utilization);

#ifdef __cplusplus
}
#endif
#endif
