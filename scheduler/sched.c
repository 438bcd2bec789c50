/* scheduler/sched.c: the scheduler object, its public API (submit, cancel,
 * drain, stats) and the engine thread's loop.
 *
 * Threads: sched_submit/cancel/drain_begin/wait_idle/get_stats on any
 * thread; create/start/stop/destroy on the main thread; engine_main and
 * everything it calls on the engine thread. The inbox (s->mu) is the only
 * state both sides touch, apart from each request's outbox (request.c).
 *
 * One iteration: take the inbox (new requests), finish cancelled requests,
 * plan (plan.c), run the step (step.c), then notify every touched request
 * and drop the scheduler's reference of finished ones, publish stats. When
 * there is nothing to run the thread sleeps on s->cv (see sched.h for why a
 * condition variable rather than libuv).
 */
#include <errno.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/log.h"
#include "scheduler/sched_internal.h"

void sched_config_init(struct sched_config *c)
{
    memset(c, 0, sizeof(*c));
    c->max_num_seqs = 256;
    c->max_num_batched_tokens = 2048;
    c->max_model_len = 0; /* 0: the model's max_position_embeddings */
    c->max_queued = 1024;
    c->log_requests = true;
    c->max_failed_steps = 8;
    c->spec_min_acceptance = SPEC_MIN_ACCEPT_DEFAULT;
}

_Static_assert(sizeof(((struct sched_stats *)0)->spec_accepted_per_pos) == SPEC_MAX_TOKENS * sizeof(uint64_t),
               "spec_accepted_per_pos must have SPEC_MAX_TOKENS entries");

static uint64_t mix64(uint64_t z)
{
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* --- create / destroy ------------------------------------------------------------ */

struct sched *sched_create(const struct sched_config *c, char *err, size_t errlen)
{
#define FAIL(...) do { snprintf(err, errlen, __VA_ARGS__); goto fail; } while (0)
    struct sched *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    pthread_cond_init(&s->idle_cv, NULL);
    pthread_mutex_init(&s->stats_mu, NULL);
    s->engine_idle = true;
    if (!c->eng || !c->eng->cfg) FAIL("scheduler needs an engine");
    s->cfg = *c;
    s->stats.spec_num_positions = c->num_speculative_tokens; /* /metrics shows the spec families from the start */
    s->mc = c->eng->cfg;
    s->vocab = s->mc->vocab_size;
    s->block_size = c->eng->mem.block_size;
    if (s->cfg.max_model_len <= 0) s->cfg.max_model_len = s->mc->max_position_embeddings;
    if (s->vocab < 1) FAIL("model vocab_size must be positive");
    if (s->block_size < 1) FAIL("block size must be at least 1, got %d", s->block_size);
    if (s->cfg.max_num_seqs < 1) FAIL("--max-num-seqs must be at least 1");
    if (s->cfg.max_num_batched_tokens < s->cfg.max_num_seqs)
        FAIL("--max-num-batched-tokens (%d) must be at least --max-num-seqs (%d)",
             s->cfg.max_num_batched_tokens, s->cfg.max_num_seqs);
    if (s->cfg.max_model_len < 1) FAIL("--max-model-len must be at least 1");
    if (s->cfg.max_queued < 1) s->cfg.max_queued = 1;
    s->max_blocks_per_seq = (s->cfg.max_model_len + s->block_size - 1) / s->block_size;
    if (c->eng->mem.num_kv_blocks < s->max_blocks_per_seq)
        FAIL("KV cache has %d blocks of %d tokens but one sequence of --max-model-len %d needs %d: "
             "raise the KV memory or lower --max-model-len",
             c->eng->mem.num_kv_blocks, s->block_size, s->cfg.max_model_len, s->max_blocks_per_seq);
    if (kv_pool_init(&s->kv, c->eng->mem.num_kv_blocks) < 0) FAIL("KV pool: out of memory");
    if (slot_pool_init(&s->slots, c->eng->mem.num_state_slots) < 0)
        FAIL("state slot pool: need at least one slot (got %d)", c->eng->mem.num_state_slots);
    int nsamp = omp_get_max_threads();
    if (nsamp > SCHED_MAX_SAMP_THREADS) nsamp = SCHED_MAX_SAMP_THREADS;
    if (nsamp < 1) nsamp = 1;
    s->samps = calloc((size_t)nsamp, sizeof(*s->samps));
    if (!s->samps) FAIL("sampler: out of memory");
    s->num_samps = nsamp;
    for (int i = 0; i < nsamp; i++)
        if (!(s->samps[i] = samp_ctx_create(s->vocab))) FAIL("sampler: out of memory");
    s->samp = s->samps[0];
    s->par_min_logits = (size_t)1 << 20;
    s->jobs = calloc((size_t)s->cfg.max_num_seqs, sizeof(*s->jobs));
    if (!s->jobs) FAIL("sampler: out of memory");
    int T = s->cfg.max_num_batched_tokens, R = s->cfg.max_num_seqs;
    int LR = R + SCHED_MAX_PLP_ROWS;
    s->b_tokens = malloc(sizeof(int32_t) * (size_t)T);
    s->b_pos = malloc(sizeof(int32_t) * (size_t)T);
    s->b_qs = malloc(sizeof(int32_t) * (size_t)(R + 1));
    s->b_cache = malloc(sizeof(int32_t) * (size_t)R);
    s->b_slot = malloc(sizeof(int32_t) * (size_t)R);
    s->b_bt = malloc(sizeof(int32_t) * (size_t)R * (size_t)s->max_blocks_per_seq);
    s->b_lrows = malloc(sizeof(int32_t) * (size_t)LR);
    s->lrow_seq = malloc(sizeof(int32_t) * (size_t)LR);
    s->lrow_pos = malloc(sizeof(int32_t) * (size_t)LR);
    s->rows = malloc(sizeof(*s->rows) * (size_t)R);
    s->row_ntok = malloc(sizeof(int32_t) * (size_t)R);
    if (!s->b_tokens || !s->b_pos || !s->b_qs || !s->b_cache || !s->b_slot || !s->b_bt ||
        !s->b_lrows || !s->lrow_seq || !s->lrow_pos || !s->rows || !s->row_ntok)
        FAIL("scheduler buffers: out of memory");
    if (!s->cfg.default_seed) s->cfg.default_seed = (uint64_t)time(NULL) ^ ((uint64_t)(uintptr_t)s << 16);
    s->stats.kv_blocks_total = s->kv.num_blocks;
    s->stats.slots_total = s->slots.num_slots;
    return s;
fail:
    sched_destroy(s);
    return NULL;
#undef FAIL
}

void sched_destroy(struct sched *s)
{
    if (!s) return;
    sched_stop(s);
    /* requests never run by a thread (created, never started): release them */
    for (int i = 0; i < s->inbox_n; i++) sched_request_release(s->inbox[i]);
    free(s->inbox);
    free(s->active);
    free(s->waiting);
    free(s->running);
    free(s->touched);
    free(s->b_tokens);
    free(s->b_pos);
    free(s->b_qs);
    free(s->b_cache);
    free(s->b_slot);
    free(s->b_bt);
    free(s->b_lrows);
    free(s->lrow_seq);
    free(s->lrow_pos);
    free(s->rows);
    free(s->row_ntok);
    free(s->b_spec);
    free(s->logits);
    if (s->samps)
        for (int i = 0; i < s->num_samps; i++) samp_ctx_destroy(s->samps[i]);
    free(s->samps);
    free(s->jobs);
    sched_devsamp_free(s);
    kv_pool_fini(&s->kv);
    slot_pool_fini(&s->slots);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    pthread_cond_destroy(&s->idle_cv);
    pthread_mutex_destroy(&s->stats_mu);
    free(s);
}

/* --- submission ---------------------------------------------------------------------- */

int sched_submit(struct sched *s, struct sched_request *r, char *err, size_t errlen)
{
#define BAD(code, ...) do { if (err && errlen) snprintf(err, errlen, __VA_ARGS__); return code; } while (0)
    if (!s || !r) BAD(-EINVAL, "no request");
    struct sched_req_impl *im = r->impl;
    const struct sched_params *p = &im->p;
    const int V = s->vocab, M = s->cfg.max_model_len;
    if (p->prompt_len < 1) BAD(-EINVAL, "the prompt must contain at least one token");
    for (int i = 0; i < p->prompt_len; i++)
        if (im->prompt[i] < 0 || im->prompt[i] >= V)
            BAD(-EINVAL, "prompt token id %d at position %d is out of range [0, %d)",
                (int)im->prompt[i], i, V);
    int nmax = s->cfg.max_num_seqs < s->slots.num_slots ? s->cfg.max_num_seqs : s->slots.num_slots;
    if (p->n < 1 || p->n > nmax) BAD(-EINVAL, "n must be between 1 and %d, got %d", nmax, p->n);
    if (p->max_tokens < -1) BAD(-EINVAL, "max_tokens must be at least 0, got %d", p->max_tokens);
    if (p->min_tokens < 0) BAD(-EINVAL, "min_tokens must be at least 0, got %d", p->min_tokens);
    if (p->max_tokens >= 0 && p->min_tokens > p->max_tokens)
        BAD(-EINVAL, "min_tokens (%d) must be less than or equal to max_tokens (%d)", p->min_tokens,
            p->max_tokens);
    if (p->logprobs < -1 || p->logprobs > SCHED_MAX_LOGPROBS)
        BAD(-EINVAL, "logprobs must be between 0 and %d, got %d", SCHED_MAX_LOGPROBS, p->logprobs);
    if (p->prompt_logprobs < -1 || p->prompt_logprobs > SCHED_MAX_LOGPROBS)
        BAD(-EINVAL, "prompt_logprobs must be between 0 and %d, got %d", SCHED_MAX_LOGPROBS,
            p->prompt_logprobs);
    if (p->num_stop > 0 && !s->cfg.tok) BAD(-EINVAL, "stop strings need a tokenizer");
    for (int i = 0; i < p->num_stop; i++)
        if (im->stop_len[i] == 0) BAD(-EINVAL, "stop strings must not be empty");
    if (p->num_stop_token_ids > 64) BAD(-EINVAL, "at most 64 stop_token_ids are supported");
    for (int i = 0; i < p->num_stop_token_ids; i++)
        if (im->stop_ids[i] < 0 || im->stop_ids[i] >= V)
            BAD(-EINVAL, "stop_token_ids entry %d is out of range [0, %d)", (int)im->stop_ids[i], V);
    int rc = samp_params_validate(&p->sampling, V, err, errlen);
    if (rc < 0) return rc;
    int eff;
    if (p->max_tokens >= 0) {
        if (p->prompt_len + p->max_tokens > M)
            BAD(-E2BIG,
                "This model's maximum context length is %d tokens. However, you requested %d "
                "tokens (%d in the messages, %d in the completion). Please reduce the length of "
                "the messages or completion.",
                M, p->prompt_len + p->max_tokens, p->prompt_len, p->max_tokens);
        eff = p->max_tokens;
    } else {
        if (p->prompt_len >= M)
            BAD(-E2BIG,
                "This model's maximum context length is %d tokens. However, your request has %d "
                "input tokens. Please reduce the length of the input messages.",
                M, p->prompt_len);
        eff = M - p->prompt_len;
    }
    pthread_mutex_lock(&s->mu);
    if (im->submitted) {
        pthread_mutex_unlock(&s->mu);
        BAD(-EALREADY, "request was already submitted");
    }
    if (atomic_load(&s->fatal)) {
        pthread_mutex_unlock(&s->mu);
        BAD(-ESHUTDOWN, "the inference device failed; the server is restarting");
    }
    if (s->stopping || s->draining) {
        pthread_mutex_unlock(&s->mu);
        BAD(-ESHUTDOWN, "the server is shutting down");
    }
    int queued = s->inbox_n + atomic_load(&s->waiting_count);
    if (queued >= s->cfg.max_queued) {
        pthread_mutex_unlock(&s->mu);
        BAD(-EAGAIN, "the server is overloaded: %d requests are queued; retry later", queued);
    }
    if (s->inbox_n == s->inbox_cap) {
        int nc = s->inbox_cap ? s->inbox_cap * 2 : 64;
        struct sched_request **ni = realloc(s->inbox, sizeof(*ni) * (size_t)nc);
        if (!ni) {
            pthread_mutex_unlock(&s->mu);
            BAD(-ENOMEM, "out of memory");
        }
        s->inbox = ni;
        s->inbox_cap = nc;
    }
    im->submitted = true;
    im->order = s->next_order++;
    im->seed = p->has_seed ? p->seed : mix64(s->cfg.default_seed ^ mix64(im->order));
    im->max_tokens = eff;
    im->arrival_ns = sched_now_ns();
    ob_set_timing(r, 0, im->arrival_ns);
    sched_request_retain(r); /* the scheduler's reference */
    s->inbox[s->inbox_n++] = r;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return 0;
#undef BAD
}

void sched_cancel(struct sched *s, struct sched_request *r)
{
    if (!r) return;
    atomic_store(&r->cancelled, true);
    if (!s) return;
    atomic_store(&s->cancel_hint, true);
    pthread_mutex_lock(&s->mu);
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

void sched_drain_begin(struct sched *s)
{
    pthread_mutex_lock(&s->mu);
    s->draining = true;
    pthread_mutex_unlock(&s->mu);
}

bool sched_is_draining(const struct sched *s)
{
    struct sched *m = (struct sched *)s;
    pthread_mutex_lock(&m->mu);
    bool d = m->draining || m->stopping;
    pthread_mutex_unlock(&m->mu);
    return d;
}

int sched_wait_idle(struct sched *s, int timeout_ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (timeout_ms >= 0) {
        ts.tv_sec += timeout_ms / 1000;
        ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
    }
    int rc = 0;
    pthread_mutex_lock(&s->mu);
    while (!(s->engine_idle && s->inbox_n == 0)) {
        if (timeout_ms < 0) pthread_cond_wait(&s->idle_cv, &s->mu);
        else if (pthread_cond_timedwait(&s->idle_cv, &s->mu, &ts) == ETIMEDOUT) {
            rc = (s->engine_idle && s->inbox_n == 0) ? 0 : -ETIMEDOUT;
            break;
        }
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

void sched_get_stats(const struct sched *s, struct sched_stats *out)
{
    struct sched *m = (struct sched *)s;
    pthread_mutex_lock(&m->stats_mu);
    *out = m->stats;
    pthread_mutex_unlock(&m->stats_mu);
}

/* --- engine thread ------------------------------------------------------------------ */

/* Inbox request -> active list + waiting queue (engine thread). */
static void admit(struct sched *s, struct sched_request *r)
{
    struct sched_req_impl *im = r->impl;
    if (s->num_active == s->active_cap) {
        int nc = s->active_cap ? s->active_cap * 2 : 64;
        struct sched_request **na = realloc(s->active, sizeof(*na) * (size_t)nc);
        if (!na) abort();
        s->active = na;
        s->active_cap = nc;
    }
    im->active_index = s->num_active;
    s->active[s->num_active++] = r;
    s->st_prompt += (uint64_t)im->p.prompt_len;
    struct sched_seq *q = &im->seqs[0];
    int cap = im->p.prompt_len + im->max_tokens + 1;
    q->tokens = malloc(sizeof(int32_t) * (size_t)cap);
    q->blocks = malloc(sizeof(int32_t) * (size_t)s->max_blocks_per_seq);
    if (im->p.n > 1) im->fork_slots = malloc(sizeof(int32_t) * (size_t)(im->p.n - 1));
    if (im->p.prompt_logprobs >= 0) {
        im->plp = calloc((size_t)im->p.prompt_len, sizeof(*im->plp));
        if (im->plp) {
            im->plp[0].token = im->prompt[0];
            im->plp[0].logprob = __builtin_nanf("");
        }
    }
    im->plp_next = 1;
    if (!q->tokens || !q->blocks || (im->p.n > 1 && !im->fork_slots) ||
        (im->p.prompt_logprobs >= 0 && !im->plp)) {
        q->state = SEQ_NEW;
        sched_finish_request(s, r, SCHED_FINISH_ERROR, -ENOMEM, "out of memory");
        return;
    }
    for (int i = 0; i < im->p.n - 1; i++) im->fork_slots[i] = -1;
    q->cap = cap;
    memcpy(q->tokens, im->prompt, sizeof(int32_t) * (size_t)im->p.prompt_len);
    q->num_tokens = im->p.prompt_len;
    if (s->cfg.tok) tok_stream_init(&q->ts, s->cfg.tok, im->p.skip_special_tokens);
    q->state = SEQ_WAITING;
    seq_list_insert(&s->waiting, &s->num_waiting, &s->waiting_cap, q);
    if (im->plp_next >= im->p.prompt_len && im->p.prompt_logprobs >= 0) {
        /* a one-token prompt: its prompt log-probs are just the null entry */
        struct sched_tok_lp *copy = malloc(sizeof(*copy));
        if (copy) {
            *copy = im->plp[0];
            ob_set_prompt_logprobs(r, copy, 1);
        }
    }
}

static void publish_stats(struct sched *s)
{
    int running_reqs = 0;
    for (int i = 0; i < s->num_running; i++)
        if (i == 0 || s->running[i]->r != s->running[i - 1]->r) running_reqs++;
    int waiting = s->num_active - running_reqs;
    atomic_store(&s->waiting_count, waiting);
    pthread_mutex_lock(&s->stats_mu);
    struct sched_stats *st = &s->stats;
    st->num_running = running_reqs;
    st->num_waiting = waiting;
    st->kv_blocks_used = kv_num_used(&s->kv);
    st->kv_blocks_total = s->kv.num_blocks;
    st->kv_usage = (double)st->kv_blocks_used / (double)s->kv.num_blocks;
    st->slots_used = slot_num_used(&s->slots);
    st->slots_total = s->slots.num_slots;
    st->preemptions_total = s->st_preempt;
    st->prompt_tokens_total = s->st_prompt;
    st->generation_tokens_total = s->st_gen;
    memcpy(st->requests_finished, s->st_finished, sizeof(st->requests_finished));
    st->steps_total = s->st_steps;
    st->batched_tokens_total = s->st_batched;
    st->spec_draft_tokens_total = s->st_spec_draft;
    st->spec_accepted_tokens_total = s->st_spec_accept;
    st->spec_drafts_total = s->st_spec_rows;
    st->spec_num_positions = s->cfg.num_speculative_tokens;
    memcpy(st->spec_accepted_per_pos, s->st_spec_pos, sizeof(st->spec_accepted_per_pos));
    pthread_mutex_unlock(&s->stats_mu);
}

/* Notify touched requests; drop the scheduler's reference of finished ones. */
static void end_of_step(struct sched *s)
{
    for (int i = 0; i < s->num_touched; i++) {
        struct sched_request *r = s->touched[i];
        struct sched_req_impl *im = r->impl;
        im->touched = false;
        sched_request_notify(r);
        if (im->finished && im->active_index >= 0) {
            int k = im->active_index;
            struct sched_request *last = s->active[--s->num_active];
            s->active[k] = last;
            last->impl->active_index = k;
            im->active_index = -1;
            sched_request_release(r);
        }
    }
    s->num_touched = 0;
    publish_stats(s);
}

static void abort_all(struct sched *s, enum sched_finish f, const char *msg)
{
    while (s->num_active > 0) {
        struct sched_request *r = s->active[s->num_active - 1];
        sched_finish_request(s, r, f, 0, msg);
        end_of_step(s); /* drops it from active */
    }
}

/* The device is unusable: fail every request (active, and any that reached the
 * inbox before fatal was set) with the engine's error. Engine thread. */
static void fail_all_fatal(struct sched *s)
{
    int rc = atomic_load(&s->fatal);
    /* fatal was set under mu and sched_submit refuses once it is set, so the
     * inbox can no longer grow: its entries may be read after unlocking (as
     * sched_stop does for a scheduler that never started). */
    pthread_mutex_lock(&s->mu);
    int nin = s->inbox_n;
    s->inbox_n = 0;
    pthread_mutex_unlock(&s->mu);
    for (int i = 0; i < nin; i++) admit(s, s->inbox[i]);
    while (s->num_active > 0) {
        struct sched_request *r = s->active[s->num_active - 1];
        sched_finish_request(s, r, SCHED_FINISH_ERROR, rc,
                             "the inference device failed; the server is restarting");
        end_of_step(s);
    }
}

int sched_fatal_error(const struct sched *s)
{
    return atomic_load(&((struct sched *)s)->fatal);
}

static int iterate(struct sched *s, struct sched_request **in, int nin)
{
    for (int i = 0; i < nin; i++) admit(s, in[i]);
    if (atomic_exchange(&s->cancel_hint, false) || nin) {
        for (int i = 0; i < s->num_active; i++) {
            struct sched_request *r = s->active[i];
            if (atomic_load(&r->cancelled) && !r->impl->finished)
                sched_finish_request(s, r, SCHED_FINISH_ABORT, 0, NULL);
        }
    }
    int rows = sched_plan(s);
    int rc = rows > 0 ? sched_run_step(s) : 0;
    end_of_step(s);
    return rc < 0 ? rc : rows;
}

static void *engine_main(void *arg)
{
    struct sched *s = arg;
    struct sched_request **local = NULL;
    int local_cap = 0;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        while (!s->stopping && s->inbox_n == 0 && s->num_active == 0) {
            s->engine_idle = true;
            pthread_cond_broadcast(&s->idle_cv);
            pthread_cond_wait(&s->cv, &s->mu);
        }
        s->engine_idle = false;
        int nin = s->inbox_n;
        if (nin > local_cap) {
            struct sched_request **nl = realloc(local, sizeof(*nl) * (size_t)nin);
            if (!nl) abort();
            local = nl;
            local_cap = nin;
        }
        if (nin > 0) /* local is NULL until the first request arrives */
            memcpy(local, s->inbox, sizeof(*local) * (size_t)nin);
        s->inbox_n = 0;
        bool stop = s->stopping;
        pthread_mutex_unlock(&s->mu);
        if (stop) {
            for (int i = 0; i < nin; i++) admit(s, local[i]);
            abort_all(s, SCHED_FINISH_ABORT, NULL);
            break;
        }
        int rows = iterate(s, local, nin);
        if (atomic_load(&s->fatal)) {
            fail_all_fatal(s);
            if (s->cfg.on_fatal) s->cfg.on_fatal(s->cfg.fatal_user, atomic_load(&s->fatal));
            break;
        }
        if (rows == 0 && s->num_active > 0) {
            /* work exists but nothing fit (cannot happen with a consistent
             * plan; kept as a guard against a busy loop) */
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
        }
    }
    free(local);
    pthread_mutex_lock(&s->mu);
    s->engine_idle = true;
    pthread_cond_broadcast(&s->idle_cv);
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

int sched_start(struct sched *s)
{
    if (s->started) return -EALREADY;
    int rc = pthread_create(&s->thread, NULL, engine_main, s);
    if (rc) return -rc;
    s->started = true;
    return 0;
}

void sched_stop(struct sched *s)
{
    if (!s) return;
    pthread_mutex_lock(&s->mu);
    s->stopping = true;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    if (s->started) {
        pthread_join(s->thread, NULL);
        s->started = false;
    } else {
        /* never started (tests driving sched_step_sync): finish what is left */
        pthread_mutex_lock(&s->mu);
        int nin = s->inbox_n;
        s->inbox_n = 0;
        pthread_mutex_unlock(&s->mu);
        for (int i = 0; i < nin; i++) admit(s, s->inbox[i]);
        abort_all(s, SCHED_FINISH_ABORT, NULL);
    }
}

int sched_step_sync(struct sched *s)
{
    pthread_mutex_lock(&s->mu);
    int nin = s->inbox_n;
    struct sched_request **in = NULL;
    if (nin) {
        in = malloc(sizeof(*in) * (size_t)nin);
        if (!in) {
            pthread_mutex_unlock(&s->mu);
            return -ENOMEM;
        }
        memcpy(in, s->inbox, sizeof(*in) * (size_t)nin);
        s->inbox_n = 0;
    }
    pthread_mutex_unlock(&s->mu);
    int rc = iterate(s, in, nin);
    free(in);
    return rc;
}

/* --- invariants (tests) ---------------------------------------------------------------- */

int sched_check_invariants(struct sched *s, char *err, size_t errlen)
{
    int32_t *ref = calloc((size_t)s->kv.num_blocks, sizeof(int32_t));
    if (!ref) return -1;
    int slots = 0, rc = -1;
    for (int a = 0; a < s->num_active; a++) {
        struct sched_req_impl *im = s->active[a]->impl;
        for (int c = 0; c < im->p.n; c++) {
            struct sched_seq *q = &im->seqs[c];
            if (q->state == SEQ_RUNNING) {
                if (q->slot < 0 || !slot_is_used(&s->slots, q->slot)) {
                    snprintf(err, errlen, "running seq without a slot");
                    goto out;
                }
                slots++;
                if (q->num_blocks * s->block_size < q->num_computed) {
                    snprintf(err, errlen, "seq has %d blocks for %d computed tokens", q->num_blocks,
                             q->num_computed);
                    goto out;
                }
            } else if (q->num_blocks || q->slot >= 0) {
                snprintf(err, errlen, "non-running seq (state %d) holds %d blocks / slot %d",
                         q->state, q->num_blocks, q->slot);
                goto out;
            }
            for (int b = 0; b < q->num_blocks; b++) ref[q->blocks[b]]++;
        }
        if (im->fork_slots && !im->forked)
            for (int k = 0; k < im->p.n - 1; k++) slots += im->fork_slots[k] >= 0;
    }
    if (slots != slot_num_used(&s->slots)) {
        snprintf(err, errlen, "%d slots held but %d used in the pool", slots, slot_num_used(&s->slots));
        goto out;
    }
    if (kv_pool_check(&s->kv, ref, err, errlen) < 0) goto out;
    if (slot_pool_check(&s->slots, err, errlen) < 0) goto out;
    int seqs = 0;
    for (int i = 0; i < s->num_running; i++) {
        struct sched_seq *q = s->running[i];
        if (q->state != SEQ_RUNNING) {
            snprintf(err, errlen, "running list holds a seq in state %d", q->state);
            goto out;
        }
        seqs++;
    }
    if (seqs > s->cfg.max_num_seqs) {
        snprintf(err, errlen, "%d running seqs > max_num_seqs %d", seqs, s->cfg.max_num_seqs);
        goto out;
    }
    int tokens = 0;
    for (int i = 0; i < s->num_rows; i++) tokens += s->row_ntok[i];
    if (tokens > s->cfg.max_num_batched_tokens || s->num_rows > s->cfg.max_num_seqs) {
        snprintf(err, errlen, "step had %d tokens in %d rows (limits %d, %d)", tokens, s->num_rows,
                 s->cfg.max_num_batched_tokens, s->cfg.max_num_seqs);
        goto out;
    }
    rc = 0;
out:
    free(ref);
    return rc;
}
