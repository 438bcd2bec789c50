/* scheduler/sched_internal.h: state shared by the scheduler's files (sched.c
 * API + engine thread, plan.c step planning, step.c forward + sampling +
 * stops + delivery, request.c request/outbox, stop.c stop strings). Not for
 * use outside scheduler/ (tests included only for invariant checks).
 *
 * Threads: everything marked [engine] is touched only by the engine thread;
 * [outbox] fields are guarded by impl->mu; [notify] by impl->notify_mu;
 * [inbox] by sched->mu.
 */
#ifndef DS_SCHEDULER_SCHED_INTERNAL_H
#define DS_SCHEDULER_SCHED_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "engine/sampling.h"
#include "engine/tokenizer.h"
#include "scheduler/kv_blocks.h"
#include "scheduler/sched.h"
#include "scheduler/slots.h"
#include "scheduler/spec.h"

/* Prompt log-prob rows per step at most (each costs a vocab-sized logits row). */
#define SCHED_MAX_PLP_ROWS 256

enum seq_state { SEQ_NEW = 0, SEQ_WAITING, SEQ_RUNNING, SEQ_FINISHED };

/* Sampling workers at most (each context costs ~20 bytes per vocab id). */
#define SCHED_MAX_SAMP_THREADS 16

/* One choice of a request: the unit that holds KV blocks and a state slot. */
struct sched_seq {
    struct sched_request *r;       /* borrowed (the request owns its seqs) */
    int choice;                    /* 0..n-1 */
    enum seq_state state;          /* [engine] */
    int32_t *tokens;               /* [cap] prompt then generated ids, owned */
    int num_tokens, cap;
    int num_computed;              /* tokens in KV + slot */
    int32_t *blocks;               /* [max_blocks] KV block ids, owned */
    int num_blocks;
    int slot;                      /* GDN slot or -1 */
    int num_generated;
    bool scheduled;                /* [engine] in the step being planned */
    /* detokenization and stop strings */
    struct tok_stream ts;
    struct tok_buf text;           /* every decoded output byte (before stop trimming) */
    size_t emitted;                /* bytes of text already in the outbox */
    int64_t last_token_ns;
    /* speculative verify planned for this step (plan.c, step.c); 0 otherwise */
    int num_draft;
    int32_t spec_draft[SPEC_MAX_TOKENS];
    int32_t spec_slots[SPEC_MAX_TOKENS + 1]; /* state after fed token t; held only within a step */
    struct spec_adapt adapt;       /* [engine] adaptive draft length (spec.h) */
};

/* Per-choice outbox (what the HTTP side has not drained yet). */
struct ob_choice {
    int32_t *tokens; int ntok, cap;
    struct sched_tok_lp *lps;      /* parallel to tokens when logprobs >= 0 */
    int lp_cap;
    char *text; size_t text_len, text_cap;
    enum sched_finish finish;      /* final state */
    bool finish_pending;           /* finish not drained yet */
    int completion_tokens;
    int32_t stop_token;
    int stop_index;
};

struct sched_req_impl {
    /* immutable after create (copies) */
    struct sched_params p;         /* pointers below, owned */
    char *id;
    int32_t *prompt;
    char **stop;
    size_t *stop_len;
    size_t max_stop_len;
    int32_t *stop_ids;
    struct samp_bias *bias;
    /* set at submit */
    bool submitted;
    uint64_t order;                /* FCFS key: submission sequence number */
    uint64_t seed;
    int max_tokens;                /* effective: min(max_tokens, max_model_len - prompt_len) */
    /* [engine] */
    struct sched_seq *seqs;        /* [n]; seqs[1..] live only after the fork */
    bool forked;
    int32_t *fork_slots;           /* [n-1] slots reserved for the fork at admission, -1 when none */
    int num_done;                  /* choices finished */
    bool finished;                 /* every choice done */
    int plp_next;                  /* next prompt position whose log-prob is due (1..prompt_len) */
    struct sched_tok_lp *plp;      /* [prompt_len] engine-side accumulation */
    bool touched;                  /* notify after this step */
    bool first_token_seen;
    bool scheduled_once;
    int64_t arrival_ns;            /* copy of timing.arrival_ns for the engine thread */
    int active_index;              /* position in sched->active */
    /* [outbox] */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct ob_choice *ob;          /* [n] */
    struct sched_tok_lp *ob_plp;   /* delivered prompt log-probs, owned until drained */
    int ob_nplp;
    bool plp_pending;
    bool done, done_pending;
    bool dirty;
    int error;
    char error_msg[160];
    struct sched_timing timing;
    int completion_total;
    /* [notify] */
    pthread_mutex_t notify_mu;
    sched_notify_fn notify;
    void *notify_user;
};

/* One token to sample this step: a sequence and its logits row. */
struct samp_job {
    struct sched_seq *q;
    const float *logits;
    struct samp_result res;
    int rc;
};

struct sched {
    struct sched_config cfg;       /* eng, tok borrowed */
    const struct cfg_model *mc;
    int vocab;
    int block_size;
    int max_blocks_per_seq;        /* ceil(max_model_len / block_size) */
    struct kv_pool kv;             /* [engine] */
    struct slot_pool slots;        /* [engine] */
    struct samp_ctx *samp;         /* [engine] = samps[0] (prompt log-probs) */
    struct samp_ctx **samps;       /* [num_samps] one per sampling worker */
    int num_samps;
    struct samp_job *jobs;         /* [max_num_seqs] this step's sampling jobs */
    size_t par_min_logits;         /* parallel sampling from this many logits (tests lower it) */
    struct sched_devsamp *devsamp; /* [engine] device-sampling scratch (step.c), lazily made */
    int num_jobs;
    pthread_t thread;
    bool started;

    /* [inbox] */
    pthread_mutex_t mu;
    pthread_cond_t cv;             /* engine wake-up */
    pthread_cond_t idle_cv;        /* sched_wait_idle */
    struct sched_request **inbox; int inbox_n, inbox_cap;
    bool stopping;
    bool draining;
    bool engine_idle;              /* nothing queued or running on the engine side */
    atomic_int fatal;              /* engine error code once the device is unusable; 0 before */
    int failed_steps;              /* [engine] consecutive failed steps */
    uint64_t next_order;
    atomic_int waiting_count;      /* published by the engine thread */
    atomic_bool cancel_hint;       /* a cancel happened since the last step */

    /* [engine] */
    struct sched_request **active; int num_active, active_cap; /* submitted, unfinished */
    struct sched_seq **waiting; int num_waiting, waiting_cap;  /* by (order, choice) */
    struct sched_seq **running; int num_running, running_cap;  /* by (order, choice) */
    /* step scratch */
    int32_t *b_tokens, *b_pos, *b_qs, *b_cache, *b_slot, *b_bt, *b_lrows;
    struct sched_seq **rows; int32_t *row_ntok; int num_rows;
    int num_decode_rows;
    int num_verify_rows;           /* rows [num_decode_rows, +num_verify_rows) verify drafts */
    int32_t *b_spec; int b_spec_cap; /* [num_verify * (k+1)] spec slots of the batch */
    int32_t *lrow_seq;             /* logits row -> batch row */
    int32_t *lrow_pos;             /* logits row -> sequence position (for prompt logprobs) */
    float *logits; size_t logits_cap;
    struct sched_request **touched; int num_touched, touched_cap;

    /* stats */
    pthread_mutex_t stats_mu;
    struct sched_stats stats;
    uint64_t st_preempt, st_prompt, st_gen, st_steps, st_batched;
    uint64_t st_finished[5];
    uint64_t st_spec_draft, st_spec_accept;
    uint64_t st_spec_rows;                  /* verify rows run */
    uint64_t st_spec_pos[SPEC_MAX_TOKENS];  /* drafts accepted at each position */
};

/* --- request.c (outbox side, engine thread) --- */
int64_t sched_now_ns(void);
void ob_append_token(struct sched_request *r, int choice, int32_t tok,
                     const struct sched_tok_lp *lp, const char *text, size_t len);
void ob_append_text(struct sched_request *r, int choice, const char *text, size_t len);
void ob_finish_choice(struct sched_request *r, int choice, enum sched_finish f,
                      int32_t stop_token, int stop_index);
void ob_set_prompt_logprobs(struct sched_request *r, struct sched_tok_lp *plp, int n);
void ob_set_done(struct sched_request *r, int error, const char *msg);
void ob_set_timing(struct sched_request *r, int which, int64_t ns);
void sched_request_notify(struct sched_request *r);

/* --- stop.c --- */
/* Earliest stop-string occurrence in text[0..len) that ends after `from`
 * (matches entirely before `from` were checked already). Returns the byte
 * offset and sets *which, or -1. */
long stop_find(const struct sched_req_impl *im, const char *text, size_t len, size_t from,
               int *which);
/* Bytes at the end of text that could still begin a stop string. */
size_t stop_holdback(const struct sched_req_impl *im, const char *text, size_t len);
bool stop_is_eos(const struct sched *s, const struct sched_req_impl *im, int32_t tok);
bool stop_is_stop_id(const struct sched_req_impl *im, int32_t tok);

/* --- plan.c --- */
/* Plans one step into s->rows/row_ntok (decode rows, then prefill chunks),
 * allocating blocks, slots and preempting as needed. Returns rows planned. */
int sched_plan(struct sched *s);
void seq_free_resources(struct sched *s, struct sched_seq *q);
void seq_list_insert(struct sched_seq ***list, int *n, int *cap, struct sched_seq *q);
void seq_list_remove(struct sched_seq **list, int *n, struct sched_seq *q);

/* --- step.c --- */
/* Runs the planned step: builds the batch, forward, samples, checks stops,
 * delivers, finishes. Returns 0 or the engine's error (requests of the batch
 * failed with ERROR). */
int sched_run_step(struct sched *s);
/* Frees step.c's device-sampling scratch (sched_destroy). */
void sched_devsamp_free(struct sched *s);
/* Finishes every unfinished choice of r with f (ABORT/ERROR), freeing its
 * sequences; drops the scheduler's reference when done. */
void sched_finish_request(struct sched *s, struct sched_request *r, enum sched_finish f,
                          int error, const char *msg);
void seq_finish(struct sched *s, struct sched_seq *q, enum sched_finish f, int32_t stop_token,
                int stop_index);
void sched_touch(struct sched *s, struct sched_request *r);

/* Invariant check for tests: every block refcount equals the number of
 * sequences holding it, slots used == slots held, budgets. 0 or -1 + err.
 * Engine thread (or a test that drives steps itself). */
int sched_check_invariants(struct sched *s, char *err, size_t errlen);
/* Test hook: run one engine iteration synchronously on the calling thread
 * (drain inbox, cancel, plan, step). Only when the engine thread is not
 * started. Returns rows run (0 when idle) or a negative error. */
int sched_step_sync(struct sched *s);

#endif
